//! One module per command; each takes the context and writes to the output it is given.

use std::io::Write;
use std::path::PathBuf;

use tollgate_core::Engine;

use crate::args::{Command, KeyCommand, ProjectCommand};
use crate::failure::Failure;

mod events;
mod init;
mod key;
mod project;
mod usage;

/// What every command needs besides its own arguments.
pub struct Context {
    /// The state directory.
    pub state: PathBuf,
    /// Whether `--state` was given on the command line (the demo uses a temporary state
    /// otherwise).
    pub state_explicit: bool,
    /// Print JSON instead of text.
    pub json: bool,
}

impl Context {
    /// Opens the state directory, creating it on first use.
    pub fn engine(&self) -> Result<Engine, Failure> {
        Ok(Engine::open(&self.state)?)
    }
}

/// Runs one command.
pub fn run(command: Command, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::Init { capacity } => init::run(ctx, capacity, out),
        Command::Project(ProjectCommand::Create { name }) => project::create(ctx, &name, out),
        Command::Project(ProjectCommand::List) => project::list(ctx, out),
        Command::Project(ProjectCommand::Show { name }) => project::show(ctx, &name, out),
        Command::Key(KeyCommand::Add { project, key }) => {
            key::add(ctx, &project, &key, key::Slot::Any, out)
        }
        Command::Key(KeyCommand::AddReserve { project, key }) => {
            key::add(ctx, &project, &key, key::Slot::ReserveOnly, out)
        }
        Command::Key(KeyCommand::Replace { project, key }) => {
            key::replace(ctx, &project, &key, out)
        }
        Command::Key(KeyCommand::RemoveReserve { project, key_id }) => {
            key::remove_reserve(ctx, &project, &key_id, out)
        }
        Command::Key(KeyCommand::List { project }) => key::list(ctx, &project, out),
        Command::Usage { project } => usage::run(ctx, project.as_deref(), out),
        Command::Events(args) => events::run(ctx, &args, out),
        Command::Demo(args) => crate::demo::run(ctx, &args, out),
    }
}
