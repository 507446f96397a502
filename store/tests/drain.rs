//! Many hosts drain one key through the store, as threads (each its own connection) and as
//! processes (this test binary started again as a worker): what the hosts report used is what
//! the account counts used, exactly its amount, and nothing stays leased.

#[allow(dead_code)]
mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use tollgate_store::{AccountKind, Error, LeaseState, LeaseTerms, Store};

const AMOUNT: u64 = 3_000_000;
const KEY: &str = "K-DRAIN";
const PARAMS_VAR: &str = "TOLLGATE_STORE_TEST_PARAMS";
const HOST_VAR: &str = "TOLLGATE_STORE_TEST_HOST";

/// One host's loop: take a block, draw it and report half, settle with all or three quarters
/// of it, until the account is empty and nothing is leased. Returns the bytes it used.
fn drain(params: &str, host: &str) -> u64 {
    let mut store = Store::connect(params).unwrap();
    store.register_host(host).unwrap();
    let mut used_total = 0;
    let mut round = 0u64;
    loop {
        round += 1;
        let want = 1_000 + round * 7_919 % 20_000;
        match store.take(host, KEY, want) {
            Ok(mut lease) => {
                let drawn = lease.granted;
                store.renew(&mut lease, 1, drawn / 2, drawn).unwrap();
                let used = if round.is_multiple_of(3) {
                    drawn - drawn / 4
                } else {
                    drawn
                };
                assert!(store.settle(lease.id, used).unwrap().applied);
                used_total += used;
            }
            Err(Error::Exhausted { .. }) => {
                let account = store.account(KEY).unwrap();
                if account.leased == 0 && account.free() == 0 {
                    return used_total;
                }
                // Others hold blocks whose unused parts may come back, or just gave some back.
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{host}: {e}"),
        }
    }
}

/// The worker a process runs: started by the test below, never by `cargo test` itself.
#[test]
#[ignore = "a worker process of threads_and_processes_drain_one_key_exactly"]
fn drain_worker() {
    let (Ok(params), Ok(host)) = (std::env::var(PARAMS_VAR), std::env::var(HOST_VAR)) else {
        return;
    };
    println!("drain-used {}", drain(&params, &host));
}

#[test]
fn threads_and_processes_drain_one_key_exactly() {
    let Some((_server, mut store)) = common::fleet("drain", LeaseTerms::default()) else {
        return;
    };
    store
        .create_account(KEY, AccountKind::Bytes, AMOUNT)
        .unwrap();
    let params = _server.params();
    let processes: Vec<_> = (0..2)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "drain_worker", "--ignored", "--nocapture"])
                .env(PARAMS_VAR, &params)
                .env(HOST_VAR, format!("process-{i}"))
                .spawn_piped()
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let params = params.clone();
            thread::spawn(move || drain(&params, &format!("thread-{i}")))
        })
        .collect();
    let mut reported: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    for process in processes {
        let output = process.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let used = stdout
            .lines()
            .find_map(|line| line.strip_prefix("drain-used "))
            .unwrap_or_else(|| panic!("no usage line: {stdout}"));
        reported += used.parse::<u64>().unwrap();
    }

    let account = store.account(KEY).unwrap();
    assert_eq!(reported, AMOUNT, "the hosts used exactly the amount");
    assert_eq!(
        account.used, AMOUNT,
        "the account counts what the hosts used"
    );
    assert_eq!(
        (account.leased, account.in_doubt, account.free()),
        (0, 0, 0)
    );
    let leases = store.list_leases().unwrap();
    assert!(leases.iter().all(|l| l.state == LeaseState::Settled));
    let settled: u64 = leases.iter().map(|l| l.settled.unwrap()).sum();
    assert_eq!(settled, AMOUNT);
    let hosts = store.hosts().unwrap();
    assert_eq!(hosts.len(), 6);
    assert!(
        hosts
            .iter()
            .all(|h| leases.iter().any(|l| l.host == h.name)),
        "every host took part: {hosts:?}"
    );
}

/// Starts a command with its standard output captured.
trait SpawnPiped {
    fn spawn_piped(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn spawn_piped(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).spawn().unwrap()
    }
}

/// Leases that live 40 ms, so hosts that dawdle see theirs reclaimed under them.
const BRIEF: LeaseTerms = LeaseTerms {
    ttl: Duration::from_millis(40),
    margin: Duration::from_millis(10),
};

/// One host that sometimes pauses past its lease's expiry: take, draw, grant three quarters of
/// the block if its deadline has not passed, pause 0..60 ms, settle from its ledger whether or
/// not the lease was reclaimed meanwhile. Returns what it granted.
fn dawdle(params: &str, host: &str, rounds: u64, seed: u64) -> u64 {
    let mut store = Store::connect_with(params, BRIEF).unwrap();
    store.register_host(host).unwrap();
    let mut random = seed;
    let mut granted_total = 0;
    for _ in 0..rounds {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut lease = store
            .take(host, KEY, 1_000 + (random >> 40) % 9_000)
            .unwrap();
        let (seq, block) = (lease.next_seq(), lease.granted);
        let granted = match store.renew(&mut lease, seq, 0, block) {
            Ok(_) if lease.is_live() => block - block / 4,
            Ok(_) | Err(Error::LeaseExpired(_) | Error::LeaseClosed { .. }) => 0,
            Err(e) => panic!("{host}: renew: {e}"),
        };
        thread::sleep(Duration::from_millis((random >> 20) % 60));
        let settled = store.settle(lease.id, granted).unwrap();
        assert!(settled.applied);
        granted_total += granted;
    }
    granted_total
}

#[test]
fn reclaimers_racing_hosts_keep_totals_exact() {
    let Some((server, mut store)) = common::fleet("reclaim_race", BRIEF) else {
        return;
    };
    store
        .create_account(KEY, AccountKind::Bytes, 1 << 40)
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reclaimers: Vec<_> = (0..2)
        .map(|_| {
            let (params, stop) = (server.params(), stop.clone());
            thread::spawn(move || {
                let mut store = Store::connect(&params).unwrap();
                let mut reclaimed = 0;
                // Relaxed: the flag orders nothing else; a late look only reclaims once more.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    reclaimed += store.reclaim_expired().unwrap().len();
                    thread::sleep(Duration::from_millis(5));
                }
                reclaimed
            })
        })
        .collect();
    let hosts: Vec<_> = (0..4)
        .map(|i| {
            let params = server.params();
            thread::spawn(move || dawdle(&params, &format!("host-{i}"), 60, i + 1))
        })
        .collect();
    let granted: u64 = hosts.into_iter().map(|h| h.join().unwrap()).sum();
    // Relaxed: see above.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reclaimed: usize = reclaimers.into_iter().map(|r| r.join().unwrap()).sum();
    // Every lease ends settled, so those reclaimed were settled late, from the host's ledger.
    assert!(reclaimed > 0, "some leases expired under their hosts");

    let account = store.account(KEY).unwrap();
    assert_eq!(account.used, granted, "what the hosts granted, once");
    assert_eq!((account.leased, account.in_doubt), (0, 0));
    assert_eq!(account.free(), (1 << 40) - granted);
    let leases = store.list_leases().unwrap();
    assert_eq!(leases.len(), 240);
    assert!(leases.iter().all(|l| l.state == LeaseState::Settled));
}
