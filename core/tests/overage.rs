//! Overage (`overage_percent`, rule R39 in docs/rules.md): a data-volume key may be used that
//! far past its limit by the projects that hold no reserve; a project with a reserve switches
//! at the limit. Exact across threads and processes, on one key account.

mod common;

use common::{child_env, child_result, dv, open, spawn_child};
use tollgate_core::{Engine, EventKind, Key, KeyStatus, Overage, Refusal};

const LIMIT: u64 = 256 << 20;
/// 10 % of [`LIMIT`].
const OVERAGE: u64 = LIMIT / 10;
const RESERVE: u64 = 32 << 20;

/// A key of [`LIMIT`] bytes with a 10 % overage.
fn with_overage(id: &str) -> Key {
    Key {
        overage_percent: Some(10),
        ..dv(id, LIMIT)
    }
}

/// Drains `project` in 1 MiB grants, all or nothing, then what is left, and returns the bytes
/// granted.
fn drain(engine: &Engine, project: &str) -> u64 {
    let handle = engine.project(project).unwrap();
    let mut granted = 0;
    loop {
        match handle.consume(1 << 20) {
            Ok(()) => granted += 1 << 20,
            Err(Refusal::Exhausted { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    while let Ok(g) = handle.consume_partial(1 << 20) {
        granted += g;
    }
    granted
}

#[test]
#[ignore = "child process entry point; run by three_processes_drain_a_key_into_its_overage"]
fn overage_drain_child() {
    let Some(dir) = child_env("TOLLGATE_TEST_DIR") else {
        return;
    };
    let engine = open(&dir).unwrap();
    let granted: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = ["p", "q"]
            .into_iter()
            .map(|project| {
                let engine = &engine;
                s.spawn(move || drain(engine, project))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    println!("RESULT {granted}");
}

/// Key K (256 MiB, 10 % overage) is held by p alone and by q with a reserve R of its own.
/// Three processes, each draining p and q on two threads, get exactly K's limit and overage
/// plus R: q switched to R at K's limit (q used no overage byte once its reserve could take
/// over), p drew the overage. One `overage_started`, one switch; the card shows the overage
/// used up.
#[test]
fn three_processes_drain_a_key_into_its_overage() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    for project in ["p", "q"] {
        engine.create_project(project).unwrap();
        engine.add_key(project, with_overage("K")).unwrap();
    }
    engine.add_key("q", dv("R", RESERVE)).unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let children: Vec<_> = (0..3)
        .map(|_| {
            spawn_child(
                "overage_drain_child",
                &[("TOLLGATE_TEST_DIR", path.clone())],
            )
        })
        .collect();
    let granted: u64 = children.into_iter().map(child_result).sum();
    assert_eq!(
        granted,
        LIMIT + OVERAGE + RESERVE,
        "granted == what may be granted"
    );

    let keys = |project| {
        engine
            .keys(project)
            .unwrap()
            .into_iter()
            .map(|k| (k.key.id, k.status, k.used))
            .collect::<Vec<_>>()
    };
    let p = keys("p");
    let q = keys("q");
    assert_eq!(p[0].1, KeyStatus::Active);
    assert_eq!(
        (q[0].1, &q[1]),
        (
            KeyStatus::Retired,
            &("R".to_owned(), KeyStatus::Active, RESERVE)
        )
    );
    assert_eq!(
        p[0].2 + q[0].2,
        LIMIT + OVERAGE,
        "K's account: limit + overage"
    );
    assert!(
        q[0].2 <= LIMIT,
        "q switched at the limit: {} bytes of K",
        q[0].2
    );
    assert_eq!(
        engine.keys("p").unwrap()[0].account.as_ref().unwrap().used,
        LIMIT + OVERAGE
    );
    let card = engine.view("p").unwrap().pairs[0].cards[0].clone();
    assert_eq!(
        card.overage,
        Some(Overage {
            used: OVERAGE,
            allowed: OVERAGE
        })
    );
    let events = engine.events_after(0, 100_000).unwrap();
    let count = |f: fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
    assert_eq!(count(|k| matches!(k, EventKind::OverageStarted { .. })), 1);
    assert_eq!(count(|k| matches!(k, EventKind::Switched { .. })), 1);
}

/// A key without an overage is unchanged: its card has none, and it stops at its limit.
#[test]
fn a_key_without_an_overage_stops_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    engine.create_project("p").unwrap();
    engine.add_key("p", dv("K", 1_000)).unwrap();
    assert_eq!(drain(&engine, "p"), 1_000);
    assert_eq!(engine.view("p").unwrap().pairs[0].cards[0].overage, None);
}
