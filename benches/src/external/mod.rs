//! Contestants that run in another process — the C program and the Python script — and print
//! their own measurements as JSON lines, one per contestant, which become [`Row`]s here.
//!
//! They measure the way [`crate::harness`] does: batches of calls timed with a monotonic clock,
//! nearest-rank median and p99 over per-batch means, throughput summed over threads.

mod c_abi;
mod python;

pub use c_abi::CProgram;
pub use python::PythonBench;

use std::process::Command;

use serde_json::Value;

use crate::fixture::BenchResult;
use crate::harness::{Sharing, Summary};
use crate::report::Row;

/// Why an external contestant did not run, for the report.
pub type Skip = String;

/// Runs `command` and turns each JSON line it prints into a row.
fn run_rows(mut command: Command) -> BenchResult<Vec<Row>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    String::from_utf8(output.stdout)?
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(parse_row)
        .collect()
}

/// One JSON line: `{"contestant", "op", "threads", "sharing", "batch", "samples", "median_ns",
/// "p99_ns", "mops"}` and optionally `"on_cpu"` (fraction of the window the threads ran).
fn parse_row(line: &str) -> BenchResult<Row> {
    let v: Value = serde_json::from_str(line)?;
    let text = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{k} missing in {line}"))
    };
    let number = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("{k} missing in {line}"))
    };
    let sharing = match text("sharing")?.as_str() {
        "shared" => Sharing::Shared,
        "per-thread" => Sharing::PerThread,
        other => return Err(format!("unknown sharing {other:?}").into()),
    };
    let summary = Summary {
        batch: number("batch")? as u64,
        samples: number("samples")? as usize,
        median_ns: number("median_ns")?,
        p99_ns: number("p99_ns")?,
        mops: number("mops")?,
        on_cpu: v["on_cpu"].as_f64(),
    };
    Ok(Row::new(
        &text("contestant")?,
        &text("op")?,
        number("threads")? as usize,
        sharing,
        summary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_row() {
        let row = parse_row(
            r#"{"contestant":"c_tg_consume","op":"tg_consume(1)","threads":2,"sharing":"per-thread",
                "batch":1000,"samples":5,"median_ns":7.5,"p99_ns":9,"mops":250.0}"#,
        )
        .unwrap();
        assert_eq!(row.contestant, "c_tg_consume");
        assert_eq!(row.sharing, Sharing::PerThread);
        assert_eq!(row.summary.median_ns, 7.5);
        assert_eq!(row.summary.samples, 5);
    }

    #[test]
    fn rejects_a_row_without_fields() {
        assert!(parse_row(r#"{"contestant":"x"}"#).is_err());
    }
}
