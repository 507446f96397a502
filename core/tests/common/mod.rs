//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use tollgate_core::{Engine, Key, KeyStatus, Options, Result, Scheme};

/// Where a test's installation (MAC key and anchors) lives: inside the state directory `dir`,
/// so it goes away with the test's temporary directory, the real one under `$HOME` is never
/// touched, and every process of a test that opens `dir` finds the same one.
pub fn installation(dir: &Path) -> std::path::PathBuf {
    dir.join("installation")
}

/// The default options with the test's own installation (see [`installation`]).
pub fn options(dir: &Path) -> Options {
    Options {
        installation_dir: Some(installation(dir)),
        ..Options::default()
    }
}

/// `Engine::open` with the test's own installation (see [`installation`]).
pub fn open(dir: impl AsRef<Path>) -> Result<Engine> {
    Engine::open_with(&dir, options(dir.as_ref()))
}

/// Where the account record of key `key` starts in `hot.tgs`: its record from the catalog,
/// after the file's 4 KiB header, in 256-byte records (see `AccountRecord`).
pub fn account_offset(dir: &Path, key: &str) -> u64 {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    let record: u64 = db
        .query_row(
            "SELECT record FROM accounts WHERE key_id = ?1",
            [key],
            |row| row.get(0),
        )
        .unwrap();
    4096 + record * 256
}

/// A commercial, online, standard data-volume key.
pub fn dv(id: &str, limit_bytes: u64) -> Key {
    Key::data_volume(id, limit_bytes)
}

/// A key expiring at `unix_secs`.
pub fn expiring(key: Key, unix_secs: i64) -> Key {
    Key {
        expires_at: Some(time::OffsetDateTime::from_unix_timestamp(unix_secs).unwrap()),
        ..key
    }
}

/// Sum of every byte charged to any key of the project, live or retired.
pub fn charged(engine: &Engine, project: &str) -> u64 {
    engine
        .keys(project)
        .unwrap()
        .iter()
        .filter(|k| matches!(k.key.scheme, Scheme::DataVolume { .. }))
        .map(|k| k.used)
        .sum()
}

/// Every key of the project as (id, status, used), in the order it was added.
pub fn statuses(engine: &Engine, project: &str) -> Vec<(String, KeyStatus, u64)> {
    engine
        .keys(project)
        .unwrap()
        .into_iter()
        .map(|k| (k.key.id, k.status, k.used))
        .collect()
}

/// Asserts no data-volume key is charged beyond its limit.
pub fn assert_within_limits(engine: &Engine, project: &str) {
    for k in engine.keys(project).unwrap() {
        assert!(
            k.used <= k.key.scheme.amount(),
            "key {} used {} of {}",
            k.key.id,
            k.used,
            k.key.scheme.amount()
        );
        if k.status == KeyStatus::Removed {
            assert_eq!(k.used, 0);
        }
    }
}

/// Runs this test binary's ignored test `entry` as a child process with `env`, stdout piped.
pub fn spawn_child(entry: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--include-ignored",
        "--exact",
        entry,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// The value of a child's environment variable, or `None` when not running as a child.
pub fn child_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads `RESULT <n>` lines a child printed.
pub fn child_result(child: Child) -> u64 {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    result_line(&String::from_utf8_lossy(&out.stdout))
}

/// The number of the `RESULT <n>` line in a child's output.
pub fn result_line(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| {
            l.split_once("RESULT ")
                .map(|(_, n)| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("child printed no RESULT line:\n{stdout}"))
}

/// The events `subscription` delivers until `enough` holds of them (at most 20 s, for slow
/// builds such as AddressSanitizer's on a loaded machine), then any that follow within 300 ms.
pub fn events_until(
    subscription: &tollgate_core::Subscription,
    enough: impl Fn(&[tollgate_core::Event]) -> bool,
) -> Vec<tollgate_core::Event> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut events = Vec::new();
    loop {
        let wait = if enough(&events) {
            std::time::Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(std::time::Instant::now())
        };
        match subscription.recv_timeout(wait) {
            Some(event) => events.push(event),
            None => return events,
        }
    }
}

/// How many switches the audit log holds.
pub fn audited_switches(engine: &Engine) -> usize {
    engine
        .events_after(0, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, tollgate_core::EventKind::Switched { .. }))
        .count()
}

/// Whether the state directory exists with both files.
pub fn state_exists(dir: &Path) -> bool {
    dir.join("hot.tgs").exists() && dir.join("catalog.db").exists()
}

/// Waits up to 5 s for `condition`, failing the test with `what` otherwise.
pub fn await_that(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
