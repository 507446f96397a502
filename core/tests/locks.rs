//! The admin lock across processes: a process killed while changing keys never blocks another,
//! and two processes racing to add a reserve to one pair get exactly one winner.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_within_limits, child_env, child_result, dv, spawn_child};
use tollgate_core::Error;

#[test]
#[ignore = "child process entry point; run by a_killed_admin_never_blocks_another_process"]
fn admin_churn_child() {
    let Some(dir) = child_env("TOLLGATE_TEST_DIR") else {
        return;
    };
    let tag = child_env("TOLLGATE_TEST_TAG").unwrap();
    let engine = common::open(&dir).unwrap();
    for i in 0.. {
        let project = format!("{tag}-{i}");
        engine.create_project(&project).unwrap();
        engine
            .add_key(&project, dv(&format!("{project}-a"), 100))
            .unwrap();
        engine
            .add_key(&project, dv(&format!("{project}-r"), 100))
            .unwrap();
        engine.project(&project).unwrap().consume(150).unwrap();
        engine
            .replace_active_key(&project, dv(&format!("{project}-n"), 100))
            .unwrap();
    }
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(limit)
        .expect("an admin operation blocked behind a dead process's lock")
}

#[test]
fn a_killed_admin_never_blocks_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    common::open(dir.path()).unwrap();
    for trial in 0..6 {
        let mut child = spawn_child(
            "admin_churn_child",
            &[
                ("TOLLGATE_TEST_DIR", path.clone()),
                ("TOLLGATE_TEST_TAG", format!("t{trial}")),
            ],
        );
        std::thread::sleep(Duration::from_millis(150 + 60 * trial));
        child.kill().unwrap(); // SIGKILL, most likely inside an admin change
        child.wait().unwrap();
        let path = path.clone();
        let started = Instant::now();
        within(Duration::from_secs(20), move || {
            let engine = common::open(&path).unwrap();
            let probe = format!("probe-{trial}");
            engine.create_project(&probe).unwrap();
            engine
                .add_key(&probe, dv(&format!("{probe}-a"), 10))
                .unwrap();
            for project in engine.projects().unwrap() {
                assert_within_limits(&engine, &project);
                engine.view(&project).unwrap();
            }
        });
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    let engine = common::open(dir.path()).unwrap();
    let recovered = engine
        .events_after(0, usize::MAX >> 1)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, tollgate_core::EventKind::Recovered { .. }))
        .count();
    println!("{recovered} interrupted admin changes were completed from the hot state");
}

#[test]
#[ignore = "child process entry point; run by racing_reserves_have_exactly_one_winner"]
fn add_reserve_child() {
    let Some(dir) = child_env("TOLLGATE_TEST_DIR") else {
        return;
    };
    let id = child_env("TOLLGATE_TEST_KEY").unwrap();
    let go = std::path::Path::new(&dir).join("go");
    let engine = common::open(&dir).unwrap();
    while !go.exists() {
        std::hint::spin_loop();
    }
    match engine.add_key("P", dv(&id, 100)) {
        Ok(_) => println!("RESULT 1"),
        Err(Error::ReserveOccupied { .. }) => println!("RESULT 0"),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn racing_reserves_have_exactly_one_winner() {
    for trial in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let engine = common::open(dir.path()).unwrap();
        engine.create_project("P").unwrap();
        engine.add_key("P", dv("A", 100)).unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let children: Vec<_> = ["R1", "R2"]
            .map(|id| {
                spawn_child(
                    "add_reserve_child",
                    &[
                        ("TOLLGATE_TEST_DIR", path.clone()),
                        ("TOLLGATE_TEST_KEY", id.into()),
                    ],
                )
            })
            .into();
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(dir.path().join("go"), b"").unwrap();
        let winners: u64 = children.into_iter().map(child_result).sum();
        assert_eq!(winners, 1, "trial {trial}");
        let usage = engine.usage("P").unwrap();
        assert!(usage.has_reserved);
        assert_eq!(usage.reserved_limit, 100);
    }
}
