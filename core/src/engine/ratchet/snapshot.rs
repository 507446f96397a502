//! The usage and terms of every pair as a ratchet records and checks them: read from the hot
//! state (less what thread handles' blocks hold) and checked against the catalog's keys.

use super::*;

/// The usage and terms of every pair, read from the hot state and checked against the
/// catalog's keys.
pub(super) struct Snapshot {
    /// Bytes ever charged to data-volume keys: retired keys' final usage from the catalog plus
    /// the live usage in the hot state. It never goes down.
    pub(super) total: u64,
    /// The data-volume keys in slots (and one a switch retired that the catalog has not yet).
    pub(super) live: BTreeMap<u32, CheckedKey>,
    /// Final usage of retired data-volume keys, by row.
    pub(super) retired: HashMap<u32, u64>,
    /// How much more than `total` (and, by row, than a key's `used`) the usage may be: what
    /// thread handles' slots were moving on the cursors while they were read. The ratchet
    /// records the lower figure and checks against the higher one, so neither a ratchet nor a
    /// check ever errs toward a rollback that did not happen.
    pub(super) slack_total: u64,
    pub(super) slack: HashMap<u32, u64>,
    /// Each key with a reset, by key id: its term, current period and closed usage (from the
    /// catalog).
    pub(super) periods: BTreeMap<String, PeriodMark>,
}

impl Snapshot {
    /// Reads every pair, refusing with [`Error::Tampered`] a slot whose limit, expiry or grace is
    /// not its key's in the catalog (rule R31: limits patched in `hot.tgs`). An operator
    /// cannot accept that: the keys are the vendor's, the hot file only publishes them.
    ///
    /// A thread handle's block is in its pair's cursor until the handle grants it or gives it
    /// back, which lowers the cursor: so the usage counted is the cursor's less what the
    /// slots may still give back (`returnable`), read before and after the cursors, the larger
    /// of the two. That is never more than was granted, so a ratchet never stands above the
    /// usage a later open finds.
    pub(super) fn read(
        state: &StateFile,
        slots: Option<&LeaseSlots>,
        catalog: &Catalog,
    ) -> Result<Snapshot> {
        let before = slots.map(LeaseSlots::returnable).unwrap_or_default();
        let mut cursors = HashMap::new();
        let mut snapshot = Snapshot::read_pairs(state, catalog, &mut cursors)?;
        let after = slots.map(LeaseSlots::returnable).unwrap_or_default();
        let mut held: BTreeSet<(u32, u32)> = BTreeSet::new();
        for (index, (record, _)) in before.iter().chain(after.iter()) {
            held.insert((*index, *record));
        }
        for (index, record) in held {
            let Some(&(tag, row)) = cursors.get(&record) else {
                continue;
            };
            let read = |reads: &HashMap<u32, (u32, Returnable)>| {
                reads
                    .get(&index)
                    .filter(|(r, _)| *r == record)
                    .map(|&(_, returnable)| returnable)
            };
            let (first, second) = (read(&before), read(&after));
            let most = [first, second]
                .into_iter()
                .flatten()
                .map(|returnable| returnable.most_off(tag))
                .max()
                .unwrap_or(0);
            let least = match (first, second) {
                (Some(first), Some(second)) => Returnable::surely_held(first, second, tag),
                _ => 0,
            };
            snapshot.total = snapshot.total.saturating_sub(most);
            if let Some(key) = snapshot.live.get_mut(&row) {
                key.used = key.used.saturating_sub(most);
            }
            let slack = most.saturating_sub(least);
            snapshot.slack_total += slack;
            *snapshot.slack.entry(row).or_default() += slack;
        }
        Ok(snapshot)
    }

    /// Reads every pair (see [`Self::read`]), noting for each data-volume pair, by record
    /// index, its cursor tag and the row of the key it draws from now in `cursors`.
    fn read_pairs(
        state: &StateFile,
        catalog: &Catalog,
        cursors: &mut HashMap<u32, (u64, u32)>,
    ) -> Result<Snapshot> {
        let retired = catalog.retired_usage()?;
        let mut snapshot = Snapshot {
            total: retired.values().sum(),
            live: BTreeMap::new(),
            retired,
            periods: period_marks(catalog)?,
            slack_total: 0,
            slack: HashMap::new(),
        };
        let accounts: HashMap<String, u32> = catalog.accounts()?.into_iter().collect();
        for (project, pair) in catalog.all_pairs(false)? {
            let record = state.record(pair.record);
            let hot = record.state();
            if let (Metering::Volume, Some(active)) = (record.metering(), hot.active) {
                cursors.insert(pair.record, (hot.cursor_tag(), active.key));
            }
            let keys = catalog.keys_of(pair.record)?;
            for (slot, role) in [(hot.active, Role::Active), (hot.reserve, Role::Reserved)] {
                let Some(slot) = slot else { continue };
                let Some(key) = keys.get(&slot.key).map(|k| &k.key) else {
                    return Err(unacceptable(EditedTerms::UnknownKey {
                        role,
                        project: project.name,
                        row: slot.key,
                    }));
                };
                let terms = [
                    (SlotTerm::Limit, slot.limit, key.scheme.amount()),
                    (
                        SlotTerm::Expiry,
                        u64::from(slot.expiry),
                        u64::from(key.expiry_secs()),
                    ),
                    (
                        SlotTerm::Grace,
                        u64::from(slot.grace_days),
                        u64::from(key.grace_days_hot()),
                    ),
                ];
                for (term, hot, signed) in terms {
                    if hot != signed {
                        return Err(unacceptable(EditedTerms::Slot {
                            role,
                            key: key.id.clone(),
                            project: project.name,
                            term,
                            hot,
                            signed,
                        }));
                    }
                }
                // The account bounds every grant (or seat) of the key across its holders, so which
                // account a slot draws from and that account's limit are terms too: a slot
                // pointed at another account (or none) would escape the shared quota.
                let named = accounts.get(key.id.as_str()).map_or(0, |record| record + 1);
                if slot.account != named {
                    return Err(unacceptable(EditedTerms::Account {
                        role,
                        project: project.name,
                        key: key.id.clone(),
                        hot: slot.account,
                        named,
                    }));
                }
                let account = state.account(slot.account);
                let terms = [
                    (
                        AccountTerm::Limit,
                        account.map_or(0, |a| a.limit()),
                        key.scheme.amount(),
                    ),
                    (
                        AccountTerm::Overage,
                        account.map_or(0, |a| a.overage()),
                        key.overage_bytes(),
                    ),
                ];
                for (term, hot, signed) in terms {
                    if hot != signed {
                        return Err(unacceptable(EditedTerms::AccountTerm {
                            key: key.id.clone(),
                            term,
                            hot,
                            signed,
                        }));
                    }
                }
                // What the closed periods used is room the account gives again; more of it in
                // the hot file than the catalog's closed periods hold is room made up. (Less is
                // a reset a crash cut short, which the next `close_periods` completes.)
                let closed = snapshot.periods.get(&key.id).map_or(0, |m| m.closed);
                let forgiven = account.map_or(0, |a| a.forgiven());
                if forgiven > closed {
                    return Err(unacceptable(EditedTerms::Forgiven {
                        key: key.id.clone(),
                        forgiven,
                        closed,
                    }));
                }
                if record.metering() == Metering::Volume {
                    snapshot.total += slot.used;
                    snapshot.live.insert(
                        slot.key,
                        CheckedKey {
                            row: slot.key,
                            used: slot.used,
                            limit: slot.limit,
                            expiry: slot.expiry,
                        },
                    );
                }
            }
            if let (Some((row, used)), Metering::Volume) = (hot.switched_out, record.metering()) {
                if !snapshot.retired.contains_key(&row) {
                    snapshot.total += used;
                    snapshot.retired.insert(row, used);
                }
            }
        }
        Ok(snapshot)
    }

    /// What key row `row` has used now (0 for a key the catalog no longer holds).
    pub(super) fn used(&self, row: u32) -> u64 {
        self.live
            .get(&row)
            .map(|k| k.used)
            .or_else(|| self.retired.get(&row).copied())
            .unwrap_or(0)
    }
}
