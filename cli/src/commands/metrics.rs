//! `tollgate metrics`: the state's numbers in the Prometheus text exposition format (0.0.4),
//! printed once or served at `/metrics` for a Prometheus server to scrape.
//!
//! Every value is read from the engine's own views when the exposition is made: the keys and
//! their usage from [`Engine::keys`] (what `key list` shows), switches from [`Engine::usage`],
//! seats from [`Engine::view`]'s cards, refusals from the audit log. Nothing is sampled or
//! cached, so a scrape equals what `tollgate usage` says at that instant.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::core::{AtomicU64, GenericGaugeVec};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use serde::Serialize;
use tollgate_core::{Engine, EventKind, KeyStatus, LicenseClass, RefusalReason, Role, Scheme};

use super::Context;
use crate::args::MetricsArgs;
use crate::failure::Failure;
use crate::output::json_line;
use crate::render::pair_class;

/// Prints the metrics once, or serves them.
pub fn run(ctx: &Context, args: &MetricsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if let Some(address) = args
        .listen
        .filter(|a| !a.ip().is_loopback() && !args.allow_remote)
    {
        return Err(Failure::refused(
            "NOT_LOOPBACK",
            format!("--listen {address} is not a loopback address"),
            Some("the metrics name every project and key: serve them beyond this machine only with --allow-remote"),
        ));
    }
    let exporter = Exporter {
        engine: ctx.existing_engine()?,
        refusals: Mutex::new(Refusals::default()),
    };
    match args.listen {
        None => Ok(out.write_all(exporter.render()?.as_bytes())?),
        Some(address) => serve(Arc::new(exporter), address, ctx.json, out),
    }
}

/// The engine, and the refusals counted from the audit log so far.
struct Exporter {
    engine: Engine,
    refusals: Mutex<Refusals>,
}

/// Refusals per project and reason, counted from the audit log up to sequence `after`.
#[derive(Default)]
struct Refusals {
    after: u64,
    counts: BTreeMap<(String, &'static str), u64>,
}

/// Events read from the audit log at once.
const EVENT_PAGE: usize = 4096;

/// Every refusal reason, so that each project shows all three series, 0 until one happens.
const REASONS: [RefusalReason; 3] = [
    RefusalReason::Exhausted,
    RefusalReason::Expired,
    RefusalReason::NoActiveKey,
];

impl Refusals {
    /// Counts the refusals the audit log recorded since the last call.
    fn catch_up(&mut self, engine: &Engine) -> Result<(), Failure> {
        loop {
            let events = engine.events_after(self.after, EVENT_PAGE)?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            self.after = last.seq;
            for event in &events {
                if let EventKind::Refused { reason } = event.kind {
                    *self
                        .counts
                        .entry((event.project.clone(), reason.as_str()))
                        .or_default() += 1;
                }
            }
        }
    }
}

/// The metric families, registered in one registry.
struct Families {
    registry: Registry,
    used: GenericGaugeVec<AtomicU64>,
    limit: GenericGaugeVec<AtomicU64>,
    overage: GenericGaugeVec<AtomicU64>,
    switches: IntCounterVec,
    refusals: IntCounterVec,
    seats: GenericGaugeVec<AtomicU64>,
    dropped: IntCounter,
}

impl Families {
    fn new() -> Result<Families, prometheus::Error> {
        let registry = Registry::new();
        let key = ["project", "key", "role"];
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let family = GenericGaugeVec::<AtomicU64>::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(family.clone()))?;
            Ok::<_, prometheus::Error>(family)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let family = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(family.clone()))?;
            Ok::<_, prometheus::Error>(family)
        };
        Ok(Families {
            used: gauge(
                "tollgate_key_used_bytes",
                "Bytes charged to a data-volume key.",
                &key,
            )?,
            limit: gauge(
                "tollgate_key_limit_bytes",
                "Bytes a data-volume key allows.",
                &key,
            )?,
            overage: gauge(
                "tollgate_key_overage_bytes",
                "Bytes charged to a data-volume key's account beyond its limit (its overage used, across every project holding it).",
                &key,
            )?,
            switches: counter(
                "tollgate_switches_total",
                "Active to Reserved switches of a project's data-volume pair.",
                &["project"],
            )?,
            refusals: counter(
                "tollgate_refusals_total",
                "Refusals recorded in the audit log (the first of each key generation of a pair).",
                &["project", "reason"],
            )?,
            seats: gauge(
                "tollgate_seats_held",
                "Seats held now on a project's per-machine, per-core or per-instance pair.",
                &["project", "class"],
            )?,
            dropped: {
                let counter = IntCounter::new(
                    "tollgate_events_dropped_total",
                    "Events this process could not deliver (a full hot queue or subscriber).",
                )?;
                registry.register(Box::new(counter.clone()))?;
                counter
            },
            registry,
        })
    }
}

impl Exporter {
    /// The exposition now.
    fn render(&self) -> Result<String, Failure> {
        let families = Families::new().map_err(metrics_error)?;
        let engine = &self.engine;
        let projects = engine.projects()?;
        for project in &projects {
            self.project(&families, project)?;
        }
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        refusals.catch_up(engine)?;
        for project in &projects {
            for reason in REASONS {
                families
                    .refusals
                    .with_label_values(&[project.as_str(), reason.as_str()])
                    .inc_by(0);
            }
        }
        for ((project, reason), count) in &refusals.counts {
            families
                .refusals
                .with_label_values(&[project.as_str(), reason])
                .inc_by(*count);
        }
        drop(refusals);
        families.dropped.inc_by(engine.dropped_events());
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&families.registry.gather(), &mut text)
            .map_err(metrics_error)?;
        Ok(text)
    }

    /// One project's keys, switches and seats.
    fn project(&self, families: &Families, project: &str) -> Result<(), Failure> {
        let engine = &self.engine;
        for held in engine.keys(project)? {
            let Scheme::DataVolume { limit_bytes } = held.key.scheme else {
                continue;
            };
            let labels = [
                project,
                held.key.id.as_str(),
                KeyStatus::as_str(held.status),
            ];
            families.used.with_label_values(&labels).set(held.used);
            families.limit.with_label_values(&labels).set(limit_bytes);
            // The overage is the key account's (one quota across every project holding it).
            let account_used = held.account.as_ref().map_or(held.used, |a| a.used);
            families
                .overage
                .with_label_values(&labels)
                .set(account_used.saturating_sub(limit_bytes));
        }
        families
            .switches
            .with_label_values(&[project])
            .inc_by(engine.usage(project)?.switches);
        for pair in engine.view(project)?.pairs {
            let class = match pair_class(&pair) {
                LicenseClass::DataVolume => continue,
                LicenseClass::ServerMachines => "server",
                LicenseClass::DesktopMachines => "desktop",
                LicenseClass::Cores => "cores",
                LicenseClass::Instance => "instance",
            };
            let held = pair
                .cards
                .iter()
                .find(|card| card.status == Role::Active)
                .map_or(0, |card| card.used);
            families
                .seats
                .with_label_values(&[project, class])
                .set(held);
        }
        Ok(())
    }
}

fn metrics_error(error: prometheus::Error) -> Failure {
    Failure::refused("METRICS", format!("cannot make the metrics: {error}"), None)
}

/// The first line of a server's output with `--json`: where it serves.
#[derive(Serialize)]
pub(super) struct Listening {
    /// The address, `http://ADDRESS:PORT/…`.
    pub(super) listening: String,
}

/// Serves `GET /metrics` at `address` until SIGINT (Ctrl-C) or SIGTERM.
fn serve(
    exporter: Arc<Exporter>,
    address: SocketAddr,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| listen_error(address, &e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| listen_error(address, &e))?;
        let url = format!("http://{bound}/metrics");
        if json {
            json_line(out, &Listening { listening: url })?;
        } else {
            writeln!(out, "listening on {url}")?;
            // Whoever started the exporter waits for this line before scraping it.
            out.flush()?;
        }
        let app = Router::new().route("/metrics", get(move || scrape(Arc::clone(&exporter))));
        axum::serve(listener, app)
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(Failure::from)
    })
}

/// One scrape: the exposition, made off the async thread since it reads the catalog.
async fn scrape(exporter: Arc<Exporter>) -> axum::response::Response {
    match tokio::task::spawn_blocking(move || exporter.render()).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Ok(Err(failure)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{failure:?}\n")).into_response()
        }
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{panic}\n")).into_response(),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn listen_error(address: SocketAddr, error: &std::io::Error) -> Failure {
    Failure::refused(
        "LISTEN",
        format!("cannot listen on {address}: {error}"),
        None,
    )
}
