//! Rule R14 (docs/rules.md) across languages: a C, a C++ and a Python process and this Rust process
//! meter one project at the same time until both keys are used up. The bytes they were granted add
//! up exactly to the two limits, no key is charged beyond its limit, and the switch happened once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{build, library_dir, this_build_library, workspace, Language, Linkage};
use tollgate_core::{Delivery, Edition, EventKind, Key, KeyKind, Refusal, Scheme};

const ACTIVE: u64 = 50_000_017;
const RESERVE: u64 = 30_000_023;

fn key(id: &str, limit_bytes: u64) -> Key {
    Key {
        id: id.into(),
        delivery: Delivery::Offline,
        kind: KeyKind::Commercial,
        edition: Edition::Enterprise,
        scheme: Scheme::DataVolume { limit_bytes },
        expires_at: None,
        auto_renew: false,
        company: None,
        activation_code: None,
        grace_days: None,
        overage_percent: None,
        reset: None,
    }
}

fn granted(child: Child, who: &str) -> u64 {
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{who} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("GRANTED "))
        .unwrap_or_else(|| panic!("{who} printed no GRANTED line: {stdout}"))
        .trim()
        .parse()
        .unwrap()
}

/// What this process takes, in the same all-or-nothing-then-partial pattern as the clients.
fn drain_in_rust(state: &Path, go: &Path) -> u64 {
    let engine = common::open(state).unwrap();
    let project = engine.project("P").unwrap();
    while !go.exists() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut granted = 0;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let want = 1 + x % 4096;
        match project.consume(want) {
            Ok(()) => granted += want,
            Err(Refusal::Exhausted { .. }) => match project.consume_partial(want) {
                Ok(rest) => granted += rest,
                Err(Refusal::Exhausted { .. }) => return granted,
                Err(other) => panic!("{other}"),
            },
            Err(other) => panic!("{other}"),
        }
    }
}

#[test]
fn rust_c_cpp_and_python_drain_one_project_exactly() {
    let state = tempfile::tempdir().unwrap();
    {
        let engine = common::open(state.path()).unwrap();
        engine.create_project("P").unwrap();
        engine.add_key("P", key("A", ACTIVE)).unwrap();
        engine.add_key("P", key("R", RESERVE)).unwrap();
    }
    let bin = tempfile::tempdir().unwrap();
    let c = build("tests/c/drain.c", Language::C, Linkage::Shared, bin.path());
    let cpp = build(
        "tests/cpp/drain.cpp",
        Language::Cxx,
        Linkage::Static,
        bin.path(),
    );
    let go = state.path().join("go");
    let args = |seed: &str| {
        [
            state.path().as_os_str().to_owned(),
            "P".into(),
            seed.into(),
            go.as_os_str().to_owned(),
        ]
    };
    let spawn = |cmd: &mut Command| {
        common::with_installation(this_build_library(cmd), state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let c_child = spawn(Command::new(&c).args(args("1")));
    let cpp_child = spawn(Command::new(&cpp).args(args("2")));
    let py_child = spawn(
        Command::new("python3")
            .arg(workspace().join("tests/python/drain.py"))
            .args(args("3"))
            .env("PYTHONPATH", workspace().join("python"))
            .env("TOLLGATE_LIBRARY", library_dir().join("libtollgate.so")),
    );
    // Give every process time to open the state, then start them together.
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(&go, b"").unwrap();
    let rust = drain_in_rust(state.path(), &go);
    let shares = [
        ("rust", rust),
        ("c", granted(c_child, "the C client")),
        ("c++", granted(cpp_child, "the C++ client")),
        ("python", granted(py_child, "the Python client")),
    ];
    println!("shares: {shares:?}");
    let total: u64 = shares.iter().map(|(_, g)| g).sum();
    assert_eq!(total, ACTIVE + RESERVE, "granted across the four languages");

    let engine = common::open(state.path()).unwrap();
    let keys = engine.keys("P").unwrap();
    let charged: Vec<_> = keys.iter().map(|k| (k.key.id.as_str(), k.used)).collect();
    assert_eq!(charged, vec![("A", ACTIVE), ("R", RESERVE)]);
    assert_eq!(engine.usage("P").unwrap().switches, 1);
    let switches = engine
        .events_after(0, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Switched { .. }))
        .count();
    assert_eq!(switches, 1, "one switch event across all processes");
}
