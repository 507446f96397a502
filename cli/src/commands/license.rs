//! `tollgate license keygen|sign|verify`: the vendor's side of signed offline licenses. None of
//! them opens a state directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tollgate_core::Key;
use tollgate_license::{LicenseError, SignedLicense, VendorPublic, VendorSecret};

use super::Context;
use crate::failure::Failure;
use crate::output::json_document;

#[derive(Serialize)]
struct Generated<'a> {
    secret: &'a Path,
    public: &'a Path,
    fingerprint: String,
}

#[derive(Serialize)]
struct Verified<'a> {
    valid: bool,
    key_id: &'a str,
    signer: String,
    key: &'a Key,
}

/// Writes a new vendor key pair to `dir`; refuses if either file exists there.
pub fn keygen(ctx: &Context, dir: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let secret = VendorSecret::generate().map_err(refusal)?;
    let paths = secret.write(dir).map_err(refusal)?;
    let fingerprint = secret.public().fingerprint();
    if ctx.json {
        json_document(
            out,
            &Generated {
                secret: &paths.secret,
                public: &paths.public,
                fingerprint,
            },
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "Wrote the vendor secret key to {} (readable by you only: keep it secret, and keep a \
backup; a lost secret key cannot sign again).",
        paths.secret.display()
    )?;
    writeln!(
        out,
        "Wrote the vendor public key to {}: give it to the engines that are to trust your licenses.",
        paths.public.display()
    )?;
    writeln!(out, "Public key: {fingerprint}")?;
    Ok(())
}

/// Signs the key JSON at `file` with the secret key at `secret` and prints the license file.
pub fn sign(secret: &Path, file: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let text = read_input(file, "the key")?;
    let key = Key::from_json(&text).map_err(|e| {
        if SignedLicense::from_json(&text).is_ok() {
            Failure::refused(
                "INVALID_ARGUMENT",
                format!(
                    "{} is already a signed license: sign the plain key JSON",
                    file.display()
                ),
                None,
            )
        } else {
            e.into()
        }
    })?;
    let secret = VendorSecret::read(secret).map_err(refusal)?;
    out.write_all(tollgate_license::sign(&secret, &key).to_json().as_bytes())?;
    Ok(())
}

/// Checks the license file at `file` against the trusted public keys at `trusted`.
pub fn verify(
    ctx: &Context,
    trusted: &[PathBuf],
    file: &Path,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let trusted = trusted
        .iter()
        .map(|path| VendorPublic::read(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(refusal)?;
    let text = read_input(file, "the license")?;
    let license = SignedLicense::from_json(&text).map_err(refusal)?;
    let key = tollgate_license::verify(&license, &trusted).map_err(refusal)?;
    let signer = license.signer().fingerprint();
    if ctx.json {
        json_document(
            out,
            &Verified {
                valid: true,
                key_id: &key.id,
                signer,
                key: &key,
            },
        )?;
    } else {
        writeln!(out, "valid: key {} signed by {signer}", key.id)?;
    }
    Ok(())
}

/// Reads a file, or standard input for "-".
fn read_input(path: &Path, what: &str) -> Result<String, Failure> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| {
        Failure::refused(
            "INVALID_ARGUMENT",
            format!("cannot read {what} from {}: {e}", path.display()),
            None,
        )
    })
}

/// The code and rule of a license or vendor-key error.
pub(super) fn refusal(error: LicenseError) -> Failure {
    let (code, rule) = match &error {
        LicenseError::Unsigned { .. } => ("UNSIGNED", Some("a license file carries the vendor's signature: the vendor makes one with `tollgate license sign`")),
        LicenseError::Malformed(_) => ("MALFORMED_LICENSE", None),
        LicenseError::UntrustedSigner { .. } => ("UNTRUSTED_SIGNER", Some("a license is valid only when signed by a trusted vendor key (--pub); this one was signed, or re-signed, by another key")),
        LicenseError::BadSignature { .. } => ("BAD_SIGNATURE", Some("any change to a signed key breaks its signature: ask the vendor for a new license")),
        LicenseError::KeyText(_) | LicenseError::KeyFile { .. } => ("VENDOR_KEY", None),
        LicenseError::Exists { .. } => ("VENDOR_KEY_EXISTS", Some("keygen never overwrites a vendor key: licenses signed with it would no longer verify against a new one")),
        LicenseError::Io { .. } => ("IO", None),
        _ => ("ERROR", None),
    };
    Failure::refused(code, error.to_string(), rule)
}
