//! The engine's side: a blocking client that activates codes and renews keys.
//!
//! Blocking on purpose: it runs in the engine's background renewal thread, never on the hot
//! path, and the engine has no async runtime to lend it. `ureq` is a small, well-kept blocking
//! HTTP client (no runtime, few dependencies, rustls for HTTPS) whose one global timeout per
//! call bounds an attempt from connection to the end of the body.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tollgate_core::{Delivery, Key};
use tollgate_license::SignedLicense;
use ureq::http::Uri;
use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};

use crate::wire::{
    ActivateRequest, ErrorResponse, LicenseResponse, RenewRequest, ACTIVATE_PATH, RENEW_PATH,
};
use crate::RenewalError;

/// The largest answer read: a license is a few hundred bytes.
const MAX_BODY: u64 = 1 << 20;
/// How much of an unexpected body an error quotes.
const QUOTED: usize = 200;

/// How hard the client tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The longest one attempt may take, from connecting to the end of the answer.
    pub timeout: Duration,
    /// How many times a failed attempt is repeated: a transport error, a timeout or a 5xx
    /// answer is retried, a refusal (4xx) or garbage never is. 0 makes one attempt.
    pub retries: u32,
    /// The pause before the first retry; it doubles for each later one, up to `backoff_max`.
    /// Each pause is drawn at random from its upper half, so that engines that lost the
    /// service together do not return together.
    pub backoff_initial: Duration,
    /// The longest pause between attempts.
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    /// 10 s per attempt, 4 retries, pauses from 1 s doubling up to 30 s: at most about 65 s
    /// for a renewal that fails, which the engine's background task can well afford.
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(10),
            retries: 4,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl ClientOptions {
    /// The pause after failed attempt `attempt` (from 1): `backoff_initial · 2^(attempt-1)`,
    /// at most `backoff_max`, then drawn from the upper half of that.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff_initial
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX));
        let ceiling = doubled.min(self.backoff_max);
        let half = ceiling / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random_u64() % nanos.saturating_add(1))
    }
}

/// A random number for jitter: the standard library seeds each `RandomState` from the
/// operating system, which is random enough to spread retries and costs no dependency.
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// A license the service issued, parsed but not verified: the engine verifies it against the
/// vendor keys it trusts (`tollgate_license::verify`) before it uses the key.
#[derive(Debug, Clone)]
pub struct IssuedLicense {
    /// The license file's text, as the service sent it: what to store or show.
    pub text: String,
    /// The same, parsed.
    pub license: SignedLicense,
}

/// A blocking client of one activation service.
///
/// ```no_run
/// use std::time::Duration;
/// use tollgate_activation::{ActivationClient, ClientOptions};
///
/// let client = ActivationClient::new("http://127.0.0.1:8470", ClientOptions {
///     timeout: Duration::from_secs(5),
///     ..ClientOptions::default()
/// })?;
/// let issued = client.activate("ACT-123", "9f2c41d07b5e8a63c1d2e4f5a6b7c8d9")?;
/// println!("{}", issued.text);
/// # Ok::<(), tollgate_activation::RenewalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ActivationClient {
    base_url: String,
    options: ClientOptions,
    agent: ureq::Agent,
}

/// How one attempt ended, when it did not give a license.
enum Failure {
    /// Worth another attempt: transport error, timeout, 5xx.
    Retry(RenewalError),
    /// Final: a refusal or garbage.
    Final(RenewalError),
}

impl ActivationClient {
    /// A client of the service at `base_url` (`http://host:port`, or `https://…` when built
    /// with the `tls` feature), to which the paths of [`wire`](crate::wire) are appended.
    /// Proxies are taken from the environment (`HTTPS_PROXY`, `NO_PROXY`, …) as usual. An
    /// `https` service must have a certificate from a public authority (the Mozilla roots);
    /// [`with_ca_file`](Self::with_ca_file) trusts another.
    pub fn new(base_url: &str, options: ClientOptions) -> Result<ActivationClient, RenewalError> {
        ActivationClient::with_ca_file(base_url, options, None)
    }

    /// [`new`](Self::new), trusting for `https` only the certificates in the PEM file
    /// `ca_file` instead of the Mozilla roots: the vendor's own certificate authority, or the
    /// service's self-signed certificate. `None` is [`new`](Self::new).
    pub fn with_ca_file(
        base_url: &str,
        options: ClientOptions,
        ca_file: Option<&Path>,
    ) -> Result<ActivationClient, RenewalError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let invalid = |reason: &str| RenewalError::InvalidUrl {
            url: base_url.clone(),
            reason: reason.into(),
        };
        let uri: Uri = base_url
            .parse()
            .map_err(|e: ureq::http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "tls") => {}
            Some("https") => return Err(invalid("this build has no TLS (the `tls` feature)")),
            _ => return Err(invalid("the scheme must be http or https")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a service URL has no query"));
        }
        let roots = match ca_file {
            Some(path) => read_ca_file(path)?,
            None => RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .timeout_global(Some(options.timeout))
            // 4xx and 5xx answers carry the service's reason in their body: read it.
            .http_status_as_error(false)
            // A redirected POST is not followed: an answer of 3xx is reported as it is.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("tollgate-activation/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(ActivationClient {
            base_url,
            options,
            agent,
        })
    }

    /// The service's URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The options the client was made with.
    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Activates `code` on `machine` (the engine's `Engine::machine_id`): the service issues
    /// a key for it and the signed license comes back. The service counts the code's
    /// activations by machine: one past the code's limit is refused (409
    /// `no_activations_left`), and a machine that activated the code before gets its key again
    /// (the latest renewal of it) without spending another activation.
    pub fn activate(&self, code: &str, machine: &str) -> Result<IssuedLicense, RenewalError> {
        let request = ActivateRequest {
            code: code.into(),
            machine: machine.into(),
        };
        self.call(ACTIVATE_PATH, &request, code)
    }

    /// Renews `key`, an online key with an activation code: the service issues its successor,
    /// a key with a new id whose term starts when `key`'s ends (or now, if that is later), and
    /// the signed license comes back. Asking again for the same key gets the same successor
    /// and spends no other renewal, so a retry after a lost answer is safe.
    pub fn renew(&self, key: &Key) -> Result<IssuedLicense, RenewalError> {
        let not_renewable = |reason| RenewalError::NotRenewable {
            key_id: key.id.clone(),
            reason,
        };
        if key.delivery != Delivery::Online {
            return Err(not_renewable("it is an offline key"));
        }
        let code = key
            .activation_code
            .as_deref()
            .ok_or_else(|| not_renewable("it has no activation code"))?;
        let request = RenewRequest {
            code: code.into(),
            key_id: key.id.clone(),
        };
        self.call(RENEW_PATH, &request, code)
    }

    /// Posts `body` to `path` until an attempt gives a license or a final error, or the
    /// retries run out; the license must be for activation code `code`.
    fn call<T: Serialize>(
        &self,
        path: &str,
        body: &T,
        code: &str,
    ) -> Result<IssuedLicense, RenewalError> {
        let url = format!("{}{path}", self.base_url);
        let body = serde_json::to_string(body).expect("a request always serialises");
        let mut attempt = 1;
        loop {
            match self.attempt(&url, &body, attempt) {
                Ok(text) => return self.parse_license(text, code, attempt),
                Err(Failure::Retry(_)) if attempt <= self.options.retries => {
                    std::thread::sleep(self.options.backoff(attempt));
                    attempt += 1;
                }
                Err(Failure::Retry(e) | Failure::Final(e)) => return Err(e),
            }
        }
    }

    /// One request: the license text of a 200 answer, or why there is none.
    fn attempt(&self, url: &str, body: &str, attempts: u32) -> Result<String, Failure> {
        let garbage = |reason: String| {
            Failure::Final(RenewalError::Garbage {
                url: self.base_url.clone(),
                reason,
                attempts,
            })
        };
        let mut response = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| self.transport_failure(e, attempts))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.transport_failure(e, attempts))?;
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(garbage(format!(
                "the body of a {status} answer is not UTF-8"
            )));
        };
        match status {
            200 => parse_json::<LicenseResponse>(&text)
                .map(|r| r.license)
                .map_err(|reason| garbage(format!("the body of a 200 answer is {reason}"))),
            400..=499 => {
                let (code, message) = error_body(status, &text);
                Err(Failure::Final(RenewalError::Refused {
                    status,
                    code,
                    message,
                    attempts,
                }))
            }
            500..=599 => Err(Failure::Retry(RenewalError::Unavailable {
                url: self.base_url.clone(),
                status,
                message: error_body(status, &text).1,
                attempts,
            })),
            other => Err(garbage(format!("the answer has status {other}"))),
        }
    }

    /// Sorts a failure to get an answer into retryable kinds.
    fn transport_failure(&self, error: ureq::Error, attempts: u32) -> Failure {
        let url = self.base_url.clone();
        match error {
            ureq::Error::Timeout(_) => Failure::Retry(RenewalError::Timeout {
                url,
                attempts,
                timeout: self.options.timeout,
            }),
            // Not HTTP, or HTTP broken beyond reading: the service is there but talks garbage.
            ureq::Error::Protocol(e) => Failure::Final(RenewalError::Garbage {
                url,
                reason: format!("the answer is not HTTP: {e}"),
                attempts,
            }),
            ureq::Error::BodyExceedsLimit(limit) => Failure::Final(RenewalError::Garbage {
                url,
                reason: format!("the answer is longer than {limit} bytes"),
                attempts,
            }),
            // Refused, reset, host not found, TLS: no answer at all.
            other => Failure::Retry(RenewalError::Unreachable {
                url,
                attempts,
                reason: other.to_string(),
            }),
        }
    }

    /// Parses the license text of a 200 answer; garbage if it is no license, or one for
    /// another activation code.
    fn parse_license(
        &self,
        text: String,
        code: &str,
        attempts: u32,
    ) -> Result<IssuedLicense, RenewalError> {
        let garbage = |reason: String| RenewalError::Garbage {
            url: self.base_url.clone(),
            reason,
            attempts,
        };
        let license = SignedLicense::from_json(&text)
            .map_err(|e| garbage(format!("the license does not parse: {e}")))?;
        // The key is only read here, not trusted: verifying it is the engine's part. The check
        // catches a service that mixes up its answers before the engine installs a stranger's key.
        let issued_for = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["key"]["activation_code"].as_str().map(str::to_owned));
        if issued_for.as_deref() != Some(code) {
            return Err(garbage(format!(
                "the license is for activation code {}, not \"{code}\"",
                issued_for.map_or("none".into(), |c| format!("\"{c}\""))
            )));
        }
        Ok(IssuedLicense { text, license })
    }
}

/// The certificates of the PEM file `path`, as the only roots trusted.
fn read_ca_file(path: &Path) -> Result<RootCerts, RenewalError> {
    let invalid = |reason: String| RenewalError::InvalidCa {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    let mut certificates = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(certificate) = item.map_err(|e| invalid(e.to_string()))? {
            certificates.push(certificate);
        }
    }
    if certificates.is_empty() {
        return Err(invalid("it holds no PEM certificate".into()));
    }
    Ok(RootCerts::Specific(Arc::new(certificates)))
}

/// Parses `text` as a `T`, or says what it is instead.
fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("not the expected JSON ({e}): {}", quote(text)))
}

/// The code and message of an error answer: the service's own, or `http_STATUS` and the start
/// of the body when another server (a proxy, say) wrote it.
fn error_body(status: u16, text: &str) -> (String, String) {
    match serde_json::from_str::<ErrorResponse>(text) {
        Ok(body) => (body.error, body.message),
        Err(_) => (format!("http_{status}"), quote(text)),
    }
}

/// The start of a body, for a message.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let options = ClientOptions {
            timeout: Duration::from_secs(1),
            retries: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        };
        for (attempt, ceiling) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let pause = options.backoff(attempt);
                let ceiling = Duration::from_millis(ceiling);
                assert!(
                    pause >= ceiling / 2 && pause <= ceiling,
                    "attempt {attempt}: {pause:?} outside {:?}..={ceiling:?}",
                    ceiling / 2
                );
            }
        }
        let none = ClientOptions {
            backoff_initial: Duration::ZERO,
            ..options
        };
        assert_eq!(none.backoff(3), Duration::ZERO);
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        let options = ClientOptions::default();
        for good in [
            "http://127.0.0.1:8470",
            "http://localhost:1/",
            "http://[::1]:80",
        ] {
            assert!(ActivationClient::new(good, options).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1:8470",
            "ftp://host",
            "http://",
            "not a url",
            "http://h/?q=1",
        ] {
            assert!(
                matches!(
                    ActivationClient::new(bad, options),
                    Err(RenewalError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let client = ActivationClient::new("http://127.0.0.1:8470//", options).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8470");
    }

    #[test]
    fn keys_that_are_not_online_with_a_code_are_not_sent() {
        let client = ActivationClient::new("http://127.0.0.1:1", ClientOptions::default()).unwrap();
        let mut key = Key::data_volume("K-1", 1);
        let error = client.renew(&key).unwrap_err();
        assert!(matches!(
            error,
            RenewalError::NotRenewable {
                reason: "it has no activation code",
                ..
            }
        ));
        assert_eq!(error.attempts(), 0);
        key.activation_code = Some("ACT-1".into());
        key.delivery = Delivery::Offline;
        assert!(matches!(
            client.renew(&key),
            Err(RenewalError::NotRenewable {
                reason: "it is an offline key",
                ..
            })
        ));
    }

    #[test]
    fn error_bodies_from_elsewhere_are_quoted() {
        assert_eq!(
            error_body(404, r#"{"error": "unknown_code", "message": "no"}"#),
            ("unknown_code".into(), "no".into())
        );
        assert_eq!(
            error_body(403, "<html>"),
            ("http_403".into(), "\"<html>\"".into())
        );
        let long = "x".repeat(500);
        assert_eq!(error_body(403, &long).1.chars().count(), QUOTED + 3);
    }
}
