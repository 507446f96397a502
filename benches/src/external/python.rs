//! The Python script `benches/python/bench.py`: `Project.consume` per call and
//! `Project.consume_many` per amount, beside an empty ctypes call into the same library.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_rows, Skip};
use crate::fixture::{self, BenchResult};
use crate::harness::Window;
use crate::report::Row;

/// The environment variable the Python package reads to find the shared library.
pub const LIBRARY_ENV: &str = "TOLLGATE_LIBRARY";

/// A Python interpreter that can import `tollgate`.
pub struct PythonBench {
    python: String,
    root: PathBuf,
    library: PathBuf,
}

impl PythonBench {
    /// Finds `python3` (or `$PYTHON`) and checks that `import tollgate` works with the
    /// workspace's `python/` on the path and the release library; otherwise says why not.
    pub fn find(root: &Path) -> BenchResult<Result<PythonBench, Skip>> {
        let library = fixture::target_dir().join("release/libtollgate.so");
        if !root.join("python/tollgate").is_dir() {
            return Ok(Err("python/tollgate not found".into()));
        }
        if !library.exists() {
            return Ok(Err(format!("{} not found", library.display())));
        }
        let bench = PythonBench {
            python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
            root: root.to_owned(),
            library,
        };
        let probe = bench.command().args(["-c", "import tollgate"]).output();
        Ok(match probe {
            Ok(out) if out.status.success() => Ok(bench),
            Ok(out) => Err(format!(
                "import tollgate failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
            Err(e) => Err(format!("{} not runnable: {e}", bench.python)),
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.python);
        let mut path = self.root.join("python").into_os_string();
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(old);
        }
        command
            .env("PYTHONPATH", path)
            .env(LIBRARY_ENV, &self.library);
        command
    }

    /// Runs the script once (one thread: the GIL serialises Python callers anyway).
    pub fn run(&self, window: Window) -> BenchResult<Vec<Row>> {
        let state = fixture::disk_dir()?;
        let mut command = self.command();
        command
            .arg(self.root.join("benches/python/bench.py"))
            .arg("--dir")
            .arg(state.path())
            .args(["--batch", &window.batch.to_string()])
            .args(["--warmup-ms", &window.warmup.as_millis().to_string()])
            .args(["--measure-ms", &window.measure.as_millis().to_string()]);
        run_rows(command)
    }
}
