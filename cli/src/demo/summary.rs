//! The demo's closing account: what was granted, what was charged, the switch and the timings.

use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;
use tollgate_core::{Event, KeyUsage, ProjectView};

use super::live::format_duration;
use super::workload::ThreadReport;
use crate::size::{format_bytes, format_count};

/// The switch as the demo saw it.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchSeen {
    /// The key that ran out.
    pub from: String,
    /// The key that took over.
    pub to: String,
    /// `exhausted` or `expired`.
    pub reason: String,
    /// Seconds after the migration started at which the event arrived.
    pub at_seconds: f64,
}

/// Everything `tollgate demo --json` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The state directory used.
    pub state_dir: String,
    /// Whether it was a temporary directory, removed at exit.
    pub temporary: bool,
    /// The project.
    pub project: String,
    /// Migration threads.
    pub threads: u16,
    /// Smallest and largest batch, in bytes.
    pub batch_bytes: [u64; 2],
    /// Bytes granted to the threads, summed from what each call returned.
    pub bytes_granted: u64,
    /// Bytes charged to the keys, summed from the engine's key usage.
    pub bytes_charged: u64,
    /// `bytes_granted == bytes_charged`.
    pub exact: bool,
    /// Switches the project's pair made.
    pub switches: u64,
    /// The switch event.
    pub switch: Option<SwitchSeen>,
    /// `consume` and `consume_partial` calls.
    pub calls: u64,
    /// Calls refused.
    pub refused_calls: u64,
    /// The refusal that stopped the first thread.
    pub first_refusal: Option<String>,
    /// Wall-clock time of the migration.
    pub wall_seconds: f64,
    /// Calls per second of wall-clock time (paced by the simulated copy unless `--pace 0`).
    pub calls_per_second: f64,
    /// The `--pace` asked for: the copy was simulated to take about this long (0 = unpaced).
    pub pace_seconds: f64,
    /// Mean time inside one call.
    pub mean_call_ns: u64,
    /// The longest single call observed.
    pub longest_call_ns: u64,
    /// The keys with their final usage.
    pub keys: Vec<KeyUsage>,
    /// Events delivered to the demo's subscription while it ran.
    pub events: Vec<Event>,
    /// Events the engine could not deliver.
    pub dropped_events: u64,
    /// The project card at the end.
    pub view: ProjectView,
}

/// The per-thread reports folded together.
pub struct Totals {
    /// Calls.
    pub calls: u64,
    /// Bytes granted.
    pub granted: u64,
    /// Refused calls.
    pub refused: u64,
    /// Time inside calls.
    pub busy: Duration,
    /// Longest call.
    pub longest: Duration,
    /// The first thread's stopping refusal.
    pub first_refusal: Option<String>,
}

impl Totals {
    /// Adds up the threads' reports.
    pub fn of(reports: &[ThreadReport]) -> Totals {
        Totals {
            calls: reports.iter().map(|r| r.calls).sum(),
            granted: reports.iter().map(|r| r.granted).sum(),
            refused: reports.iter().map(|r| r.refused).sum(),
            busy: reports.iter().map(|r| r.busy).sum(),
            longest: reports.iter().map(|r| r.longest).max().unwrap_or_default(),
            first_refusal: reports.iter().find_map(|r| r.stopped_by.clone()),
        }
    }

    /// Mean time inside one call.
    pub fn mean(&self) -> Duration {
        u32::try_from(self.calls.max(1))
            .map(|calls| self.busy / calls)
            .unwrap_or_else(|_| {
                Duration::from_secs_f64(self.busy.as_secs_f64() / self.calls as f64)
            })
    }
}

impl Summary {
    /// The closing lines a person reads.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "Summary")?;
        writeln!(
            out,
            "  granted       {} bytes ({}) in {} calls on {} threads",
            format_count(self.bytes_granted),
            format_bytes(self.bytes_granted),
            format_count(self.calls),
            self.threads
        )?;
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{} {}", k.key.id, format_count(k.used)))
            .collect();
        writeln!(
            out,
            "  charged       {} bytes ({}){}",
            format_count(self.bytes_charged),
            parts.join(" + "),
            if self.exact {
                " = granted, exactly"
            } else {
                " ≠ granted: INVARIANT BROKEN"
            }
        )?;
        match &self.switch {
            Some(s) => writeln!(
                out,
                "  switches      {} ({} → {} at {:.2} s, {})",
                self.switches, s.from, s.to, s.at_seconds, s.reason
            )?,
            None => writeln!(out, "  switches      {}", self.switches)?,
        }
        writeln!(
            out,
            "  refused       {} calls; the threads stopped on: {}",
            format_count(self.refused_calls),
            self.first_refusal.as_deref().unwrap_or("none")
        )?;
        writeln!(
            out,
            "  longest call  {} (mean {} inside consume)",
            format_duration(Duration::from_nanos(self.longest_call_ns)),
            format_duration(Duration::from_nanos(self.mean_call_ns))
        )?;
        let pace = if self.pace_seconds > 0.0 {
            "the pace of the simulated copy, not a limit of the engine"
        } else {
            "unpaced"
        };
        writeln!(
            out,
            "  calls/s       {} over {:.2} s ({pace})",
            format_count(self.calls_per_second as u64),
            self.wall_seconds
        )?;
        if self.dropped_events > 0 {
            writeln!(out, "  events lost   {}", self.dropped_events)?;
        }
        Ok(())
    }
}
