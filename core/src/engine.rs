//! The engine: opening a state directory, projects, admin changes and the hot-path handle.

use crate::mapped::Mapped;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod accounts;
mod activation;
mod admin_lock;
mod clock_rollback;
#[cfg(not(loom))]
mod fleet;
#[cfg(not(loom))]
mod fleet_admin;
mod groups;
mod handles;
mod lifetime;
mod open;
mod options;
mod pairs;
mod periods;
mod pools;
mod projects;
mod ratchet;
mod renewal;
mod replacement;
mod results;
mod seats;
mod trust;

pub use accounts::{AccountUsage, KeyHolder};
pub use activation::{Activated, ActivatedBulk, ActivationSlot, Activator, MAX_ACTIVATION_CODE};
pub use groups::{BulkOutcome, BulkTarget, Group};
use handles::mapped_record;
pub use handles::{ProjectHandle, ThreadProject};
pub use lifetime::LifetimeUsage;
use open::*;
pub use options::{FleetConfig, Options, DEFAULT_CLOCK_TOLERANCE, DEFAULT_RATCHET_INTERVAL};
use pairs::*;
pub use pools::InstanceHandle;
pub use renewal::{
    Renewal, RenewalState, RenewalStatus, Renewed, Renewer, DEFAULT_RENEWAL_CHECK,
    DEFAULT_RENEWAL_LEAD, DEFAULT_RENEWAL_RETRY,
};
pub use results::{KeyAdded, KeyReplaced, KeyStatus, KeyUsage, Usage};
pub use seats::{SeatHandle, SeatUsage, SeatsReclaimed};
pub use trust::TrustedKey;
use trust::Vetted;

use crate::catalog::{Catalog, KeyRow, PairRow, ProjectRow};
use crate::clock::Clock;
use crate::error::{Corruption, Error, Result};
use crate::event::{Event, EventKind, RemovalReason};
use crate::events::{Dispatcher, HotQueue, Subscribers, Subscription};
use crate::files::{self, Modes, HOLDERS_FILE, HOT_FILE, SLOTS_FILE};
use crate::holders::{Holders, Process, HOLDER_CAPACITY};
use crate::key::{check_name, rfc3339, Key, LicenseClass};
use crate::lease_slots::LeaseSlots;
use crate::license::{KeyOrLicense, VendorPublic};
use crate::refusal::Refusal;
use crate::rules;
use crate::slot::{
    AccountRecord, Accounts, LiveKey, Metering, Mode, NextGen, PairEvent, PairEvents, PairRecord,
    PairState, SwitchReason,
};
use crate::state_file::{self, StateFile, DEFAULT_CAPACITY};
use crate::view::{self, PairView, ProjectView, Role, SlotContent};
use crate::worker::Worker;

const CATALOG_FILE: &str = "catalog.db";
const LOCK_FILE: &str = "admin.lock";

/// An open state directory. Cheap to clone, `Send + Sync`; every clone, thread and process
/// that opens the same directory sees one set of counters.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Inner {
    /// A hot-path refusal as the caller gets it: `StateTruncated` (or `SeatTableTruncated`)
    /// instead when the refusal comes from a file another process truncated under us (its
    /// records then read as empty). No syscall, no allocation.
    #[cold]
    #[inline(never)]
    fn refusal(&self, refusal: Refusal) -> Refusal {
        if self.state.truncated_in_use() {
            Refusal::StateTruncated
        } else if self.holders.truncated_in_use() {
            Refusal::SeatTableTruncated
        } else {
            refusal
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
    /// The thread handles' lease slots (see `lease_slots`).
    slots: Arc<LeaseSlots>,
    installation: ratchet::Installation,
    ratchet_interval: Duration,
    /// When this engine last made a usage ratchet (Unix seconds of its clock).
    last_ratchet: std::sync::atomic::AtomicU64,
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
    /// The thread that closes usage periods (see `engine::periods`).
    periods: Mutex<Option<Worker>>,
    /// Fleet mode's lease thread (see `engine::fleet`); `None` for an embedded engine.
    #[cfg(not(loom))]
    fleet: Option<fleet::Fleet>,
}

/// When an admin change is made: the engine clock's reading, by which the rules judge expiry,
/// and the wall-clock time the catalog records. A fleet change carries its caller's, so every
/// host that applies it decides and records the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct When {
    /// Unix seconds of the engine's clock.
    now: i64,
    /// RFC 3339 wall-clock time.
    at: String,
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

impl Inner {
    /// Whether this is a fleet engine (see `engine::fleet`); never in loom builds.
    fn in_fleet(&self) -> bool {
        #[cfg(not(loom))]
        return self.fleet.is_some();
        #[cfg(loom)]
        return false;
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
        Engine::open_checked(dir.as_ref(), options, ratchet::Accept::Nothing).map(|(e, _)| e)
    }

    /// Opens a state that [`Engine::open_with`] refused with [`Error::Tampered`] (restored from
    /// an older copy, or its ratchets edited), because an operator decided to accept it as it
    /// is. The acceptance and what was found go to the audit log.
    pub fn accept_rollback(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        Engine::open_checked(dir.as_ref(), options, ratchet::Accept::Rollback).map(|(e, _)| e)
    }

    /// Opens `dir` with its latest time seen lowered to the reading of the options' clock
    /// ([`Clock::source`]): the way out of a clock that was once set in the future, after which
    /// every key expiring before that time had expired for good. The decision is audited (a
    /// `clock_accepted` event, in the MAC chain of the ratchets). Returns the engine and the
    /// latest time seen that was given up, in Unix seconds (`None`: it was not ahead of the
    /// clock, nothing changed). Run it from a process that has not opened the state: a running
    /// engine records the time its own clock holds again.
    pub fn accept_clock(dir: impl AsRef<Path>, options: Options) -> Result<(Engine, Option<u32>)> {
        let to = options.clock.source();
        Engine::open_checked(
            dir.as_ref(),
            options,
            ratchet::Accept::Clock { from: 0, to },
        )
    }

    fn open_checked(
        dir: &Path,
        options: Options,
        accept: ratchet::Accept,
    ) -> Result<(Engine, Option<u32>)> {
        let modes = Modes::new(options.shared_group);
        files::check_state_path(dir)?;
        // The installation first: a refused one leaves no state directory behind.
        let installation = ratchet::Installation::open(
            &ratchet::installation_dir(options.installation_dir.as_deref())?,
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
            slots,
            catalog,
            installation,
            state_id,
            given_up,
        } = opened?;
        let holders = Arc::new(holders);
        let slots = Arc::new(slots);
        let me = Process::me()?;
        let state = Arc::new(state);
        let hot_events = Arc::new(HotQueue::new(options.event_queue.max(16)));
        let subscribers = Arc::new(Subscribers::default());
        let mut keeper =
            clock_rollback::Keeper::new(options.clock.clone(), installation.clone(), state_id);
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
            clock_rollback::Watch::new(options.clock.clone(), options.clock_tolerance),
            Arc::clone(&hot_events),
        )
        .map_err(|e| Error::io("start the clock watch", e))?;
        #[cfg(not(loom))]
        let fleet = options
            .fleet
            .clone()
            .map(|config| {
                let events = Arc::clone(&hot_events);
                fleet::Fleet::start(&dir, config, Arc::clone(&state), events, modes.file)
            })
            .transpose()?;
        let engine = Engine {
            inner: Arc::new(Inner {
                dir,
                state,
                reclaimer,
                holders,
                slots,
                installation,
                ratchet_interval: options.ratchet_interval,
                last_ratchet: std::sync::atomic::AtomicU64::new(u64::from(options.clock.now())),
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
                periods: Mutex::new(None),
                #[cfg(not(loom))]
                fleet,
            }),
        };
        // A period that ended while no engine ran closes before the first grant, and one cut
        // short by a crash is completed. (Looked for first, so that a state without such a key
        // takes the admin lock once at open, as before periods existed.)
        if engine.period_due()? {
            engine.close_periods()?;
        }
        engine.start_period_closer()?;
        #[cfg(not(loom))]
        engine.catch_up_fleet()?;
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
        let project = match project_row(&admin.catalog, name) {
            // A fleet host that cannot reach the store cannot know the project is not new.
            #[cfg(not(loom))]
            Err(Error::ProjectNotFound { .. })
                if self.inner.fleet_shared().is_some_and(|f| f.out_of_reach()) =>
            {
                return Err(Error::Unavailable)
            }
            found => found?,
        };
        let pair = data_volume_pair(&admin.catalog, &project)?;
        Ok(ProjectHandle {
            record: mapped_record(&self.inner.state, pair.record),
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
        #[cfg(not(loom))]
        if self.inner.in_fleet() {
            return self.fleet_admit(&admin, project, key, reserve_only);
        }
        let key = self.vet(&admin, key)?;
        self.admit_locked(&admin, project, key, reserve_only, &self.when())
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
        when: &When,
    ) -> Result<KeyAdded> {
        let key = key.into_key();
        let now = when.now;
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
        let (before, next, row) = self.change_pair(admin, &project, pair, &key, &when.at, plan)?;
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
        self.finish_change(admin, pair.record, &[], &events, &when.at)?;
        self.refresh_holders(admin, &key.id, pair.record)?;
        Ok(KeyAdded {
            role,
            switched_from,
            message: (role == Role::Reserved)
                .then(|| view::reserve_added_message(&project.name, class)),
        })
    }

    /// Usage of a project's data-volume pair.
    pub fn usage(&self, project: &str) -> Result<Usage> {
        Ok(self.project(project)?.usage())
    }

    /// Every key a project ever held, with where it is now and what it used (in the current
    /// period, for a key with a reset).
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
                let used = used.saturating_sub(key.closed_used);
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
                // A key with a reset shows its current period's usage.
                let closed = keys.get(&slot.key).map_or(0, |k| k.closed_used);
                let slot = LiveKey {
                    used: slot.used.saturating_sub(closed),
                    ..slot
                };
                // Only an overage is shown from the account; a card without one needs no lookup.
                let account_used = match key.overage_bytes() {
                    0 => slot.used,
                    _ => self
                        .account_usage(catalog, key)?
                        .map_or(slot.used, |account| account.used),
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
    /// usage ratchet of this engine is [`Options::ratchet_interval`] old or more, it also
    /// records a new one (rollback detection, see `engine::ratchet`).
    pub fn flush(&self) -> Result<()> {
        self.inner.intact()?;
        self.inner.holders.flush()?;
        let now = self.inner.clock.now();
        // Relaxed: a timestamp only this engine's flushes read; a race makes one extra
        // ratchet at worst.
        let last = self.inner.last_ratchet.load(Ordering::Relaxed);
        if u64::from(now) >= last.saturating_add(self.inner.ratchet_interval.as_secs()) {
            let admin = self.admin()?;
            // Flushes the hot file too, after reading the usage it ratchets (see there).
            self.ratchet_now(&admin, None)?;
            self.inner
                .last_ratchet
                .store(u64::from(now), Ordering::Relaxed);
            return admin.catalog.checkpoint();
        }
        self.inner.state.flush()?;
        self.inner.admin.lock().catalog.checkpoint()
    }

    /// Verifies the state and records a ratchet now (see `engine::ratchet`), committing
    /// `change`'s catalog writes with it.
    fn ratchet_now(&self, admin: &Admin, change: Option<&periods::PeriodChange<'_>>) -> Result<()> {
        ratchet::verify_and_ratchet(
            &self.inner.installation,
            &self.inner.dir,
            &self.inner.state,
            &admin.catalog,
            ratchet::Accept::Nothing,
            None,
            change,
        )
    }

    fn now(&self) -> i64 {
        i64::from(self.inner.clock.now())
    }

    /// The time of an admin change made here, now.
    fn when(&self) -> When {
        When {
            now: self.now(),
            at: now_text(),
        }
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
    /// written, insert the new key as pending (added `at`), publish the next generation.
    /// Returns the state the change was made from, the generation published and the new key's
    /// row. On refusal nothing is left behind.
    fn change_pair(
        &self,
        admin: &Admin,
        project: &ProjectRow,
        pair: PairRow,
        key: &Key,
        at: &str,
        plan: impl Fn(&PairState, &HashMap<u32, KeyRow>, u32) -> Result<NextGen>,
    ) -> Result<(PairState, NextGen, u32)> {
        let mut recorded = sync_pair(&self.inner.state, &admin.catalog, project, pair)?;
        let keys = admin.catalog.keys_of(pair.record)?;
        let record = self.inner.state.record(pair.record);
        plan(&record.state(), &keys, u32::MAX)?;
        let account = self.account_for(admin, key)?;
        let row = admin.catalog.insert_pending_key(pair.record, key, at)?;
        let mut keys = keys;
        keys.insert(
            row,
            KeyRow {
                key: key.clone(),
                state: "pending".into(),
                final_used: None,
                closed_used: 0,
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

    /// Writes the catalog side of a published change and its events (the keys it removed ended
    /// `at`), then tells subscribers.
    fn finish_change(
        &self,
        admin: &Admin,
        record: u32,
        removed: &[u32],
        events: &[(String, EventKind)],
        at: &str,
    ) -> Result<()> {
        // The published generation reaches the disk before the catalog commits to it, so an
        // operating-system crash can never leave the catalog ahead of the hot file.
        self.inner.state.flush_record(record)?;
        let tx = admin.catalog.begin()?;
        for &row in removed {
            Catalog::end_key(&tx, row, "removed", at)?;
        }
        Catalog::sync_pair(&tx, record, &self.inner.state.record(record).state(), at)?;
        let events = Catalog::append_events_in(&tx, events)?;
        tx.commit().map_err(Error::store("commit admin change"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
