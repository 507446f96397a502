//! What the demo shows while the migration runs: a progress bar per key on a terminal, plain
//! progress lines otherwise, and event lines above either.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tollgate_core::Usage;

use super::workload::Progress;
use crate::render::percent;
use crate::size::{format_bytes, format_count};

/// A key the display follows: the first starts Active, the second Reserved.
pub struct Tracked {
    /// Key id.
    pub id: String,
    /// Its limit in bytes.
    pub limit: u64,
}

/// The live display.
pub struct Live {
    started: Instant,
    keys: [Tracked; 2],
    bars: Option<Bars>,
    /// Plain mode: the next quarter of the total volume to report.
    next_quarter: u64,
}

struct Bars {
    multi: MultiProgress,
    keys: [ProgressBar; 2],
    status: ProgressBar,
}

impl Live {
    /// Bars when `terminal`, plain lines otherwise.
    pub fn new(keys: [Tracked; 2], terminal: bool) -> Live {
        let bars = terminal.then(|| Bars::new(&keys));
        Live {
            started: Instant::now(),
            keys,
            bars,
            next_quarter: 1,
        }
    }

    /// Time since the migration started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints a line above the bars (or plainly).
    pub fn say(&self, out: &mut dyn Write, line: &str) -> io::Result<()> {
        match &self.bars {
            Some(bars) => bars.multi.println(line),
            None => writeln!(out, "{line}").and_then(|()| out.flush()),
        }
    }

    /// Shows the usage now: moves the bars, or prints a line at each quarter of the volume.
    pub fn update(
        &mut self,
        out: &mut dyn Write,
        usage: &Usage,
        progress: &Progress,
    ) -> io::Result<()> {
        let used = self.used_per_key(usage);
        match &self.bars {
            Some(bars) => {
                for (i, bar) in bars.keys.iter().enumerate() {
                    bar.set_position(used[i]);
                    bar.set_message(self.role(i, usage, used[i]));
                }
                bars.status.set_message(format!(
                    "{} consume calls · longest {} · {:.1} s",
                    format_count(progress.calls()),
                    format_duration(progress.longest()),
                    self.elapsed().as_secs_f64()
                ));
                Ok(())
            }
            None => {
                let total = self.keys[0].limit + self.keys[1].limit;
                let granted = used[0] + used[1];
                while self.next_quarter <= 4 && granted >= total / 4 * self.next_quarter {
                    self.next_quarter += 1;
                    writeln!(
                        out,
                        "  {:>5.2} s  {:>3} %  {} of {} granted · {} {} % · {} {} % · {} calls",
                        self.elapsed().as_secs_f64(),
                        percent(granted, total),
                        format_bytes(granted),
                        format_bytes(total),
                        self.keys[0].id,
                        percent(used[0], self.keys[0].limit),
                        self.keys[1].id,
                        percent(used[1], self.keys[1].limit),
                        format_count(progress.calls()),
                    )?;
                }
                out.flush()
            }
        }
    }

    /// Leaves the finished bars on the screen.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for bar in bars.keys.iter().chain([&bars.status]) {
                bar.abandon();
            }
        }
    }

    /// Bytes charged to each tracked key: before the switch the first is Active; after it, the
    /// first is used up and the second is Active.
    fn used_per_key(&self, usage: &Usage) -> [u64; 2] {
        if usage.switches == 0 {
            [usage.active_used, usage.reserved_used]
        } else {
            [self.keys[0].limit, usage.active_used]
        }
    }

    fn role(&self, index: usize, usage: &Usage, used: u64) -> &'static str {
        let active = usize::from(usage.switches > 0) == index;
        match (used >= self.keys[index].limit, active) {
            (true, _) => "used up",
            (false, true) => "Active",
            (false, false) => "Reserved",
        }
    }
}

impl Bars {
    fn new(keys: &[Tracked; 2]) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(15));
        let style = ProgressStyle::with_template(
            "  {prefix:<9} {bar:36.cyan/blue} {binary_bytes:>10} of {binary_total_bytes:<10} {msg}",
        )
        .expect("the bar template is valid")
        .progress_chars("█▉▊▋▌▍▎▏ ");
        let bar = |key: &Tracked| {
            multi
                .add(ProgressBar::new(key.limit))
                .with_style(style.clone())
                .with_prefix(key.id.clone())
        };
        let keys = [bar(&keys[0]), bar(&keys[1])];
        let status = multi.add(
            ProgressBar::new_spinner()
                .with_style(ProgressStyle::with_template("  {msg}").expect("valid template")),
        );
        Bars {
            multi,
            keys,
            status,
        }
    }
}

/// A short duration with a fitting unit: `850 ns`, `12.3 µs`, `4.10 ms`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.1} µs", nanos as f64 / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2} ms", nanos as f64 / 1e6)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(format_duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(format_duration(Duration::from_nanos(12_345)), "12.3 µs");
        assert_eq!(format_duration(Duration::from_micros(4_100)), "4.10 ms");
        assert_eq!(format_duration(Duration::from_millis(2_500)), "2.50 s");
    }
}
