//! Fleet mode: many hosts meter one license through the fleet store (PostgreSQL), the top level
//! of the hierarchy of leases in `QUOTA.md`.
//!
//! A fleet engine keeps its mapped state as the hot path. Each data-volume key's account there
//! is a *fleet account*: its pairs lease only from the host's **stock** (`supply`), which one
//! background thread per host fills from the store, never the hot path:
//!
//! - it takes a block of the key's store account (`Store::take`, about 10 s of the host's
//!   recent rate, smaller near the end), then **draws** it into the stock a quarter at a time
//!   (`Store::renew` raising `drawn`), each draw acknowledged by the store before the stock
//!   grows: what a host may grant was always drawn, and a drawn part the store never frees
//!   until the host settles it (or an operator writes it off), so no host can over-grant;
//! - it renews its leases every third of their TTL with the usage it attributes to them (the
//!   stock fills lease after lease, so `taken - base` of each, clamped to what it drew);
//! - it settles a lease once it is used up, and at the engine's close it withdraws the unused
//!   stock (one CAS on `taken`, safe against every pair's take) and settles the rest;
//! - when the store has nothing free it marks the account **dry**: once the stock is spent the
//!   pair switches to its Reserved key or refuses `Exhausted`; a stock spent while the store is
//!   out of reach (or slow to answer) is refused `Unavailable`, never granted unmetered;
//! - every few seconds it reclaims the expired leases of dead hosts (`Store::reclaim_expired`);
//! - it stores the earliest deadline of the leases the stock was drawn from in the account: past
//!   it (the host paused, or cut off from the store for most of a TTL) no pair takes a block of
//!   the stock, and once a renewal finds a lease expired the thread withdraws the stock and
//!   settles every lease, then leases anew;
//! - seat keys are leased a seat at a time (`fleet::seats`); a key with a `reset` term meters
//!   each period on a store account of its own (see [`store_account`]).
//!
//! The ledger of the leases a host holds lives in its catalog (`fleet_leases`), written after
//! the store acknowledged and before the stock grows, so a host killed mid-run resumes or
//! settles them from it when it comes back. One process per state directory runs the thread
//! (an exclusive `flock` on `fleet.lock`); other processes on the host draw from the same
//! mapped stock, and one of them takes over when that process ends.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tollgate_store::{AccountKind, BlockPolicy, Lease, LeaseId, LeaseState, LeaseTerms, Store};

use crate::catalog::{Catalog, LeaseEntry};
use crate::clock::monotonic_at;
use crate::error::{Error, Result};
use crate::events::HotQueue;
use crate::slot::{AccountRecord, PairEvent, THRESHOLDS};
use crate::state_file::StateFile;
use crate::worker::{Stop, Worker};

use super::fleet_admin::{FleetShared, POLL_EVERY};

mod seats;
use super::{Engine, FleetConfig};

/// How often the fleet thread looks at the host's stocks. A look that needs no statement
/// costs a few loads per key.
const ROUND: Duration = Duration::from_millis(10);

/// How much traffic one draw should last: a quarter of a block's 10 s.
const DRAW_HORIZON: Duration = Duration::from_millis(2_500);

/// The smallest draw.
const MIN_DRAW: u64 = 64 << 10;

/// How often this host reclaims the expired leases of dead hosts.
const RECLAIM_EVERY: Duration = Duration::from_secs(5);

/// How long after a failed connection the thread tries again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// How long an engine's open waits for the fleet thread's first round (which connects and
/// draws a first stock of every key), so that the first grants are not refused as unavailable.
const FIRST_ROUND_WAIT: Duration = Duration::from_secs(5);

/// The lock file that elects the one process of a host that runs its fleet thread.
const FLEET_LOCK_FILE: &str = "fleet.lock";

/// Checks that the state at `catalog` is metered the way the engine opens it, and records the
/// host at a fleet host's first open. A state directory is embedded or a fleet host's for its
/// whole life: opened alone, a fleet state would grant its stock outside the store; joined to a
/// fleet, an embedded state's past usage would be unknown to it. Needs the admin lock.
pub(super) fn check_host(catalog: &Catalog, fleet: Option<&FleetConfig>) -> Result<()> {
    let recorded = catalog.fleet_host()?;
    let refuse = |reason: String| Error::InvalidArgument {
        field: "fleet store and host",
        reason,
    };
    match (recorded, fleet) {
        (None, None) => Ok(()),
        (Some(host), None) => Err(refuse(format!(
            "the state is fleet host \"{host}\"'s: open it with the fleet store and host \"{host}\""
        ))),
        (Some(host), Some(config)) if host != config.host => Err(refuse(format!(
            "the state is fleet host \"{host}\"'s, not \"{}\"",
            config.host
        ))),
        (Some(_), Some(_)) => Ok(()),
        (None, Some(config)) => {
            let name = &config.host;
            if name.is_empty() || name.len() > 64 {
                return Err(refuse(format!("host name {name:?}: 1 to 64 bytes")));
            }
            if !catalog.projects()?.is_empty() {
                return Err(refuse(
                    "the state meters projects alone (embedded): a fleet host starts from an empty state directory".into(),
                ));
            }
            catalog.set_fleet_host(name)
        }
    }
}

/// The running fleet thread of an engine; dropping it stops the thread, which gives the
/// unused stock back to the store and settles.
pub(super) struct Fleet {
    /// What the engine and the thread share.
    pub(super) shared: Arc<FleetShared>,
    _worker: Worker,
}

impl Fleet {
    /// Starts the fleet thread for the state at `dir` and waits (a few seconds at most) for
    /// its first round.
    pub(super) fn start(
        dir: &Path,
        config: FleetConfig,
        state: Arc<StateFile>,
        events: Arc<HotQueue>,
        file_mode: u32,
    ) -> Result<Fleet> {
        let lock_path = dir.join(FLEET_LOCK_FILE);
        let lock = crate::files::open_or_create(&lock_path, file_mode, "the fleet lock")?;
        let shared = Arc::new(FleetShared::new(config.clone()));
        let ready = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&ready);
        let mut host = Host {
            config,
            shared: Arc::clone(&shared),
            last_admin_poll: Instant::now(),
            admin_due: true,
            state,
            events,
            catalog_path: dir.join(super::CATALOG_FILE),
            catalog: None,
            store: None,
            next_connect: Instant::now(),
            lock,
            holding: false,
            keys: HashMap::new(),
            last_reclaim: Instant::now(),
            policy: BlockPolicy::default(),
        };
        let worker = Worker::spawn("tollgate-fleet", move |stop: Stop| {
            let mut first = true;
            while !stop.requested() {
                host.round();
                if first {
                    first = false;
                    let (done, wake) = &*signal;
                    *done.lock() = true;
                    wake.notify_all();
                }
                stop.wait(ROUND);
            }
            host.close();
        })
        .map_err(|e| Error::io("start the fleet thread", e))?;
        let (done, wake) = &*ready;
        let mut done = done.lock();
        if !*done {
            wake.wait_for(&mut done, FIRST_ROUND_WAIT);
        }
        Ok(Fleet {
            shared,
            _worker: worker,
        })
    }
}

/// The fleet thread's view of one key: its store account and the leases this host holds.
struct KeyStock {
    /// The key's hot account record.
    record: u32,
    /// Whether the store account is known to exist with this key's amount.
    created: bool,
    /// The leases, in the order their draws fill the stock; `lease` is `None` until the store
    /// confirmed it after a restart.
    leases: Vec<Held>,
    /// Recent rate (bytes per second), for sizing blocks and draws.
    rate: u64,
    /// `taken` and when, at the last rate sample.
    sampled: (u64, Instant),
    /// For a seat key: what its tending remembers (see `fleet::seats`).
    seats: seats::Tending,
    /// The usage period (its start, Unix seconds; 0 for a key without a reset) the leases
    /// are of, and the store account that meters it (see [`store_account`]).
    period: u64,
    account_id: String,
}

/// One lease of the fleet store this host holds.
struct Held {
    lease: Option<Lease>,
    entry: LeaseEntry,
    renewed: Instant,
}

impl LeaseEntry {
    /// The usage attributed to this lease with the account at `taken`: the stock fills lease
    /// after lease, so what was taken beyond its base, up to what it drew, less what a close
    /// gave back; never below what was already reported.
    fn used_at(&self, taken: u64) -> u64 {
        taken
            .saturating_sub(self.base)
            .min(self.drawn - self.returned)
            .max(self.reported)
    }
}

impl Held {
    /// Whether more can be drawn from it now.
    fn drawable(&self) -> bool {
        !self.entry.lapsed
            && self.entry.returned == 0
            && self.entry.drawn < self.entry.granted
            && self.lease.as_ref().is_some_and(Lease::is_live)
    }
}

/// The fleet thread's state.
struct Host {
    config: FleetConfig,
    shared: Arc<FleetShared>,
    /// When the admin log was last read.
    last_admin_poll: Instant,
    /// Whether the admin log has changes this state may not have applied.
    admin_due: bool,
    state: Arc<StateFile>,
    /// Where the thread reports the fleet's thresholds (see [`report_thresholds`]).
    events: Arc<HotQueue>,
    catalog_path: PathBuf,
    catalog: Option<Catalog>,
    store: Option<Store>,
    next_connect: Instant,
    /// `fleet.lock`, locked exclusively (`holding`) while this process runs the host's leases.
    lock: File,
    holding: bool,
    keys: HashMap<String, KeyStock>,
    last_reclaim: Instant,
    policy: BlockPolicy,
}

/// A step that could not finish this round; the next round tries again.
struct Later;

impl From<tollgate_store::Error> for Later {
    fn from(_: tollgate_store::Error) -> Later {
        Later
    }
}

impl From<Error> for Later {
    fn from(_: Error) -> Later {
        Later
    }
}

impl Host {
    /// One look at every fleet account; statements only where a stock runs low, a renewal is
    /// due or a lease is used up.
    fn round(&mut self) {
        if !self.hold_lock() || self.open_catalog().is_err() {
            return;
        }
        if self.connect().is_err() {
            self.shared.set_out_of_reach(true);
            return;
        }
        let reached = self.tend_all();
        self.shared.set_out_of_reach(reached.is_err());
    }

    /// Tends every fleet account's stock, applies the admin log when it changed, and reclaims
    /// dead hosts' leases now and then.
    fn tend_all(&mut self) -> std::result::Result<(), Later> {
        let accounts = self.catalog.as_ref().expect("opened").accounts()?;
        for (key, record) in accounts {
            if !self.state.account_record(record).is_fleet() {
                continue;
            }
            // The store going away fails the other keys the same way: stop at the first.
            self.tend(&key, record)?;
        }
        let store = self.store.as_mut().expect("connected above");
        let notified = store.admin_notified(Duration::ZERO)?;
        if self.last_reclaim.elapsed() >= RECLAIM_EVERY {
            self.last_reclaim = Instant::now();
            store.reclaim_expired()?;
        }
        self.admin_due |= notified || self.last_admin_poll.elapsed() >= POLL_EVERY;
        if self.admin_due {
            self.last_admin_poll = Instant::now();
            let applied = self.catalog.as_ref().expect("opened").fleet_admin_seq()?;
            let store = self.store.as_mut().expect("connected above");
            match Engine::apply_log_from(&self.shared, store, applied) {
                Ok(()) => self.admin_due = false,
                Err(Error::Unavailable) => return Err(Later),
                // A busy admin lock, a disk error: the next round resumes from the same change.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Takes `fleet.lock` if no other process of this host holds it.
    fn hold_lock(&mut self) -> bool {
        if !self.holding && self.lock.try_lock().is_ok() {
            // Another process may have run the leases until now: start from the ledger.
            self.keys.clear();
            self.holding = true;
        }
        self.holding
    }

    fn open_catalog(&mut self) -> Result<()> {
        if self.catalog.is_none() {
            self.catalog = Some(Catalog::open(&self.catalog_path, false)?);
        }
        Ok(())
    }

    /// Connects (and migrates, and registers the host) unless connected or waiting to retry.
    fn connect(&mut self) -> std::result::Result<(), Later> {
        if self.store.is_some() {
            return Ok(());
        }
        if Instant::now() < self.next_connect {
            return Err(Later);
        }
        self.next_connect = Instant::now() + RECONNECT_AFTER;
        let terms = LeaseTerms {
            ttl: self.config.lease_ttl,
            margin: self.config.lease_ttl / 12,
        };
        let mut store = self.shared.connect(terms)?;
        store.register_host(&self.config.host)?;
        self.store = Some(store);
        Ok(())
    }

    fn parts(&mut self) -> (&mut Store, &Catalog) {
        (
            self.store.as_mut().expect("connected before use"),
            self.catalog.as_ref().expect("opened before use"),
        )
    }

    /// Keeps one key's stock ahead of its traffic.
    fn tend(&mut self, key: &str, record: u32) -> std::result::Result<(), Later> {
        let account = self.state.account_record(record);
        if !self.keys.contains_key(key) {
            let entries = self.catalog.as_ref().expect("opened").fleet_leases(key)?;
            let held: Vec<Held> = entries
                .into_iter()
                .map(|entry| Held {
                    lease: None,
                    entry,
                    renewed: Instant::now(),
                })
                .collect();
            // The ledger is written after the store acknowledged a draw and before the stock
            // grows: a process killed between the two left the stock short of it. (A seat
            // key's stock is set from its confirmed leases instead, see `fleet::seats`.)
            let top = held.iter().map(|h| h.entry.base + h.entry.drawn).max();
            let supply = account.supply().unwrap_or(0);
            if let Some(short) = top.and_then(|top| top.checked_sub(supply)) {
                if !account.is_fleet_seats() {
                    account.add_supply(short);
                }
            }
            // Learned afresh from the store: a stale mark would switch the pair too early.
            account.set_dry(false);
            let stock = KeyStock {
                record,
                created: false,
                leases: held,
                rate: 0,
                sampled: (account.taken(), Instant::now()),
                seats: seats::Tending::default(),
                period: account.period(),
                account_id: store_account(key, account.period()),
            };
            self.keys.insert(key.to_owned(), stock);
        }
        let mut stock = self.keys.remove(key).expect("inserted above");
        let result = self.tend_stock(key, &mut stock);
        self.keys.insert(key.to_owned(), stock);
        result
    }

    fn tend_stock(&mut self, key: &str, stock: &mut KeyStock) -> std::result::Result<(), Later> {
        let state = Arc::clone(&self.state);
        let account = state.account_record(stock.record);
        if account.is_fleet_seats() {
            let host = self.config.host.clone();
            let (store, catalog) = self.parts();
            return seats::tend(store, catalog, &host, key, stock, account);
        }
        let (store, catalog) = self.parts();
        if account.period() != stock.period {
            // The key's usage period closed here: the leases of the old one are settled (the
            // stock left of them withdrawn), and the new one draws on its own store account.
            settle_all(store, catalog, key, stock, account)?;
            stock.period = account.period();
            stock.account_id = store_account(key, stock.period);
            stock.created = false;
        }
        if !stock.created {
            store.create_account(&stock.account_id, AccountKind::Bytes, account.limit())?;
            stock.created = true;
        }
        resume(store, catalog, key, stock, account)?;
        sample_rate(stock, account.taken());
        settle_used_up(store, catalog, stock, account.taken())?;
        renew_due(store, catalog, key, stock, account.taken())?;
        if stock.leases.iter().any(|h| h.entry.lapsed) {
            // A lease expired before this host renewed it (the host was paused past its
            // deadline, or cut off from the store): what is left of the stock is no longer the
            // host's to grant. Withdrawn, and every lease settled; the next round takes anew.
            settle_all(store, catalog, key, stock, account)?;
        }
        account.set_deadline(stock_deadline(stock));
        let wanted = account.take_wanted();
        // A quarter of a block at the recent rate, within the policy's largest block (a
        // grant that needs more than that still gets what it needs).
        let by_rate = (u128::from(stock.rate) * DRAW_HORIZON.as_millis() / 1000) as u64;
        let draw = by_rate
            .clamp(MIN_DRAW, self.policy.max_block / 4)
            .max(wanted);
        let supply = account.supply().unwrap_or(0);
        let room = supply.saturating_sub(account.taken());
        if room >= draw / 2 + wanted {
            return Ok(());
        }
        if !stock.leases.iter().any(Held::drawable) {
            let policy = self.policy;
            let host = self.config.host.clone();
            let events = Arc::clone(&self.events);
            let (store, catalog) = self.parts();
            let id = &stock.account_id;
            let free = store.account(id)?.free();
            let want = policy.block_size(stock.rate, free).max(draw).min(free);
            let taken = match want {
                0 => Err(tollgate_store::Error::Exhausted { key: id.clone() }),
                want => store.take(&host, id, want),
            };
            let taken = match taken {
                Err(tollgate_store::Error::Exhausted { .. }) => {
                    account.set_dry(true);
                    if account.period() != stock.period {
                        // The period closed while this take asked the old one's account: its
                        // "dry" is not the new period's (see `AccountRecord::start_period`).
                        account.set_dry(false);
                    }
                    return Ok(());
                }
                taken => taken?,
            };
            account.set_dry(false);
            hold(catalog, key, stock, taken, supply)?;
            // After the ledger holds the lease; a threshold this fails to claim is claimed at
            // the next take (the store keeps what was claimed).
            let _ = report_thresholds(store, catalog, &events, key, &stock.account_id);
        }
        let (store, catalog) = self.parts();
        let taken_now = account.taken();
        let Some(held) = stock.leases.iter_mut().rev().find(|h| h.drawable()) else {
            return Ok(());
        };
        let before = held.entry.drawn;
        let to = held.entry.granted.min(before + draw);
        renew(store, catalog, key, held, taken_now, to)?;
        // Only after the store acknowledged the draw and the ledger holds it.
        account.add_supply(held.entry.drawn - before);
        Ok(())
    }

    /// The engine closes: gives the unused stock back and settles every lease it can.
    fn close(&mut self) {
        if !self.holding || self.store.is_none() || self.catalog.is_none() {
            return;
        }
        let keys: Vec<String> = self.keys.keys().cloned().collect();
        for key in keys {
            let mut stock = self.keys.remove(&key).expect("listed");
            let state = Arc::clone(&self.state);
            let account = state.account_record(stock.record);
            if account.is_fleet_seats() {
                // Seats still held keep their leases for the process that runs the host next.
                let (store, catalog) = self.parts();
                let _ = seats::give_back_free(store, catalog, &key, &mut stock, account);
                continue;
            }
            let (store, catalog) = self.parts();
            let _ = settle_all(store, catalog, &key, &mut stock, account);
        }
    }
}

/// The store account that meters `key` in the usage period starting at `period` (Unix seconds):
/// the key's id for a key without a reset (`period` 0), else one account per period, named by
/// the key and the period's start, so every host draws on the same one and each period has the
/// key's whole amount. An id too long for the store's 64 bytes is shortened to a hash of the
/// key, the same on every host.
fn store_account(key: &str, period: u64) -> String {
    if period == 0 {
        return key.to_owned();
    }
    let id = format!("{key}@{period}");
    if id.len() <= 64 {
        return id;
    }
    let hash = blake3::hash(key.as_bytes()).to_hex();
    format!("{}@{period}", &hash[..40])
}

/// Until when a key's stock may be leased to pairs ([`crate::clock::monotonic_ns`] ns): the earliest deadline
/// of its live leases; already past while a lease read from the ledger is not confirmed yet;
/// none (0) without leases, when what is left was settled as used.
fn stock_deadline(stock: &KeyStock) -> u64 {
    if stock
        .leases
        .iter()
        .any(|h| h.lease.is_none() && !h.entry.lapsed)
    {
        return 1;
    }
    stock
        .leases
        .iter()
        .filter(|h| !h.entry.lapsed)
        .filter_map(|h| h.lease.as_ref())
        .map(|lease| monotonic_at(lease.deadline))
        .min()
        .unwrap_or(0)
}

/// Withdraws a key's unused stock and settles every lease: each is charged what it drew less
/// what was withdrawn, which is what the host's pairs granted plus what a pair still holds
/// unused in its block (at most 4 MiB per pair), which stays the host's to grant next. For an
/// engine's close, and when the key's usage period closes. Leaving a lease open instead would
/// keep the withdrawn stock leased with it. Leases it could not settle stay in the ledger, to
/// be settled at the next round or when the host comes back.
fn settle_all(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> std::result::Result<(), Later> {
    let (withdrawn, before) = account.withdraw_stock();
    let top = before + withdrawn;
    for held in &mut stock.leases {
        let e = &mut held.entry;
        // The part of this lease's drawn range that lay above `taken` was withdrawn.
        let start = e.base.max(before);
        let end = (e.base + e.drawn).min(top);
        e.returned = e.returned.max(end.saturating_sub(start));
        catalog.put_fleet_lease(key, e)?;
    }
    let taken = account.taken();
    let mut failed = false;
    stock.leases.retain(|held| {
        let used = held.entry.used_at(taken);
        let settled = store.settle(LeaseId(held.entry.id), used).is_ok()
            && catalog.drop_fleet_lease(held.entry.id).is_ok();
        failed |= !settled;
        !settled
    });
    if failed {
        return Err(Later);
    }
    Ok(())
}

/// Records a lease just taken in the ledger, then among the key's leases; `base` is where its
/// drawn part starts in the stock (see `LeaseEntry`).
fn hold(
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    lease: Lease,
    base: u64,
) -> std::result::Result<(), Later> {
    let entry = LeaseEntry {
        id: lease.id.0,
        granted: lease.granted,
        drawn: lease.drawn,
        reported: 0,
        seq: 0,
        base,
        lapsed: false,
        returned: 0,
    };
    catalog.put_fleet_lease(key, &entry)?;
    stock.leases.push(Held {
        lease: Some(lease),
        entry,
        renewed: Instant::now(),
    });
    Ok(())
}

/// Reports the 80/90/100 % thresholds of `key` that the fleet's leases reached with this
/// host's take, each claimed once fleet-wide in the store, as an event of the first project
/// holding the key here. A host's own draw says nothing of the fleet's usage, so its pairs
/// report none (see `AccountRecord::claim_thresholds`). A threshold claimed by a host that
/// stops before pushing it is not reported again.
fn report_thresholds(
    store: &mut Store,
    catalog: &Catalog,
    events: &HotQueue,
    key: &str,
    account_id: &str,
) -> std::result::Result<(), Later> {
    let claimed = store.claim_thresholds(account_id, &THRESHOLDS)?;
    if claimed.is_empty() {
        return Ok(());
    }
    let holders = catalog.key_rows_by_id(key)?;
    let holder = holders
        .iter()
        .find(|u| u.state == "live")
        .or(holders.first());
    if let Some(holder) = holder {
        for percent in claimed {
            let event = PairEvent::Threshold {
                key: holder.row,
                percent,
            };
            events.push(holder.pair.record, event);
        }
    }
    Ok(())
}

/// Confirms the leases read from the ledger with the store: an open one is renewed from now
/// on, an expired one is only settled when used up; one the store settled or wrote off (or
/// does not know) is forgotten: nothing is left to settle, and what the host drew of it stays
/// its own to grant (the store never leases a drawn part again).
fn resume(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    account: &AccountRecord,
) -> std::result::Result<(), Later> {
    let mut forget = Vec::new();
    let top = stock
        .leases
        .iter()
        .map(|h| h.entry.base + h.entry.drawn)
        .max();
    for held in stock.leases.iter_mut().filter(|h| h.lease.is_none()) {
        let record = match store.lease(LeaseId(held.entry.id)) {
            Ok(record) => record,
            Err(tollgate_store::Error::LeaseNotFound(_)) => {
                forget.push(held.entry.id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        held.entry.seq = held.entry.seq.max(record.seq);
        held.entry.reported = held.entry.reported.max(record.reported);
        // A process killed after the store applied a draw and before its ledger recorded it:
        // the store holds the draw (in doubt once reclaimed), so the top lease's stock takes it.
        let is_top = Some(held.entry.base + held.entry.drawn) == top;
        if record.drawn > held.entry.drawn && is_top && held.entry.returned == 0 {
            let more = record.drawn - held.entry.drawn;
            held.entry.drawn = record.drawn;
            catalog.put_fleet_lease(key, &held.entry)?;
            account.add_supply(more);
        }
        match record.state {
            LeaseState::Open => held.lease = Some(store.resume(record.id)?),
            LeaseState::Reclaimed => {
                held.entry.lapsed = true;
                catalog.put_fleet_lease(key, &held.entry)?;
            }
            LeaseState::Settled | LeaseState::WrittenOff => forget.push(held.entry.id),
        }
    }
    for id in forget {
        catalog.drop_fleet_lease(id)?;
        stock.leases.retain(|h| h.entry.id != id);
    }
    Ok(())
}

/// Folds the account's `taken` into the key's recent rate (bytes per second), four times a
/// second.
fn sample_rate(stock: &mut KeyStock, taken: u64) {
    let (then, at) = stock.sampled;
    let elapsed = at.elapsed();
    if elapsed < Duration::from_millis(250) {
        return;
    }
    let now = (u128::from(taken.saturating_sub(then)) * 1000 / elapsed.as_millis().max(1)) as u64;
    // Half the old rate, half the new: follows a change within a few seconds.
    stock.rate = stock.rate / 2 + now / 2;
    stock.sampled = (taken, Instant::now());
}

/// Settles the leases whose whole block was drawn and used (or, for an expired one, whose
/// drawn part was used), and forgets them.
fn settle_used_up(
    store: &mut Store,
    catalog: &Catalog,
    stock: &mut KeyStock,
    taken: u64,
) -> std::result::Result<(), Later> {
    while let Some(held) = stock.leases.first() {
        let e = held.entry;
        // Nothing more will be drawn from it: expired, closed by an engine's close, or drawn
        // whole; and all it drew is used (or was given back by that close).
        let closed = e.lapsed || e.returned > 0 || e.drawn == e.granted;
        let confirmed = e.lapsed || held.lease.is_some();
        let used = held.entry.used_at(taken);
        if !confirmed || !closed || used < e.drawn - e.returned {
            break;
        }
        store.settle(LeaseId(e.id), used)?;
        catalog.drop_fleet_lease(e.id)?;
        stock.leases.remove(0);
    }
    Ok(())
}

/// Renews every open lease whose last renewal is a third of its TTL old, with its usage.
fn renew_due(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    stock: &mut KeyStock,
    taken: u64,
) -> std::result::Result<(), Later> {
    let every = store.terms().ttl / 3;
    for held in &mut stock.leases {
        // A lease resumed after a restart has its deadline now: renewed at once.
        let due = !held.entry.lapsed
            && held.lease.as_ref().is_some_and(|lease| {
                !lease.is_live() || held.renewed.elapsed() >= every || held.entry.seq == 0
            });
        if due {
            let drawn = held.entry.drawn;
            renew(store, catalog, key, held, taken, drawn)?;
        }
    }
    Ok(())
}

/// Renews `held` with its usage at `taken`, drawing up to `to`; records the outcome in the
/// ledger. A lease the store expired or closed becomes lapsed: nothing more is drawn from it.
fn renew(
    store: &mut Store,
    catalog: &Catalog,
    key: &str,
    held: &mut Held,
    taken: u64,
    to: u64,
) -> std::result::Result<(), Later> {
    let Some(lease) = held.lease.as_mut() else {
        return Ok(());
    };
    let used = held.entry.used_at(taken);
    let seq = held.entry.seq + 1;
    match store.renew(lease, seq, used, to) {
        Ok(_) => {
            held.entry.seq = seq;
            held.entry.reported = used;
            held.entry.drawn = to;
            held.renewed = Instant::now();
        }
        Err(
            tollgate_store::Error::LeaseExpired { .. } | tollgate_store::Error::LeaseClosed { .. },
        ) => {
            held.entry.lapsed = true;
        }
        Err(e) => return Err(e.into()),
    }
    catalog.put_fleet_lease(key, &held.entry)?;
    Ok(())
}
