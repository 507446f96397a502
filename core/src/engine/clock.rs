//! Clock rollback (issue: tampering): the state keeps the latest time any engine on it has seen,
//! expiry is judged by that time, and a clock set back by more than the tolerance is reported.
//!
//! The latest time lives in the catalog (raised at open and at every usage checkpoint) and in
//! the process's [`Clock`], whose reading never goes backwards. At open the clock is advanced to
//! the state's latest time, so restarting the program with the clock set back does not revive an
//! expired key; while open, the engine's background thread compares the clock's source with its
//! latest second once a second.

use std::time::Duration;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::Result;
use crate::events::{EventKind, HotQueue, NO_RECORD};
use crate::slot::PairEvent;

/// Checks at open: advances `clock` to the state's latest time, reports a rollback beyond
/// `tolerance` as an event, and records the time now seen.
pub(super) fn watch_at_open(catalog: &Catalog, clock: &Clock, tolerance: Duration) -> Result<()> {
    let latest = catalog.latest_time()?;
    clock.advance_to(latest);
    let behind = clock.rolled_back();
    if u64::from(behind) > tolerance.as_secs() {
        let event = EventKind::ClockRolledBack {
            behind_secs: behind,
            latest_seen: crate::key::rfc3339(
                time::OffsetDateTime::from_unix_timestamp(i64::from(clock.now()))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            ),
        };
        let tx = catalog.begin()?;
        Catalog::append_events_in(&tx, &[(String::new(), event)])?;
        tx.commit()
            .map_err(crate::error::Error::store("commit clock rollback event"))?;
    }
    catalog.remember_time(clock.now())
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
