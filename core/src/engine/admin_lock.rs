//! Taking the admin lock within [`Options::admin_lock_timeout`](super::Options): the engine's
//! in-process mutex, then the `flock` on `admin.lock` that serialises admin changes across
//! processes. Without a timeout both are waited for as long as it takes, as before.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// The longest pause between two tries of the file lock: short enough that a waiter notices a
/// released lock within milliseconds, long enough not to spin.
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

/// One wait for the admin lock: where the lock file is, and how long the wait may last from
/// when it started. The mutex and the file lock are taken within the same deadline.
pub(super) struct Wait<'p> {
    path: &'p Path,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl<'p> Wait<'p> {
    /// Starts a wait for the lock file at `path`, bounded by `timeout` if given.
    pub(super) fn start(path: &'p Path, timeout: Option<Duration>) -> Wait<'p> {
        Wait {
            path,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }

    /// Locks `mutex`, waiting until the deadline at most.
    pub(super) fn mutex<'a, T>(&self, mutex: &'a Mutex<T>) -> Result<MutexGuard<'a, T>> {
        match self.deadline {
            None => Ok(mutex.lock()),
            Some(deadline) => mutex.try_lock_until(deadline).ok_or_else(|| self.busy()),
        }
    }

    /// Takes the exclusive `flock` on `file` (the lock file), waiting until the deadline at
    /// most.
    pub(super) fn file(&self, file: &File) -> Result<()> {
        let lock_error = |e| Error::io(format!("lock {}", self.path.display()), e);
        let Some(deadline) = self.deadline else {
            return file.lock().map_err(lock_error);
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(TryLockError::Error(e)) => return Err(lock_error(e)),
                Err(TryLockError::WouldBlock) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.busy());
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    fn busy(&self) -> Error {
        Error::AdminLockBusy {
            path: self.path.to_owned(),
            waited_ms: self
                .timeout
                .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Options};

    #[test]
    fn a_held_lock_fails_admin_changes_after_the_timeout_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            installation_dir: Some(dir.path().join("installation")),
            admin_lock_timeout: Some(Duration::from_millis(50)),
            ..Options::default()
        };
        let engine = Engine::open_with(dir.path(), options.clone()).unwrap();
        // Another open file description: its flock conflicts as another process's would.
        let held = File::options()
            .write(true)
            .open(dir.path().join("admin.lock"))
            .unwrap();
        held.lock().unwrap();
        match engine.create_project("P") {
            Err(Error::AdminLockBusy { path, waited_ms }) => {
                assert_eq!(path, engine.dir().join("admin.lock"));
                assert_eq!(waited_ms, 50);
            }
            other => panic!("expected AdminLockBusy, got {other:?}"),
        }
        assert!(matches!(
            Engine::open_with(dir.path(), options),
            Err(Error::AdminLockBusy { .. })
        ));
        held.unlock().unwrap();
        engine.create_project("P").unwrap();
        assert_eq!(engine.projects().unwrap(), ["P"]);
    }
}
