//! Keys in the catalog: pending, live and retired rows of each pair, and a pair's rows brought
//! in line with its hot generation.

use super::*;

impl Catalog {
    /// Every key document stored under `id`, with the record of the pair holding it.
    pub(crate) fn key_uses(&self, id: &str) -> Result<Vec<(u32, Key)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record, json FROM keys WHERE id = ?1")
            .map_err(Error::store("look up key id"))?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .map_err(Error::store("look up key id"))?;
        let mut uses = Vec::new();
        for row in rows {
            let (record, json) = row.map_err(Error::store("look up key id"))?;
            let key = serde_json::from_str(&json).map_err(|e| {
                self.corrupt(Corruption::KeyJson {
                    id: id.to_owned(),
                    error: e.to_string(),
                })
            })?;
            uses.push((record, key));
        }
        Ok(uses)
    }

    /// Final usage of every retired data-volume key, by row.
    pub(crate) fn retired_usage(&self) -> Result<HashMap<u32, u64>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT k.row, k.final_used FROM keys k JOIN pairs r ON r.record = k.record
                 WHERE k.state = 'retired' AND k.final_used IS NOT NULL
                   AND r.class = 'data_volume'",
            )
            .map_err(Error::store("sum retired usage"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>());
        rows.map_err(Error::store("sum retired usage"))
    }

    /// Inserts a key that is about to be published, and returns its row id.
    pub(crate) fn insert_pending_key(&self, record: u32, key: &Key, at: &str) -> Result<u32> {
        self.conn
            .execute(
                "INSERT INTO keys (id, record, json, state, added_at) VALUES (?1, ?2, ?3, 'pending', ?4)",
                params![key.id, record, key.to_json(), at],
            )
            .map_err(Error::store("insert key"))?;
        u32::try_from(self.conn.last_insert_rowid())
            .map_err(|_| Error::invalid("key", "the catalog holds more than 4 billion keys"))
    }

    pub(crate) fn delete_pending_key(&self, row: u32) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM keys WHERE row = ?1 AND state = 'pending'",
                [row],
            )
            .map_err(Error::store("delete pending key"))?;
        Ok(())
    }

    /// Every key row of a pair, by row id.
    pub(crate) fn keys_of(&self, record: u32) -> Result<HashMap<u32, KeyRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT row, json, state, final_used, closed_used FROM keys WHERE record = ?1",
            )
            .map_err(Error::store("list keys"))?;
        let rows = stmt
            .query_map([record], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<u64>>(3)?,
                    r.get::<_, u64>(4)?,
                ))
            })
            .map_err(Error::store("list keys"))?;
        let mut keys = HashMap::new();
        for row in rows {
            let (row, json, state, final_used, closed_used) =
                row.map_err(Error::store("read key"))?;
            let key = serde_json::from_str(&json).map_err(|e| {
                self.corrupt(Corruption::KeyRowJson {
                    row,
                    error: e.to_string(),
                })
            })?;
            keys.insert(
                row,
                KeyRow {
                    key,
                    state,
                    final_used,
                    closed_used,
                },
            );
        }
        Ok(keys)
    }

    /// Brings the catalog's view of a pair in line with its hot state: keys in the slots are
    /// live, keys the hot state retired get their final usage, pending keys that never made it
    /// into a slot are dropped. Returns whether anything changed.
    pub(crate) fn sync_pair(
        tx: &Transaction<'_>,
        record: u32,
        state: &PairState,
        at: &str,
    ) -> Result<bool> {
        let mut changed = 0;
        let store = Error::store("sync pair");
        let mut live = Vec::new();
        for slot in [state.active, state.reserve].into_iter().flatten() {
            live.push(slot.key);
            changed += tx
                .execute(
                    "UPDATE keys SET state = 'live' WHERE row = ?1 AND state = 'pending'",
                    [slot.key],
                )
                .map_err(Error::store("sync pair"))?;
        }
        for (row, used) in [state.switched_out, state.published_retired]
            .into_iter()
            .flatten()
        {
            changed += tx
                .execute(
                    "UPDATE keys SET state = 'retired', final_used = ?2, ended_at = ?3
                     WHERE row = ?1 AND state IN ('pending', 'live')",
                    params![row, used, at],
                )
                .map_err(Error::store("sync pair"))?;
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT row FROM keys WHERE record = ?1 AND state IN ('pending', 'live')",
            )
            .map_err(Error::store("sync pair"))?;
        let stale: Vec<u32> = stmt
            .query_map([record], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(Error::store("sync pair"))?;
        for row in stale.into_iter().filter(|row| !live.contains(row)) {
            // A pending key that never reached a slot was never added: forget it, so its id can
            // be used again. A live key that left its slot without a recorded usage is retired.
            changed += tx
                .execute(
                    "DELETE FROM keys WHERE row = ?1 AND state = 'pending'",
                    [row],
                )
                .map_err(Error::store("sync pair"))?;
            changed += tx
                .execute(
                    "UPDATE keys SET state = 'retired', ended_at = ?2 WHERE row = ?1 AND state = 'live'",
                    params![row, at],
                )
                .map_err(Error::store("sync pair"))?;
        }
        changed += tx
            .execute(
                "UPDATE pairs SET synced_epoch = ?2 WHERE record = ?1 AND synced_epoch != ?2",
                params![record, state.epoch],
            )
            .map_err(store)?;
        Ok(changed > 0)
    }

    /// Marks a key that a switch moved out of its slot as retired with its final usage.
    pub(crate) fn retire_key(tx: &Transaction<'_>, row: u32, used: u64, at: &str) -> Result<()> {
        tx.execute(
            "UPDATE keys SET state = 'retired', final_used = ?2, ended_at = ?3
             WHERE row = ?1 AND state IN ('pending', 'live')",
            params![row, used, at],
        )
        .map_err(Error::store("retire key"))?;
        Ok(())
    }

    /// Marks a reserve key as removed from its slot.
    pub(crate) fn end_key(tx: &Transaction<'_>, row: u32, state: &str, at: &str) -> Result<()> {
        tx.execute(
            "UPDATE keys SET state = ?2, ended_at = ?3 WHERE row = ?1",
            params![row, state, at],
        )
        .map_err(Error::store("end key"))?;
        Ok(())
    }

    pub(crate) fn key_id(&self, row: u32) -> Result<String> {
        self.conn
            .query_row("SELECT id FROM keys WHERE row = ?1", [row], |r| r.get(0))
            .map_err(Error::store("look up key"))
    }
}
