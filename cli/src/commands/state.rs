//! `tollgate state accept-rollback`: the operator's answer to a state the engine refused as
//! restored from an older copy or edited (see the README's tampering section).

use std::io::Write;

use serde::Serialize;
use tollgate_core::{Engine, Error, Options};

use super::Context;
use crate::failure::Failure;
use crate::output::json_document;

#[derive(Serialize)]
struct Accepted<'a> {
    state: &'a std::path::Path,
    /// Whether the state had been refused (false: it opened normally, nothing to accept).
    was_refused: bool,
    /// What the engine had found.
    reason: Option<String>,
}

/// Accepts the state as it is, if the engine refuses it; the acceptance is audited.
pub fn accept_rollback(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let reason = match Engine::open(&ctx.state) {
        Ok(_) => None,
        Err(Error::Tampered { reason }) => Some(reason),
        Err(other) => return Err(other.into()),
    };
    if reason.is_some() {
        Engine::accept_rollback(&ctx.state, Options::default())?;
    }
    if ctx.json {
        json_document(
            out,
            &Accepted {
                state: &ctx.state,
                was_refused: reason.is_some(),
                reason,
            },
        )?;
    } else if let Some(reason) = reason {
        writeln!(
            out,
            "Accepted the state as it is ({reason}). The acceptance is in the audit log."
        )?;
    } else {
        writeln!(
            out,
            "The state opens normally: there is no rollback to accept."
        )?;
    }
    Ok(())
}
