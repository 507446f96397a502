//! The vendor's Ed25519 key pair: generating it, and writing and reading the secret key file,
//! `vendor.key`. The public half and the format of both files are the engine's, in
//! [`tollgate_core::license`] ([`VendorPublic`], [`VendorKeyFile`]).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use tollgate_core::license::{
    read_key_file, LicenseError, VendorKeyFile, VendorPublic, PUBLIC_FILE, SECRET_FILE,
    SECRET_HEADER,
};

/// The vendor's private signing key. It never leaves the vendor: licenses are signed with it,
/// and only [`VendorPublic`] is handed to customers. Its bytes are wiped from memory on drop,
/// and its `Debug` form shows only the public half.
pub struct VendorSecret {
    signing: SigningKey,
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
        read_key_file(path, VendorSecret::parse)
    }

    /// Parses the text of a `vendor.key` file.
    pub fn parse(text: &str) -> Result<VendorSecret, LicenseError> {
        let seed = VendorKeyFile::Secret.decode(text)?;
        Ok(VendorSecret {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half, to give to customers and to engines.
    pub fn public(&self) -> VendorPublic {
        VendorPublic::from_bytes(&self.signing.verifying_key().to_bytes())
            .expect("the public half of a signing key is a valid, strong public key")
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
    }

    #[test]
    fn two_generated_keys_differ() {
        let a = VendorSecret::generate().unwrap().public();
        let b = VendorSecret::generate().unwrap().public();
        assert_ne!(a, b);
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
        let path = dir.path().join("vendor.key");
        std::fs::write(&path, "hello\n").unwrap();
        let message = VendorSecret::read(&path).unwrap_err().to_string();
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
