//! `tollgate init`: create a state directory explicitly.

use std::io::Write;

use serde::Serialize;
use tollgate_core::{Engine, Options};

use super::Context;
use crate::failure::Failure;
use crate::output::json_document;

#[derive(Serialize)]
struct Created<'a> {
    state: &'a std::path::Path,
    capacity: u32,
}

/// Creates the state with room for `capacity` slot pairs; refuses if one exists already.
pub fn run(ctx: &Context, capacity: u32, out: &mut dyn Write) -> Result<(), Failure> {
    if Engine::exists(&ctx.state) {
        return Err(Failure::refused(
            "STATE_EXISTS",
            format!("a Tollgate state already exists at {}", ctx.state.display()),
            Some("init creates a new state only; every other command opens the existing one"),
        ));
    }
    let options = Options {
        capacity,
        ..Options::default()
    };
    drop(Engine::open_with(&ctx.state, options)?);
    if ctx.json {
        json_document(
            out,
            &Created {
                state: &ctx.state,
                capacity,
            },
        )?;
    } else {
        writeln!(
            out,
            "Created a Tollgate state at {} with room for {capacity} slot pairs.",
            ctx.state.display()
        )?;
    }
    Ok(())
}
