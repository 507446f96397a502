//! Schema migrations: hand-numbered SQL files under `store/migrations/`, embedded in the binary,
//! each applied in one transaction and recorded in `tollgate_schema`.
//!
//! Every migrator, in any process on any host, takes the same transaction-scoped advisory lock
//! before it looks at `tollgate_schema`, so two hosts starting at once apply each migration once:
//! the second waits, then finds it recorded. A migration that fails rolls back whole, its record
//! included, and the next start tries it again.

use postgres::Client;

use crate::error::{Error, Result};
use crate::Store;

/// One migration: its number (the file's `NNNN` prefix), its name and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version it brings the schema to; versions are 1, 2, 3, ... in order.
    pub version: i32,
    /// The file name's part after the number.
    pub name: &'static str,
    sql: &'static str,
}

/// Every migration this program carries, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts",
        sql: include_str!("../migrations/0001_accounts.sql"),
    },
    Migration {
        version: 2,
        name: "hosts_and_leases",
        sql: include_str!("../migrations/0002_hosts_and_leases.sql"),
    },
    Migration {
        version: 3,
        name: "admin_log",
        sql: include_str!("../migrations/0003_admin_log.sql"),
    },
    Migration {
        version: 4,
        name: "numbers",
        sql: include_str!("../migrations/0004_numbers.sql"),
    },
    Migration {
        version: 5,
        name: "reported",
        sql: include_str!("../migrations/0005_reported.sql"),
    },
];

/// The advisory lock every migrator takes: "tollgate" in ASCII, so it will not collide with an
/// application's own small lock numbers.
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS tollgate_schema (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

impl Store {
    /// Brings the schema up to date and returns the versions this call applied (empty when it
    /// was already current). Safe to call from every host at every start, concurrently.
    pub fn migrate(&mut self) -> Result<Vec<i32>> {
        let client = self.client()?;
        let result = migrate(client);
        self.check(result)
    }

    /// The versions recorded in `tollgate_schema`, oldest first (empty before the first
    /// migration).
    pub fn schema_versions(&mut self) -> Result<Vec<i32>> {
        let client = self.client()?;
        let result = (|| {
            let exists: bool = client
                .query_one("SELECT to_regclass('tollgate_schema') IS NOT NULL", &[])?
                .get(0);
            if !exists {
                return Ok(Vec::new());
            }
            let rows = client.query("SELECT version FROM tollgate_schema ORDER BY version", &[])?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })();
        self.check(result)
    }
}

fn migrate(client: &mut Client) -> Result<Vec<i32>> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(SCHEMA_TABLE)?;
        let found: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM tollgate_schema", &[])?
            .get(0);
        if found > known {
            return Err(Error::SchemaTooNew { found, known });
        }
        if found >= migration.version {
            continue;
        }
        tx.batch_execute(migration.sql)?;
        tx.execute(
            "INSERT INTO tollgate_schema (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )?;
        tx.commit()?;
        applied.push(migration.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_one_by_one() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, i + 1, "{}", migration.name);
        }
    }
}
