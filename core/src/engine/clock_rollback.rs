//! Clock rollback (issue: tampering): the state keeps the latest time any engine on it has seen,
//! expiry is judged by that time, and a clock set back by more than the tolerance is reported.
//!
//! The latest time lives in the catalog, under a MAC keyed by the installation (rule R32 in
//! docs/rules.md), and in a copy beside the state's anchor in the installation directory, which a
//! catalog value replayed from an older copy cannot lower; and in the process's [`Clock`], whose
//! reading never goes backwards. At open the clock is advanced to the state's latest time, so
//! restarting the program with the clock set back does not revive an expired key. While open, the
//! event dispatcher's thread records the time every [`PERSIST_EVERY`] and at once when the hot path
//! reports a key expired (a refusal or a switch for expiry), off the hot path; the engine's
//! background thread compares the clock's source with its latest second once a second.
//!
//! A clock once set in the future leaves its time behind for good: `Engine::accept_clock` (`tollgate
//! state accept-clock`) lowers the latest time seen to the clock's reading, an operator decision
//! audited in the chain the ratchets cover (see `engine::ratchet`).

use std::time::Duration;

use super::ratchet::Installation;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Error, Result, Rollback};
use crate::event::EventKind;
use crate::events::{HotQueue, NO_RECORD};
use crate::key::rfc3339_secs;
use crate::slot::PairEvent;

/// How often a running engine records the latest time seen, at most.
pub(super) const PERSIST_EVERY: u32 = 5;

/// The latest time seen recorded for the state: the later of the catalog's, whose MAC must
/// verify, and the installation's copy. `Err` says what is wrong with the catalog's; the
/// installation's copy alone is then the other value.
pub(super) fn recorded(
    catalog: &Catalog,
    installation: &Installation,
    state_id: &str,
) -> Result<(u32, Option<Rollback>)> {
    let seen = installation.seen(state_id)?;
    let kept = seen.unwrap_or(0);
    Ok(match catalog.latest_time()? {
        None => (kept, None),
        Some((secs, Some(mac))) if mac == installation.time_mac(state_id, secs) => {
            (secs.max(kept), None)
        }
        // Recorded before the time had a MAC, and this installation kept none.
        Some((secs, None)) if seen.is_none() => (secs, None),
        Some((secs, _)) => (
            kept,
            Some(Rollback::TimeEdited {
                time: rfc3339_secs(secs),
            }),
        ),
    })
}

/// Records `secs` as the latest time seen, in the catalog with its MAC and in the
/// installation's copy: raised only, unless `lower` (an operator's accepted clock).
fn record(
    catalog: &Catalog,
    installation: &Installation,
    state_id: &str,
    secs: u32,
    lower: bool,
) -> Result<()> {
    let mac = installation.time_mac(state_id, secs);
    if catalog.set_latest_time(secs, mac, lower)? || lower {
        installation.write_seen(state_id, secs)?;
    }
    Ok(())
}

/// Lowers the latest time seen to `secs` (`Engine::accept_clock`; the decision is audited by
/// the ratchet made at open).
pub(super) fn lower(
    catalog: &Catalog,
    installation: &Installation,
    state_id: &str,
    secs: u32,
) -> Result<()> {
    record(catalog, installation, state_id, secs, true)
}

/// Checks at open: advances `clock` to the state's latest time `latest`, reports a rollback
/// beyond `tolerance` as an event, and records the time now seen.
pub(super) fn watch_at_open(
    catalog: &Catalog,
    installation: &Installation,
    state_id: &str,
    clock: &Clock,
    tolerance: Duration,
    latest: u32,
) -> Result<()> {
    clock.advance_to(latest);
    let behind = clock.rolled_back();
    if u64::from(behind) > tolerance.as_secs() {
        let event = EventKind::ClockRolledBack {
            behind_secs: behind,
            latest_seen: rfc3339_secs(clock.now()),
        };
        let tx = catalog.begin()?;
        Catalog::append_events_in(&tx, &[(String::new(), event)])?;
        tx.commit()
            .map_err(Error::store("commit clock rollback event"))?;
    }
    record(catalog, installation, state_id, clock.now(), false)
}

/// Records the latest time seen while an engine runs, on the event dispatcher's thread.
pub(super) struct Keeper {
    clock: Clock,
    installation: Installation,
    state_id: String,
    /// The time last recorded.
    recorded: u32,
}

impl Keeper {
    /// A keeper for the state `state_id`, whose latest time was just recorded at open.
    pub(super) fn new(clock: Clock, installation: Installation, state_id: String) -> Keeper {
        Keeper {
            recorded: clock.now(),
            clock,
            installation,
            state_id,
        }
    }

    /// Records the time if it moved on by [`PERSIST_EVERY`], or at all when `expired` (a key
    /// was seen expired). A failure is retried at the next call.
    pub(super) fn tick(&mut self, catalog: &Catalog, expired: bool) {
        let now = self.clock.now();
        if now <= self.recorded || (!expired && now < self.recorded.saturating_add(PERSIST_EVERY)) {
            return;
        }
        if record(catalog, &self.installation, &self.state_id, now, false).is_ok() {
            self.recorded = now;
        }
    }
}

/// The running check: one rollback event per episode (until the clock catches up again).
pub(super) struct Watch {
    clock: Clock,
    tolerance: u64,
    reported: bool,
}

impl Watch {
    /// A watch on `clock`; a rollback already present was reported by [`watch_at_open`].
    pub(super) fn new(clock: Clock, tolerance: Duration) -> Watch {
        let tolerance = tolerance.as_secs();
        Watch {
            reported: u64::from(clock.rolled_back()) > tolerance,
            clock,
            tolerance,
        }
    }

    /// Looks at the clock once; pushes a `clock_rolled_back` event when a rollback starts.
    pub(super) fn check(&mut self, events: &HotQueue) {
        let behind = self.clock.rolled_back();
        let rolled_back = u64::from(behind) > self.tolerance;
        if rolled_back && !self.reported {
            events.push(
                NO_RECORD,
                PairEvent::ClockRolledBack {
                    behind,
                    latest: self.clock.now(),
                },
            );
        }
        self.reported = rolled_back;
    }
}
