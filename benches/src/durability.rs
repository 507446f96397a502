//! What durability costs: `Engine::flush()` latency by the number of dirty projects.
//!
//! A project is *dirty* when it consumed since the last flush. Each sample consumes 1 byte on
//! the first `dirty` projects (untimed), then times one `flush()`: `msync(MS_SYNC)` of the hot
//! file's dirty pages plus the catalog checkpoint. `dirty = 0` is the fixed cost of a flush with
//! nothing to write, measured beside the rest.

use std::time::Instant;

use serde_json::{json, Value};

use crate::fixture::{self, BenchResult, DiskState};
use crate::harness::percentile;
use crate::report::{fmt_us, table};

/// Flush latency with one number of dirty projects.
#[derive(Clone, Debug, PartialEq)]
pub struct FlushCost {
    /// Projects consumed on before each flush.
    pub dirty: usize,
    /// Flushes timed.
    pub samples: usize,
    /// Median flush, nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile flush, nanoseconds.
    pub p99_ns: f64,
    /// Slowest flush, nanoseconds.
    pub max_ns: f64,
}

impl FlushCost {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({"dirty_projects": self.dirty, "samples": self.samples,
               "p50_ns": self.p50_ns, "p99_ns": self.p99_ns, "max_ns": self.max_ns})
    }
}

/// Measures `flush()` on `state` (on disk) for each count in `dirty`, `samples(count)` times.
pub fn measure(
    state: &DiskState,
    dirty: &[usize],
    samples: impl Fn(usize) -> usize,
) -> BenchResult<Vec<FlushCost>> {
    let engine = fixture::open(state.dir.path(), 0)?;
    let most = dirty.iter().copied().max().unwrap_or(0);
    let handles = fixture::handles(&engine, most)?;
    // The copy left the files' pages dirty in the page cache: write them out first.
    engine.flush()?;
    dirty
        .iter()
        .map(|&count| {
            let n = samples(count);
            let mut took = Vec::with_capacity(n);
            for _ in 0..n {
                for project in &handles[..count] {
                    project.consume(1)?;
                }
                let t0 = Instant::now();
                engine.flush()?;
                took.push(t0.elapsed().as_nanos() as f64);
            }
            took.sort_by(f64::total_cmp);
            Ok(FlushCost {
                dirty: count,
                samples: n,
                p50_ns: percentile(&took, 0.50),
                p99_ns: percentile(&took, 0.99),
                max_ns: percentile(&took, 1.0),
            })
        })
        .collect()
}

/// The flush results as a table.
pub fn flush_table(costs: &[FlushCost]) -> String {
    let body: Vec<Vec<String>> = costs
        .iter()
        .map(|c| {
            vec![
                c.dirty.to_string(),
                c.samples.to_string(),
                fmt_us(c.p50_ns),
                fmt_us(c.p99_ns),
                fmt_us(c.max_ns),
            ]
        })
        .collect();
    table(
        &["dirty projects", "flushes", "p50 µs", "p99 µs", "max µs"],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_each_dirty_count() {
        let state = DiskState::build(8, 8).unwrap();
        let costs = measure(&state, &[0, 1, 8], |_| 3).unwrap();
        assert_eq!(costs.len(), 3);
        assert_eq!(costs[2].dirty, 8);
        assert!(costs.iter().all(|c| c.samples == 3 && c.p50_ns <= c.max_ns));
    }
}
