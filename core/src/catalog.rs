//! The cold store: project names, pair records, key details, retired usage and the audit log, in
//! an embedded SQLite database (WAL mode, `synchronous=FULL`), shared by every process that opens
//! the state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::events::{CheckedKey, Event, EventKind};
use crate::key::{Key, LicenseClass};
use crate::slot::PairState;

mod accounts;
mod pools;
mod trust;

pub(crate) use accounts::KeyUse;
pub(crate) use pools::{InstanceRow, LicenseRow};

/// Version of the catalog schema this build reads and writes. Older versions are upgraded in
/// place at open: version 1 (before pools, groups and keys shared by several projects),
/// version 2 (before trusted vendor keys) and version 3 (before key accounts).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE pairs (
    record INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    class TEXT NOT NULL,
    synced_epoch INTEGER NOT NULL,
    UNIQUE (project_id, class)
);
KEYS_TABLE
CREATE TABLE switches (key_row INTEGER PRIMARY KEY);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    project TEXT NOT NULL,
    json TEXT NOT NULL
);
POOL_TABLES
TRUST_TABLE
ACCOUNTS_TABLE
";

/// The key table. A key id names one key document; the same document may sit in the pairs of
/// several projects (the activation task of rule R8 in docs/rules.md adds one reserve key to every
/// SVM of a cluster), but only once per pair.
const KEYS_TABLE: &str = "
CREATE TABLE keys (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    record INTEGER NOT NULL REFERENCES pairs(record),
    json TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'retired', 'removed')),
    final_used INTEGER,
    added_at TEXT NOT NULL,
    ended_at TEXT,
    UNIQUE (id, record)
);
CREATE INDEX keys_by_id ON keys (id);
CREATE INDEX keys_by_record ON keys (record);
CREATE INDEX keys_pending ON keys (record) WHERE state = 'pending';
";

/// Groups, companies, purchases, pool licenses and instances (rules R8 and R22–R26 in
/// docs/rules.md).
const POOL_TABLES: &str = "
CREATE TABLE groups (
    name TEXT NOT NULL,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    PRIMARY KEY (name, project_id)
);
CREATE TABLE companies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE purchases (
    id INTEGER PRIMARY KEY,
    license_type TEXT NOT NULL CHECK (license_type IN ('server', 'desktop', 'workstation')),
    kind TEXT NOT NULL CHECK (kind IN ('commercial', 'trial')),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    company_id INTEGER REFERENCES companies(id),
    expires_at TEXT,
    auto_renew INTEGER NOT NULL,
    payment_mode TEXT NOT NULL CHECK (payment_mode IN ('monthly', 'annual')),
    premium_support INTEGER NOT NULL,
    onboarding INTEGER NOT NULL,
    bought_at TEXT NOT NULL
);
CREATE TABLE licenses (
    id TEXT PRIMARY KEY,
    purchase_id INTEGER NOT NULL REFERENCES purchases(id),
    instance_id INTEGER UNIQUE REFERENCES projects(id),
    key_id TEXT,
    assigned_at TEXT
);
CREATE TABLE instances (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    os TEXT NOT NULL CHECK (os IN ('windows', 'macos', 'linux')),
    company_id INTEGER REFERENCES companies(id)
);
CREATE TABLE assignments (serial INTEGER PRIMARY KEY, license_id TEXT NOT NULL);
";

/// The vendor public keys the state trusts (base64, as `VendorPublic::fingerprint` writes
/// them). Rows are only ever added: a state that trusts a key cannot be made to forget it.
const TRUST_TABLE: &str = "
CREATE TABLE trusted_keys (public TEXT PRIMARY KEY, added_at TEXT NOT NULL);
";

/// The hot-state record of each data-volume key's quota account, by key id (see
/// `slot::account`). Rows are only ever added: an account outlives every pair that held its key.
const ACCOUNTS_TABLE: &str = "
CREATE TABLE accounts (key_id TEXT PRIMARY KEY, record INTEGER NOT NULL UNIQUE);
";

/// Upgrades a version-1 catalog to version 2: the key table loses its global id uniqueness
/// (rebuilt, since SQLite cannot drop a constraint) and the pool tables are added.
const UPGRADE_FROM_1: &str = "
ALTER TABLE keys RENAME TO keys_v1;
DROP INDEX keys_by_record;
DROP INDEX keys_pending;
KEYS_TABLE
INSERT INTO keys SELECT * FROM keys_v1;
DROP TABLE keys_v1;
POOL_TABLES
";

/// Upgrades a version-2 catalog to version 3: the trusted vendor keys.
const UPGRADE_FROM_2: &str = "TRUST_TABLE";

/// Upgrades a version-3 catalog to version 4: key accounts (filled in by the engine at open).
const UPGRADE_FROM_3: &str = "ACCOUNTS_TABLE";

/// The upgrade from each older version to the next, by the version it starts from.
const UPGRADES: [(i64, &str); 3] = [
    (1, UPGRADE_FROM_1),
    (2, UPGRADE_FROM_2),
    (3, UPGRADE_FROM_3),
];

/// The schema text with its shared table definitions filled in.
fn expand(sql: &str) -> String {
    sql.replace("KEYS_TABLE", KEYS_TABLE)
        .replace("POOL_TABLES", POOL_TABLES)
        .replace("TRUST_TABLE", TRUST_TABLE)
        .replace("ACCOUNTS_TABLE", ACCOUNTS_TABLE)
}

/// A hot-path event ready for the audit log: the project, what happened, and for a switch the
/// row of the key it moved out, which identifies it.
pub(crate) type HotEvent = (String, EventKind, Option<u32>);

/// A project row.
#[derive(Debug, Clone)]
pub(crate) struct ProjectRow {
    pub id: i64,
    pub name: String,
}

/// A pair row: which record meters which class of which project.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairRow {
    pub record: u32,
    pub class: LicenseClass,
    pub synced_epoch: u64,
}

/// A key row.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub key: Key,
    pub state: String,
    pub final_used: Option<u64>,
}

/// One connection to the catalog.
pub(crate) struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Opens the catalog; with `create`, lays down the schema in a new file.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Catalog> {
        use rusqlite::OpenFlags as F;
        let flags = if create {
            F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_CREATE
        } else {
            F::SQLITE_OPEN_READ_WRITE
        } | F::SQLITE_OPEN_NO_MUTEX
            | F::SQLITE_OPEN_NOFOLLOW;
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(Error::CorruptState {
                path: path.to_owned(),
                reason: "the catalog is a symbolic link; it is not followed".into(),
            });
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(Error::store(format!("open catalog {}", path.display())))?;
        let catalog = Catalog {
            conn,
            path: path.to_owned(),
        };
        catalog.configure()?;
        if create {
            let tx = catalog.begin()?;
            tx.execute_batch(&expand(SCHEMA))
                .map_err(Error::store("create catalog schema"))?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION],
            )
            .map_err(Error::store("record catalog version"))?;
            tx.commit().map_err(Error::store("commit catalog schema"))?;
        }
        catalog.check_version()?;
        Ok(catalog)
    }

    /// Whether the catalog at `path` holds a slot pair, read without upgrading its schema
    /// (every schema version has the `pairs` table), so that a state refused for it is left as
    /// it was. `None` when it cannot be read so: [`Catalog::open`] then says what is wrong.
    pub(crate) fn holds_pairs(path: &Path) -> Option<bool> {
        use rusqlite::OpenFlags as F;
        let flags = F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX | F::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(Duration::from_secs(30)).ok()?;
        conn.query_row("SELECT EXISTS (SELECT 1 FROM pairs)", [], |r| r.get(0))
            .ok()
    }

    fn configure(&self) -> Result<()> {
        self.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(Error::store("set busy timeout"))?;
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(|e| self.corrupt(format!("not a usable SQLite catalog: {e}")))
    }

    fn check_version(&self) -> Result<()> {
        let version: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.corrupt(format!("no readable schema version: {e}")))?;
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(from @ 1..SCHEMA_VERSION) => self.upgrade(from),
            Some(v) => Err(self.corrupt(format!(
                "catalog schema version {v}, this build reads {SCHEMA_VERSION}"
            ))),
            None => Err(self.corrupt("catalog has no schema version".into())),
        }
    }

    /// Upgrades the catalog from version `from` to [`SCHEMA_VERSION`], every step in one
    /// transaction: a crash leaves it at `from`, to be upgraded again at the next open.
    fn upgrade(&self, from: i64) -> Result<()> {
        let tx = self.begin()?;
        for (version, sql) in UPGRADES.iter().filter(|(version, _)| *version >= from) {
            tx.execute_batch(&expand(sql)).map_err(|e| {
                self.corrupt(format!("upgrading the catalog from version {version}: {e}"))
            })?;
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'schema_version'",
            [SCHEMA_VERSION],
        )
        .map_err(Error::store("record catalog version"))?;
        tx.commit().map_err(Error::store("commit catalog upgrade"))
    }

    pub(crate) fn corrupt(&self, reason: String) -> Error {
        Error::CorruptState {
            path: self.path.clone(),
            reason,
        }
    }

    /// Starts an immediate transaction: it takes SQLite's write lock up front, so it never fails
    /// half-way with a lock upgrade conflict against another process.
    pub(crate) fn begin(&self) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(Error::store("begin catalog transaction"))
    }

    /// Checkpoints the write-ahead log into the database file.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(FULL);")
            .map_err(Error::store("checkpoint catalog"))
    }

    pub(crate) fn project(&self, name: &str) -> Result<Option<ProjectRow>> {
        self.conn
            .query_row(
                "SELECT id, name FROM projects WHERE name = ?1",
                [name],
                |r| {
                    Ok(ProjectRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(Error::store("look up project"))
    }

    pub(crate) fn projects(&self) -> Result<Vec<ProjectRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name FROM projects ORDER BY name")
            .map_err(Error::store("list projects"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ProjectRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })
            .map_err(Error::store("list projects"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(Error::store("list projects"))
    }

    pub(crate) fn insert_project(tx: &Transaction<'_>, name: &str, at: &str) -> Result<i64> {
        tx.execute(
            "INSERT INTO projects (name, created_at) VALUES (?1, ?2)",
            params![name, at],
        )
        .map_err(Error::store("insert project"))?;
        Ok(tx.last_insert_rowid())
    }

    /// The next free record index (records are never reused).
    pub(crate) fn next_record(tx: &Transaction<'_>) -> Result<u32> {
        let next: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(record) + 1, 0) FROM
                   (SELECT record FROM pairs UNION ALL SELECT record FROM accounts)",
                [],
                |r| r.get(0),
            )
            .map_err(Error::store("find a free record"))?;
        Ok(u32::try_from(next).unwrap_or(u32::MAX))
    }

    pub(crate) fn insert_pair(
        tx: &Transaction<'_>,
        project: i64,
        class: LicenseClass,
        record: u32,
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO pairs (record, project_id, class, synced_epoch) VALUES (?1, ?2, ?3, 0)",
            params![record, project, class.as_str()],
        )
        .map_err(Error::store("insert pair"))?;
        Ok(())
    }

    /// Every pair of a project, data volume first.
    pub(crate) fn pairs(&self, project: i64) -> Result<Vec<PairRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT record, class, synced_epoch FROM pairs WHERE project_id = ?1 ORDER BY record",
            )
            .map_err(Error::store("list pairs"))?;
        let rows = stmt
            .query_map([project], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            })
            .map_err(Error::store("list pairs"))?;
        let mut pairs = Vec::new();
        for row in rows {
            let (record, class, synced_epoch) = row.map_err(Error::store("read pair"))?;
            let class = self.class(&class)?;
            pairs.push(PairRow {
                record,
                class,
                synced_epoch,
            });
        }
        Ok(pairs)
    }

    /// A stored license class, or `CorruptState` for text no build writes.
    fn class(&self, text: &str) -> Result<LicenseClass> {
        LicenseClass::parse(text)
            .ok_or_else(|| self.corrupt(format!("unknown license class {text:?}")))
    }

    /// The pair of `class` of a project, if it has one.
    pub(crate) fn pair(&self, project: i64, class: LicenseClass) -> Result<Option<PairRow>> {
        Ok(self.pairs(project)?.into_iter().find(|p| p.class == class))
    }

    /// Every pair in the catalog with its owning project, or only those holding a pending key
    /// (left by an admin change that a crash interrupted).
    pub(crate) fn all_pairs(&self, only_pending: bool) -> Result<Vec<(ProjectRow, PairRow)>> {
        let sql = if only_pending {
            "SELECT p.id, p.name, r.record, r.class, r.synced_epoch FROM pairs r
             JOIN projects p ON p.id = r.project_id
             WHERE r.record IN (SELECT record FROM keys WHERE state = 'pending') ORDER BY r.record"
        } else {
            "SELECT p.id, p.name, r.record, r.class, r.synced_epoch FROM pairs r
             JOIN projects p ON p.id = r.project_id ORDER BY r.record"
        };
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(Error::store("list pairs"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    ProjectRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    },
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u64>(4)?,
                ))
            })
            .map_err(Error::store("list pairs"))?;
        let mut pairs = Vec::new();
        for row in rows {
            let (project, record, class, synced_epoch) = row.map_err(Error::store("read pair"))?;
            let class = self.class(&class)?;
            pairs.push((
                project,
                PairRow {
                    record,
                    class,
                    synced_epoch,
                },
            ));
        }
        Ok(pairs)
    }

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
            let key = serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("key {id:?} holds unreadable JSON: {e}")))?;
            uses.push((record, key));
        }
        Ok(uses)
    }

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

    /// The last checkpoint in the audit log, if any.
    pub(crate) fn last_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT e.json FROM meta m JOIN events e ON e.seq = m.value
                 WHERE m.name = 'checkpoint_event'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read the last checkpoint"))?;
        let Some(json) = json else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(EventKind::Checkpoint {
                seq,
                total_used,
                mac,
                prev_mac,
                format,
                decision,
                keys,
            }) => Ok(Some(Checkpoint {
                seq,
                total_used,
                mac,
                prev_mac,
                format,
                decision,
                keys,
            })),
            _ => Err(Error::Tampered {
                reason: "the audit entry the state names as its last checkpoint is not one".into(),
            }),
        }
    }

    /// The audit entry `seq`, if the log holds it.
    pub(crate) fn event_kind(&self, seq: u64) -> Result<Option<EventKind>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT json FROM events WHERE seq = ?1",
                [i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::store("read an audit entry"))?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("event {seq} is unreadable: {e}")))
        })
        .transpose()
    }

    /// Whether the state holds any key or any checkpoint: a state without a checkpoint must be
    /// new, and a new state holds neither.
    pub(crate) fn holds_history(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM keys)
                     OR EXISTS (SELECT 1 FROM events WHERE json LIKE '{\"kind\":\"checkpoint\"%')",
                [],
                |r| r.get(0),
            )
            .map_err(Error::store("look for keys and checkpoints"))
    }

    /// Points the state at its newest checkpoint, the audit entry `seq`.
    pub(crate) fn set_last_checkpoint(tx: &Transaction<'_>, seq: u64) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('checkpoint_event', ?1)",
            [seq as i64],
        )
        .map(drop)
        .map_err(Error::store("record the last checkpoint"))
    }

    /// The id of the installation that made the state's last checkpoint (see
    /// `Installation::id`), or `None` for a state checkpointed before it was recorded.
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

    /// Records `id` as the installation that made the state's last checkpoint.
    pub(crate) fn set_installation_id(tx: &Transaction<'_>, id: i64) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('installation_id', ?1)",
            [id],
        )
        .map(drop)
        .map_err(Error::store("record the installation id"))
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

    /// The latest Unix second any engine on this state has seen, with its MAC (`None` before
    /// the time had one), or `None` when none is recorded yet.
    pub(crate) fn latest_time(&self) -> Result<Option<(u32, Option<i64>)>> {
        let read = |name: &str| {
            self.conn
                .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map_err(Error::store("read the latest time seen"))
        };
        let Some(secs) = read("latest_seen")? else {
            return Ok(None);
        };
        Ok(Some((
            u32::try_from(secs).unwrap_or(0),
            read("latest_seen_mac")?,
        )))
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
            .prepare_cached("SELECT row, json, state, final_used FROM keys WHERE record = ?1")
            .map_err(Error::store("list keys"))?;
        let rows = stmt
            .query_map([record], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<u64>>(3)?,
                ))
            })
            .map_err(Error::store("list keys"))?;
        let mut keys = HashMap::new();
        for row in rows {
            let (row, json, state, final_used) = row.map_err(Error::store("read key"))?;
            let key = serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("key row {row} holds unreadable JSON: {e}")))?;
            keys.insert(
                row,
                KeyRow {
                    key,
                    state,
                    final_used,
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

    /// The name of the project a record belongs to.
    pub(crate) fn project_of_record(&self, record: u32) -> Result<String> {
        self.conn
            .query_row(
                "SELECT p.name FROM pairs r JOIN projects p ON p.id = r.project_id WHERE r.record = ?1",
                [record],
                |r| r.get(0),
            )
            .map_err(Error::store("look up project of record"))
    }

    /// The id of the key in row `row`.
    /// The project owning pair `record`, and the pair's class.
    pub(crate) fn pair_of_record(&self, record: u32) -> Result<(String, LicenseClass)> {
        let (name, class): (String, String) = self
            .conn
            .query_row(
                "SELECT p.name, r.class FROM pairs r JOIN projects p ON p.id = r.project_id WHERE r.record = ?1",
                [record],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(Error::store("look up pair"))?;
        let class = self.class(&class)?;
        Ok((name, class))
    }

    pub(crate) fn key_id(&self, row: u32) -> Result<String> {
        self.conn
            .query_row("SELECT id FROM keys WHERE row = ?1", [row], |r| r.get(0))
            .map_err(Error::store("look up key"))
    }

    /// Claims the audit entry of the switch that moved key `row` out of its Active slot (a key
    /// leaves it at most once): true for the first caller, false once the hot path's dispatcher
    /// or a repair has logged it.
    pub(crate) fn claim_switch(tx: &Transaction<'_>, row: u32) -> Result<bool> {
        tx.execute(
            "INSERT OR IGNORE INTO switches (key_row) VALUES (?1)",
            [row],
        )
        .map(|inserted| inserted == 1)
        .map_err(Error::store("claim switch"))
    }

    /// Whether the switch that moved key `row` out is in the audit log.
    pub(crate) fn switch_logged(&self, row: u32) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM switches WHERE key_row = ?1", [row], |_| {
                Ok(())
            })
            .optional()
            .map(|found| found.is_some())
            .map_err(Error::store("look up switch"))
    }

    /// Appends hot-path events in one transaction and returns those appended. A switch carries
    /// the row of the key it moved out and is appended only if no one logged it before.
    pub(crate) fn append_hot_events(&self, events: &[HotEvent]) -> Result<Vec<Event>> {
        let tx = self.begin()?;
        let mut fresh = Vec::with_capacity(events.len());
        for (project, kind, switch) in events {
            if let Some(row) = *switch {
                if !Self::claim_switch(&tx, row)? {
                    continue;
                }
            }
            fresh.push((project.clone(), kind.clone()));
        }
        let appended = Self::append_events_in(&tx, &fresh)?;
        tx.commit().map_err(Error::store("commit events"))?;
        Ok(appended)
    }

    /// Appends events inside a caller's transaction.
    pub(crate) fn append_events_in(
        tx: &Transaction<'_>,
        events: &[(String, EventKind)],
    ) -> Result<Vec<Event>> {
        let mut stmt = tx
            .prepare_cached("INSERT INTO events (at, project, json) VALUES (?1, ?2, ?3)")
            .map_err(Error::store("append event"))?;
        let mut out = Vec::with_capacity(events.len());
        for (project, kind) in events {
            let at = OffsetDateTime::now_utc();
            let json = serde_json::to_string(kind).expect("events serialise");
            stmt.execute(params![crate::key::rfc3339(at), project, json])
                .map_err(Error::store("append event"))?;
            out.push(Event {
                seq: tx.last_insert_rowid() as u64,
                at,
                project: project.clone(),
                kind: kind.clone(),
            });
        }
        Ok(out)
    }

    /// Up to `limit` audit events after `seq`, oldest first. Checkpoints (integrity records
    /// of `engine::checkpoint`) stay in the log but are not events and are skipped.
    pub(crate) fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, at, project, json FROM events
                 WHERE seq > ?1 AND json NOT LIKE '{\"kind\":\"checkpoint\"%'
                 ORDER BY seq LIMIT ?2",
            )
            .map_err(Error::store("read events"))?;
        let rows = stmt
            .query_map(
                params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .map_err(Error::store("read events"))?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, at, project, json) = row.map_err(Error::store("read event"))?;
            let at = OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .map_err(|e| self.corrupt(format!("event {seq} has a bad time: {e}")))?;
            let kind = serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("event {seq} is unreadable: {e}")))?;
            events.push(Event {
                seq: seq as u64,
                at,
                project,
                kind,
            });
        }
        Ok(events)
    }
}

/// A usage checkpoint as the audit log holds it (made and verified by `engine::checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub total_used: u64,
    pub mac: String,
    pub prev_mac: String,
    /// What the MAC covers (see `engine::checkpoint`); 0 and 1 are format 1.
    pub format: u32,
    /// The audit sequence of the latest operator decision.
    pub decision: Option<u64>,
    /// The data-volume keys in slots, by catalog row (format 2).
    pub keys: Vec<CheckedKey>,
}

#[cfg(test)]
mod tests;
