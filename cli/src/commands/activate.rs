//! `tollgate key activate`: activation by code (rule R9 in docs/rules.md). The vendor's activation
//! service turns the code into a signed online key for this machine, and the key is added like any
//! other.

use std::io::Write;

use tollgate_core::ActivationSlot;

use super::key::{bulk_target, report_added, report_bulk};
use super::Context;
use crate::args::ActivateArgs;
use crate::failure::Failure;

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
