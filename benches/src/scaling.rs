//! How state size scales: open time, resident memory and file sizes by number of projects.
//!
//! Each open is measured in a **fresh child process** (this same binary, run with
//! [`OPEN_PROBE_FLAG`]) so that memory the parent allocated earlier does not hide in the
//! figure: the child reads `VmRSS` before and after `Engine::open` and prints one JSON line.
//! The files were just copied, so the page cache is warm; a cold open reads them from disk too.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::fixture::{self, BenchResult, DiskState};
use crate::report::table;

/// The flag that makes the comparison binary act as the open probe.
pub const OPEN_PROBE_FLAG: &str = "--open-probe";

/// One state size.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePoint {
    /// Projects in the state (one slot pair each).
    pub projects: usize,
    /// Records the hot file holds (its size follows from this, not from `projects`).
    pub capacity: u32,
    /// Seconds it took to create them through `create_project` + `add_key`.
    pub build_secs: f64,
    /// Whether they were created on tmpfs (and the files then copied to disk).
    pub built_in_memory: bool,
    /// `Engine::open` in a fresh process, nanoseconds.
    pub open_ns: u64,
    /// Resident set growth across the open, KiB.
    pub rss_delta_kib: i64,
    /// File-backed resident memory after the open (the mapped hot file, mostly), KiB.
    pub rss_file_kib: u64,
    /// Anonymous resident memory after the open, KiB.
    pub rss_anon_kib: u64,
    /// Size of each file in the state directory.
    pub files: Vec<(String, u64)>,
}

impl ScalePoint {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "projects": self.projects,
            "capacity": self.capacity,
            "build_secs": self.build_secs,
            "built_in_memory": self.built_in_memory,
            "open_ns": self.open_ns,
            "rss_delta_kib": self.rss_delta_kib,
            "rss_file_kib": self.rss_file_kib,
            "rss_anon_kib": self.rss_anon_kib,
            "files": self.files.iter().map(|(n, s)| json!({"name": n, "bytes": s})).collect::<Vec<_>>(),
        })
    }

    fn file_mib(&self, name: &str) -> String {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map_or("-".into(), |(_, s)| {
                format!("{:.1}", *s as f64 / (1 << 20) as f64)
            })
    }
}

/// Opens the state of `state` (`projects` projects, room for `capacity`) in a child process
/// and collects the figures.
pub fn measure(state: &DiskState, projects: usize, capacity: u32) -> BenchResult<ScalePoint> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .arg(OPEN_PROBE_FLAG)
        .arg(state.dir.path())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "open probe failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let probe: Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| {
        probe[name]
            .as_i64()
            .ok_or_else(|| format!("open probe printed no {name}"))
    };
    Ok(ScalePoint {
        projects,
        capacity: capacity.saturating_mul(crate::fixture::RECORDS_PER_PROJECT),
        build_secs: state.build.as_secs_f64(),
        built_in_memory: state.built_in_memory,
        open_ns: field("open_ns")? as u64,
        rss_delta_kib: field("rss_after_kib")? - field("rss_before_kib")?,
        rss_file_kib: field("rss_file_kib")? as u64,
        rss_anon_kib: field("rss_anon_kib")? as u64,
        files: fixture::file_sizes(state.dir.path())?,
    })
}

/// The child side: opens `dir` and prints the figures as one JSON line.
pub fn probe_open(dir: &Path) -> BenchResult<()> {
    let before = fixture::proc_status_kib("VmRSS").unwrap_or(0);
    let t0 = Instant::now();
    let engine = tollgate_core::Engine::open_with(dir, crate::fixture::options(dir))?;
    let open_ns = t0.elapsed().as_nanos() as u64;
    let kib = |field| fixture::proc_status_kib(field).unwrap_or(0);
    println!(
        "{}",
        json!({
            "open_ns": open_ns,
            "rss_before_kib": before,
            "rss_after_kib": kib("VmRSS"),
            "rss_file_kib": kib("RssFile"),
            "rss_anon_kib": kib("RssAnon"),
        })
    );
    drop(engine);
    Ok(())
}

/// The scaling results as a table.
pub fn scaling_table(points: &[ScalePoint]) -> String {
    let body: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                p.projects.to_string(),
                p.capacity.to_string(),
                format!("{:.1}", p.build_secs),
                if p.built_in_memory { "tmpfs" } else { "disk" }.to_owned(),
                format!("{:.1}", p.open_ns as f64 / 1e6),
                format!("{:.1}", p.rss_delta_kib as f64 / 1024.0),
                p.file_mib("hot.tgs"),
                p.file_mib("catalog.db"),
            ]
        })
        .collect();
    table(
        &[
            "projects",
            "capacity",
            "create s",
            "created on",
            "open ms",
            "RSS Δ MiB",
            "hot.tgs MiB",
            "catalog.db MiB",
        ],
        &body,
    )
}
