//! The vendor's side: the activation service, `tollgate serve-activation`.
//!
//! axum on a single-threaded tokio runtime: axum gives routing and body handling over hyper
//! without hand-written HTTP plumbing, and one thread is plenty for a service that signs a few
//! hundred bytes per request. Catalog changes (file writes with `fsync`) run on tokio's
//! blocking pool, one at a time under the catalog's lock, so the runtime thread never waits on
//! the disk and two requests never interleave their changes.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tollgate_core::Key;
use tollgate_license::VendorSecret;

use crate::catalog::{Catalog, Refusal};
use crate::wire::{
    self, ActivateRequest, ErrorResponse, LicenseResponse, RenewRequest, ACTIVATE_PATH, RENEW_PATH,
};
use crate::ServiceError;

/// A bound activation service, not yet answering: [`run_until_signal`](Self::run_until_signal)
/// serves in the foreground, [`spawn`](Self::spawn) on a thread of its own.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    catalog: Mutex<Catalog>,
    secret: VendorSecret,
    requests: AtomicU64,
}

impl Server {
    /// Reads the catalog at `catalog` (see the crate documentation for its format) and listens
    /// on `listen`; port 0 picks a free port, which [`local_addr`](Self::local_addr) tells.
    /// Responses are signed with `secret`.
    pub fn bind(
        catalog: &Path,
        secret: VendorSecret,
        listen: SocketAddr,
    ) -> Result<Server, ServiceError> {
        let catalog = Catalog::open(catalog)?;
        let listen_error = |source| ServiceError::Listen {
            address: listen.to_string(),
            source,
        };
        let listener = TcpListener::bind(listen).map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        // tokio takes over the socket and requires it non-blocking.
        listener.set_nonblocking(true).map_err(listen_error)?;
        Ok(Server {
            listener,
            address,
            shared: Arc::new(Shared {
                catalog: Mutex::new(catalog),
                secret,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The service's URL, `http://ADDRESS`, as a client is given it.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves until the process receives SIGINT (Ctrl-C) or SIGTERM, then finishes the
    /// requests under way and returns.
    pub fn run_until_signal(self) -> Result<(), ServiceError> {
        self.run(terminated())
    }

    /// Serves on a new thread until [`ServerHandle::stop`] is called or the handle dropped.
    pub fn spawn(self) -> ServerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let address = self.address;
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name(format!("activation-service-{address}"))
            .spawn(move || {
                self.run(async {
                    // A dropped sender stops the service as a sent stop does.
                    let _ = stopped.await;
                })
            })
            .expect("the operating system could not start a thread");
        ServerHandle {
            address,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServiceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let app = router(self.shared);
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        })?;
        Ok(())
    }
}

/// A service running on its own thread (from [`Server::spawn`]); dropping it stops the service.
#[derive(Debug)]
pub struct ServerHandle {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl ServerHandle {
    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The service's URL, `http://ADDRESS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many HTTP requests the service has received, whatever their answer.
    pub fn requests_served(&self) -> u64 {
        // Relaxed: a statistic; no other memory is published through it.
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops the service: it finishes the requests under way, closes its socket and returns
    /// how it ended.
    pub fn stop(mut self) -> Result<(), ServiceError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), ServiceError> {
        if let Some(stop) = self.stop.take() {
            // The service may already have ended on an error, which `join` reports.
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Stop without a second panic: the first one is what the caller needs to see.
            drop(self.stop.take());
            return;
        }
        // An error at drop has no caller to go to; `stop` is the way to see it.
        let _ = self.shut_down();
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    // Where SIGTERM cannot be caught, Ctrl-C still stops the service; if even that cannot be
    // listened for, the service runs until the process is killed rather than stop at once.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(ACTIVATE_PATH, post(activate))
        .route(RENEW_PATH, post(renew))
        .fallback(not_found)
        .method_not_allowed_fallback(not_post)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), count))
        .with_state(shared)
}

async fn count(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    // Relaxed: a statistic; no other memory is published through it.
    shared.requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

async fn activate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ActivateRequest>(&body) {
        Ok(request) => {
            issue(shared, move |catalog, now| {
                catalog.activate(&request.code, now)
            })
            .await
        }
        Err(e) => malformed(e),
    }
}

async fn renew(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<RenewRequest>(&body) {
        Ok(request) => {
            issue(shared, move |catalog, now| {
                catalog.renew(&request.code, &request.key_id, now)
            })
            .await
        }
        Err(e) => malformed(e),
    }
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        wire::NOT_FOUND,
        format!(
            "no such request: {} {}; the service answers POST {ACTIVATE_PATH} and POST {RENEW_PATH}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn not_post(request: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        wire::METHOD_NOT_ALLOWED,
        format!(
            "{} takes POST, not {}",
            request.uri().path(),
            request.method()
        ),
    )
}

/// The 400 answer to a body that is not the JSON object the request takes.
fn malformed(error: serde_json::Error) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        wire::MALFORMED_REQUEST,
        format!("the request body is not the JSON object this request takes: {error}"),
    )
}

/// Runs a catalog change off the runtime thread and answers with the signed license of the
/// key it issued, or with the refusal.
async fn issue(
    shared: Arc<Shared>,
    change: impl FnOnce(&mut Catalog, OffsetDateTime) -> Result<Key, Refusal> + Send + 'static,
) -> Response {
    let outcome = tokio::task::spawn_blocking(move || {
        // A change is made on a copy and kept only once written (`Catalog::change`), so a panic
        // during one leaves the catalog sound and its poisoned lock safe to take.
        let mut catalog = shared
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = change(&mut catalog, OffsetDateTime::now_utc())?;
        drop(catalog);
        Ok::<_, Refusal>(tollgate_license::sign(&shared.secret, &key).to_json())
    })
    .await;
    match outcome {
        Ok(Ok(license)) => (StatusCode::OK, Json(LicenseResponse { license })).into_response(),
        Ok(Err(refusal)) => {
            let (status, code, message) = refusal.describe();
            error_response(status, code, message)
        }
        Err(failed) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::INTERNAL,
            format!("the request failed: {failed}"),
        ),
    }
}

fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorResponse {
        error: code.into(),
        message,
    };
    (status, Json(body)).into_response()
}
