//! Admin through the fleet store: in fleet mode, every admin change of a project's keys, groups,
//! pools and instances (see [`changes`]) is appended to the store's admin log
//! (`tollgate_admin`), which every host applies to its own state in the log's order, under its
//! admin lock:
//!
//! - the caller first applies what the log holds that it has not applied yet, then checks the
//!   change against its own state (a name, a key's signature, a free license), so a change
//!   refused here is never appended;
//! - it appends the change (one transaction, which notifies channel `tollgate_admin`), then
//!   applies the log up to it, in order, to its own state, and returns the change's own outcome;
//! - every other host's fleet thread applies it when notified (or at its next poll, a second
//!   at most) and publishes it to its pairs as an embedded admin change does;
//! - a host records the last change it applied in its catalog (`fleet_host.admin_seq`), so a
//!   host that joins later, or was down, replays what it missed, in order.
//!
//! Every host reaches the same state from the same log: what the embedded call makes up when it
//! runs (the engine clock's time, the wall-clock time it records, a purchase's number, an
//! assignment's serial) is decided once by the caller and carried in the change.
//!
//! A change refused on some host (a rule of its own state) is skipped there, as its caller
//! would have been refused; the log moves on. Two changes that race (two hosts assigning the
//! last free license) are both appended; the log's order decides, and the later one is refused
//! on every host alike, its caller included. A host that cannot reach the store refuses a change
//! with [`Error::Unavailable`] and appends nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use tollgate_store::{AdminChange, LeaseTerms, Store};

use super::*;

mod changes;

pub(super) use changes::document_text;
use changes::{Change, Outcome};

/// How many changes one read of the log takes.
const BATCH: i64 = 256;

/// How long a host waits between two reads of the log when no notification came.
pub(super) const POLL_EVERY: Duration = Duration::from_secs(1);

/// What the engine and its fleet thread share.
pub(super) struct FleetShared {
    /// Where the store is and which host this is.
    pub config: FleetConfig,
    /// The engine, once open: the thread applies the admin log through it.
    pub engine: OnceLock<Weak<Inner>>,
    /// Whether the fleet thread's last round could not reach the store (never set in a
    /// process that does not run the thread).
    pub out_of_reach: AtomicBool,
    /// Whether a connection of this engine brought the store's schema up to date.
    migrated: AtomicBool,
}

impl FleetShared {
    /// Shared state for `config`, not connected yet.
    pub(super) fn new(config: FleetConfig) -> FleetShared {
        FleetShared {
            config,
            engine: OnceLock::new(),
            out_of_reach: AtomicBool::new(false),
            migrated: AtomicBool::new(false),
        }
    }

    /// A connection of its own to the store with lease terms `terms`; the engine's first
    /// connection applies the store's migrations, the others find them applied.
    pub(super) fn connect(&self, terms: LeaseTerms) -> tollgate_store::Result<Store> {
        let mut store = Store::connect_with(&self.config.store, terms)?;
        // Relaxed (load and store): two first connections racing both migrate, which the
        // store makes safe (one transaction under a lock); the flag guards no other data.
        if !self.migrated.load(Ordering::Relaxed) {
            store.migrate()?;
            self.migrated.store(true, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// A connection for an admin call (the default lease terms: it takes no lease).
    fn admin_connection(&self) -> Result<Store> {
        self.connect(LeaseTerms::default())
            .map_err(|_| Error::Unavailable)
    }

    /// Whether the fleet thread's last round could not reach the store.
    pub(super) fn out_of_reach(&self) -> bool {
        // Relaxed: a hint for choosing between two refusals; it guards no data.
        self.out_of_reach.load(Ordering::Relaxed)
    }

    /// Records whether the fleet thread's round could not reach the store.
    pub(super) fn set_out_of_reach(&self, out: bool) {
        // Relaxed: see `out_of_reach`.
        self.out_of_reach.store(out, Ordering::Relaxed);
    }
}

impl Inner {
    /// The fleet's shared state, for a fleet engine.
    pub(super) fn fleet_shared(&self) -> Option<&FleetShared> {
        self.fleet.as_ref().map(|fleet| &*fleet.shared)
    }
}

impl Engine {
    /// Makes a change through the store's admin log: applies what the log holds that this state
    /// has not applied yet, lets `make` check the change against this state (and take what it
    /// needs from the store) and return it, appends it, then applies the log up to it. Returns
    /// the change's own outcome here: a refusal of `make` appends nothing; a refusal when it is
    /// applied (a change appended first by another host won a race) is every host's.
    fn submit(
        &self,
        admin: &Admin,
        make: impl FnOnce(&mut Store) -> Result<Change>,
    ) -> Result<Outcome> {
        let shared = self.inner.fleet_shared().ok_or(Error::Unavailable)?;
        let mut store = shared.admin_connection()?;
        self.apply_log(admin, &mut store, None)?;
        let change = make(&mut store)?;
        let text = serde_json::to_string(&change).expect("a change serializes");
        let seq = store
            .append_admin(&shared.config.host, &text)
            .map_err(|_| Error::Unavailable)?;
        match self.apply_log(admin, &mut store, Some(seq))? {
            Some(outcome) => outcome,
            // Applied by no one else: this caller holds the admin lock, under which the log is
            // applied, since before it appended. Only a log that lost the change ends here.
            None => Err(Error::Unavailable),
        }
    }

    /// Applies the changes of the admin log after the last one this state applied, in order,
    /// up to `until` (or all). Returns the outcome of change `until` when it applied it.
    /// Changes refused here are skipped; a failure to read the store or write the catalog
    /// stops it, to resume from the same change.
    pub(super) fn apply_log(
        &self,
        admin: &Admin,
        store: &mut Store,
        until: Option<i64>,
    ) -> Result<Option<Result<Outcome>>> {
        let mut seq = admin.catalog.fleet_admin_seq()?;
        loop {
            let changes = store
                .admin_since(seq, BATCH)
                .map_err(|_| Error::Unavailable)?;
            if changes.is_empty() {
                return Ok(None);
            }
            for AdminChange {
                seq: at, change, ..
            } in changes
            {
                if until.is_some_and(|until| at > until) {
                    return Ok(None);
                }
                let outcome = self.apply_change(admin, &change);
                if let Err(e) = &outcome {
                    if is_transient(e) {
                        return Err(outcome.expect_err("checked"));
                    }
                }
                admin.catalog.set_fleet_admin_seq(at)?;
                seq = at;
                if until == Some(at) {
                    return Ok(Some(outcome));
                }
            }
        }
    }

    /// The fleet thread's way into the engine: applies the admin log when the engine is still
    /// open and the log holds changes after `applied` (this state's position, read by the
    /// thread from its own catalog connection).
    ///
    /// The thread holds the engine only while it applies a change, not to look: an engine
    /// dropped while the thread holds it is dropped by the thread, and a process that exits
    /// meanwhile cuts the close short (its leases then expire, and what it drew stays in doubt
    /// until the host comes back and settles it).
    pub(super) fn apply_log_from(
        shared: &FleetShared,
        store: &mut Store,
        applied: i64,
    ) -> Result<()> {
        let news = store
            .admin_since(applied, 1)
            .map_err(|_| Error::Unavailable)?;
        if news.is_empty() {
            return Ok(());
        }
        let Some(inner) = shared.engine.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let engine = Engine { inner };
        let admin = engine.admin()?;
        engine.apply_log(&admin, store, None).map(drop)
    }

    /// At open: applies what the log holds that this state has not applied yet, so a host
    /// knows the fleet's projects and keys before its first grant. Out of reach, it is left to
    /// the fleet thread.
    pub(super) fn catch_up_fleet(&self) -> Result<()> {
        let Some(shared) = self.inner.fleet_shared() else {
            return Ok(());
        };
        let _ = shared.engine.set(Arc::downgrade(&self.inner));
        let Ok(mut store) = shared.admin_connection() else {
            return Ok(());
        };
        let admin = self.admin()?;
        match self.apply_log(&admin, &mut store, None) {
            Ok(_) | Err(Error::Unavailable) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether applying a change failed for a reason that may pass (the admin lock, the disk, the
/// catalog): the log stops there and resumes from the same change.
fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::AdminLockBusy { .. } | Error::Io { .. } | Error::Store { .. } | Error::Unavailable
    )
}
