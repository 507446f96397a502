//! What [`Error::BadSignature`](super::Error::BadSignature) found: which of the ways a key can
//! lack a valid vendor signature. `Display` gives the reason the engine has always given.

use std::fmt;

use crate::license::SignatureFault;

/// Why a key was refused for want of a valid vendor signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureRefusal {
    /// A plain offline key offered to a state that trusts vendor keys.
    UnsignedOffline,
    /// A plain online key offered to a state that trusts vendor keys.
    UnsignedOnline,
    /// A `per_instance` key offered by a caller to a state that trusts no vendor key: only a
    /// pool assignment or a license signed by a trusted vendor key licenses an instance.
    PerInstanceUntrusted,
    /// A license file that is not well formed.
    Malformed {
        /// What is wrong with it.
        detail: String,
    },
    /// A license validly signed by a vendor key the state does not trust.
    UntrustedSigner {
        /// The signer's fingerprint.
        signer: String,
    },
    /// A signature that does not verify or is damaged.
    Signature(SignatureFault),
}

impl fmt::Display for SignatureRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureRefusal::UnsignedOffline => f.write_str(
                "it is unsigned, and this state trusts vendor keys: an offline key must come as a license file signed by one of them",
            ),
            SignatureRefusal::UnsignedOnline => f.write_str(
                "it is unsigned, and this state trusts vendor keys: an online key must come from the activation service or as a license file signed by one of them",
            ),
            SignatureRefusal::PerInstanceUntrusted => f.write_str(
                "a per-instance key comes from a pool assignment (`tollgate instance assign`) or as a license signed by a trusted vendor key, and this state trusts none",
            ),
            SignatureRefusal::Malformed { detail } => write!(f, "malformed license: {detail}"),
            SignatureRefusal::UntrustedSigner { signer } => {
                write!(f, "it is signed by {signer}, which is not a trusted vendor key")
            }
            SignatureRefusal::Signature(fault) => fault.fmt(f),
        }
    }
}
