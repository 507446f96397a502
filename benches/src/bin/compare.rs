//! `compare`: Tollgate beside the bare atomic, hand-written locks, DashMap, SQLite, Redis, the
//! C ABI and Python, on the same workload in one run, with `consume` on keys held by several
//! pairs and block refills from a key's account; then switch latency, flush cost and scaling. Prints tables and writes one JSON line (default `target/bench/compare.json`).
//!
//! ```text
//! cargo run --release -p tollgate-bench --bin compare -- [--quick] [--full-scale] [--json-out PATH]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use portable_atomic::AtomicU128;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;

use tollgate_bench::contestants::{
    refill_json, refill_table, BareAtomic, BareCas, Contestant, DashMapRow, LockedMap, Redis,
    RefillSetup, SqliteRow, TollgateConsume, TollgateRefill, TollgateSharedKey,
    TollgateThreadConsume, REDIS_ENV,
};
use tollgate_bench::external::{CProgram, PythonBench};
use tollgate_bench::fixture::{self, BenchResult, DiskState};
use tollgate_bench::harness::{self, Sharing, Window};
use tollgate_bench::report::{self, Machine, Row};
use tollgate_bench::targets::{self, Evidence};
use tollgate_bench::{durability, scaling, switch};

const USAGE: &str = "usage: compare [--quick] [--full-scale] [--json-out PATH]

  --quick          a smoke run of a few seconds: every contestant runs, the figures are rough
  --full-scale     create all 1,000,000 projects for the largest scaling point (about 4 more
                   minutes on 2 cores); by default that state holds 1,000 projects in
                   1,000,000 records, which measures the file and the mapping, not the catalog
  --json-out PATH  where to write the JSON results (default target/bench/compare.json)";

/// The largest scaling point's capacity.
const MILLION: u32 = 1_000_000;

/// Command-line options.
struct Args {
    quick: bool,
    full_scale: bool,
    json_out: PathBuf,
}

/// How long each part runs: the full run fits in a few minutes on 2 cores, `--quick` in seconds.
struct Plan {
    /// Interleaved repetitions of the whole comparison; each figure is the median over them.
    rounds: usize,
    fast: Window,
    slow: Window,
    python: Window,
    switch_calls: u64,
    flush_projects: usize,
    flush_samples: fn(usize) -> usize,
    /// (projects, capacity) of each scaling point besides the flush state's own.
    scale_points: Vec<(usize, u32)>,
}

impl Plan {
    fn new(quick: bool, full_scale: bool) -> Plan {
        let ms = Duration::from_millis;
        if quick {
            Plan {
                rounds: 1,
                fast: Window {
                    batch: 1_000,
                    warmup: ms(5),
                    measure: ms(20),
                },
                slow: Window {
                    batch: 50,
                    warmup: ms(5),
                    measure: ms(20),
                },
                python: Window {
                    batch: 1_000,
                    warmup: ms(5),
                    measure: ms(30),
                },
                switch_calls: 50_000,
                flush_projects: 1_000,
                flush_samples: |_| 5,
                scale_points: vec![(1_000, 1_000)],
            }
        } else {
            Plan {
                rounds: 3,
                fast: Window {
                    batch: 1_000,
                    warmup: ms(50),
                    measure: ms(300),
                },
                slow: Window {
                    batch: 50,
                    warmup: ms(50),
                    measure: ms(300),
                },
                python: Window {
                    batch: 1_000,
                    warmup: ms(100),
                    measure: ms(400),
                },
                switch_calls: 2_000_000,
                flush_projects: 65_536,
                flush_samples: |dirty| match dirty {
                    0 | 1 => 200,
                    d if d <= 1_000 => 100,
                    _ => 20,
                },
                scale_points: vec![
                    (1_000, 1_000),
                    (if full_scale { MILLION as usize } else { 1_000 }, MILLION),
                ],
            }
        }
    }
}

/// Prints a progress line to stderr, stamped with the seconds since the run began.
fn progress(message: std::fmt::Arguments<'_>) {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {message}", start.elapsed().as_secs_f64());
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        quick: false,
        full_scale: false,
        json_out: fixture::target_dir().join("bench/compare.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--full-scale" => args.full_scale = true,
            "--json-out" => args.json_out = it.next().ok_or("--json-out needs a path")?.into(),
            scaling::OPEN_PROBE_FLAG => {
                let dir = it.next().ok_or("--open-probe needs a directory")?;
                scaling::probe_open(Path::new(&dir)).map_err(|e| e.to_string())?;
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Some(args))
}

/// The thread counts and sharings to run: 1 thread once, 2 and N threads both ways.
fn configurations(cpus: usize) -> Vec<(usize, Sharing)> {
    let mut configs = vec![(1, Sharing::Shared)];
    let mut counts = vec![2];
    if cpus > 2 {
        counts.push(cpus);
    }
    for threads in counts {
        configs.push((threads, Sharing::Shared));
        configs.push((threads, Sharing::PerThread));
    }
    configs
}

/// Which contestants exist here, and why the others were skipped.
struct Field {
    in_process: Vec<Box<dyn Contestant>>,
    /// What the refill contestants' calibration found (block size, blocks per key).
    refills: Vec<RefillSetup>,
    c: Option<CProgram>,
    python: Option<PythonBench>,
    skipped: Vec<(String, String)>,
}

/// Adds the key-account cases (rule R3 in docs/rules.md) to `field` and returns what the refill
/// cases' calibration found: 1 thread on a project whose Active key 1 or 2 other projects also
/// hold; 2 threads on two projects holding one key (one account between them); and the same three
/// with every call taking a block from the account.
fn key_accounts(
    plan: &Plan,
    field: &mut Vec<Box<dyn Contestant>>,
) -> BenchResult<Vec<RefillSetup>> {
    let one = (1, Sharing::Shared);
    let two_own = (2, Sharing::PerThread);
    progress(format_args!(
        "key accounts: calibrating refills (one key drawn dry per case) …"
    ));
    let window = plan.fast.warmup + plan.fast.measure;
    let refill_2 = TollgateRefill::new(2, &[one, two_own], window)?;
    let refill_3 = TollgateRefill::new(3, &[one], window)?;
    let setups = vec![refill_2.setup().clone(), refill_3.setup().clone()];
    field.push(Box::new(TollgateSharedKey::new(2, &[one, two_own])?));
    field.push(Box::new(TollgateSharedKey::new(3, &[one])?));
    field.push(Box::new(refill_2));
    field.push(Box::new(refill_3));
    Ok(setups)
}

fn field(max_threads: usize, plan: &Plan) -> BenchResult<Field> {
    let root = fixture::workspace_root();
    let mut skipped = Vec::new();
    let mut in_process: Vec<Box<dyn Contestant>> = vec![
        Box::new(BareAtomic),
        Box::new(BareCas::<AtomicU64>::default()),
        Box::new(BareCas::<AtomicU128>::default()),
        Box::new(TollgateConsume::new(max_threads)?),
        Box::new(TollgateThreadConsume::new(max_threads)?),
    ];
    let refills = key_accounts(plan, &mut in_process)?;
    in_process.push(Box::new(LockedMap::std()));
    in_process.push(Box::new(LockedMap::parking_lot()));
    in_process.push(Box::new(DashMapRow));
    in_process.push(Box::new(SqliteRow::new()?));
    match Redis::from_env() {
        Ok(Some(redis)) => in_process.push(Box::new(redis)),
        Ok(None) => skipped.push((
            "redis".into(),
            format!(
                "{REDIS_ENV} not set (scripts/bench.sh sets it when redis-server is installed)"
            ),
        )),
        Err(e) => skipped.push(("redis".into(), e.to_string())),
    }
    let c = CProgram::build(&root)?
        .map_err(|why| skipped.push(("c_tg_consume".into(), why)))
        .ok();
    let python = PythonBench::find(&root)?
        .map_err(|why| skipped.push(("python".into(), why)))
        .ok();
    Ok(Field {
        in_process,
        refills,
        c,
        python,
        skipped,
    })
}

/// Measures every contestant at every configuration, `plan.rounds` times over, interleaved, so
/// that a burst of outside load lands on all contestants alike rather than on one of them.
fn compare(field: &Field, plan: &Plan, configs: &[(usize, Sharing)]) -> BenchResult<Vec<Row>> {
    let mut rows = Vec::new();
    for round in 1..=plan.rounds {
        for &(threads, sharing) in configs {
            progress(format_args!(
                "round {round}/{}: {threads} thread(s), {sharing} …",
                plan.rounds
            ));
            for contestant in &field.in_process {
                if !contestant.runs_at(threads, sharing) {
                    continue;
                }
                let window = Window {
                    batch: contestant.batch(),
                    ..if contestant.slow() {
                        plan.slow
                    } else {
                        plan.fast
                    }
                };
                let summary = harness::measure(contestant.workers(threads, sharing)?, window);
                let (name, op) = (contestant.name(), contestant.op());
                rows.push(Row::new(name, op, threads, sharing, summary));
            }
            if let Some(c) = &field.c {
                rows.extend(c.run(threads, sharing, plan.fast)?);
            }
        }
        if let Some(python) = &field.python {
            progress(format_args!("round {round}/{}: Python …", plan.rounds));
            rows.extend(python.run(plan.python)?);
        }
    }
    let mut rows = report::merge_rounds(rows);
    report::add_atomic_ratios(&mut rows);
    annotate(&mut rows);
    Ok(rows)
}

/// Adds the comparisons a target names beside the atomic ratio.
fn annotate(rows: &mut [Row]) {
    let medians: Vec<(String, usize, Sharing, f64)> = rows
        .iter()
        .map(|r| {
            (
                r.contestant.clone(),
                r.threads,
                r.sharing,
                r.summary.median_ns,
            )
        })
        .collect();
    let find = |name: &str, threads: usize, sharing: Sharing| {
        medians
            .iter()
            .find(|(n, t, s, _)| n == name && *t == threads && *s == sharing)
            .map(|m| m.3)
    };
    for row in rows.iter_mut() {
        let (base, label) = match row.contestant.as_str() {
            "tollgate" => ("cas_loop", "bare CAS loop"),
            "tollgate_key_2_holders" | "tollgate_key_3_holders" => ("tollgate", "1-holder consume"),
            "tollgate_refill_2_holders" | "tollgate_refill_3_holders" => ("tollgate", "consume(1)"),
            "cas128_loop" => ("cas_loop", "64-bit CAS loop"),
            "c_tg_consume" => ("tollgate", "Rust consume"),
            "tollgate_thread" => ("atomic", "Rust fetch_add"),
            "c_tg_thread_consume" | "c_tg_thread_consume_inline" => {
                ("tollgate_thread", "Rust thread consume")
            }
            "c_atomic" => ("atomic", "Rust fetch_add"),
            "py_consume" | "py_consume_many" | "py_ctypes_tg_consume" => {
                ("py_ctypes_empty", "empty ctypes call")
            }
            _ => continue,
        };
        if let Some(base) = find(base, row.threads, row.sharing) {
            row.note = format!("{:.2}× {label}", row.summary.median_ns / base);
        }
    }
}

/// Builds the 65,536-project state (or the quick run's smaller one) and measures flush cost
/// on it; the same state then serves the scaling point of its size.
fn durability_and_scaling(
    plan: &Plan,
) -> BenchResult<(Vec<durability::FlushCost>, Vec<scaling::ScalePoint>)> {
    progress(format_args!(
        "building {} projects for flush and scaling …",
        plan.flush_projects
    ));
    let big = DiskState::build(plan.flush_projects, plan.flush_projects as u32)?;
    let dirty: Vec<usize> = [0, 1, 1_000, 65_536]
        .into_iter()
        .filter(|&d| d <= plan.flush_projects)
        .collect();
    let flush = durability::measure(&big, &dirty, plan.flush_samples)?;
    let mut points = Vec::new();
    for &(projects, capacity) in &plan.scale_points {
        progress(format_args!(
            "scaling: {projects} projects in {capacity} records …"
        ));
        let state = DiskState::build(projects, capacity)?;
        points.push(scaling::measure(&state, projects, capacity)?);
    }
    if !points.iter().any(|p| p.projects == plan.flush_projects) {
        let capacity = plan.flush_projects as u32;
        points.push(scaling::measure(&big, plan.flush_projects, capacity)?);
    }
    points.sort_by_key(|p| (p.capacity, p.projects));
    Ok((flush, points))
}

fn run(args: &Args) -> BenchResult<()> {
    let started = Instant::now();
    progress(format_args!("starting"));
    let machine = Machine::read();
    let load_before = report::load_average();
    let plan = Plan::new(args.quick, args.full_scale);
    let configs = configurations(machine.cpus);
    let max_threads = configs.iter().map(|c| c.0).max().unwrap_or(1);
    let field = field(max_threads, &plan)?;

    let rows = compare(&field, &plan, &configs)?;
    progress(format_args!("measuring switch latency …"));
    let switch = switch::measure(2, plan.switch_calls, false)?;
    let switch_thread = switch::measure(2, plan.switch_calls, true)?;
    let (flush, scaling) = durability_and_scaling(&plan)?;
    let load_after = report::load_average();
    let targets = targets::judge(&Evidence {
        rows: &rows,
        switch: Some(&switch),
        flush: &flush,
    });

    println!(
        "Tollgate comparison — {} build, {} CPUs ({}), kernel {}, load {} → {}{}",
        machine.profile,
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        load_before,
        load_after,
        if args.quick {
            ", QUICK smoke run: figures are rough"
        } else {
            ""
        },
    );
    println!(
        "\nPer call: one sample = mean of `batch` calls; median and p99 over samples; Mops/s summed \
         over threads; on-CPU = share of the window the threads ran; each figure the median of {} \
         interleaved round(s).\n",
        plan.rounds
    );
    print!("{}", report::comparison_table(&rows));
    for (name, why) in &field.skipped {
        println!("skipped {name}: {why}");
    }
    println!(
        "\nRefills: a key of the maximum limit held by 2 or 3 pairs; every call is consume(block), \
         so it takes exactly one block from the key's account and grants it. The API counts no \
         refills: refills = bytes consumed ÷ block size = calls (checked at calibration: every \
         call took one block, nothing left leased). Refills/s summed over threads; ns per refill \
         per thread, the grant included.\n"
    );
    print!("{}", refill_table(&field.refills, &rows));
    println!(
        "\nSwitch latency: {} threads × {} consume(1), every call timed; the Active key runs out halfway.\n",
        switch.threads, switch.calls_per_thread
    );
    for (how, run) in [
        ("one shared project handle", &switch),
        ("a thread handle (lease slot) each", &switch_thread),
    ] {
        println!("Through {how}:\n");
        print!("{}", run.table());
        println!(
            "(switches observed: {}; the threads were on a CPU {} of the run)\n",
            run.switches,
            run.on_cpu
                .map_or("-".into(), |f| format!("{:.0} %", f * 100.0))
        );
    }
    println!("\nflush(): msync of the hot file + catalog checkpoint, state on disk.\n");
    print!("{}", durability::flush_table(&flush));
    println!("\nScaling: Engine::open in a fresh process (warm page cache).\n");
    print!("{}", scaling::scaling_table(&scaling));
    println!();
    print!("{}", targets::targets_table(&targets));

    let document = json!({
        "machine": machine.to_json(),
        "quick": args.quick,
        "load_before": load_before,
        "load_after": load_after,
        "elapsed_secs": started.elapsed().as_secs_f64(),
        "results": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "refills": refill_json(&field.refills, &rows),
        "skipped": field.skipped.iter().map(|(n, w)| json!({"contestant": n, "reason": w})).collect::<Vec<_>>(),
        "switch_latency": switch.to_json(),
        "switch_latency_thread_handles": switch_thread.to_json(),
        "flush": flush.iter().map(durability::FlushCost::to_json).collect::<Vec<_>>(),
        "scaling": scaling.iter().map(scaling::ScalePoint::to_json).collect::<Vec<_>>(),
        "targets": targets.iter().map(targets::Target::to_json).collect::<Vec<_>>(),
    });
    write_json(&args.json_out, &document)?;
    println!(
        "\nwrote {} ({:.0} s in all)",
        args.json_out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_json(path: &Path, document: &Value) -> BenchResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, format!("{document}\n"))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("compare: warning: a debug build; run with --release for real figures");
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}
