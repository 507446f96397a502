//! The in-process contestants of the comparison: each performs the same operation — admit
//! `1` byte against a project's limit and charge it — in its own way.

mod atomic;
mod dashmap_row;
mod locked_map;
mod redis;
mod shared_key;
mod sqlite;
mod tollgate;

pub use atomic::{BareAtomic, BareCas, CasWord, Padded};
pub use dashmap_row::DashMapRow;
pub use locked_map::{LockedMap, ParkingLotMutex, StdMutex};
pub use redis::{Redis, REDIS_ENV};
pub use shared_key::{refill_json, refill_table, RefillSetup, TollgateRefill, TollgateSharedKey};
pub use sqlite::SqliteRow;
pub use tollgate::{TollgateConsume, TollgateThreadConsume};

use crate::fixture::BenchResult;
use crate::harness::{Sharing, Worker};

/// The limit every baseline row starts with: what a Tollgate project holds (Active + Reserved).
pub const ROW_LIMIT: u64 = 2 * tollgate_core::MAX_LIMIT_BYTES;

/// One way of metering, measured by the harness.
pub trait Contestant {
    /// Short stable name, used as the JSON key.
    fn name(&self) -> &'static str;
    /// The operation one call performs, for the table.
    fn op(&self) -> &'static str;
    /// Calls per timed sample: large for nanosecond operations, small for slow ones.
    fn batch(&self) -> u64 {
        1_000
    }
    /// Whether the measuring window should be shortened (slow contestants need fewer calls).
    fn slow(&self) -> bool {
        false
    }
    /// Whether this contestant runs at `threads` and `sharing`: every configuration unless it
    /// says otherwise (the key-account cases run only where they answer a question).
    fn runs_at(&self, threads: usize, sharing: Sharing) -> bool {
        let _ = (threads, sharing);
        true
    }
    /// One worker per thread, metering the project(s) `sharing` assigns.
    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>>;
}

/// A project's usage row, as a vendor would keep it by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes charged so far.
    pub used: u64,
    /// Bytes the licence allows.
    pub limit: u64,
}

impl Usage {
    /// A fresh row allowing [`ROW_LIMIT`] bytes.
    pub fn fresh() -> Usage {
        Usage {
            used: 0,
            limit: ROW_LIMIT,
        }
    }

    /// The check-and-add every baseline performs: charge `n` if it fits, else refuse.
    #[inline]
    pub fn try_add(&mut self, n: u64) -> bool {
        if self.used + n <= self.limit {
            self.used += n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_and_add_refuses_past_the_limit() {
        let mut row = Usage { used: 0, limit: 3 };
        assert!(row.try_add(2));
        assert!(!row.try_add(2));
        assert!(row.try_add(1));
        assert_eq!(row.used, 3);
    }
}
