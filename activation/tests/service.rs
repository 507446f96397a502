//! The real activation service on loopback, driven by the real client: activation, renewal,
//! refusals, persistence across a restart, and requests that are not the protocol.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{fast, Vendor};
use time::OffsetDateTime;
use tollgate_activation::{wire, ActivationClient, RenewalError};
use tollgate_core::{Delivery, Key};

fn client(url: &str) -> ActivationClient {
    ActivationClient::new(url, fast(3)).unwrap()
}

#[test]
fn activation_issues_a_license_that_verifies_with_the_right_expiry_and_code() {
    let vendor = Vendor::with_activations(&[("ACT-123", 365, 5, 2)]);
    let service = vendor.start();
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let issued = client(&service.url()).activate("ACT-123", "M-1").unwrap();
    let after = OffsetDateTime::now_utc();

    let key = vendor.verify(&issued);
    assert_eq!(key.id, "ACT-123-1");
    assert_eq!(key.delivery, Delivery::Online);
    assert_eq!(key.activation_code.as_deref(), Some("ACT-123"));
    assert_eq!(key.company.as_deref(), Some("Acme"));
    let term = time::Duration::days(365);
    let expires = key.expires_at.unwrap();
    assert!(
        expires >= before + term && expires <= after + term,
        "{expires} is not 365 days after the request"
    );
    // The text is the license file the engine stores.
    assert!(issued.text.contains("tollgate-license-2"));
    // Another machine gets a new key; the same machine again gets the key it has.
    let other = client(&service.url()).activate("ACT-123", "M-2").unwrap();
    assert_eq!(vendor.verify(&other).id, "ACT-123-2");
    let again = client(&service.url()).activate("ACT-123", "M-1").unwrap();
    assert_eq!(vendor.verify(&again), key);
    assert_eq!(service.requests_served(), 3);
    let issued = vendor.catalog()["codes"][0]["issued"].clone();
    assert_eq!(issued[0]["machine"], "M-1");
    assert_eq!(issued[1]["machine"], "M-2");
    assert_eq!(issued.as_array().unwrap().len(), 2);
}

#[test]
fn renewal_starts_at_the_old_expiry_and_is_kept_across_a_restart() {
    let vendor = Vendor::new(&[("ACT-1", 30, 5)]);
    let service = vendor.start();
    let first = vendor.verify(&client(&service.url()).activate("ACT-1", "M-1").unwrap());
    let second = vendor.verify(&client(&service.url()).renew(&first).unwrap());
    assert_eq!(second.id, "ACT-1-2");
    assert_eq!(second.activation_code.as_deref(), Some("ACT-1"));
    assert_eq!(
        second.expires_at.unwrap(),
        first.expires_at.unwrap() + time::Duration::days(30)
    );
    assert_eq!(vendor.catalog()["codes"][0]["renewals_left"], 4);
    service.stop().unwrap();

    // A new service on the same catalog knows what the first one issued and spent.
    let service = vendor.start();
    let third = vendor.verify(&client(&service.url()).renew(&second).unwrap());
    assert_eq!(third.id, "ACT-1-3");
    assert_eq!(
        third.expires_at.unwrap(),
        second.expires_at.unwrap() + time::Duration::days(30)
    );
    assert_eq!(vendor.catalog()["codes"][0]["renewals_left"], 3);
}

#[test]
fn renewing_a_key_again_returns_its_successor_without_spending_a_renewal() {
    let vendor = Vendor::new(&[("ACT-1", 30, 1)]);
    let service = vendor.start();
    let client = client(&service.url());
    let first = vendor.verify(&client.activate("ACT-1", "M-1").unwrap());
    let second = client.renew(&first).unwrap();
    // As a client whose first answer was lost would ask again.
    let repeated = client.renew(&first).unwrap();
    assert_eq!(vendor.verify(&repeated), vendor.verify(&second));
    assert_eq!(vendor.catalog()["codes"][0]["renewals_left"], 0);
}

#[test]
fn an_expired_key_is_renewed_from_now() {
    let vendor = Vendor::with_catalog(&format!(
        r#"{{"codes": [{{"code": "OLD", "key": {}, "term_days": 10, "renewals_left": 1,
            "issued": [{{"id": "OLD-1", "expires_at": "2020-01-01T00:00:00Z"}}]}}]}}"#,
        common::TEMPLATE
    ));
    let service = vendor.start();
    let expired = Key {
        activation_code: Some("OLD".into()),
        expires_at: Some(time::macros::datetime!(2020-01-01 00:00:00 UTC)),
        ..Key::data_volume("OLD-1", 1 << 30)
    };
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let renewed = client(&service.url()).renew(&expired).unwrap();
    let after = OffsetDateTime::now_utc();
    let key = vendor.verify(&renewed);
    assert_eq!(key.id, "OLD-2");
    let term = time::Duration::days(10);
    let expires = key.expires_at.unwrap();
    assert!(
        expires >= before + term && expires <= after + term,
        "{expires}"
    );
}

#[test]
fn an_unknown_code_is_refused_with_404_and_not_retried() {
    let vendor = Vendor::new(&[("ACT-1", 30, 1)]);
    let service = vendor.start();
    let client = client(&service.url());
    let error = client.activate("ACT-404", "M-1").unwrap_err();
    let RenewalError::Refused {
        status,
        code,
        message,
        attempts,
    } = &error
    else {
        panic!("expected a refusal, got {error:?}");
    };
    assert_eq!(
        (*status, code.as_str(), *attempts),
        (404, wire::UNKNOWN_CODE, 1)
    );
    assert!(message.contains("\"ACT-404\""), "{message}");
    assert_eq!(service.requests_served(), 1, "a 4xx answer is not retried");

    // A key the service never issued for the code.
    let stranger = Key {
        activation_code: Some("ACT-1".into()),
        ..Key::data_volume("ACT-1-7", 1)
    };
    assert!(matches!(
        client.renew(&stranger),
        Err(RenewalError::Refused { status: 404, ref code, .. }) if code == wire::UNKNOWN_KEY
    ));
    assert_eq!(service.requests_served(), 2);
}

#[test]
fn a_code_with_no_renewals_left_is_refused_with_409_and_not_retried() {
    let vendor = Vendor::new(&[("ACT-1", 30, 0)]);
    let service = vendor.start();
    let client = client(&service.url());
    let key = vendor.verify(&client.activate("ACT-1", "M-1").unwrap());
    let error = client.renew(&key).unwrap_err();
    assert!(
        matches!(&error, RenewalError::Refused { status: 409, code, attempts: 1, .. } if code == wire::NO_RENEWALS_LEFT),
        "{error:?}"
    );
    assert_eq!(service.requests_served(), 2, "a 4xx answer is not retried");
    assert!(error.needs_manual_renewal());
    assert_eq!(
        error.manual_renewal_message(&key.id),
        "automatic renewal of key \"ACT-1-1\" failed (the activation service refused the request \
(409 no_renewals_left): activation code \"ACT-1\" has no renewals left): start the activation \
task manually to renew the license"
    );
}

#[test]
fn requests_outside_the_protocol_are_answered_with_an_error_body() {
    let vendor = Vendor::new(&[("ACT-1", 30, 0)]);
    let service = vendor.start();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let cases = [
        (
            wire::ACTIVATE_PATH,
            "not json",
            400,
            wire::MALFORMED_REQUEST,
        ),
        (
            wire::ACTIVATE_PATH,
            r#"{"cod": "ACT-1"}"#,
            400,
            wire::MALFORMED_REQUEST,
        ),
        (
            wire::RENEW_PATH,
            r#"{"code": "ACT-1"}"#,
            400,
            wire::MALFORMED_REQUEST,
        ),
        (wire::RENEW_PATH, "[]", 400, wire::MALFORMED_REQUEST),
        ("/v2/activate", r#"{"code": "ACT-1"}"#, 404, wire::NOT_FOUND),
    ];
    for (path, body, status, code) in cases {
        let mut response = agent
            .post(format!("{}{path}", service.url()))
            .send(body)
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {body}");
        let answer: wire::ErrorResponse =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(answer.error, code, "{path} {body}");
        assert!(!answer.message.is_empty());
    }
    let mut response = agent
        .get(format!("{}{}", service.url(), wire::ACTIVATE_PATH))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let answer: wire::ErrorResponse =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(answer.error, wire::METHOD_NOT_ALLOWED);
    // Nothing was issued.
    assert!(vendor.catalog()["codes"][0].get("issued").is_none());
}

/// Regression: five activations of one code gave five keys. Now 24 machines race for
/// a code of 5 activations: exactly 5 get a key, 19 get 409 `no_activations_left`, and the
/// catalog records the 5 machines and no more.
#[test]
fn racing_activations_of_one_code_never_exceed_its_limit() {
    const MACHINES: usize = 24;
    const ALLOWED: usize = 5;
    let vendor = Vendor::with_activations(&[("ACT-1", 30, 0, ALLOWED as u32)]);
    let service = vendor.start();
    let url = service.url();
    let start = std::sync::Barrier::new(MACHINES);
    let answers: Vec<(String, Result<String, RenewalError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..MACHINES)
            .map(|m| {
                let (url, start, vendor) = (&url, &start, &vendor);
                scope.spawn(move || {
                    let client = ActivationClient::new(url, fast(0)).unwrap();
                    let machine = format!("machine-{m}");
                    start.wait();
                    let answer = client
                        .activate("ACT-1", &machine)
                        .map(|issued| vendor.verify(&issued).id);
                    (machine, answer)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut winners = Vec::new();
    for (machine, answer) in &answers {
        match answer {
            Ok(id) => winners.push((machine.clone(), id.clone())),
            Err(RenewalError::Refused {
                status,
                code,
                message,
                attempts,
            }) => {
                assert_eq!(
                    (*status, code.as_str(), *attempts),
                    (409, wire::NO_ACTIVATIONS_LEFT, 1)
                );
                assert_eq!(
                    message,
                    "activation code \"ACT-1\" has no activations left: all 5 are used by other machines"
                );
            }
            Err(other) => panic!("{machine}: {other}"),
        }
    }
    assert_eq!(winners.len(), ALLOWED, "{answers:?}");
    let ids: HashSet<&String> = winners.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), ALLOWED);
    let issued = vendor.catalog()["codes"][0]["issued"].clone();
    let recorded: HashSet<(String, String)> = issued
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["machine"].as_str().unwrap().to_owned(),
                k["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recorded, winners.into_iter().collect());
    // One past the limit is still refused after the race, and changes nothing.
    let before = std::fs::read(vendor.catalog_path()).unwrap();
    let late = client(&url).activate("ACT-1", "machine-late").unwrap_err();
    assert!(
        matches!(late, RenewalError::Refused { status: 409, .. }),
        "{late}"
    );
    assert_eq!(std::fs::read(vendor.catalog_path()).unwrap(), before);
}
