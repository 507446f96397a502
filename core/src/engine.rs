//! The engine: opening a state directory, projects, admin changes and the hot-path handle.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use time::OffsetDateTime;

mod accounts;
mod activation;
mod admin_lock;
mod checkpoint;
mod clock;
mod groups;
mod lifetime;
mod pools;
mod renewal;
mod seats;
mod trust;

pub use accounts::{AccountUsage, KeyHolder};
pub use activation::{Activated, ActivatedBulk, ActivationSlot, Activator, MAX_ACTIVATION_CODE};
pub(crate) use checkpoint::Checkpoint;
pub use groups::{BulkOutcome, BulkTarget, Group};
pub use lifetime::LifetimeUsage;
pub use pools::InstanceHandle;
pub use renewal::{
    manual_renewal_message, Renewal, RenewalState, RenewalStatus, Renewed, Renewer,
    DEFAULT_RENEWAL_CHECK, DEFAULT_RENEWAL_LEAD, DEFAULT_RENEWAL_RETRY,
};
pub use seats::{SeatHandle, SeatUsage, SeatsReclaimed};
pub use trust::TrustedKey;
use trust::Vetted;

use crate::catalog::{Catalog, KeyRow, PairRow, ProjectRow};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{
    Dispatcher, Event, EventKind, HotQueue, RemovalReason, Subscribers, Subscription,
};
use crate::files::{self, Modes};
use crate::holders::{Holders, Process, HOLDER_CAPACITY};
use crate::key::{check_name, rfc3339, Key, LicenseClass};
use crate::license::{KeyOrLicense, VendorPublic};
use crate::rules;
use crate::slot::{
    AccountRecord, Accounts, LiveKey, Metering, Mode, NextGen, PairEvent, PairEvents, PairRecord,
    PairState, SwitchReason,
};
use crate::state_file::{self, StateFile, DEFAULT_CAPACITY};
use crate::view::{self, PairView, ProjectView, Role, SlotContent};
use crate::worker::Worker;

pub(crate) const HOT_FILE: &str = "hot.tgs";
const CATALOG_FILE: &str = "catalog.db";
const LOCK_FILE: &str = "admin.lock";
const HOLDERS_FILE: &str = "seats.tgs";

/// The default [`Options::checkpoint_interval`].
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// The default [`Options::clock_tolerance`]: generous enough for any time-sync correction.
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(300);

/// How to open a state directory.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of slot-pair records when the state is created (each project uses one per license
    /// class it holds). Ignored when opening an existing state.
    pub capacity: u32,
    /// If set, a background thread calls [`Engine::flush`] at this interval.
    pub flush_interval: Option<Duration>,
    /// The clock expiry is judged by.
    pub clock: Clock,
    /// How far the clock may be set back before it counts as a rollback: a `clock_rolled_back`
    /// event, at open or while open. Expiry is always judged by the latest time seen, which the
    /// state keeps across restarts.
    pub clock_tolerance: Duration,
    /// Capacity of the hot-path event queue (rounded up to a power of two); an event that finds
    /// no free slot is dropped and counted in [`Engine::dropped_events`], the hot path never
    /// waits for the dispatcher.
    pub event_queue: usize,
    /// Where this installation keeps the key of its checkpoint MACs and the anchors that detect
    /// a state directory restored from a copy (see `engine::checkpoint`); `None` is
    /// `$TOLLGATE_INSTALLATION`, else `$XDG_STATE_HOME/tollgate`, else `~/.local/state/tollgate`.
    pub installation_dir: Option<PathBuf>,
    /// The least time between two usage checkpoints made by [`Engine::flush`] (every open makes
    /// one). A checkpoint costs a catalog commit and an anchor write, milliseconds; usage since
    /// the last checkpoint is not anchored against a restored copy.
    pub checkpoint_interval: Duration,
    /// Vendor public keys to trust, recorded in the state at open (see [`Engine::trust`]): with
    /// any trusted key, every key added, offline or online, must be signed by one. Recorded
    /// keys are kept, so opening later without them trusts them still. Empty is development
    /// mode, unless the state already trusts keys.
    pub trusted_keys: Vec<VendorPublic>,
    /// Online renewal of keys with an activation code, by the vendor's activation service (see
    /// [`Renewal`]); `None`, the default, renews nothing. [`Engine::enable_renewal`] turns it
    /// on after open.
    pub renewal: Option<Renewal>,
    /// Whether the accounts of one group share the state: the directories the engine creates
    /// (the state directory, the installation directory) are then `0770` and their files
    /// `0660`, and an installation directory of one of this user's groups that the group may
    /// write is accepted. `false`, the default, is `0700` and `0600`: the state is this user's
    /// alone. The modes are set whatever the umask; existing files keep theirs.
    pub shared_group: bool,
    /// How long opening the state and each admin change (creating a project, adding a key, …)
    /// wait for the admin lock while another process, or another thread of this one, holds it
    /// for its own change; then they fail with [`Error::AdminLockBusy`] and change nothing.
    /// `None`, the default, waits as long as it takes. Metering never takes the lock.
    pub admin_lock_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: DEFAULT_CAPACITY,
            flush_interval: None,
            clock: Clock::system(),
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
            event_queue: 16_384,
            installation_dir: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            trusted_keys: Vec::new(),
            renewal: None,
            shared_group: false,
            admin_lock_timeout: None,
        }
    }
}

/// Usage of a project's data-volume slot pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Bytes charged to the Active key.
    pub active_used: u64,
    /// The Active key's limit (0 without a key).
    pub active_limit: u64,
    /// Bytes charged to the Reserved key (0 until it becomes Active).
    pub reserved_used: u64,
    /// The Reserved key's limit (0 without one).
    pub reserved_limit: u64,
    /// Whether a Reserved key is present.
    pub has_reserved: bool,
    /// How many Active→Reserved switches this pair has made.
    pub switches: u64,
}

impl From<&PairState> for Usage {
    fn from(state: &PairState) -> Usage {
        Usage {
            active_used: state.active.map_or(0, |a| a.used),
            active_limit: state.active.map_or(0, |a| a.limit),
            reserved_used: state.reserve.map_or(0, |r| r.used),
            reserved_limit: state.reserve.map_or(0, |r| r.limit),
            has_reserved: state.reserve.is_some(),
            switches: u64::from(state.switches),
        }
    }
}

/// Where a key is or was. Serialized as [`KeyStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// In the Active slot.
    Active,
    /// In the Reserved slot.
    Reserved,
    /// Used up, expired or replaced: its usage is final.
    Retired,
    /// Removed from the Reserved slot before use.
    Removed,
}

impl KeyStatus {
    /// The status as JSON outputs and metrics labels spell it: `active`, `reserved`, `retired`
    /// or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Reserved => "reserved",
            KeyStatus::Retired => "retired",
            KeyStatus::Removed => "removed",
        }
    }
}

impl Serialize for KeyStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A key with its usage, as [`Engine::keys`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyUsage {
    /// The key.
    pub key: Key,
    /// Where it is.
    pub status: KeyStatus,
    /// Amount this project charged to it (bytes for data-volume keys).
    pub used: u64,
    /// The key's account across every project that holds or held it (data-volume keys).
    pub account: Option<AccountUsage>,
}

/// The result of adding a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyAdded {
    /// The slot the key took.
    pub role: Role,
    /// Set when the key went straight to Active because the previous Active key was used up or
    /// expired: the key that it replaced.
    pub switched_from: Option<String>,
    /// The pop-up text of rule R28 in docs/rules.md, for a key that became the reserve.
    pub message: Option<String>,
}

/// The result of replacing an Active key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReplaced {
    /// The key that was Active.
    pub old: String,
    /// The reserve that was removed because it expires before the new key's term ends.
    pub removed_reserve: Option<String>,
}

/// An open state directory. Cheap to clone, `Send + Sync`; every clone, thread and process
/// that opens the same directory sees one set of counters.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Inner {
    /// A hot-path refusal as the caller gets it: `CorruptState` instead when the refusal comes
    /// from a state file another process truncated under us (its records then read as empty).
    #[cold]
    #[inline(never)]
    fn refusal(&self, error: Error) -> Error {
        match self.intact() {
            Ok(()) => error,
            Err(corrupt) => corrupt,
        }
    }

    /// `Ok` unless another process truncated the state file or the seat-holder table while
    /// this one had it mapped (see `sigbus`).
    fn intact(&self) -> Result<()> {
        self.state.intact()?;
        self.holders.intact()
    }
}

struct Inner {
    dir: PathBuf,
    state: Arc<StateFile>,
    holders: Arc<Holders>,
    installation: checkpoint::Installation,
    checkpoint_interval: Duration,
    /// When this engine last made a usage checkpoint (Unix seconds of its clock).
    last_checkpoint: std::sync::atomic::AtomicU64,
    reclaimer: seats::Reclaimer,
    me: Process,
    admin: Mutex<Admin>,
    /// [`Options::admin_lock_timeout`].
    admin_lock_timeout: Option<Duration>,
    clock: Clock,
    hot_events: Arc<HotQueue>,
    subscribers: Arc<Subscribers>,
    _dispatcher: Dispatcher,
    _flusher: Option<Worker>,
    _clock_watch: Worker,
    renewal: Mutex<Option<renewal::Renewals>>,
}

/// The admin side: the catalog connection and the cross-process lock file.
struct Admin {
    catalog: Catalog,
    lock: File,
}

/// Holds the admin lock: the in-process mutex and an exclusive `flock` on the lock file, which
/// the kernel releases if the process dies, so a killed admin never blocks anyone.
struct AdminGuard<'a> {
    admin: MutexGuard<'a, Admin>,
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        let _ = self.admin.lock.unlock();
    }
}

impl std::ops::Deref for AdminGuard<'_> {
    type Target = Admin;
    fn deref(&self) -> &Admin {
        &self.admin
    }
}

impl Engine {
    /// Opens (creating if needed) the state directory `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the state directory `dir`.
    ///
    /// A hot-state file or catalog that is damaged, truncated, of another format, or present
    /// without its partner is refused with [`Error::CorruptState`] and left untouched; so is a
    /// state file, lock file, installation key or anchor that is a symbolic link, a FIFO or
    /// anything but a regular file. An empty `dir`, or one that is itself a symbolic link, is
    /// [`Error::InvalidArgument`] and creates nothing; links among its parent directories are
    /// followed, and [`Engine::dir`] is the resolved path. The directories and files the engine
    /// creates are private to the user whatever the umask (see [`Options::shared_group`]), and
    /// an installation directory or key that another user owns or others may write is
    /// [`Error::InvalidArgument`].
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        Engine::open_checked(dir.as_ref(), options, checkpoint::Accept::Nothing).map(|(e, _)| e)
    }

    /// Opens a state that [`Engine::open_with`] refused with [`Error::Tampered`] (restored from
    /// an older copy, or its checkpoints edited), because an operator decided to accept it as it
    /// is. The acceptance and what was found go to the audit log.
    pub fn accept_rollback(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        Engine::open_checked(dir.as_ref(), options, checkpoint::Accept::Rollback).map(|(e, _)| e)
    }

    /// Opens `dir` with its latest time seen lowered to the reading of the options' clock
    /// ([`Clock::source`]): the way out of a clock that was once set in the future, after which
    /// every key expiring before that time had expired for good. The decision is audited (a
    /// `clock_accepted` event, in the MAC chain of the checkpoints). Returns the engine and the
    /// latest time seen that was given up, in Unix seconds (`None`: it was not ahead of the
    /// clock, nothing changed). Run it from a process that has not opened the state: a running
    /// engine records the time its own clock holds again.
    pub fn accept_clock(dir: impl AsRef<Path>, options: Options) -> Result<(Engine, Option<u32>)> {
        let to = options.clock.source();
        Engine::open_checked(
            dir.as_ref(),
            options,
            checkpoint::Accept::Clock { from: 0, to },
        )
    }

    fn open_checked(
        dir: &Path,
        options: Options,
        accept: checkpoint::Accept,
    ) -> Result<(Engine, Option<u32>)> {
        let modes = Modes::new(options.shared_group);
        files::check_state_path(dir)?;
        // The installation first: a refused one leaves no state directory behind.
        let installation = checkpoint::Installation::open(
            &checkpoint::installation_dir(options.installation_dir.as_deref())?,
            modes,
        )?;
        let dir = files::state_dir(dir, modes)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = files::open_or_create(&lock_path, modes.file, "the admin lock")?;
        admin_lock::Wait::start(&lock_path, options.admin_lock_timeout).file(&lock)?;
        let opened = open_locked(&dir, &options, installation, accept);
        let _ = lock.unlock();
        let Opened {
            state,
            holders,
            catalog,
            installation,
            state_id,
            given_up,
        } = opened?;
        let holders = Arc::new(holders);
        let me = Process::me()?;
        let state = Arc::new(state);
        let hot_events = Arc::new(HotQueue::new(options.event_queue.max(16)));
        let subscribers = Arc::new(Subscribers::default());
        let mut keeper = clock::Keeper::new(options.clock.clone(), installation.clone(), state_id);
        let dispatcher = Dispatcher::start(
            Arc::clone(&hot_events),
            Arc::clone(&subscribers),
            Catalog::open(&dir.join(CATALOG_FILE), false)?,
            Box::new(move |catalog, expired| keeper.tick(catalog, expired)),
        )
        .map_err(|e| Error::io("start the event dispatcher", e))?;
        let flusher = options
            .flush_interval
            .map(|every| start_flusher(Arc::clone(&state), every))
            .transpose()
            .map_err(|e| Error::io("start the flush thread", e))?;
        let reclaimer = seats::Reclaimer::start(
            Arc::clone(&state),
            Arc::clone(&holders),
            Arc::clone(&hot_events),
        )
        .map_err(|e| Error::io("start the seat reclaimer", e))?;
        let clock_watch = start_clock_watch(
            clock::Watch::new(options.clock.clone(), options.clock_tolerance),
            Arc::clone(&hot_events),
        )
        .map_err(|e| Error::io("start the clock watch", e))?;
        let engine = Engine {
            inner: Arc::new(Inner {
                dir,
                state,
                reclaimer,
                holders,
                installation,
                checkpoint_interval: options.checkpoint_interval,
                last_checkpoint: std::sync::atomic::AtomicU64::new(u64::from(options.clock.now())),
                me,
                admin: Mutex::new(Admin { catalog, lock }),
                admin_lock_timeout: options.admin_lock_timeout,
                clock: options.clock,
                hot_events,
                subscribers,
                _dispatcher: dispatcher,
                _flusher: flusher,
                _clock_watch: clock_watch,
                renewal: Mutex::new(None),
            }),
        };
        if let Some(renewal) = options.renewal {
            engine.enable_renewal(renewal)?;
        }
        Ok((engine, given_up))
    }

    /// Whether `dir` already holds a Tollgate state (either of its files), so a tool can create
    /// one only where none exists.
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        let dir = dir.as_ref();
        dir.join(HOT_FILE).exists() || dir.join(CATALOG_FILE).exists()
    }

    /// The state directory, with links among its parent directories resolved.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a project with an empty data-volume slot pair.
    pub fn create_project(&self, name: &str) -> Result<()> {
        check_name("project name", name)?;
        let admin = self.admin()?;
        if admin.catalog.project(name)?.is_some() {
            return Err(Error::ProjectExists { name: name.into() });
        }
        let tx = admin.catalog.begin()?;
        let id = Catalog::insert_project(&tx, name, &now_text())?;
        let record = self.allocate_pair(&tx, id, LicenseClass::DataVolume)?;
        let events =
            Catalog::append_events_in(&tx, &[(name.to_owned(), EventKind::ProjectCreated)])?;
        tx.commit().map_err(Error::store("commit new project"))?;
        self.inner
            .state
            .record(record)
            .claim(owner_tag(id), Metering::Volume);
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }

    /// Every project name, sorted.
    pub fn projects(&self) -> Result<Vec<String>> {
        let admin = self.inner.admin.lock();
        Ok(admin
            .catalog
            .projects()?
            .into_iter()
            .map(|p| p.name)
            .collect())
    }

    /// Looks a project up once and returns the handle the hot path uses.
    pub fn project(&self, name: &str) -> Result<ProjectHandle> {
        self.inner.intact()?;
        let admin = self.inner.admin.lock();
        let project = project_row(&admin.catalog, name)?;
        let pair = data_volume_pair(&admin.catalog, &project)?;
        Ok(ProjectHandle {
            record: self.inner.state.record_ptr(pair.record),
            index: pair.record,
            clock: self.inner.clock.clone(),
            name: Arc::from(name),
            inner: Arc::clone(&self.inner),
        })
    }

    /// Adds a key to the slot pair of its class: the first key becomes Active, a second one
    /// Reserved under rules R5–R7 in docs/rules.md.
    ///
    /// `key` is a [`Key`] or a signed license file ([`KeyOrLicense`]). Once the state trusts a
    /// vendor key ([`Engine::trust`]), every key must come signed by a trusted key, else
    /// [`Error::BadSignature`]; the same holds for every call that adds a key.
    pub fn add_key(&self, project: &str, key: impl Into<KeyOrLicense>) -> Result<KeyAdded> {
        self.admit(project, key.into(), false)
    }

    /// Adds `key` as a reserve (the activation task of rule R8 in docs/rules.md): it never becomes
    /// the first key of a pair; a project whose only Active keys are of another class gets
    /// `SchemeMismatch`.
    pub fn add_reserve(&self, project: &str, key: impl Into<KeyOrLicense>) -> Result<KeyAdded> {
        self.admit(project, key.into(), true)
    }

    fn admit(&self, project: &str, key: KeyOrLicense, reserve_only: bool) -> Result<KeyAdded> {
        let admin = self.admin()?;
        let key = self.vet(&admin, key)?;
        self.admit_locked(&admin, project, key, reserve_only)
    }

    /// [`Engine::admit`] for a caller that holds the admin lock.
    ///
    /// A key id names one key document, and one quota account. Any key (first, reserve, or
    /// the activation task's, which adds one key to every SVM of a cluster) may be the very
    /// document another project holds, never one this project holds already, and never a
    /// different document under a used id.
    fn admit_locked(
        &self,
        admin: &Admin,
        project: &str,
        key: Vetted,
        reserve_only: bool,
    ) -> Result<KeyAdded> {
        let key = key.into_key();
        let now = self.now();
        let project = project_row(&admin.catalog, project)?;
        let class = key.scheme.class();
        let pairs = admin.catalog.pairs(project.id)?;
        let taken = id_taken_for(&admin.catalog, &key, &pairs)?;
        let pair = match pairs.into_iter().find(|p| p.class == class) {
            // A reserve for a class whose pair is empty: say what the project's Active keys are.
            Some(pair)
                if reserve_only
                    && self
                        .inner
                        .state
                        .record(pair.record)
                        .state()
                        .active
                        .is_none() =>
            {
                return Err(self.no_pair_for(admin, &project, &key)?)
            }
            Some(pair) => pair,
            None if reserve_only => return Err(self.no_pair_for(admin, &project, &key)?),
            None => {
                // The first key of a class: check it before the pair exists, so a refusal
                // leaves nothing behind.
                rules::admit_new(&key, now, taken)?;
                let tx = admin.catalog.begin()?;
                let record = self.allocate_pair(&tx, project.id, class)?;
                tx.commit().map_err(Error::store("commit new pair"))?;
                self.inner
                    .state
                    .record(record)
                    .claim(owner_tag(project.id), metering_of(class));
                PairRow {
                    record,
                    class,
                    synced_epoch: 0,
                }
            }
        };
        let seats = metering_of(class) == Metering::Seats;
        let used_up = !seats && self.active_used_up(self.inner.state.record(pair.record));
        let plan = |state: &PairState, keys: &HashMap<u32, KeyRow>, row: u32| {
            plan_admit(
                &project.name,
                state,
                keys,
                &key,
                row,
                reserve_only,
                used_up,
                now,
                taken,
            )
        };
        let (before, next, row) = self.change_pair(admin, &project, pair, &key, plan)?;
        let role = if next.active.is_some_and(|a| a.key == row) {
            Role::Active
        } else {
            Role::Reserved
        };
        let mut events = vec![(
            project.name.clone(),
            EventKind::KeyAdded {
                key: key.id.clone(),
                role,
            },
        )];
        let mut switched_from = None;
        if let (Some((old_row, _)), Some(old)) = (next.retired, before.active) {
            let keys = admin.catalog.keys_of(pair.record)?;
            let from = key_of(&keys, old_row)?.id.clone();
            events.push((
                project.name.clone(),
                EventKind::Switched {
                    from: from.clone(),
                    to: key.id.clone(),
                    reason: if used_up && i64::from(old.expiry) > now {
                        SwitchReason::Exhausted
                    } else {
                        SwitchReason::Expired
                    },
                },
            ));
            switched_from = Some(from);
        }
        self.finish_change(admin, pair.record, &[], &events)?;
        self.refresh_holders(admin, &key.id, pair.record)?;
        Ok(KeyAdded {
            role,
            switched_from,
            message: (role == Role::Reserved)
                .then(|| view::reserve_added_message(&project.name, class)),
        })
    }

    /// Replaces the Active key of the new key's class (a renewal). A reserve that expires before
    /// the new key's term ends is removed (rule R19 in docs/rules.md); the old key's usage becomes
    /// final.
    ///
    /// The pair must still satisfy rule R6 in docs/rules.md afterwards: when the reserve it keeps
    /// is not of the new key's delivery or edition, or the new key is a subscription key, the
    /// replacement is refused with that rule's error ([`Error::TypeMismatch`],
    /// [`Error::EditionMismatch`], [`Error::Subscription`]) and nothing changes. Remove the reserve
    /// first ([`Engine::remove_reserve`]) to replace anyway.
    pub fn replace_active_key(
        &self,
        project: &str,
        key: impl Into<KeyOrLicense>,
    ) -> Result<KeyReplaced> {
        let admin = self.admin()?;
        let key = self.vet(&admin, key.into())?;
        self.replace_locked(&admin, project, key)
    }

    /// [`Engine::replace_active_key`] for a caller that holds the admin lock.
    fn replace_locked(&self, admin: &Admin, project: &str, key: Vetted) -> Result<KeyReplaced> {
        let now = self.now();
        let key = key.into_key();
        let project = project_row(&admin.catalog, project)?;
        let class = key.scheme.class();
        let Some(pair) = admin.catalog.pair(project.id, class)? else {
            return Err(self.no_pair_for(admin, &project, &key)?);
        };
        let taken = id_taken_for(&admin.catalog, &key, &admin.catalog.pairs(project.id)?)?;
        let plan = |state: &PairState, keys: &HashMap<u32, KeyRow>, row: u32| {
            let active = state.active.ok_or(Error::NoActiveKey)?;
            let reserve = state.reserve.map(|r| key_of(keys, r.key)).transpose()?;
            let kept =
                rules::admit_replacement(key_of(keys, active.key)?, reserve, &key, now, taken)?;
            Ok(NextGen {
                active: Some(live_key(row, &key)),
                reserve: state.reserve.filter(|_| kept),
                retired: Some((active.key, active.used)),
                switches: state.switches,
            })
        };
        let (before, next, _) = self.change_pair(admin, &project, pair, &key, plan)?;
        let keys = admin.catalog.keys_of(pair.record)?;
        let old = key_of(&keys, before.active.expect("checked by the plan").key)?
            .id
            .clone();
        let mut events = vec![(
            project.name.clone(),
            EventKind::KeyReplaced {
                old: old.clone(),
                new: key.id.clone(),
            },
        )];
        let mut removed = Vec::new();
        let mut removed_reserve = None;
        if let (Some(reserve), None) = (before.reserve, next.reserve) {
            let id = key_of(&keys, reserve.key)?.id.clone();
            events.push((
                project.name.clone(),
                EventKind::ReserveRemoved {
                    key: id.clone(),
                    reason: RemovalReason::ExpiresBeforeNewTerm,
                },
            ));
            removed.push(reserve.key);
            removed_reserve = Some(id);
        }
        self.finish_change(admin, pair.record, &removed, &events)?;
        self.refresh_holders(admin, &key.id, pair.record)?;
        self.refresh_holders(admin, &old, pair.record)?;
        if let Some(reserve) = &removed_reserve {
            self.refresh_holders(admin, reserve, pair.record)?;
        }
        Ok(KeyReplaced {
            old,
            removed_reserve,
        })
    }

    /// Removes the Reserved key `key_id` from its slot before it is used.
    pub fn remove_reserve(&self, project: &str, key_id: &str) -> Result<()> {
        let admin = self.admin()?;
        let project = project_row(&admin.catalog, project)?;
        let not_found = || Error::ReserveNotFound {
            project: project.name.clone(),
            key: key_id.to_owned(),
        };
        for pair in admin.catalog.pairs(project.id)? {
            sync_pair(&self.inner.state, &admin.catalog, &project, pair)?;
            let keys = admin.catalog.keys_of(pair.record)?;
            let record = self.inner.state.record(pair.record);
            let Some(reserve) = record.state().reserve else {
                continue;
            };
            if key_of(&keys, reserve.key)?.id != key_id {
                continue;
            }
            record.publish(&*self.inner.state, |state| match state.reserve {
                Some(r) if r.key == reserve.key => Ok(NextGen {
                    active: state.active,
                    reserve: None,
                    retired: None,
                    switches: state.switches,
                }),
                _ => Err(not_found()),
            })?;
            let event = EventKind::ReserveRemoved {
                key: key_id.to_owned(),
                reason: RemovalReason::Requested,
            };
            self.finish_change(
                &admin,
                pair.record,
                &[reserve.key],
                &[(project.name.clone(), event)],
            )?;
            return self.refresh_holders(&admin, key_id, pair.record);
        }
        Err(not_found())
    }

    /// Usage of a project's data-volume pair.
    pub fn usage(&self, project: &str) -> Result<Usage> {
        Ok(self.project(project)?.usage())
    }

    /// Every key a project ever held, with where it is now and what it used.
    pub fn keys(&self, project: &str) -> Result<Vec<KeyUsage>> {
        self.inner.intact()?;
        let admin = self.inner.admin.lock();
        let project = project_row(&admin.catalog, project)?;
        let mut out = Vec::new();
        for pair in admin.catalog.pairs(project.id)? {
            let state = self.inner.state.record(pair.record).state();
            let mut keys: Vec<_> = admin.catalog.keys_of(pair.record)?.into_iter().collect();
            keys.sort_by_key(|(row, _)| *row);
            for (row, key) in keys {
                let Some((status, used)) = key_status(&state, row, &key) else {
                    continue;
                };
                let account = self.account_usage(&admin.catalog, &key.key)?;
                out.push(KeyUsage {
                    key: key.key,
                    status,
                    used,
                    account,
                });
            }
        }
        Ok(out)
    }

    /// The project card of rule R27 in docs/rules.md.
    pub fn view(&self, project: &str) -> Result<ProjectView> {
        self.inner.intact()?;
        let now = self.now();
        let admin = self.inner.admin.lock();
        let project = project_row(&admin.catalog, project)?;
        let mut pairs = Vec::new();
        for pair in admin.catalog.pairs(project.id)? {
            pairs.push(self.pair_view(&admin.catalog, &project, pair, now)?);
        }
        // A project holding keys shows their classes only: no empty data-volume block beside
        // an SVM's seat keys. One with no key shows its empty pair, where the first key goes.
        if pairs.iter().any(|p| !p.cards.is_empty()) {
            pairs.retain(|p| !p.cards.is_empty());
        }
        Ok(ProjectView {
            project: project.name,
            pairs,
        })
    }

    fn pair_view(
        &self,
        catalog: &Catalog,
        project: &ProjectRow,
        pair: PairRow,
        now: i64,
    ) -> Result<PairView> {
        let state = self.inner.state.record(pair.record).state();
        let keys = catalog.keys_of(pair.record)?;
        let mut slots = Vec::new();
        for (slot, role) in [
            (state.active, Role::Active),
            (state.reserve, Role::Reserved),
        ] {
            if let Some(slot) = slot {
                let key = key_of(&keys, slot.key)?;
                let account_used = match self.account_usage(catalog, key)? {
                    Some(account) => account.used,
                    None => slot.used,
                };
                slots.push(SlotContent {
                    key,
                    role,
                    used: slot.used,
                    account_used,
                });
            }
        }
        Ok(view::pair_view(&project.name, pair.class, &slots, now))
    }

    /// Subscribes to this process's events; a subscriber that falls `capacity` events behind
    /// misses the newer ones (counted in [`Engine::dropped_events`]) rather than stall anyone.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.inner.subscribers.subscribe(capacity)
    }

    /// Up to `limit` events of the durable audit log after sequence number `seq`, from every
    /// process, oldest first.
    pub fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.inner.admin.lock().catalog.events_after(seq, limit)
    }

    /// Events that could not be delivered: hot-queue overflows plus full subscribers.
    pub fn dropped_events(&self) -> u64 {
        self.inner.hot_events.dropped() + self.inner.subscribers.dropped()
    }

    /// Makes the state durable against an operating-system crash: writes the hot file's dirty
    /// pages with `msync(MS_SYNC)` and checkpoints the catalog's write-ahead log. When the last
    /// usage checkpoint of this engine is [`Options::checkpoint_interval`] old or more, it also
    /// records a new one (rollback detection, see `engine::checkpoint`).
    pub fn flush(&self) -> Result<()> {
        self.inner.intact()?;
        self.inner.holders.flush()?;
        let now = self.inner.clock.now();
        // Relaxed: a timestamp only this engine's flushes read; a race makes one extra
        // checkpoint at worst.
        let last = self.inner.last_checkpoint.load(Ordering::Relaxed);
        if u64::from(now) >= last.saturating_add(self.inner.checkpoint_interval.as_secs()) {
            let admin = self.admin()?;
            // Flushes the hot file too, after reading the usage it checkpoints (see there).
            checkpoint::verify_and_checkpoint(
                &self.inner.installation,
                &self.inner.dir,
                &self.inner.state,
                &admin.catalog,
                checkpoint::Accept::Nothing,
                None,
            )?;
            self.inner
                .last_checkpoint
                .store(u64::from(now), Ordering::Relaxed);
            return admin.catalog.checkpoint();
        }
        self.inner.state.flush()?;
        self.inner.admin.lock().catalog.checkpoint()
    }

    fn now(&self) -> i64 {
        i64::from(self.inner.clock.now())
    }

    fn admin(&self) -> Result<AdminGuard<'_>> {
        self.inner.intact()?;
        let path = self.inner.dir.join(LOCK_FILE);
        let wait = admin_lock::Wait::start(&path, self.inner.admin_lock_timeout);
        let admin = wait.mutex(&self.inner.admin)?;
        wait.file(&admin.lock)?;
        let guard = AdminGuard { admin };
        // Another process may have died half-way through a change since we last held the lock.
        repair(&self.inner.state, &guard.catalog, false)?;
        Ok(guard)
    }

    fn allocate_pair(
        &self,
        tx: &rusqlite::Transaction<'_>,
        project: i64,
        class: LicenseClass,
    ) -> Result<u32> {
        let record = self.free_record(tx)?;
        Catalog::insert_pair(tx, project, class, record)?;
        Ok(record)
    }

    /// The error for a key that needs an existing pair of its class and finds none.
    fn no_pair_for(&self, admin: &Admin, project: &ProjectRow, key: &Key) -> Result<Error> {
        for pair in admin.catalog.pairs(project.id)? {
            if let Some(active) = self.inner.state.record(pair.record).state().active {
                let keys = admin.catalog.keys_of(pair.record)?;
                return Ok(
                    match rules::check_same_class(key_of(&keys, active.key)?, key) {
                        Err(mismatch) => mismatch,
                        Ok(()) => Error::NoActiveKey,
                    },
                );
            }
        }
        Ok(Error::NoActiveKey)
    }

    /// The common path of an admin change to one pair: sync, check the plan with nothing
    /// written, insert the new key as pending, publish the next generation. Returns the state
    /// the change was made from, the generation published and the new key's row. On refusal
    /// nothing is left behind.
    fn change_pair(
        &self,
        admin: &Admin,
        project: &ProjectRow,
        pair: PairRow,
        key: &Key,
        plan: impl Fn(&PairState, &HashMap<u32, KeyRow>, u32) -> Result<NextGen>,
    ) -> Result<(PairState, NextGen, u32)> {
        let mut recorded = sync_pair(&self.inner.state, &admin.catalog, project, pair)?;
        let keys = admin.catalog.keys_of(pair.record)?;
        let record = self.inner.state.record(pair.record);
        plan(&record.state(), &keys, u32::MAX)?;
        let account = self.account_for(admin, key)?;
        let row = admin
            .catalog
            .insert_pending_key(pair.record, key, &now_text())?;
        let mut keys = keys;
        keys.insert(
            row,
            KeyRow {
                key: key.clone(),
                state: "pending".into(),
                final_used: None,
            },
        );
        loop {
            // A generation may only be published from a state whose switch, if any, the
            // catalog holds: the next generation no longer shows it.
            let published = record.publish(&*self.inner.state, |state| {
                if state.switched_out != recorded {
                    return Err(None);
                }
                plan(state, &keys, row)
                    .map(|next| with_account(next, row, account))
                    .map_err(Some)
            });
            match published {
                Ok((before, next)) => return Ok((before, next, row)),
                Err(None) => {
                    recorded =
                        record_switch(&self.inner.state, &admin.catalog, project, pair.record)?
                }
                Err(Some(refusal)) => {
                    admin.catalog.delete_pending_key(row)?;
                    return Err(refusal);
                }
            }
        }
    }

    /// Writes the catalog side of a published change and its events, then tells subscribers.
    fn finish_change(
        &self,
        admin: &Admin,
        record: u32,
        removed: &[u32],
        events: &[(String, EventKind)],
    ) -> Result<()> {
        // The published generation reaches the disk before the catalog commits to it, so an
        // operating-system crash can never leave the catalog ahead of the hot file.
        self.inner.state.flush_record(record)?;
        let at = now_text();
        let tx = admin.catalog.begin()?;
        for &row in removed {
            Catalog::end_key(&tx, row, "removed", &at)?;
        }
        Catalog::sync_pair(&tx, record, &self.inner.state.record(record).state(), &at)?;
        let events = Catalog::append_events_in(&tx, events)?;
        tx.commit().map_err(Error::store("commit admin change"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }
}

/// The next generation for a key admitted to a pair (rules R5–R7 in docs/rules.md), or the rule it
/// breaks.
#[allow(clippy::too_many_arguments)]
fn plan_admit(
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
fn id_taken_for(catalog: &Catalog, key: &Key, pairs: &[PairRow]) -> Result<bool> {
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
fn with_account(mut next: NextGen, row: u32, account: u32) -> NextGen {
    for live in [&mut next.active, &mut next.reserve].into_iter().flatten() {
        if live.key == row {
            live.account = account;
        }
    }
    next
}

fn live_key(row: u32, key: &Key) -> LiveKey {
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
fn key_status(state: &PairState, row: u32, key: &KeyRow) -> Option<(KeyStatus, u64)> {
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

fn key_of(keys: &HashMap<u32, KeyRow>, row: u32) -> Result<&Key> {
    keys.get(&row)
        .map(|k| &k.key)
        .ok_or_else(|| Error::CorruptState {
            path: PathBuf::from(CATALOG_FILE),
            reason: format!("the hot state names key row {row}, which the catalog does not hold"),
        })
}

fn project_row(catalog: &Catalog, name: &str) -> Result<ProjectRow> {
    catalog
        .project(name)?
        .ok_or_else(|| Error::ProjectNotFound {
            name: name.to_owned(),
        })
}

fn data_volume_pair(catalog: &Catalog, project: &ProjectRow) -> Result<PairRow> {
    catalog
        .pair(project.id, LicenseClass::DataVolume)?
        .ok_or_else(|| Error::CorruptState {
            path: PathBuf::from(CATALOG_FILE),
            reason: format!("project \"{}\" has no data-volume pair", project.name),
        })
}

/// How a pair of `class` meters.
fn metering_of(class: LicenseClass) -> Metering {
    match class {
        LicenseClass::DataVolume => Metering::Volume,
        _ => Metering::Seats,
    }
}

/// The non-zero tag a record carries for its owning project.
fn owner_tag(project: i64) -> u32 {
    u32::try_from(project).unwrap_or(u32::MAX)
}

/// Records in the catalog what the hot state did since the last admin change of a pair (a
/// switch's final usage and its audit entry), and completes an admin change a crash interrupted
/// after it published. Returns the switch recorded, if the current generation made one.
fn sync_pair(
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
fn record_switch(
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
fn log_switch(
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

/// Completes every admin change a crash left half-done: pairs holding pending keys, and with
/// `all`, pairs whose hot generation the catalog has not caught up with or whose switch is not
/// in the audit log. Needs the admin lock.
fn repair(state: &StateFile, catalog: &Catalog, all: bool) -> Result<()> {
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

fn now_text() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// What [`open_locked`] opened.
struct Opened {
    state: StateFile,
    holders: Holders,
    catalog: Catalog,
    installation: checkpoint::Installation,
    state_id: String,
    /// The latest time seen an accepted clock gave up.
    given_up: Option<u32>,
}

/// Creates or opens the files of a state directory; the caller holds the admin lock.
fn open_locked(
    dir: &Path,
    options: &Options,
    installation: checkpoint::Installation,
    accept: checkpoint::Accept,
) -> Result<Opened> {
    let modes = Modes::new(options.shared_group);
    let hot = dir.join(HOT_FILE);
    let catalog_path = dir.join(CATALOG_FILE);
    let corrupt = |path: &Path, reason: &str| Error::CorruptState {
        path: path.to_owned(),
        reason: reason.to_owned(),
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
            let missing = || {
                corrupt(
                    &hot,
                    "the hot-state file is missing but the catalog holds projects",
                )
            };
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
        (true, false) => {
            return Err(corrupt(
                &catalog_path,
                "the catalog is missing beside an existing hot-state file",
            ))
        }
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
                &format!(
                    "the catalog names record {record} beyond the capacity {}",
                    state.capacity()
                ),
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
                    &format!(
                        "record {record} belongs to project {owner}, the catalog says {}",
                        project.id
                    ),
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
            .map_err(|reason| corrupt(&hot, &format!("record {record}: {reason}")))?;
    }
    accounts::give_keys_accounts(&state, &catalog, upgraded_from)?;
    repair(&state, &catalog, true)?;
    let holders_path = dir.join(HOLDERS_FILE);
    if !holders_path.exists() {
        if catalog.flag("seat_holders")? {
            return Err(corrupt(
                &holders_path,
                "the seat-holder table is missing: the seats held on this state cannot be accounted",
            ));
        }
        Holders::create(&holders_path, HOLDER_CAPACITY, modes.file)?;
        catalog.set_flag("seat_holders")?;
    }
    let holders = Holders::open(&holders_path)?;
    let state_id = catalog.state_id()?;
    // Everything is verified before the time seen is recorded: a state refused as tampered is
    // left as it is. An edited time is refused after the checkpoint's problems, which explain
    // more (a changed state id fails both MACs); an accepted rollback accepts it too, keeping
    // the installation's copy, and says so in its audit entry.
    let (latest, edited_time) = clock::recorded(&catalog, &installation, &state_id)?;
    let (accept, given_up) = match accept {
        checkpoint::Accept::Clock { to, .. } if latest > to && edited_time.is_none() => {
            (checkpoint::Accept::Clock { from: latest, to }, Some(latest))
        }
        checkpoint::Accept::Clock { .. } => (checkpoint::Accept::Nothing, None),
        other => (other, None),
    };
    checkpoint::verify_and_checkpoint(&installation, dir, &state, &catalog, accept, edited_time)?;
    let latest = match accept {
        checkpoint::Accept::Clock { to, .. } => {
            clock::lower(&catalog, &installation, &state_id, to)?;
            to
        }
        _ => latest,
    };
    clock::watch_at_open(
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
    pools::repair_assignments(&catalog)?;
    Ok(Opened {
        state,
        holders,
        catalog,
        installation,
        state_id,
        given_up,
    })
}

/// A handle on one project's data-volume pair, looked up once, for the hot path: no hashing,
/// no strings, no locks. `Clone` is cheap; valid while any clone of its [`Engine`] lives.
#[derive(Clone)]
pub struct ProjectHandle {
    record: NonNull<PairRecord>,
    index: u32,
    clock: Clock,
    name: Arc<str>,
    inner: Arc<Inner>,
}

// SAFETY: `record` points into the mapping owned by `inner.state`, which the handle keeps alive
// through `inner`; the record is all atomics, so using it from any thread is sound.
unsafe impl Send for ProjectHandle {}
// SAFETY: as above; every access through `&ProjectHandle` is an atomic operation.
unsafe impl Sync for ProjectHandle {}

impl ProjectHandle {
    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn pair(&self) -> &PairRecord {
        // SAFETY: see the `Send` impl: the mapping outlives `self`, the pointer is in bounds
        // and aligned (checked by `StateFile::record_ptr`), and the record is only shared.
        unsafe { self.record.as_ref() }
    }

    /// Grants `bytes` in full or refuses with nothing charged (`Exhausted`, `Expired`,
    /// `NoActiveKey`). Lock-free, no syscall, no allocation. A request of 0 bytes is a probe:
    /// granted exactly when a valid key still has capacity.
    #[inline]
    pub fn consume(&self, bytes: u64) -> Result<()> {
        self.pair()
            .grant(bytes, Mode::AllOrNothing, self.clock.now(), self)
            .map(drop)
            .map_err(|e| self.inner.refusal(e))
    }

    /// Grants as much of `bytes` as remains and returns it; refuses only when nothing remains.
    #[inline]
    pub fn consume_partial(&self, bytes: u64) -> Result<u64> {
        self.pair()
            .grant(bytes, Mode::Partial, self.clock.now(), self)
            .map_err(|e| self.inner.refusal(e))
    }

    /// Grants each amount in order, all or nothing each, stopping at the first refusal; the
    /// granted prefix is charged in one atomic step. Returns how many were granted, with the
    /// refusal of the first that was not.
    #[inline]
    pub fn consume_many(&self, amounts: &[u64]) -> (usize, Result<()>) {
        let (granted, result) = self.pair().grant_many(amounts, self.clock.now(), self);
        (granted, result.map_err(|e| self.inner.refusal(e)))
    }

    /// The pair's current usage.
    pub fn usage(&self) -> Usage {
        Usage::from(&self.pair().state())
    }
}

impl PairEvents for ProjectHandle {
    #[inline]
    fn emit(&self, event: PairEvent) {
        self.inner.hot_events.push(self.index, event);
    }
}

impl Accounts for ProjectHandle {
    #[inline]
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        self.inner.state.account(id)
    }
}

/// The background flush thread of [`Options::flush_interval`].
fn start_flusher(state: Arc<StateFile>, every: Duration) -> std::io::Result<Worker> {
    Worker::spawn("tollgate-flush", move |stop| {
        while !stop.requested() {
            stop.wait(every);
            let _ = state.flush();
        }
    })
}

/// The clock watch: once a second, checks the clock for a rollback (see `engine::clock`).
fn start_clock_watch(mut watch: clock::Watch, events: Arc<HotQueue>) -> std::io::Result<Worker> {
    Worker::spawn("tollgate-clock", move |stop| {
        while !stop.requested() {
            stop.wait(CLOCK_WATCH_PERIOD);
            watch.check(&events);
        }
    })
}

/// How often the clock watch looks at the clock.
const CLOCK_WATCH_PERIOD: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
