//! `tollgate trust add|list`: the vendor public keys a state trusts. Once it trusts one, every
//! key added, offline or online, must be a license file signed by a trusted key; nothing makes
//! a state forget a key it trusts.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use tollgate_core::VendorPublic;

use super::license::refusal;
use super::Context;
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::timestamp;

#[derive(Serialize)]
struct Trusted {
    key: VendorPublic,
    /// False when the state trusted the key already.
    added: bool,
}

/// Trusts the vendor public key in the file `public`.
pub fn add(ctx: &Context, public: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    let key = VendorPublic::read(public).map_err(refusal)?;
    let added = ctx.engine()?.trust(&key)?;
    if ctx.json {
        json_document(out, &Trusted { key, added })?;
    } else if added {
        writeln!(
            out,
            "This state now trusts vendor key {}: every key added from now on, offline or online, must be a \
license file signed by a trusted vendor key (`tollgate key add PROJECT --file KEY.lic`).",
            key.fingerprint()
        )?;
    } else {
        writeln!(
            out,
            "This state already trusts vendor key {}.",
            key.fingerprint()
        )?;
    }
    Ok(())
}

/// Lists the trusted vendor keys.
pub fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let keys = ctx.existing_engine()?.trusted_keys()?;
    if ctx.json {
        json_document(out, &keys)?;
        return Ok(());
    }
    if keys.is_empty() {
        writeln!(
            out,
            "No trusted vendor keys: development mode, unsigned keys are accepted. A vendor's \
program passes its public key when it opens the state, or run `tollgate trust add DIR/vendor.pub`."
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| vec![k.key.fingerprint(), timestamp(k.added_at)])
        .collect();
    table(out, &["VENDOR KEY", "TRUSTED SINCE"], &rows)?;
    Ok(())
}
