//! One module per command; each takes the context and writes to the output it is given.

use std::io::Write;

use crate::args::{
    Command, GroupCommand, InstanceCommand, KeyCommand, LicenseCommand, PoolCommand,
    ProjectCommand, SeatCommand, StateCommand, TrustCommand,
};
use crate::context::Context;
use crate::failure::Failure;

mod activate;
mod activation;
mod console;
mod docs;
mod events;
mod group;
mod init;
mod instance;
mod key;
mod lease;
mod license;
mod metrics;
mod pipe;
mod pool;
mod project;
mod renew;
mod seat;
mod state;
mod trust;
mod usage;

/// Runs one command.
pub fn run(command: Command, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    if !runs_in_fleets(&command) {
        lease::refuse_fleet_options(ctx)?;
    }
    match command {
        Command::Init { capacity } => init::run(ctx, capacity, out),
        Command::Project(ProjectCommand::Create { name }) => project::create(ctx, &name, out),
        Command::Project(ProjectCommand::List) => project::list(ctx, out),
        Command::Project(ProjectCommand::Show { name }) => project::show(ctx, &name, out),
        Command::Key(KeyCommand::Add { project, key }) => {
            key::add(ctx, &project, &key, key::Slot::Any, out)
        }
        Command::Key(KeyCommand::AddReserve { target, key }) => {
            key::add_reserve(ctx, &target, &key, out)
        }
        Command::Key(KeyCommand::Replace { project, key }) => {
            key::replace(ctx, &project, &key, out)
        }
        Command::Key(KeyCommand::RemoveReserve { project, key_id }) => {
            key::remove_reserve(ctx, &project, &key_id, out)
        }
        Command::Key(KeyCommand::List { project }) => key::list(ctx, &project, out),
        Command::Key(KeyCommand::Periods { key_id }) => key::periods(ctx, &key_id, out),
        Command::Key(KeyCommand::Renew(args)) => renew::run(ctx, &args, out),
        Command::Key(KeyCommand::Activate(args)) => activate::run(ctx, &args, out),
        Command::Usage { project } => usage::run(ctx, project.as_deref(), out),
        Command::Events(args) => events::run(ctx, &args, out),
        Command::Pool(command) => pool(command, ctx, out),
        Command::Instance(command) => instance(command, ctx, out),
        Command::Group(GroupCommand::Add { group, projects }) => {
            group::add(ctx, &group, &projects, out)
        }
        Command::Group(GroupCommand::List) => group::list(ctx, out),
        Command::Seat(command) => seat(command, ctx, out),
        Command::Demo(args) => crate::demo::run(ctx, &args, out),
        Command::License(LicenseCommand::Keygen { out: dir }) => license::keygen(ctx, &dir, out),
        Command::License(LicenseCommand::Sign { key, file }) => license::sign(&key, &file, out),
        Command::License(LicenseCommand::Verify { public, file }) => {
            license::verify(ctx, &public, &file, out)
        }
        Command::ServeActivation(args) => activation::serve(ctx, &args, out),
        Command::Trust(TrustCommand::Add { public }) => trust::add(ctx, &public, out),
        Command::Trust(TrustCommand::List) => trust::list(ctx, out),
        Command::State(StateCommand::AcceptRollback) => state::accept_rollback(ctx, out),
        Command::State(StateCommand::AcceptClock) => state::accept_clock(ctx, out),
        Command::Pipe(args) => pipe::run(ctx, &args),
        Command::Metrics(args) => metrics::run(ctx, &args, out),
        Command::Console(args) => console::run(ctx, &args, out),
        Command::Lease(command) => lease::run(command, ctx, out),
        Command::Completions { shell } => docs::completions(shell, out),
        Command::Man { dir } => docs::man(ctx, &dir, out),
    }
}

/// Whether a command runs in fleet mode with `--store` and `--host` (the lease commands use
/// `--store` alone): its admin changes go through the fleet store's admin log. The others
/// (seats, the instance check, renewal, activation, trust, state repair, …) refuse them rather
/// than act outside the fleet.
fn runs_in_fleets(command: &Command) -> bool {
    matches!(
        command,
        Command::Lease(_)
            | Command::Project(_)
            | Command::Key(
                KeyCommand::Add { .. }
                    | KeyCommand::AddReserve { .. }
                    | KeyCommand::Replace { .. }
                    | KeyCommand::RemoveReserve { .. }
                    | KeyCommand::List { .. }
            )
            | Command::Group(_)
            | Command::Pool(_)
            | Command::Instance(
                InstanceCommand::Add { .. }
                    | InstanceCommand::Assign { .. }
                    | InstanceCommand::Unassign { .. }
                    | InstanceCommand::List
            )
            | Command::Usage { .. }
            | Command::Events(_)
            | Command::Pipe(_)
    )
}

fn pool(command: PoolCommand, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        PoolCommand::Buy(args) => pool::buy(ctx, &args, out),
        PoolCommand::List(args) => pool::list(ctx, &args, out),
        PoolCommand::Shortfall { days } => pool::shortfall(ctx, days, out),
    }
}

fn instance(command: InstanceCommand, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        InstanceCommand::Add { name, os, company } => {
            instance::add(ctx, &name, os.into(), company.as_deref(), out)
        }
        InstanceCommand::Assign { name, license_type } => {
            instance::assign(ctx, &name, license_type.map(Into::into), out)
        }
        InstanceCommand::Check { name } => instance::check(ctx, &name, out),
        InstanceCommand::Unassign { name } => instance::unassign(ctx, &name, out),
        InstanceCommand::List => instance::list(ctx, out),
    }
}

fn seat(command: SeatCommand, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    use seat::Change;
    match command {
        SeatCommand::Acquire(args) => seat::change(ctx, &args, Change::Acquire, out),
        SeatCommand::Release(args) => seat::change(ctx, &args, Change::Release, out),
        SeatCommand::Status { project, class } => seat::status(ctx, &project, class.into(), out),
        SeatCommand::Reclaim => seat::reclaim(ctx, out),
    }
}
