//! The vendor's Ed25519 key pair and its two files, `vendor.key` and `vendor.pub`.
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
//! and the `-1` leaves room for another algorithm later.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::LicenseError;

/// First line of a vendor secret key file.
pub const SECRET_HEADER: &str = "tollgate-vendor-secret-1";
/// First line of a vendor public key file.
pub const PUBLIC_HEADER: &str = "tollgate-vendor-public-1";
/// File name of the secret key that [`VendorSecret::write`] writes.
pub const SECRET_FILE: &str = "vendor.key";
/// File name of the public key that [`VendorSecret::write`] writes.
pub const PUBLIC_FILE: &str = "vendor.pub";

/// The vendor's private signing key. It never leaves the vendor: licenses are signed with it,
/// and only [`VendorPublic`] is handed to customers. Its bytes are wiped from memory on drop,
/// and its `Debug` form shows only the public half.
pub struct VendorSecret {
    signing: SigningKey,
}

/// A vendor's public key: what a license's signature is checked against, and what an engine
/// is told to trust.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VendorPublic {
    verifying: VerifyingKey,
}

/// Where [`VendorSecret::write`] put the two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// The secret key, `DIR/vendor.key`, readable by its owner only.
    pub secret: PathBuf,
    /// The public key, `DIR/vendor.pub`.
    pub public: PathBuf,
}

impl VendorSecret {
    /// A new key pair from the operating system's random number generator.
    ///
    /// The 32-byte seed comes from the `getrandom` crate: the Rust project's small, widely
    /// reviewed wrapper over the OS generator (`getrandom(2)` on Linux, `/dev/urandom` where
    /// that is missing, `BCryptGenRandom` on Windows), and what `rand`'s `OsRng` uses
    /// underneath. It is already in the build (through `tempfile`), whereas ed25519-dalek's own
    /// `generate` would pull in an older `rand_core` just to reach the same generator.
    pub fn generate() -> Result<VendorSecret, LicenseError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| LicenseError::Random(e.to_string()))?;
        let secret = VendorSecret {
            signing: SigningKey::from_bytes(&seed),
        };
        seed.fill(0);
        Ok(secret)
    }

    /// Reads a `vendor.key` file.
    pub fn read(path: &Path) -> Result<VendorSecret, LicenseError> {
        let text = read_text(path)?;
        VendorSecret::parse(&text).map_err(|e| in_file(path, e))
    }

    /// Parses the text of a `vendor.key` file.
    pub fn parse(text: &str) -> Result<VendorSecret, LicenseError> {
        let seed = decode(text, Kind::Secret)?;
        Ok(VendorSecret {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half, to give to customers and to engines.
    pub fn public(&self) -> VendorPublic {
        VendorPublic {
            verifying: self.signing.verifying_key(),
        }
    }

    /// Writes `DIR/vendor.key` (mode 0600 on Unix) and `DIR/vendor.pub`, creating `DIR` if
    /// needed. Refuses with [`LicenseError::Exists`] and writes nothing if either file exists.
    pub fn write(&self, dir: &Path) -> Result<KeyPaths, LicenseError> {
        let paths = KeyPaths {
            secret: dir.join(SECRET_FILE),
            public: dir.join(PUBLIC_FILE),
        };
        for path in [&paths.secret, &paths.public] {
            if path.exists() {
                return Err(LicenseError::Exists { path: path.clone() });
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| LicenseError::Io {
            action: "create the directory",
            path: dir.to_owned(),
            source,
        })?;
        create_new(&paths.secret, &self.to_text(), 0o600)?;
        if let Err(e) = create_new(&paths.public, &self.public().to_text(), 0o644) {
            // Leave no half pair behind: a lone secret key would block the next attempt.
            let _ = std::fs::remove_file(&paths.secret);
            return Err(e);
        }
        Ok(paths)
    }

    /// The text of a `vendor.key` file for this key; private so that the secret leaves the
    /// process only through [`write`](Self::write).
    fn to_text(&self) -> String {
        format!(
            "{SECRET_HEADER}\n{}\n",
            STANDARD.encode(self.signing.as_bytes())
        )
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

impl fmt::Debug for VendorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorSecret")
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

impl VendorPublic {
    /// Reads a `vendor.pub` file.
    pub fn read(path: &Path) -> Result<VendorPublic, LicenseError> {
        let text = read_text(path)?;
        VendorPublic::parse(&text).map_err(|e| in_file(path, e))
    }

    /// Parses the text of a `vendor.pub` file.
    pub fn parse(text: &str) -> Result<VendorPublic, LicenseError> {
        VendorPublic::from_bytes(&decode(text, Kind::Public)?)
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

/// Which of the two files a text should be.
#[derive(Clone, Copy)]
enum Kind {
    Secret,
    Public,
}

impl Kind {
    fn header(self) -> &'static str {
        match self {
            Kind::Secret => SECRET_HEADER,
            Kind::Public => PUBLIC_HEADER,
        }
    }

    /// Why the other kind's file is the wrong one here.
    fn swapped(self) -> &'static str {
        match self {
            Kind::Secret => "a vendor public key where the secret key was expected: signing needs vendor.key",
            Kind::Public => "a vendor secret key where a public key was expected: pass vendor.pub, the secret key stays with the vendor",
        }
    }

    fn other(self) -> Kind {
        match self {
            Kind::Secret => Kind::Public,
            Kind::Public => Kind::Secret,
        }
    }
}

/// The 32 key bytes of a vendor key file's text, or why there are none.
fn decode(text: &str, kind: Kind) -> Result<[u8; 32], LicenseError> {
    let invalid = LicenseError::KeyText;
    let header = kind.header();
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    match lines.next() {
        None => {
            return Err(invalid(format!(
                "empty; a vendor key file starts with the line {header}"
            )))
        }
        Some(first) if first == kind.other().header() => {
            return Err(invalid(kind.swapped().into()))
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

fn read_text(path: &Path) -> Result<String, LicenseError> {
    std::fs::read_to_string(path).map_err(|source| LicenseError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Names the file a text error came from.
fn in_file(path: &Path, error: LicenseError) -> LicenseError {
    match error {
        LicenseError::KeyText(reason) => LicenseError::KeyFile {
            path: path.to_owned(),
            reason,
        },
        other => other,
    }
}

/// Creates `path` with `contents`, never replacing an existing file, and syncs it: a vendor key
/// that is lost is lost for good.
fn create_new(path: &Path, contents: &str, mode: u32) -> Result<(), LicenseError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let write_error = |source: io::Error| LicenseError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            LicenseError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_error(e)
        }
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_of(result: Result<impl fmt::Debug, LicenseError>) -> String {
        match result {
            Err(LicenseError::KeyText(reason)) => reason,
            other => panic!("expected a key text error, got {other:?}"),
        }
    }

    #[test]
    fn key_text_round_trips() {
        let secret = VendorSecret::generate().unwrap();
        let public = secret.public();
        assert_eq!(VendorPublic::parse(&public.to_text()).unwrap(), public);
        assert_eq!(
            VendorSecret::parse(&secret.to_text()).unwrap().public(),
            public
        );
        // Windows line ends and surrounding blank lines are tolerated.
        let crlf = format!("\r\n{PUBLIC_HEADER}\r\n{}\r\n\r\n", public.fingerprint());
        assert_eq!(VendorPublic::parse(&crlf).unwrap(), public);
    }

    #[test]
    fn two_generated_keys_differ() {
        let a = VendorSecret::generate().unwrap().public();
        let b = VendorSecret::generate().unwrap().public();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_public_key_text_says_what_is_wrong() {
        let good = VendorSecret::generate().unwrap().public().fingerprint();
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
    fn a_public_key_is_not_a_secret_key() {
        let public = VendorSecret::generate().unwrap().public();
        assert!(reason_of(VendorSecret::parse(&public.to_text()))
            .starts_with("a vendor public key where the secret key was expected"));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let secret = VendorSecret::generate().unwrap();
        let seed = STANDARD.encode(secret.signing.as_bytes());
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&seed), "{shown}");
        assert!(shown.contains(&secret.public().fingerprint()), "{shown}");
    }

    #[test]
    fn write_then_read_gives_the_same_pair_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("vendor");
        let secret = VendorSecret::generate().unwrap();
        let paths = secret.write(&out).unwrap();
        assert_eq!(paths.secret, out.join("vendor.key"));
        assert_eq!(
            VendorSecret::read(&paths.secret).unwrap().public(),
            secret.public()
        );
        assert_eq!(VendorPublic::read(&paths.public).unwrap(), secret.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&paths.secret)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let other = VendorSecret::generate().unwrap();
        match other.write(&out) {
            Err(LicenseError::Exists { path }) => assert_eq!(path, paths.secret),
            result => panic!("overwrote a vendor key: {result:?}"),
        }
        assert_eq!(VendorPublic::read(&paths.public).unwrap(), secret.public());
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vendor.pub");
        std::fs::write(&path, "hello\n").unwrap();
        let message = VendorPublic::read(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: the first line is \"hello\"", path.display())),
            "{message}"
        );
        let missing = dir.path().join("absent.key");
        assert!(matches!(
            VendorSecret::read(&missing),
            Err(LicenseError::Io { action: "read", .. })
        ));
    }
}
