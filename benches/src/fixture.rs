//! State directories with projects and keys, built the same way for every benchmark.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tollgate_core::{Engine, Key, Options, ProjectHandle, MAX_LIMIT_BYTES};

/// The boxed error every fallible benchmark step returns.
pub type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// A data-volume key of `limit` bytes: online, commercial, standard, never expiring.
pub fn key(id: &str, limit: u64) -> Key {
    Key::from_json(&format!(
        r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {{"data_volume": {{"limit_bytes": {limit}}}}}}}"#
    ))
    .expect("the benchmark key is valid")
}

/// The name of project `i` in every fixture.
pub fn project_name(i: usize) -> String {
    format!("p{i}")
}

/// Which keys each fixture project gets; every key has the maximum limit (64 TiB less one
/// byte), so 1-byte consumes never run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// An Active key only: two admin transactions per project, enough to consume.
    Active,
    /// An Active and a Reserved key: three transactions per project, as a real pair is set up.
    ActiveAndReserve,
}

/// Creates projects `p0..p{count}` with `keys`. Returns how long it took.
pub fn populate(engine: &Engine, count: usize, keys: Keys) -> BenchResult<Duration> {
    let started = Instant::now();
    for i in 0..count {
        let name = project_name(i);
        engine.create_project(&name)?;
        engine.add_key(&name, key(&format!("{name}-A"), MAX_LIMIT_BYTES))?;
        if keys == Keys::ActiveAndReserve {
            engine.add_key(&name, key(&format!("{name}-R"), MAX_LIMIT_BYTES))?;
        }
    }
    Ok(started.elapsed())
}

/// Creates the projects `names`, all holding the data-volume key `key_id` of `limit` bytes as
/// their Active key: one key account that every one of their pairs draws from. With
/// [`Keys::ActiveAndReserve`] each also gets a Reserved key of its own (`{name}-R`, the maximum
/// limit), as [`populate`] gives its projects.
pub fn share_key(
    engine: &Engine,
    names: &[String],
    key_id: &str,
    limit: u64,
    keys: Keys,
) -> BenchResult<()> {
    for name in names {
        engine.create_project(name)?;
        engine.add_key(name, key(key_id, limit))?;
        if keys == Keys::ActiveAndReserve {
            engine.add_key(name, key(&format!("{name}-R"), MAX_LIMIT_BYTES))?;
        }
    }
    Ok(())
}

/// A state directory of projects (one Active key each) on disk.
pub struct DiskState {
    /// The directory on disk, closed: open it with [`open`] or [`Engine::open`].
    pub dir: tempfile::TempDir,
    /// How long creating the projects took where they were built.
    pub build: Duration,
    /// Whether they were built in memory (`/dev/shm`) and copied to disk.
    pub built_in_memory: bool,
}

impl DiskState {
    /// Builds the state in memory, where the catalog's per-transaction `fsync` costs nothing,
    /// then copies the closed files to a disk directory: the measurement needs state on disk,
    /// building it there would cost one `fsync` per transaction (about 1 ms each here).
    ///
    /// `count` projects are created in a state with room for `capacity` projects.
    pub fn build(count: usize, capacity: u32) -> BenchResult<DiskState> {
        let scratch = memory_dir()?;
        let built_in_memory = scratch.path().starts_with("/dev/shm");
        let build = {
            let engine = open(scratch.path(), capacity)?;
            populate(&engine, count, Keys::Active)?
        };
        let dir = disk_dir()?;
        copy_state(scratch.path(), dir.path())?;
        Ok(DiskState {
            dir,
            build,
            built_in_memory,
        })
    }
}

/// Options for a benchmark state in `dir`: its installation (MAC key and anchors) lives inside
/// it, so a benchmark never writes into the user's real installation.
pub fn options(dir: &Path) -> Options {
    Options {
        installation_dir: Some(dir.join("installation")),
        ..Options::default()
    }
}

/// Records a benchmark project needs in `hot.tgs`: its slot pair and the accounts of its
/// Active and Reserved keys.
pub const RECORDS_PER_PROJECT: u32 = 3;

/// Opens a fresh engine in `dir` with room for `projects` projects (0: an existing state keeps
/// its capacity).
pub fn open(dir: &Path, projects: u32) -> BenchResult<Engine> {
    Ok(Engine::open_with(
        dir,
        Options {
            capacity: projects.saturating_mul(RECORDS_PER_PROJECT),
            ..options(dir)
        },
    )?)
}

/// Handles on projects `p0..p{count}`.
pub fn handles(engine: &Engine, count: usize) -> BenchResult<Vec<ProjectHandle>> {
    (0..count)
        .map(|i| Ok(engine.project(&project_name(i))?))
        .collect()
}

/// A temporary directory on the disk the default temporary directory lives on (`TMPDIR`,
/// else `/tmp`): where state must behave as in production (mapped pages written back, `msync`).
pub fn disk_dir() -> BenchResult<tempfile::TempDir> {
    Ok(tempfile::tempdir()?)
}

/// A temporary directory in memory (`/dev/shm`) when the machine has one, else on disk: for
/// building large fixtures, where the catalog's per-transaction `fsync` would dominate.
pub fn memory_dir() -> BenchResult<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    })
}

/// Copies a closed state directory, with the installation inside it, into `to` (which must exist).
pub fn copy_state(from: &Path, to: &Path) -> BenchResult<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            // The installation the state is anchored in (see `options`).
            fs::create_dir_all(&target)?;
            copy_state(&source, &target)?;
        } else if entry.file_type()?.is_file() {
            fs::copy(source, target)?;
        }
    }
    Ok(())
}

/// Total size in bytes of the files directly inside `dir`, by name.
pub fn file_sizes(dir: &Path) -> BenchResult<Vec<(String, u64)>> {
    let mut sizes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            sizes.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata()?.len(),
            ));
        }
    }
    sizes.sort();
    Ok(sizes)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `RssAnon`, `RssFile`), if present.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The workspace's `target/` directory, as seen from this crate's manifest.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populated_projects_meter() {
        let dir = memory_dir().unwrap();
        let engine = open(dir.path(), 16).unwrap();
        populate(&engine, 2, Keys::ActiveAndReserve).unwrap();
        let handles = handles(&engine, 2).unwrap();
        handles[1].consume(5).unwrap();
        let usage = handles[1].usage();
        assert_eq!(usage.active_used, 5);
        assert_eq!(usage.reserved_limit, MAX_LIMIT_BYTES);
    }

    #[test]
    fn projects_sharing_a_key_draw_from_one_account() {
        let dir = memory_dir().unwrap();
        let engine = open(dir.path(), 16).unwrap();
        let names: Vec<String> = (0..3).map(project_name).collect();
        share_key(&engine, &names, "shared", 1 << 30, Keys::ActiveAndReserve).unwrap();
        let handles = handles(&engine, 3).unwrap();
        handles[0].consume(5).unwrap();
        handles[2].consume(7).unwrap();
        let keys = engine.keys("p2").unwrap();
        let shared = keys.iter().find(|k| k.key.id == "shared").unwrap();
        let account = shared.account.as_ref().unwrap();
        assert_eq!((shared.used, account.used), (7, 12));
        assert_eq!(account.holders.len(), 3);
        assert_eq!(handles[1].usage().reserved_limit, MAX_LIMIT_BYTES);
    }

    #[test]
    fn reads_own_rss() {
        assert!(proc_status_kib("VmRSS").unwrap() > 0);
        assert!(proc_status_kib("NoSuchField").is_none());
    }
}
