//! # Tollgate signed licenses
//!
//! An offline key reaches a customer as a file, and a file can be edited. This crate lets the
//! vendor sign a key with an Ed25519 key of its own, and lets anyone holding the vendor's
//! public key tell a genuine license from an unsigned, altered or re-signed one.
//!
//! ```
//! use tollgate_core::Key;
//! use tollgate_license::{sign, verify, LicenseError, SignedLicense, VendorSecret};
//!
//! // The vendor, once: a key pair. `write(dir)` saves it as vendor.key and vendor.pub.
//! let vendor = VendorSecret::generate()?;
//!
//! // The vendor, per sale: sign the key and ship the text as KEY.lic.
//! let key = Key::data_volume("A-1", 1 << 30);
//! let text = sign(&vendor, &key).to_json();
//!
//! // The customer's engine, trusting the vendor's public key.
//! let trusted = [vendor.public()];
//! assert_eq!(verify(&SignedLicense::from_json(&text)?, &trusted)?, key);
//!
//! // A customer who raises the limit breaks the signature.
//! let edited = text.replace("1073741824", "2147483648");
//! assert!(matches!(
//!     verify(&SignedLicense::from_json(&edited)?, &trusted),
//!     Err(LicenseError::BadSignature { .. })
//! ));
//! # Ok::<(), LicenseError>(())
//! ```
//!
//! The pieces: [`VendorSecret`] and [`VendorPublic`] are the key pair and its files;
//! [`sign`], [`SignedLicense`] and [`verify`] are the license file; [`canonical_key`] is
//! exactly what a signature covers; [`LicenseError`] says why a license was refused.
#![deny(missing_docs)]

mod canonical;
mod error;
mod license_file;
mod vendor_key;

pub use canonical::{canonical_json, canonical_key};
pub use error::LicenseError;
pub use license_file::{parse_key_or_license, sign, verify, KeyOrLicense, SignedLicense, FORMAT};
pub use vendor_key::{
    KeyPaths, VendorPublic, VendorSecret, PUBLIC_FILE, PUBLIC_HEADER, SECRET_FILE, SECRET_HEADER,
};
