//! The context every command runs in: the state directory and the output format, as the
//! global options gave them.

use std::path::PathBuf;

use tollgate_core::{Engine, FleetConfig, Options};

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
    /// `--store URL` (or `$TOLLGATE_STORE`): the fleet store (`lease …`, and with `--host` the
    /// commands that run in fleet mode).
    pub store: Option<String>,
    /// `--host NAME` (or `$TOLLGATE_HOST`): this host's name in the fleet store.
    pub host: Option<String>,
    /// The command's words, e.g. `project list`, for messages.
    pub command: String,
}

impl Context {
    /// Opens the state directory, creating it on first use; in fleet mode with `--store` and
    /// `--host` (see `tollgate_core::FleetConfig`).
    pub fn engine(&self) -> Result<Engine, Failure> {
        let Some(fleet) = self.fleet()? else {
            return Ok(Engine::open(&self.state)?);
        };
        let options = Options {
            fleet: Some(fleet),
            ..Options::default()
        };
        Ok(Engine::open_with(&self.state, options)?)
    }

    /// The fleet this command runs in: `--store` and `--host` together, or neither.
    fn fleet(&self) -> Result<Option<FleetConfig>, Failure> {
        match (&self.store, &self.host) {
            (None, None) => Ok(None),
            (Some(store), Some(host)) => Ok(Some(FleetConfig::new(store, host))),
            (store, _) => Err(Failure::Usage {
                message: format!(
                    "fleet mode needs both --store URL and --host NAME (or TOLLGATE_STORE and \
                     TOLLGATE_HOST): {} is missing",
                    if store.is_none() { "--store" } else { "--host" }
                ),
            }),
        }
    }

    /// Opens the state directory for a command that only reads it, refusing one that holds no
    /// state: a misspelt `--state` would otherwise create a new, empty state and show it. In
    /// fleet mode a new state is made from the fleet store's admin log: a host joins the fleet
    /// by opening an empty directory.
    pub fn existing_engine(&self) -> Result<Engine, Failure> {
        if !Engine::exists(&self.state) && self.fleet()?.is_none() {
            return Err(Failure::refused(
                "NO_STATE",
                format!("\"{}\" holds no Tollgate state", self.state.display()),
                Some("a command that only reads a state does not create one: check --state (or $TOLLGATE_HOME), or create the state with `tollgate init`"),
            ));
        }
        self.engine()
    }
}
