//! Clock rollback (issue 9, tampering): expiry is judged by the latest time the state has seen,
//! in this process and across restarts, and a clock set back beyond the tolerance is reported.

mod common;

use std::time::Duration;

use common::{dv, expiring};
use tollgate_core::{Clock, Engine, Error, EventKind, Options};

const NOW: u32 = 1_800_000_000;

fn engine(dir: &std::path::Path, clock: &Clock) -> Engine {
    Engine::open_with(
        dir,
        Options {
            clock: clock.clone(),
            clock_tolerance: Duration::from_secs(60),
            ..common::options(dir)
        },
    )
    .unwrap()
}

/// The `behind_secs` of every clock rollback event in the audit log, waiting for the
/// dispatcher up to `wait` for `expected` of them.
fn rollbacks(e: &Engine, expected: usize, wait: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let found: Vec<u32> = e
            .events_after(0, 10_000)
            .unwrap()
            .into_iter()
            .filter_map(|ev| match ev.kind {
                EventKind::ClockRolledBack { behind_secs, .. } => Some(behind_secs),
                _ => None,
            })
            .collect();
        if found.len() >= expected || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_clock_set_back_while_open_does_not_revive_an_expired_key_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.create_project("p").unwrap();
    e.add_key("p", expiring(dv("A", 1_000), i64::from(NOW) + 100))
        .unwrap();
    let project = e.project("p").unwrap();
    project.consume(10).unwrap();
    clock.set(NOW + 100);
    assert!(matches!(project.consume(10), Err(Error::Expired)));
    // Back by a day: still expired, judged by the latest time seen.
    clock.set(NOW + 100 - 86_400);
    assert!(matches!(project.consume(10), Err(Error::Expired)));
    assert_eq!(rollbacks(&e, 1, Duration::from_secs(5)), [86_400]);
    // The episode is reported once, however long it lasts.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(rollbacks(&e, 2, Duration::from_millis(300)).len(), 1);
    // Within the tolerance nothing is reported.
    clock.set(NOW + 200);
    clock.set(NOW + 170);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(rollbacks(&e, 2, Duration::from_millis(300)).len(), 1);
}

#[test]
fn restarting_with_the_clock_set_back_is_detected_and_expiry_keeps_the_latest_time() {
    let dir = tempfile::tempdir().unwrap();
    {
        let clock = Clock::manual(NOW);
        let e = engine(dir.path(), &clock);
        e.create_project("p").unwrap();
        e.add_key("p", expiring(dv("A", 1_000), i64::from(NOW) + 1_000))
            .unwrap();
        clock.set(NOW + 2_000);
        // A flush (or any admin change) records the time seen.
        e.flush().unwrap();
        assert!(matches!(
            e.project("p").unwrap().consume(1),
            Err(Error::Expired)
        ));
    }
    // The program restarts with the clock a week back, before the key's expiry.
    let clock = Clock::manual(NOW - 7 * 86_400);
    let e = engine(dir.path(), &clock);
    assert_eq!(clock.now(), NOW + 2_000);
    assert!(matches!(
        e.project("p").unwrap().consume(1),
        Err(Error::Expired)
    ));
    assert_eq!(
        rollbacks(&e, 1, Duration::from_secs(5)),
        [7 * 86_400 + 2_000]
    );
    // A restart within the tolerance is not a rollback.
    drop(e);
    let clock = Clock::manual(NOW + 1_990);
    let e = engine(dir.path(), &clock);
    assert_eq!(rollbacks(&e, 2, Duration::from_millis(300)).len(), 1);
}
