//! `tollgate key renew PROJECT --activation-url URL` end to end, against the real activation
//! service on loopback: the successor becomes the Reserved key; a service that is down fails
//! with the manual-renewal message (rule RENEWAL_FAILED, exit status 1) and changes nothing.

mod common;

use std::net::TcpListener;

use common::State;
use predicates::str::contains;
use tollgate_activation::{ActivationClient, ClientOptions, Server, ServerHandle};
use tollgate_license::VendorSecret;

const CATALOG: &str = r#"{"codes": [{"code": "ACT-1", "term_days": 30, "renewals_left": 5,
  "key": {"kind": "commercial", "edition": "standard",
          "scheme": {"data_volume": {"limit_bytes": 1073741824}}}}]}"#;

/// The service with code ACT-1, and a state whose project "P" holds the key of a first
/// activation, added from its license file.
fn activated() -> (State, tempfile::TempDir, ServerHandle) {
    let vendor = tempfile::tempdir().unwrap();
    let catalog = vendor.path().join("codes.json");
    std::fs::write(&catalog, CATALOG).unwrap();
    let service = Server::bind(
        &catalog,
        VendorSecret::generate().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
    .spawn();
    let license = ActivationClient::new(&service.url(), ClientOptions::default())
        .unwrap()
        .activate("ACT-1", "M-1")
        .unwrap()
        .text;
    let file = vendor.path().join("ACT-1-1.lic");
    std::fs::write(&file, license).unwrap();
    let state = State::new();
    state.run("project create P").success();
    state
        .cmd(&["key", "add", "P", "--file", file.to_str().unwrap()])
        .assert()
        .success();
    (state, vendor, service)
}

#[test]
fn renew_adds_the_successor_as_the_reserved_key() {
    let (state, _vendor, service) = activated();
    let url = service.url();
    state
        .run(&format!("key renew P --activation-url {url}"))
        .success()
        .stdout("key ACT-1-1 renewed: ACT-1-2 is now the Reserved key: it takes over when the old key expires\n");
    let keys = state.json("key list P");
    assert_eq!(keys[1]["key"]["id"], "ACT-1-2");
    assert_eq!(
        (&keys[0]["status"], &keys[1]["status"]),
        (&"active".into(), &"reserved".into())
    );

    // Nothing more to renew; --json says what was renewed.
    state
        .run(&format!("key renew P --activation-url {url}"))
        .success()
        .stdout(contains("nothing to renew"));
    let report = state.json(&format!("key renew P --activation-url {url}"));
    assert_eq!(report, serde_json::json!({"project": "P", "renewed": []}));
    assert_eq!(service.requests_served(), 2);
}

#[test]
fn a_service_that_is_down_fails_with_the_manual_renewal_message() {
    let (state, _vendor, service) = activated();
    drop(service);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let line = format!("key renew P --activation-url http://{dead} --attempts 1 --timeout 2");
    state
        .run(&line)
        .code(1)
        .stderr(contains(format!(
            "error: automatic renewal of key \"ACT-1-1\" failed (the activation service at http://{dead} is unreachable (1 attempt)"
        )))
        .stderr(contains(
            "): start the activation task manually to renew the license\n  rule RENEWAL_FAILED:",
        ));
    let refusal = state.refusal(&line);
    assert_eq!(refusal["error"]["code"], "RENEWAL_FAILED");
    // Nothing changed, and the audit log says manual renewal is needed.
    assert_eq!(state.json("key list P").as_array().unwrap().len(), 1);
    state
        .run("events")
        .success()
        .stdout(contains("automatic renewal of key \"ACT-1-1\" failed"));
}

#[test]
fn a_url_that_is_not_one_is_refused() {
    let state = State::new();
    state.run("project create P").success();
    state
        .run("key renew P --activation-url ftp://example.com")
        .code(1)
        .stderr(contains("is not the URL of an activation service"));
}
