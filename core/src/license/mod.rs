//! Signed offline licenses: the verifying side.
//!
//! An offline key reaches a customer as a file, and a file can be edited. The vendor signs each
//! key with an Ed25519 key of its own (the `tollgate-license` crate and `tollgate license sign`
//! hold that side, the secret key and signing); this module reads license files and vendor
//! public keys and tells a genuine license from an unsigned, altered or re-signed one. The
//! engine enforces it: once a state trusts a vendor key (`Options::trusted_keys`,
//! `Engine::trust`), every key added to it, offline or online, must come as a license file
//! signed by a trusted key, and a refusal is [`Error::BadSignature`](crate::Error::BadSignature).
//!
//! The pieces: [`VendorPublic`] is a vendor's public key and [`VendorKeyFile`] the format of
//! its files; [`SignedLicense`] and [`verify`] are the license file; [`jcs_key`] (and, for the
//! first format, [`canonical_key`]) is exactly what a signature covers; [`KeyOrLicense`] is
//! what the engine's key calls accept; [`LicenseError`] says why a license or a key file was
//! refused.

mod canonical;
mod error;
mod file;
mod vendor_key;

pub use canonical::{canonical_json, canonical_key, jcs_json, jcs_key};
pub use error::{LicenseError, SignatureFault};
pub use file::{parse_key_or_license, verify, KeyOrLicense, SignedLicense, FORMAT, FORMAT_V1};
pub use vendor_key::{
    read_key_file, VendorKeyFile, VendorPublic, PUBLIC_FILE, PUBLIC_HEADER, SECRET_FILE,
    SECRET_HEADER,
};
