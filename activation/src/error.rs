//! The crate's errors: [`RenewalError`] for the client, [`ServiceError`] for the server.
//!
//! Two enums rather than one because the two halves fail for unrelated reasons and are built
//! separately (an engine that only renews keys builds without the `server` feature): a renewal
//! is never refused for a bad catalog, and a server never fails by timing out.

use std::path::PathBuf;
use std::time::Duration;

/// Why a call of the [`ActivationClient`](crate::ActivationClient) did not give a license.
///
/// An error is returned only once the client has made every attempt its
/// [`ClientOptions`](crate::ClientOptions) allow: transport failures, timeouts and 5xx answers
/// were retried, a refusal (4xx) or an answer that is not a license was not, since asking
/// again would get the same answer. So every error means that automatic renewal has failed
/// for now and the operator must act ([`needs_manual_renewal`](Self::needs_manual_renewal)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// The service's address is not an `http://` or `https://` URL; nothing was sent.
    #[error("\"{url}\" is not the URL of an activation service: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file of certificate authorities to trust cannot be read or holds no certificate;
    /// nothing was sent.
    #[error("{} is not a file of trusted certificates: {reason}", path.display())]
    InvalidCa {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key cannot be renewed by the service: it is offline, or has no activation code.
    /// Nothing was sent.
    #[error("key \"{key_id}\" cannot be renewed online: {reason}")]
    NotRenewable {
        /// The key.
        key_id: String,
        /// Why not.
        reason: &'static str,
    },
    /// No connection could be made, or it broke before an answer: connection refused, the
    /// host name not found, a reset.
    #[error("the activation service at {url} is unreachable ({}): {reason}", attempts_text(*attempts))]
    Unreachable {
        /// The service's URL.
        url: String,
        /// How many requests were tried.
        attempts: u32,
        /// The last attempt's failure.
        reason: String,
    },
    /// The service did not answer within the timeout, on any attempt.
    #[error("the activation service at {url} did not answer within {} ms ({})", timeout.as_millis(), attempts_text(*attempts))]
    Timeout {
        /// The service's URL.
        url: String,
        /// How many requests were tried.
        attempts: u32,
        /// The timeout of each attempt.
        timeout: Duration,
    },
    /// The service refused the request (a 4xx answer): an unknown code, an unknown key, no
    /// renewals left. Never retried.
    #[error("the activation service refused the request ({status} {code}): {message}")]
    Refused {
        /// The HTTP status, 400 to 499.
        status: u16,
        /// The service's error code (`unknown_code`, `no_renewals_left`, … of
        /// [`wire`](crate::wire)), or `http_STATUS` when the answer did not name one.
        code: String,
        /// The service's message.
        message: String,
        /// How many requests were sent (more than one if 5xx answers came first).
        attempts: u32,
    },
    /// The service failed (a 5xx answer) on the last attempt.
    #[error("the activation service at {url} failed with status {status} ({}): {message}", attempts_text(*attempts))]
    Unavailable {
        /// The service's URL.
        url: String,
        /// The last HTTP status, 500 to 599.
        status: u16,
        /// The service's message, or the start of the body.
        message: String,
        /// How many requests were tried.
        attempts: u32,
    },
    /// The service answered, but not with a license: a body that is not the expected JSON, a
    /// license that does not parse, a key for another activation code, an unexpected status.
    #[error(
        "the activation service at {url} answered with something that is not a license: {reason}"
    )]
    Garbage {
        /// The service's URL.
        url: String,
        /// What was wrong with the answer.
        reason: String,
        /// How many requests were sent.
        attempts: u32,
    },
}

impl RenewalError {
    /// Whether the operator must now renew the license by hand (rule R21 in docs/rules.md). True
    /// for every error: the client has already made every attempt it will (see the type's
    /// documentation), so none of them means "ask again in a moment".
    pub fn needs_manual_renewal(&self) -> bool {
        true
    }

    /// The message for the operator when the automatic renewal of `key_id` failed with this
    /// error: `automatic renewal of key "K-1" failed (the activation service at … is
    /// unreachable …): start the activation task manually to renew the license`.
    pub fn manual_renewal_message(&self, key_id: &str) -> String {
        // The engine's own wording, so that the operator reads one message whichever side
        // failed.
        tollgate_core::manual_renewal_message(key_id, self)
    }

    /// How many requests were sent: 0 when the error came before any.
    pub fn attempts(&self) -> u32 {
        match self {
            RenewalError::InvalidUrl { .. }
            | RenewalError::InvalidCa { .. }
            | RenewalError::NotRenewable { .. } => 0,
            RenewalError::Unreachable { attempts, .. }
            | RenewalError::Timeout { attempts, .. }
            | RenewalError::Refused { attempts, .. }
            | RenewalError::Unavailable { attempts, .. }
            | RenewalError::Garbage { attempts, .. } => *attempts,
        }
    }
}

fn attempts_text(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".into(),
        n => format!("{n} attempts"),
    }
}

/// Why the activation service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The catalog file cannot be read, is not a catalog, or lists a code that is wrong.
    #[error("catalog {}: {reason}", path.display())]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The TLS certificate or its private key cannot be read or do not fit each other.
    #[error("tls certificate or key {}: {reason}", path.display())]
    Tls {
        /// The certificate or key file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vendor's secret key cannot be read.
    #[error(transparent)]
    VendorKey(#[from] tollgate_license::LicenseError),
    /// The address cannot be listened on.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the activation service failed: {0}")]
    Io(#[from] std::io::Error),
}
