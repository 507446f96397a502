//! Fixtures shared by the integration tests: a vendor with a catalog and the real service on
//! loopback, fast client options, and a fake service on a raw socket that misbehaves on cue.

#![allow(dead_code)] // Each test file uses its own part.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tollgate_activation::{ClientOptions, IssuedLicense, Server, ServerHandle};
use tollgate_core::Key;
use tollgate_license::{VendorPublic, VendorSecret};

/// A key template as an operator writes one.
pub const TEMPLATE: &str = r#"{"kind": "commercial", "edition": "enterprise",
    "scheme": {"data_volume": {"limit_bytes": 1073741824}}, "company": "Acme"}"#;

/// A directory with a vendor key pair (`vendor.key`, `vendor.pub`) and a catalog
/// (`codes.json`).
pub struct Vendor {
    pub dir: TempDir,
    pub public: VendorPublic,
}

impl Vendor {
    /// A vendor whose catalog holds `codes`: `(code, term_days, renewals_left)`.
    pub fn new(codes: &[(&str, u32, u32)]) -> Vendor {
        let entries: Vec<String> = codes
            .iter()
            .map(|(code, term, renewals)| {
                format!(
                    r#"{{"code": "{code}", "key": {TEMPLATE}, "term_days": {term}, "renewals_left": {renewals}}}"#
                )
            })
            .collect();
        Vendor::with_catalog(&format!(r#"{{"codes": [{}]}}"#, entries.join(", ")))
    }

    /// A vendor whose catalog holds `codes`: `(code, term_days, renewals_left, activations)`.
    pub fn with_activations(codes: &[(&str, u32, u32, u32)]) -> Vendor {
        let entries: Vec<String> = codes
            .iter()
            .map(|(code, term, renewals, activations)| {
                format!(
                    r#"{{"code": "{code}", "key": {TEMPLATE}, "term_days": {term}, "renewals_left": {renewals}, "activations": {activations}}}"#
                )
            })
            .collect();
        Vendor::with_catalog(&format!(r#"{{"codes": [{}]}}"#, entries.join(", ")))
    }

    /// A vendor with this catalog text.
    pub fn with_catalog(catalog: &str) -> Vendor {
        let dir = tempfile::tempdir().unwrap();
        let secret = VendorSecret::generate().unwrap();
        secret.write(dir.path()).unwrap();
        std::fs::write(dir.path().join("codes.json"), catalog).unwrap();
        Vendor {
            dir,
            public: secret.public(),
        }
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.dir.path().join("codes.json")
    }

    pub fn secret_path(&self) -> PathBuf {
        self.dir.path().join("vendor.key")
    }

    /// The catalog file as it is on disk now.
    pub fn catalog(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.catalog_path()).unwrap()).unwrap()
    }

    /// The key of a license the service issued, checked against the vendor's public key.
    pub fn verify(&self, issued: &IssuedLicense) -> Key {
        tollgate_license::verify(&issued.license, &[self.public]).unwrap()
    }

    /// The service on a free loopback port, on a thread of its own.
    pub fn start(&self) -> ServerHandle {
        let secret = VendorSecret::read(&self.secret_path()).unwrap();
        Server::bind(&self.catalog_path(), secret, "127.0.0.1:0".parse().unwrap())
            .unwrap()
            .spawn()
    }
}

/// Client options small enough to keep failing tests fast.
pub fn fast(retries: u32) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(200),
        retries,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
    }
}

/// The least total pause `options` can take between its attempts (each pause is at least half
/// its ceiling).
pub fn least_backoff(options: &ClientOptions) -> Duration {
    (0..options.retries)
        .map(|i| (options.backoff_initial * 2u32.pow(i)).min(options.backoff_max) / 2)
        .sum()
}

/// The most total pause `options` can take between its attempts.
pub fn most_backoff(options: &ClientOptions) -> Duration {
    (0..options.retries)
        .map(|i| (options.backoff_initial * 2u32.pow(i)).min(options.backoff_max))
        .sum()
}

/// A loopback address where nothing listens: a port just bound and released.
pub fn dead_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What the fake service does with a connection.
#[derive(Clone)]
pub enum Reply {
    /// Reads the request and writes these bytes, then closes.
    Raw(String),
    /// Reads the request and never answers, holding the connection open.
    Silent,
}

/// An HTTP/1.1 answer with this status line and body.
pub fn http(status: &str, content_type: &str, body: &str) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// A raw TCP listener on loopback that answers the n-th connection with `replies[n]` (the last
/// reply for every later one) and counts the requests it read.
pub struct FakeService {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeService {
    pub fn start(replies: Vec<Reply>) -> FakeService {
        assert!(!replies.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                // Acquire: pairs with the Release in `drop`, which then connects to wake us.
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                let mut stream = stream.unwrap();
                if read_request(&mut stream).is_none() {
                    continue;
                }
                // Relaxed: a count read only after the client's call returned.
                count.fetch_add(1, Ordering::Relaxed);
                match &replies[n.min(replies.len() - 1)] {
                    Reply::Raw(bytes) => {
                        let _ = stream.write_all(bytes.as_bytes());
                    }
                    Reply::Silent => held.push(stream),
                }
            }
        });
        FakeService {
            address,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many requests it has read.
    pub fn requests(&self) -> usize {
        // Relaxed: read after the client's call returned, by which time every request of it
        // has been counted.
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        // Release: the accept loop sees the flag once the connection below wakes it.
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head and body; `None` if the connection closed first.
fn read_request(stream: &mut TcpStream) -> Option<()> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()
}
