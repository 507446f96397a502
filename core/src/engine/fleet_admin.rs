//! Admin through the fleet store: in fleet mode, creating a project and adding a key (or a
//! reserve) are changes appended to the store's admin log (`tollgate_admin`), which every host
//! applies to its own state in the log's order, under its admin lock:
//!
//! - the caller checks the change against its own state first (a name, a key's signature), so a
//!   change refused here is never appended;
//! - it appends the change (one transaction, which notifies channel `tollgate_admin`), then
//!   applies the log up to it, in order, to its own state, and returns the change's own outcome;
//! - every other host's fleet thread applies it when notified (or at its next poll, a second
//!   at most) and publishes it to its pairs as an embedded admin change does;
//! - a host records the last change it applied in its catalog (`fleet_host.admin_seq`), so a
//!   host that joins later, or was down, replays what it missed, in order.
//!
//! A change refused on some host (a rule of its own state) is skipped there, as its caller
//! would have been refused; the log moves on. A host that cannot reach the store refuses a
//! change with [`Error::Unavailable`] and appends nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tollgate_store::{AdminChange, Store};

use super::*;
use crate::license::KeyOrLicense;

/// How many changes one read of the log takes.
const BATCH: i64 = 256;

/// How long a host waits between two reads of the log when no notification came.
pub(super) const POLL_EVERY: Duration = Duration::from_secs(1);

/// One change of the admin log, as the engine writes it (JSON, tagged by `op`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Change {
    /// `Engine::create_project`.
    CreateProject {
        /// The project.
        project: String,
    },
    /// `Engine::add_key`, or with `reserve_only` `Engine::add_reserve`.
    AddKey {
        /// The project.
        project: String,
        /// The key's JSON or the license file's text, as the caller gave it.
        key: String,
        /// Whether it may only become the reserve.
        reserve_only: bool,
    },
}

/// What the engine and its fleet thread share.
pub(super) struct FleetShared {
    /// Where the store is and which host this is.
    pub config: FleetConfig,
    /// The engine, once open: the thread applies the admin log through it.
    pub engine: OnceLock<Weak<Inner>>,
    /// Whether the fleet thread's last round could not reach the store (never set in a
    /// process that does not run the thread).
    pub out_of_reach: AtomicBool,
}

impl FleetShared {
    /// Shared state for `config`, not connected yet.
    pub(super) fn new(config: FleetConfig) -> FleetShared {
        FleetShared {
            config,
            engine: OnceLock::new(),
            out_of_reach: AtomicBool::new(false),
        }
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
    /// [`Engine::create_project`] in fleet mode.
    pub(super) fn fleet_create_project(&self, admin: &Admin, name: &str) -> Result<()> {
        if admin.catalog.project(name)?.is_some() {
            return Err(Error::ProjectExists { name: name.into() });
        }
        let change = Change::CreateProject {
            project: name.to_owned(),
        };
        self.submit(admin, &change).map(drop)
    }

    /// [`Engine::add_key`] and [`Engine::add_reserve`] in fleet mode.
    pub(super) fn fleet_admit(
        &self,
        admin: &Admin,
        project: &str,
        key: KeyOrLicense,
        reserve_only: bool,
    ) -> Result<KeyAdded> {
        let text = document_text(&key);
        // Refused here, never appended: a signature this state does not trust.
        self.vet(admin, key)?;
        self.fleet_add_key(admin, project, text, reserve_only)
    }

    /// Appends the addition of a vetted key document (`text`) to `project` and applies it.
    pub(super) fn fleet_add_key(
        &self,
        admin: &Admin,
        project: &str,
        text: String,
        reserve_only: bool,
    ) -> Result<KeyAdded> {
        // Refused here, never appended: an unknown project.
        project_row(&admin.catalog, project)?;
        let change = Change::AddKey {
            project: project.to_owned(),
            key: text,
            reserve_only,
        };
        match self.submit(admin, &change)? {
            Some(added) => Ok(added),
            None => Err(Error::Unavailable),
        }
    }

    /// Appends `change` to the store's admin log and applies the log up to it here; returns the
    /// change's own outcome (a key's placement for a key).
    fn submit(&self, admin: &Admin, change: &Change) -> Result<Option<KeyAdded>> {
        let shared = self.inner.fleet_shared().ok_or(Error::Unavailable)?;
        let mut store = connect(&shared.config)?;
        let text = serde_json::to_string(change).expect("a change serializes");
        let seq = store
            .append_admin(&shared.config.host, &text)
            .map_err(|_| Error::Unavailable)?;
        match self.apply_log(admin, &mut store, Some(seq))? {
            Some(outcome) => outcome,
            // Another process applied it meanwhile (the log is applied under the admin lock,
            // which this caller holds: only before it took it, which is impossible).
            None => Ok(None),
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
    ) -> Result<Option<Result<Option<KeyAdded>>>> {
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

    /// Applies one change of the log to this state.
    fn apply_change(&self, admin: &Admin, text: &str) -> Result<Option<KeyAdded>> {
        let change: Change = serde_json::from_str(text).map_err(|e| Error::InvalidArgument {
            field: "fleet admin change",
            reason: format!("{e}: {text}"),
        })?;
        match change {
            Change::CreateProject { project } => {
                self.create_project_locked(admin, &project).map(|()| None)
            }
            Change::AddKey {
                project,
                key,
                reserve_only,
            } => {
                let key = KeyOrLicense::parse(&key)?;
                let key = self.vet(admin, key)?;
                self.admit_locked(admin, &project, key, reserve_only)
                    .map(Some)
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
        let Ok(mut store) = connect(&shared.config) else {
            return Ok(());
        };
        let admin = self.admin()?;
        match self.apply_log(&admin, &mut store, None) {
            Ok(_) | Err(Error::Unavailable) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The text of a key document as the admin log carries it: the key's JSON, or the license
/// file's.
pub(super) fn document_text(document: &KeyOrLicense) -> String {
    match document {
        KeyOrLicense::Key(key) => key.to_json(),
        KeyOrLicense::License(license) => license.to_json(),
    }
}

/// A connection of its own to the store, for an admin call.
fn connect(config: &FleetConfig) -> Result<Store> {
    let mut store = Store::connect(&config.store).map_err(|_| Error::Unavailable)?;
    store.migrate().map_err(|_| Error::Unavailable)?;
    Ok(store)
}

/// Whether applying a change failed for a reason that may pass (the admin lock, the disk, the
/// catalog): the log stops there and resumes from the same change.
fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::AdminLockBusy { .. } | Error::Io { .. } | Error::Store { .. } | Error::Unavailable
    )
}
