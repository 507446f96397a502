//! Results as people read them (aligned tables) and as scripts read them (one JSON document).

use std::fmt::Write as _;
use std::fs;

use serde_json::{json, Value};

use crate::harness::{Sharing, Summary};

/// One measured contestant at one thread count and sharing.
#[derive(Clone, Debug)]
pub struct Row {
    /// Stable contestant name (`atomic`, `tollgate`, `c_tg_consume`, …).
    pub contestant: String,
    /// What one call does.
    pub op: String,
    /// Threads calling at once.
    pub threads: usize,
    /// One shared project or one per thread.
    pub sharing: Sharing,
    /// The distribution.
    pub summary: Summary,
    /// Median divided by the bare atomic's median at the same threads and sharing.
    pub ratio_to_atomic: Option<f64>,
    /// Any other comparison worth a column (`1.04× ctypes empty call`).
    pub note: String,
    /// Rounds merged into this row (see [`merge_rounds`]).
    pub rounds: usize,
}

impl Row {
    /// A row with no ratios yet.
    pub fn new(
        contestant: &str,
        op: &str,
        threads: usize,
        sharing: Sharing,
        summary: Summary,
    ) -> Row {
        Row {
            contestant: contestant.to_owned(),
            op: op.to_owned(),
            threads,
            sharing,
            summary,
            ratio_to_atomic: None,
            note: String::new(),
            rounds: 1,
        }
    }

    /// The row as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "contestant": self.contestant,
            "op": self.op,
            "threads": self.threads,
            "sharing": self.sharing.label(),
            "batch": self.summary.batch,
            "samples": self.summary.samples,
            "rounds": self.rounds,
            "median_ns": round(self.summary.median_ns),
            "p99_ns": round(self.summary.p99_ns),
            "mops": round(self.summary.mops),
            "on_cpu": self.summary.on_cpu.map(round),
            "ratio_to_atomic": self.ratio_to_atomic.map(round),
            "note": self.note,
        })
    }
}

/// Merges the rows of repeated rounds: one row per contestant, threads and sharing (in the
/// order first seen) whose median, p99, throughput and on-CPU share are each the median over
/// the rounds, and whose sample count is their sum.
pub fn merge_rounds(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        let same = |g: &&mut Vec<Row>| {
            let first = &g[0];
            (first.contestant.as_str(), first.threads, first.sharing)
                == (row.contestant.as_str(), row.threads, row.sharing)
        };
        match groups.iter_mut().find(same) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let median = |field: fn(&Summary) -> f64| {
                let mut values: Vec<f64> = group.iter().map(|r| field(&r.summary)).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let on_cpu = group
                .iter()
                .map(|r| r.summary.on_cpu)
                .collect::<Option<Vec<f64>>>()
                .map(|mut v| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                });
            let summary = Summary {
                batch: group[0].summary.batch,
                samples: group.iter().map(|r| r.summary.samples).sum(),
                median_ns: median(|s| s.median_ns),
                p99_ns: median(|s| s.p99_ns),
                mops: median(|s| s.mops),
                on_cpu,
            };
            Row {
                summary,
                rounds: group.len(),
                ..group[0].clone()
            }
        })
        .collect()
}

/// Fills `ratio_to_atomic` of every row from the `atomic` row of the same threads and sharing.
pub fn add_atomic_ratios(rows: &mut [Row]) {
    let floors: Vec<(usize, Sharing, f64)> = rows
        .iter()
        .filter(|r| r.contestant == "atomic")
        .map(|r| (r.threads, r.sharing, r.summary.median_ns))
        .collect();
    for row in rows {
        row.ratio_to_atomic = floors
            .iter()
            .find(|(t, s, _)| *t == row.threads && *s == row.sharing)
            .map(|(_, _, floor)| row.summary.median_ns / floor);
    }
}

/// The median of the row named `contestant` at `threads` and `sharing`, if measured.
pub fn median_of(rows: &[Row], contestant: &str, threads: usize, sharing: Sharing) -> Option<f64> {
    rows.iter()
        .find(|r| r.contestant == contestant && r.threads == threads && r.sharing == sharing)
        .map(|r| r.summary.median_ns)
}

/// Renders the comparison table.
pub fn comparison_table(rows: &[Row]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.contestant.clone(),
                r.op.clone(),
                r.threads.to_string(),
                r.sharing.label().to_owned(),
                r.summary.batch.to_string(),
                fmt_ns(r.summary.median_ns),
                fmt_ns(r.summary.p99_ns),
                format!("{:.2}", r.summary.mops),
                r.summary
                    .on_cpu
                    .map_or("-".into(), |f| format!("{:.0}", f * 100.0)),
                r.ratio_to_atomic.map_or("-".into(), |x| format!("{x:.2}×")),
                r.note.clone(),
            ]
        })
        .collect();
    table(
        &[
            "contestant",
            "operation",
            "thr",
            "sharing",
            "batch",
            "median ns",
            "p99 ns",
            "Mops/s",
            "on-CPU %",
            "× atomic",
            "note",
        ],
        &body,
    )
}

/// A Markdown-compatible table with right-aligned numbers.
pub fn table(header: &[&str], body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |col: usize| {
        body.iter().all(|row| {
            row.get(col).is_some_and(|c| {
                c == "-"
                    || c.trim_end_matches('×')
                        .replace(',', "")
                        .parse::<f64>()
                        .is_ok()
            })
        })
    };
    let line = |cells: Vec<String>| {
        let mut out = String::from("|");
        for (col, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if numeric(col) {
                let _ = write!(out, " {}{} |", " ".repeat(pad), cell);
            } else {
                let _ = write!(out, " {}{} |", cell, " ".repeat(pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('|');
    for (col, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        out.push_str(&if numeric(col) {
            format!(" {dashes}:|")
        } else {
            format!(" {dashes} |")
        });
    }
    out.push('\n');
    for row in body {
        out.push_str(&line(row.clone()));
    }
    out
}

/// Nanoseconds with a precision that suits their size.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{:.0}", ns)
    }
}

/// Microseconds from nanoseconds, for the slower tables.
pub fn fmt_us(ns: f64) -> String {
    format!("{:.1}", ns / 1_000.0)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the run ran on: the facts STYLE §5 asks beside every figure.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `available_parallelism`.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Build profile of this binary.
    pub profile: &'static str,
}

impl Machine {
    /// Reads the machine's description.
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }

    /// The machine as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "kernel": self.kernel,
            "profile": self.profile,
        })
    }
}

/// The 1-, 5- and 15-minute load averages, a measure of how noisy the machine was.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(median_ns: f64) -> Summary {
        Summary {
            batch: 1000,
            samples: 10,
            median_ns,
            p99_ns: median_ns * 2.0,
            mops: 1.0,
            on_cpu: Some(1.0),
        }
    }

    #[test]
    fn ratios_follow_threads_and_sharing() {
        let mut rows = vec![
            Row::new("atomic", "op", 1, Sharing::Shared, summary(2.0)),
            Row::new("atomic", "op", 2, Sharing::Shared, summary(10.0)),
            Row::new("tollgate", "op", 1, Sharing::Shared, summary(3.0)),
            Row::new("tollgate", "op", 2, Sharing::Shared, summary(20.0)),
            Row::new("tollgate", "op", 2, Sharing::PerThread, summary(4.0)),
        ];
        add_atomic_ratios(&mut rows);
        assert_eq!(rows[2].ratio_to_atomic, Some(1.5));
        assert_eq!(rows[3].ratio_to_atomic, Some(2.0));
        assert_eq!(rows[4].ratio_to_atomic, None);
        assert_eq!(
            median_of(&rows, "tollgate", 2, Sharing::PerThread),
            Some(4.0)
        );
    }

    #[test]
    fn rounds_merge_by_median() {
        let rows = vec![
            Row::new("tollgate", "op", 1, Sharing::Shared, summary(5.0)),
            Row::new("atomic", "op", 1, Sharing::Shared, summary(2.0)),
            Row::new("tollgate", "op", 1, Sharing::Shared, summary(3.0)),
            Row::new("tollgate", "op", 1, Sharing::Shared, summary(4.0)),
        ];
        let merged = merge_rounds(rows);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].contestant, "tollgate");
        assert_eq!((merged[0].rounds, merged[0].summary.samples), (3, 30));
        assert_eq!(merged[0].summary.median_ns, 4.0);
        assert_eq!(merged[0].summary.p99_ns, 8.0);
        assert_eq!(merged[1].rounds, 1);
    }

    #[test]
    fn table_aligns_numbers_right() {
        let text = table(
            &["name", "ns"],
            &[
                vec!["a".into(), "1.5".into()],
                vec!["bbb".into(), "10.0".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| name |   ns |");
        assert_eq!(lines[1], "| ---- | ----:|");
        assert_eq!(lines[2], "| a    |  1.5 |");
        assert_eq!(lines[3], "| bbb  | 10.0 |");
    }
}
