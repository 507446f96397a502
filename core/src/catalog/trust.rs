//! The catalog table of trusted vendor public keys. Keys are only ever added.

use rusqlite::{params, Transaction};

use super::Catalog;
use crate::error::{Error, Result};

impl Catalog {
    /// Every trusted vendor key as stored — its base64 and when it was trusted (RFC 3339) —
    /// in the order they were trusted.
    pub(crate) fn trusted_keys(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT public, added_at FROM trusted_keys ORDER BY rowid")
            .map_err(Error::store("list trusted keys"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(Error::store("list trusted keys"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(Error::store("list trusted keys"))
    }

    /// Records `public` (base64) as trusted; false when it already was.
    pub(crate) fn trust_key(tx: &Transaction<'_>, public: &str, at: &str) -> Result<bool> {
        tx.execute(
            "INSERT OR IGNORE INTO trusted_keys (public, added_at) VALUES (?1, ?2)",
            params![public, at],
        )
        .map(|inserted| inserted == 1)
        .map_err(Error::store("record a trusted key"))
    }
}
