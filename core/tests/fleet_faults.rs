//! Fleet mode under the faults (docs/fleet-store.md) that `fleet.rs` does not cover, against a real
//! PostgreSQL server each test starts (the store crate's harness): a host paused (SIGSTOP) past
//! its lease TTL, 20 ms of latency between a host and the store, and the host's connections
//! terminated by the server while it meters. Every test asserts exact totals from the store's
//! numbers; none asserts a speed.
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

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tollgate_store::{LeaseRecord, LeaseState, Store};

use common::child_result;
use fleet_common::{
    drain_with, fleet_options_with, granted, open_host, slow_drain, spawn_host, spawn_slow_host,
    store_used, Killed, ACTIVE, MIB, RESERVE,
};
use postgres::Server;

/// A child host (see `fleet_common::host_child`).
#[test]
#[ignore = "run as a child process by the fleet fault tests"]
fn fleet_host_child() {
    fleet_common::host_child();
}

/// A host paused (SIGSTOP) for longer than its lease TTL, its leases reclaimed and the rest of
/// the keys drained by another host before it resumes (SIGCONT).
///
/// What the engine guarantees: past its leases' deadline (measured on its monotonic clock,
/// before the store may reclaim them) the host leases nothing more from its stock to its
/// pairs; a pair grants only the rest of the block it held at the pause (at most 4 MiB), which
/// was drawn, and so held in doubt by the store, never leased again. The store refuses the old
/// leases' renewals (`LeaseExpired`): their `drawn` and `seq` stay as they were; the host then
/// withdraws its stock and settles each with what it granted of it, which resolves the doubt
/// exactly and frees the rest.
#[test]
fn a_host_paused_past_its_ttl_grants_nothing_more_from_its_stock() {
    let Some(server) = Server::start("a_host_paused_past_its_ttl") else {
        return;
    };
    let params = server.params();
    let mut store = Store::connect(&params).unwrap();
    store.migrate().unwrap();
    let amount = 64 * MIB;
    let ttl = Duration::from_secs(2);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut paused = Killed(spawn_slow_host(a.path(), &params, "paused", amount, ttl));
    let started = Instant::now();
    while !leases_of(&mut store, "paused")
        .iter()
        .any(|l| l.drawn > 0 && l.reported > 0)
    {
        assert!(started.elapsed() < Duration::from_secs(30), "never leased");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Metering for a while first: its blocks grow with its rate.
    std::thread::sleep(Duration::from_secs(1));
    let pid = libc::pid_t::try_from(paused.0.id()).unwrap();
    stop_outside_transaction(&server, pid);
    // What it granted before the pause, read from its mapped state by another process of the
    // host (which does not run its leases: the stopped one holds `fleet.lock`).
    let at_pause = {
        let options = fleet_options_with(a.path(), &params, "paused", ttl);
        granted(&tollgate_core::Engine::open_with(a.path(), options).unwrap())
    };
    let before = leases_of(&mut store, "paused");
    std::thread::sleep(ttl + Duration::from_secs(1));
    let started = Instant::now();
    let mut reclaimed = Vec::new();
    while reclaimed.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never reclaimed"
        );
        reclaimed = store.reclaim_expired().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reclaimed.iter().all(|r| r.host == "paused"));
    let in_doubt: u64 = reclaimed.iter().map(|r| r.in_doubt).sum();
    assert_eq!(
        store_used(&params, ACTIVE).2 + store_used(&params, RESERVE).2,
        in_doubt,
        "the paused host's drawn and unreported part is in doubt"
    );
    let survivor_granted = child_result(spawn_host(b.path(), &params, "survivor", amount, false));
    signal(pid, libc::SIGCONT);
    let paused_granted = paused.result();

    let after = leases_of(&mut store, "paused");
    assert_eq!(
        after[..before.len()]
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        before.iter().map(|l| l.id).collect::<Vec<_>>(),
    );
    for (then, now) in before.iter().zip(&after) {
        let id = then.id.0;
        assert_eq!(now.drawn, then.drawn, "lease {id}: drawn after the pause");
        assert_eq!(now.seq, then.seq, "lease {id}: renewed after the pause");
        assert_eq!(now.state, LeaseState::Settled, "lease {id}");
        assert!(now.settled.unwrap() <= then.drawn, "lease {id}: {now:?}");
    }
    // It settled the expired leases with what it had granted of them; what it had not (its
    // withdrawn stock) became free again, and it may have leased that anew: new leases, settled
    // at its close like any other.
    for lease in &after[before.len()..] {
        assert_eq!(lease.state, LeaseState::Settled, "{lease:?}");
    }
    let settled: u64 = after.iter().map(|l| l.settled.unwrap()).sum();
    assert_eq!(
        paused_granted, settled,
        "the paused host granted what it settled"
    );
    let mut used = 0;
    for key in [ACTIVE, RESERVE] {
        let account = store.account(key).unwrap();
        assert_eq!(
            account.used + account.leased + account.in_doubt + account.written_off + account.free(),
            amount,
            "{key}: {account:?}"
        );
        assert_eq!((account.leased, account.in_doubt), (0, 0), "{key}");
        used += account.used;
    }
    assert_eq!(
        paused_granted + survivor_granted,
        used,
        "granted over the fleet"
    );
    // Past its leases' deadline it takes nothing more from its stock: what it granted of the
    // old leases after the pause is the rest of the block its pair held then (a pair leases at
    // most 4 MiB of a fleet stock at a time). New leases, of what it freed, are its own.
    let old_settled: u64 = after[..before.len()]
        .iter()
        .map(|l| l.settled.unwrap())
        .sum();
    let after_pause = old_settled - at_pause;
    assert!(
        after_pause <= 4 * MIB,
        "granted {after_pause} of the old leases after the pause"
    );
    let reported: u64 = before.iter().map(|l| l.reported).sum();
    println!(
        "paused host: reported {reported} before the pause, {in_doubt} in doubt, \
         granted {paused_granted} in all, {after_pause} of the old leases after the pause; survivor \
         granted {survivor_granted}"
    );
}

/// Stops process `pid` at a moment none of its connections is inside a transaction: a host
/// stopped mid-transaction holds its rows locked, and `reclaim_expired` would wait on them
/// until it resumed.
fn stop_outside_transaction(server: &Server, pid: libc::pid_t) {
    let busy = "SELECT count(*) FROM pg_stat_activity \
                WHERE pid <> pg_backend_pid() AND datname = 'postgres' AND state <> 'idle'";
    for _ in 0..100 {
        signal(pid, libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(50));
        let out = server.client("psql", &["-At", "-d", "postgres", "-c", busy]);
        if String::from_utf8_lossy(&out.stdout).trim() == "0" {
            return;
        }
        signal(pid, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(7));
    }
    panic!("the host was inside a transaction at every stop");
}

fn signal(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; `pid` is our own child, not yet waited for.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// Host `host`'s leases, oldest first.
fn leases_of(store: &mut Store, host: &str) -> Vec<LeaseRecord> {
    let mut leases = store.list_leases().unwrap();
    leases.retain(|l| l.host == host);
    leases
}

/// A host 20 ms (each way) from its store, through a delaying proxy: it drains both keys
/// exactly, retrying the grants refused `Unavailable` while its thread waits on the store.
/// Prints the grants' latency percentiles; asserts no speed.
#[test]
fn a_host_20ms_from_its_store_drains_exactly() {
    let Some(server) = Server::start_with_tcp("a_host_20ms_from_its_store") else {
        return;
    };
    Store::connect(&server.params()).unwrap().migrate().unwrap();
    let proxy = delaying_proxy(server.tcp_port(), Duration::from_millis(20));
    let far = format!("host=127.0.0.1 port={proxy} user=postgres dbname=postgres");
    let amount = 4 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_host(dir.path(), &far, "far", amount);
    let mut latencies = Vec::new();
    let unavailable = drain_with(&engine, Duration::from_secs(45), |took| {
        latencies.push(took.as_nanos());
    });
    assert_eq!(granted(&engine), 2 * amount, "granted");
    assert!(unavailable > 0, "no grant waited for the store");
    drop(engine);
    for key in [ACTIVE, RESERVE] {
        assert_eq!(
            store_used(&server.params(), key),
            (amount, 0, 0),
            "{key}: used, leased, in doubt"
        );
    }
    latencies.sort_unstable();
    let at = |q: usize| latencies[(latencies.len() - 1) * q / 100];
    println!(
        "consume through a 20 ms proxy: {} calls ({unavailable} unavailable), p50 {} ns, p99 {} ns",
        latencies.len(),
        at(50),
        at(99)
    );
}

/// A proxy on a free port of 127.0.0.1 to `target`, each chunk read from either side written
/// to the other `delay` later (the chunks of one direction stay in order); returns its port.
fn delaying_proxy(target: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for stream in [&client, &server] {
                stream.set_nodelay(true).unwrap();
            }
            delay_line(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                delay,
            );
            delay_line(server, client, delay);
        }
    });
    port
}

/// Forwards what `from` sends to `to`, each chunk `delay` after it arrived.
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 << 10];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if chunks
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for (at, chunk) in due {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The server terminates the host's connections again and again while it meters
/// (`pg_terminate_backend`): the host reconnects, and the totals are exact: granted ==
/// charged, and nothing leased or in doubt after its clean close.
#[test]
fn terminated_connections_leave_totals_exact() {
    let Some(server) = Server::start("terminated_connections_leave_totals_exact") else {
        return;
    };
    let params = server.params();
    Store::connect(&params).unwrap().migrate().unwrap();
    let amount = 16 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_host(dir.path(), &params, "solo", amount);
    let done = AtomicBool::new(false);
    let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE pid <> pg_backend_pid() AND datname = 'postgres'";
    let mut terminated = 0;
    std::thread::scope(|scope| {
        let meter = scope.spawn(|| {
            slow_drain(&engine, Duration::from_secs(45));
            // Relaxed: a flag read by one loop; the join below orders everything else.
            done.store(true, Ordering::Relaxed);
        });
        while !done.load(Ordering::Relaxed) {
            let out = server.client("psql", &["-At", "-d", "postgres", "-c", terminate]);
            terminated += String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| *l == "t")
                .count();
            std::thread::sleep(Duration::from_millis(250));
        }
        meter.join().unwrap();
    });
    assert!(terminated > 0, "no connection was terminated");
    assert_eq!(granted(&engine), 2 * amount, "granted");
    drop(engine);
    for key in [ACTIVE, RESERVE] {
        assert_eq!(
            store_used(&params, key),
            (amount, 0, 0),
            "{key}: used, leased, in doubt"
        );
    }
    println!("terminated {terminated} backends while the host metered");
}

/// A host that closes cleanly before its keys run out: the store charges it exactly what it
/// granted plus the one block its pair still holds unused (at most 4 MiB, the host's to grant
/// when it opens again), and nothing stays leased or in doubt (8 s of 64 KiB grants at full
/// speed on a key of the maximum limit). Before a pair's block from a fleet stock was capped,
/// that block was the whole stock: 1.90 TB charged for 1.54 TB granted in one run.
#[test]
fn a_clean_close_mid_key_charges_what_was_granted() {
    let Some(server) = Server::start("a_clean_close_mid_key") else {
        return;
    };
    let params = server.params();
    Store::connect(&params).unwrap().migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = open_host(dir.path(), &params, "solo", tollgate_core::MAX_LIMIT_BYTES);
    let handle = engine.project("p").unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let _ = handle.consume_partial(64 << 10);
    }
    let granted = granted(&engine);
    drop(handle);
    drop(engine);
    let (used, leased, in_doubt) = store_used(&params, ACTIVE);
    assert_eq!((leased, in_doubt), (0, 0), "settled at the close");
    assert!(
        used >= granted && used - granted <= 4 << 20,
        "charged {used}, granted {granted}"
    );
}
