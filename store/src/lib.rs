//! The fleet store: key accounts in PostgreSQL, from which many hosts lease blocks.
//!
//! This is the top level of Tollgate's hierarchy of leases (`QUOTA.md`): one row per key holds
//! the key's amount, and each host takes blocks of it (leases) with a time to live, renews them
//! with sequence-numbered usage reports, and settles them when done. A host that dies leaves its
//! lease to expire: the store takes back what the host never drew, and keeps what it may have
//! granted *in doubt* until the host settles from its own ledger or an operator writes it off.
//! No step of it can grant more than a key's amount; `docs/fleet-store.md` says why.
//!
//! The engine does not use this crate yet: it is the store and its protocol, built to be called
//! from one background thread per host. A [`Store`] owns one connection, is `Send`, and
//! reconnects by itself on the call after the server came back.
//!
//! ```no_run
//! use tollgate_store::{AccountKind, Store};
//!
//! let mut store = Store::connect("host=/run/postgresql user=tollgate dbname=fleet")?;
//! store.migrate()?;
//! store.create_account("A-1", AccountKind::Bytes, 1 << 30)?;
//! store.register_host("svm-07")?;
//!
//! let mut lease = store.take("svm-07", "A-1", 64 << 20)?; // charged to the account now
//! let (seq, block) = (lease.next_seq(), lease.granted);
//! store.renew(&mut lease, seq, 0, block)?;               // draw all of it
//! // ... grant locally from the block until `lease.deadline` (the host's monotonic clock) ...
//! store.settle(lease.id, 10 << 20)?;                     // used 10 MiB, the rest goes back
//! # Ok::<(), tollgate_store::Error>(())
//! ```
#![deny(missing_docs)]

use std::time::Duration;

use postgres::{Client, Config, NoTls};

pub mod accounts;
pub mod admin;
pub mod block;
pub mod error;
pub mod hosts;
pub mod leases;
pub mod migrations;

pub use accounts::{Account, AccountKind};
pub use admin::AdminChange;
pub use block::BlockPolicy;
pub use error::{Error, Result};
pub use hosts::Host;
pub use leases::{Lease, LeaseId, LeaseRecord, LeaseState, Reclaimed, Renewal, Settlement};

/// How long leases live, and how much earlier than the store a host stops using one.
///
/// A host computes its deadline as `sent + ttl - margin`, where `sent` is its monotonic clock
/// read *before* it sent the statement that took or renewed the lease. The server computes the
/// expiry as `now() + ttl` when it runs that statement, which is after `sent`; so the host's
/// deadline comes at least `margin` before the server may reclaim, as long as the two clocks
/// advance at rates that differ by less than `margin / ttl` (NTP slews at most 500 ppm: 30 ms
/// over 60 s). The margin also covers the host's own delay between checking its deadline and
/// granting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// How long a lease lives on the server's clock after each take or renewal.
    pub ttl: Duration,
    /// How much earlier the host stops granting from it; less than `ttl`.
    pub margin: Duration,
}

impl Default for LeaseTerms {
    /// 60 s leases (renewed about every 20 s by the host), a 5 s margin.
    fn default() -> LeaseTerms {
        LeaseTerms {
            ttl: Duration::from_secs(60),
            margin: Duration::from_secs(5),
        }
    }
}

/// One host's connection to the fleet store.
///
/// Made for a background thread: it owns one connection, is `Send`, and every method takes
/// `&mut self`. When the server is out of reach a method returns [`Error::Unavailable`] and the
/// next call connects again; nothing panics on a server error.
pub struct Store {
    config: Config,
    terms: LeaseTerms,
    client: Option<Client>,
    /// Whether `client` has run `LISTEN tollgate_admin` (a new connection has not).
    listening: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("terms", &self.terms)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl Store {
    /// Connects with a `postgresql://` URL or `key=value` parameters, without TLS (a Unix
    /// socket, `host=/dir`, or loopback), and the default [`LeaseTerms`].
    pub fn connect(params: &str) -> Result<Store> {
        Store::connect_with(params, LeaseTerms::default())
    }

    /// Connects as [`Store::connect`] with the given lease terms.
    pub fn connect_with(params: &str, terms: LeaseTerms) -> Result<Store> {
        let mut config: Config = params.parse().map_err(|_| Error::InvalidArgument {
            what: "store connection parameters",
            value: format!("{params:?}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let ttl_ms = terms.ttl.as_millis();
        if ttl_ms == 0 || ttl_ms > i64::MAX as u128 || terms.margin >= terms.ttl {
            return Err(Error::InvalidArgument {
                what: "lease terms (ttl of 1 ms or more, margin below it)",
                value: format!("{terms:?}"),
            });
        }
        let mut store = Store {
            config,
            terms,
            client: None,
            listening: false,
        };
        store.client()?;
        Ok(store)
    }

    /// The lease terms this store takes and renews leases with.
    pub fn terms(&self) -> LeaseTerms {
        self.terms
    }

    /// The connection, made again if the last one failed or was closed.
    fn client(&mut self) -> Result<&mut Client> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => {
                self.listening = false;
                self.config.connect(NoTls)?
            }
        };
        Ok(self.client.insert(client))
    }

    /// Passes a result through, dropping the connection when it says the server is out of
    /// reach, so the next call connects afresh.
    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if matches!(result, Err(Error::Unavailable(_))) {
            self.client = None;
        }
        result
    }
}
