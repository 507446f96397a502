//! The database-row approach: one SQLite `UPDATE … WHERE used + ? <= lim` per call.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::{Contestant, ROW_LIMIT};
use crate::fixture::{self, project_name, BenchResult};
use crate::harness::{Calls, Sharing, Worker};

const CHARGE: &str = "UPDATE usage SET used = used + ?1 WHERE project = ?2 AND used + ?1 <= lim";

/// A usage table in a WAL database on disk (`synchronous=NORMAL`); one connection per thread,
/// each call an auto-committed `UPDATE` whose changed-row count is the grant.
pub struct SqliteRow {
    dir: tempfile::TempDir,
}

impl SqliteRow {
    /// Creates the database directory.
    pub fn new() -> BenchResult<SqliteRow> {
        Ok(SqliteRow {
            dir: fixture::disk_dir()?,
        })
    }

    fn connect(&self) -> BenchResult<Connection> {
        let conn = Connection::open(self.dir.path().join("usage.db"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    }
}

impl Contestant for SqliteRow {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn op(&self) -> &'static str {
        "SQLite UPDATE … WHERE used+n <= lim"
    }

    fn batch(&self) -> u64 {
        50
    }

    fn slow(&self) -> bool {
        true
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let setup = self.connect()?;
        setup.execute_batch(
            "DROP TABLE IF EXISTS usage;
             CREATE TABLE usage (project TEXT PRIMARY KEY, used INTEGER NOT NULL, lim INTEGER NOT NULL);",
        )?;
        for i in 0..threads {
            setup.execute(
                "INSERT INTO usage (project, used, lim) VALUES (?1, 0, ?2)",
                params![project_name(i), ROW_LIMIT as i64],
            )?;
        }
        (0..threads)
            .map(|t| {
                let conn = self.connect()?;
                let name = project_name(sharing.slot(t));
                Ok(Box::new(Calls(move || {
                    let mut charge = conn.prepare_cached(CHARGE).expect("statement prepares");
                    let changed = charge.execute(params![1, name]).expect("update runs");
                    assert_eq!(changed, 1, "check-and-add refused");
                })) as Box<dyn Worker>)
            })
            .collect()
    }
}
