//! Keys held by several pairs (key accounts, rule R3 in docs/rules.md): `consume` on a project
//! whose Active key other projects hold too, and block refills from the key's account.
//!
//! A pair grants from a lease (block) of its key's account with one CAS on its own cursor and
//! takes the next block with one CAS on the account when its lease is spent (see
//! `core/src/slot/account.rs`). With `h` holders of a key of the maximum limit a block is
//! `64 MiB / h`, so `consume(1)` refills once per tens of millions of calls: that case measures
//! the grant on a shared key. [`TollgateRefill`] measures the refill itself: every call consumes
//! exactly one block, so every call takes one block from the account.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Contestant;
use crate::fixture::{self, project_name, BenchResult, Keys};
use crate::harness::{Calls, Sharing, Worker};
use crate::report::{fmt_ns, table, Row};
use tollgate_core::{Engine, ProjectHandle, MAX_LIMIT_BYTES};

/// The id of the key the projects of a fixture share (`shared-{stage}` in a refill fixture).
const SHARED_KEY: &str = "shared";

/// `ProjectHandle::consume(1)` on a project whose Active key (the maximum limit) is held by
/// `holders` pairs in all, each project with a Reserved key of its own, as the `tollgate`
/// contestant's projects have. Thread `t` meters project `t`; the other holders stay idle.
pub struct TollgateSharedKey {
    name: &'static str,
    op: &'static str,
    configs: Vec<(usize, Sharing)>,
    handles: Vec<ProjectHandle>,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

impl TollgateSharedKey {
    /// A key held by `holders` (2 or 3) projects, measured at `configs` (per-thread configurations
    /// need a holder per thread).
    pub fn new(holders: usize, configs: &[(usize, Sharing)]) -> BenchResult<TollgateSharedKey> {
        let (name, op) = match holders {
            2 => (
                "tollgate_key_2_holders",
                "consume(1), Active key held by 2 pairs",
            ),
            3 => (
                "tollgate_key_3_holders",
                "consume(1), Active key held by 3 pairs",
            ),
            _ => return Err(format!("no shared-key case for {holders} holders").into()),
        };
        check_configs(name, holders, configs)?;
        let dir = fixture::disk_dir()?;
        let engine = fixture::open(dir.path(), 16)?;
        let names: Vec<String> = (0..holders).map(project_name).collect();
        fixture::share_key(
            &engine,
            &names,
            SHARED_KEY,
            MAX_LIMIT_BYTES,
            Keys::ActiveAndReserve,
        )?;
        Ok(TollgateSharedKey {
            name,
            op,
            configs: configs.to_vec(),
            handles: fixture::handles(&engine, holders)?,
            _engine: engine,
            _dir: dir,
        })
    }
}

impl Contestant for TollgateSharedKey {
    fn name(&self) -> &'static str {
        self.name
    }

    fn op(&self) -> &'static str {
        self.op
    }

    fn runs_at(&self, threads: usize, sharing: Sharing) -> bool {
        self.configs.contains(&(threads, sharing))
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        Ok((0..threads)
            .map(|t| {
                let project = self.handles[sharing.slot(t)].clone();
                Box::new(Calls(move || {
                    assert!(project.consume(1).is_ok(), "consume refused");
                })) as Box<dyn Worker>
            })
            .collect())
    }
}

/// Refuses configurations a fixture of `holders` projects cannot serve.
fn check_configs(name: &str, holders: usize, configs: &[(usize, Sharing)]) -> BenchResult<()> {
    match configs
        .iter()
        .find(|&&(threads, sharing)| sharing == Sharing::PerThread && threads > holders)
    {
        Some((threads, _)) => Err(format!(
            "{name}: {threads} threads on their own projects need as many holders"
        )
        .into()),
        None => Ok(()),
    }
}

/// What a refill fixture's calibration found: the block a call takes, and how long one thread
/// took to draw a whole key block by block.
#[derive(Clone, Debug, PartialEq)]
pub struct RefillSetup {
    /// The contestant's name.
    pub name: &'static str,
    /// Pairs holding the key.
    pub holders: usize,
    /// Bytes of one block, as the account leased it (`used + leased_unused` after one
    /// `consume(1)` on a fresh holder).
    pub block: u64,
    /// Calls of `consume(block)` one thread made on a fresh key before it was used up.
    pub blocks_per_key: u64,
    /// How long those calls took.
    pub drain: Duration,
}

/// How the refills are counted, for the JSON.
const REFILLS_COUNTED: &str = "derived: bytes consumed / block size = calls, one block per call \
     (the API has no refill counter); checked at calibration: every call took exactly one block, \
     nothing left leased";

/// `ProjectHandle::consume(block)` on a project whose Active key (the maximum limit, no Reserved
/// key) is held by `holders` pairs: each call spends exactly one block, so each call takes the
/// next block from the key's account (one refill: three CASes, see `PairRecord::refill`) and
/// grants it (the cursor CAS). Thread `t` meters project `t`; with 2 threads the two pairs take
/// blocks from one account.
///
/// A key gives about `holders` million blocks; a window can take more, so every call of
/// [`Contestant::workers`] builds a fresh state of enough *stages* (each a fresh key with its
/// holders), sized from the calibration's drain time, and a worker whose key is used up moves
/// on to the next stage.
pub struct TollgateRefill {
    setup: RefillSetup,
    op: &'static str,
    configs: Vec<(usize, Sharing)>,
    /// Warm-up plus measuring window of one run.
    window: Duration,
}

/// How many times the calibration's pace a run may draw blocks before it runs out of stages.
const STAGE_MARGIN: u32 = 3;
/// The most stages one run builds.
const MAX_STAGES: usize = 64;

impl TollgateRefill {
    /// A key held by `holders` (2 or 3) projects, measured at `configs`, with runs of `window`
    /// (warm-up plus measuring). Calibrates: takes one block, then drains a fresh holder's key.
    pub fn new(
        holders: usize,
        configs: &[(usize, Sharing)],
        window: Duration,
    ) -> BenchResult<TollgateRefill> {
        let (name, op) = match holders {
            2 => (
                "tollgate_refill_2_holders",
                "consume(block), key held by 2 pairs: 1 refill/call",
            ),
            3 => (
                "tollgate_refill_3_holders",
                "consume(block), key held by 3 pairs: 1 refill/call",
            ),
            _ => return Err(format!("no refill case for {holders} holders").into()),
        };
        check_configs(name, holders, configs)?;
        let setup = calibrate(name, holders, MAX_LIMIT_BYTES)?;
        Ok(TollgateRefill {
            setup,
            op,
            configs: configs.to_vec(),
            window,
        })
    }

    /// What the calibration found.
    pub fn setup(&self) -> &RefillSetup {
        &self.setup
    }
}

/// Takes one block with `consume(1)` on holder 0 of a fresh key of `limit` bytes to read the
/// block size, then has holder 1 call `consume(block)` until the key is used up; checks that
/// every call took exactly one block.
fn calibrate(name: &'static str, holders: usize, limit: u64) -> BenchResult<RefillSetup> {
    let state = StagedKeys::build(holders, 1, limit)?;
    let stage = &state.stages[0];
    stage[0].consume(1)?;
    let account = |project: &str| -> BenchResult<(u64, u64, u64)> {
        let keys = state.engine.keys(project)?;
        let key = keys
            .iter()
            .find(|k| k.key.id == stage_key(0))
            .ok_or("the shared key is missing")?;
        let account = key
            .account
            .as_ref()
            .ok_or("the shared key has no account")?;
        Ok((key.used, account.used, account.leased_unused))
    };
    let (_, used, leased) = account(&project_name(0))?;
    let block = used + leased;
    let started = Instant::now();
    let mut calls = 0u64;
    while stage[1].consume(block).is_ok() {
        calls += 1;
    }
    let drain = started.elapsed();
    let (drained, used, leased) = account(&project_name(1))?;
    if drained != calls * block || leased != block - 1 || used != 1 + drained {
        return Err(format!(
            "{name}: consume({block}) did not take exactly one block per call: {calls} calls, \
             holder used {drained}, account used {used}, leased and unused {leased}"
        )
        .into());
    }
    Ok(RefillSetup {
        name,
        holders,
        block,
        blocks_per_key: calls,
        drain,
    })
}

/// The key of stage `stage`.
fn stage_key(stage: usize) -> String {
    format!("{SHARED_KEY}-{stage}")
}

/// A fresh state of `stages` keys of `limit` bytes, each held by `holders` projects (Active key
/// only): project `stage * holders + j` is holder `j` of stage `stage`.
struct StagedKeys {
    /// `stages[s][j]`: holder `j` of stage `s`. Dropped before the engine and the directory.
    stages: Vec<Vec<ProjectHandle>>,
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl StagedKeys {
    fn build(holders: usize, stages: usize, limit: u64) -> BenchResult<StagedKeys> {
        let dir = fixture::disk_dir()?;
        let engine = fixture::open(dir.path(), (holders * stages).max(16) as u32)?;
        let mut handles = Vec::with_capacity(stages);
        for stage in 0..stages {
            let names: Vec<String> = (0..holders)
                .map(|j| project_name(stage * holders + j))
                .collect();
            fixture::share_key(&engine, &names, &stage_key(stage), limit, Keys::Active)?;
            handles.push(
                names
                    .iter()
                    .map(|n| engine.project(n))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(StagedKeys {
            stages: handles,
            engine,
            _dir: dir,
        })
    }
}

impl Contestant for TollgateRefill {
    fn name(&self) -> &'static str {
        self.setup.name
    }

    fn op(&self) -> &'static str {
        self.op
    }

    fn batch(&self) -> u64 {
        // A refill costs several CASes: 100 calls still spread the clock over microseconds.
        100
    }

    fn runs_at(&self, threads: usize, sharing: Sharing) -> bool {
        self.configs.contains(&(threads, sharing))
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        // Threads drawing together take blocks at most `threads` times as fast as one.
        let keys = self.window.as_secs_f64() * threads as f64 * f64::from(STAGE_MARGIN)
            / self.setup.drain.as_secs_f64().max(1e-3);
        let stages = (keys.ceil() as usize + 1).min(MAX_STAGES);
        let state = Arc::new(StagedKeys::build(
            self.setup.holders,
            stages,
            MAX_LIMIT_BYTES,
        )?);
        let block = self.setup.block;
        Ok((0..threads)
            .map(|t| {
                let state = Arc::clone(&state);
                let holder = sharing.slot(t);
                let mut stage = 0;
                Box::new(Calls(move || {
                    while state.stages[stage][holder].consume(block).is_err() {
                        stage += 1;
                        assert!(
                            stage < state.stages.len(),
                            "refill benchmark: all {} keys used up; raise STAGE_MARGIN",
                            state.stages.len()
                        );
                    }
                })) as Box<dyn Worker>
            })
            .collect())
    }
}

/// The comparison rows of the refill contestants, each with its calibration.
fn refill_rows<'a>(
    setups: &'a [RefillSetup],
    rows: &'a [Row],
) -> impl Iterator<Item = (&'a RefillSetup, &'a Row)> + 'a {
    rows.iter()
        .filter_map(|r| Some((setups.iter().find(|s| s.name == r.contestant)?, r)))
}

/// The refill rows as a table: refills per second (summed over threads) and nanoseconds per
/// refill (per thread; the call that refills also grants the block), with the block size.
pub fn refill_table(setups: &[RefillSetup], rows: &[Row]) -> String {
    let body: Vec<Vec<String>> = refill_rows(setups, rows)
        .map(|(setup, r)| {
            vec![
                r.contestant.clone(),
                setup.holders.to_string(),
                r.threads.to_string(),
                r.sharing.label().to_owned(),
                setup.block.to_string(),
                setup.blocks_per_key.to_string(),
                format!("{:.2}", r.summary.mops),
                fmt_ns(r.summary.median_ns),
                r.summary
                    .on_cpu
                    .map_or("-".into(), |f| format!("{:.0}", f * 100.0)),
                r.ratio_to_atomic.map_or("-".into(), |x| format!("{x:.2}×")),
            ]
        })
        .collect();
    table(
        &[
            "refills",
            "holders",
            "thr",
            "sharing",
            "block bytes",
            "blocks/key",
            "M refills/s",
            "ns per refill",
            "on-CPU %",
            "× atomic",
        ],
        &body,
    )
}

/// The refill rows as JSON, with how the refills were counted.
pub fn refill_json(setups: &[RefillSetup], rows: &[Row]) -> Vec<Value> {
    refill_rows(setups, rows)
        .map(|(setup, r)| {
            json!({
                "contestant": r.contestant,
                "holders": setup.holders,
                "threads": r.threads,
                "sharing": r.sharing.label(),
                "block_bytes": setup.block,
                "blocks_per_key": setup.blocks_per_key,
                "calibration_drain_secs": setup.drain.as_secs_f64(),
                "refills_per_sec": r.summary.mops * 1e6,
                "ns_per_refill": r.summary.median_ns,
                "on_cpu": r.summary.on_cpu,
                "ratio_to_atomic": r.ratio_to_atomic,
                "refills_counted": REFILLS_COUNTED,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_takes_one_block_per_call() {
        // 10 GiB: blocks of 64 MiB / 3 (1 % of the limit is more than 64 MiB), about 480 of them.
        let setup = calibrate("tollgate_refill_3_holders", 3, 10 << 30).unwrap();
        assert_eq!(setup.block, (64 << 20) / 3);
        assert_eq!(
            setup.blocks_per_key,
            ((10 << 30) - setup.block) / setup.block
        );
    }

    #[test]
    fn each_stage_is_a_key_of_its_own() {
        let state = StagedKeys::build(2, 2, 1 << 30).unwrap();
        state.stages[0][0].consume(1 << 30).unwrap();
        assert!(state.stages[0][1].consume(1).is_err());
        state.stages[1][1].consume(1).unwrap();
    }

    #[test]
    fn per_thread_runs_need_a_holder_per_thread() {
        assert!(check_configs("x", 2, &[(2, Sharing::PerThread)]).is_ok());
        assert!(check_configs("x", 2, &[(3, Sharing::PerThread)]).is_err());
        assert!(check_configs("x", 2, &[(3, Sharing::Shared)]).is_ok());
    }
}
