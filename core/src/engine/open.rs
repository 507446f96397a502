//! Opening a state directory: creating or reading its files, completing what a crash left
//! half-done, and starting the engine's background threads.

use super::*;

/// Completes every admin change a crash left half-done: pairs holding pending keys, and with
/// `all`, pairs whose hot generation the catalog has not caught up with or whose switch is not
/// in the audit log. Needs the admin lock.
pub(super) fn repair(state: &StateFile, catalog: &Catalog, all: bool) -> Result<()> {
    for (project, pair) in catalog.all_pairs(!all)? {
        let hot = state.record(pair.record).state();
        let unlogged_switch = match hot.switched_out {
            Some((row, _)) => !catalog.switch_logged(row)?,
            None => false,
        };
        if !all || hot.epoch != pair.synced_epoch || unlogged_switch {
            sync_pair(state, catalog, &project, pair)?;
        }
    }
    Ok(())
}

pub(super) fn now_text() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// What [`open_locked`] opened.
pub(super) struct Opened {
    pub(super) state: StateFile,
    pub(super) holders: Holders,
    pub(super) slots: LeaseSlots,
    pub(super) catalog: Catalog,
    pub(super) installation: ratchet::Installation,
    pub(super) state_id: String,
    /// The latest time seen an accepted clock gave up.
    pub(super) given_up: Option<u32>,
}

/// Creates or opens the files of a state directory; the caller holds the admin lock.
pub(super) fn open_locked(
    dir: &Path,
    options: &Options,
    installation: ratchet::Installation,
    accept: ratchet::Accept,
) -> Result<Opened> {
    let modes = Modes::new(options.shared_group);
    let hot = dir.join(HOT_FILE);
    let catalog_path = dir.join(CATALOG_FILE);
    let corrupt = |path: &Path, reason: Corruption| Error::CorruptState {
        path: path.to_owned(),
        reason,
    };
    // The format version the hot file had, when this open upgraded it.
    let mut upgraded_from = None;
    let catalog = match (hot.exists(), catalog_path.exists()) {
        (false, false) => {
            // SQLite creates a file with the umask's mode, and its journal files with the
            // database's: the file is made first, with the state's mode.
            files::create_new(&catalog_path, modes.file)
                .map_err(|e| Error::io(format!("create {}", catalog_path.display()), e))?;
            let catalog = Catalog::open(&catalog_path, true)?;
            StateFile::create(
                &hot,
                options.capacity,
                OffsetDateTime::now_utc().unix_timestamp() as u64,
                modes.file,
            )?;
            catalog
        }
        (false, true) => {
            let missing = || corrupt(&hot, Corruption::HotFileMissing);
            // Read before `Catalog::open` upgrades the schema: a refused state is left as it was.
            if Catalog::holds_pairs(&catalog_path) == Some(true) {
                return Err(missing());
            }
            let catalog = Catalog::open(&catalog_path, false)?;
            if !catalog.all_pairs(false)?.is_empty() {
                return Err(missing());
            }
            // A creation interrupted between the catalog and the hot file: finish it.
            StateFile::create(
                &hot,
                options.capacity,
                OffsetDateTime::now_utc().unix_timestamp() as u64,
                modes.file,
            )?;
            catalog
        }
        (true, false) => return Err(corrupt(&catalog_path, Corruption::CatalogMissing)),
        (true, true) => {
            // The hot file first: a damaged one is refused before the catalog's schema is
            // upgraded, so a refused state is left exactly as it was.
            state_file::check(&hot)?;
            let catalog = Catalog::open(&catalog_path, false)?;
            // A state written by a build with the 64-bit cursor is rewritten once, here, under
            // the admin lock, keeping every counter.
            upgraded_from = state_file::upgrade(&hot)?;
            catalog
        }
    };
    let state = StateFile::open(&hot)?;
    for (project, pair) in catalog.all_pairs(false)? {
        let record = pair.record;
        if record >= state.capacity() {
            return Err(corrupt(
                &hot,
                Corruption::RecordBeyondCapacity {
                    record,
                    capacity: state.capacity(),
                },
            ));
        }
        let hot_pair = state.record(record);
        let metering = metering_of(pair.class);
        match hot_pair.owner() {
            0 => hot_pair.claim(owner_tag(project.id), metering),
            owner if owner == owner_tag(project.id) => {}
            owner => {
                return Err(corrupt(
                    &hot,
                    Corruption::RecordOwner {
                        record,
                        owner,
                        project: project.id,
                    },
                ))
            }
        }
        if hot_pair.metering() != metering {
            // A state written before seat gauges existed: its seat pairs never moved their
            // cursor, so reading it as a gauge changes nothing.
            hot_pair.set_metering(metering);
        }
        hot_pair
            .check()
            .map_err(|damage| corrupt(&hot, Corruption::Record { record, damage }))?;
    }
    #[cfg(not(loom))]
    fleet::check_host(&catalog, options.fleet.as_ref())?;
    accounts::give_keys_accounts(&state, &catalog, upgraded_from)?;
    repair(&state, &catalog, true)?;
    let holders_path = dir.join(HOLDERS_FILE);
    if !holders_path.exists() {
        if catalog.flag("seat_holders")? {
            return Err(corrupt(&holders_path, Corruption::HoldersMissing));
        }
        Holders::create(&holders_path, HOLDER_CAPACITY, modes.file)?;
        catalog.set_flag("seat_holders")?;
    }
    let holders = Holders::open(&holders_path)?;
    let state_id = catalog.state_id()?;
    // Everything is verified before the time seen is recorded: a state refused as tampered is
    // left as it is. An edited time is refused after the ratchet's problems, which explain
    // more (a changed state id fails both MACs); an accepted rollback accepts it too, keeping
    // the installation's copy, and says so in its audit entry.
    let (latest, edited_time) = clock_rollback::recorded(&catalog, &installation, &state_id)?;
    let (accept, given_up) = match accept {
        ratchet::Accept::Clock { to, .. } if latest > to && edited_time.is_none() => {
            (ratchet::Accept::Clock { from: latest, to }, Some(latest))
        }
        ratchet::Accept::Clock { .. } => (ratchet::Accept::Nothing, None),
        other => (other, None),
    };
    ratchet::verify_and_ratchet(
        &installation,
        dir,
        &state,
        &catalog,
        accept,
        edited_time,
        None,
    )?;
    let latest = match accept {
        ratchet::Accept::Clock { to, .. } => {
            clock_rollback::lower(&catalog, &installation, &state_id, to)?;
            to
        }
        _ => latest,
    };
    clock_rollback::watch_at_open(
        &catalog,
        &installation,
        &state_id,
        &options.clock,
        options.clock_tolerance,
        latest,
    )?;
    trust::record_at_open(&catalog, &options.trusted_keys)?;
    let reclaimed = holders.reclaim_dead(&state);
    seats::log_reclaimed(&catalog, &reclaimed)?;
    let slots = LeaseSlots::open_or_create(&dir.join(SLOTS_FILE), modes.file)?;
    slots.reclaim_dead(&state);
    pools::repair_assignments(&catalog)?;
    Ok(Opened {
        state,
        holders,
        slots,
        catalog,
        installation,
        state_id,
        given_up,
    })
}

/// The background flush thread of [`Options::flush_interval`].
pub(super) fn start_flusher(state: Arc<StateFile>, every: Duration) -> std::io::Result<Worker> {
    Worker::spawn("tollgate-flush", move |stop| {
        while !stop.requested() {
            stop.wait(every);
            let _ = state.flush();
        }
    })
}

/// The clock watch: once a second, checks the clock for a rollback (see `engine::clock_rollback`).
pub(super) fn start_clock_watch(
    mut watch: clock_rollback::Watch,
    events: Arc<HotQueue>,
) -> std::io::Result<Worker> {
    Worker::spawn("tollgate-clock", move |stop| {
        while !stop.requested() {
            stop.wait(CLOCK_WATCH_PERIOD);
            watch.check(&events);
        }
    })
}

/// How often the clock watch looks at the clock.
pub(super) const CLOCK_WATCH_PERIOD: Duration = Duration::from_secs(1);
