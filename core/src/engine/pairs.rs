//! The admin side of a slot pair: admitting a key, looking up rows, and bringing the catalog
//! in line with the hot state (a switch to log, a change to complete).

use super::*;

/// The next generation for a key admitted to a pair (rules R5–R7 in docs/rules.md), or the rule it
/// breaks.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_admit(
    project: &str,
    state: &PairState,
    keys: &HashMap<u32, KeyRow>,
    new: &Key,
    row: u32,
    reserve_only: bool,
    used_up: bool,
    now: i64,
    taken: bool,
) -> Result<NextGen> {
    let Some(active) = state.active else {
        if reserve_only {
            return Err(Error::NoActiveKey);
        }
        rules::admit_new(new, now, taken)?;
        return Ok(NextGen {
            active: Some(live_key(row, new)),
            reserve: None,
            retired: None,
            switches: state.switches,
        });
    };
    let reserve = state.reserve.map(|r| key_of(keys, r.key)).transpose()?;
    rules::admit_reserve(project, key_of(keys, active.key)?, reserve, new, now, taken)?;
    // `used_up`: the Active key's account has nothing more for this pair (never for a seat key,
    // whose gauge goes down again).
    let spent = used_up || i64::from(active.expiry) <= now;
    Ok(if spent {
        // The Active key can meter nothing more: the new key takes over at once.
        NextGen {
            active: Some(live_key(row, new)),
            reserve: None,
            retired: Some((active.key, active.used)),
            switches: state.switches + 1,
        }
    } else {
        NextGen {
            active: Some(active),
            reserve: Some(live_key(row, new)),
            retired: None,
            switches: state.switches,
        }
    })
}

/// Whether `key`'s id is taken for a project with `pairs`: by a different document under the
/// same id anywhere, or by this very document in one of the project's own pairs. The same
/// document may sit in the pairs of many projects: they all draw from its one account.
pub(super) fn id_taken_for(catalog: &Catalog, key: &Key, pairs: &[PairRow]) -> Result<bool> {
    if key.scheme == crate::key::Scheme::PerInstance {
        // A per-instance key licenses one instance: held by another pair, it is taken.
        let held = catalog
            .key_rows_by_id(&key.id)?
            .iter()
            .any(|u| u.state == "live" || u.state == "pending");
        if held {
            return Ok(true);
        }
    }
    Ok(catalog
        .key_uses(&key.id)?
        .iter()
        .any(|(record, used)| used != key || pairs.iter().any(|p| p.record == *record)))
}

/// `next` with the keys of row `row` drawing from account `account`.
pub(super) fn with_account(mut next: NextGen, row: u32, account: u32) -> NextGen {
    for live in [&mut next.active, &mut next.reserve].into_iter().flatten() {
        if live.key == row {
            live.account = account;
        }
    }
    next
}

pub(super) fn live_key(row: u32, key: &Key) -> LiveKey {
    LiveKey {
        key: row,
        account: 0,
        limit: key.scheme.amount(),
        used: 0,
        expiry: key.expiry_secs(),
        grace_days: key.grace_days_hot(),
    }
}

/// Where the key of catalog row `row` is in a pair whose hot state is `state`, and what it used
/// there: from the hot state while it is in a slot or was just switched out, else from the
/// catalog. `None` for a pending key, which was never added.
pub(super) fn key_status(state: &PairState, row: u32, key: &KeyRow) -> Option<(KeyStatus, u64)> {
    if let Some(a) = state.active.filter(|a| a.key == row) {
        Some((KeyStatus::Active, a.used))
    } else if let Some(r) = state.reserve.filter(|r| r.key == row) {
        Some((KeyStatus::Reserved, r.used))
    } else if let Some((_, used)) = state.switched_out.filter(|s| s.0 == row) {
        Some((KeyStatus::Retired, used))
    } else {
        match key.state.as_str() {
            "retired" => Some((KeyStatus::Retired, key.final_used.unwrap_or(0))),
            "removed" => Some((KeyStatus::Removed, 0)),
            _ => None,
        }
    }
}

pub(super) fn key_of(keys: &HashMap<u32, KeyRow>, row: u32) -> Result<&Key> {
    keys.get(&row)
        .map(|k| &k.key)
        .ok_or_else(|| Error::CorruptState {
            path: PathBuf::from(CATALOG_FILE),
            reason: Corruption::UnknownKeyRow { row },
        })
}

pub(super) fn project_row(catalog: &Catalog, name: &str) -> Result<ProjectRow> {
    catalog
        .project(name)?
        .ok_or_else(|| Error::ProjectNotFound {
            name: name.to_owned(),
        })
}

pub(super) fn data_volume_pair(catalog: &Catalog, project: &ProjectRow) -> Result<PairRow> {
    catalog
        .pair(project.id, LicenseClass::DataVolume)?
        .ok_or_else(|| Error::CorruptState {
            path: PathBuf::from(CATALOG_FILE),
            reason: Corruption::NoDataVolumePair {
                project: project.name.clone(),
            },
        })
}

/// How a pair of `class` meters.
pub(super) fn metering_of(class: LicenseClass) -> Metering {
    match class {
        LicenseClass::DataVolume => Metering::Volume,
        _ => Metering::Seats,
    }
}

/// The non-zero tag a record carries for its owning project.
pub(super) fn owner_tag(project: i64) -> u32 {
    u32::try_from(project).unwrap_or(u32::MAX)
}

/// Records in the catalog what the hot state did since the last admin change of a pair (a
/// switch's final usage and its audit entry), and completes an admin change a crash interrupted
/// after it published. Returns the switch recorded, if the current generation made one.
pub(super) fn sync_pair(
    state: &StateFile,
    catalog: &Catalog,
    project: &ProjectRow,
    pair: PairRow,
) -> Result<Option<(u32, u64)>> {
    let hot = state.record(pair.record).state();
    // As in `finish_change`: the hot file is on disk before the catalog copies from it.
    state.flush_record(pair.record)?;
    let tx = catalog.begin()?;
    let changed = Catalog::sync_pair(&tx, pair.record, &hot, &now_text())?;
    if changed && hot.epoch != pair.synced_epoch {
        let detail = format!(
            "{} pair brought in line with hot-state generation {}",
            pair.class, hot.epoch
        );
        Catalog::append_events_in(
            &tx,
            &[(project.name.clone(), EventKind::Recovered { detail })],
        )?;
    }
    log_switch(&tx, catalog, project, &hot)?;
    tx.commit().map_err(Error::store("commit pair sync"))?;
    Ok(hot.switched_out)
}

/// Records a switch the hot path made since the last sync, and nothing else: the final usage of
/// the key it retired and its audit entry. Used while an admin change has a pending key that a
/// full sync would drop. Returns the switch recorded.
pub(super) fn record_switch(
    state: &StateFile,
    catalog: &Catalog,
    project: &ProjectRow,
    record: u32,
) -> Result<Option<(u32, u64)>> {
    let hot = state.record(record).state();
    if let Some((row, used)) = hot.switched_out {
        state.flush_record(record)?;
        let tx = catalog.begin()?;
        Catalog::retire_key(&tx, row, used, &now_text())?;
        log_switch(&tx, catalog, project, &hot)?;
        tx.commit().map_err(Error::store("commit switch"))?;
    }
    Ok(hot.switched_out)
}

/// Appends the audit entry of the current generation's switch unless the dispatcher of the
/// process that made it (or an earlier repair) already did: a process killed right after a
/// switch loses its queued event, and this puts it back, exactly once.
pub(super) fn log_switch(
    tx: &rusqlite::Transaction<'_>,
    catalog: &Catalog,
    project: &ProjectRow,
    hot: &PairState,
) -> Result<()> {
    let (Some((from, _)), Some(to), Some(reason)) =
        (hot.switched_out, hot.active, hot.switch_reason)
    else {
        return Ok(());
    };
    if Catalog::claim_switch(tx, from)? {
        let event = EventKind::Switched {
            from: catalog.key_id(from)?,
            to: catalog.key_id(to.key)?,
            reason,
        };
        Catalog::append_events_in(tx, &[(project.name.clone(), event)])?;
    }
    Ok(())
}
