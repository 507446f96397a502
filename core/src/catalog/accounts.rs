//! The catalog side of key accounts: which hot-state record is each data-volume key's account,
//! and every use of a key across the pairs that hold or held it.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Catalog, PairRow, ProjectRow};
use crate::error::{Error, Result};

/// One row of a key id in a data-volume pair: where it is and what it used there.
#[derive(Debug, Clone)]
pub(crate) struct KeyUse {
    pub row: u32,
    pub project: ProjectRow,
    pub pair: PairRow,
    /// `pending`, `live`, `retired` or `removed`.
    pub state: String,
    /// The pair's final use of the key, once it left the pair's slots.
    pub final_used: Option<u64>,
    /// What the pair had used of the key when the key's last usage period closed (0 for a key
    /// without a reset): its use in the current period is what it used beyond this.
    pub closed_used: u64,
}

impl Catalog {
    /// The record of the account of key `key_id`, if it has one.
    pub(crate) fn account_record(&self, key_id: &str) -> Result<Option<u32>> {
        self.conn
            .query_row(
                "SELECT record FROM accounts WHERE key_id = ?1",
                [key_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("look up key account"))
    }

    /// Records `record` as the account of key `key_id`.
    pub(crate) fn insert_account(tx: &Transaction<'_>, key_id: &str, record: u32) -> Result<()> {
        tx.execute(
            "INSERT INTO accounts (key_id, record) VALUES (?1, ?2)",
            params![key_id, record],
        )
        .map(drop)
        .map_err(Error::store("record key account"))
    }

    /// Every row of key `key_id` in a data-volume pair, oldest first.
    pub(crate) fn key_rows_by_id(&self, key_id: &str) -> Result<Vec<KeyUse>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT k.row, p.id, p.name, r.record, r.class, r.synced_epoch, k.state,
                        k.final_used, k.closed_used
                 FROM keys k JOIN pairs r ON r.record = k.record
                 JOIN projects p ON p.id = r.project_id
                 WHERE k.id = ?1 ORDER BY k.row",
            )
            .map_err(Error::store("list key uses"))?;
        let rows = stmt
            .query_map([key_id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    ProjectRow {
                        id: r.get(1)?,
                        name: r.get(2)?,
                    },
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<u64>>(7)?,
                    r.get::<_, u64>(8)?,
                ))
            })
            .map_err(Error::store("list key uses"))?;
        let mut uses = Vec::new();
        for row in rows {
            let (row, project, record, class, synced_epoch, state, final_used, closed_used) =
                row.map_err(Error::store("read key use"))?;
            uses.push(KeyUse {
                row,
                project,
                pair: PairRow {
                    record,
                    class: self.class(&class)?,
                    synced_epoch,
                },
                state,
                final_used,
                closed_used,
            });
        }
        Ok(uses)
    }

    /// Every key id that has an account, with its record.
    pub(crate) fn accounts(&self) -> Result<Vec<(String, u32)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key_id, record FROM accounts ORDER BY record")
            .map_err(Error::store("list key accounts"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(Error::store("list key accounts"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(Error::store("list key accounts"))
    }
}
