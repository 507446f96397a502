//! The canonical encodings a license signature covers.
//!
//! A signature is over bytes, but a key is JSON, and the same JSON can be written many ways:
//! fields in any order, any whitespace. Each license format picks one canonical form.
//!
//! `tollgate-license-2` signs the key object's RFC 8785 bytes (the JSON Canonicalization
//! Scheme, JCS; [`jcs_json`]), which a vendor's license server in any language can produce with
//! a standard JCS library, or for a key with a plain JSON serialiser: members sorted by name,
//! no whitespace, non-ASCII as raw UTF-8, integers in decimal. RFC 8785 writes every number as
//! an IEEE 754 double, so this format refuses a key holding a number that is not an integer
//! of magnitude at most 2^53 - 1, which a double would round; a valid key never holds one.
//!
//! `tollgate-license-1`, still verified, signs this crate's own form ([`canonical_json`]):
//!
//! - the key is serialised by serde ([`Key`]'s own `Serialize`) to a JSON value;
//! - every object's members are written sorted by name, compared as UTF-8 bytes, recursively;
//! - no whitespace anywhere;
//! - strings are written as `serde_json` writes them: `"` and `\` escaped, control characters
//!   as `\n`, `\t`, … or `\u00XX`, everything else (non-ASCII included) as raw UTF-8;
//! - numbers as `serde_json` writes them. A key holds only integers, so there is no float
//!   formatting to agree on.
//!
//! The order of the fields in the `Key` struct, and the layout of the file a key came from,
//! therefore never change what is signed, in either format.

use serde_json::Value;

use super::LicenseError;
use crate::key::Key;

/// The largest magnitude of an integer that an IEEE 754 double holds exactly: 2^53 - 1.
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// The RFC 8785 (JCS) bytes of a key: what a vendor signs for a `tollgate-license-2` file and
/// [`verify`](super::verify) checks. A key that passed `Key::validate` holds only integers
/// that JCS writes exactly; one that did not is refused at verification.
pub fn jcs_key(key: &Key) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(key).expect("a key holds no float, so JCS cannot fail")
}

/// The RFC 8785 (JCS) bytes of a JSON value, refused as [`LicenseError::Malformed`] when the
/// value holds a number that JCS would not write exactly (see the module documentation).
pub fn jcs_json(value: &Value) -> Result<Vec<u8>, LicenseError> {
    check_numbers(value)?;
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| LicenseError::Malformed(format!("the key has no RFC 8785 form: {e}")))
}

fn check_numbers(value: &Value) -> Result<(), LicenseError> {
    match value {
        Value::Object(members) => members.values().try_for_each(check_numbers),
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Number(number) => {
            let exact = number.as_u64().map(|n| n <= MAX_EXACT_INTEGER).or_else(|| {
                number
                    .as_i64()
                    .map(|n| n.unsigned_abs() <= MAX_EXACT_INTEGER)
            });
            match exact {
                Some(true) => Ok(()),
                _ => Err(LicenseError::Malformed(format!(
                    "the key holds the number {number}, which RFC 8785 does not write exactly: a tollgate-license-2 key holds integers of at most 2^53 - 1"
                ))),
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// The `tollgate-license-1` canonical bytes of a key: what a vendor signed for that format.
pub fn canonical_key(key: &Key) -> Vec<u8> {
    let value = serde_json::to_value(key).expect("a key always serialises to a JSON value");
    canonical_json(&value)
}

/// The canonical bytes of any JSON value: object members sorted by name, recursively, and no
/// whitespace (see the module documentation for strings and numbers).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            // Sorted here rather than trusting `Map`'s order: serde_json's `preserve_order`
            // feature, switched on by any crate in the build, would keep insertion order.
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_string(text, out),
        // Null, booleans and numbers have one compact form each.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("writing a string to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_text(json: &str) -> String {
        let value: Value = serde_json::from_str(json).unwrap();
        String::from_utf8(canonical_json(&value)).unwrap()
    }

    #[test]
    fn canonical_form_ignores_member_order_and_whitespace() {
        let cases = [
            (r#"{"b": 1, "a": 2}"#, r#"{"a":2,"b":1}"#),
            (
                r#"{ "a" : { "z" : [ 1 , { "y": null, "x": true } ], "m": "é\n" } }"#,
                r#"{"a":{"m":"é\n","z":[1,{"x":true,"y":null}]}}"#,
            ),
            (
                r#"{"B": 0, "a": 0, "_": 0, "aa": 0}"#,
                r#"{"B":0,"_":0,"a":0,"aa":0}"#,
            ),
            (
                r#"{"q": "say \"hi\"\\", "c": "\u0001"}"#,
                r#"{"c":"\u0001","q":"say \"hi\"\\"}"#,
            ),
            (r#"[]"#, r#"[]"#),
            (r#"{}"#, r#"{}"#),
            (r#"-12"#, r#"-12"#),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_text(input), expected, "{input}");
        }
    }

    #[test]
    fn a_key_has_one_canonical_form_however_its_json_is_laid_out() {
        let compact = r#"{"id":"K-1","delivery":"offline","kind":"commercial","edition":"standard","scheme":{"data_volume":{"limit_bytes":1024}},"expires_at":"2027-01-01T00:00:00Z","auto_renew":false,"company":"Acme","activation_code":null}"#;
        let shuffled = r#"
            {
              "scheme":   { "data_volume": { "limit_bytes": 1024 } },
              "company": "Acme",
              "activation_code": null,
              "auto_renew": false,
              "edition": "standard", "kind": "commercial",
              "expires_at": "2027-01-01T00:00:00Z",
              "delivery": "offline",
              "id": "K-1"
            }"#;
        let a = Key::from_json(compact).unwrap();
        let b = Key::from_json(shuffled).unwrap();
        assert_eq!(canonical_key(&a), canonical_key(&b));
        assert_eq!(
            canonical_key(&a),
            canonical_json(&serde_json::from_str(shuffled).unwrap())
        );
        assert_eq!(
            String::from_utf8(canonical_key(&a)).unwrap(),
            r#"{"activation_code":null,"auto_renew":false,"company":"Acme","delivery":"offline","edition":"standard","expires_at":"2027-01-01T00:00:00Z","id":"K-1","kind":"commercial","scheme":{"data_volume":{"limit_bytes":1024}}}"#
        );
    }
}
