//! The C program `benches/c/bench_consume.c`: `tg_consume` through the C ABI, beside the same
//! program's own `__atomic_fetch_add`, built with `cc -O2` against `include/tollgate.h` and
//! linked to `target/release/libtollgate.so`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_rows, Skip};
use crate::fixture::{self, BenchResult};
use crate::harness::{Sharing, Window};
use crate::report::Row;

/// The compiled C benchmark.
pub struct CProgram {
    exe: PathBuf,
}

impl CProgram {
    /// Compiles the program when the header and the release library exist; otherwise says
    /// what is missing.
    pub fn build(root: &Path) -> BenchResult<Result<CProgram, Skip>> {
        let header = root.join("include/tollgate.h");
        let libdir = fixture::target_dir().join("release");
        let library = libdir.join("libtollgate.so");
        for needed in [&header, &library] {
            if !needed.exists() {
                return Ok(Err(format!(
                    "{} not found (build it: cargo build --release -p tollgate-ffi)",
                    needed.display()
                )));
            }
        }
        let out_dir = fixture::target_dir().join("bench");
        std::fs::create_dir_all(&out_dir)?;
        let exe = out_dir.join("bench_consume");
        let libdir = libdir.canonicalize()?;
        let runtime_dir = runtime_dir(&library.canonicalize()?, &out_dir.join("lib"))?;
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O2", "-std=c11", "-Wall", "-Wextra", "-pthread"])
            .arg("-I")
            .arg(root.join("include"))
            .arg(root.join("benches/c/bench_consume.c"))
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&libdir)
            .arg(format!("-Wl,-rpath,{}", runtime_dir.display()))
            .args(["-ltollgate", "-lpthread"])
            .status()?;
        if !status.success() {
            return Err(format!("cc failed to build bench_consume ({status})").into());
        }
        Ok(Ok(CProgram { exe }))
    }

    /// Runs one configuration; returns the rows `c_atomic` and `c_tg_consume`.
    pub fn run(&self, threads: usize, sharing: Sharing, window: Window) -> BenchResult<Vec<Row>> {
        let state = fixture::disk_dir()?;
        let mut command = Command::new(&self.exe);
        command
            .arg("--dir")
            .arg(state.path())
            .args(["--threads", &threads.to_string()])
            .args(["--sharing", sharing.label()])
            .args(["--batch", &window.batch.to_string()])
            .args(["--warmup-ms", &window.warmup.as_millis().to_string()])
            .args(["--measure-ms", &window.measure.as_millis().to_string()]);
        run_rows(command)
    }
}

/// The directory the program loads the library from at run time. The library may carry a
/// versioned `SONAME` (`libtollgate.so.0.1`) that Cargo does not create beside it; then a
/// directory of our own gets a link of that name to the freshly built library.
fn runtime_dir(library: &Path, own_dir: &Path) -> BenchResult<PathBuf> {
    let Some(soname) = soname(library) else {
        return Ok(library.parent().expect("a file has a parent").to_owned());
    };
    std::fs::create_dir_all(own_dir)?;
    let link = own_dir.join(&soname);
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)?;
    }
    std::os::unix::fs::symlink(library, &link)?;
    Ok(own_dir.canonicalize()?)
}

/// The library's `SONAME`, read with `readelf -d` (binutils, present wherever `cc` is).
fn soname(library: &Path) -> Option<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(library)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("(SONAME)"))?;
    let (_, rest) = line.split_once('[')?;
    Some(rest.split_once(']')?.0.to_owned())
}
