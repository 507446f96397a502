//! The signed license file (`.lic`): reading and verifying it.
//!
//! A license file is one JSON object:
//!
//! ```text
//! {
//!   "format": "tollgate-license-2",
//!   "key": { …the key JSON… },
//!   "signature": "<base64 of the 64-byte Ed25519 signature over the key's canonical bytes>",
//!   "signer": "<base64 of the signer's 32-byte public key>"
//! }
//! ```
//!
//! The signature covers the canonical form of the `"key"` object exactly as the file holds it:
//! its RFC 8785 (JCS) bytes ([`jcs_json`]) in a `tollgate-license-2` file, the one written;
//! this crate's own canonical form ([`canonical_json`]) in a `tollgate-license-1` file, still
//! read and verified as before. Either way the file may be re-indented or its members
//! reordered, but any change to a value, or a member added or removed, breaks it. `signer` only says which key to
//! check the signature with; whether that key is trusted is the verifier's list, never the
//! file's word.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::canonical::{canonical_json, jcs_json};
use super::{LicenseError, SignatureFault, VendorPublic};
use crate::error::{Error, Result};
use crate::key::Key;

/// The `format` of the license files this crate writes: signed over RFC 8785 (JCS) bytes.
pub const FORMAT: &str = "tollgate-license-2";

/// The `format` of the first license files, signed over [`canonical_json`]: still read and
/// verified.
pub const FORMAT_V1: &str = "tollgate-license-1";

/// Which canonical bytes a license's signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// [`FORMAT_V1`]: [`canonical_json`].
    V1,
    /// [`FORMAT`]: RFC 8785 ([`jcs_json`]).
    V2,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::V1 => FORMAT_V1,
            Format::V2 => FORMAT,
        }
    }

    /// The bytes the signature of a license of this format covers.
    fn signed_bytes(self, key_json: &Value) -> Result<Vec<u8>, LicenseError> {
        match self {
            Format::V1 => Ok(canonical_json(key_json)),
            Format::V2 => jcs_json(key_json),
        }
    }
}

/// A license file as read or signed, not yet verified: [`verify`] is the only way to the key.
#[derive(Debug, Clone)]
pub struct SignedLicense {
    /// Which canonical bytes the signature covers.
    format: Format,
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
        .verify_strict(&license.format.signed_bytes(&license.key_json)?, &signature)
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
    /// A license of the current [`FORMAT`] for `key` carrying `signature`, which `signer`
    /// made over the key's RFC 8785 bytes ([`jcs_key`](super::jcs_key)). This is how the
    /// vendor side (`tollgate-license`'s `sign`) builds one; nothing is checked until
    /// [`verify`].
    pub fn from_signature(key: &Key, signature: [u8; 64], signer: VendorPublic) -> SignedLicense {
        SignedLicense {
            format: Format::V2,
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
            format: self.format.name().into(),
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
        let format = match object.get("format") {
            None => {
                return Err(malformed(format!(
                    "no \"format\" member; a license has \"format\": \"{FORMAT}\""
                )));
            }
            Some(Value::String(format)) if format == FORMAT => Format::V2,
            Some(Value::String(format)) if format == FORMAT_V1 => Format::V1,
            Some(other) => {
                return Err(malformed(format!(
                    "the format is {other}, not \"{FORMAT}\" or \"{FORMAT_V1}\""
                )))
            }
        };
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
            format,
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
    use crate::license::{canonical_key, jcs_key, SignatureFault};

    fn signer_of(seed: u8) -> (SigningKey, VendorPublic) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let public = VendorPublic::from_bytes(&signing.verifying_key().to_bytes()).unwrap();
        (signing, public)
    }

    /// A license for `key` signed with the secret seed `[seed; 32]`, as a vendor makes one.
    fn signed(seed: u8, key: &Key) -> SignedLicense {
        let (signing, signer) = signer_of(seed);
        SignedLicense::from_signature(key, signing.sign(&jcs_key(key)).to_bytes(), signer)
    }

    /// The text of a license file of `format` for `key`, signed with the seed `[seed; 32]` over
    /// `bytes`, its members in another order than `to_json` writes them.
    fn license_text(format: &str, key: &Value, bytes: &[u8], seed: u8) -> String {
        let (signing, signer) = signer_of(seed);
        serde_json::json!({
            "signer": signer.fingerprint(),
            "key": key,
            "signature": STANDARD.encode(signing.sign(bytes).to_bytes()),
            "format": format,
        })
        .to_string()
    }

    /// A license of the first format, which signs `canonical_key`, as a vendor made one then.
    fn signed_v1(seed: u8, key: &Key) -> String {
        let json = serde_json::to_value(key).unwrap();
        license_text(FORMAT_V1, &json, &canonical_key(key), seed)
    }

    fn check(text: &str, trusted: &[VendorPublic]) -> Result<Key, LicenseError> {
        verify(&SignedLicense::from_json(text)?, trusted)
    }

    /// Both formats verify, and refuse each edit with the same error.
    #[test]
    fn both_formats_verify_and_refuse_the_same_edits() {
        let key = offline();
        let (_, vendor) = signer_of(1);
        let (_, stranger) = signer_of(2);
        let formats = [
            (FORMAT_V1, signed_v1(1, &key), signed_v1(2, &key)),
            (FORMAT, signed(1, &key).to_json(), signed(2, &key).to_json()),
        ];
        type Outcome = Result<Key, String>;
        let altered = Err(LicenseError::BadSignature {
            key_id: "OFF-1".into(),
            reason: SignatureFault::Mismatch,
        }
        .to_string());
        for (format, text, by_stranger) in formats {
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["format"], format);
            let edit = |change: &dyn Fn(&mut Value)| {
                let mut v = value.clone();
                change(&mut v);
                v.to_string()
            };
            let cases: [(&str, String, &[VendorPublic], Outcome); 7] = [
                ("as signed", text.clone(), &[vendor], Ok(key.clone())),
                (
                    "re-indented and reordered",
                    serde_json::to_string_pretty(&value).unwrap(),
                    &[vendor],
                    Ok(key.clone()),
                ),
                (
                    "limit raised",
                    edit(&|v| v["key"]["scheme"]["data_volume"]["limit_bytes"] = (1u64 << 31).into()),
                    &[vendor],
                    altered.clone(),
                ),
                ("member added", edit(&|v| v["key"]["company"] = "Other".into()), &[vendor], altered.clone()),
                (
                    "signature cut",
                    edit(&|v| v["signature"] = STANDARD.encode([0u8; 30]).into()),
                    &[vendor],
                    Err("license for key \"OFF-1\" has a bad signature: the signature is 30 bytes; an Ed25519 signature is 64".into()),
                ),
                (
                    "signed by a stranger",
                    by_stranger.clone(),
                    &[vendor],
                    Err(format!(
                        "license for key \"OFF-1\" is signed by {}, which is not a trusted vendor key",
                        stranger.fingerprint()
                    )),
                ),
                ("the stranger trusted", by_stranger.clone(), &[stranger], Ok(key.clone())),
            ];
            for (case, text, trusted, expected) in cases {
                let got = check(&text, trusted).map_err(|e| e.to_string());
                assert_eq!(got, expected, "{format}: {case}");
            }
            // A license keeps its format when written out again.
            let reread = SignedLicense::from_json(&text).unwrap().to_json();
            assert!(
                reread.contains(&format!("\"format\": \"{format}\"")),
                "{format}"
            );
        }
    }

    /// A vendor's license server in another language signs the key's RFC 8785 bytes with its
    /// own JSON library: here they are written out by hand (members sorted by name, no
    /// whitespace, non-ASCII as raw UTF-8, integers in decimal), and the license verifies.
    #[test]
    fn a_license_signed_over_jcs_bytes_made_elsewhere_verifies() {
        let json = r#"{
            "scheme": {"data_volume": {"limit_bytes": 1073741824}},
            "id": "JCS-1", "kind": "commercial", "edition": "enterprise",
            "delivery": "offline", "company": "Müller & Søn \"Ltd\"",
            "expires_at": "2027-01-01T00:00:00Z"
        }"#;
        let by_hand = concat!(
            r#"{"company":"Müller & Søn \"Ltd\"","delivery":"offline","edition":"enterprise","#,
            r#""expires_at":"2027-01-01T00:00:00Z","id":"JCS-1","kind":"commercial","#,
            r#""scheme":{"data_volume":{"limit_bytes":1073741824}}}"#
        );
        let value: Value = serde_json::from_str(json).unwrap();
        assert_eq!(jcs_json(&value).unwrap(), by_hand.as_bytes());
        let text = license_text(FORMAT, &value, by_hand.as_bytes(), 3);
        let key = check(&text, &[signer_of(3).1]).unwrap();
        assert_eq!(key.id, "JCS-1");
        assert_eq!(key, Key::from_json(json).unwrap());
    }

    /// RFC 8785 writes numbers as doubles: a number a double would round is refused, so that no
    /// two keys share the bytes a signature covers.
    #[test]
    fn jcs_refuses_numbers_a_double_would_round() {
        let max = (1u64 << 53) - 1;
        let cases = [
            (format!("[{max}, -{max}, 0]"), true),
            (format!("[{}]", max + 1), false),
            (format!("[-{}]", max + 1), false),
            ("[1.5]".to_owned(), false),
            (format!("{{\"a\": {{\"b\": [{}]}}}}", u64::MAX), false),
        ];
        for (json, exact) in cases {
            let value: Value = serde_json::from_str(&json).unwrap();
            match jcs_json(&value) {
                Ok(_) => assert!(exact, "{json}"),
                Err(LicenseError::Malformed(reason)) => {
                    assert!(!exact, "{json}: {reason}");
                    assert!(reason.contains("RFC 8785"), "{reason}");
                }
                Err(other) => panic!("{json}: {other}"),
            }
        }
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
                "malformed license: the format is \"tollgate-license-9\", not \"tollgate-license-2\" or \"tollgate-license-1\"",
            ),
            (
                text.replace("\"format\"", "\"comment\""),
                "OFF-1",
                "malformed license: no \"format\" member; a license has \"format\": \"tollgate-license-2\"",
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
