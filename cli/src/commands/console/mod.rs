//! `tollgate console`: the web management console over a state directory, the screens of
//! docs/rules.md as pages (the License Information tab of rule R27, the activation task of R8,
//! the pool grid of R26).
//!
//! Server-rendered HTML (maud) on axum; the stylesheet and the little script are embedded in
//! the binary. Every page is a view of the engine's public API and every form does what the
//! matching `tollgate` command does, with the engine's own errors. Security: loopback by
//! default, a token for any other address ([`security`]), POST with a CSRF token and a
//! same-origin check for every change, activation codes masked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;
use tokio::sync::watch;
use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::Engine;

use super::metrics::Listening;
use super::Context;
use crate::args::ConsoleArgs;
use crate::failure::Failure;
use crate::output::json_line;

mod activation;
mod events;
mod instances;
mod licenses;
mod page;
mod projects;
mod security;

/// What every page handler shares.
pub struct App {
    /// The state served.
    engine: Engine,
    /// The access token, when the console requires one.
    token: Option<String>,
    /// This server's CSRF token: every form carries it and every POST must return it.
    csrf: String,
    /// The activation service client, when --activation-url was given.
    activation: Option<ActivationClient>,
    /// Turns true when the server stops, so the live pages' endless streams end and the
    /// graceful shutdown does not wait for them.
    stopping: watch::Receiver<bool>,
}

impl App {
    /// Every activation code of a key the state holds, in any project: what no page may show
    /// in full. A state that cannot be read now yields none (its pages fail on their own).
    fn activation_codes(&self) -> Vec<String> {
        let Ok(projects) = self.engine.projects() else {
            return Vec::new();
        };
        projects
            .iter()
            .filter_map(|project| self.engine.keys(project).ok())
            .flatten()
            .filter_map(|usage| usage.key.activation_code)
            .collect()
    }
}

/// Serves the console until Ctrl-C or SIGTERM.
pub fn run(ctx: &Context, args: &ConsoleArgs, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let token = security::check_listen(args.listen, args.token.as_deref())?;
    let activation = match &args.activation_url {
        Some(url) => Some(
            ActivationClient::with_ca_file(
                url,
                ClientOptions {
                    timeout: Duration::from_secs(10),
                    ..ClientOptions::default()
                },
                args.activation_ca.as_deref(),
            )
            .map_err(|e| Failure::refused("INVALID_ARGUMENT", e.to_string(), None))?,
        ),
        None => None,
    };
    let (stop, stopping) = watch::channel(false);
    let app = Arc::new(App {
        engine: ctx.existing_engine()?,
        token,
        csrf: security::random_token()?,
        activation,
        stopping,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| listen_error(args.listen, &e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| listen_error(args.listen, &e))?;
        let url = format!("http://{bound}/");
        if ctx.json {
            json_line(out, &Listening { listening: url })?;
        } else {
            writeln!(out, "console on {url}")?;
            out.flush()?;
        }
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move {
                super::metrics::stop_signal().await;
                // `App` holds a receiver for as long as the server runs, so this cannot fail;
                // every stream, open now or opened during the shutdown, sees it.
                let _ = stop.send(true);
            })
            .await
            .map_err(Failure::from)
    })
}

fn listen_error(address: SocketAddr, error: &std::io::Error) -> Failure {
    Failure::refused(
        "LISTEN",
        format!("cannot listen on {address}: {error}"),
        None,
    )
}

/// Every route, behind the token and CSRF guard.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(projects::list))
        .route("/projects/{name}", get(projects::show))
        .route("/projects/{name}/stream", get(projects::stream))
        .route(
            "/projects/{name}/add-license",
            get(projects::registration).post(projects::register),
        )
        .route("/licenses", get(licenses::show))
        .route("/licenses/buy", axum::routing::post(licenses::buy))
        .route("/instances", get(instances::show))
        .route("/instances/assign", axum::routing::post(instances::assign))
        .route(
            "/instances/unassign",
            axum::routing::post(instances::unassign),
        )
        .route("/activation", get(activation::show).post(activation::start))
        .route("/events", get(events::show))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            security::guard,
        ))
        .with_state(app)
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}

/// Runs a page's engine work off the async thread (the engine reads its catalog and may wait
/// for the admin lock) and turns a failure into an error page.
async fn respond<F>(app: Arc<App>, work: F) -> Response
where
    F: FnOnce(&App) -> Result<Response, Failure> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || work(&app)).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => failure_page(&failure),
        Err(panic) => page::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            &format!("the page failed: {panic}"),
            None,
        ),
    }
}

/// An engine or console failure as a page with the status that fits it.
fn failure_page(failure: &Failure) -> Response {
    let (code, message, rule) = page::failure_parts(failure);
    let status = match code {
        "PROJECT_NOT_FOUND" | "INSTANCE_NOT_FOUND" | "GROUP_NOT_FOUND" => StatusCode::NOT_FOUND,
        "INVALID_ARGUMENT" => StatusCode::BAD_REQUEST,
        "IO" | "STORE" | "CORRUPT_STATE" | "INTERNAL" | "ERROR" => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::CONFLICT,
    };
    page::error_response(status, code, &message, rule)
}

/// A complete page, 200 OK.
fn html(markup: Markup) -> Response {
    markup.into_response()
}
