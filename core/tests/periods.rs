//! Usage periods (`reset`, rule R40 in docs/rules.md): a data-volume key's usage returns to 0
//! at each period boundary (UTC), exactly once across threads and processes; each closed
//! period's usage is kept; forgiven usage cannot be made up by editing the state.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{account_offset, await_that, child_env, child_result, dv, options, spawn_child};
use tollgate_core::{Clock, Engine, Error, EventKind, Key, KeyStatus, Options, Period, Refusal};

/// Every process's manual clock starts here (2030-03-17 17:46:40 UTC).
const T0: u32 = 1_900_000_000;
const LIMIT: u64 = 64 << 20;
const RESERVE: u64 = 16 << 20;

/// The next daily boundary after [`T0`], and a second into the day after it.
fn tomorrow() -> u32 {
    let start = Period::Daily.start_of(i64::from(T0));
    u32::try_from(Period::Daily.next_after(start)).unwrap()
}

/// The test's options with a manual clock at `now`.
fn at(dir: &Path, now: u32) -> Options {
    Options {
        clock: Clock::manual(now),
        ..options(dir)
    }
}

/// A key of `limit` bytes whose usage resets daily.
fn daily(id: &str, limit: u64) -> Key {
    Key {
        reset: Some(Period::Daily),
        ..dv(id, limit)
    }
}

/// Grants `project` 64 KiB at a time, in part at the end, until refused; the bytes granted.
fn drain(engine: &Engine, project: &str) -> u64 {
    let handle = engine.project(project).unwrap();
    let mut granted = 0;
    loop {
        match handle.consume_partial(64 << 10) {
            Ok(g) => granted += g,
            Err(Refusal::Exhausted { .. }) => return granted,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The audit log's `period_closed` events as (key, used).
fn closed_events(engine: &Engine) -> Vec<(String, u64)> {
    engine
        .events_after(0, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::PeriodClosed { key, used, .. } => Some((key, used)),
            _ => None,
        })
        .collect()
}

/// How many events of the audit log `kind` matches.
fn count(engine: &Engine, kind: impl Fn(&EventKind) -> bool) -> usize {
    engine
        .events_after(0, 100_000)
        .unwrap()
        .iter()
        .filter(|e| kind(&e.kind))
        .count()
}

/// The usage of key `key` in its current period, over every project, from its account.
fn period_used(engine: &Engine, project: &str, key: &str) -> u64 {
    engine
        .keys(project)
        .unwrap()
        .into_iter()
        .find(|k| k.key.id == key)
        .and_then(|k| k.account)
        .map(|a| a.used)
        .unwrap()
}

#[test]
#[ignore = "child process entry point; run by three_processes_cross_a_boundary_under_load"]
fn period_drain_child() {
    let Some(dir) = child_env("TOLLGATE_TEST_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let options = at(&dir, T0);
    let clock = options.clock.clone();
    let engine = Engine::open_with(&dir, options).unwrap();
    let granted: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = ["p", "q"]
            .into_iter()
            .map(|project| {
                let engine = &engine;
                s.spawn(move || drain(engine, project))
            })
            .collect();
        let first: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // This process's day ends; whichever process gets here first closes the period, while
        // the others may still be granting. Then everyone drains the new day.
        clock.set(tomorrow() + 1);
        engine.close_periods().unwrap();
        let threads: Vec<_> = ["p", "q"]
            .into_iter()
            .map(|project| {
                let engine = &engine;
                s.spawn(move || drain(engine, project))
            })
            .collect();
        first + threads.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
    });
    println!("RESULT {granted}");
}

/// Three processes of two threads each drain key K (held by projects p and q, so one account)
/// through a daily boundary that each process crosses on its own clock while the others may
/// still be granting. The period closes exactly once; what it closed with plus one whole new
/// period is exactly what was granted; no period went past the limit.
#[test]
fn three_processes_cross_a_boundary_under_load() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open_with(dir.path(), at(dir.path(), T0)).unwrap();
        for project in ["p", "q"] {
            engine.create_project(project).unwrap();
            engine.add_key(project, daily("K", LIMIT)).unwrap();
        }
    }
    let path = dir.path().to_str().unwrap().to_owned();
    let children: Vec<_> = (0..3)
        .map(|_| spawn_child("period_drain_child", &[("TOLLGATE_TEST_DIR", path.clone())]))
        .collect();
    let granted: u64 = children.into_iter().map(child_result).sum();
    let engine = Engine::open_with(dir.path(), at(dir.path(), tomorrow() + 2)).unwrap();
    let periods = engine.periods("K").unwrap();
    assert_eq!(periods.len(), 1, "{periods:?}");
    let first = &periods[0];
    assert_eq!(
        (first.starts_at, first.ends_at),
        (Period::Daily.start_of(i64::from(T0)), i64::from(tomorrow()))
    );
    assert!(first.used <= LIMIT, "{first:?}");
    assert_eq!(closed_events(&engine), [("K".to_owned(), first.used)]);
    assert_eq!(
        period_used(&engine, "p", "K"),
        LIMIT,
        "the new day used whole"
    );
    assert_eq!(
        granted,
        first.used + LIMIT,
        "granted == charged over both days"
    );
}

/// A period that ended while no engine ran closes at the next open, before any grant; a
/// second close finds nothing to do; the listing and the usage say so.
#[test]
fn a_boundary_passed_while_closed_resets_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open_with(dir.path(), at(dir.path(), T0)).unwrap();
        engine.create_project("p").unwrap();
        engine.add_key("p", daily("K", LIMIT)).unwrap();
        engine.project("p").unwrap().consume(LIMIT).unwrap();
        assert!(matches!(
            engine.project("p").unwrap().consume(1),
            Err(Refusal::Exhausted { .. })
        ));
        assert!(engine.close_periods().unwrap().is_empty(), "same day");
    }
    // Three days later: one period closes (the days nobody ran fold into it).
    let later = tomorrow() + 2 * 86_400 + 5;
    let engine = Engine::open_with(dir.path(), at(dir.path(), later)).unwrap();
    let periods = engine.periods("K").unwrap();
    assert_eq!(periods.len(), 1);
    assert_eq!(periods[0].used, LIMIT);
    assert_eq!(periods[0].ends_at, Period::Daily.start_of(i64::from(later)));
    assert!(engine.close_periods().unwrap().is_empty(), "exactly once");
    assert_eq!(period_used(&engine, "p", "K"), 0);
    let handle = engine.project("p").unwrap();
    handle.consume(LIMIT).unwrap();
    assert!(matches!(handle.consume(1), Err(Refusal::Exhausted { .. })));
    let keys = engine.keys("p").unwrap();
    assert_eq!((keys[0].status, keys[0].used), (KeyStatus::Active, LIMIT));
    // What a project used in all, across periods, is still there (never reset).
    assert_eq!(handle.lifetime_usage().unwrap().total_used, 2 * LIMIT);
    match engine.periods("nope") {
        Err(Error::InvalidArgument { field, reason }) => {
            assert_eq!(
                (field, reason.as_str()),
                ("key", "no key \"nope\" in this state")
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Overage and reset together: each day may use the limit plus the overage, and reports its
/// overage start once.
#[test]
fn each_period_has_its_own_overage() {
    let dir = tempfile::tempdir().unwrap();
    let options = at(dir.path(), T0);
    let clock = options.clock.clone();
    let engine = Engine::open_with(dir.path(), options).unwrap();
    engine.create_project("p").unwrap();
    let key = Key {
        overage_percent: Some(10),
        ..daily("K", LIMIT)
    };
    engine.add_key("p", key).unwrap();
    let overage = LIMIT / 10;
    assert_eq!(drain(&engine, "p"), LIMIT + overage);
    clock.set(tomorrow() + 1);
    let closed = engine.close_periods().unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].used, LIMIT + overage);
    assert_eq!(drain(&engine, "p"), LIMIT + overage);
    // Hot-path events reach the audit log through the dispatcher thread.
    await_that("two overage starts", || {
        count(&engine, |k| matches!(k, EventKind::OverageStarted { .. })) == 2
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        count(&engine, |k| matches!(k, EventKind::OverageStarted { .. })),
        2,
        "one overage start per period"
    );
}

/// A switch at the boundary: threads grind K to its limit while another thread closes the
/// period. Exactly one switch either way (before the reset: the pair stays on its reserve;
/// after: K's new day runs out first), and every byte granted is charged to K's days or R.
#[test]
fn a_switch_racing_the_reset_happens_once() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let options = at(dir.path(), T0);
        let clock = options.clock.clone();
        let engine = Engine::open_with(dir.path(), options).unwrap();
        engine.create_project("p").unwrap();
        engine.add_key("p", daily("K", LIMIT)).unwrap();
        engine.add_key("p", dv("R", RESERVE)).unwrap();
        // Most of the day is used; the last 4 MiB are ground down as the day ends.
        engine
            .project("p")
            .unwrap()
            .consume(LIMIT - (4 << 20))
            .unwrap();
        let granted: u64 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2).map(|_| s.spawn(|| drain(&engine, "p"))).collect();
            std::thread::sleep(std::time::Duration::from_micros(200 * round));
            clock.set(tomorrow() + 1);
            assert_eq!(engine.close_periods().unwrap().len(), 1);
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        let day_one = engine.periods("K").unwrap()[0].used;
        let keys = engine.keys("p").unwrap();
        let k = keys.iter().find(|k| k.key.id == "K").unwrap();
        let r = keys.iter().find(|k| k.key.id == "R").unwrap();
        assert_eq!(engine.usage("p").unwrap().switches, 1, "round {round}");
        assert_eq!(r.used, RESERVE, "round {round}: the reserve drained");
        assert_eq!(
            LIMIT - (4 << 20) + granted,
            day_one + k.used + r.used,
            "round {round}: granted == charged"
        );
        let switched = |k: &EventKind| matches!(k, EventKind::Switched { .. });
        await_that("the switch event", || count(&engine, switched) >= 1);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(count(&engine, switched), 1, "round {round}");
    }
}

/// Runs one statement on the catalog, as a licensee with a SQLite shell would.
fn catalog(dir: &Path, sql: &str) {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    db.execute(sql, []).unwrap();
}

fn tampered<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Tampered { reason }) => reason.to_string(),
        Err(other) => panic!("expected Tampered, got {other}"),
        Ok(_) => panic!("expected Tampered, got an engine"),
    }
}

/// The licensee's ways to make up a reset: more forgiven usage written into the hot account,
/// or closed usage raised in the catalog (on a key's row, or a period added). Each is refused
/// at open, and stays refused.
#[test]
fn forgiven_usage_made_up_in_the_state_is_refused() {
    type Edit = fn(&Path);
    let edits: [(&str, Edit, &str); 5] = [
        (
            "hot forgiven",
            |dir| {
                let at = account_offset(dir, "K") + 32;
                let hot = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("hot.tgs"))
                    .unwrap();
                hot.write_all_at(&(LIMIT * 3).to_le_bytes(), at).unwrap();
            },
            "the account of key \"K\" forgives 201326592 bytes of closed periods in hot.tgs but the closed periods in catalog.db used 67108864: the state was edited",
        ),
        (
            "catalog closed_used",
            |dir| catalog(dir, "UPDATE keys SET closed_used = closed_used * 2 WHERE id = 'K'"),
            "the usage periods of key \"K\" are daily from 1900022400, 134217728 bytes closed in catalog.db but checkpoint",
        ),
        (
            "catalog period start moved back a day, to close today again",
            |dir| catalog(dir, "UPDATE accounts SET period = period - 86400 WHERE key_id = 'K'"),
            "the usage periods of key \"K\" are daily from 1899936000, 67108864 bytes closed in catalog.db but checkpoint",
        ),
        (
            "catalog reset term changed",
            |dir| catalog(dir, "UPDATE accounts SET reset = 'weekly' WHERE key_id = 'K'"),
            "the usage periods of key \"K\" are weekly from 1900022400, 67108864 bytes closed in catalog.db but checkpoint",
        ),
        (
            "catalog period deleted",
            |dir| catalog(dir, "UPDATE accounts SET period = NULL WHERE key_id = 'K'"),
            // The hot account still forgives the closed day: found first.
            "the account of key \"K\" forgives 67108864 bytes of closed periods in hot.tgs but the closed periods in catalog.db used 0: the state was edited",
        ),
    ];
    for (name, edit, expected) in edits {
        let dir = tempfile::tempdir().unwrap();
        {
            let options = at(dir.path(), T0);
            let clock = options.clock.clone();
            let engine = Engine::open_with(dir.path(), options).unwrap();
            engine.create_project("p").unwrap();
            engine.add_key("p", daily("K", LIMIT)).unwrap();
            engine.project("p").unwrap().consume(LIMIT).unwrap();
            clock.set(tomorrow() + 1);
            assert_eq!(engine.close_periods().unwrap().len(), 1);
        }
        edit(dir.path());
        for _ in 0..2 {
            let reason = tampered(Engine::open_with(
                dir.path(),
                at(dir.path(), tomorrow() + 2),
            ));
            assert!(reason.starts_with(expected), "{name}: {reason}");
        }
    }
}

/// The same made-up reset before any period closed: the start of the first period moved back a
/// day while an engine runs. The close it would cause is refused (the start the key's first
/// ratchet recorded is not the catalog's), the day's usage stays, and so does the refusal.
#[test]
fn a_first_period_moved_back_is_refused_when_it_would_close() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path(), at(dir.path(), T0)).unwrap();
    engine.create_project("p").unwrap();
    engine.add_key("p", daily("K", LIMIT)).unwrap();
    engine.project("p").unwrap().consume(LIMIT).unwrap();
    catalog(
        dir.path(),
        "UPDATE accounts SET period = period - 86400 WHERE key_id = 'K'",
    );
    let reason = tampered(engine.close_periods());
    assert!(
        reason.starts_with("the usage periods of key \"K\" are daily from 1899936000, 67108864 bytes closed in catalog.db but checkpoint 2 recorded daily from 1899936000, 0 bytes closed"),
        "{reason}"
    );
    assert!(engine.periods("K").unwrap().is_empty());
    assert_eq!(period_used(&engine, "p", "K"), LIMIT);
    assert!(matches!(
        engine.project("p").unwrap().consume(1),
        Err(Refusal::Exhausted { .. })
    ));
    drop(engine);
    tampered(Engine::open_with(dir.path(), at(dir.path(), T0)));
}

/// A reset cut short after its catalog commit (a crash before the hot account was told): the
/// hot account's forgiven usage and period start are what they were before the close, as such
/// a crash leaves them. The next open completes the reset before any grant: the new day has
/// its whole limit, and nothing closes twice.
#[test]
fn a_reset_cut_short_after_its_commit_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let options = at(dir.path(), T0);
        let clock = options.clock.clone();
        let engine = Engine::open_with(dir.path(), options).unwrap();
        engine.create_project("p").unwrap();
        engine.add_key("p", daily("K", LIMIT)).unwrap();
        engine.project("p").unwrap().consume(LIMIT).unwrap();
        clock.set(tomorrow() + 1);
        assert_eq!(engine.close_periods().unwrap().len(), 1);
    }
    // Step 3 undone: forgiven (offset 32) back to 0, the period start (40) back to the day
    // before.
    let at_account = account_offset(dir.path(), "K");
    let hot = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("hot.tgs"))
        .unwrap();
    hot.write_all_at(&0u64.to_le_bytes(), at_account + 32)
        .unwrap();
    let yesterday = Period::Daily.start_of(i64::from(T0)) as u64;
    hot.write_all_at(&yesterday.to_le_bytes(), at_account + 40)
        .unwrap();
    drop(hot);
    let engine = Engine::open_with(dir.path(), at(dir.path(), tomorrow() + 2)).unwrap();
    assert_eq!(engine.periods("K").unwrap().len(), 1);
    let handle = engine.project("p").unwrap();
    handle.consume(LIMIT).unwrap();
    assert!(matches!(handle.consume(1), Err(Refusal::Exhausted { .. })));
    assert_eq!(closed_events(&engine).len(), 1, "closed once");
}
