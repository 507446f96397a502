//! Why a license or a vendor key file was refused, and what that becomes in the engine.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, SignatureRefusal};

/// Every way reading, writing or checking a license or a vendor key can fail. The four license
/// refusals — [`Unsigned`](Self::Unsigned), [`Malformed`](Self::Malformed),
/// [`UntrustedSigner`](Self::UntrustedSigner) and [`BadSignature`](Self::BadSignature) — are
/// distinct so that a caller can say which one happened.
///
/// The engine only reads and checks; the vendor side (`tollgate-license`: generating, writing
/// and signing with the secret key) shares this type, so that one error type covers both files,
/// and is the only source of [`Exists`](Self::Exists) and [`Random`](Self::Random).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// The text is plain key JSON: it carries no vendor signature at all.
    #[error("key \"{key_id}\" is unsigned: it is plain key JSON, with no vendor signature")]
    Unsigned {
        /// The id of the plain key.
        key_id: String,
    },
    /// The text is not a well-formed license file: not JSON, a field missing or unknown, another
    /// `format`, a signer that is not a public key, or a key that is not valid key JSON.
    #[error("malformed license: {0}")]
    Malformed(String),
    /// The signature is valid, but made by a vendor key that is not trusted: the key was
    /// re-signed by someone else.
    #[error(
        "license for key \"{key_id}\" is signed by {signer}, which is not a trusted vendor key"
    )]
    UntrustedSigner {
        /// The id of the key in the license.
        key_id: String,
        /// The signer's fingerprint ([`VendorPublic::fingerprint`](super::VendorPublic::fingerprint)).
        signer: String,
    },
    /// The signature does not verify: the key was altered after signing, or the signature
    /// bytes are damaged.
    #[error("license for key \"{key_id}\" has a bad signature: {reason}")]
    BadSignature {
        /// The id of the key in the license.
        key_id: String,
        /// What is wrong with the signature.
        reason: SignatureFault,
    },
    /// Vendor key text that is not what it should be; the reason names the fault.
    #[error("invalid vendor key: {0}")]
    KeyText(String),
    /// A vendor key file that is not what it should be; the reason names the fault.
    #[error("{}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A vendor key file already exists where a new one was to be written.
    #[error("{} already exists: a vendor key is never overwritten", path.display())]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: `read`, `write` or `create the directory`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed while generating a vendor key.
    #[error("cannot generate a vendor key: the system random number generator failed: {0}")]
    Random(String),
}

/// What is wrong with a license's signature ([`LicenseError::BadSignature`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureFault {
    /// The signature is not valid base64.
    NotBase64 {
        /// The decoder's complaint.
        detail: String,
    },
    /// The signature decodes to a length other than an Ed25519 signature's 64 bytes.
    Length {
        /// Its length in bytes.
        bytes: usize,
    },
    /// The signature does not match the key: the key was altered after signing, or the
    /// signature is damaged.
    Mismatch,
}

impl fmt::Display for SignatureFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureFault::NotBase64 { detail } => {
                write!(f, "the signature is not valid base64: {detail}")
            }
            SignatureFault::Length { bytes } => {
                write!(f, "the signature is {bytes} bytes; an Ed25519 signature is 64")
            }
            SignatureFault::Mismatch => f.write_str(
                "the signature does not match the key: the key was altered after signing, or the signature is damaged",
            ),
        }
    }
}

/// A license refusal becomes [`Error::BadSignature`], whose reason says which of the four it
/// was; a vendor key that cannot be read becomes `InvalidArgument` or `Io`.
impl From<LicenseError> for Error {
    fn from(error: LicenseError) -> Error {
        let refused = |key: String, reason: SignatureRefusal| Error::BadSignature { key, reason };
        match error {
            LicenseError::Unsigned { key_id } => refused(key_id, SignatureRefusal::UnsignedOffline),
            LicenseError::Malformed(detail) => {
                refused(String::new(), SignatureRefusal::Malformed { detail })
            }
            LicenseError::UntrustedSigner { key_id, signer } => {
                refused(key_id, SignatureRefusal::UntrustedSigner { signer })
            }
            LicenseError::BadSignature { key_id, reason } => {
                refused(key_id, SignatureRefusal::Signature(reason))
            }
            LicenseError::KeyText(reason) => Error::invalid("vendor public key", reason),
            LicenseError::KeyFile { path, reason } => {
                Error::invalid("vendor public key", format!("{}: {reason}", path.display()))
            }
            LicenseError::Io {
                action,
                path,
                source,
            } => Error::io(format!("{action} {}", path.display()), source),
            other @ (LicenseError::Exists { .. } | LicenseError::Random(_)) => {
                Error::io("vendor key", std::io::Error::other(other.to_string()))
            }
        }
    }
}
