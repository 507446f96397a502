//! The context every command runs in: the state directory and the output format, as the
//! global options gave them.

use std::path::PathBuf;

use tollgate_core::Engine;

use crate::failure::Failure;

/// What every command needs besides its own arguments.
pub struct Context {
    /// The state directory.
    pub state: PathBuf,
    /// Whether `--state` was given on the command line (the demo uses a temporary state
    /// otherwise).
    pub state_explicit: bool,
    /// Print JSON instead of text.
    pub json: bool,
    /// `--store URL` (or `$TOLLGATE_STORE`): the fleet store, which only `lease …` uses yet.
    pub store: Option<String>,
    /// `--host NAME` (or `$TOLLGATE_HOST`): this host's name in the fleet store.
    pub host: Option<String>,
    /// The command's words, e.g. `project list`, for messages.
    pub command: String,
}

impl Context {
    /// Opens the state directory, creating it on first use.
    pub fn engine(&self) -> Result<Engine, Failure> {
        Ok(Engine::open(&self.state)?)
    }

    /// Opens the state directory for a command that only reads it, refusing one that holds no
    /// state: a misspelt `--state` would otherwise create a new, empty state and show it.
    pub fn existing_engine(&self) -> Result<Engine, Failure> {
        if !Engine::exists(&self.state) {
            return Err(Failure::refused(
                "NO_STATE",
                format!("\"{}\" holds no Tollgate state", self.state.display()),
                Some("a command that only reads a state does not create one: check --state (or $TOLLGATE_HOME), or create the state with `tollgate init`"),
            ));
        }
        self.engine()
    }
}
