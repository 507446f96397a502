//! The store's one error type: every refusal is a variant a caller can match.

use crate::leases::{LeaseId, LeaseState};

/// What went wrong talking to the fleet store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server cannot be reached, or it went away mid-statement (stopped, crashed, restarting,
    /// connection cut). The outcome of a statement in flight is unknown: retry it, the protocol
    /// makes every retry safe (see `docs/fleet-store.md`).
    #[error("the fleet store is unavailable: {0}")]
    Unavailable(#[source] postgres::Error),
    /// The server answered with an error this crate does not expect (a bug or a damaged schema).
    #[error("the fleet store refused a statement: {0}")]
    Database(#[source] postgres::Error),
    /// The database's schema is newer than this program knows.
    #[error("the fleet store's schema is at version {found}, newer than this program's {known}")]
    SchemaTooNew {
        /// The newest migration recorded in the database.
        found: i32,
        /// The newest migration this program carries.
        known: i32,
    },
    /// The account has nothing left to lease.
    #[error("key account \"{key}\" has nothing left to lease")]
    Exhausted {
        /// The key's id.
        key: String,
    },
    /// No account has this key id.
    #[error("no key account \"{key}\"")]
    AccountNotFound {
        /// The key's id.
        key: String,
    },
    /// An account with this key id exists with another kind or amount.
    #[error("key account \"{key}\" already exists with another kind or amount")]
    AccountConflict {
        /// The key's id.
        key: String,
    },
    /// The operation needs an account of the other kind (bytes or seats).
    #[error("key account \"{key}\" is not a {expected} account")]
    WrongKind {
        /// The key's id.
        key: String,
        /// The kind the operation needs: `"bytes"` or `"seats"`.
        expected: &'static str,
    },
    /// The host has not been registered (`hosts::register`).
    #[error("no host \"{host}\": register it first")]
    HostNotFound {
        /// The host's name.
        host: String,
    },
    /// No lease has this id.
    #[error("no lease {0}")]
    LeaseNotFound(LeaseId),
    /// A renewal's sequence number is older than the lease's: it was overtaken by a later one.
    #[error("lease {lease}: renewal {seq} is stale, the lease is at renewal {current}")]
    StaleSequence {
        /// The lease.
        lease: LeaseId,
        /// The sequence number sent.
        seq: u64,
        /// The lease's latest applied renewal.
        current: u64,
    },
    /// A renewal skips ahead: an earlier one was never applied.
    #[error("lease {lease}: renewal {seq} is out of order, the next is {expected}")]
    OutOfOrder {
        /// The lease.
        lease: LeaseId,
        /// The sequence number sent.
        seq: u64,
        /// The one the store expects next.
        expected: u64,
    },
    /// The lease expired on the server's clock: it can no longer be renewed, only settled.
    #[error("lease {0} has expired: settle it")]
    LeaseExpired(LeaseId),
    /// The lease is not in a state that allows this operation.
    #[error("lease {lease} is {state}")]
    LeaseClosed {
        /// The lease.
        lease: LeaseId,
        /// Its state.
        state: LeaseState,
    },
    /// A usage report outside what the lease allows: below what was already reported, or above
    /// what was drawn (or a draw above the grant).
    #[error("lease {lease}: {what} {value} is outside {min}..={max}")]
    OutOfRange {
        /// The lease.
        lease: LeaseId,
        /// Which figure: `"used"` or `"drawn"`.
        what: &'static str,
        /// The figure sent.
        value: u64,
        /// The lowest allowed.
        min: u64,
        /// The highest allowed.
        max: u64,
    },
    /// A settle repeated with another figure than the one already applied.
    #[error("lease {lease} was already settled with {settled} used, not {asked}")]
    SettleConflict {
        /// The lease.
        lease: LeaseId,
        /// The usage applied the first time.
        settled: u64,
        /// The usage sent now.
        asked: u64,
    },
    /// An argument the store cannot represent or accept (zero or over 2^63-1, an empty name).
    #[error("invalid {what}: {value}")]
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
        /// The value, printed.
        value: String,
    },
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<postgres::Error> for Error {
    fn from(error: postgres::Error) -> Error {
        if is_unavailable(&error) {
            Error::Unavailable(error)
        } else {
            Error::Database(error)
        }
    }
}

/// Whether an error means the server is out of reach rather than that it refused a statement:
/// the connection closed or failed at the socket (an I/O error, a connect timeout), or a server
/// error code of a server shutting down or starting up (class 57P: `admin_shutdown`,
/// `crash_shutdown`, `cannot_connect_now`) or of a broken connection (class 08).
fn is_unavailable(error: &postgres::Error) -> bool {
    use std::error::Error as _;
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    error
        .source()
        .is_some_and(|source| source.is::<std::io::Error>())
}

/// Converts an amount to the store's `bigint`, refusing zero where `nonzero` and anything above
/// `i64::MAX`.
pub(crate) fn amount(what: &'static str, value: u64, nonzero: bool) -> Result<i64> {
    match i64::try_from(value) {
        Ok(v) if v > 0 || !nonzero => Ok(v),
        _ => Err(Error::InvalidArgument {
            what,
            value: value.to_string(),
        }),
    }
}

/// Checks a key id or host name: 1..=64 bytes, no NUL (rule R1 in docs/rules.md).
pub(crate) fn name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 64 || value.contains('\0') {
        return Err(Error::InvalidArgument {
            what,
            value: format!("{value:?}"),
        });
    }
    Ok(())
}
