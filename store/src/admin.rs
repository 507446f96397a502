//! The fleet's admin log: admin changes made with a fleet store, in commit order, which every
//! host applies to its own state after the last one it applied. Appending notifies channel
//! `tollgate_admin` in the same transaction, so listening hosts learn of a change when it
//! commits, not at their next poll.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use crate::error::Result;
use crate::Store;

/// The channel a change's NOTIFY is sent on.
const CHANNEL: &str = "tollgate_admin";

/// The transaction-scoped advisory lock every append takes before it draws its `seq`: "tgadmin"
/// in ASCII, beside the migrations' lock.
const APPEND_LOCK: i64 = 0x0074_6761_646d_696e;

/// One admin change of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminChange {
    /// Its place in the log: changes are applied in this order.
    pub seq: i64,
    /// The host it was made on.
    pub host: String,
    /// What it changes (the engine's own text; the store does not read it).
    pub change: String,
}

impl Store {
    /// Appends `change`, made on `host`, to the admin log and notifies the listening hosts, in
    /// one transaction. Returns its place in the log.
    ///
    /// Appends are serialized (an advisory lock held to the commit), so the log's order is its
    /// commit order: a host that has read change `n` never finds a change below `n` committed
    /// later, which an identity drawn by two concurrent appends would allow.
    pub fn append_admin(&mut self, host: &str, change: &str) -> Result<i64> {
        let client = self.client()?;
        let result = (|| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])?;
            let seq: i64 = tx
                .query_one(
                    "INSERT INTO tollgate_admin (host, change) VALUES ($1, $2) RETURNING seq",
                    &[&host, &change],
                )?
                .get(0);
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])?;
            tx.commit()?;
            Ok(seq)
        })();
        self.check(result)
    }

    /// A number no other call, on any host, ever gets (from sequence `tollgate_number`): a pool
    /// purchase's number or an assignment's serial, which the host making the change carries
    /// in it so every host applies the same one. Numbers start at 1; a number taken for a
    /// change that is never appended is skipped.
    pub fn next_number(&mut self) -> Result<i64> {
        let client = self.client()?;
        let result = client
            .query_one("SELECT nextval('tollgate_number')", &[])
            .map(|row| row.get(0))
            .map_err(Into::into);
        self.check(result)
    }

    /// The changes after `seq`, oldest first, at most `limit`.
    pub fn admin_since(&mut self, seq: i64, limit: i64) -> Result<Vec<AdminChange>> {
        let client = self.client()?;
        let result = client
            .query(
                "SELECT seq, host, change FROM tollgate_admin WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq, &limit],
            )
            .map(|rows| {
                rows.iter()
                    .map(|row| AdminChange {
                        seq: row.get(0),
                        host: row.get(1),
                        change: row.get(2),
                    })
                    .collect()
            })
            .map_err(Into::into);
        self.check(result)
    }

    /// Whether a change was appended since the last call, as far as this connection was told:
    /// listens on its first call (and again on a new connection, which reports a change then,
    /// since one may have been missed). Waits at most `wait` for a notification.
    pub fn admin_notified(&mut self, wait: Duration) -> Result<bool> {
        // Connects first: a new connection is not listening yet.
        self.client()?;
        if !self.listening {
            let client = self.client()?;
            let result = client
                .batch_execute("LISTEN tollgate_admin")
                .map_err(Into::into);
            self.check(result)?;
            self.listening = true;
            return Ok(true);
        }
        let client = self.client()?;
        let result = (|| {
            let mut notifications = client.notifications();
            let mut seen = false;
            let mut pending = notifications.timeout_iter(wait);
            while let Some(notification) = pending.next()? {
                seen |= notification.channel() == CHANNEL;
            }
            Ok(seen)
        })();
        self.check(result)
    }
}
