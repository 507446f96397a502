//! Fleet mode against a PostgreSQL server this program starts (the store crate's test harness:
//! `initdb` into a temporary directory), in one run:
//!
//! 1. `consume(1)` ns per call, a fleet engine against an embedded one, five rounds each,
//!    alternating, medians and ratio;
//! 2. lease transactions per second (takes, renewals and draws, settlements: counted from the
//!    store's lease rows) of one host, then of three hosts at once, each draining at full speed
//!    for a fixed time;
//! 3. the quota a host killed with SIGKILL strands: in doubt once the store reclaims its
//!    leases, in bytes and as a share of the key;
//! 4. the time from an admin change (a project created on one host) to every one of three hosts
//!    seeing it, over [`ADMIN_CHANGES`] changes: median and slowest.
//!
//! ```sh
//! cargo build --release -p tollgate-bench --example fleet_bench
//! target/release/examples/fleet_bench [CALLS_PER_ROUND]   # default 20 million
//! ```
//!
//! The hosts of 2 and 3 are this program run again as `fleet_bench host …`.

#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_bench::fixture::{self, BenchResult, Keys};
use tollgate_core::{Engine, Error, FleetConfig, Options, Refusal, MAX_LIMIT_BYTES};
use tollgate_store::{LeaseState, Store};

const ROUNDS: usize = 5;
const GIB: u64 = 1 << 30;
/// How long each host drains in the lease-transaction runs.
const DRAIN: Duration = Duration::from_secs(10);
/// The lease TTL of the host killed in the stranded-quota run (the default is 60 s).
const KILLED_TTL: Duration = Duration::from_secs(5);
/// How many admin changes the propagation run times.
const ADMIN_CHANGES: usize = 20;

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("host") {
        return host(&args[2..]);
    }
    let calls: u64 = args.get(1).map_or(Ok(20_000_000), |n| n.parse())?;
    let Some(server) = postgres::Server::start("fleet_bench") else {
        return Err("PostgreSQL's server binaries are not installed".into());
    };
    let params = server.params();
    Store::connect(&params)?.migrate()?;

    let (fleet, embedded, unavailable) = consume_rounds(&params, calls)?;
    println!("consume(1), {calls} calls per round, median of {ROUNDS} rounds (worst round):");
    println!(
        "  embedded {:.2} ns/call ({:.2}); fleet {:.2} ns/call ({:.2}); fleet/embedded {:.3}; \
         fleet refusals retried in the rounds: {unavailable}",
        median(&embedded),
        worst(&embedded),
        median(&fleet),
        worst(&fleet),
        median(&fleet) / median(&embedded)
    );

    let one = lease_run(&params, "ONE", 1)?;
    let three = lease_run(&params, "THREE", 3)?;
    println!(
        "lease transactions, hosts draining 64 KiB grants at full speed for {} s:",
        DRAIN.as_secs()
    );
    for (hosts, run) in [(1, &one), (3, &three)] {
        println!(
            "  {hosts} host(s): {:.1}/s in all, {:.1}/s per host ({} takes, {} renewals, \
             {} settlements); granted {:.2} GiB/s in all, charged {:+.3} % of it, largest \
             block {:.1} GiB",
            run.per_second(),
            run.per_second() / hosts as f64,
            run.takes,
            run.renewals,
            run.settles,
            run.granted as f64 / GIB as f64 / DRAIN.as_secs_f64(),
            (run.charged as f64 - run.granted as f64) * 100.0 / run.granted as f64,
            run.largest_block as f64 / GIB as f64
        );
    }

    let stranded = stranded(&params)?;
    println!(
        "stranded by a host killed after {} s at {} MiB/s (lease TTL {} s), key of {} GiB:",
        stranded.after.as_secs(),
        stranded.rate >> 20,
        KILLED_TTL.as_secs(),
        stranded.amount / GIB
    );
    println!(
        "  {} bytes in doubt ({:.2} MiB, {:.3} % of the key, {:.2} s of its traffic)",
        stranded.in_doubt,
        stranded.in_doubt as f64 / (1 << 20) as f64,
        stranded.in_doubt as f64 * 100.0 / stranded.amount as f64,
        stranded.in_doubt as f64 / stranded.rate as f64
    );
    let mut seen = admin_propagation(&params)?;
    seen.sort_by(f64::total_cmp);
    println!(
        "admin change to every one of 3 hosts seeing it, {ADMIN_CHANGES} changes: median \
         {:.1} ms, slowest {:.1} ms",
        seen[seen.len() / 2],
        seen[seen.len() - 1]
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "fleet",
            "calls_per_round": calls,
            "consume_ns": {"embedded": embedded, "fleet": fleet,
                           "ratio": median(&fleet) / median(&embedded)},
            "granted_charged": {"one_host": [one.granted, one.charged],
                                "three_hosts": [three.granted, three.charged]},
            "lease_tx_per_s": {"one_host": one.per_second(),
                               "three_hosts": three.per_second(),
                               "three_hosts_per_host": three.per_second() / 3.0},
            "stranded": {"in_doubt": stranded.in_doubt, "amount": stranded.amount,
                         "rate": stranded.rate},
            "admin_seen_ms": seen,
        })
    );
    Ok(())
}

/// Three hosts of this process; host 0 creates [`ADMIN_CHANGES`] projects, one at a time, and
/// each is timed from the call's return until all three hosts list it (looked at every 100 µs):
/// milliseconds per change. The call itself returns once its host applied it.
fn admin_propagation(params: &str) -> BenchResult<Vec<f64>> {
    let dirs = (0..3)
        .map(|_| fixture::disk_dir())
        .collect::<Result<Vec<_>, _>>()?;
    let hosts = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let options = fleet_options(dir.path(), params, &format!("admin{i}"), KILLED_TTL);
            Engine::open_with(dir.path(), options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = Vec::with_capacity(ADMIN_CHANGES);
    for i in 0..ADMIN_CHANGES {
        let name = format!("admin-{i}");
        hosts[0].create_project(&name)?;
        let started = Instant::now();
        for host in &hosts {
            while !host.projects()?.contains(&name) {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err(format!("{name} not seen by every host in 10 s").into());
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        seen.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(seen)
}

/// A fleet host's options: `host` in the fleet store at `params`.
fn fleet_options(dir: &Path, params: &str, host: &str, ttl: Duration) -> Options {
    Options {
        fleet: Some(FleetConfig {
            lease_ttl: ttl,
            ..FleetConfig::new(params, host)
        }),
        ..fixture::options(dir)
    }
}

/// Alternating rounds of `calls` × `consume(1)` on an embedded and a fleet engine, each with
/// one project of an Active and a Reserved key of the maximum limit; ns per call of each
/// round, and how many fleet grants were refused `Unavailable` (and retried).
fn consume_rounds(params: &str, calls: u64) -> BenchResult<(Vec<f64>, Vec<f64>, u64)> {
    let embedded_dir = fixture::disk_dir()?;
    let embedded = fixture::open(embedded_dir.path(), 1)?;
    fixture::populate(&embedded, 1, Keys::ActiveAndReserve)?;
    let fleet_dir = fixture::disk_dir()?;
    let options = fleet_options(fleet_dir.path(), params, "consume", Duration::from_secs(60));
    let fleet = Engine::open_with(fleet_dir.path(), options)?;
    fixture::populate(&fleet, 1, Keys::ActiveAndReserve)?;
    let embedded = embedded.project(&fixture::project_name(0))?;
    let fleet = fleet.project(&fixture::project_name(0))?;
    // Warm-up: the fleet thread learns the rate and sizes its draws for it.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(3) {
        for _ in 0..100_000 {
            let _ = fleet.consume(1);
            embedded.consume(1)?;
        }
    }
    let mut unavailable = 0;
    let (mut fleet_ns, mut embedded_ns) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..calls {
            embedded.consume(1)?;
        }
        embedded_ns.push(started.elapsed().as_nanos() as f64 / calls as f64);
        let started = Instant::now();
        for _ in 0..calls {
            while let Err(e) = fleet.consume(1) {
                assert!(matches!(e, Refusal::Unavailable), "{e}");
                unavailable += 1;
            }
        }
        fleet_ns.push(started.elapsed().as_nanos() as f64 / calls as f64);
    }
    Ok((fleet_ns, embedded_ns, unavailable))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn worst(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MIN, f64::max)
}

/// The lease transactions of one run, from the store's lease rows of its keys.
struct LeaseRun {
    takes: u64,
    renewals: u64,
    settles: u64,
    granted: u64,
    largest_block: u64,
    /// What the store charged the keys: should be `granted` (see BENCHMARKS.md).
    charged: u64,
}

impl LeaseRun {
    fn per_second(&self) -> f64 {
        (self.takes + self.renewals + self.settles) as f64 / DRAIN.as_secs_f64()
    }
}

/// `hosts` host processes drain keys `{prefix}-A` and `{prefix}-R` at full speed for
/// [`DRAIN`] and close.
fn lease_run(params: &str, prefix: &str, hosts: usize) -> BenchResult<LeaseRun> {
    let dirs = (0..hosts)
        .map(|_| fixture::disk_dir())
        .collect::<BenchResult<Vec<_>>>()?;
    let children: Vec<Child> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let name = format!("{prefix}-{i}");
            spawn_host(dir.path(), params, &name, prefix, MAX_LIMIT_BYTES, 0, DRAIN)
        })
        .collect::<BenchResult<_>>()?;
    let mut granted = 0;
    for child in children {
        granted += host_result(child)?;
    }
    let mut store = Store::connect(params)?;
    let mut run = LeaseRun {
        takes: 0,
        renewals: 0,
        settles: 0,
        granted,
        largest_block: 0,
        charged: 0,
    };
    let mut used = 0;
    for key in ["A", "R"] {
        let account = store.account(&format!("{prefix}-{key}"))?;
        // A closing host's pairs may hold up to one block (4 MiB) unused each: it stays
        // leased to the host, not charged.
        if account.leased > hosts as u64 * (4 << 20) || account.in_doubt > 0 {
            return Err(format!("{prefix}-{key} not settled after the close: {account:?}").into());
        }
        used += account.used;
    }
    run.charged = used;
    for lease in store.list_leases()? {
        if lease.key.starts_with(&format!("{prefix}-")) {
            run.largest_block = run.largest_block.max(lease.granted);
            run.takes += 1;
            run.renewals += lease.seq;
            run.settles += u64::from(lease.settled.is_some());
        }
    }
    Ok(run)
}

struct Stranded {
    in_doubt: u64,
    amount: u64,
    rate: u64,
    after: Duration,
}

/// A host metering 100 MiB/s is killed with SIGKILL after 10 s; once its leases expired the
/// store reclaims them: what it drew and had not reported is in doubt.
fn stranded(params: &str) -> BenchResult<Stranded> {
    let (amount, rate, after) = (100 * GIB, 100 << 20, Duration::from_secs(10));
    let dir = fixture::disk_dir()?;
    let mut child = spawn_host(
        dir.path(),
        params,
        "killed",
        "KILLED",
        amount,
        rate,
        Duration::from_secs(3600),
    )?;
    std::thread::sleep(after);
    child.kill()?;
    child.wait()?;
    std::thread::sleep(KILLED_TTL);
    let mut store = Store::connect(params)?;
    let started = Instant::now();
    let mut in_doubt = 0;
    let open = |store: &mut Store| -> BenchResult<bool> {
        let leases = store.list_leases()?;
        Ok(leases
            .iter()
            .any(|l| l.host == "killed" && l.state == LeaseState::Open))
    };
    while open(&mut store)? {
        if started.elapsed() > KILLED_TTL * 4 {
            return Err("the killed host's leases never expired".into());
        }
        let reclaimed = store.reclaim_expired()?;
        in_doubt += reclaimed.iter().map(|r| r.in_doubt).sum::<u64>();
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Stranded {
        in_doubt,
        amount,
        rate,
        after,
    })
}

/// Runs this program as a host (`fleet_bench host …`, see [`host`]).
fn spawn_host(
    dir: &Path,
    params: &str,
    name: &str,
    prefix: &str,
    amount: u64,
    rate: u64,
    run_for: Duration,
) -> BenchResult<Child> {
    let ttl = if rate > 0 {
        KILLED_TTL
    } else {
        Duration::from_secs(60)
    };
    Ok(Command::new(std::env::current_exe()?)
        .arg("host")
        .arg(dir)
        .args([params, name, prefix])
        .args(
            [
                amount,
                rate,
                run_for.as_millis() as u64,
                ttl.as_millis() as u64,
            ]
            .map(|n| n.to_string()),
        )
        .stdout(Stdio::piped())
        .spawn()?)
}

fn host_result(child: Child) -> BenchResult<u64> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("a host failed: {:?}", out.status).into());
    }
    let stdout = String::from_utf8(out.stdout)?;
    let granted = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GRANTED "))
        .ok_or("a host printed nothing")?;
    Ok(granted.trim().parse()?)
}

/// A host: `DIR PARAMS NAME PREFIX AMOUNT RATE RUN_MS TTL_MS`. Meters keys `{PREFIX}-A` and
/// `{PREFIX}-R` of `AMOUNT` bytes in 64 KiB grants, `RATE` bytes per second (0: as fast as it
/// can), for `RUN_MS`; prints `GRANTED n` and closes.
fn host(args: &[String]) -> BenchResult<()> {
    let [dir, params, name, prefix, numbers @ ..] = args else {
        return Err("host DIR PARAMS NAME PREFIX AMOUNT RATE RUN_MS TTL_MS".into());
    };
    let numbers = numbers
        .iter()
        .map(|n| n.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()?;
    let [amount, rate, run_ms, ttl_ms] = numbers[..] else {
        return Err("host: AMOUNT RATE RUN_MS TTL_MS".into());
    };
    let dir = Path::new(dir);
    let ttl = Duration::from_millis(ttl_ms);
    let engine = Engine::open_with(dir, fleet_options(dir, params, name, ttl))?;
    // One project per run (named by its prefix: the fleet shares its projects), through the
    // fleet's admin log: hosts starting together may each try, and the later
    // changes are refused as on one host (the project exists, the key is there).
    let already = |result: tollgate_core::Result<()>| match result {
        Ok(()) | Err(Error::ProjectExists { .. } | Error::DuplicateKey { .. }) => Ok(()),
        Err(Error::ReserveOccupied { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    already(engine.create_project(prefix))?;
    already(
        engine
            .add_key(prefix, fixture::key(&format!("{prefix}-A"), amount))
            .map(drop),
    )?;
    already(
        engine
            .add_key(prefix, fixture::key(&format!("{prefix}-R"), amount))
            .map(drop),
    )?;
    let handle = engine.project(prefix)?;
    let started = Instant::now();
    let mut granted = 0;
    while started.elapsed() < Duration::from_millis(run_ms) {
        match handle.consume_partial(64 << 10) {
            Ok(n) => granted += n,
            Err(Refusal::Unavailable) => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
        if rate > 0 {
            let due = Duration::from_secs_f64(granted as f64 / rate as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
    }
    let used: u64 = engine.keys(prefix)?.iter().map(|k| k.used).sum();
    eprintln!("host {name}: granted {granted}, its keys' used {used}");
    println!("GRANTED {granted}");
    Ok(())
}
