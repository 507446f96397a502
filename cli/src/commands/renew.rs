//! `tollgate key renew PROJECT --activation-url URL`: the online renewal of rule R21 in
//! docs/rules.md, run now by an operator rather than by an engine's background thread.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::{Renewed, Role};

use super::Context;
use crate::failure::Failure;
use crate::output::json_document;

/// `tollgate key renew …`
#[derive(Debug, Args)]
#[command(after_help = "Example: tollgate key renew warehouse --activation-url \
http://127.0.0.1:8470\n\nThe activation service is `tollgate serve-activation`, or the vendor's. \
The license it sends is verified like any key: a state that trusts vendor keys takes it only \
signed by one of them.")]
pub struct RenewArgs {
    /// The project
    pub project: String,

    /// The activation service
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// How to reach the vendor's activation service: `key renew` and `key activate`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The vendor's activation service: http://HOST:PORT, as `tollgate serve-activation`
    /// prints it, or https://…
    #[arg(long, value_name = "URL", env = "TOLLGATE_ACTIVATION_URL")]
    pub activation_url: String,

    /// Trust for https only the certificates in this PEM file, instead of the public
    /// certificate authorities: the vendor's own authority, or the service's self-signed
    /// certificate
    #[arg(long, value_name = "FILE", env = "TOLLGATE_ACTIVATION_CA")]
    pub activation_ca: Option<PathBuf>,

    /// The longest one request to the service may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// How many requests to make at most, with growing pauses between them, before the
    /// renewal counts as failed
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

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
