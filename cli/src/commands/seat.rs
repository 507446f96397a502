//! `tollgate seat acquire|release|status|reclaim`: seats of per-machine, per-core and
//! per-instance keys (rules R16 and R17 in docs/rules.md).
//!
//! The command line takes seats as the operator (`Engine::operator_seats`), not as its own
//! process: seats a process holds are reclaimed once it is gone, and this process ends as soon
//! as the command has run. The operator's seats stay held until `seat release`.

use std::io::{self, Write};

use serde::Serialize;
use tollgate_core::{LicenseClass, Refusal, SeatHandle, SeatUsage};

use super::Context;
use crate::args::SeatArgs;
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::{class_title, quantity, usage};

/// A pair's seats after a command, as `--json` prints them.
#[derive(Serialize)]
struct Seats<'a> {
    project: &'a str,
    class: &'static str,
    /// Seats the operator holds (taken with `seat acquire`).
    operator_held: u64,
    #[serde(flatten)]
    usage: SeatUsage,
}

/// What `seat acquire` and `seat release` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Take seats.
    Acquire,
    /// Give seats back.
    Release,
}

/// Takes or gives back `units` seats for the operator, then prints the pair's seats.
pub fn change(
    ctx: &Context,
    args: &SeatArgs,
    change: Change,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (project, class, units) = (args.project.as_str(), args.class.into(), args.units);
    let seats = ctx.engine()?.operator_seats(project, class)?;
    match change {
        Change::Acquire => seats.acquire(units).map_err(|refusal| match refusal {
            Refusal::NoActiveKey => Failure::refused(
                "NO_ACTIVE_KEY",
                format!(
                    "project \"{project}\" has no Active {} key to take seats from",
                    class.as_str()
                ),
                Some("seats are taken from the Active key of their class: add one with `tollgate key add`"),
            ),
            other => other.into(),
        })?,
        Change::Release => seats.release(units)?,
    }
    if ctx.json {
        return Ok(json_document(out, &document(project, class, &seats))?);
    }
    let (verb, hint) = match change {
        Change::Acquire => (
            "Acquired",
            " for the operator; they stay held until `tollgate seat release`",
        ),
        Change::Release => ("Released", ""),
    };
    writeln!(
        out,
        "{verb} {} on project \"{project}\"{hint}.",
        quantity(class, units)
    )?;
    write_status(out, project, class, &seats)?;
    Ok(())
}

/// Prints a pair's seats.
pub fn status(
    ctx: &Context,
    project: &str,
    class: LicenseClass,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let seats = ctx.engine()?.operator_seats(project, class)?;
    if ctx.json {
        json_document(out, &document(project, class, &seats))?;
    } else {
        write_status(out, project, class, &seats)?;
    }
    Ok(())
}

fn document<'a>(project: &'a str, class: LicenseClass, seats: &SeatHandle) -> Seats<'a> {
    Seats {
        project,
        class: class.as_str(),
        operator_held: seats.held(),
        usage: seats.usage(),
    }
}

fn write_status(
    out: &mut dyn Write,
    project: &str,
    class: LicenseClass,
    seats: &SeatHandle,
) -> io::Result<()> {
    let u = seats.usage();
    writeln!(out, "Project {project} · {}", class_title(class))?;
    if u.limit == 0 {
        writeln!(
            out,
            "  Held      {} (no Active key: seats are refused, NO_ACTIVE_KEY)",
            quantity(class, u.held)
        )?;
    } else {
        writeln!(
            out,
            "  Held      {} ({} held)",
            usage(class, u.held, u.limit),
            u.held
        )?;
    }
    writeln!(
        out,
        "  Operator  {} taken with `tollgate seat acquire`",
        quantity(class, seats.held())
    )?;
    if u.has_reserved {
        writeln!(out, "  Reserved  {}", quantity(class, u.reserved_limit))?;
    } else {
        writeln!(out, "  Reserved  —")?;
    }
    writeln!(out, "  Switches  {}", u.switches)
}

/// Takes back the seats of processes that ended without releasing them.
pub fn reclaim(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let reclaimed = ctx.engine()?.reclaim_seats()?;
    if ctx.json {
        json_document(out, &reclaimed)?;
        return Ok(());
    }
    if reclaimed.is_empty() {
        writeln!(
            out,
            "Nothing to reclaim: every process holding seats is still running."
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reclaimed
        .into_iter()
        .map(|r| vec![r.project, r.class, r.pid.to_string(), r.units.to_string()])
        .collect();
    table(out, &["PROJECT", "CLASS", "PROCESS", "SEATS"], &rows)?;
    Ok(())
}
