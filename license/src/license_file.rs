//! Signing: the vendor's half of the license file (`.lic`). Reading and verifying one is the
//! engine's, in [`tollgate_core::license`]; see there for the file's layout.

use ed25519_dalek::Signer as _;
use tollgate_core::license::{jcs_key, SignedLicense};
use tollgate_core::Key;

use crate::VendorSecret;

/// Signs `key` with the vendor's secret key, over its RFC 8785 bytes: a license of the current
/// format ([`FORMAT`](crate::FORMAT)). The key should have passed `Key::validate`:
/// [`verify`](crate::verify) refuses an invalid key as
/// [`LicenseError::Malformed`](crate::LicenseError::Malformed) however it is signed.
pub fn sign(secret: &VendorSecret, key: &Key) -> SignedLicense {
    let signature = secret.signing_key().sign(&jcs_key(key));
    SignedLicense::from_signature(key, signature.to_bytes(), secret.public())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde_json::{Map, Value};

    use super::*;
    use crate::{parse_key_or_license, verify, KeyOrLicense, LicenseError};

    /// What verifying an edited license file should give.
    #[derive(Debug)]
    enum Expect {
        Valid,
        Unsigned,
        /// Malformed, with this text in the reason.
        Malformed(&'static str),
        Untrusted,
        /// A bad signature, with this text in the reason.
        BadSignature(&'static str),
    }

    fn offline_key() -> Key {
        Key::from_json(
            r#"{"id": "OFF-1", "delivery": "offline", "kind": "commercial", "edition": "enterprise",
            "scheme": {"data_volume": {"limit_bytes": 1073741824}},
            "expires_at": "2027-01-01T00:00:00Z", "company": "Acme"}"#,
        )
        .unwrap()
    }

    /// The vendor, a stranger with a key pair of their own, and a license the vendor signed.
    struct Fixture {
        vendor: VendorSecret,
        stranger: VendorSecret,
        license: Value,
    }

    impl Fixture {
        fn new() -> Fixture {
            let vendor = VendorSecret::generate().unwrap();
            let license = serde_json::from_str(&sign(&vendor, &offline_key()).to_json()).unwrap();
            Fixture {
                vendor,
                stranger: VendorSecret::generate().unwrap(),
                license,
            }
        }

        /// Reads `text` and verifies it against the vendor's key.
        fn check(&self, text: &str) -> Result<Key, LicenseError> {
            verify(&SignedLicense::from_json(text)?, &[self.vendor.public()])
        }
    }

    fn assert_outcome(case: &str, result: Result<Key, LicenseError>, expect: &Expect) {
        match (expect, &result) {
            (Expect::Valid, Ok(key)) => assert_eq!(key, &offline_key(), "{case}"),
            (Expect::Unsigned, Err(LicenseError::Unsigned { key_id })) => {
                assert_eq!(key_id, "OFF-1", "{case}")
            }
            (Expect::Malformed(want), Err(LicenseError::Malformed(reason))) => {
                assert!(reason.contains(want), "{case}: {reason:?} lacks {want:?}")
            }
            (Expect::BadSignature(want), Err(LicenseError::BadSignature { reason, .. })) => {
                let reason = reason.to_string();
                assert!(reason.contains(want), "{case}: {reason:?} lacks {want:?}")
            }
            (Expect::Untrusted, Err(LicenseError::UntrustedSigner { .. })) => {}
            _ => panic!("{case}: expected {expect:?}, got {result:?}"),
        }
    }

    /// Every way a signed license file can be edited, and what verifying it then says.
    #[test]
    fn edited_license_files_are_refused_with_a_distinct_error() {
        const ALTERED: Expect = Expect::BadSignature("the key was altered after signing");
        type Edit = fn(&Fixture, &mut Value);
        let cases: Vec<(&str, Edit, Expect)> = vec![
            ("untouched", |_, _| {}, Expect::Valid),
            (
                "limit raised",
                |_, l| l["key"]["scheme"]["data_volume"]["limit_bytes"] = 2_147_483_648u64.into(),
                ALTERED,
            ),
            (
                "limit lowered",
                |_, l| l["key"]["scheme"]["data_volume"]["limit_bytes"] = 1.into(),
                ALTERED,
            ),
            (
                "expiry pushed back",
                |_, l| l["key"]["expires_at"] = "2099-01-01T00:00:00Z".into(),
                ALTERED,
            ),
            (
                "expiry removed",
                |_, l| l["key"]["expires_at"] = Value::Null,
                ALTERED,
            ),
            (
                "id changed",
                |_, l| l["key"]["id"] = "OFF-2".into(),
                ALTERED,
            ),
            (
                "edition changed",
                |_, l| l["key"]["edition"] = "standard".into(),
                ALTERED,
            ),
            (
                "company removed",
                |_, l| {
                    l["key"].as_object_mut().unwrap().remove("company");
                },
                ALTERED,
            ),
            (
                "activation code added",
                |_, l| l["key"]["activation_code"] = "ACT-9".into(),
                ALTERED,
            ),
            (
                "re-signed by a stranger",
                |f, l| {
                    l["signature"] = signature_of(&sign(&f.stranger, &key_of(l)));
                    l["signer"] = f.stranger.public().fingerprint().into();
                },
                Expect::Untrusted,
            ),
            (
                "altered, re-signed by a stranger",
                |f, l| {
                    l["key"]["id"] = "OFF-2".into();
                    let stranger = sign(&f.stranger, &key_of(l));
                    *l = serde_json::from_str(&stranger.to_json()).unwrap();
                },
                Expect::Untrusted,
            ),
            (
                "re-signed by a stranger, claiming the vendor",
                |f, l| {
                    l["signature"] = signature_of(&sign(&f.stranger, &key_of(l)));
                },
                ALTERED,
            ),
            (
                "signer swapped for a stranger",
                |f, l| l["signer"] = f.stranger.public().fingerprint().into(),
                ALTERED,
            ),
            (
                "signature truncated",
                |_, l| truncate(&mut l["signature"], 40),
                Expect::BadSignature("the signature is 30 bytes; an Ed25519 signature is 64"),
            ),
            (
                "signature cut mid-base64",
                |_, l| truncate(&mut l["signature"], 41),
                Expect::BadSignature("not valid base64"),
            ),
            (
                "signature garbage",
                |_, l| l["signature"] = "not a signature!".into(),
                Expect::BadSignature("not valid base64"),
            ),
            (
                "signature of 64 zero bytes",
                |_, l| l["signature"] = STANDARD.encode([0u8; 64]).into(),
                ALTERED,
            ),
            (
                "signature empty",
                |_, l| l["signature"] = "".into(),
                Expect::BadSignature("is 0 bytes"),
            ),
            (
                "signature bit flipped",
                |_, l| {
                    let mut bytes = STANDARD.decode(l["signature"].as_str().unwrap()).unwrap();
                    bytes[5] ^= 1;
                    l["signature"] = STANDARD.encode(bytes).into();
                },
                ALTERED,
            ),
            ("plain key", |_, l| *l = l["key"].clone(), Expect::Unsigned),
            (
                "format of another version",
                |_, l| l["format"] = "tollgate-license-3".into(),
                Expect::Malformed(
                    "the format is \"tollgate-license-3\", not \"tollgate-license-2\" or \"tollgate-license-1\"",
                ),
            ),
            (
                "format not a string",
                |_, l| l["format"] = 1.into(),
                Expect::Malformed("the format is 1"),
            ),
            (
                "format missing",
                |_, l| {
                    l.as_object_mut().unwrap().remove("format");
                },
                Expect::Malformed("no \"format\" member"),
            ),
            (
                "signature missing",
                |_, l| {
                    l.as_object_mut().unwrap().remove("signature");
                },
                Expect::Malformed("missing field `signature`"),
            ),
            (
                "signer missing",
                |_, l| {
                    l.as_object_mut().unwrap().remove("signer");
                },
                Expect::Malformed("missing field `signer`"),
            ),
            (
                "unknown member",
                |_, l| l["comment"] = "hi".into(),
                Expect::Malformed("unknown field `comment`"),
            ),
            (
                "key not an object",
                |_, l| l["key"] = "OFF-1".into(),
                Expect::Malformed("invalid type"),
            ),
            (
                "unknown key member",
                |_, l| l["key"]["seats"] = 5.into(),
                Expect::Malformed("the key is not valid key JSON: unknown field `seats`"),
            ),
            (
                "key invalid",
                |_, l| l["key"]["scheme"]["data_volume"]["limit_bytes"] = 0.into(),
                Expect::Malformed("the key is not valid: invalid limit_bytes"),
            ),
            (
                "signer truncated",
                |_, l| truncate(&mut l["signer"], 40),
                Expect::Malformed("\"signer\" is not a vendor public key: the key is 30 bytes"),
            ),
            (
                "signer weak",
                |_, l| l["signer"] = STANDARD.encode([0u8; 32]).into(),
                Expect::Malformed("a weak Ed25519 public key"),
            ),
            (
                "not an object",
                |_, l| *l = Value::Array(vec![]),
                Expect::Malformed("not a JSON object"),
            ),
        ];
        let fixture = Fixture::new();
        for (case, edit, expect) in &cases {
            let mut license = fixture.license.clone();
            edit(&fixture, &mut license);
            let result = fixture.check(&serde_json::to_string_pretty(&license).unwrap());
            assert_outcome(case, result, expect);
        }
    }

    #[test]
    fn text_that_is_not_json_is_malformed() {
        let fixture = Fixture::new();
        let text = sign(&fixture.vendor, &offline_key()).to_json();
        for (case, text) in [
            ("empty", ""),
            ("cut in half", &text[..text.len() / 2]),
            ("prose", "this is my license, honest"),
        ] {
            assert_outcome(case, fixture.check(text), &Expect::Malformed("not JSON"));
        }
    }

    #[test]
    fn layout_and_member_order_do_not_matter() {
        let fixture = Fixture::new();
        let text = sign(&fixture.vendor, &offline_key()).to_json();
        let compact = serde_json::to_string(&fixture.license).unwrap();
        // Members written in reverse order, with the key's members reversed too.
        let reversed = {
            let reverse = |object: &Map<String, Value>| {
                let members: Vec<String> = object
                    .iter()
                    .rev()
                    .map(|(name, value)| format!("{}:\n   {}", Value::from(name.as_str()), value))
                    .collect();
                format!("{{ {} }}", members.join(" ,\n"))
            };
            let mut license = fixture.license.as_object().unwrap().clone();
            let key = reverse(license["key"].as_object().unwrap());
            license.remove("key");
            let mut outer = reverse(&license);
            outer.insert_str(outer.len() - 1, &format!(", \"key\": {key}"));
            outer
        };
        for (case, text) in [
            ("as written", text.as_str()),
            ("compact", &compact),
            ("reversed", &reversed),
        ] {
            assert_outcome(case, fixture.check(text), &Expect::Valid);
        }
    }

    #[test]
    fn trust_is_the_verifiers_list() {
        let fixture = Fixture::new();
        let license = sign(&fixture.vendor, &offline_key());
        assert_eq!(license.signer(), &fixture.vendor.public());
        let vendor = fixture.vendor.public();
        let stranger = fixture.stranger.public();
        assert!(matches!(
            verify(&license, &[]),
            Err(LicenseError::UntrustedSigner { .. })
        ));
        assert!(matches!(
            verify(&license, &[stranger]),
            Err(LicenseError::UntrustedSigner { .. })
        ));
        assert_eq!(
            verify(&license, &[stranger, vendor]).unwrap(),
            offline_key()
        );
        match verify(&license, &[stranger]) {
            Err(LicenseError::UntrustedSigner { signer, .. }) => {
                assert_eq!(signer, vendor.fingerprint())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_scheme_signs_and_verifies() {
        let vendor = VendorSecret::generate().unwrap();
        for scheme in [
            r#"{"data_volume": {"limit_bytes": 1}}"#,
            r#"{"per_machine": {"os": "desktop", "max_machines": 5}}"#,
            r#"{"per_core": {"max_cores": 64}}"#,
            r#""per_instance""#,
        ] {
            let key = Key::from_json(&format!(
                r#"{{"id": "K", "delivery": "offline", "kind": "trial", "edition": "standard", "scheme": {scheme}}}"#
            ))
            .unwrap();
            let text = sign(&vendor, &key).to_json();
            let read = SignedLicense::from_json(&text).unwrap();
            assert_eq!(verify(&read, &[vendor.public()]).unwrap(), key, "{scheme}");
            assert_eq!(read.to_json(), text, "{scheme}");
        }
    }

    #[test]
    fn parse_key_or_license_tells_them_apart() {
        let vendor = VendorSecret::generate().unwrap();
        let key = offline_key();
        assert!(
            matches!(parse_key_or_license(&key.to_json()), Ok(KeyOrLicense::Key(k)) if k == key)
        );
        match parse_key_or_license(&sign(&vendor, &key).to_json()) {
            Ok(KeyOrLicense::License(license)) => {
                assert_eq!(verify(&license, &[vendor.public()]).unwrap(), key)
            }
            other => panic!("{other:?}"),
        }
        for text in ["{}", r#"{"id": "K"}"#, "[]", "nonsense"] {
            assert!(
                matches!(parse_key_or_license(text), Err(LicenseError::Malformed(_))),
                "{text}"
            );
        }
    }

    /// The `signature` member of a license's file.
    fn signature_of(license: &SignedLicense) -> Value {
        serde_json::from_str::<Value>(&license.to_json()).unwrap()["signature"].take()
    }

    fn key_of(license: &Value) -> Key {
        serde_json::from_value(license["key"].clone()).unwrap()
    }

    fn truncate(text: &mut Value, chars: usize) {
        *text = text.as_str().unwrap()[..chars].into();
    }
}
