//! Trust: the vendor public keys a state trusts, and the check every key from outside the
//! engine passes before it may enter a slot (rule R30 in docs/rules.md).
//!
//! - **Development mode** — no trusted key, the default: keys are accepted as they come, plain
//!   or signed. A license file is still checked against the key it names as its signer, so an
//!   altered one is refused even here; whoever signed it is not asked, since nobody is trusted.
//!   A `per_instance` key from a caller is refused: with nobody trusted, anybody can sign, and
//!   an instance is licensed by a pool assignment (rule R24 in docs/rules.md), which the engine
//!   issues itself.
//! - **Trusting** — at least one trusted key: every key, offline and online alike (rule R30 in
//!   docs/rules.md), must come as a license file signed by a trusted key and unchanged since, else
//!   [`Error::BadSignature`] and nothing changes. Online keys come that way from the
//!   activation service, which signs what it issues.
//!
//! Trust is what the catalog records, nothing else: the keys given at open
//! ([`Options::trusted_keys`](super::Options::trusted_keys)) are recorded there, and
//! [`Engine::trust`] adds one; nothing removes one. A state that trusts a key therefore keeps
//! trusting it — and refusing unsigned offline keys — when any process or tool opens it without
//! the option. Keys already in the state when trust begins stay where they are.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{now_text, Admin, Engine};
use crate::catalog::Catalog;
use crate::error::SignatureRefusal;
use crate::error::{Corruption, Error, Result};
use crate::event::{Event, EventKind};
use crate::key::{Delivery, Key, Scheme};
use crate::license::{verify, KeyOrLicense, VendorPublic};

/// A caller's key refused for want of a signature that vouches for it.
fn refused(key: Key, reason: SignatureRefusal) -> Error {
    Error::BadSignature {
        key: key.id,
        reason,
    }
}

/// A vendor public key the state trusts, as [`Engine::trusted_keys`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedKey {
    /// The key; serialises as its fingerprint.
    pub key: VendorPublic,
    /// When the state began to trust it.
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A key cleared to enter a slot: it passed the state's trust ([`Engine::vet`]), or the engine
/// issued it itself ([`Vetted::issued_by_engine`]). The admission path takes only this, so a
/// key cannot reach a slot around the check by accident.
#[derive(Debug, Clone)]
pub(crate) struct Vetted(Key);

impl Vetted {
    /// A key the engine made itself rather than read from a caller: the `per_instance` key a
    /// pool assignment installs (`engine::pools`). It is offline, but there is no vendor
    /// signature to check: it never existed outside this engine, and the caller only named the
    /// instance. The purchase it comes from is an operator's record, not a vendor document, so
    /// the trust check does not cover pools. It is the only way an unsigned `per_instance` key
    /// enters a slot.
    pub(crate) fn issued_by_engine(key: Key) -> Vetted {
        Vetted(key)
    }

    pub(crate) fn into_key(self) -> Key {
        self.0
    }
}

impl Engine {
    /// Trusts the vendor public key `key` from now on, in this state, for every process (the
    /// audit event `vendor_key_trusted`). From the first trusted key on, every key added,
    /// offline or online, must be signed by a trusted key; see
    /// [`Options::trusted_keys`](super::Options) to trust keys at open. Returns false, and changes nothing, when the key was already
    /// trusted. There is no way back: a trusted key is never forgotten.
    pub fn trust(&self, key: &VendorPublic) -> Result<bool> {
        let admin = self.admin()?;
        let tx = admin.catalog.begin()?;
        let events = record(&tx, std::slice::from_ref(key))?;
        tx.commit().map_err(Error::store("commit trusted key"))?;
        self.inner.subscribers.broadcast(&events);
        Ok(!events.is_empty())
    }

    /// The vendor keys this state trusts, in the order it began to trust them; empty in
    /// development mode.
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        trusted_keys(&self.inner.admin.lock().catalog)
    }

    /// Checks a key from outside the engine against the state's trust (see the module
    /// documentation) and validates it. The caller holds the admin lock, so trust cannot begin
    /// between the check and the change.
    pub(super) fn vet(&self, admin: &Admin, document: KeyOrLicense) -> Result<Vetted> {
        let trusted: Vec<VendorPublic> = trusted_keys(&admin.catalog)?
            .into_iter()
            .map(|t| t.key)
            .collect();
        let key = match document {
            // Development mode: the signature must match its own signer, who is not asked.
            KeyOrLicense::License(license) if trusted.is_empty() => {
                verify(&license, &[*license.signer()])?
            }
            KeyOrLicense::License(license) => verify(&license, &trusted)?,
            KeyOrLicense::Key(key) if !trusted.is_empty() => {
                let reason = match key.delivery {
                    Delivery::Offline => SignatureRefusal::UnsignedOffline,
                    Delivery::Online => SignatureRefusal::UnsignedOnline,
                };
                return Err(refused(key, reason));
            }
            KeyOrLicense::Key(key) => key,
        };
        // Under trust the key was signed by a trusted vendor key; without trust, anybody can
        // sign, so nothing vouches for a per-instance key but a pool assignment.
        if key.scheme == Scheme::PerInstance && trusted.is_empty() {
            return Err(refused(key, SignatureRefusal::PerInstanceUntrusted));
        }
        key.validate()?;
        Ok(Vetted(key))
    }
}

/// Records the keys of [`Options::trusted_keys`](super::Options::trusted_keys) at open; the
/// caller holds the admin lock.
pub(super) fn record_at_open(catalog: &Catalog, keys: &[VendorPublic]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let tx = catalog.begin()?;
    record(&tx, keys)?;
    tx.commit().map_err(Error::store("commit trusted keys"))
}

/// Records each key not trusted yet, with its audit event; returns the events.
fn record(tx: &rusqlite::Transaction<'_>, keys: &[VendorPublic]) -> Result<Vec<Event>> {
    let at = now_text();
    let mut fresh = Vec::new();
    for key in keys {
        let public_key = key.fingerprint();
        if Catalog::trust_key(tx, &public_key, &at)? {
            fresh.push((String::new(), EventKind::VendorKeyTrusted { public_key }));
        }
    }
    Catalog::append_events_in(tx, &fresh)
}

fn trusted_keys(catalog: &Catalog) -> Result<Vec<TrustedKey>> {
    catalog
        .trusted_keys()?
        .into_iter()
        .map(|(public, added_at)| {
            let key = VendorPublic::from_base64(&public).map_err(|e| {
                catalog.corrupt(Corruption::TrustedKey {
                    public: public.clone(),
                    error: e.to_string(),
                })
            })?;
            let added_at = OffsetDateTime::parse(&added_at, &Rfc3339).map_err(|e| {
                catalog.corrupt(Corruption::TrustedKeyTime {
                    public: public.clone(),
                    error: e.to_string(),
                })
            })?;
            Ok(TrustedKey { key, added_at })
        })
        .collect()
}
