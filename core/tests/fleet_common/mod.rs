//! What the fleet tests share (`fleet.rs`, `fleet_faults.rs`): the project every host meters,
//! the host child process, and the store's view of a key. Each test binary declares `mod
//! common;` and `mod fleet_common;`, and runs [`host_child`] from its own ignored test
//! `fleet_host_child`, which [`spawn_host`] re-runs this binary for.

use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_core::{Engine, Error, FleetConfig, Options, Refusal};
use tollgate_store::Store;

use crate::common::{self, child_env, dv, spawn_child};

pub const MIB: u64 = 1 << 20;

/// The keys every host holds: the same documents, so the same store accounts.
pub const ACTIVE: &str = "FLEET-A";
pub const RESERVE: &str = "FLEET-R";

/// The lease TTL of a host unless a test asks for another.
const TTL: Duration = Duration::from_secs(3);

pub fn fleet_options(dir: &Path, params: &str, host: &str) -> Options {
    fleet_options_with(dir, params, host, TTL)
}

pub fn fleet_options_with(dir: &Path, params: &str, host: &str, lease_ttl: Duration) -> Options {
    Options {
        fleet: Some(FleetConfig {
            lease_ttl,
            ..FleetConfig::new(params, host)
        }),
        ..common::options(dir)
    }
}

/// Opens host `host`'s state at `dir`, creating project `p` with both keys on first use.
pub fn open_host(dir: &Path, params: &str, host: &str, amount: u64) -> Engine {
    open_host_with(dir, params, host, amount, TTL)
}

pub fn open_host_with(
    dir: &Path,
    params: &str,
    host: &str,
    amount: u64,
    lease_ttl: Duration,
) -> Engine {
    let options = fleet_options_with(dir, params, host, lease_ttl);
    let engine = Engine::open_with(dir, options).unwrap();
    // Through the fleet's admin log unless a host already did: hosts starting together may
    // each try, and the later changes are refused as the rules refuse them on one host.
    let already = |result: Result<(), Error>| match result {
        Ok(()) | Err(Error::ProjectExists { .. } | Error::DuplicateKey { .. }) => {}
        Err(Error::ReserveOccupied { .. }) => {}
        Err(e) => panic!("{e}"),
    };
    already(engine.create_project("p"));
    already(engine.add_key("p", dv(ACTIVE, amount)).map(drop));
    already(engine.add_reserve("p", dv(RESERVE, amount)).map(drop));
    engine
}

/// What project `p` of an engine granted in all: its pair's usage of both keys.
pub fn granted(engine: &Engine) -> u64 {
    common::charged(engine, "p")
}

/// Grants in 64 KiB requests (taking what remains of the last) until the keys are exhausted,
/// waiting out `Unavailable`; returns how many grants were refused as unavailable.
pub fn drain(engine: &Engine, deadline: Duration) -> u64 {
    drain_with(engine, deadline, |_| {})
}

/// [`drain`], calling `timed` with how long each grant or refusal took.
pub fn drain_with(engine: &Engine, deadline: Duration, mut timed: impl FnMut(Duration)) -> u64 {
    paced_drain(engine, deadline, 64 << 10, Duration::ZERO, &mut timed)
}

/// Grants `request` bytes at a time, sleeping `pause` after each grant, until the keys are
/// exhausted; waits out `Unavailable` and returns how many grants it refused.
fn paced_drain(
    engine: &Engine,
    deadline: Duration,
    request: u64,
    pause: Duration,
    timed: &mut dyn FnMut(Duration),
) -> u64 {
    let handle = engine.project("p").unwrap();
    let started = Instant::now();
    let mut unavailable = 0;
    loop {
        assert!(
            started.elapsed() < deadline,
            "did not drain in {deadline:?}"
        );
        let call = Instant::now();
        let result = handle.consume_partial(request);
        timed(call.elapsed());
        match result {
            Ok(_) => std::thread::sleep(pause),
            Err(Refusal::Exhausted { .. }) => return unavailable,
            Err(Refusal::Unavailable) => {
                unavailable += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
}

/// A host that grants about 16 KiB every millisecond (far slower than a drain: it holds its
/// leases for seconds) until the keys are exhausted.
pub fn slow_drain(engine: &Engine, deadline: Duration) -> u64 {
    paced_drain(
        engine,
        deadline,
        16 << 10,
        Duration::from_millis(1),
        &mut |_| {},
    )
}

/// The store's `used` of key `key`, and whether nothing of it is leased or in doubt.
pub fn store_used(params: &str, key: &str) -> (u64, u64, u64) {
    let mut store = Store::connect(params).unwrap();
    let account = store.account(key).unwrap();
    (account.used, account.leased, account.in_doubt)
}

/// A child host, run by each binary's ignored test `fleet_host_child`: drains (or, killed by
/// its parent, meters forever; or meters slowly), prints what it granted, closes (which
/// settles).
pub fn host_child() {
    let (Some(dir), Some(params), Some(host), Some(amount)) = (
        child_env("FLEET_DIR"),
        child_env("FLEET_PARAMS"),
        child_env("FLEET_HOST"),
        child_env("FLEET_AMOUNT"),
    ) else {
        return;
    };
    let ttl =
        child_env("FLEET_TTL_MS").map_or(TTL, |ms| Duration::from_millis(ms.parse().unwrap()));
    let engine = open_host_with(
        Path::new(&dir),
        &params,
        &host,
        amount.parse().unwrap(),
        ttl,
    );
    if child_env("FLEET_FOREVER").is_some() {
        // Killed by the parent mid-run. About 1 MB/s: slow enough that a lease outlives its
        // first renewal (a third of the TTL), so the store sees usage reported before the kill.
        // A faster host takes leases of at most an eighth of what is free (2 MiB of a 16 MiB
        // key) and uses each up before any renewal, so reports nothing before settling, and
        // drains both keys in a second or two, leaving nothing open to kill.
        let handle = engine.project("p").unwrap();
        loop {
            let _ = handle.consume_partial(4 << 10);
            std::thread::sleep(Duration::from_millis(4));
        }
    }
    if child_env("FLEET_SLOW").is_some() {
        slow_drain(&engine, Duration::from_secs(120));
    } else {
        drain(&engine, Duration::from_secs(120));
    }
    println!("RESULT {}", granted(&engine));
}

pub fn spawn_host(
    dir: &Path,
    params: &str,
    host: &str,
    amount: u64,
    forever: bool,
) -> std::process::Child {
    let mut env = vec![];
    if forever {
        env.push(("FLEET_FOREVER", "1".into()));
    }
    spawn_host_with(dir, params, host, amount, env)
}

/// A child host that meters slowly ([`slow_drain`]) with leases of `ttl`.
pub fn spawn_slow_host(
    dir: &Path,
    params: &str,
    host: &str,
    amount: u64,
    ttl: Duration,
) -> std::process::Child {
    let env = vec![
        ("FLEET_SLOW", "1".into()),
        ("FLEET_TTL_MS", ttl.as_millis().to_string()),
    ];
    spawn_host_with(dir, params, host, amount, env)
}

fn spawn_host_with(
    dir: &Path,
    params: &str,
    host: &str,
    amount: u64,
    mut env: Vec<(&str, String)>,
) -> std::process::Child {
    env.extend([
        ("FLEET_DIR", dir.display().to_string()),
        ("FLEET_PARAMS", params.to_owned()),
        ("FLEET_HOST", host.to_owned()),
        ("FLEET_AMOUNT", amount.to_string()),
    ]);
    spawn_child("fleet_host_child", &env)
}

/// A child killed when the test ends, however it ends.
pub struct Killed(pub std::process::Child);

impl Killed {
    /// Waits for the child to end and returns its `RESULT`.
    pub fn result(&mut self) -> u64 {
        let mut stdout = String::new();
        let pipe = self.0.stdout.as_mut().expect("spawned with stdout piped");
        std::io::Read::read_to_string(pipe, &mut stdout).unwrap();
        let status = self.0.wait().unwrap();
        assert!(status.success(), "child failed: {status:?}");
        common::result_line(&stdout)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
