//! Usage periods on the admin side (rule R40 in docs/rules.md): a key with a `reset` term has
//! its usage return to 0 at each period boundary (UTC), exactly once across threads and
//! processes, off the hot path, with each closed period's usage kept.
//!
//! # How a period closes
//!
//! Under the admin lock (one holder across every process), for a key whose catalog period
//! started before the period `now` falls in:
//! 1. Every row of the key (each pair that holds or held it) has its usage read, as the views
//!    read it: the hot state for a key in a slot, the catalog for one that left. What a row
//!    used beyond the last close (`closed_used`) is its share of the closing period.
//! 2. One catalog transaction records the period with its usage, moves the account's period
//!    start to the boundary, sets each row's `closed_used` to what it read, and appends the
//!    `period_closed` event and a usage ratchet whose MAC covers every key's closed total
//!    (so editing `catalog.db` to forgive usage is refused as tampering).
//! 3. The hot account is told that the closed periods used `forgiven` bytes in all (the sum of
//!    `closed_used`): what limits a take from then on is `taken - forgiven`. The holders are
//!    published again, which returns their leases and lets a lease the old period had marked
//!    `last` see the new period's room.
//!
//! Nothing on the hot path changes: a grant still charges the lease of its own pair, and leases
//! and blocks keep their meaning. Grants made between step 1 and step 3 count in the new period
//! (the rows read in step 1 are what closed) but see the old period's room until step 3: during
//! the reset they can only be refused, never over-granted. A reset cut short by a crash after
//! step 2 is completed by the next `close_periods` (the hot account's period start says which
//! period it counts); the stores of step 3 are idempotent.
//!
//! The switch is not undone: a pair that switched away from the key at its limit stays on its
//! reserve. The reset gives the room back to every pair still holding the key.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::accounts::row_usage;
use super::{Admin, Engine};
use crate::catalog::{Catalog, ClosedPeriod, PeriodicAccount};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, PeriodMark};
use crate::period::Period;
use crate::state_file::StateFile;
use crate::worker::Worker;

/// How often the background thread looks for a period that has ended.
const CLOSE_EVERY: Duration = Duration::from_secs(1);

impl Engine {
    /// Closes every usage period that has ended by the engine's clock, for every key with a
    /// `reset` term, and returns the periods it closed (none when another process or thread
    /// closed them first: each period closes exactly once). A background thread of every
    /// engine calls it about once a second; call it to close a period at once (a test with a
    /// manual clock, a tool that just moved past a boundary).
    pub fn close_periods(&self) -> Result<Vec<ClosedPeriod>> {
        let admin = self.admin()?;
        let now = i64::from(self.inner.clock.now());
        let mut closed = Vec::new();
        for account in admin.catalog.periodic_accounts()? {
            let (key, record, start) = (&account.key, account.record, account.start);
            if self.inner.state.account_record(record).period() != start as u64 {
                // A reset a crash cut short after its catalog commit (or the account's first
                // period): the hot account catches up with the catalog.
                self.start_hot_period(&admin, key, record, start)?;
            }
            let next = account.reset.start_of(now);
            if next > start {
                closed.push(self.close_period(&admin, &account, next)?);
            }
        }
        Ok(closed)
    }

    /// Starts the thread that closes periods as they end: each round it looks, on a catalog
    /// connection of its own (opened by its first round) and without any lock, whether a
    /// period is due, and only then takes the engine and closes it under the admin lock. So
    /// the thread holds the engine only while it closes a period (a round that drops the last
    /// reference ends the thread, see `Worker`'s drop).
    pub(super) fn start_period_closer(&self) -> Result<()> {
        let engine: Weak<super::Inner> = Arc::downgrade(&self.inner);
        let state = Arc::clone(&self.inner.state);
        let clock = self.inner.clock.clone();
        let path = self.inner.dir.join(super::CATALOG_FILE);
        let worker = Worker::spawn("tollgate-periods", move |stop| {
            // Opened by the first round, not at the engine's open: it is not needed before.
            let mut catalog = None;
            while !stop.requested() {
                stop.wait(CLOSE_EVERY);
                if catalog.is_none() {
                    catalog = Catalog::open(&path, false).ok();
                }
                let due = catalog
                    .as_ref()
                    .is_some_and(|c| period_due(&state, c, clock.now()).unwrap_or(false));
                if !due {
                    continue;
                }
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                // A failure (the admin lock busy, a disk error) is retried next round; the
                // period closes late, never twice, and never wrongly.
                let _ = Engine { inner }.close_periods();
            }
        })
        .map_err(|e| Error::io("start the period thread", e))?;
        *self.inner.periods.lock() = Some(worker);
        Ok(())
    }

    /// Whether a period of some key has ended, or a hot account lags its catalog period.
    pub(super) fn period_due(&self) -> Result<bool> {
        let admin = self.inner.admin.lock();
        period_due(&self.inner.state, &admin.catalog, self.inner.clock.now())
    }

    /// The closed periods of key `key_id`, oldest first (`tollgate key periods`).
    pub fn periods(&self, key_id: &str) -> Result<Vec<ClosedPeriod>> {
        self.inner.intact()?;
        let admin = self.inner.admin.lock();
        if admin.catalog.key_uses(key_id)?.is_empty() {
            return Err(Error::invalid(
                "key",
                format!("no key \"{key_id}\" in this state"),
            ));
        }
        admin.catalog.periods_of(key_id)
    }

    /// Makes the catalog's account of `key`, whose periods (`reset`) start at `start`, in the
    /// transaction of a usage ratchet that records the start; returns its record.
    pub(super) fn periodic_account(
        &self,
        admin: &Admin,
        key: &crate::key::Key,
        reset: Period,
        start: i64,
    ) -> Result<u32> {
        let record = std::cell::Cell::new(0);
        let write = |tx: &rusqlite::Transaction<'_>| {
            record.set(self.free_record(tx)?);
            Catalog::insert_account(tx, &key.id, record.get())?;
            Catalog::start_periods(tx, &key.id, reset, start)
        };
        self.ratchet_now(
            admin,
            Some(&PeriodChange {
                key: &key.id,
                from: None,
                to: (reset, start),
                write: &write,
            }),
        )?;
        Ok(record.get())
    }

    /// Closes the current period of `account`, the next one starting at `next`: steps 1 to 3
    /// of the module's description.
    fn close_period(
        &self,
        admin: &Admin,
        account: &PeriodicAccount,
        next: i64,
    ) -> Result<ClosedPeriod> {
        let (key_id, record, reset, start) =
            (&*account.key, account.record, account.reset, account.start);
        let state = &self.inner.state;
        let mut used = 0u64;
        let mut rows = Vec::new();
        for row in admin.catalog.key_rows_by_id(key_id)? {
            if row.state == "pending" {
                continue;
            }
            let (_, share) = row_usage(state, &row);
            used += share.saturating_sub(row.closed_used);
            rows.push((row.row, share.max(row.closed_used)));
        }
        let period = ClosedPeriod {
            key: key_id.to_owned(),
            starts_at: start,
            ends_at: next,
            used,
            closed_at: super::open::now_text(),
        };
        let written = RefCell::new(Vec::<Event>::new());
        let write = |tx: &rusqlite::Transaction<'_>| {
            Catalog::close_period(tx, &period, &rows)?;
            let event = EventKind::PeriodClosed {
                key: key_id.to_owned(),
                starts_at: unix_text(start),
                ends_at: unix_text(next),
                used,
            };
            *written.borrow_mut() = Catalog::append_events_in(tx, &[(String::new(), event)])?;
            Ok(())
        };
        self.ratchet_now(
            admin,
            Some(&PeriodChange {
                key: key_id,
                from: Some((reset, start)),
                to: (reset, next),
                write: &write,
            }),
        )?;
        self.inner.subscribers.broadcast(&written.into_inner());
        self.start_hot_period(admin, key_id, record, next)?;
        Ok(period)
    }

    /// Step 3: the hot account of key `key_id` counts the period starting at `start`, with
    /// what the catalog's closed periods used forgiven; then every holder is published again.
    fn start_hot_period(&self, admin: &Admin, key_id: &str, record: u32, start: i64) -> Result<()> {
        let forgiven = admin
            .catalog
            .closed_usage()?
            .get(key_id)
            .copied()
            .unwrap_or(0);
        let state = &self.inner.state;
        state
            .account_record(record)
            .start_period(u64::try_from(start).unwrap_or(0), forgiven);
        state.flush_record(record)?;
        for held in admin.catalog.key_rows_by_id(key_id)? {
            if held.state == "live" {
                self.republish(admin, &held.project, held.pair)?;
            }
        }
        Ok(())
    }
}

/// Each key with a reset in the catalog: its term, current period and closed usage.
pub(super) fn period_marks(catalog: &Catalog) -> Result<BTreeMap<String, PeriodMark>> {
    let closed = catalog.closed_usage()?;
    let mut marks = BTreeMap::new();
    for account in catalog.periodic_accounts()? {
        let closed = closed.get(&account.key).copied().unwrap_or(0);
        let mark = PeriodMark {
            reset: account.reset,
            start: account.start,
            closed,
        };
        marks.insert(account.key, mark);
    }
    Ok(marks)
}

/// A change of a key's usage period made by the ratchet that records it (see
/// `engine::periods`): a period closed, or the first one started. Its catalog writes are made
/// in the ratchet's transaction, so a period the ratchet does not cover never exists,
/// and the change is checked against the last ratchet before it commits: a period start or
/// term edited in `catalog.db` cannot be closed into forgiven usage.
pub(super) struct PeriodChange<'a> {
    /// The key.
    pub key: &'a str,
    /// Its term and period start before the change, as the last ratchet must hold them;
    /// `None` for a key whose periods start now.
    pub from: Option<(Period, i64)>,
    /// Its term and period start after the change.
    pub to: (Period, i64),
    /// Writes the change into the catalog.
    pub write: &'a dyn Fn(&rusqlite::Transaction<'_>) -> Result<()>,
}

/// Whether, at `now`, a period of some key of the catalog has ended, or a hot account of
/// `state` lags its catalog period.
fn period_due(state: &StateFile, catalog: &Catalog, now: u32) -> Result<bool> {
    for account in catalog.periodic_accounts()? {
        let hot = state.account_record(account.record).period();
        let lags = hot != account.start as u64;
        if lags || account.reset.start_of(i64::from(now)) > account.start {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A Unix second as RFC 3339 (periods start at midnights well inside `u32`).
fn unix_text(secs: i64) -> String {
    crate::key::rfc3339_secs(u32::try_from(secs).unwrap_or(u32::MAX))
}
