//! rules R34, R35 and R10–R14 in docs/rules.md over reopen: usage survives, damaged state is
//! refused and left untouched, expiry switches at the next call, and events reach the audit log.

mod common;

use std::time::Duration;

use common::{dv, expiring};
use tollgate_core::{
    Clock, Engine, Error, EventKind, Options, Refusal, RefusalReason, SwitchReason,
};

fn open_manual(dir: &std::path::Path, clock: &Clock) -> Engine {
    Engine::open_with(
        dir,
        Options {
            clock: clock.clone(),
            ..common::options(dir)
        },
    )
    .unwrap()
}

#[test]
fn usage_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = common::open(dir.path()).unwrap();
        engine.create_project("P").unwrap();
        engine.add_key("P", dv("A", 1000)).unwrap();
        engine.add_key("P", dv("R", 1000)).unwrap();
        engine.project("P").unwrap().consume(1500).unwrap();
        engine.flush().unwrap();
    }
    let engine = common::open(dir.path()).unwrap();
    let usage = engine.usage("P").unwrap();
    assert_eq!((usage.active_used, usage.switches), (500, 1));
    assert_eq!(common::charged(&engine, "P"), 1500);
}

#[test]
fn damaged_state_is_refused_and_untouched() {
    type Damage = fn(&std::path::Path);
    let cases: Vec<(&str, Damage)> = vec![
        ("hot file truncated", |d| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("hot.tgs"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 1).unwrap();
        }),
        ("hot file header flipped", |d| {
            let mut bytes = std::fs::read(d.join("hot.tgs")).unwrap();
            bytes[16] ^= 1;
            std::fs::write(d.join("hot.tgs"), bytes).unwrap();
        }),
        ("hot file replaced by zeros", |d| {
            let len = std::fs::metadata(d.join("hot.tgs")).unwrap().len();
            std::fs::write(d.join("hot.tgs"), vec![0u8; len as usize]).unwrap();
        }),
        ("hot file missing", |d| {
            std::fs::remove_file(d.join("hot.tgs")).unwrap()
        }),
        ("catalog missing", |d| {
            std::fs::remove_file(d.join("catalog.db")).unwrap()
        }),
        ("catalog is garbage", |d| {
            std::fs::write(d.join("catalog.db"), b"definitely not sqlite".repeat(300)).unwrap()
        }),
        ("record cursor beyond its keys", |d| {
            let mut bytes = std::fs::read(d.join("hot.tgs")).unwrap();
            // Record 0 starts after the 4 KiB header; its first word is the cursor.
            bytes[4096..4104].copy_from_slice(&(1u64 << 40).to_le_bytes());
            std::fs::write(d.join("hot.tgs"), bytes).unwrap();
        }),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = common::open(dir.path()).unwrap();
            engine.create_project("P").unwrap();
            engine.add_key("P", dv("A", 1000)).unwrap();
        }
        for wal in ["catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(wal));
        }
        damage(dir.path());
        let before: Vec<_> = ["hot.tgs", "catalog.db"]
            .map(|f| std::fs::read(dir.path().join(f)).ok())
            .into();
        match common::open(dir.path()) {
            Err(Error::CorruptState { reason, .. }) => {
                assert!(!reason.to_string().is_empty(), "{name}")
            }
            Err(other) => panic!("{name}: expected CorruptState, got {other:?}"),
            Ok(_) => panic!("{name}: damaged state was accepted"),
        }
        let after: Vec<_> = ["hot.tgs", "catalog.db"]
            .map(|f| std::fs::read(dir.path().join(f)).ok())
            .into();
        assert!(before == after, "{name}: open modified the damaged state");
    }
}

#[test]
fn expired_active_key_switches_at_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(1_000_000);
    let engine = open_manual(dir.path(), &clock);
    engine.create_project("P").unwrap();
    engine
        .add_key("P", expiring(dv("A", 1000), 1_000_100))
        .unwrap();
    engine
        .add_key("P", expiring(dv("R", 1000), 1_000_200))
        .unwrap();
    let events = engine.subscribe(64);
    let p = engine.project("P").unwrap();
    p.consume(300).unwrap();
    clock.set(1_000_100);
    p.consume(10).unwrap();
    let usage = p.usage();
    assert_eq!(
        (usage.active_used, usage.active_limit, usage.switches),
        (10, 1000, 1)
    );
    clock.set(1_000_200);
    assert!(matches!(p.consume(1), Err(Refusal::Expired)));
    assert!(matches!(p.consume_partial(1), Err(Refusal::Expired)));
    let kinds: Vec<_> = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(2)))
        .take(2)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Switched {
                from: "A".into(),
                to: "R".into(),
                reason: SwitchReason::Expired
            },
            EventKind::Refused {
                reason: RefusalReason::Expired
            }
        ]
    );
    let keys = engine.keys("P").unwrap();
    let used: Vec<_> = keys.iter().map(|k| (k.key.id.as_str(), k.used)).collect();
    assert_eq!(used, vec![("A", 300), ("R", 10)]);
}

#[test]
fn audit_log_records_every_kind_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = common::open(dir.path()).unwrap();
        engine.create_project("P").unwrap();
        engine.add_key("P", dv("A", 100)).unwrap();
        engine.add_key("P", dv("R", 100)).unwrap();
        let p = engine.project("P").unwrap();
        p.consume(200).unwrap();
        assert!(p.consume(1).is_err());
    }
    let engine = common::open(dir.path()).unwrap();
    let events = engine.events_after(0, 100).unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::to_value(&e.kind).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(&kinds[..3], ["project_created", "key_added", "key_added"]);
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("switched"), 1);
    assert_eq!(count("threshold"), 6);
    assert_eq!(count("refused"), 1);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        engine.events_after(events[2].seq, 1).unwrap()[0].seq,
        events[3].seq
    );
}

#[test]
fn background_flush_runs_and_stops_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(
        dir.path(),
        Options {
            flush_interval: Some(Duration::from_millis(10)),
            ..common::options(dir.path())
        },
    )
    .unwrap();
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 100)).unwrap();
    engine.project("P").unwrap().consume(5).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(engine);
    assert_eq!(
        common::open(dir.path())
            .unwrap()
            .usage("P")
            .unwrap()
            .active_used,
        5
    );
}

#[test]
fn event_positions_beyond_the_log_return_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path()).unwrap();
    engine.create_project("P").unwrap();
    let events = engine.events_after(0, usize::MAX).unwrap();
    assert_eq!(events.len(), 1);
    assert!(engine.events_after(u64::MAX, 10).unwrap().is_empty());
    assert!(engine.events_after(events[0].seq, 10).unwrap().is_empty());
}
