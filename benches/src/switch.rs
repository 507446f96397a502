//! Latency of every `consume` around the Active→Reserved switch, against the same threads far
//! from it: the evidence that the switch stalls no caller.
//!
//! Two (or more) threads consume 1 byte per call from one project whose Active key runs out
//! halfway through the run. Every call is timed with its own pair of [`Instant`]s. The switch's
//! moment is taken as the completion time of the grant that reached the Active limit, which is
//! the `n`-th completed call overall (every call grants exactly 1 byte). Calls that started within
//! ±0.5 ms of that moment form the *near* histogram; calls more than [`FAR`] away the *far* one.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::fixture::{self, BenchResult};
use crate::harness::thread_cpu_ns;
use crate::report::table;
use tollgate_core::MAX_LIMIT_BYTES;

/// Half the width of the window around the switch.
pub const HALF_WINDOW: Duration = Duration::from_micros(500);
/// How far from the switch a call must start to count as "far".
pub const FAR: Duration = Duration::from_millis(2);

/// p50, p99, p99.9 and max of one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    /// Calls recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest call.
    pub max: u64,
}

impl Tail {
    fn of(h: &Histogram<u64>) -> Tail {
        Tail {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    fn to_json(self) -> Value {
        json!({"count": self.count, "p50_ns": self.p50, "p99_ns": self.p99,
               "p999_ns": self.p999, "max_ns": self.max})
    }
}

/// The outcome of the switch-latency run.
#[derive(Clone, Debug)]
pub struct SwitchLatency {
    /// Threads that consumed.
    pub threads: usize,
    /// Calls per thread.
    pub calls_per_thread: u64,
    /// Calls that started within ±[`HALF_WINDOW`] of the switch.
    pub near: Tail,
    /// Calls that started more than [`FAR`] from it.
    pub far: Tail,
    /// Two back-to-back `Instant::now()` calls: the floor every per-call figure includes.
    pub clock_floor: Tail,
    /// Switches the project made (must be exactly 1).
    pub switches: u64,
    /// Fraction of the run the threads spent on a CPU (see [`crate::harness::thread_cpu_ns`]):
    /// near 1 means they really ran at the same time and contended.
    pub on_cpu: Option<f64>,
}

impl SwitchLatency {
    /// The result as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "threads": self.threads,
            "calls_per_thread": self.calls_per_thread,
            "window_us": HALF_WINDOW.as_micros() * 2,
            "far_ms": FAR.as_millis(),
            "near": self.near.to_json(),
            "far": self.far.to_json(),
            "clock_floor": self.clock_floor.to_json(),
            "switches": self.switches,
            "on_cpu": self.on_cpu,
        })
    }

    /// The result as a table.
    pub fn table(&self) -> String {
        let row = |name: &str, t: Tail| {
            vec![
                name.to_owned(),
                t.count.to_string(),
                t.p50.to_string(),
                t.p99.to_string(),
                t.p999.to_string(),
                t.max.to_string(),
            ]
        };
        table(
            &[
                "consume latency",
                "calls",
                "p50 ns",
                "p99 ns",
                "p99.9 ns",
                "max ns",
            ],
            &[
                row("±0.5 ms around the switch", self.near),
                row("≥2 ms from the switch", self.far),
                row("clock floor (now→now)", self.clock_floor),
            ],
        )
    }
}

/// What one thread brings back: its calls, and its run time on and off the CPU.
struct ThreadCalls {
    calls: Vec<Call>,
    wall: Duration,
    on_cpu: Option<Duration>,
}

/// One call: when it started (ns since the common start) and how long it took.
#[derive(Clone, Copy)]
struct Call {
    start_ns: u64,
    took_ns: u64,
}

/// Runs `threads` threads of `calls_per_thread` 1-byte consumes on one project whose Active key
/// runs out after half of all calls; with `thread_handles`, each thread consumes through a
/// thread handle of its own (a lease slot) rather than the shared project handle.
pub fn measure(
    threads: usize,
    calls_per_thread: u64,
    thread_handles: bool,
) -> BenchResult<SwitchLatency> {
    let dir = fixture::disk_dir()?;
    let engine = fixture::open(dir.path(), 16)?;
    engine.create_project("switch")?;
    let total = threads as u64 * calls_per_thread;
    let before_switch = total / 2;
    // A large Active key pre-consumed to `before_switch` bytes short of its limit: the cursor
    // is then at the same magnitude as in production, and no threshold is crossed early.
    let active_limit = MAX_LIMIT_BYTES / 2;
    engine.add_key("switch", fixture::key("switch-A", active_limit))?;
    engine.add_key("switch", fixture::key("switch-R", MAX_LIMIT_BYTES))?;
    let project = engine.project("switch")?;
    project.consume(active_limit - before_switch)?;

    let barrier = Barrier::new(threads);
    let epoch = Instant::now();
    let threads_done: Vec<ThreadCalls> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let project = project.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    // Written (not just reserved) before the start, so that no page fault
                    // desynchronises the threads during the run.
                    let unset = Call {
                        start_ns: u64::MAX,
                        took_ns: 0,
                    };
                    let mut calls = vec![unset; calls_per_thread as usize];
                    let thread = thread_handles.then(|| project.for_thread().expect("a slot"));
                    barrier.wait();
                    let (began, cpu_before) = (Instant::now(), thread_cpu_ns());
                    for call in calls.iter_mut() {
                        let t0 = Instant::now();
                        let granted = match &thread {
                            Some(thread) => thread.consume(1),
                            None => project.consume(1),
                        };
                        let t1 = Instant::now();
                        assert!(granted.is_ok(), "consume refused during the switch run");
                        *call = Call {
                            start_ns: (t0 - epoch).as_nanos() as u64,
                            took_ns: (t1 - t0).as_nanos() as u64,
                        };
                    }
                    drop(thread);
                    let on_cpu = cpu_before
                        .zip(thread_cpu_ns())
                        .map(|(b, a)| Duration::from_nanos(a.saturating_sub(b)));
                    ThreadCalls {
                        calls,
                        wall: began.elapsed(),
                        on_cpu,
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a switch thread panicked"))
            .collect()
    });
    let on_cpu = threads_done
        .iter()
        .map(|t| Some(t.on_cpu?.as_secs_f64() / t.wall.as_secs_f64()))
        .sum::<Option<f64>>()
        .map(|sum| (sum / threads as f64).min(1.0));
    let calls: Vec<Vec<Call>> = threads_done.into_iter().map(|t| t.calls).collect();
    let usage = project.usage();
    let mut ends: Vec<u64> = calls
        .iter()
        .flatten()
        .map(|c| c.start_ns + c.took_ns)
        .collect();
    ends.sort_unstable();
    let switch_at = ends[before_switch as usize - 1];

    let (mut near, mut far) = (histogram()?, histogram()?);
    let (half, far_from) = (HALF_WINDOW.as_nanos() as u64, FAR.as_nanos() as u64);
    for call in calls.iter().flatten() {
        let distance = call.start_ns.abs_diff(switch_at);
        if distance <= half {
            near.record(call.took_ns.max(1))?;
        } else if distance >= far_from {
            far.record(call.took_ns.max(1))?;
        }
    }
    Ok(SwitchLatency {
        threads,
        calls_per_thread,
        near: Tail::of(&near),
        far: Tail::of(&far),
        clock_floor: clock_floor(calls_per_thread.min(1_000_000))?,
        switches: usage.switches,
        on_cpu,
    })
}

fn histogram() -> BenchResult<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

/// The distribution of two back-to-back clock reads.
fn clock_floor(samples: u64) -> BenchResult<Tail> {
    let mut h = histogram()?;
    for _ in 0..samples {
        let t0 = Instant::now();
        let t1 = Instant::now();
        h.record(((t1 - t0).as_nanos() as u64).max(1))?;
    }
    Ok(Tail::of(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_switch_is_observed() {
        for thread_handles in [false, true] {
            let result = measure(2, 20_000, thread_handles).unwrap();
            assert_eq!(result.switches, 1);
            assert!(result.near.count > 0);
            assert!(result.near.p50 <= result.near.max);
        }
    }
}
