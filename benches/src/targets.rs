//! The performance targets, judged against the figures of the same run. Nothing here asserts: a
//! missed target is reported as missed.

use serde_json::{json, Value};

use crate::durability::FlushCost;
use crate::harness::Sharing;
use crate::report::{median_of, table, Row};
use crate::switch::SwitchLatency;

/// One target and where this run landed.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What is measured.
    pub what: &'static str,
    /// The goal, as the issue states it.
    pub goal: String,
    /// The figure this run measured, formatted, or why there is none.
    pub measured: String,
    /// Whether the goal holds; `None` when not measured.
    pub holds: Option<bool>,
}

impl Target {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({"what": self.what, "goal": self.goal, "measured": self.measured, "holds": self.holds})
    }
}

/// Everything the targets are judged on.
pub struct Evidence<'a> {
    /// The comparison rows (with ratios filled in).
    pub rows: &'a [Row],
    /// The switch-latency run, if made.
    pub switch: Option<&'a SwitchLatency>,
    /// The flush costs, if measured.
    pub flush: &'a [FlushCost],
}

/// Judges every target.
pub fn judge(e: &Evidence<'_>) -> Vec<Target> {
    let row = |name: &str, threads: usize, sharing: Sharing| {
        e.rows
            .iter()
            .find(|r| r.contestant == name && r.threads == threads && r.sharing == sharing)
    };
    let one = row("tollgate", 1, Sharing::Shared);
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let c_vs_rust = ratio(
        median_of(e.rows, "c_tg_consume", 1, Sharing::Shared),
        median_of(e.rows, "tollgate", 1, Sharing::Shared),
    );
    let py_vs_empty = ratio(
        median_of(e.rows, "py_consume", 1, Sharing::Shared),
        median_of(e.rows, "py_ctypes_empty", 1, Sharing::Shared),
    );
    let median = |name: &str, threads: usize| median_of(e.rows, name, threads, Sharing::Shared);
    let thread_one = row("tollgate_thread", 1, Sharing::Shared);
    let flush_1000 = e.flush.iter().find(|f| f.dirty == 1_000).map(|f| f.p50_ns);
    let switch_ratio = e
        .switch
        .map(|s| s.near.p999 as f64 / s.far.p50.max(1) as f64);
    vec![
        judged(
            "consume median, 1 thread",
            one.map(|r| r.summary.median_ns),
            Goal::AtMost(15.0),
            "ns",
        ),
        judged(
            "consume vs fetch_add, 1 thread",
            one.and_then(|r| r.ratio_to_atomic),
            Goal::AtMost(1.6),
            "×",
        ),
        judged(
            "grants/s, 2 threads, one project",
            row("tollgate", 2, Sharing::Shared).map(|r| r.summary.mops),
            Goal::AtLeast(50.0),
            "M/s",
        ),
        judged(
            "grants/s, 2 threads, own projects",
            row("tollgate", 2, Sharing::PerThread).map(|r| r.summary.mops),
            Goal::AtLeast(170.0),
            "M/s",
        ),
        judged(
            "p99.9 near the switch vs far median",
            switch_ratio,
            Goal::AtMost(10.0),
            "×",
        ),
        judged(
            "C tg_consume vs Rust consume, 1 thread",
            c_vs_rust,
            Goal::AtMost(1.2),
            "×",
        ),
        judged(
            "Python consume vs empty ctypes call",
            py_vs_empty,
            Goal::AtMost(1.1),
            "×",
        ),
        judged(
            "Python consume_many per amount",
            median_of(e.rows, "py_consume_many", 1, Sharing::Shared),
            Goal::AtMost(15.0),
            "ns",
        ),
        judged(
            "thread handle consume vs fetch_add, 1 thread",
            thread_one.and_then(|r| r.ratio_to_atomic),
            Goal::AtMost(1.0),
            "×",
        ),
        judged(
            "C tg_thread_consume vs C fetch_add, 1 thread",
            ratio(median("c_tg_thread_consume", 1), median("c_atomic", 1)),
            Goal::AtMost(1.0),
            "×",
        ),
        judged(
            "thread handle consume vs fetch_add on one line, 2 threads, per call",
            ratio(median("tollgate_thread", 2), median("atomic", 2)),
            Goal::AtMost(1.0),
            "×",
        ),
        judged(
            "thread handle grants/s, 2 threads, one project",
            row("tollgate_thread", 2, Sharing::Shared).map(|r| r.summary.mops),
            Goal::AtLeast(400.0),
            "M/s",
        ),
        judged(
            "C tg_thread_consume_inline vs C fetch_add, 1 thread",
            ratio(
                median("c_tg_thread_consume_inline", 1),
                median("c_atomic", 1),
            ),
            Goal::AtMost(1.0),
            "×",
        ),
        judged(
            "C tg_thread_consume vs Rust thread consume, 1 thread",
            ratio(
                median("c_tg_thread_consume", 1),
                median("tollgate_thread", 1),
            ),
            Goal::AtMost(1.1),
            "×",
        ),
        judged(
            "C tg_thread_consume_inline vs Rust thread consume, 1 thread",
            ratio(
                median("c_tg_thread_consume_inline", 1),
                median("tollgate_thread", 1),
            ),
            Goal::AtMost(1.1),
            "×",
        ),
        judged(
            "flush() p50, 1,000 dirty projects",
            flush_1000.map(|ns| ns / 1e3),
            Goal::AtMost(200.0),
            "µs",
        ),
    ]
}

/// Which side of the limit a figure must fall on.
#[derive(Clone, Copy)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

fn judged(what: &'static str, value: Option<f64>, goal: Goal, unit: &str) -> Target {
    let (sign, limit) = match goal {
        Goal::AtMost(limit) => ("≤", limit),
        Goal::AtLeast(limit) => ("≥", limit),
    };
    Target {
        what,
        goal: format!("{sign} {limit} {unit}"),
        measured: value.map_or("not measured".into(), |v| format!("{v:.2} {unit}")),
        holds: value.map(|v| match goal {
            Goal::AtMost(_) => v <= limit,
            Goal::AtLeast(_) => v >= limit,
        }),
    }
}

/// The targets as a table.
pub fn targets_table(targets: &[Target]) -> String {
    let body: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            vec![
                t.what.to_owned(),
                t.goal.clone(),
                t.measured.clone(),
                match t.holds {
                    Some(true) => "holds",
                    Some(false) => "MISSED",
                    None => "-",
                }
                .to_owned(),
            ]
        })
        .collect();
    table(&["target", "goal", "this run", "verdict"], &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Summary;

    #[test]
    fn unmeasured_targets_have_no_verdict() {
        let targets = judge(&Evidence {
            rows: &[],
            switch: None,
            flush: &[],
        });
        assert!(targets.iter().all(|t| t.holds.is_none()));
    }

    #[test]
    fn judges_the_single_thread_median() {
        let summary = Summary {
            batch: 1000,
            samples: 3,
            median_ns: 12.0,
            p99_ns: 20.0,
            mops: 80.0,
            on_cpu: None,
        };
        let mut rows = vec![Row::new("tollgate", "consume", 1, Sharing::Shared, summary)];
        rows[0].ratio_to_atomic = Some(2.0);
        let targets = judge(&Evidence {
            rows: &rows,
            switch: None,
            flush: &[],
        });
        assert_eq!(targets[0].holds, Some(true));
        assert_eq!(targets[1].holds, Some(false));
    }
}
