//! Hosts: the machines that lease from the store, each named by its operator.
//!
//! A host's name is its identity: a host that restarts with the same name finds its leases
//! (`Store::list_leases`) and settles them from its own ledger.

use std::time::SystemTime;

use crate::error::{self, Result};
use crate::Store;

/// A host as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name.
    pub name: String,
    /// When it first registered (server clock).
    pub first_seen: SystemTime,
    /// When it last registered (server clock).
    pub last_seen: SystemTime,
    /// How many of its leases are open.
    pub open_leases: u64,
}

impl Store {
    /// Registers a host by name, or marks it seen again; a host registers at every start,
    /// before its first take.
    pub fn register_host(&mut self, name: &str) -> Result<()> {
        error::name("host name", name)?;
        let client = self.client()?;
        let result = client
            .execute(
                "INSERT INTO tollgate_host (name) VALUES ($1)
                 ON CONFLICT (name) DO UPDATE SET last_seen = now()",
                &[&name],
            )
            .map(drop)
            .map_err(Into::into);
        self.check(result)
    }

    /// Every host, by name, with its count of open leases.
    pub fn hosts(&mut self) -> Result<Vec<Host>> {
        let client = self.client()?;
        let result = client
            .query(
                "SELECT h.name, h.first_seen, h.last_seen,
                        (SELECT count(*) FROM tollgate_lease l
                          WHERE l.host = h.name AND l.state = 'open')
                   FROM tollgate_host h ORDER BY h.name",
                &[],
            )
            .map(|rows| {
                rows.iter()
                    .map(|row| Host {
                        name: row.get(0),
                        first_seen: row.get(1),
                        last_seen: row.get(2),
                        open_leases: row.get::<_, i64>(3) as u64,
                    })
                    .collect()
            })
            .map_err(Into::into);
        self.check(result)
    }
}
