//! Soak: two consumer threads in this process and two consumer processes hammer 10,000
//! projects for minutes, while an admin thread adds reserve keys, replaces Active keys and
//! removes reserves at random. Asserted at the end: the resident memory of every process stayed
//! flat (the maximum of the last minute is at most the maximum of the first minute after
//! warm-up plus 16 MiB), every byte granted by any consumer is charged to a key exactly (the
//! sum over all consumers equals the sum of `used` over every key of every project), and no key
//! is charged beyond its limit.
//!
//! Ignored by default (it runs for 10 minutes); run it with
//! `cargo test --release -p tollgate-core --test soak -- --ignored --nocapture`.
//! `TOLLGATE_SOAK_SECS` sets the duration in seconds (default 600, at least 30). Shorter runs
//! compare shorter windows: warm-up is a sixth of the run (at most 30 s), and each compared
//! window a third of the rest (at most 60 s).

mod common;

use std::fs;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{assert_within_limits, child_env, child_result, dv, spawn_child};
use tollgate_core::{Engine, Error, KeyStatus, Options, ProjectHandle, Refusal};

const PROJECTS: usize = 10_000;
const THREADS: usize = 2;
const CHILDREN: usize = 2;
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const RSS_SLACK_KIB: u64 = 16 << 10;

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A key limit between 1 MiB and 4 GiB: small keys switch and run out within seconds, large
/// ones last the whole run.
fn limit(seed: &mut u64) -> u64 {
    (1 << 20) << (xorshift(seed) % 13)
}

fn project_name(index: usize) -> String {
    format!("soak-{index:05}")
}

/// Meters random projects with random calls until `done()`, and returns the bytes granted.
fn hammer(handles: &[ProjectHandle], seed: u64, mut done: impl FnMut() -> bool) -> u64 {
    let mut rng = seed | 1;
    let mut granted = 0u64;
    for i in 0u64.. {
        if i.is_multiple_of(4096) && done() {
            break;
        }
        let project = &handles[(xorshift(&mut rng) % handles.len() as u64) as usize];
        let amount = 1 + xorshift(&mut rng) % (64 << 10);
        let outcome = match i % 3 {
            0 => project.consume(amount).map(|()| amount),
            1 => project.consume_partial(amount),
            _ => {
                let batch = [amount, amount / 2 + 1, 1];
                let (count, result) = project.consume_many(&batch);
                granted += batch[..count].iter().sum::<u64>();
                result.map(|()| 0)
            }
        };
        match outcome {
            Ok(bytes) => granted += bytes,
            Err(Refusal::Exhausted { .. }) => {}
            Err(e) => panic!("{}: unexpected refusal {e}", project.name()),
        }
    }
    granted
}

/// The consumer process: this test binary re-executed on this ignored test.
#[test]
#[ignore = "child process entry point; run by soak_rss_stays_flat_and_totals_are_exact"]
fn soak_child() {
    let Some(dir) = child_env("TOLLGATE_TEST_DIR") else {
        return;
    };
    let secs: u64 = child_env("TOLLGATE_TEST_SECS").unwrap().parse().unwrap();
    let seed: u64 = child_env("TOLLGATE_TEST_SEED").unwrap().parse().unwrap();
    let engine = common::open(&dir).unwrap();
    let handles: Vec<ProjectHandle> = (0..PROJECTS)
        .map(|i| engine.project(&project_name(i)).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let granted = hammer(&handles, seed, || Instant::now() >= deadline);
    println!("RESULT {granted}");
}

/// What the admin thread did, by operation and outcome.
#[derive(Default, Debug)]
struct AdminTally {
    reserves_added: u64,
    reserve_occupied: u64,
    replaced: u64,
    reserves_removed: u64,
    no_reserve_to_remove: u64,
}

/// Random admin changes on random projects until `stop`: add a reserve (45 %), replace the
/// Active key (35 %), remove the reserve (20 %). Refusals that the race with the hot path
/// allows (the reserve slot taken, or emptied by a switch) are counted; any other error fails.
fn administer(engine: &Engine, seed: u64, stop: &AtomicBool) -> AdminTally {
    let mut rng = seed | 1;
    let mut tally = AdminTally::default();
    // Relaxed: the flag only ends the loop; nothing is published through it.
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let project = project_name((xorshift(&mut rng) % PROJECTS as u64) as usize);
        let new_key = dv(&format!("admin-{n}"), limit(&mut rng));
        match xorshift(&mut rng) % 20 {
            0..=8 => match engine.add_reserve(&project, new_key) {
                Ok(_) => tally.reserves_added += 1,
                Err(Error::ReserveOccupied { .. }) => tally.reserve_occupied += 1,
                Err(e) => panic!("add a reserve to {project}: {e}"),
            },
            9..=15 => {
                engine
                    .replace_active_key(&project, new_key)
                    .unwrap_or_else(|e| panic!("replace the active key of {project}: {e}"));
                tally.replaced += 1;
            }
            _ => {
                let reserve = engine
                    .keys(&project)
                    .unwrap()
                    .into_iter()
                    .find(|k| k.status == KeyStatus::Reserved);
                let removed = match reserve {
                    Some(k) => engine.remove_reserve(&project, &k.key.id),
                    None => Err(Error::ReserveNotFound {
                        project: project.clone(),
                        key: String::new(),
                    }),
                };
                match removed {
                    Ok(()) => tally.reserves_removed += 1,
                    // No reserve, or the hot path switched to it since it was listed.
                    Err(Error::ReserveNotFound { .. }) => tally.no_reserve_to_remove += 1,
                    Err(e) => panic!("remove the reserve of {project}: {e}"),
                }
            }
        }
    }
    tally
}

/// Resident set size of process `pid` (`"self"` for this one) in KiB.
fn rss_kib(pid: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// RSS samples of one process: (seconds since the start, KiB).
struct RssSeries {
    who: String,
    samples: Vec<(f64, u64)>,
}

impl RssSeries {
    fn max_between(&self, from: f64, to: f64) -> u64 {
        self.samples
            .iter()
            .filter(|(t, _)| (from..=to).contains(t))
            .map(|&(_, kib)| kib)
            .max()
            .unwrap_or_else(|| panic!("{}: no RSS sample in {from:.0}..{to:.0} s", self.who))
    }
}

#[test]
#[ignore = "a 10-minute soak; run with --ignored (see the module documentation)"]
fn soak_rss_stays_flat_and_totals_are_exact() {
    let secs: u64 = std::env::var("TOLLGATE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    assert!(secs >= 30, "TOLLGATE_SOAK_SECS must be at least 30");
    let warm_up = (secs as f64 / 6.0).min(30.0);
    let window = ((secs as f64 - warm_up) / 3.0).min(60.0);

    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        capacity: (2 * PROJECTS) as u32,
        ..common::options(dir.path())
    };
    let engine = Engine::open_with(dir.path(), options).unwrap();
    let mut seed = 0x5EED_u64;
    let setup = Instant::now();
    for i in 0..PROJECTS {
        let name = project_name(i);
        engine.create_project(&name).unwrap();
        engine
            .add_key(&name, dv(&format!("{name}-a"), limit(&mut seed)))
            .unwrap();
        engine
            .add_key(&name, dv(&format!("{name}-r"), limit(&mut seed)))
            .unwrap();
    }
    let handles: Vec<ProjectHandle> = (0..PROJECTS)
        .map(|i| engine.project(&project_name(i)).unwrap())
        .collect();
    println!(
        "soak: {PROJECTS} projects set up in {:.1?}; running {secs} s",
        setup.elapsed()
    );

    let path = dir.path().to_str().unwrap().to_owned();
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|c| {
            spawn_child(
                "soak_child",
                &[
                    ("TOLLGATE_TEST_DIR", path.clone()),
                    ("TOLLGATE_TEST_SECS", secs.to_string()),
                    ("TOLLGATE_TEST_SEED", (1000 + c).to_string()),
                ],
            )
        })
        .collect();
    let mut series: Vec<RssSeries> = std::iter::once("this process".to_owned())
        .chain(children.iter().map(|c| format!("child {}", c.id())))
        .map(|who| RssSeries {
            who,
            samples: Vec::new(),
        })
        .collect();

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let stop = AtomicBool::new(false);
    let (parent_granted, admin) = std::thread::scope(|s| {
        let consumers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handles, stop) = (&handles, &stop);
                // Relaxed: the flag only ends the loop; the results come back through `join`.
                s.spawn(move || hammer(handles, t as u64 + 1, || stop.load(Ordering::Relaxed)))
            })
            .collect();
        let admin = s.spawn(|| administer(&engine, 77, &stop));
        while Instant::now() < deadline {
            let t = start.elapsed().as_secs_f64();
            series[0].samples.push((t, rss_kib("self")));
            for (c, child) in children.iter_mut().enumerate() {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "child {c} ended before the soak did"
                );
                series[c + 1]
                    .samples
                    .push((t, rss_kib(&child.id().to_string())));
            }
            std::thread::sleep(
                SAMPLE_EVERY.min(deadline.saturating_duration_since(Instant::now())),
            );
        }
        // Relaxed: see the loads.
        stop.store(true, Ordering::Relaxed);
        let granted: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        (granted, admin.join().unwrap())
    });
    let children_granted: Vec<u64> = children.into_iter().map(child_result).collect();
    let granted = parent_granted + children_granted.iter().sum::<u64>();

    let (mut charged, mut switches) = (0u64, 0u64);
    for i in 0..PROJECTS {
        let name = project_name(i);
        assert_within_limits(&engine, &name);
        charged += engine
            .keys(&name)
            .unwrap()
            .iter()
            .map(|k| k.used)
            .sum::<u64>();
        switches += engine.usage(&name).unwrap().switches;
    }
    println!(
        "soak: {secs} s; granted {} GiB (this process {} GiB, children {:?} GiB), charged {} GiB, \
         {switches} switches; admin {admin:?}; {} hot-path events dropped",
        granted >> 30,
        parent_granted >> 30,
        children_granted.iter().map(|g| g >> 30).collect::<Vec<_>>(),
        charged >> 30,
        engine.dropped_events()
    );

    let end = secs as f64;
    println!(
        "soak: RSS in MiB, max over [{:.0} s, {:.0} s] vs [{:.0} s, {:.0} s]:",
        warm_up,
        warm_up + window,
        end - window,
        end
    );
    let mut grew = Vec::new();
    for s in &series {
        let first = s.max_between(warm_up, warm_up + window);
        let last = s.max_between(end - window, end);
        let overall = s.samples.iter().map(|&(_, kib)| kib).max().unwrap();
        println!(
            "  {:<14} first {:>7.1}  last {:>7.1}  max {:>7.1}  ({} samples)",
            s.who,
            first as f64 / 1024.0,
            last as f64 / 1024.0,
            overall as f64 / 1024.0,
            s.samples.len()
        );
        if last > first + RSS_SLACK_KIB {
            grew.push(format!("{}: {first} KiB -> {last} KiB", s.who));
        }
    }
    // Both verdicts are printed above before either is asserted.
    assert_eq!(granted, charged, "bytes granted vs bytes charged to keys");
    assert!(grew.is_empty(), "RSS grew by more than 16 MiB: {grew:?}");
}
