//! `tollgate demo`: a simulated multi-threaded table migration metered by Tollgate.
//!
//! On a fresh temporary state (or `--state DIR` if given on the command line) it creates the
//! project `warehouse-migration` with an Active and a Reserved data-volume key, then lets
//! several threads move rows in batches through `ProjectHandle::consume` until both keys are
//! used up. It shows the switch the moment the engine reports it, times every call, and checks
//! that the bytes granted equal the bytes charged, exactly.

mod live;
mod summary;
mod workload;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_core::{
    active_tooltip, Delivery, Edition, Engine, Event, EventKind, Key, KeyKind, LicenseClass,
    Options, ProjectHandle, Role, Scheme, Subscription, SwitchReason,
};

use self::live::{Live, Tracked};
use self::summary::{Summary, SwitchSeen, Totals};
use self::workload::{Plan, Progress, ThreadReport, MAX_BATCH, MIN_BATCH, ROW_BYTES};
use crate::args::DemoArgs;
use crate::context::Context;
use crate::failure::Failure;
use crate::output::json_document;
use crate::render::{event_text, refusal_text, write_view};
use crate::size::{format_bytes, format_count};

/// The demo's project.
const PROJECT: &str = "warehouse-migration";

/// The ids of the Active and the Reserved key.
const KEY_IDS: [&str; 2] = ["MIG-0001", "MIG-0002"];

/// How long the display waits for an event before refreshing the bars.
const REFRESH: Duration = Duration::from_millis(40);

/// After the threads stop, the demo takes the engine's last events until none has come for
/// this long…
const SETTLE: Duration = Duration::from_millis(300);

/// …but waits up to this long for the switch and the refusal it knows happened, since a busy
/// machine can delay the engine's dispatcher thread.
const SETTLE_AT_MOST: Duration = Duration::from_secs(5);

/// Runs the demo; fails with exit status 1 only if an invariant does not hold.
pub fn run(ctx: &Context, args: &DemoArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let temporary = if ctx.state_explicit {
        None
    } else {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-demo-")
            .tempdir()
            .map_err(|e| {
                Failure::refused("IO", format!("cannot create a temporary state: {e}"), None)
            })?;
        Some(dir)
    };
    let dir = temporary
        .as_ref()
        .map_or_else(|| ctx.state.clone(), |t| t.path().to_owned());
    // A temporary state gets a temporary installation beside it: anchoring a state that is
    // removed at exit in the user's real installation would only leave litter there.
    let options = Options {
        installation_dir: temporary.as_ref().map(|t| t.path().join("installation")),
        ..Options::default()
    };
    // Declared after `temporary`, so the engine closes before the directory is removed.
    let engine = Engine::open_with(&dir, options)?;
    let text = !ctx.json;
    if text {
        writeln!(
            out,
            "Tollgate demo · a simulated table migration metered by Tollgate"
        )?;
        let note = if temporary.is_some() {
            " (temporary, removed at exit)"
        } else {
            ""
        };
        writeln!(out, "State: {}{note}", dir.display())?;
        writeln!(out)?;
    }
    set_up(&engine, args.volume, out, text)?;
    let handle = engine.project(PROJECT)?;
    let run = migrate(&engine, &handle, args, out, text)?;
    let place = StatePlace {
        dir: dir.display().to_string(),
        temporary: temporary.is_some(),
    };
    let summary = summarize(&engine, &handle, args, run, place)?;
    if text {
        writeln!(out)?;
        write_view(out, &summary.view)?;
        writeln!(out)?;
        summary.write_text(out)?;
    } else {
        json_document(out, &summary)?;
    }
    if !summary.exact || summary.switches != 1 {
        return Err(Failure::Shown {
            message: format!(
                "an engine invariant did not hold: expected granted == charged and 1 switch, saw {} granted, {} charged, {} switches",
                summary.bytes_granted, summary.bytes_charged, summary.switches
            ),
        });
    }
    Ok(())
}

/// Accounts the run: the threads' grants against the engine's charges, the switch, the timings.
fn summarize(
    engine: &Engine,
    handle: &ProjectHandle,
    args: &DemoArgs,
    run: Run,
    place: StatePlace,
) -> Result<Summary, Failure> {
    let totals = Totals::of(&run.reports);
    let keys = engine.keys(PROJECT)?;
    let bytes_charged = keys.iter().map(|k| k.used).sum();
    let wall = run.wall.as_secs_f64().max(f64::EPSILON);
    Ok(Summary {
        state_dir: place.dir,
        temporary: place.temporary,
        project: PROJECT.to_owned(),
        threads: args.threads,
        batch_bytes: [MIN_BATCH, MAX_BATCH],
        bytes_granted: totals.granted,
        bytes_charged,
        exact: totals.granted == bytes_charged,
        switches: handle.usage().switches,
        switch: run.switch,
        calls: totals.calls,
        refused_calls: totals.refused,
        first_refusal: totals.first_refusal.clone(),
        wall_seconds: wall,
        calls_per_second: totals.calls as f64 / wall,
        pace_seconds: args.pace,
        mean_call_ns: nanos(totals.mean()),
        longest_call_ns: nanos(totals.longest),
        keys,
        events: run.events,
        dropped_events: engine.dropped_events(),
        view: engine.view(PROJECT)?,
    })
}

/// Creates the project with its Active and Reserved key and shows its cards.
fn set_up(engine: &Engine, volume: u64, out: &mut dyn Write, text: bool) -> Result<(), Failure> {
    engine.create_project(PROJECT)?;
    if text {
        writeln!(
            out,
            "Project \"{PROJECT}\" gets two Online data-volume keys of {} each:",
            format_bytes(volume)
        )?;
    }
    let today = time::OffsetDateTime::now_utc()
        .date()
        .midnight()
        .assume_utc();
    for (i, id) in KEY_IDS.into_iter().enumerate() {
        let key = Key {
            id: id.to_owned(),
            delivery: Delivery::Online,
            kind: KeyKind::Commercial,
            edition: Edition::Standard,
            scheme: Scheme::DataVolume {
                limit_bytes: volume,
            },
            expires_at: Some(today + time::Duration::days(365 * (i as i64 + 1))),
            auto_renew: false,
            company: Some("Northwind Traders".to_owned()),
            activation_code: None,
            grace_days: None,
            overage_percent: None,
            reset: None,
        };
        let added = engine.add_key(PROJECT, key)?;
        if text {
            let role = match added.role {
                Role::Active => "Active",
                Role::Reserved => "Reserved",
            };
            writeln!(out, "  {id} → {role}")?;
            if let Some(message) = added.message {
                writeln!(out, "  “{message}”")?;
            }
        }
    }
    if text {
        writeln!(out)?;
        write_view(out, &engine.view(PROJECT)?)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Where the demo's state lives.
struct StatePlace {
    dir: String,
    temporary: bool,
}

/// What the migration produced.
struct Run {
    reports: Vec<ThreadReport>,
    events: Vec<Event>,
    switch: Option<SwitchSeen>,
    wall: Duration,
}

/// Runs the threads to the end while showing progress and events.
fn migrate(
    engine: &Engine,
    handle: &ProjectHandle,
    args: &DemoArgs,
    out: &mut dyn Write,
    text: bool,
) -> Result<Run, Failure> {
    let usage = handle.usage();
    let total = usage.active_limit + usage.reserved_limit;
    let plan = Plan::new(args.threads, total, args.pace);
    if text {
        announce(out, args)?;
    }
    let tracked = |i: usize, limit: u64| Tracked {
        id: KEY_IDS[i].to_owned(),
        limit,
    };
    let mut live = Live::new(
        [
            tracked(0, usage.active_limit),
            tracked(1, usage.reserved_limit),
        ],
        text && std::io::stdout().is_terminal(),
    );
    let subscription = engine.subscribe(1024);
    let progress = Arc::new(Progress::default());
    let threads = workload::start(handle, plan, &progress).map_err(|e| {
        Failure::refused(
            "IO",
            format!("cannot start the migration threads: {e}"),
            None,
        )
    })?;
    let mut seen = Seen::default();
    while !threads.iter().all(|t| t.is_finished()) {
        if let Some(event) = subscription.recv_timeout(REFRESH) {
            seen.record(event, &live, out, text)?;
        }
        if text {
            live.update(out, &handle.usage(), &progress)?;
        }
    }
    let wall = live.elapsed();
    let mut reports = Vec::with_capacity(threads.len());
    for thread in threads {
        reports.push(
            thread
                .join()
                .map_err(|_| Failure::refused("INTERNAL", "a migration thread panicked", None))?,
        );
    }
    seen.settle(&subscription, handle.usage().switches > 0, &live, out, text)?;
    if text {
        live.update(out, &handle.usage(), &progress)?;
        live.finish();
    }
    Ok(Run {
        reports,
        events: seen.events,
        switch: seen.switch,
        wall,
    })
}

/// Says what the migration is about to do.
fn announce(out: &mut dyn Write, args: &DemoArgs) -> std::io::Result<()> {
    let pace = if args.pace > 0.0 {
        format!("; paced to about {} s", args.pace)
    } else {
        String::new()
    };
    writeln!(
        out,
        "Migrating: {} threads copy rows in batches of {} to {} rows ({} KiB to {} MiB),\n  calling consume() before each batch, until both keys are used up{pace}.\n  A batch that no longer fits is refused whole; its thread takes what is left with\n  consume_partial() and stops at its next refusal.",
        args.threads,
        format_count(MIN_BATCH / ROW_BYTES),
        format_count(MAX_BATCH / ROW_BYTES),
        MIN_BATCH >> 10,
        MAX_BATCH >> 20,
    )
}

/// The events the demo received.
#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    switch: Option<SwitchSeen>,
    refused: bool,
}

impl Seen {
    /// Keeps an event and tells the person watching, with the texts of rule R28 in docs/rules.md
    /// for the switch.
    fn record(
        &mut self,
        event: Event,
        live: &Live,
        out: &mut dyn Write,
        text: bool,
    ) -> std::io::Result<()> {
        let at = live.elapsed().as_secs_f64();
        if let EventKind::Switched { from, to, reason } = &event.kind {
            self.switch = Some(SwitchSeen {
                from: from.clone(),
                to: to.clone(),
                reason: match reason {
                    SwitchReason::Exhausted => "exhausted",
                    SwitchReason::Expired => "expired",
                }
                .to_owned(),
                at_seconds: at,
            });
        }
        self.refused |= matches!(event.kind, EventKind::Refused { .. });
        if text {
            for line in describe(&event, at) {
                live.say(out, &line)?;
            }
        }
        self.events.push(event);
        Ok(())
    }

    /// Takes the events the engine's dispatcher thread still hands over after the threads
    /// stopped: until none comes for [`SETTLE`], but waiting up to [`SETTLE_AT_MOST`] for the
    /// switch (if the pair `switched`) and the refusal.
    fn settle(
        &mut self,
        subscription: &Subscription,
        switched: bool,
        live: &Live,
        out: &mut dyn Write,
        text: bool,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + SETTLE_AT_MOST;
        loop {
            let awaited = (switched && self.switch.is_none()) || !self.refused;
            let wait = if awaited {
                deadline.saturating_duration_since(Instant::now())
            } else {
                SETTLE
            };
            match subscription.recv_timeout(wait) {
                Some(event) => self.record(event, live, out, text)?,
                None => return Ok(()),
            }
        }
    }
}

/// The lines the demo prints for an event.
fn describe(event: &Event, at: f64) -> Vec<String> {
    let head = format!("  {at:>5.2} s");
    let pad = " ".repeat(head.chars().count());
    match &event.kind {
        EventKind::Switched { from, to, reason } => {
            let why = match reason {
                SwitchReason::Exhausted => "is used up",
                SwitchReason::Expired => "has expired",
            };
            vec![
                format!(
                    "{head}  ⇄ SWITCH: {from} {why}; the Reserved key {to} is now the Active key."
                ),
                format!("{pad}  The migration goes on without stopping."),
                format!(
                    "{pad}  {to} · Active: “{}”",
                    active_tooltip(&event.project, LicenseClass::DataVolume)
                ),
                format!("{pad}  Add License is available again."),
            ]
        }
        EventKind::Refused { reason } => vec![format!(
            "{head}  ✗ REFUSED: {}; nothing was charged for that batch",
            refusal_text(*reason)
        )],
        other => vec![format!("{head}  {}", event_text(other))],
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
