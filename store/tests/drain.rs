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
