//! Key accounts on the admin side (see `slot::account` for the hot side): making a key's
//! account, keeping its holder count, taking back a lone holder's whole-key lease when a second
//! pair takes the key, what an account has used, and giving the keys of a state written before
//! accounts existed their accounts.

use serde::Serialize;

use super::{record_switch, sync_pair, Admin, Engine, KeyStatus};
use crate::catalog::{Catalog, KeyUse, PairRow, ProjectRow};
use crate::error::{Corruption, Error, Result};
use crate::event::EventKind;
use crate::key::{Key, LicenseClass};
use crate::slot::{AccountRecord, LiveKey, NextGen, PairRecord};
use crate::state_file::StateFile;

/// The owner tag of an account record (a pair record carries its project's).
const ACCOUNT_OWNER: u32 = u32::MAX;

/// One pair holding or having held a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyHolder {
    /// The project.
    pub project: String,
    /// Where the key is in that project's pair.
    pub status: KeyStatus,
    /// What that project used of the key (in the current period, for a key with a reset).
    pub used: u64,
}

/// A key's account: one quota every pair holding the key draws from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountUsage {
    /// The key's limit.
    pub limit: u64,
    /// Used across every project, past and present (in the current period, for a key with a
    /// reset).
    pub used: u64,
    /// Leased to pairs and not used yet (capacity idle in their blocks).
    pub leased_unused: u64,
    /// Every project that holds or held the key, oldest first.
    pub holders: Vec<KeyHolder>,
}

impl Engine {
    /// The account id (record plus one) of key `key` (bytes of a data-volume key, seats of a
    /// seat or instance key), made empty when the key has none yet. Needs the admin lock. The catalog row comes first: a crash before the hot
    /// record is made leaves a row that [`give_keys_accounts`] completes at the next open.
    pub(super) fn account_for(&self, admin: &Admin, key: &Key) -> Result<u32> {
        if let Some(record) = admin.catalog.account_record(&key.id)? {
            return Ok(record + 1);
        }
        // A key with a reset counts its first period from the one it was added in, and the
        // usage checkpoint that records the start commits with it (rule R40).
        let period = key
            .reset
            .map(|reset| (reset, reset.start_of(i64::from(self.inner.clock.now()))));
        let record = match period {
            None => {
                let tx = admin.catalog.begin()?;
                let record = self.free_record(&tx)?;
                Catalog::insert_account(&tx, &key.id, record)?;
                tx.commit().map_err(Error::store("commit key account"))?;
                record
            }
            Some((reset, start)) => self.periodic_account(admin, key, reset, start)?,
        };
        let state = &self.inner.state;
        let account = state.account_record(record);
        // In a fleet, data volume and machine or core seats are leased from the store; a
        // per-instance key is assigned once fleet-wide through the admin log instead.
        let class = key.scheme.class();
        let fleet = self.inner.in_fleet() && class != LicenseClass::Instance;
        // A fleet account leases no overage (the store account holds the limit alone).
        let overage = if fleet { 0 } else { key.overage_bytes() };
        account.open(key.scheme.amount(), overage, 0, ACCOUNT_OWNER);
        match class {
            _ if !fleet => {}
            LicenseClass::DataVolume => account.make_fleet(),
            _ => account.make_fleet_seats(),
        }
        if let Some((_, start)) = period {
            account.start_period(u64::try_from(start).unwrap_or(0), 0);
        }
        state.flush_record(record)?;
        Ok(record + 1)
    }

    /// Counts the pairs holding `key_id` into its account. When they grew to more than one,
    /// republishes every holder but `changed` (the pair just changed): a key with one holder
    /// leases itself whole, and the republish gives that lease back so the blocks shrink.
    pub(super) fn refresh_holders(&self, admin: &Admin, key_id: &str, changed: u32) -> Result<()> {
        let Some(record) = admin.catalog.account_record(key_id)? else {
            return Ok(());
        };
        let account = self.inner.state.account_record(record);
        let holding: Vec<KeyUse> = admin
            .catalog
            .key_rows_by_id(key_id)?
            .into_iter()
            .filter(|u| u.state == "live" || u.state == "pending")
            .collect();
        let before = account.holders();
        let now = u32::try_from(holding.len()).unwrap_or(u32::MAX);
        account.set_holders(now);
        if now > before && now >= 2 {
            for held in holding.iter().filter(|u| u.pair.record != changed) {
                self.republish(admin, &held.project, held.pair)?;
            }
        }
        Ok(())
    }

    /// Publishes a pair's generation again unchanged, which seals its leases and gives their
    /// unused part back to the accounts.
    pub(super) fn republish(
        &self,
        admin: &Admin,
        project: &ProjectRow,
        pair: PairRow,
    ) -> Result<()> {
        let state = &self.inner.state;
        let mut recorded = sync_pair(state, &admin.catalog, project, pair)?;
        let record = state.record(pair.record);
        loop {
            // As in `change_pair`: publish only from a state whose switch the catalog holds.
            let published = record.publish(&**state, |now| {
                if now.switched_out != recorded {
                    return Err(());
                }
                Ok(NextGen {
                    active: now.active,
                    reserve: now.reserve,
                    retired: None,
                    switches: now.switches,
                })
            });
            match published {
                Ok(_) => break,
                Err(()) => recorded = record_switch(state, &admin.catalog, project, pair.record)?,
            }
        }
        self.finish_change(admin, pair.record, &[], &[], &super::now_text())
    }

    /// A key's account: its usage across every project and who holds it. `None` for a key with
    /// no account yet.
    pub(super) fn account_usage(
        &self,
        catalog: &Catalog,
        key: &Key,
    ) -> Result<Option<AccountUsage>> {
        account_usage(&self.inner.state, catalog, key)
    }

    /// Whether the account of a data-volume pair's Active key is used up, as far as this pair
    /// can draw: its lease is spent and the account has nothing more.
    pub(super) fn active_used_up(&self, record: &PairRecord) -> bool {
        let state = record.state();
        let Some(active) = state.active else {
            return false;
        };
        let Some(account) = self.account(active.account) else {
            return false;
        };
        account.used_up(false) && record.room() == 0
    }

    fn account(&self, id: u32) -> Option<&AccountRecord> {
        use crate::slot::Accounts;
        self.inner.state.account(id)
    }

    /// The next record index, free in both the catalog and the hot file.
    pub(super) fn free_record(&self, tx: &rusqlite::Transaction<'_>) -> Result<u32> {
        let record = Catalog::next_record(tx)?;
        let capacity = self.inner.state.capacity();
        if record >= capacity {
            return Err(Error::Capacity { capacity });
        }
        if self.inner.state.record(record).owner() != 0 {
            return Err(Error::CorruptState {
                path: self.inner.dir.join(crate::files::HOT_FILE),
                reason: Corruption::RecordInUse { record },
            });
        }
        Ok(record)
    }
}

/// What one row of a key used, from its pair's hot state while it is live there, else from the
/// catalog; with where it is.
pub(super) fn row_usage(state: &StateFile, used: &KeyUse) -> (KeyStatus, u64) {
    let hot = state.record(used.pair.record).state();
    if let Some(a) = hot.active.filter(|a| a.key == used.row) {
        return (KeyStatus::Active, a.used);
    }
    if let Some(r) = hot.reserve.filter(|r| r.key == used.row) {
        return (KeyStatus::Reserved, r.used);
    }
    if let Some((_, u)) = hot.switched_out.filter(|s| s.0 == used.row) {
        return (KeyStatus::Retired, u);
    }
    if let Some((_, u)) = hot.published_retired.filter(|s| s.0 == used.row) {
        return (KeyStatus::Retired, u);
    }
    match used.state.as_str() {
        "removed" => (KeyStatus::Removed, used.final_used.unwrap_or(0)),
        _ => (KeyStatus::Retired, used.final_used.unwrap_or(0)),
    }
}

/// See [`Engine::account_usage`].
pub(super) fn account_usage(
    state: &StateFile,
    catalog: &Catalog,
    key: &Key,
) -> Result<Option<AccountUsage>> {
    let Some(record) = catalog.account_record(&key.id)? else {
        return Ok(None);
    };
    let account = state.account_record(record);
    // Bytes used stay used; seats count only where the key bounds a gauge now: a retired seat
    // key's seats moved on with the switch.
    let bytes = key.scheme.class() == LicenseClass::DataVolume;
    let mut holders = Vec::new();
    let mut used = 0u64;
    for row in catalog.key_rows_by_id(&key.id)? {
        if row.state == "pending" {
            continue;
        }
        let (status, share) = row_usage(state, &row);
        let share = share.saturating_sub(row.closed_used);
        if bytes || status == KeyStatus::Active {
            used += share;
        }
        holders.push(KeyHolder {
            project: row.project.name.clone(),
            status,
            used: share,
        });
    }
    Ok(Some(AccountUsage {
        limit: account.limit(),
        used,
        leased_unused: account.drawn().saturating_sub(used),
        holders,
    }))
}

/// Gives the keys of every pair written before key accounts existed an account (data-volume
/// pairs before format 3, seat and instance pairs before seat accounts), and completes
/// accounts a crash left half-made. Per-pair copies of one key id become one account whose
/// usage is their sum; a sum beyond the limit leaves the key used up (a seat key: no seat can be
/// taken until enough are released), nothing lost, and says so in a `recovered` event. Also finishes a publish whose process was killed
/// before it gave the old generation's leases back. Runs at open under the admin lock, before
/// any handle exists; `upgraded_from` is the format version the hot file had when this open
/// upgraded it, which the events name.
pub(super) fn give_keys_accounts(
    state: &StateFile,
    catalog: &Catalog,
    upgraded_from: Option<u32>,
) -> Result<()> {
    // Pairs without accounts were written by a build before key accounts: converting them is
    // an upgrade, not a crash's repair, and the events say so. Without an upgrade in this open,
    // an earlier open upgraded the file and stopped before converting every pair.
    let upgraded = match upgraded_from {
        Some(version) => format!("upgraded from state format {version}"),
        None => "upgraded from a state written before key accounts".to_owned(),
    };
    // Once every pair was converted, a slot without an account can only be an edited file:
    // it is left as it is, for the ratchet to refuse, never quietly given an account again.
    let converted = catalog.flag(CONVERTED)?;
    let mut touched: Vec<String> = Vec::new();
    for (project, pair) in catalog.all_pairs(false)? {
        let bytes = pair.class == LicenseClass::DataVolume;
        let record = state.record(pair.record);
        if !record.needs_accounts() {
            if bytes {
                // A publisher killed between its CAS and giving the old leases back.
                record.finish_publish(state);
            }
            continue;
        }
        if converted {
            continue;
        }
        // A seat pair's state reads the same with or without accounts; a data-volume pair of
        // format 2 metered both keys on one cursor.
        let legacy = if bytes {
            record.legacy_state()
        } else {
            record.state()
        };
        let keys = catalog.keys_of(pair.record)?;
        let mut account_of = |live: Option<LiveKey>| -> Result<Option<LiveKey>> {
            let Some(mut live) = live else {
                return Ok(None);
            };
            let key = &super::key_of(&keys, live.key)?.clone();
            live.account = ensure_account(state, catalog, key)?;
            if !touched.contains(&key.id) {
                touched.push(key.id.clone());
            }
            Ok(Some(live))
        };
        let next = match legacy.switched_out {
            Some(retired) => NextGen {
                active: account_of(legacy.active)?,
                reserve: None,
                retired: Some(retired),
                switches: legacy.switches,
            },
            None => NextGen {
                active: account_of(legacy.active)?,
                reserve: account_of(legacy.reserve)?,
                retired: legacy.published_retired,
                switches: legacy.switches,
            },
        };
        record.publish::<()>(state, |_| Ok(next)).ok();
        state.flush_record(pair.record)?;
        let tx = catalog.begin()?;
        Catalog::sync_pair(&tx, pair.record, &record.state(), &super::now_text())?;
        let detail = format!(
            "{upgraded}: {} pair of \"{}\" given key accounts (hot-state generation {})",
            if bytes {
                "data-volume".to_owned()
            } else {
                pair.class.to_string()
            },
            project.name,
            record.state().epoch
        );
        Catalog::append_events_in(
            &tx,
            &[(project.name.clone(), EventKind::Recovered { detail })],
        )?;
        tx.commit().map_err(Error::store("commit key accounts"))?;
    }
    // Accounts a crash left without their hot record, and the usage of every account touched.
    for (key_id, record) in catalog.accounts()? {
        if state.account_record(record).is_account() && !touched.contains(&key_id) {
            continue;
        }
        let Some((_, key)) = catalog.key_uses(&key_id)?.into_iter().next() else {
            continue;
        };
        let account = state.account_record(record);
        let fresh = !account.is_account();
        if fresh {
            account.open(key.scheme.amount(), key.overage_bytes(), 0, ACCOUNT_OWNER);
        }
        let usage = account_usage(state, catalog, &key)?.expect("an account was found");
        // Bytes: the sum of what every holder used. Seats: the republish above counted each
        // pair's gauge as it carried it, unless the account's hot record was missing then.
        if key.scheme.class() == LicenseClass::DataVolume || fresh {
            account.set_taken(usage.used);
        }
        let holders = usage
            .holders
            .iter()
            .filter(|h| matches!(h.status, KeyStatus::Active | KeyStatus::Reserved))
            .count();
        account.set_holders(u32::try_from(holders).unwrap_or(u32::MAX));
        state.flush_record(record)?;
        if usage.used > usage.limit {
            let mut detail = if key.scheme.class() == LicenseClass::DataVolume {
                format!(
                    "key {} was used {} bytes across {} projects, beyond its limit of {}: it is used up",
                    key.id,
                    usage.used,
                    usage.holders.len(),
                    usage.limit
                )
            } else {
                format!(
                    "key {} has {} seats held across {} projects, beyond its amount of {}: no seat is taken until enough are released",
                    key.id,
                    usage.used,
                    usage.holders.len(),
                    usage.limit
                )
            };
            if touched.contains(&key_id) {
                detail = format!("{upgraded}: {detail}");
            }
            let tx = catalog.begin()?;
            let project = usage.holders[0].project.clone();
            Catalog::append_events_in(&tx, &[(project, EventKind::Recovered { detail })])?;
            tx.commit().map_err(Error::store("commit key accounts"))?;
        }
    }
    if !converted {
        catalog.set_flag(CONVERTED)?;
    }
    Ok(())
}

/// The catalog flag set once every pair of the state draws from key accounts.
const CONVERTED: &str = "key_accounts";

/// The account of `key`, made when missing (at open, under the admin lock).
fn ensure_account(state: &StateFile, catalog: &Catalog, key: &Key) -> Result<u32> {
    if let Some(record) = catalog.account_record(&key.id)? {
        return Ok(record + 1);
    }
    let tx = catalog.begin()?;
    let record = Catalog::next_record(&tx)?;
    if record >= state.capacity() {
        return Err(Error::Capacity {
            capacity: state.capacity(),
        });
    }
    Catalog::insert_account(&tx, &key.id, record)?;
    tx.commit().map_err(Error::store("commit key account"))?;
    state
        .account_record(record)
        .open(key.scheme.amount(), key.overage_bytes(), 0, ACCOUNT_OWNER);
    Ok(record + 1)
}
