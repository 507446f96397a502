//! The client against services that fail: nothing listening, a service that never answers, one
//! that answers garbage, and one that fails before it succeeds. Every retry is counted.

mod common;

use std::time::{Duration, Instant};

use common::{dead_address, fast, http, least_backoff, most_backoff, FakeService, Reply};
use tollgate_activation::{wire, ActivationClient, ClientOptions, RenewalError};
use tollgate_core::Key;
use tollgate_license::{sign, verify, VendorSecret};

/// Slack for a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1500);

fn online_key() -> Key {
    Key {
        activation_code: Some("ACT-1".into()),
        ..Key::data_volume("ACT-1-1", 1 << 30)
    }
}

/// A 200 answer carrying `license`.
fn license_answer(license: &str) -> Reply {
    let body = serde_json::to_string(&wire::LicenseResponse {
        license: license.into(),
    })
    .unwrap();
    http("200 OK", "application/json", &body)
}

#[test]
fn a_service_that_is_down_is_unreachable_after_the_configured_retries() {
    let options = fast(3);
    let client = ActivationClient::new(&format!("http://{}", dead_address()), options).unwrap();
    let started = Instant::now();
    let error = client.renew(&online_key()).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, RenewalError::Unreachable { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(
        elapsed >= least_backoff(&options),
        "no backoff: {elapsed:?}"
    );
    assert!(elapsed <= most_backoff(&options) + SLACK, "{elapsed:?}");
    assert!(error.needs_manual_renewal());
    let message = error.manual_renewal_message("ACT-1-1");
    assert!(
        message.starts_with("automatic renewal of key \"ACT-1-1\" failed (the activation service at http://127.0.0.1:")
            && message.contains("is unreachable (4 attempts)")
            && message.ends_with("): start the activation task manually to renew the license"),
        "{message}"
    );
}

#[test]
fn a_host_that_does_not_resolve_is_unreachable() {
    // A generous timeout, so that a slow resolver cannot turn the failure into a timeout.
    let options = ClientOptions {
        timeout: Duration::from_secs(10),
        ..fast(0)
    };
    let client = ActivationClient::new("http://tollgate-activation.invalid:8470", options).unwrap();
    let error = client.activate("ACT-1", "M-1").unwrap_err();
    assert!(
        matches!(error, RenewalError::Unreachable { attempts: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_service_that_never_answers_times_out_on_every_attempt() {
    let silent = FakeService::start(vec![Reply::Silent]);
    let options = fast(2);
    let client = ActivationClient::new(&silent.url(), options).unwrap();
    let started = Instant::now();
    let error = client.renew(&online_key()).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, RenewalError::Timeout { attempts: 3, timeout, .. } if timeout == options.timeout),
        "{error:?}"
    );
    assert_eq!(silent.requests(), 3);
    let budget = options.timeout * 3;
    assert!(elapsed >= budget, "gave up early: {elapsed:?}");
    assert!(
        elapsed <= budget + most_backoff(&options) + SLACK,
        "took {elapsed:?}, more than timeout × attempts"
    );
    assert!(
        error
            .to_string()
            .contains("did not answer within 200 ms (3 attempts)"),
        "{error}"
    );
}

#[test]
fn a_body_that_is_not_json_is_garbage_and_not_retried() {
    let garbage = FakeService::start(vec![http("200 OK", "text/html", "<html>hello</html>")]);
    let client = ActivationClient::new(&garbage.url(), fast(3)).unwrap();
    let error = client.activate("ACT-1", "M-1").unwrap_err();
    let RenewalError::Garbage {
        reason, attempts, ..
    } = &error
    else {
        panic!("expected garbage, got {error:?}");
    };
    assert_eq!(*attempts, 1);
    assert!(
        reason.contains("not the expected JSON") && reason.contains("<html>hello</html>"),
        "{reason}"
    );
    assert_eq!(garbage.requests(), 1);
}

#[test]
fn an_answer_that_is_not_http_is_garbage() {
    let noise = FakeService::start(vec![Reply::Raw("SSH-2.0-OpenSSH_9.2\r\n\r\n".into())]);
    let error = ActivationClient::new(&noise.url(), fast(3))
        .unwrap()
        .activate("ACT-1", "M-1")
        .unwrap_err();
    assert!(
        matches!(error, RenewalError::Garbage { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(noise.requests(), 1);
}

#[test]
fn a_license_that_does_not_parse_or_is_for_another_code_is_garbage() {
    let vendor = VendorSecret::generate().unwrap();
    let other_code = Key {
        activation_code: Some("ACT-2".into()),
        ..Key::data_volume("ACT-2-1", 1)
    };
    let cases = [
        (
            license_answer("not a license"),
            "the license does not parse",
        ),
        (
            license_answer(&sign(&vendor, &other_code).to_json()),
            "the license is for activation code \"ACT-2\", not \"ACT-1\"",
        ),
        (
            license_answer(&sign(&vendor, &Key::data_volume("X-1", 1)).to_json()),
            "the license is for activation code none",
        ),
        (
            http("200 OK", "application/json", r#"{"licence": "typo"}"#),
            "missing field `license`",
        ),
        (http("204 No Content", "text/plain", ""), "status 204"),
        (http("302 Found", "text/plain", ""), "status 302"),
    ];
    for (reply, expected) in cases {
        let fake = FakeService::start(vec![reply]);
        let error = ActivationClient::new(&fake.url(), fast(2))
            .unwrap()
            .renew(&online_key())
            .unwrap_err();
        assert!(
            matches!(&error, RenewalError::Garbage { reason, .. } if reason.contains(expected)),
            "{expected}: {error:?}"
        );
        assert_eq!(fake.requests(), 1, "{expected}: garbage is not retried");
    }
}

#[test]
fn a_500_then_a_license_succeeds_after_one_retry() {
    let vendor = VendorSecret::generate().unwrap();
    let renewed = Key {
        activation_code: Some("ACT-1".into()),
        ..Key::data_volume("ACT-1-2", 1 << 30)
    };
    let fake = FakeService::start(vec![
        http(
            "500 Internal Server Error",
            "application/json",
            r#"{"error": "storage_failed", "message": "disk full"}"#,
        ),
        license_answer(&sign(&vendor, &renewed).to_json()),
    ]);
    let issued = ActivationClient::new(&fake.url(), fast(2))
        .unwrap()
        .renew(&online_key())
        .unwrap();
    assert_eq!(
        verify(&issued.license, &[vendor.public()]).unwrap(),
        renewed
    );
    assert_eq!(fake.requests(), 2);
}

#[test]
fn a_service_that_keeps_failing_is_unavailable_after_the_retries() {
    let fake = FakeService::start(vec![http(
        "503 Service Unavailable",
        "text/plain",
        "maintenance",
    )]);
    let error = ActivationClient::new(&fake.url(), fast(2))
        .unwrap()
        .activate("ACT-1", "M-1")
        .unwrap_err();
    assert!(
        matches!(&error, RenewalError::Unavailable { status: 503, attempts: 3, message, .. } if message == "\"maintenance\""),
        "{error:?}"
    );
    assert_eq!(fake.requests(), 3);
}

#[test]
fn a_refusal_after_a_failure_counts_both_attempts() {
    let fake = FakeService::start(vec![
        http("502 Bad Gateway", "text/plain", ""),
        http("403 Forbidden", "text/html", "<h1>no</h1>"),
    ]);
    let error = ActivationClient::new(&fake.url(), fast(5))
        .unwrap()
        .activate("ACT-1", "M-1")
        .unwrap_err();
    assert!(
        matches!(&error, RenewalError::Refused { status: 403, code, attempts: 2, .. } if code == "http_403"),
        "{error:?}"
    );
    assert_eq!(fake.requests(), 2);
}
