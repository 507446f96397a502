//! The vendor's public key, and the format of the two vendor key files, `vendor.key` and
//! `vendor.pub`.
//!
//! Each file is two lines of text: a header that names what the file is, then the key's 32
//! bytes in standard base64 (with padding):
//!
//! ```text
//! tollgate-vendor-secret-1            tollgate-vendor-public-1
//! <base64 of the 32-byte seed>        <base64 of the 32-byte public key>
//! ```
//!
//! The header lets a reader refuse the wrong file with a message that says which file it got,
//! and the `-1` leaves room for another algorithm later. The engine reads only `vendor.pub`; the
//! format of both lives here so that each reader can tell the other file apart.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Serialize, Serializer};

use super::LicenseError;

/// First line of a vendor secret key file.
pub const SECRET_HEADER: &str = "tollgate-vendor-secret-1";
/// First line of a vendor public key file.
pub const PUBLIC_HEADER: &str = "tollgate-vendor-public-1";
/// File name of the vendor's secret key.
pub const SECRET_FILE: &str = "vendor.key";
/// File name of the vendor's public key.
pub const PUBLIC_FILE: &str = "vendor.pub";

/// A vendor's public key: what a license's signature is checked against, and what an engine
/// is told to trust. Serialises as its [`fingerprint`](Self::fingerprint).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VendorPublic {
    verifying: VerifyingKey,
}

impl VendorPublic {
    /// Reads a `vendor.pub` file.
    pub fn read(path: &Path) -> Result<VendorPublic, LicenseError> {
        read_key_file(path, VendorPublic::parse)
    }

    /// Parses the text of a `vendor.pub` file.
    pub fn parse(text: &str) -> Result<VendorPublic, LicenseError> {
        VendorPublic::from_bytes(&VendorKeyFile::Public.decode(text)?)
    }

    /// The public key from its 32 raw bytes. Refuses bytes that are not a point of the curve,
    /// and weak (small-order) keys, under which a signature proves nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VendorPublic, LicenseError> {
        match VerifyingKey::from_bytes(bytes) {
            Ok(verifying) if !verifying.is_weak() => Ok(VendorPublic { verifying }),
            Ok(_) => Err(LicenseError::KeyText(
                "a weak Ed25519 public key, of small order, for which anyone can forge signatures"
                    .into(),
            )),
            Err(_) => Err(LicenseError::KeyText(
                "not a valid Ed25519 public key".into(),
            )),
        }
    }

    /// The 32 raw bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.verifying.to_bytes()
    }

    /// The text of a `vendor.pub` file for this key.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_HEADER}\n{}\n", self.fingerprint())
    }

    /// How the key is shown to people: its 32 bytes in base64. An Ed25519 key is short enough
    /// to be its own fingerprint, and this is the very text of `vendor.pub`'s second line and
    /// of a license's `signer` field, so an operator can match them by eye.
    pub fn fingerprint(&self) -> String {
        STANDARD.encode(self.verifying.as_bytes())
    }

    /// Parses the base64 form [`fingerprint`](Self::fingerprint) gives.
    pub(crate) fn from_base64(text: &str) -> Result<VendorPublic, LicenseError> {
        VendorPublic::from_bytes(&decode_key_bytes(text)?)
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }
}

impl fmt::Debug for VendorPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VendorPublic")
            .field(&self.fingerprint())
            .finish()
    }
}

impl Serialize for VendorPublic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.fingerprint())
    }
}

/// Which of the two vendor key files a text should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorKeyFile {
    /// `vendor.key`, the secret signing key.
    Secret,
    /// `vendor.pub`, the public key.
    Public,
}

impl VendorKeyFile {
    /// The first line of this file.
    pub fn header(self) -> &'static str {
        match self {
            VendorKeyFile::Secret => SECRET_HEADER,
            VendorKeyFile::Public => PUBLIC_HEADER,
        }
    }

    /// Why the other kind's file is the wrong one here.
    fn swapped(self) -> &'static str {
        match self {
            VendorKeyFile::Secret => "a vendor public key where the secret key was expected: signing needs vendor.key",
            VendorKeyFile::Public => "a vendor secret key where a public key was expected: pass vendor.pub, the secret key stays with the vendor",
        }
    }

    fn other(self) -> VendorKeyFile {
        match self {
            VendorKeyFile::Secret => VendorKeyFile::Public,
            VendorKeyFile::Public => VendorKeyFile::Secret,
        }
    }

    /// The 32 key bytes of this file's text, or why there are none ([`LicenseError::KeyText`]).
    /// Blank lines and surrounding whitespace, Windows line ends included, are tolerated.
    pub fn decode(self, text: &str) -> Result<[u8; 32], LicenseError> {
        let invalid = LicenseError::KeyText;
        let header = self.header();
        let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
        match lines.next() {
            None => {
                return Err(invalid(format!(
                    "empty; a vendor key file starts with the line {header}"
                )))
            }
            Some(first) if first == self.other().header() => {
                return Err(invalid(self.swapped().into()))
            }
            Some(first) if first != header => {
                return Err(invalid(format!(
                    "the first line is \"{}\", not {header}",
                    first.chars().take(40).collect::<String>()
                )))
            }
            Some(_) => {}
        }
        let body = lines
            .next()
            .ok_or_else(|| invalid(format!("no key after the {header} line")))?;
        if lines.next().is_some() {
            return Err(invalid(format!(
                "more than one line after the {header} line"
            )));
        }
        decode_key_bytes(body)
    }
}

/// Reads the vendor key file at `path` and parses its text with `parse`; a
/// [`LicenseError::KeyText`] becomes a [`LicenseError::KeyFile`] naming the file.
pub fn read_key_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, LicenseError>,
) -> Result<T, LicenseError> {
    let text = std::fs::read_to_string(path).map_err(|source| LicenseError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|error| match error {
        LicenseError::KeyText(reason) => LicenseError::KeyFile {
            path: path.to_owned(),
            reason,
        },
        other => other,
    })
}

/// Decodes the base64 of a 32-byte key.
fn decode_key_bytes(text: &str) -> Result<[u8; 32], LicenseError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| LicenseError::KeyText(format!("the key is not valid base64: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        LicenseError::KeyText(format!(
            "the key is {} bytes; an Ed25519 key is 32",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid public key: the one of the secret seed [7; 32].
    fn public() -> VendorPublic {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        VendorPublic::from_bytes(&signing.verifying_key().to_bytes()).unwrap()
    }

    fn reason_of(result: Result<impl fmt::Debug, LicenseError>) -> String {
        match result {
            Err(LicenseError::KeyText(reason)) => reason,
            other => panic!("expected a key text error, got {other:?}"),
        }
    }

    #[test]
    fn public_key_text_round_trips() {
        let public = public();
        assert_eq!(VendorPublic::parse(&public.to_text()).unwrap(), public);
        assert_eq!(
            VendorPublic::from_bytes(&public.to_bytes()).unwrap(),
            public
        );
        // Windows line ends and surrounding blank lines are tolerated.
        let crlf = format!("\r\n{PUBLIC_HEADER}\r\n{}\r\n\r\n", public.fingerprint());
        assert_eq!(VendorPublic::parse(&crlf).unwrap(), public);
        assert_eq!(
            serde_json::to_string(&public).unwrap(),
            format!("\"{}\"", public.fingerprint())
        );
    }

    #[test]
    fn bad_public_key_text_says_what_is_wrong() {
        let good = public().fingerprint();
        let cases = [
            (
                String::new(),
                "empty; a vendor key file starts with the line tollgate-vendor-public-1",
            ),
            (
                format!("{SECRET_HEADER}\n{good}\n"),
                "a vendor secret key where a public key was expected",
            ),
            (
                format!("ssh-ed25519 {good}\n"),
                "the first line is \"ssh-ed25519 ",
            ),
            (
                format!("{PUBLIC_HEADER}\n"),
                "no key after the tollgate-vendor-public-1 line",
            ),
            (
                format!("{PUBLIC_HEADER}\n{good}\n{good}\n"),
                "more than one line after",
            ),
            (
                format!("{PUBLIC_HEADER}\nnot*base64\n"),
                "the key is not valid base64",
            ),
            (
                format!("{PUBLIC_HEADER}\n{}\n", STANDARD.encode([7u8; 31])),
                "the key is 31 bytes; an Ed25519 key is 32",
            ),
            (
                format!("{PUBLIC_HEADER}\n{}\n", STANDARD.encode([0u8; 32])),
                "a weak Ed25519 public key",
            ),
        ];
        for (text, expected) in cases {
            let reason = reason_of(VendorPublic::parse(&text));
            assert!(reason.starts_with(expected), "{text:?} gave {reason:?}");
        }
    }

    #[test]
    fn a_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PUBLIC_FILE);
        std::fs::write(&path, "hello\n").unwrap();
        let message = VendorPublic::read(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: the first line is \"hello\"", path.display())),
            "{message}"
        );
        std::fs::write(&path, public().to_text()).unwrap();
        assert_eq!(VendorPublic::read(&path).unwrap(), public());
        assert!(matches!(
            VendorPublic::read(&dir.path().join("absent.pub")),
            Err(LicenseError::Io { action: "read", .. })
        ));
    }
}
