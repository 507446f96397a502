//! The vendor's side: the activation service, `tollgate serve-activation`.
//!
//! axum on a single-threaded tokio runtime: axum gives routing and body handling over hyper
//! without hand-written HTTP plumbing, and one thread is plenty for a service that signs a few
//! hundred bytes per request. Catalog changes (file writes with `fsync`) run on tokio's
//! blocking pool, one at a time under the catalog's lock, so the runtime thread never waits on
//! the disk and two requests never interleave their changes.
//!
//! Connections are served by hyper's HTTP/1 server directly rather than `axum::serve`, which
//! sets no timeout, so that a service on the internet cannot be held by clients that never
//! finish ([`Limits`]): hyper's header-read timeout closes a connection that has not sent a
//! whole request head in time — including an idle one, since hyper starts it whenever it waits
//! for a request — a tower timeout answers 408 to a request whose body has not arrived and been
//! answered in time, a TLS handshake has the header timeout too, and at most
//! `max_connections` connections are open at once: further ones wait in the listen queue. With
//! a certificate ([`Server::with_tls`]) it serves HTTPS itself, through rustls.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{BoxError, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;
use tollgate_core::Key;
use tollgate_license::VendorSecret;
use tower::ServiceBuilder;

use crate::catalog::{Catalog, Refusal};
use crate::wire::{
    self, ActivateRequest, ErrorResponse, LicenseResponse, RenewRequest, ACTIVATE_PATH, RENEW_PATH,
};
use crate::ServiceError;

/// How long the service waits for clients, and for how many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest a connection may take to send a whole request head, from when the service
    /// starts waiting for it: after connecting (and the TLS handshake, which has this long too)
    /// or after the previous answer. So it is also how long an idle connection stays open.
    pub header_timeout: Duration,
    /// The longest a request may take from its head to the answer, reading its body included;
    /// past it the answer is 408 `request_timeout` and the connection is closed.
    pub request_timeout: Duration,
    /// How many connections are served at once; further ones wait in the listen queue until
    /// one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for a request head (and for an idle connection), 10 s for the rest of a request,
    /// 256 connections.
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// A bound activation service, not yet answering: [`run_until_signal`](Self::run_until_signal)
/// serves in the foreground, [`spawn`](Self::spawn) on a thread of its own.
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    shared: Arc<Shared>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("limits", &self.limits)
            .field("https", &self.tls.is_some())
            .finish_non_exhaustive()
    }
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
    /// Responses are signed with `secret`. Plain HTTP with the default [`Limits`] until
    /// [`with_tls`](Self::with_tls) and [`with_limits`](Self::with_limits) say otherwise.
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
            limits: Limits::default(),
            tls: None,
        })
    }

    /// Serves with these timeouts and connection limit instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// Serves HTTPS with the certificate chain in the PEM file `cert` (the service's
    /// certificate first) and its private key in the PEM file `key`.
    pub fn with_tls(mut self, cert: &Path, key: &Path) -> Result<Server, ServiceError> {
        let invalid = |path: &Path, reason: String| ServiceError::Tls {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| invalid(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(invalid(cert, "it holds no PEM certificate".into()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| invalid(key, format!("it does not fit the certificate: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(TlsAcceptor::from(Arc::new(config)));
        Ok(self)
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The service's URL, `http://ADDRESS` (`https://` with TLS), as a client is given it.
    pub fn url(&self) -> String {
        url(self.address, self.tls.is_some())
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
        let https = self.tls.is_some();
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
            https,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServiceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let app = router(self.shared, self.limits.request_timeout);
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            serve(listener, app, self.tls, self.limits, shutdown).await;
            Ok::<_, std::io::Error>(())
        })?;
        Ok(())
    }
}

fn url(address: SocketAddr, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{address}")
}

/// Accepts connections until `shutdown`, each served on a task of its own while a slot of
/// `limits.max_connections` is free; then lets the requests under way finish, for at most the
/// request timeout.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine, so pause instead of spinning, and go on.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = watcher
                            .watch(http.serve_connection(TokioIo::new(stream), service))
                            .await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    // Requests under way finish; a connection that keeps one open longer is dropped.
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
}

/// A service running on its own thread (from [`Server::spawn`]); dropping it stops the service.
#[derive(Debug)]
pub struct ServerHandle {
    address: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl ServerHandle {
    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The service's URL, `http://ADDRESS` (`https://` with TLS).
    pub fn url(&self) -> String {
        url(self.address, self.https)
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

fn router(shared: Arc<Shared>, request_timeout: Duration) -> Router {
    Router::new()
        .route(ACTIVATE_PATH, post(activate))
        .route(RENEW_PATH, post(renew))
        .fallback(not_found)
        .method_not_allowed_fallback(not_post)
        .layer(DefaultBodyLimit::max(wire::MAX_BODY))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), count))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |_: BoxError| async move {
                    timed_out(request_timeout)
                }))
                .timeout(request_timeout),
        )
        .with_state(shared)
}

/// The 408 answer to a request that took longer than the request timeout.
fn timed_out(limit: Duration) -> Response {
    error_response(
        StatusCode::REQUEST_TIMEOUT,
        wire::REQUEST_TIMEOUT,
        format!(
            "the request was not received and answered within {} ms",
            limit.as_millis()
        ),
    )
}

async fn count(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    // Relaxed: a statistic; no other memory is published through it.
    shared.requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

async fn activate(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match parse::<ActivateRequest>(body).and_then(|request| {
        check_length("code", &request.code, wire::MAX_CODE)?;
        check_length("machine", &request.machine, wire::MAX_MACHINE)?;
        if request.machine.chars().any(char::is_control) {
            return Err(Bad::request(
                "the machine identity holds a control character".into(),
            ));
        }
        Ok(request)
    }) {
        Ok(request) => request,
        Err(bad) => return bad.into_response(),
    };
    issue(shared, move |catalog, now| {
        catalog.activate(&request.code, &request.machine, now)
    })
    .await
}

async fn renew(State(shared): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let request = match parse::<RenewRequest>(body).and_then(|request| {
        check_length("code", &request.code, wire::MAX_CODE)?;
        check_length("key_id", &request.key_id, wire::MAX_KEY_ID)?;
        Ok(request)
    }) {
        Ok(request) => request,
        Err(bad) => return bad.into_response(),
    };
    issue(shared, move |catalog, now| {
        catalog.renew(&request.code, &request.key_id, now)
    })
    .await
}

/// A request refused before the catalog is asked: its status, wire code and message.
struct Bad {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Bad {
    /// A 400 `malformed_request`.
    fn request(message: String) -> Bad {
        Bad {
            status: StatusCode::BAD_REQUEST,
            code: wire::MALFORMED_REQUEST,
            message,
        }
    }
}

impl IntoResponse for Bad {
    fn into_response(self) -> Response {
        error_response(self.status, self.code, self.message)
    }
}

/// The request of a body, or why it is refused: 413 for a body over [`wire::MAX_BODY`], 400
/// for one that is not the JSON object the request takes. Neither quotes the body; serde_json's
/// messages name the field and position at fault, and quote at most a value of a body that is
/// itself at most [`wire::MAX_BODY`] bytes.
fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Bad> {
    let body = body.map_err(|rejection| Bad {
        status: rejection.status(),
        code: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            wire::BODY_TOO_LARGE
        } else {
            wire::MALFORMED_REQUEST
        },
        message: format!(
            "the request body was not read: {}; a request body is at most {} bytes",
            rejection.body_text().to_lowercase(),
            wire::MAX_BODY
        ),
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        Bad::request(format!(
            "the request body is not the JSON object this request takes: {e}"
        ))
    })
}

/// Refuses a field of a request that is empty or longer than `max` bytes, without quoting it:
/// the message says how long it was.
fn check_length(field: &str, value: &str, max: usize) -> Result<(), Bad> {
    if (1..=max).contains(&value.len()) {
        return Ok(());
    }
    Err(Bad::request(format!(
        "the {field} is {} bytes long; it must be 1 to {max} bytes",
        value.len()
    )))
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        wire::NOT_FOUND,
        format!(
            "no such request: {} {}; the service answers POST {ACTIVATE_PATH} and POST {RENEW_PATH}",
            request.method(),
            shorten(request.uri().path())
        ),
    )
}

async fn not_post(request: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        wire::METHOD_NOT_ALLOWED,
        format!(
            "{} takes POST, not {}",
            shorten(request.uri().path()),
            request.method()
        ),
    )
}

/// A path as an answer quotes it: its first 100 characters, so that a long request line is
/// not sent back.
fn shorten(path: &str) -> String {
    match path.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    }
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
