//! `tollgate state accept-rollback`: the operator's answer to a state the engine refused as
//! restored from an older copy or edited; `tollgate state accept-clock`: the answer to a clock
//! that was once set in the future (see docs/tampering.md).

use std::io::Write;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
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
        Err(Error::Tampered { reason }) => Some(reason.to_string()),
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

#[derive(Serialize)]
struct ClockAccepted<'a> {
    state: &'a std::path::Path,
    /// The latest time seen that was given up (RFC 3339), or none when it was not ahead.
    given_up: Option<String>,
    /// The latest time seen now: the system clock's.
    latest_seen: String,
}

/// Lowers the state's latest time seen to the system clock's; the decision is audited.
pub fn accept_clock(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let options = Options::default();
    let now = options.clock.source();
    let (_, given_up) = Engine::accept_clock(&ctx.state, options)?;
    let text = |secs: u32| {
        time::OffsetDateTime::from_unix_timestamp(i64::from(secs))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    };
    if ctx.json {
        json_document(
            out,
            &ClockAccepted {
                state: &ctx.state,
                given_up: given_up.map(text),
                latest_seen: text(now),
            },
        )?;
    } else if let Some(from) = given_up {
        writeln!(
            out,
            "The latest time seen is now the clock's, {}, no longer {}. The decision is in the audit log.",
            text(now),
            text(from)
        )?;
    } else {
        writeln!(
            out,
            "The latest time seen is not ahead of the clock: there is nothing to accept."
        )?;
    }
    Ok(())
}
