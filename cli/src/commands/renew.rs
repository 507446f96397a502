//! `tollgate key renew PROJECT --activation-url URL`: the online renewal of rule R21 in
//! docs/rules.md, run now by an operator rather than by an engine's background thread.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::{Renewed, Role};

use super::Context;
use crate::args::{RenewArgs, ServiceArgs};
use crate::failure::Failure;
use crate::output::json_document;

#[derive(Serialize)]
struct Report<'a> {
    project: &'a str,
    renewed: &'a [Renewed],
}

impl ServiceArgs {
    /// The client these options describe; a URL or CA file that is not one is
    /// `INVALID_ARGUMENT`.
    pub fn client(&self) -> Result<ActivationClient, Failure> {
        let options = ClientOptions {
            timeout: Duration::from_secs(self.timeout),
            retries: self.attempts - 1,
            ..ClientOptions::default()
        };
        ActivationClient::with_ca_file(&self.activation_url, options, self.activation_ca.as_deref())
            .map_err(|e| Failure::refused("INVALID_ARGUMENT", e.to_string(), None))
    }
}

/// Renews the project's online keys now: exit status 0 when every key that needed it was
/// renewed (or none did), 1 with the manual-renewal message when one could not be.
pub fn run(ctx: &Context, args: &RenewArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let client = args.service.client()?;
    let renewed = ctx.engine()?.renew_now_with(&args.project, &client)?;
    if ctx.json {
        json_document(
            out,
            &Report {
                project: &args.project,
                renewed: &renewed,
            },
        )?;
        return Ok(());
    }
    if renewed.is_empty() {
        writeln!(
            out,
            "nothing to renew: project \"{}\" has no online Active key with an activation code \
that lacks a Reserved key",
            args.project
        )?;
    }
    for r in &renewed {
        let role = match r.role {
            Role::Reserved => "Reserved key: it takes over when the old key expires",
            Role::Active => "Active key",
        };
        writeln!(out, "key {} renewed: {} is now the {role}", r.old, r.new)?;
    }
    Ok(())
}
