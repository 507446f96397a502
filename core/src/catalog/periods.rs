//! The catalog side of usage periods (rule R40 in docs/rules.md): each reset key's current
//! period, what its rows had used when the last period closed, and the closed periods.

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::Catalog;
use crate::error::{Corruption, Error, Result};
use crate::period::Period;

/// The account of a key with a reset, as the catalog holds it.
#[derive(Debug, Clone)]
pub(crate) struct PeriodicAccount {
    /// The key id.
    pub key: String,
    /// Its hot-state record.
    pub record: u32,
    /// Its `reset` term (the account's: it is what the ratchets cover).
    pub reset: Period,
    /// When its current period started (Unix seconds).
    pub start: i64,
}

/// A closed usage period of a key with a `reset` term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedPeriod {
    /// The key id.
    pub key: String,
    /// When the period started (Unix seconds).
    pub starts_at: i64,
    /// When the next period started (Unix seconds): the boundary the reset was made for.
    pub ends_at: i64,
    /// Bytes used in the period, over every project holding the key.
    pub used: u64,
    /// When the reset was made (RFC 3339).
    pub closed_at: String,
}

impl Catalog {
    /// Every account of a key with a reset, by record.
    pub(crate) fn periodic_accounts(&self) -> Result<Vec<PeriodicAccount>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key_id, record, reset, period FROM accounts WHERE period IS NOT NULL
                 ORDER BY record",
            )
            .map_err(Error::store("list periodic accounts"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(Error::store("list periodic accounts"))?;
        let mut accounts = Vec::new();
        for row in rows {
            let (key, record, reset, start) = row.map_err(Error::store("read periodic account"))?;
            let reset = reset
                .as_deref()
                .and_then(|word| serde_json::from_value(word.into()).ok())
                .ok_or_else(|| self.corrupt(Corruption::NoResetTerm { key: key.clone() }))?;
            accounts.push(PeriodicAccount {
                key,
                record,
                reset,
                start,
            });
        }
        Ok(accounts)
    }

    /// Starts the account of `key_id` counting periods of `reset` at `start` (its first).
    pub(crate) fn start_periods(
        tx: &Transaction<'_>,
        key_id: &str,
        reset: Period,
        start: i64,
    ) -> Result<()> {
        tx.execute(
            "UPDATE accounts SET reset = ?2, period = ?3 WHERE key_id = ?1",
            params![key_id, reset.as_str(), start],
        )
        .map(drop)
        .map_err(Error::store("start key periods"))
    }

    /// Moves the account of `key_id` to the period starting at `start`.
    fn next_period(tx: &Transaction<'_>, key_id: &str, start: i64) -> Result<()> {
        tx.execute(
            "UPDATE accounts SET period = ?2 WHERE key_id = ?1",
            params![key_id, start],
        )
        .map(drop)
        .map_err(Error::store("start the next period"))
    }

    /// Closes the period of `key_id` that started at `period.starts_at`: records it, moves the
    /// account to the period starting at `period.ends_at`, and sets what each row had used
    /// (`closed`: row, usage) when it closed.
    pub(crate) fn close_period(
        tx: &Transaction<'_>,
        period: &ClosedPeriod,
        closed: &[(u32, u64)],
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO periods (key_id, starts_at, ends_at, used, closed_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                period.key,
                period.starts_at,
                period.ends_at,
                period.used,
                period.closed_at
            ],
        )
        .map_err(Error::store("record closed period"))?;
        Catalog::next_period(tx, &period.key, period.ends_at)?;
        let mut stmt = tx
            .prepare_cached("UPDATE keys SET closed_used = ?2 WHERE row = ?1")
            .map_err(Error::store("record closed usage"))?;
        for (row, used) in closed {
            stmt.execute(params![row, used])
                .map_err(Error::store("record closed usage"))?;
        }
        Ok(())
    }

    /// The closed periods of `key_id`, oldest first.
    pub(crate) fn periods_of(&self, key_id: &str) -> Result<Vec<ClosedPeriod>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key_id, starts_at, ends_at, used, closed_at FROM periods
                 WHERE key_id = ?1 ORDER BY starts_at",
            )
            .map_err(Error::store("list closed periods"))?;
        let rows = stmt
            .query_map([key_id], |r| {
                Ok(ClosedPeriod {
                    key: r.get(0)?,
                    starts_at: r.get(1)?,
                    ends_at: r.get(2)?,
                    used: r.get(3)?,
                    closed_at: r.get(4)?,
                })
            })
            .map_err(Error::store("list closed periods"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(Error::store("list closed periods"))
    }

    /// Bytes the closed periods of each key used, by key id, for keys whose rows closed any.
    pub(crate) fn closed_usage(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, SUM(closed_used) FROM keys GROUP BY id HAVING SUM(closed_used) > 0",
            )
            .map_err(Error::store("sum closed usage"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(Error::store("sum closed usage"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(Error::store("sum closed usage"))
    }
}
