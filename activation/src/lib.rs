//! # Tollgate online activation
//!
//! An online key is not shipped as a file: the customer is given an **activation code**, and
//! the engine asks the vendor's activation service for the key, signed. When the key expires,
//! the engine asks again with the same code and gets its successor (rule R21 in docs/rules.md).
//! This crate is both sides: the service ([`Server`], `tollgate serve-activation`) and the blocking
//! client the engine renews keys with ([`ActivationClient`]).
//!
//! ```
//! use tollgate_activation::{ActivationClient, ClientOptions, Server};
//! use tollgate_license::{verify, VendorSecret};
//!
//! // The vendor: a key pair, and a catalog of the codes it sold.
//! let dir = tempfile::tempdir()?;
//! let catalog = dir.path().join("codes.json");
//! std::fs::write(&catalog, r#"{"codes": [{
//!     "code": "ACT-123", "term_days": 365, "renewals_left": 5,
//!     "key": {"kind": "commercial", "edition": "standard",
//!             "scheme": {"data_volume": {"limit_bytes": 1073741824}}}}]}"#)?;
//! let vendor = VendorSecret::generate()?;
//! let trusted = [vendor.public()];
//! let service = Server::bind(&catalog, vendor, "127.0.0.1:0".parse()?)?.spawn();
//!
//! // The customer's engine: activate the code, then renew the key it got.
//! let client = ActivationClient::new(&service.url(), ClientOptions::default())?;
//! let key = verify(&client.activate("ACT-123", "machine-1")?.license, &trusted)?;
//! assert_eq!(key.id, "ACT-123-1");
//! assert_eq!(key.activation_code.as_deref(), Some("ACT-123"));
//!
//! let renewed = verify(&client.renew(&key)?.license, &trusted)?;
//! assert_eq!(renewed.id, "ACT-123-2");
//! // The new term starts where the old one ends.
//! assert_eq!(
//!     renewed.expires_at.unwrap() - key.expires_at.unwrap(),
//!     time::Duration::days(365)
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The service
//!
//! It answers `POST /v1/activate` and `POST /v1/renew` with signed licenses ([`wire`] has the
//! protocol), on loopback unless told otherwise. Its state is one JSON file, the catalog:
//!
//! ```text
//! {"codes": [{"code": "ACT-123", "key": {…key JSON…}, "term_days": 365, "renewals_left": 5,
//!             "activations": 3}]}
//! ```
//!
//! - Activating a code issues a key for the machine that asks (the engine sends its
//!   `Engine::machine_id`): the `key` template with the id `CODE-N` (N counting the code's keys
//!   from 1), online delivery, the code as its `activation_code`, and an expiry `term_days` from
//!   now. A code activates on `activations` machines (1 if absent); one more is refused with
//!   409 `no_activations_left`, however many ask at once. A machine that activated the code
//!   before gets its key again (the latest renewal of it) and spends nothing, so a client may
//!   retry an activation whose answer it lost.
//! - Renewing a key issues its successor, the next `CODE-N`, whose term starts when the
//!   service's record says the old key ends (or now, if that is later), and spends one of the
//!   code's `renewals_left`. Renewing the same key again returns the same successor and spends
//!   nothing, so a client may retry a renewal whose answer it lost.
//! - The service records every key it issues in the catalog (an `issued` list per code, with
//!   the machine of each activation) and rewrites the file before it answers — a temporary
//!   file with the catalog's own permissions, `fsync`, then a rename — so an answered request
//!   survives a crash or a restart, and a crash mid-write leaves the old file. One service per
//!   catalog: two would overwrite each other's records.
//! - It can face the internet by itself: HTTPS through rustls with a certificate
//!   ([`Server::with_tls`]), and timeouts and a connection limit ([`server::Limits`]) so that
//!   slow or idle clients cannot hold it. A request body is at most [`wire::MAX_BODY`] bytes,
//!   and no answer quotes a request back at length.
//!
//! ## The client
//!
//! [`ActivationClient`] retries transport errors, timeouts and 5xx answers with exponential
//! backoff ([`ClientOptions`]); [`ActivationClient::with_ca_file`] trusts a given certificate
//! authority (or self-signed certificate) for `https` instead of the Mozilla roots; a refusal (4xx) or an answer that is no license is final.
//! Either way a [`RenewalError`] says which it was, and that manual renewal is now needed. The
//! client parses the license but does not verify it: that is the engine's part, with the
//! vendor keys it trusts.
//!
//! ## The engine's activation and renewal
//!
//! An [`ActivationClient`] is a [`tollgate_core::Activator`]: `Engine::activate_with` activates
//! a code on the engine's machine and adds the key like any other (verified against the vendor
//! keys the state trusts).
//!
//! It is also a [`tollgate_core::Renewer`]: given to an engine
//! (`Options::renewal`, `Engine::enable_renewal`), it renews the engine's online keys in the
//! background ahead of their expiry, and the engine verifies each license it brings like any
//! other.
//!
//! ## Features
//!
//! - `server` (default): the service, with tokio and axum. The client alone needs neither.
//! - `tls` (default): `https://` service URLs, with rustls.
#![deny(missing_docs)]

pub mod client;
mod error;
mod renewer;
pub mod wire;

#[cfg(feature = "server")]
mod catalog;
#[cfg(feature = "server")]
pub mod server;

pub use client::{ActivationClient, ClientOptions, IssuedLicense};
pub use error::{RenewalError, ServiceError};
#[cfg(feature = "server")]
pub use server::{Limits, Server, ServerHandle};
