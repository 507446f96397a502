//! Grace (`grace_days`, rule R38 in docs/rules.md): an expired Active data-volume key with no valid
//! reserve grants on for its days of grace, across threads and processes, within its limit;
//! its start and end are each reported once.

mod common;

use common::{child_env, child_result, dv, expiring, options, spawn_child};
use tollgate_core::{Clock, Engine, EventKind, Key, KeyStatus, Options, Refusal};

const DAY: u32 = 86_400;
/// Every process's manual clock starts here; the key expires a thousand seconds later.
const T0: u32 = 1_900_000_000;
const EXPIRY: u32 = T0 + 1_000;
const LIMIT: u64 = 64 << 20;

/// The test's options with a manual clock at `now`.
fn at(dir: &std::path::Path, now: u32) -> Options {
    Options {
        clock: Clock::manual(now),
        ..options(dir)
    }
}

/// A key of [`LIMIT`] bytes expiring at [`EXPIRY`] with `days` of grace.
fn graced(id: &str, days: u32) -> Key {
    Key {
        grace_days: Some(days),
        ..expiring(dv(id, LIMIT), i64::from(EXPIRY))
    }
}

/// The audit log's grace events, in order, as (kind, key).
fn grace_events(engine: &Engine) -> Vec<(&'static str, String)> {
    engine
        .events_after(0, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::GraceStarted { key, .. } => Some(("started", key)),
            EventKind::GraceEnded { key } => Some(("ended", key)),
            _ => None,
        })
        .collect()
}

#[test]
#[ignore = "child process entry point; run by three_processes_share_one_grace"]
fn grace_drain_child() {
    let (Some(dir), Some(now)) = (child_env("TOLLGATE_TEST_DIR"), child_env("TOLLGATE_NOW")) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let engine = Engine::open_with(&dir, at(&dir, now.parse().unwrap())).unwrap();
    let granted: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let handle = engine.project("p").unwrap();
                    let mut granted = 0;
                    loop {
                        match handle.consume_partial(64 << 10) {
                            Ok(g) => granted += g,
                            Err(Refusal::Exhausted { .. }) => return granted,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    println!("RESULT {granted}");
}

/// Three processes of two threads each, their clocks inside the grace, drain the expired key:
/// together they get exactly its limit, not a byte more, and the audit log holds one
/// `grace_started`. A fourth process after the grace is refused `Expired`, and the log gains
/// one `grace_ended`.
#[test]
fn three_processes_share_one_grace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path(), at(dir.path(), T0)).unwrap();
    engine.create_project("p").unwrap();
    engine.add_key("p", graced("G", 2)).unwrap();
    engine.project("p").unwrap().consume(1 << 20).unwrap();
    // A key is added before it expires (an expired one is refused); this one's grace of a day
    // ends before the last process below looks.
    engine.create_project("q").unwrap();
    engine.add_key("q", graced("H", 1)).unwrap();
    drop(engine);

    let path = dir.path().to_str().unwrap().to_owned();
    let in_grace = (EXPIRY + DAY).to_string();
    let children: Vec<_> = (0..3)
        .map(|_| {
            spawn_child(
                "grace_drain_child",
                &[
                    ("TOLLGATE_TEST_DIR", path.clone()),
                    ("TOLLGATE_NOW", in_grace.clone()),
                ],
            )
        })
        .collect();
    let granted: u64 = children.into_iter().map(child_result).sum();
    assert_eq!(
        granted + (1 << 20),
        LIMIT,
        "the grace grants within the limit"
    );

    let after = EXPIRY + 2 * DAY;
    let engine = Engine::open_with(dir.path(), at(dir.path(), after)).unwrap();
    let keys = engine.keys("p").unwrap();
    assert_eq!(
        (keys[0].status, keys[0].used),
        (KeyStatus::Active, LIMIT),
        "granted == charged"
    );
    assert_eq!(grace_events(&engine), [("started", "G".to_owned())]);
    // G is used up now, and refused for that; H, past its grace, shows the end of a grace.
    let q = engine.project("q").unwrap();
    assert!(matches!(q.consume(1), Err(Refusal::Expired)));
    assert!(matches!(q.consume(1), Err(Refusal::Expired)));
    common::await_that("the grace events in the audit log", || {
        grace_events(&engine).len() == 2
    });
    assert_eq!(
        grace_events(&engine),
        [("started", "G".to_owned()), ("ended", "H".to_owned())]
    );
}

/// The grace in the other views: the card says "In grace until …" while it lasts, and a
/// reserve added during the grace takes over at the next request.
#[test]
fn the_card_shows_the_grace_and_a_reserve_added_in_it_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let options = at(dir.path(), T0);
    let clock = options.clock.clone();
    let engine = Engine::open_with(dir.path(), options).unwrap();
    engine.create_project("p").unwrap();
    engine.add_key("p", graced("G", 3)).unwrap();
    let handle = engine.project("p").unwrap();
    let card = |engine: &Engine| engine.view("p").unwrap().pairs[0].cards[0].clone();
    assert_eq!(card(&engine).grace_until, None, "not expired yet");
    clock.set(EXPIRY + 10);
    handle.consume(100).unwrap();
    let shown = card(&engine);
    assert!(shown.expired);
    assert_eq!(
        shown.grace_until.as_deref(),
        Some("2030-03-20T18:03:20Z"),
        "expiry {EXPIRY} plus 3 days"
    );

    engine.add_key("p", dv("R", 1_000)).unwrap();
    handle.consume(5).unwrap();
    let keys = engine.keys("p").unwrap();
    let got: Vec<_> = keys
        .iter()
        .map(|k| (k.key.id.as_str(), k.status, k.used))
        .collect();
    assert_eq!(
        got,
        [("G", KeyStatus::Retired, 100), ("R", KeyStatus::Active, 5)]
    );
    assert_eq!(card(&engine).grace_until, None);
}
