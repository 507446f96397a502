//! The signed license file (`.lic`): reading and verifying it.
//!
//! A license file is one JSON object:
//!
//! ```text
//! {
//!   "format": "tollgate-license-1",
//!   "key": { …the key JSON… },
//!   "signature": "<base64 of the 64-byte Ed25519 signature over the key's canonical bytes>",
//!   "signer": "<base64 of the signer's 32-byte public key>"
//! }
//! ```
//!
//! The signature covers the canonical form ([`canonical_json`]) of the `"key"` object exactly
//! as the file holds it, so the file may be re-indented or its members reordered, but any
//! change to a value, or a member added or removed, breaks it. `signer` only says which key to
//! check the signature with; whether that key is trusted is the verifier's list, never the
//! file's word.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::canonical::canonical_json;
use super::{LicenseError, SignatureFault, VendorPublic};
use crate::error::{Error, Result};
use crate::key::Key;

/// The `format` of a license file this crate reads and writes.
pub const FORMAT: &str = "tollgate-license-1";

/// A license file as read or signed, not yet verified: [`verify`] is the only way to the key.
#[derive(Debug, Clone)]
pub struct SignedLicense {
    /// The key object as signed; the signature is checked against this, not a re-serialisation.
    key_json: Value,
    /// `key_json` parsed, for its id in messages and as the result of [`verify`].
    key: Key,
    /// As found in the file: a damaged signature is a [`LicenseError::BadSignature`] at
    /// verification, not a parse error.
    signature: String,
    signer: VendorPublic,
}

/// A key as a caller hands it to the engine: plain key JSON, or a license file still to be
/// verified. Every engine call that adds a key takes one (a [`Key`] converts into it), and the
/// engine decides whether a plain key is acceptable (see `Engine::trust`).
#[derive(Debug, Clone)]
pub enum KeyOrLicense {
    /// Plain key JSON, with no signature.
    Key(Key),
    /// A license file, still to be [`verify`]'d (boxed: a parsed public key is large).
    License(Box<SignedLicense>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    key: Map<String, Value>,
    signature: String,
    signer: String,
}

/// Checks a license's signature and signer; returns its key when the signature is valid and
/// the signer is one of `trusted`.
///
/// The signature is checked first, against the key the file names as signer, so that an
/// altered key is [`LicenseError::BadSignature`] whoever claims to have signed it, and a key
/// validly signed by someone else is [`LicenseError::UntrustedSigner`]. Verification is strict
/// (RFC 8032 with no malleable signatures): a signature has exactly one valid encoding.
pub fn verify(license: &SignedLicense, trusted: &[VendorPublic]) -> Result<Key, LicenseError> {
    let bad = |reason: SignatureFault| LicenseError::BadSignature {
        key_id: license.key.id.clone(),
        reason,
    };
    let bytes = STANDARD.decode(&license.signature).map_err(|e| {
        bad(SignatureFault::NotBase64 {
            detail: e.to_string(),
        })
    })?;
    let signature = Signature::from_slice(&bytes)
        .map_err(|_| bad(SignatureFault::Length { bytes: bytes.len() }))?;
    license
        .signer
        .verifying_key()
        .verify_strict(&canonical_json(&license.key_json), &signature)
        .map_err(|_| bad(SignatureFault::Mismatch))?;
    if !trusted.contains(&license.signer) {
        return Err(LicenseError::UntrustedSigner {
            key_id: license.key.id.clone(),
            signer: license.signer.fingerprint(),
        });
    }
    Ok(license.key.clone())
}

/// Reads text that is either plain key JSON or a license file; a license is recognised by its
/// `format` member. Plain key JSON is parsed and validated as `Key::from_json` does; what to
/// do with an unsigned key (accept it in development, refuse it when a vendor key is trusted)
/// is the caller's rule.
pub fn parse_key_or_license(text: &str) -> Result<KeyOrLicense, LicenseError> {
    match SignedLicense::from_json(text) {
        Ok(license) => Ok(KeyOrLicense::License(Box::new(license))),
        Err(LicenseError::Unsigned { .. }) => Key::from_json(text)
            .map(KeyOrLicense::Key)
            .map_err(|e| LicenseError::Malformed(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Whether a JSON object is meant as a license file rather than key JSON.
fn is_envelope(object: &Map<String, Value>) -> bool {
    ["format", "signature", "signer"]
        .iter()
        .any(|member| object.contains_key(*member))
}

impl SignedLicense {
    /// A license for `key` carrying `signature`, which `signer` made over the key's canonical
    /// bytes ([`canonical_key`](super::canonical_key)). This is how the vendor side
    /// (`tollgate-license`'s `sign`) builds one; nothing is checked until [`verify`].
    pub fn from_signature(key: &Key, signature: [u8; 64], signer: VendorPublic) -> SignedLicense {
        SignedLicense {
            key_json: serde_json::to_value(key).expect("a key always serialises to a JSON value"),
            key: key.clone(),
            signature: STANDARD.encode(signature),
            signer,
        }
    }

    /// The license file's text: pretty-printed JSON (see the module documentation), ending
    /// with a newline.
    pub fn to_json(&self) -> String {
        let Value::Object(key) = &self.key_json else {
            unreachable!("a license's key is always a JSON object")
        };
        let envelope = Envelope {
            format: FORMAT.into(),
            key: key.clone(),
            signature: self.signature.clone(),
            signer: self.signer.fingerprint(),
        };
        let mut text =
            serde_json::to_string_pretty(&envelope).expect("a license always serialises");
        text.push('\n');
        text
    }

    /// Reads a license file's text. Its signature is not checked here: that is [`verify`].
    ///
    /// Refuses plain key JSON as [`LicenseError::Unsigned`], and everything else that is not a
    /// well-formed license — not JSON, another `format`, a member missing or unknown, a signer
    /// that is not a public key, a key that is not valid — as [`LicenseError::Malformed`].
    pub fn from_json(text: &str) -> Result<SignedLicense, LicenseError> {
        let malformed = LicenseError::Malformed;
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Value::Object(object) = &value else {
            return Err(malformed("not a JSON object".into()));
        };
        if !is_envelope(object) {
            return Err(match Key::from_json(text) {
                Ok(key) => LicenseError::Unsigned { key_id: key.id },
                Err(e) => malformed(format!("neither a license nor key JSON: {e}")),
            });
        }
        match object.get("format") {
            None => {
                return Err(malformed(format!(
                    "no \"format\" member; a license has \"format\": \"{FORMAT}\""
                )));
            }
            Some(Value::String(format)) if format == FORMAT => {}
            Some(other) => {
                return Err(malformed(format!(
                    "the format is {other}, not \"{FORMAT}\""
                )))
            }
        }
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
        let signer = VendorPublic::from_base64(&envelope.signer).map_err(|e| match e {
            LicenseError::KeyText(reason) => {
                malformed(format!("\"signer\" is not a vendor public key: {reason}"))
            }
            other => other,
        })?;
        let key_json = Value::Object(envelope.key);
        let key: Key = serde_json::from_value(key_json.clone())
            .map_err(|e| malformed(format!("the key is not valid key JSON: {e}")))?;
        key.validate()
            .map_err(|e| malformed(format!("the key is not valid: {e}")))?;
        Ok(SignedLicense {
            key_json,
            key,
            signature: envelope.signature,
            signer,
        })
    }

    /// The public key the license says it was signed with. Not a sign of trust: [`verify`]
    /// checks it against the trusted keys.
    pub fn signer(&self) -> &VendorPublic {
        &self.signer
    }
}

impl KeyOrLicense {
    /// Reads what a caller passes as text to the engine's key calls (the C ABI, the CLI's
    /// `--file`): plain key JSON, or a license file (a JSON object with a `format`,
    /// `signature` or `signer` member).
    ///
    /// Key JSON that is not valid is `InvalidArgument`, exactly as [`Key::from_json`] says; a
    /// license file that is not well formed is [`Error::BadSignature`] with the reason
    /// `malformed license: …`, naming the key when its id can be read.
    pub fn parse(text: &str) -> Result<KeyOrLicense> {
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) if is_envelope(&object) => object,
            _ => return Key::from_json(text).map(KeyOrLicense::Key),
        };
        SignedLicense::from_json(text)
            .map(|license| KeyOrLicense::License(Box::new(license)))
            .map_err(|e| match Error::from(e) {
                Error::BadSignature { key, reason } if key.is_empty() => Error::BadSignature {
                    key: object
                        .get("key")
                        .and_then(|k| k.get("id"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    reason,
                },
                other => other,
            })
    }

    /// The id of the key, read from the license before any verification when it is one: for
    /// messages, never for a decision.
    pub fn id(&self) -> &str {
        match self {
            KeyOrLicense::Key(key) => &key.id,
            KeyOrLicense::License(license) => &license.key.id,
        }
    }
}

impl From<Key> for KeyOrLicense {
    fn from(key: Key) -> KeyOrLicense {
        KeyOrLicense::Key(key)
    }
}

impl From<&Key> for KeyOrLicense {
    fn from(key: &Key) -> KeyOrLicense {
        KeyOrLicense::Key(key.clone())
    }
}

impl From<SignedLicense> for KeyOrLicense {
    fn from(license: SignedLicense) -> KeyOrLicense {
        KeyOrLicense::License(Box::new(license))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::license::canonical_key;

    /// A license for `key` signed with the secret seed `[seed; 32]`, as a vendor makes one.
    fn signed(seed: u8, key: &Key) -> SignedLicense {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let signer = VendorPublic::from_bytes(&signing.verifying_key().to_bytes()).unwrap();
        SignedLicense::from_signature(key, signing.sign(&canonical_key(key)).to_bytes(), signer)
    }

    fn offline() -> Key {
        Key {
            delivery: crate::key::Delivery::Offline,
            ..Key::data_volume("OFF-1", 1 << 30)
        }
    }

    #[test]
    fn parse_tells_key_json_from_a_license_file() {
        let key = offline();
        let license = signed(1, &key);
        assert!(matches!(
            KeyOrLicense::parse(&key.to_json()),
            Ok(KeyOrLicense::Key(k)) if k == key
        ));
        match KeyOrLicense::parse(&license.to_json()) {
            Ok(doc @ KeyOrLicense::License(_)) => assert_eq!(doc.id(), "OFF-1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(verify(&license, &[*license.signer()]).unwrap(), key);
    }

    #[test]
    fn parse_keeps_key_json_errors_and_calls_a_broken_license_malformed() {
        // Not a license: the key JSON error, as before licenses existed.
        for text in ["{not json", "[]", r#"{"id": "K"}"#] {
            assert!(
                matches!(
                    KeyOrLicense::parse(text),
                    Err(Error::InvalidArgument {
                        field: "key JSON",
                        ..
                    })
                ),
                "{text}"
            );
        }
        let text = signed(1, &offline()).to_json();
        let cases = [
            (
                text.replace(FORMAT, "tollgate-license-9"),
                "OFF-1",
                "malformed license: the format is \"tollgate-license-9\", not \"tollgate-license-1\"",
            ),
            (
                text.replace("\"format\"", "\"comment\""),
                "OFF-1",
                "malformed license: no \"format\" member; a license has \"format\": \"tollgate-license-1\"",
            ),
            (
                r#"{"format": "tollgate-license-1", "key": 1, "signature": "", "signer": ""}"#
                    .to_owned(),
                "",
                "malformed license: invalid type: integer `1`, expected a map",
            ),
        ];
        for (text, id, expected) in cases {
            match KeyOrLicense::parse(&text) {
                Err(Error::BadSignature { key, reason }) => {
                    assert_eq!((key.as_str(), reason.to_string().as_str()), (id, expected))
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
