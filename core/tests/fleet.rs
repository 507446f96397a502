//! Fleet mode against a real PostgreSQL server each test starts (the store crate's harness:
//! `initdb` into a temporary directory, a Unix socket there, no TCP): host processes, each with
//! its own state directory and host name, meter one project's Active and Reserved keys through
//! the fleet store; the server is stopped under them; a host is killed with SIGKILL and comes
//! back. Every test asserts exact totals: what the hosts granted (their pairs' usage, which
//! survives a kill in the mapped state) against what the store charged each key.
//!
//! Without PostgreSQL's server binaries the tests say so loudly and pass.
// Loom builds leave fleet mode out (see core/Cargo.toml).
#![cfg(not(loom))]

mod common;
#[allow(dead_code)]
mod fleet_common;

#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::time::{Duration, Instant};

use tollgate_core::{Engine, EventKind, Refusal};
use tollgate_store::Store;

use common::child_result;
use fleet_common::{
    drain, fleet_options, granted, open_host, spawn_host, store_used, Killed, ACTIVE, MIB, RESERVE,
};
use postgres::Server;

/// A child host (see `fleet_common::host_child`).
#[test]
#[ignore = "run as a child process by the fleet tests"]
fn fleet_host_child() {
    fleet_common::host_child();
}

/// Three host processes drain one project's Active and Reserved keys through the switch: each
/// key charged exactly its amount in the store, nothing leased or in doubt after the clean
/// closes, granted over the fleet == charged, and each host's pair switched exactly once.
#[test]
fn three_hosts_drain_both_keys_exactly() {
    let Some(server) = Server::start("three_hosts_drain_both_keys_exactly") else {
        return;
    };
    let params = server.params();
    Store::connect(&params).unwrap().migrate().unwrap();
    let amount = 24 * MIB;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| spawn_host(d.path(), &params, &format!("host-{i}"), amount, false))
        .collect();
    let total: u64 = children.into_iter().map(child_result).sum();
    assert_eq!(total, 2 * amount, "granted over the fleet");
    for key in [ACTIVE, RESERVE] {
        assert_eq!(
            store_used(&params, key),
            (amount, 0, 0),
            "{key}: used, leased, in doubt"
        );
    }
    let mut thresholds = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let engine = Engine::open_with(
            d.path(),
            fleet_options(d.path(), &params, &format!("host-{i}")),
        )
        .unwrap();
        let events = engine.events_after(0, 10_000).unwrap();
        let switches = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Switched { .. }))
            .count();
        assert_eq!(switches, 1, "host-{i} switched once");
        thresholds.extend(events.into_iter().filter_map(|e| match e.kind {
            EventKind::Threshold { key, percent } => Some((key, percent)),
            _ => None,
        }));
    }
    // Each threshold of each key once across the fleet, on whichever host's take reached it.
    thresholds.sort();
    let expected: Vec<(String, u8)> = [ACTIVE, RESERVE]
        .into_iter()
        .flat_map(|key| [80, 90, 100].map(|percent| (key.to_owned(), percent)))
        .collect();
    assert_eq!(thresholds, expected);
}

/// The server stopped under a host: it grants what it drew, then refuses `Unavailable` (never
/// an unmetered grant, never `Exhausted`: it cannot know); after a restart it resumes, and the
/// totals are exact.
#[test]
fn a_stopped_store_is_unavailable_and_totals_stay_exact_after_restart() {
    let Some(server) = Server::start("a_stopped_store_is_unavailable") else {
        return;
    };
    let params = server.params();
    Store::connect(&params).unwrap().migrate().unwrap();
    let amount = 16 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_host(dir.path(), &params, "solo", amount);
    let handle = engine.project("p").unwrap();
    // The first stock is a small draw: a larger grant waits for the thread to draw for it.
    let started = Instant::now();
    while let Err(e) = handle.consume(MIB) {
        assert!(matches!(e, Refusal::Unavailable), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10), "never drawn");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.stop_immediate();
    let stopped = Instant::now();
    let mut granted_while_down = 0;
    loop {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "never unavailable"
        );
        match handle.consume_partial(64 << 10) {
            Ok(n) => granted_while_down += n,
            Err(Refusal::Unavailable) => break,
            Err(e) => panic!("unexpected refusal while the store is down: {e}"),
        }
    }
    // What it granted while down was drawn before: the store had it as drawn.
    assert!(granted_while_down <= amount, "{granted_while_down}");
    assert!(matches!(handle.consume(1), Err(Refusal::Unavailable)));
    server.start_again();
    drain(&engine, Duration::from_secs(60));
    assert_eq!(granted(&engine), 2 * amount);
    drop(handle);
    drop(engine);
    for key in [ACTIVE, RESERVE] {
        assert_eq!(store_used(&params, key), (amount, 0, 0), "{key}");
    }
}

/// A host killed with SIGKILL mid-run: another host carries on; after the TTL the store
/// reclaims what the dead host never drew; when it restarts it settles its leases from its
/// ledger, and nothing is counted twice: over the fleet, granted == charged, exactly.
#[test]
fn a_killed_host_settles_when_it_comes_back() {
    let Some(server) = Server::start("a_killed_host_settles_when_it_comes_back") else {
        return;
    };
    let params = server.params();
    Store::connect(&params).unwrap().migrate().unwrap();
    let amount = 16 * MIB;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = Killed(spawn_host(a.path(), &params, "victim", amount, true));
    // Let it take and draw leases, then kill it mid-run.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "victim never leased"
        );
        let mut store = Store::connect(&params).unwrap();
        if store
            .list_leases()
            .unwrap()
            .iter()
            .any(|l| l.drawn > 0 && l.reported > 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    // After the TTL the store reclaims the victim's leases: what it never drew is free again,
    // what it drew and did not report is in doubt.
    let mut store = Store::connect(&params).unwrap();
    let started = Instant::now();
    let mut reclaimed = Vec::new();
    while reclaimed.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never reclaimed"
        );
        std::thread::sleep(Duration::from_millis(200));
        reclaimed = store.reclaim_expired().unwrap();
    }
    assert!(reclaimed.iter().all(|r| r.host == "victim"));
    let in_doubt: u64 = reclaimed.iter().map(|r| r.in_doubt).sum();
    assert_eq!(
        store_used(&params, ACTIVE).2 + store_used(&params, RESERVE).2,
        in_doubt
    );
    // The survivor drains what the store has free.
    let survivor = spawn_host(b.path(), &params, "survivor", amount, false);
    let survivor_granted = child_result(survivor);
    // The victim comes back: it settles its leases and drains whatever is left.
    let back = spawn_host(a.path(), &params, "victim", amount, false);
    let victim_granted = child_result(back);
    assert_eq!(
        survivor_granted + victim_granted,
        2 * amount,
        "granted over the fleet"
    );
    for key in [ACTIVE, RESERVE] {
        assert_eq!(store_used(&params, key), (amount, 0, 0), "{key}");
    }
}

/// A key whose usage resets daily meters each day on a store account of its own, with the
/// key's whole amount: two hosts drain the first day, the day passes (manual clocks), each
/// closes its period, and they drain the second day; each day's store account is charged
/// exactly the amount, nothing stays leased or in doubt after the closes.
#[test]
fn a_reset_key_meters_each_period_on_its_own_store_account() {
    use tollgate_core::{Clock, Period};
    let Some(server) = Server::start("a_reset_key_meters_each_period") else {
        return;
    };
    let params = server.params();
    let amount = 8 * MIB;
    // Noon of a day, so the next day starts 12 hours later.
    let day = Period::Daily.start_of(1_780_000_000);
    let noon = u32::try_from(day + 43_200).unwrap();
    let clocks = [Clock::manual(noon), Clock::manual(noon)];
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<Engine> = dirs
        .iter()
        .zip(&clocks)
        .enumerate()
        .map(|(i, (d, clock))| {
            let options = tollgate_core::Options {
                clock: clock.clone(),
                ..fleet_options(d.path(), &params, &format!("day-{i}"))
            };
            Engine::open_with(d.path(), options).unwrap()
        })
        .collect();
    hosts[0].create_project("p").unwrap();
    let key = tollgate_core::Key {
        reset: Some(Period::Daily),
        ..common::dv("DAILY", amount)
    };
    hosts[0].add_key("p", key).unwrap();
    let drain_day = || -> u64 {
        std::thread::scope(|scope| {
            let drains: Vec<_> = hosts
                .iter()
                .map(|host| {
                    scope.spawn(move || {
                        // The key reaches the other host through the admin log.
                        let started = Instant::now();
                        while host.keys("p").map_or(true, |keys| keys.is_empty()) {
                            assert!(started.elapsed() < Duration::from_secs(5));
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        let before = granted(host);
                        drain(host, Duration::from_secs(60));
                        granted(host) - before
                    })
                })
                .collect();
            drains.into_iter().map(|d| d.join().unwrap()).sum()
        })
    };
    assert_eq!(drain_day(), amount, "the first day");
    let next = u32::try_from(Period::Daily.next_after(day)).unwrap();
    for (host, clock) in hosts.iter().zip(&clocks) {
        clock.set(next + 60);
        assert_eq!(host.close_periods().unwrap().len(), 1);
    }
    assert_eq!(drain_day(), amount, "the second day");
    drop(hosts);
    for start in [day, Period::Daily.next_after(day)] {
        assert_eq!(
            store_used(&params, &format!("DAILY@{start}")),
            (amount, 0, 0),
            "day {start}: used, leased, in doubt"
        );
    }
}
