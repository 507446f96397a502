//! The simulated migration: threads moving rows in batches through `ProjectHandle::consume`,
//! timing every call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tollgate_core::{ProjectHandle, Refusal};

/// Bytes in one simulated row.
pub const ROW_BYTES: u64 = 512;
/// The smallest batch: 128 rows, 64 KiB.
pub const MIN_BATCH: u64 = 128 * ROW_BYTES;
/// The largest batch: 8,192 rows, 4 MiB.
pub const MAX_BATCH: u64 = 8_192 * ROW_BYTES;

/// What the display reads while the threads run. Written with relaxed atomics outside the timed
/// region, so the demo's own bookkeeping never counts as time inside `consume`.
#[derive(Default)]
pub struct Progress {
    calls: AtomicU64,
    longest_ns: AtomicU64,
}

impl Progress {
    /// `consume` calls made so far by every thread.
    pub fn calls(&self) -> u64 {
        // Relaxed: a statistic for the display; it publishes no other memory.
        self.calls.load(Ordering::Relaxed)
    }

    /// The longest single call so far.
    pub fn longest(&self) -> Duration {
        // Relaxed: as above.
        Duration::from_nanos(self.longest_ns.load(Ordering::Relaxed))
    }
}

/// What one thread did.
#[derive(Debug, Default, Clone)]
pub struct ThreadReport {
    /// `consume` and `consume_partial` calls.
    pub calls: u64,
    /// Bytes granted to this thread.
    pub granted: u64,
    /// Calls that were refused.
    pub refused: u64,
    /// Total time spent inside the calls.
    pub busy: Duration,
    /// The longest single call.
    pub longest: Duration,
    /// The refusal that stopped the thread.
    pub stopped_by: Option<String>,
}

impl ThreadReport {
    /// Runs one engine call, timing it and counting it.
    fn timed<T>(&mut self, progress: &Progress, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = call();
        let took = started.elapsed();
        self.calls += 1;
        self.busy += took;
        self.longest = self.longest.max(took);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: statistics for the display; they publish no other memory.
        progress.calls.fetch_add(1, Ordering::Relaxed);
        progress.longest_ns.fetch_max(nanos, Ordering::Relaxed);
        result
    }
}

/// How the threads run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// How many threads.
    pub threads: u16,
    /// Each thread's simulated copy speed in bytes per second; `None` runs unpaced.
    pub bytes_per_second: Option<f64>,
}

impl Plan {
    /// Paces `threads` threads so that moving `total` bytes takes about `seconds`.
    pub fn new(threads: u16, total: u64, seconds: f64) -> Plan {
        let bytes_per_second = (seconds > 0.0).then(|| total as f64 / f64::from(threads) / seconds);
        Plan {
            threads,
            bytes_per_second,
        }
    }
}

/// Starts the threads; each stops when its project refuses it.
pub fn start(
    handle: &ProjectHandle,
    plan: Plan,
    progress: &Arc<Progress>,
) -> std::io::Result<Vec<JoinHandle<ThreadReport>>> {
    (0..plan.threads)
        .map(|index| {
            let handle = handle.clone();
            let progress = Arc::clone(progress);
            std::thread::Builder::new()
                .name(format!("migrate-{index}"))
                .spawn(move || migrate(&handle, plan, u64::from(index), &progress))
        })
        .collect()
}

/// One migration thread: draw a batch, ask for it, "copy" it at the planned pace.
fn migrate(handle: &ProjectHandle, plan: Plan, index: u64, progress: &Progress) -> ThreadReport {
    let started = Instant::now();
    let mut rows = Rows::new(index);
    let mut report = ThreadReport::default();
    loop {
        let batch = rows.next_batch();
        let granted = match report.timed(progress, || handle.consume(batch)) {
            Ok(()) => batch,
            Err(Refusal::Exhausted { remaining, .. }) if remaining > 0 => {
                report.refused += 1;
                // The last rows of the migration: take what is left instead of leaving it unused.
                match report.timed(progress, || handle.consume_partial(batch)) {
                    Ok(granted) => granted,
                    Err(refusal) => {
                        report.refused += 1;
                        report.stopped_by = Some(refusal.to_string());
                        break;
                    }
                }
            }
            Err(refusal) => {
                report.refused += 1;
                report.stopped_by = Some(refusal.to_string());
                break;
            }
        };
        report.granted += granted;
        if let Some(speed) = plan.bytes_per_second {
            let due = started + Duration::from_secs_f64(report.granted as f64 / speed);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    report
}

/// Batch sizes of a table copy: 128 to 8,192 rows, spread evenly on a log scale so that small
/// and large batches are equally common.
struct Rows {
    state: u64,
}

impl Rows {
    fn new(seed: u64) -> Rows {
        Rows {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B,
        }
    }

    /// SplitMix64: small, fast and good enough to vary batch sizes.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_batch(&mut self) -> u64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (low, high) = (
            (MIN_BATCH / ROW_BYTES) as f64,
            (MAX_BATCH / ROW_BYTES) as f64,
        );
        let rows = (low.ln() + unit * (high.ln() - low.ln())).exp().round() as u64;
        rows.clamp(MIN_BATCH / ROW_BYTES, MAX_BATCH / ROW_BYTES) * ROW_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_whole_rows_within_bounds() {
        let mut rows = Rows::new(3);
        let batches: Vec<u64> = (0..10_000).map(|_| rows.next_batch()).collect();
        assert!(batches
            .iter()
            .all(|&b| (MIN_BATCH..=MAX_BATCH).contains(&b) && b % ROW_BYTES == 0));
        let small = batches.iter().filter(|&&b| b < 512 << 10).count();
        assert!(
            (4_000..6_000).contains(&small),
            "{small} of 10,000 below 512 KiB"
        );
    }

    #[test]
    fn the_plan_spreads_the_volume_over_the_threads() {
        let plan = Plan::new(4, 4 << 30, 2.0);
        assert_eq!(plan.bytes_per_second, Some((512u64 << 20) as f64));
        assert_eq!(Plan::new(4, 1, 0.0).bytes_per_second, None);
    }
}
