//! # Tollgate signed licenses: the vendor's side
//!
//! An offline key reaches a customer as a file, and a file can be edited. This crate lets the
//! vendor make an Ed25519 key pair and sign keys with it; the engine
//! ([`tollgate_core::license`], re-exported here) tells a genuine license from an unsigned,
//! altered or re-signed one, and refuses unsigned offline keys once a state trusts the vendor's
//! public key.
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
//! The pieces: [`VendorSecret`] is the secret key and its file, [`sign`] makes a license.
//! Re-exported from the engine: [`VendorPublic`], the public key and its file;
//! [`SignedLicense`] and [`verify`], the license file; [`jcs_key`] (and [`canonical_key`] for the
//! first format), exactly what a signature covers; [`LicenseError`], why a license or a key
//! file was refused.
#![deny(missing_docs)]

mod license_file;
mod vendor_key;

pub use license_file::sign;
pub use tollgate_core::license::{
    canonical_json, canonical_key, jcs_json, jcs_key, parse_key_or_license, verify, KeyOrLicense,
    LicenseError, SignatureFault, SignedLicense, VendorPublic, FORMAT, FORMAT_V1, PUBLIC_FILE,
    PUBLIC_HEADER, SECRET_FILE, SECRET_HEADER,
};
pub use vendor_key::{KeyPaths, VendorSecret};
