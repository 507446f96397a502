//! The catalog side of fleet mode (`engine::fleet`): which host the state meters for, and the
//! ledger of the fleet store's leases this host holds, so that a host killed mid-run settles
//! them exactly when it comes back.

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::{Error, Result};

/// A fleet store lease as this host's ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseEntry {
    /// The store's lease id.
    pub id: i64,
    /// The block, charged to the key's store account when taken.
    pub granted: u64,
    /// What this host drew of it (may grant from).
    pub drawn: u64,
    /// The usage the store last acknowledged.
    pub reported: u64,
    /// The last renewal the store applied.
    pub seq: u64,
    /// Where its drawn part starts in the key's stock (`supply` before its first draw).
    pub base: u64,
    /// Whether the store closed it (expired) before this host settled it.
    pub lapsed: bool,
    /// How much of its drawn part a closing engine withdrew from the stock unused: it is
    /// settled as `drawn - returned`.
    pub returned: u64,
}

impl Catalog {
    /// The host this state meters for in a fleet; `None` for an embedded state.
    pub(crate) fn fleet_host(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT name FROM fleet_host", [], |r| r.get(0))
            .optional()
            .map_err(Error::store("read the fleet host"))
    }

    /// Records `name` as the host this state meters for (once, at its first fleet open).
    pub(crate) fn set_fleet_host(&self, name: &str) -> Result<()> {
        self.conn
            .execute("INSERT INTO fleet_host (one, name) VALUES (1, ?1)", [name])
            .map(drop)
            .map_err(Error::store("record the fleet host"))
    }

    /// The last change of the fleet's admin log this state applied (0: none).
    pub(crate) fn fleet_admin_seq(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT admin_seq FROM fleet_host", [], |r| r.get(0))
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(Error::store("read the fleet admin position"))
    }

    /// Records `seq` as the last change of the fleet's admin log this state applied.
    pub(crate) fn set_fleet_admin_seq(&self, seq: i64) -> Result<()> {
        self.conn
            .execute("UPDATE fleet_host SET admin_seq = ?1", [seq])
            .map(drop)
            .map_err(Error::store("record the fleet admin position"))
    }

    /// The leases this host holds of key `key_id`, in the order their draws fill its stock.
    pub(crate) fn fleet_leases(&self, key_id: &str) -> Result<Vec<LeaseEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, granted, drawn, reported, seq, base, lapsed, returned FROM fleet_leases
                  WHERE key_id = ?1 ORDER BY base, id",
            )
            .map_err(Error::store("read the fleet leases"))?;
        let n = |r: &rusqlite::Row<'_>, i| r.get::<_, i64>(i).map(|v| v as u64);
        let rows = stmt
            .query_map([key_id], |r| {
                Ok(LeaseEntry {
                    id: r.get(0)?,
                    granted: n(r, 1)?,
                    drawn: n(r, 2)?,
                    reported: n(r, 3)?,
                    seq: n(r, 4)?,
                    base: n(r, 5)?,
                    lapsed: r.get(6)?,
                    returned: n(r, 7)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(Error::store("read the fleet leases"))?;
        Ok(rows)
    }

    /// Records (or updates) lease `entry` of key `key_id`.
    pub(crate) fn put_fleet_lease(&self, key_id: &str, entry: &LeaseEntry) -> Result<()> {
        let i = |v: u64| v as i64;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO fleet_leases
                   (id, key_id, granted, drawn, reported, seq, base, lapsed, returned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    entry.id,
                    key_id,
                    i(entry.granted),
                    i(entry.drawn),
                    i(entry.reported),
                    i(entry.seq),
                    i(entry.base),
                    entry.lapsed,
                    i(entry.returned)
                ],
            )
            .map(drop)
            .map_err(Error::store("record a fleet lease"))
    }

    /// Forgets lease `id`, settled with the store.
    pub(crate) fn drop_fleet_lease(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM fleet_leases WHERE id = ?1", [id])
            .map(drop)
            .map_err(Error::store("forget a settled fleet lease"))
    }
}
