//! The measuring loop shared by every in-process contestant.
//!
//! Each thread times **batches** of calls with [`Instant`]: one sample is the mean cost of one
//! call within a batch of `batch` calls. Many samples per thread give a distribution, from which
//! the median and p99 are read. The clock is read twice per batch, so its own cost (about 20 ns
//! with the TSC) is spread over the batch and does not distort a call of a few nanoseconds.
//!
//! All threads warm up, meet at a barrier, run batches until the main thread raises a stop flag
//! after the measuring window, and report their samples. Throughput is the sum over threads of
//! calls per second of that thread's own measuring time.
//!
//! On a shared machine a thread may be descheduled in the middle of a run, and then "two
//! threads" did not really contend. Each thread therefore also reads its own on-CPU time from
//! `/proc/thread-self/schedstat` before and after; [`Summary::on_cpu`] is the fraction of the
//! threads' wall time they actually ran, reported beside every figure. (The kernel updates that
//! figure at scheduler ticks, a few milliseconds apart: exact to about 1 % over a full window,
//! rough in a `--quick` one.)

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Whether the threads of a run share one project (one counter, one row) or own one each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Every thread meters the same project: the contended case.
    Shared,
    /// Thread `i` meters project `i`: the scalable case.
    PerThread,
}

impl Sharing {
    /// The label used in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::PerThread => "per-thread",
        }
    }

    /// The project (or counter) index thread `thread` uses.
    pub fn slot(self, thread: usize) -> usize {
        match self {
            Sharing::Shared => 0,
            Sharing::PerThread => thread,
        }
    }
}

impl fmt::Display for Sharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One thread's share of a run: performs `calls` operations per [`Worker::run`].
///
/// The dynamic dispatch happens once per batch; the calls inside are monomorphised.
pub trait Worker: Send {
    /// Performs `calls` operations back to back.
    fn run(&mut self, calls: u64);
}

/// A [`Worker`] made of a closure that performs one operation.
pub struct Calls<F>(pub F);

impl<F: FnMut() + Send> Worker for Calls<F> {
    #[inline]
    fn run(&mut self, calls: u64) {
        for _ in 0..calls {
            (self.0)();
        }
    }
}

/// How long and in what units to measure.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Calls per timed sample.
    pub batch: u64,
    /// Untimed running before the measurement, per thread.
    pub warmup: Duration,
    /// The measuring window.
    pub measure: Duration,
}

/// The distribution one run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Calls per timed sample.
    pub batch: u64,
    /// Number of samples, all threads together.
    pub samples: usize,
    /// Median over samples of nanoseconds per call.
    pub median_ns: f64,
    /// 99th percentile over samples of nanoseconds per call (a per-batch mean, not per call).
    pub p99_ns: f64,
    /// Millions of calls per second, summed over threads.
    pub mops: f64,
    /// Fraction (0..=1) of the measuring window the threads spent on a CPU, averaged over
    /// threads; `None` where the kernel does not say.
    pub on_cpu: Option<f64>,
}

impl Summary {
    /// Summarises per-sample nanoseconds-per-call values and the total throughput.
    pub fn from_samples(
        batch: u64,
        mut per_call_ns: Vec<f64>,
        mops: f64,
        on_cpu: Option<f64>,
    ) -> Summary {
        per_call_ns.sort_by(f64::total_cmp);
        Summary {
            batch,
            samples: per_call_ns.len(),
            median_ns: percentile(&per_call_ns, 0.50),
            p99_ns: percentile(&per_call_ns, 0.99),
            mops,
            on_cpu,
        }
    }
}

/// Nanoseconds the calling thread has spent on a CPU (`/proc/thread-self/schedstat`, Linux).
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The nearest-rank percentile `p` (0..=1) of sorted values; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What one thread brings back.
struct ThreadResult {
    per_call_ns: Vec<f64>,
    calls: u64,
    elapsed: Duration,
    on_cpu: Option<Duration>,
}

/// Runs one worker per thread under `window` and summarises the samples of all threads.
pub fn measure(workers: Vec<Box<dyn Worker>>, window: Window) -> Summary {
    let threads = workers.len();
    let start = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let results: Vec<ThreadResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|worker| scope.spawn(|| run_thread(worker, window, &start, &stop)))
            .collect();
        start.wait();
        std::thread::sleep(window.measure);
        // Relaxed: the flag carries no data; the joins below order everything the threads wrote.
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread panicked"))
            .collect()
    });
    let mops = results
        .iter()
        .map(|r| r.calls as f64 / r.elapsed.as_secs_f64() / 1e6)
        .sum();
    let on_cpu = results
        .iter()
        .map(|r| Some(r.on_cpu?.as_secs_f64() / r.elapsed.as_secs_f64()))
        .sum::<Option<f64>>()
        .map(|sum| (sum / threads as f64).min(1.0));
    let samples = results.into_iter().flat_map(|r| r.per_call_ns).collect();
    Summary::from_samples(window.batch, samples, mops, on_cpu)
}

fn run_thread(
    mut worker: Box<dyn Worker>,
    window: Window,
    start: &Barrier,
    stop: &AtomicBool,
) -> ThreadResult {
    let warm_until = Instant::now() + window.warmup;
    while Instant::now() < warm_until {
        worker.run(window.batch);
    }
    let mut per_call_ns = Vec::with_capacity(1 << 16);
    let mut calls = 0;
    start.wait();
    let cpu_before = thread_cpu_ns();
    let began = Instant::now();
    // Relaxed: see `measure`; a late glimpse of the flag only adds one more batch.
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        worker.run(window.batch);
        let spent = t0.elapsed();
        per_call_ns.push(spent.as_nanos() as f64 / window.batch as f64);
        calls += window.batch;
    }
    let elapsed = began.elapsed();
    let on_cpu = cpu_before
        .zip(thread_cpu_ns())
        .map(|(before, after)| Duration::from_nanos(after.saturating_sub(before)));
    ThreadResult {
        per_call_ns,
        calls,
        elapsed,
        on_cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn measure_counts_every_thread() {
        let workers: Vec<Box<dyn Worker>> = (0..2)
            .map(|_| Box::new(Calls(|| std::hint::black_box(()))) as Box<dyn Worker>)
            .collect();
        let window = Window {
            batch: 10,
            warmup: Duration::from_millis(1),
            measure: Duration::from_millis(20),
        };
        let summary = measure(workers, window);
        assert!(summary.samples > 0);
        assert_eq!(summary.batch, 10);
        assert!(summary.mops > 0.0);
        assert!(summary.median_ns <= summary.p99_ns);
        assert!(summary.on_cpu.is_some_and(|f| f > 0.0 && f <= 1.0));
    }

    #[test]
    fn reads_thread_cpu_time() {
        // The kernel updates the figure at scheduler ticks: spin for several of them.
        let before = thread_cpu_ns().unwrap();
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until && thread_cpu_ns().unwrap() == before {
            std::hint::spin_loop();
        }
        assert!(thread_cpu_ns().unwrap() > before);
    }
}
