//! Upgrade to key accounts (issue "One key, one quota"): a real state of format 2, written by
//! the build before key accounts (commit 0cba5aa, `tests/fixtures/state-v2`, whose README says
//! how it was made), opens with this build and converts. Per-pair copies of one key id become
//! one account whose usage is their sum; a sum beyond the limit leaves the key used up, nothing
//! lost, and a `recovered` event says so. A damaged format-2 state is refused and left as it was.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{await_that, charged, open, statuses};
use tollgate_core::{
    Corruption, Engine, Error, Event, EventKind, KeyHolder, KeyStatus, Refusal, SwitchReason,
    FORMAT_VERSION,
};

/// The state directory the old build wrote.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/state-v2/state")
}

/// The events the old build had recorded, as its `tollgate --json events` printed them.
fn old_events() -> Vec<Event> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/state-v2/events-v2.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Copies the directory `from` to `to` with the modes the engine gives its own files (git
/// keeps none): directories 0700, files 0600.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// A copy of the fixture in a new temporary directory: (the temporary directory, the state).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    copy_dir(&fixture(), &state);
    (tmp, state)
}

/// The format version in the header of the state's hot file.
fn hot_version(state: &Path) -> u32 {
    let bytes = std::fs::read(state.join("hot.tgs")).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

/// Every file under `dir` with its bytes, by path, but the admin lock (an empty file every
/// open makes).
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&entry.path()));
        } else if entry.file_name() != "admin.lock" {
            out.insert(entry.path(), std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// Every `recovered` event as (project, detail).
fn recovered(engine: &Engine) -> Vec<(String, String)> {
    engine
        .events_after(0, 10_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Recovered { detail } => Some((e.project, detail)),
            _ => None,
        })
        .collect()
}

fn holder(project: &str, status: KeyStatus, used: u64) -> KeyHolder {
    KeyHolder {
        project: project.into(),
        status,
        used,
    }
}

/// A key as a project lists it: (id, status, bytes charged).
type KeyRow<'a> = (&'a str, KeyStatus, u64);

const PROJECTS: [&str; 7] = ["q1", "q2", "q3", "q4", "r1", "r2", "s1"];

/// What the generator charged to each project with `tollgate pipe`.
const CHARGED: [(&str, u64); 7] = [
    ("q1", 500),
    ("q2", 400),
    ("q3", 300),
    ("q4", 50),
    ("r1", 800),
    ("r2", 700),
    ("s1", 1200),
];

/// Everything a user can see of the converted state: each project's keys with their usage,
/// account and pair usage.
fn observed(engine: &Engine) -> Vec<String> {
    PROJECTS
        .iter()
        .map(|p| {
            format!(
                "{p}: {:?} {:?}",
                engine.keys(p).unwrap(),
                engine.usage(p).unwrap()
            )
        })
        .collect()
}

/// The account of `key` as project `project` lists it.
fn account(engine: &Engine, project: &str, key: &str) -> tollgate_core::AccountUsage {
    engine
        .keys(project)
        .unwrap()
        .into_iter()
        .find(|k| k.key.id == key)
        .unwrap_or_else(|| panic!("{project} holds no key {key}"))
        .account
        .unwrap_or_else(|| panic!("key {key} has no account"))
}

#[test]
fn a_format_2_state_opens_with_one_account_per_key() {
    let (_tmp, state) = fixture_copy();
    assert_eq!(hot_version(&state), 2, "the fixture is a format-2 state");

    let engine = open(&state).unwrap();
    assert_eq!(hot_version(&state), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 4);

    // Each project's keys, with what it charged to each, as the old build had them.
    let expected: [(&str, Vec<KeyRow>); 7] = [
        (
            "q1",
            vec![
                ("q1-A-100", KeyStatus::Retired, 100),
                ("SHARED-1000", KeyStatus::Active, 400),
            ],
        ),
        (
            "q2",
            vec![
                ("q2-A-100", KeyStatus::Retired, 100),
                ("SHARED-1000", KeyStatus::Active, 300),
            ],
        ),
        (
            "q3",
            vec![
                ("q3-A-100", KeyStatus::Retired, 100),
                ("SHARED-1000", KeyStatus::Active, 200),
            ],
        ),
        (
            "q4",
            vec![
                ("q4-A-100", KeyStatus::Active, 50),
                ("SHARED-1000", KeyStatus::Reserved, 0),
            ],
        ),
        (
            "r1",
            vec![
                ("r1-A-100", KeyStatus::Retired, 100),
                ("OVER-1000", KeyStatus::Active, 700),
            ],
        ),
        (
            "r2",
            vec![
                ("r2-A-100", KeyStatus::Retired, 100),
                ("OVER-1000", KeyStatus::Active, 600),
                ("R2-RESERVE-500", KeyStatus::Reserved, 0),
            ],
        ),
        (
            "s1",
            vec![
                ("S1-A-1000", KeyStatus::Retired, 1000),
                ("S1-B-1000", KeyStatus::Active, 200),
                ("S1-C-1000", KeyStatus::Reserved, 0),
            ],
        ),
    ];
    for (project, keys) in &expected {
        let keys: Vec<_> = keys
            .iter()
            .map(|(id, status, used)| (id.to_string(), *status, *used))
            .collect();
        assert_eq!(statuses(&engine, project), keys, "{project}");
    }
    // Granted == charged: every byte the old build granted is charged to a key, project by
    // project.
    for (project, bytes) in CHARGED {
        assert_eq!(charged(&engine, project), bytes, "{project}");
    }
    let usage = |p: &str| engine.usage(p).unwrap();
    assert_eq!(
        (
            usage("s1").switches,
            usage("q4").switches,
            usage("r2").switches
        ),
        (1, 0, 1)
    );

    // The key in four pairs is one account: 400 + 300 + 200 of 1000, its shares as before.
    let shared = account(&engine, "q1", "SHARED-1000");
    assert_eq!((shared.limit, shared.used), (1000, 900));
    assert_eq!(
        shared.holders,
        vec![
            holder("q1", KeyStatus::Active, 400),
            holder("q2", KeyStatus::Active, 300),
            holder("q3", KeyStatus::Active, 200),
            holder("q4", KeyStatus::Reserved, 0),
        ]
    );
    for project in ["q2", "q3", "q4"] {
        assert_eq!(
            account(&engine, project, "SHARED-1000"),
            shared,
            "{project}"
        );
    }
    // The key used beyond its limit keeps all of it: 700 + 600 of 1000.
    let over = account(&engine, "r1", "OVER-1000");
    assert_eq!((over.limit, over.used, over.leased_unused), (1000, 1300, 0));
    assert_eq!(
        over.holders,
        vec![
            holder("r1", KeyStatus::Active, 700),
            holder("r2", KeyStatus::Active, 600),
        ]
    );
    // A key of one pair is an account of one holder.
    let s1 = account(&engine, "s1", "S1-B-1000");
    assert_eq!((s1.limit, s1.used), (1000, 200));
    assert_eq!(s1.holders, vec![holder("s1", KeyStatus::Active, 200)]);

    // Every event the old build recorded is still there, unchanged; then one `recovered` event
    // per converted pair and one for the key used beyond its limit.
    let old = old_events();
    let events = engine.events_after(0, 10_000).unwrap();
    let last_old = old.last().unwrap().seq;
    let kept: Vec<Event> = events
        .iter()
        .filter(|e| e.seq <= last_old)
        .cloned()
        .collect();
    assert_eq!(kept, old, "the old audit log is kept");
    let switches = old
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Switched {
                    reason: SwitchReason::Exhausted,
                    ..
                }
            )
        })
        .count();
    assert_eq!(switches, 6, "the fixture's six switches");
    let converted = recovered(&engine);
    assert_eq!(converted, expected_recovered(), "{converted:#?}");
    assert!(events
        .iter()
        .all(|e| e.seq <= last_old || matches!(e.kind, EventKind::Recovered { .. })));

    // Opening again changes nothing and reports nothing again.
    let seen = observed(&engine);
    drop(engine);
    let engine = open(&state).unwrap();
    assert_eq!(hot_version(&state), FORMAT_VERSION);
    assert_eq!(observed(&engine), seen);
    assert_eq!(recovered(&engine), expected_recovered());

    // The key used beyond its limit is used up everywhere: r1 has no reserve and is refused,
    // r2 switches to its reserve; the account keeps its 1300.
    assert!(matches!(
        engine.project("r1").unwrap().consume(1),
        Err(Refusal::Exhausted {
            requested: 1,
            remaining: 0
        })
    ));
    engine.project("r2").unwrap().consume(1).unwrap();
    assert_eq!(
        statuses(&engine, "r2"),
        vec![
            ("r2-A-100".into(), KeyStatus::Retired, 100),
            ("OVER-1000".into(), KeyStatus::Retired, 600),
            ("R2-RESERVE-500".into(), KeyStatus::Active, 1),
        ]
    );
    assert_eq!(account(&engine, "r1", "OVER-1000").used, 1300);
    let switched = EventKind::Switched {
        from: "OVER-1000".into(),
        to: "R2-RESERVE-500".into(),
        reason: SwitchReason::Exhausted,
    };
    await_that("r2's switch event", || {
        engine
            .events_after(0, 10_000)
            .unwrap()
            .iter()
            .any(|e| e.project == "r2" && e.kind == switched)
    });

    // The shared key has 100 bytes left across its holders, not 600, 700 or 800 per pair.
    let q1 = engine.project("q1").unwrap();
    assert!(matches!(
        q1.consume(101),
        Err(Refusal::Exhausted {
            requested: 101,
            remaining: 100
        })
    ));
    q1.consume(60).unwrap();
    engine.project("q2").unwrap().consume(40).unwrap();
    for project in ["q1", "q2", "q3"] {
        assert!(
            matches!(
                engine.project(project).unwrap().consume(1),
                Err(Refusal::Exhausted {
                    requested: 1,
                    remaining: 0
                })
            ),
            "{project}"
        );
    }
    let shared = account(&engine, "q3", "SHARED-1000");
    assert_eq!((shared.used, shared.leased_unused), (1000, 0));
    assert_eq!(
        shared.holders.iter().map(|h| h.used).collect::<Vec<_>>(),
        vec![460, 340, 200, 0]
    );
    // Granted == charged, with the 1 + 60 + 40 bytes granted since.
    let total: u64 = PROJECTS.iter().map(|p| charged(&engine, p)).sum();
    assert_eq!(total, CHARGED.iter().map(|(_, b)| b).sum::<u64>() + 101);
    assert_eq!(recovered(&engine), expected_recovered());
}

/// The `recovered` events of the conversion, in order.
fn expected_recovered() -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = [
        ("q1", 3),
        ("q2", 3),
        ("q3", 3),
        ("q4", 3),
        ("r1", 3),
        ("r2", 4),
        ("s1", 4),
    ]
    .iter()
    .map(|(project, generation)| {
        (
            project.to_string(),
            format!(
                "upgraded from state format 2: data-volume pair of \"{project}\" given key accounts (hot-state generation {generation})"
            ),
        )
    })
    .collect();
    events.push((
        "r1".into(),
        "upgraded from state format 2: key OVER-1000 was used 1300 bytes across 2 projects, beyond its limit of 1000: it is used up"
            .into(),
    ));
    events
}

/// A damaged format-2 state gets a specific error and keeps every byte of every file.
#[test]
fn a_damaged_format_2_state_is_refused_and_left_as_it_was() {
    type Damage = fn(&Path);
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "hot file truncated",
            |s| {
                let path = s.join("hot.tgs");
                let len = std::fs::metadata(&path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(len - 256).unwrap();
            },
            "file is 12032 bytes but its header says 12288: it was truncated or extended",
        ),
        (
            "hot file extended",
            |s| {
                let path = s.join("hot.tgs");
                let len = std::fs::metadata(&path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(len + 100).unwrap();
            },
            "file is 12388 bytes but its header says 12288: it was truncated or extended",
        ),
        (
            "hot file cut inside its header",
            |s| {
                let path = s.join("hot.tgs");
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(100).unwrap();
            },
            "file is 100 bytes, shorter than the 4096-byte header",
        ),
        (
            "hot file header bit flip",
            |s| flip(&s.join("hot.tgs"), 17),
            "header checksum",
        ),
        (
            "hot file missing",
            |s| std::fs::remove_file(s.join("hot.tgs")).unwrap(),
            "the hot-state file is missing but the catalog holds projects",
        ),
        (
            "catalog not a database",
            |s| std::fs::write(s.join("catalog.db"), vec![0x5a; 8192]).unwrap(),
            "not a usable SQLite catalog",
        ),
        (
            "catalog missing",
            |s| std::fs::remove_file(s.join("catalog.db")).unwrap(),
            "the catalog is missing beside an existing hot-state file",
        ),
    ];
    for (name, damage, expected) in cases {
        let (_tmp, state) = fixture_copy();
        damage(&state);
        let before = files(&state);
        let error = match open(&state) {
            Ok(_) => panic!("{name}: a damaged state opened"),
            Err(e) => e,
        };
        match &error {
            Error::CorruptState { reason, .. } => {
                assert!(reason.to_string().contains(expected), "{name}: {reason}")
            }
            other => panic!("{name}: expected CorruptState, got {other:?}"),
        }
        let after = files(&state);
        let changed: std::collections::BTreeSet<_> = before
            .keys()
            .chain(after.keys())
            .filter(|path| before.get(*path) != after.get(*path))
            .collect();
        assert!(changed.is_empty(), "{name}: changed {changed:?}");
        if state.join("hot.tgs").exists() && name != "hot file cut inside its header" {
            assert_eq!(hot_version(&state), 2, "{name}");
        }
    }
}

/// Flips bit 4 of byte `at` of the file `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// A format-3 state, whose header checksum is a 64-bit FNV-1a, opens as it is: the version
/// decides the checksum, so the file is neither rewritten nor reset and keeps its usage.
#[test]
fn a_format_3_state_with_its_fnv_header_opens_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    {
        let engine = open(&state).unwrap();
        engine.create_project("p").unwrap();
        engine.add_key("p", common::dv("K-1", 1 << 20)).unwrap();
        engine.project("p").unwrap().consume(700).unwrap();
        engine.flush().unwrap();
    }
    assert_eq!(hot_version(&state), FORMAT_VERSION);
    // The header as a format-3 build wrote it: version 3, FNV-1a of its first 40 bytes.
    let hot = state.join("hot.tgs");
    let mut bytes = std::fs::read(&hot).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let fnv = bytes[..40]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    bytes[40..48].copy_from_slice(&fnv.to_le_bytes());
    std::fs::write(&hot, &bytes).unwrap();

    let engine = open(&state).unwrap();
    assert_eq!(charged(&engine, "p"), 700);
    engine.project("p").unwrap().consume(300).unwrap();
    assert_eq!(charged(&engine, "p"), 1000);
    drop(engine);
    assert_eq!(hot_version(&state), 3, "a format-3 file is not rewritten");
    assert_eq!(std::fs::read(&hot).unwrap()[..4096], bytes[..4096]);

    // The same header with a BLAKE3 checksum, or a format-4 header with FNV-1a, is damaged.
    let mut wrong = bytes.clone();
    wrong[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    std::fs::write(&hot, &wrong).unwrap();
    assert!(matches!(
        open(&state),
        Err(Error::CorruptState {
            reason: Corruption::HeaderChecksum { .. },
            ..
        })
    ));
    assert_eq!(
        std::fs::read(&hot).unwrap(),
        wrong,
        "a refused file is left as it was"
    );
}
