//! `tollgate key activate`: activation by code (rule R9 in docs/rules.md). The vendor's activation
//! service turns the code into a signed online key for this machine, and the key is added like any
//! other.

use std::io::Write;

use clap::Args;
use tollgate_core::ActivationSlot;

use super::key::{bulk_target, report_added, report_bulk};
use super::renew::ServiceArgs;
use super::Context;
use crate::args::ReserveTarget;
use crate::failure::Failure;

/// `tollgate key activate …`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate key activate warehouse --code ACT-123 \
--activation-url https://activation.example.com\n  tollgate key activate --group cluster-1 \
--code ACT-123 --activation-url http://127.0.0.1:8470\n\nThe service counts a code's \
activations by machine: this installation is one machine (its identity is derived from the \
installation key, see `Engine::machine_id`), whatever projects or states it activates the code \
for. Activating the same code again from this machine gets the same key and spends no other \
activation; the bulk forms activate once and add the one key as the Reserved key of every \
project. The license is verified like any key: a state that trusts vendor keys takes it only \
signed by one of them."
)]
pub struct ActivateArgs {
    /// Where the key goes: one PROJECT (Active if the project has no key of its class yet,
    /// else Reserved), or as the Reserved key of --all projects, a --group or one --project
    #[command(flatten)]
    pub target: ReserveTarget,

    /// The activation code the vendor gave
    #[arg(long, value_name = "CODE")]
    pub code: String,

    /// Add the key to PROJECT as the Reserved key only, never as the Active key
    #[arg(long, conflicts_with_all = ["all", "group", "only"])]
    pub reserve: bool,

    /// The activation service
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Activates the code and adds its key: as `key add` (or `key add-reserve`) reports it for one
/// project, one line per project for the bulk forms.
pub fn run(ctx: &Context, args: &ActivateArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let client = args.service.client()?;
    let engine = ctx.engine()?;
    match bulk_target(&args.target) {
        Err(project) => {
            let slot = if args.reserve {
                ActivationSlot::Reserve
            } else {
                ActivationSlot::Any
            };
            let activated = engine.activate_with(project, &args.code, slot, &client)?;
            report_added(ctx, project, &activated.key, activated.added, out)
        }
        Ok(target) => {
            let activated = engine.activate_bulk_with(&target, &args.code, &client)?;
            report_bulk(ctx, &activated.key, &activated.outcomes, out)
        }
    }
}
