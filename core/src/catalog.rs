//! The cold store: project names, pair records, key details, retired usage and the audit log, in
//! an embedded SQLite database (WAL mode, `synchronous=FULL`), shared by every process that opens
//! the state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use crate::error::{Corruption, Error, Result};
use crate::event::{CheckedKey, Event, EventKind};
use crate::key::{Key, LicenseClass};
use crate::slot::PairState;

mod accounts;
mod audit;
#[cfg(not(loom))]
mod fleet;
mod keys;
mod meta;
mod periods;
mod pools;
mod schema;
mod trust;

pub(crate) use accounts::KeyUse;
pub(crate) use audit::Ratchet;
#[cfg(not(loom))]
pub(crate) use fleet::LeaseEntry;
pub use periods::ClosedPeriod;
pub(crate) use periods::PeriodicAccount;
pub(crate) use pools::{InstanceRow, LicenseRow};
use schema::*;

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
    /// What the pair had used of the key when its last usage period closed (0 without one).
    pub closed_used: u64,
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
                reason: Corruption::SymlinkRefused {
                    what: "the catalog",
                },
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
            .map_err(|e| {
                self.corrupt(Corruption::UnusableCatalog {
                    error: e.to_string(),
                })
            })
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
            .map_err(|e| {
                self.corrupt(Corruption::UnreadableSchemaVersion {
                    error: e.to_string(),
                })
            })?;
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(from @ 1..SCHEMA_VERSION) => self.upgrade(from),
            Some(v) => Err(self.corrupt(Corruption::SchemaVersion {
                found: v,
                expected: SCHEMA_VERSION,
            })),
            None => Err(self.corrupt(Corruption::NoSchemaVersion)),
        }
    }

    /// Upgrades the catalog from version `from` to [`SCHEMA_VERSION`], every step in one
    /// transaction: a crash leaves it at `from`, to be upgraded again at the next open.
    fn upgrade(&self, from: i64) -> Result<()> {
        let tx = self.begin()?;
        for (version, sql) in UPGRADES.iter().filter(|(version, _)| *version >= from) {
            tx.execute_batch(&expand(sql)).map_err(|e| {
                self.corrupt(Corruption::CatalogUpgrade {
                    version: *version,
                    error: e.to_string(),
                })
            })?;
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'schema_version'",
            [SCHEMA_VERSION],
        )
        .map_err(Error::store("record catalog version"))?;
        tx.commit().map_err(Error::store("commit catalog upgrade"))
    }

    pub(crate) fn corrupt(&self, reason: Corruption) -> Error {
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
        LicenseClass::parse(text).ok_or_else(|| {
            self.corrupt(Corruption::UnknownLicenseClass {
                text: text.to_owned(),
            })
        })
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
}

#[cfg(test)]
mod tests;
