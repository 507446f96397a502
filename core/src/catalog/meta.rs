//! The catalog's meta table: the state's identity, the installation that ratcheted it, the
//! latest time seen, and one-time flags.

use super::*;

impl Catalog {
    /// The state's identity (16 hex digits), made once at random: anchors outside the state are
    /// kept by it.
    pub(crate) fn state_id(&self) -> Result<String> {
        let read = || {
            self.conn
                .query_row("SELECT value FROM meta WHERE name = 'state_id'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map_err(Error::store("read the state id"))
        };
        if let Some(id) = read()? {
            return Ok(format!("{:016x}", id as u64));
        }
        let seed = format!(
            "{}|{:?}|{}",
            std::process::id(),
            std::time::SystemTime::now(),
            self.path.display()
        );
        let hash = blake3::hash(seed.as_bytes());
        let id = i64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('state_id', ?1)",
                [id],
            )
            .map_err(Error::store("record the state id"))?;
        Ok(format!("{:016x}", read()?.unwrap_or(id) as u64))
    }

    /// The id of the installation that made the state's last ratchet (see
    /// `Installation::id`), or `None` for a state ratcheted before it was recorded.
    pub(crate) fn installation_id(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'installation_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read the installation id"))
    }

    /// Records `id` as the installation that made the state's last ratchet.
    pub(crate) fn set_installation_id(tx: &Transaction<'_>, id: i64) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('installation_id', ?1)",
            [id],
        )
        .map(drop)
        .map_err(Error::store("record the installation id"))
    }

    /// The latest Unix second any engine on this state has seen, with its MAC (`None` before
    /// the time had one), or `None` when none is recorded yet.
    pub(crate) fn latest_time(&self) -> Result<Option<(u32, Option<i64>)>> {
        // One statement, so one snapshot: read in two, another process's commit of a later
        // time between them paired the old time with the new MAC, a false `TimeEdited`.
        let (secs, mac): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE name = 'latest_seen'),
                        (SELECT value FROM meta WHERE name = 'latest_seen_mac')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(Error::store("read the latest time seen"))?;
        Ok(secs.map(|secs| (u32::try_from(secs).unwrap_or(0), mac)))
    }

    /// Records `unix_secs` as the latest time seen, with its MAC: only if it is later than the
    /// recorded one, unless `lower`. Returns whether it was recorded.
    pub(crate) fn set_latest_time(&self, unix_secs: u32, mac: i64, lower: bool) -> Result<bool> {
        let tx = self.begin()?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = 'latest_seen'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read the latest time seen"))?;
        if !lower && current.is_some_and(|c| c >= i64::from(unix_secs)) {
            return Ok(false);
        }
        for (name, value) in [
            ("latest_seen", i64::from(unix_secs)),
            ("latest_seen_mac", mac),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
                params![name, value],
            )
            .map_err(Error::store("record the latest time seen"))?;
        }
        tx.commit()
            .map_err(Error::store("commit the latest time seen"))?;
        Ok(true)
    }

    /// Whether the meta flag `name` is set.
    pub(crate) fn flag(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v == Some(1))
            .map_err(Error::store("read catalog flag"))
    }

    /// Sets the meta flag `name`.
    pub(crate) fn set_flag(&self, name: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, 1)",
                [name],
            )
            .map(drop)
            .map_err(Error::store("set catalog flag"))
    }
}
