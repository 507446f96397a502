//! What the end-to-end tests share: the binary, and a fresh state directory with commands that
//! use it.

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// A fresh state directory, a fresh installation directory, and commands that use them.
pub struct State {
    pub dir: TempDir,
    /// `$TOLLGATE_INSTALLATION` of every command, so no test touches the real installation
    /// under `$HOME`.
    pub installation: TempDir,
}

impl State {
    pub fn new() -> State {
        State {
            dir: tempfile::tempdir().unwrap(),
            installation: tempfile::tempdir().unwrap(),
        }
    }

    /// `tollgate` with the test's installation, ignoring any `$TOLLGATE_HOME`,
    /// `$TOLLGATE_STORE` or `$TOLLGATE_HOST` of the caller.
    pub fn bare(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("TOLLGATE_HOME")
            .env_remove("TOLLGATE_STORE")
            .env_remove("TOLLGATE_HOST")
            .env("TOLLGATE_INSTALLATION", self.installation.path());
        cmd
    }

    /// `tollgate --state DIR ARGS…`, ignoring any `$TOLLGATE_HOME` of the caller.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare();
        cmd.arg("--state").arg(self.dir.path()).args(args);
        cmd
    }

    /// Runs a command line whose arguments hold no spaces.
    pub fn run(&self, line: &str) -> Assert {
        self.cmd(&line.split_whitespace().collect::<Vec<_>>())
            .assert()
    }

    /// Runs `LINE --json`, expects success and parses the one JSON document.
    pub fn json(&self, line: &str) -> Value {
        let assert = self.run(&format!("{line} --json")).success();
        serde_json::from_slice(&assert.get_output().stdout).expect("one JSON document")
    }

    /// Runs a refused `LINE --json` and returns its error document.
    pub fn refusal(&self, line: &str) -> Value {
        let assert = self.run(&format!("{line} --json")).code(1);
        serde_json::from_slice(&assert.get_output().stdout).expect("one JSON error document")
    }
}
