//! Clock rollback (rule R32 in docs/rules.md): expiry is judged by the latest time the state has
//! seen, in this process and across restarts, and a clock set back beyond the tolerance is
//! reported.

mod common;

use std::time::Duration;

use common::{dv, expiring};
use tollgate_core::{Clock, Engine, Error, EventKind, Options, Refusal};

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
    assert!(matches!(project.consume(10), Err(Refusal::Expired)));
    // Back by a day: still expired, judged by the latest time seen.
    clock.set(NOW + 100 - 86_400);
    assert!(matches!(project.consume(10), Err(Refusal::Expired)));
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
            Err(Refusal::Expired)
        ));
    }
    // The program restarts with the clock a week back, before the key's expiry.
    let clock = Clock::manual(NOW - 7 * 86_400);
    let e = engine(dir.path(), &clock);
    assert_eq!(clock.now(), NOW + 2_000);
    assert!(matches!(
        e.project("p").unwrap().consume(1),
        Err(Refusal::Expired)
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

/// The catalog's latest time seen, read directly.
fn latest_seen(dir: &std::path::Path) -> Option<i64> {
    use rusqlite::OptionalExtension;
    rusqlite::Connection::open(dir.join("catalog.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE name = 'latest_seen'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
}

/// The catalog's meta table and audit log: what a refused open must leave as it was.
fn catalog_rows(dir: &std::path::Path) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT name || '=' || value FROM meta ORDER BY name",
        "SELECT seq || ' ' || json FROM events ORDER BY seq",
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let found = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.extend(found.map(Result::unwrap));
    }
    rows
}

/// A state whose key "A" expires at `NOW`, opened at `NOW - 3` and seen expired at `NOW + 1`.
fn expired_during_a_run(dir: &std::path::Path) {
    let clock = Clock::manual(NOW - 3);
    let e = engine(dir, &clock);
    e.create_project("p").unwrap();
    e.add_key("p", expiring(dv("A", 1_000), i64::from(NOW)))
        .unwrap();
    let project = e.project("p").unwrap();
    project.consume(1).unwrap();
    clock.set(NOW + 1);
    assert!(matches!(project.consume(1), Err(Refusal::Expired)));
    // Recorded at once, off the hot path, without a flush or a ratchet.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while latest_seen(dir) != Some(i64::from(NOW + 1)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Regression: a process started just before a key's expiry saw it expire and was
/// refused; restarted with the clock at an earlier date, it must be refused still.
#[test]
fn an_expiry_seen_during_a_run_is_not_revived_by_a_restart_with_the_clock_set_back() {
    let dir = tempfile::tempdir().unwrap();
    expired_during_a_run(dir.path());
    let clock = Clock::manual(NOW - 86_400);
    let e = engine(dir.path(), &clock);
    assert!(matches!(
        e.project("p").unwrap().consume(1),
        Err(Refusal::Expired)
    ));
    assert_eq!(latest_seen(dir.path()), Some(i64::from(NOW + 1)));
}

/// Rule R32: `meta.latest_seen` lowered by hand is refused, and changes nothing.
#[test]
fn an_edited_latest_seen_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    expired_during_a_run(dir.path());
    rusqlite::Connection::open(dir.path().join("catalog.db"))
        .unwrap()
        .execute(
            "UPDATE meta SET value = value - 86400 WHERE name = 'latest_seen'",
            [],
        )
        .unwrap();
    let before = catalog_rows(dir.path());
    let result = Engine::open_with(
        dir.path(),
        Options {
            clock: Clock::manual(NOW - 86_400),
            ..common::options(dir.path())
        },
    );
    match result {
        Err(Error::Tampered { reason }) => assert_eq!(
            reason.to_string(),
            "the latest time seen in catalog.db (2027-01-14T08:00:01Z) does not verify: meta.latest_seen was edited; an operator can accept it with `tollgate state accept-rollback`"
        ),
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("opened"),
    }
    assert_eq!(catalog_rows(dir.path()), before);
}

/// Rule R32: the time and its MAC replayed from before the expiry (both read from the catalog
/// earlier) do not revive the key: the installation keeps its own copy.
#[test]
fn a_latest_seen_replayed_from_before_the_expiry_does_not_revive_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let clock = Clock::manual(NOW - 3);
        let e = engine(dir.path(), &clock);
        e.create_project("p").unwrap();
        drop(e);
        catalog_rows(dir.path())
    };
    let replay: Vec<&String> = old
        .iter()
        .filter(|r| r.starts_with("latest_seen"))
        .collect();
    assert_eq!(replay.len(), 2);
    expired_during_a_run_in(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    for row in replay {
        let (name, value) = row.split_once('=').unwrap();
        db.execute(
            "UPDATE meta SET value = ?2 WHERE name = ?1",
            rusqlite::params![name, value.parse::<i64>().unwrap()],
        )
        .unwrap();
    }
    drop(db);
    let clock = Clock::manual(NOW - 86_400);
    let e = engine(dir.path(), &clock);
    assert_eq!(clock.now(), NOW + 1);
    assert!(matches!(
        e.project("p").unwrap().consume(1),
        Err(Refusal::Expired)
    ));
}

/// [`expired_during_a_run`] on a state whose project "p" exists already.
fn expired_during_a_run_in(dir: &std::path::Path) {
    let clock = Clock::manual(NOW - 3);
    let e = engine(dir, &clock);
    e.add_key("p", expiring(dv("A", 1_000), i64::from(NOW)))
        .unwrap();
    let project = e.project("p").unwrap();
    project.consume(1).unwrap();
    clock.set(NOW + 1);
    assert!(matches!(project.consume(1), Err(Refusal::Expired)));
    common::await_that("the latest time seen recorded", || {
        latest_seen(dir) == Some(i64::from(NOW + 1))
    });
}

/// Rule R32's way out: one open with the clock in the future expired every key for good; an
/// operator lowers the latest time seen to the clock's, audited in the MAC chain.
#[test]
fn accept_clock_gives_up_a_time_once_seen_in_the_future_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = engine(dir.path(), &Clock::manual(NOW));
        e.create_project("p").unwrap();
        e.add_key("p", expiring(dv("A", 1_000), i64::from(NOW) + 86_400))
            .unwrap();
    }
    let future = NOW + 4 * 365 * 86_400;
    drop(engine(dir.path(), &Clock::manual(future)));
    let e = engine(dir.path(), &Clock::manual(NOW + 10));
    assert!(matches!(
        e.project("p").unwrap().consume(1),
        Err(Refusal::Expired)
    ));
    drop(e);
    let clock = Clock::manual(NOW + 20);
    let (e, given_up) = Engine::accept_clock(
        dir.path(),
        Options {
            clock: clock.clone(),
            ..common::options(dir.path())
        },
    )
    .unwrap();
    assert_eq!(given_up, Some(future));
    e.project("p").unwrap().consume(1).unwrap();
    let accepted: Vec<(u64, String, String)> = e
        .events_after(0, 1_000)
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev.kind {
            EventKind::ClockAccepted { from, to, .. } => Some((ev.seq, from, to)),
            _ => None,
        })
        .collect();
    let [(seq, from, to)] = &accepted[..] else {
        panic!("{accepted:?}")
    };
    assert_eq!(
        (from.as_str(), to.as_str()),
        ("2031-01-14T08:00:00Z", "2027-01-15T08:00:20Z")
    );
    drop(e);
    // Accepted once: later opens keep the lowered time.
    let e = engine(dir.path(), &Clock::manual(NOW + 30));
    e.project("p").unwrap().consume(1).unwrap();
    drop(e);
    // The decision is in the MAC chain: deleting its audit entry is detected.
    rusqlite::Connection::open(dir.path().join("catalog.db"))
        .unwrap()
        .execute("DELETE FROM events WHERE seq = ?1", [*seq as i64])
        .unwrap();
    let before = catalog_rows(dir.path());
    match Engine::open_with(dir.path(), common::options(dir.path())) {
        Err(Error::Tampered { reason }) => assert_eq!(
            reason.to_string(),
            format!("the operator decision at audit entry {seq} is missing: it was deleted from the audit log; an operator can accept it with `tollgate state accept-rollback`")
        ),
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("opened"),
    }
    assert_eq!(catalog_rows(dir.path()), before);
}
