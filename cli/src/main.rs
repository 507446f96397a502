//! `tollgate`: the operator command of the Tollgate license-metering engine.
//!
//! Projects, license keys, usage and the audit log of a state directory, with text for people
//! and `--json` for scripts; and `tollgate demo`, a simulated multi-threaded migration that
//! shows the Active key running out and the Reserved key taking over; `tollgate pipe`, which
//! meters any pipeline, and `tollgate metrics`, the Prometheus exposition.
//!
//! Exit status: 0 on success, 1 when the engine refuses the operation (the message names the
//! rule), 2 on a usage error, 3 when `tollgate pipe` stops because no key covers the next bytes.

mod args;
mod commands;
mod context;
mod demo;
mod failure;
mod keyspec;
mod output;
mod render;
mod size;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::failure::Failure;

fn main() -> ExitCode {
    let matches = args::Cli::command().get_matches();
    let cli = args::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let ctx = context::Context {
        state_explicit: matches.value_source("state") == Some(ValueSource::CommandLine),
        state: cli
            .state
            .unwrap_or_else(|| PathBuf::from(args::DEFAULT_STATE_DIR)),
        // `pipe`'s standard output carries the data: no JSON error document goes there.
        json: cli.json && !matches!(cli.command, args::Command::Pipe(_)),
        store: cli.store,
        host: cli.host,
        command: command_path(&matches),
    };
    // Unlocked: the demo's progress bars write to standard output too.
    let mut out = std::io::stdout();
    let result = commands::run(cli.command, &ctx, &mut out)
        .and_then(|()| out.flush().map_err(Failure::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure::report(&failure, ctx.json)),
    }
}

/// The command's words as typed, without options: `project list`, `lease reclaim`.
fn command_path(matches: &ArgMatches) -> String {
    let mut words = Vec::new();
    let mut level = matches;
    while let Some((name, sub)) = level.subcommand() {
        words.push(name);
        level = sub;
    }
    words.join(" ")
}
