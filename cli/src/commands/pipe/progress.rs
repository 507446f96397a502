//! What `tollgate pipe` shows on standard error while it copies: an indicatif bar when standard
//! error is a terminal, one plain line a second with `--progress` otherwise, else nothing but
//! the switch and the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tollgate_core::Usage;

use crate::render::percent;
use crate::size::{format_size, Units};

/// How often the plain lines of `--progress` come.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// The progress display.
pub enum Progress {
    /// Standard error is not a terminal and `--progress` was not given.
    Off,
    /// Standard error is a terminal.
    Bar {
        /// The bar: bytes, rate, and the usage of each key in its message.
        bar: ProgressBar,
        /// The percentages the message shows, so it is rebuilt only when one changes.
        shown: (u64, u64),
    },
    /// `--progress` without a terminal: a line a second.
    Lines {
        /// When the copy began.
        started: Instant,
        /// When the last line was printed.
        last: Instant,
    },
}

/// The ids of a pair's keys, for the messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIds {
    /// The Active key.
    pub active: Option<String>,
    /// The Reserved key.
    pub reserved: Option<String>,
}

impl Progress {
    /// The display for this process's standard error.
    pub fn new(forced: bool) -> Progress {
        if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{spinner} {bytes} copied · {binary_bytes_per_sec} · {elapsed} · {msg}",
            )
            .expect("valid template");
            let bar =
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar {
                bar,
                shown: (u64::MAX, u64::MAX),
            }
        } else if forced {
            let now = Instant::now();
            Progress::Lines {
                started: now,
                last: now,
            }
        } else {
            Progress::Off
        }
    }

    /// Whether anything is shown while the copy runs.
    pub fn shown(&self) -> bool {
        !matches!(self, Progress::Off)
    }

    /// Shows that `written` bytes went through, with the pair's usage now.
    pub fn update(&mut self, written: u64, usage: &Usage, keys: &KeyIds) {
        match self {
            Progress::Off => {}
            Progress::Bar { bar, shown } => {
                bar.set_position(written);
                let now = percents(usage);
                if now != *shown {
                    *shown = now;
                    bar.set_message(key_usage(usage, keys));
                }
            }
            Progress::Lines { started, last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", line(written, started.elapsed(), usage, keys));
                }
            }
        }
    }

    /// Prints a line of its own (a switch, the end), above the bar when there is one.
    pub fn note(&self, text: &str) {
        match self {
            Progress::Bar { bar, .. } => bar.println(text),
            Progress::Off | Progress::Lines { .. } => eprintln!("{text}"),
        }
    }

    /// Ends the display; with a bar or `--progress`, says what went through.
    pub fn finish(&self, written: u64, usage: &Usage, keys: &KeyIds) {
        match self {
            Progress::Off => {}
            Progress::Bar { bar, .. } => {
                bar.set_position(written);
                bar.set_message(key_usage(usage, keys));
                bar.finish();
            }
            Progress::Lines { started, .. } => {
                eprintln!("{}", line(written, started.elapsed(), usage, keys));
            }
        }
    }
}

/// The Active and Reserved keys' usage in whole percent.
fn percents(usage: &Usage) -> (u64, u64) {
    (
        percent(usage.active_used, usage.active_limit),
        percent(usage.reserved_used, usage.reserved_limit),
    )
}

/// "key A-1 45 % · reserve A-2 0 %".
fn key_usage(usage: &Usage, keys: &KeyIds) -> String {
    let (active, reserved) = percents(usage);
    let mut text = match &keys.active {
        Some(id) => format!("key {id} {active} %"),
        None => "no Active key".to_owned(),
    };
    if let Some(id) = &keys.reserved {
        text.push_str(&format!(" · reserve {id} {reserved} %"));
    }
    text
}

/// One plain progress line.
fn line(written: u64, elapsed: Duration, usage: &Usage, keys: &KeyIds) -> String {
    let rate = (written as f64 / elapsed.as_secs_f64().max(1e-3)) as u64;
    format!(
        "tollgate pipe: {} copied · {}/s · {}",
        format_size(written, Units::Binary),
        format_size(rate, Units::Binary),
        key_usage(usage, keys)
    )
}
