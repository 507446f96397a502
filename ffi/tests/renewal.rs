//! Online renewal through the C ABI, against the real activation service on loopback: a key
//! renewed in the background, a failed renewal's status and message, and the arguments
//! refused. The functions are called through the Rust rlib, exactly as C calls them.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate::*;

mod common;
use common::{c, last_error, take};
use tollgate_activation::{ActivationClient, ClientOptions, Server, ServerHandle};
use tollgate_license::VendorSecret;

/// Takes a JSON string the library returned.
fn json(out: *mut c_char) -> Value {
    serde_json::from_str(&take(out)).unwrap()
}

/// The vendor's service with code ACT-1 (30 days, 5 renewals) and the license of a first
/// activation.
fn service() -> (tempfile::TempDir, ServerHandle, String) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("codes.json");
    std::fs::write(
        &catalog,
        r#"{"codes": [{"code": "ACT-1", "term_days": 30, "renewals_left": 5,
            "key": {"kind": "commercial", "edition": "standard",
                    "scheme": {"data_volume": {"limit_bytes": 1073741824}}}}]}"#,
    )
    .unwrap();
    let server = Server::bind(
        &catalog,
        VendorSecret::generate().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
    .spawn();
    let license = ActivationClient::new(&server.url(), ClientOptions::default())
        .unwrap()
        .activate("ACT-1", "M-1")
        .unwrap()
        .text;
    (dir, server, license)
}

/// An engine with project "P" holding `key` as its Active key.
struct Engine {
    handle: *mut tg_engine,
    _dir: tempfile::TempDir,
}

impl Engine {
    fn new(key: &str) -> Engine {
        common::isolate_process_installation();
        let dir = tempfile::tempdir().unwrap();
        let mut handle = null_mut();
        let path = c(dir.path().to_str().unwrap());
        // SAFETY: valid strings and out-pointers; the handle is closed in `drop`.
        unsafe {
            assert_eq!(tg_engine_open(path.as_ptr(), &mut handle), tg_status::TG_OK);
            assert_eq!(tg_project_create(handle, c"P".as_ptr()), tg_status::TG_OK);
            let key = c(key);
            assert_eq!(
                tg_key_add(handle, c"P".as_ptr(), key.as_ptr()),
                tg_status::TG_OK
            );
        }
        Engine { handle, _dir: dir }
    }

    fn keys(&self) -> Vec<(String, String)> {
        let mut out = null_mut();
        // SAFETY: an open engine, a valid string and out-pointer.
        let status = unsafe { tg_keys_json(self.handle, c"P".as_ptr(), &mut out) };
        assert_eq!(status, tg_status::TG_OK);
        json(out)
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key"]["id"].as_str().unwrap().to_owned(),
                    k["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn status(&self) -> Value {
        let mut out = null_mut();
        // SAFETY: an open engine and a valid out-pointer.
        let status = unsafe { tg_renewal_status_json(self.handle, &mut out) };
        assert_eq!(status, tg_status::TG_OK);
        json(out)
    }

    fn enable(&self, url: &str, options: &tg_renewal_options) -> tg_status {
        let url = c(url);
        // SAFETY: an open engine, a valid string and options.
        unsafe { tg_engine_enable_renewal(self.handle, url.as_ptr(), options) }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: opened in `new`, closed once.
        unsafe { tg_engine_close(self.handle) };
    }
}

/// Options that find a key expiring within 31 days due, and check every 20 ms.
fn fast() -> tg_renewal_options {
    tg_renewal_options {
        lead_secs: 31 * 24 * 60 * 60,
        retry_secs: 3600,
        check_every_ms: 20,
        timeout_ms: 2000,
        attempts: 1,
    }
}

#[test]
fn the_background_renewal_adds_the_successor_as_the_reserve() {
    let (_vendor, server, license) = service();
    let engine = Engine::new(&license);
    assert_eq!(engine.status(), Value::Array(vec![]));
    assert_eq!(engine.enable(&server.url(), &fast()), tg_status::TG_OK);
    let deadline = Instant::now() + Duration::from_secs(8);
    while engine.keys().len() < 2 || engine.status()[0]["state"] != "renewed" {
        assert!(Instant::now() < deadline, "keys {:?}", engine.keys());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        engine.keys(),
        [
            ("ACT-1-1".to_owned(), "active".to_owned()),
            ("ACT-1-2".to_owned(), "reserved".to_owned())
        ]
    );
    let status = &engine.status()[0];
    assert_eq!(status["key"], "ACT-1-1");
    assert_eq!(status["successor"], "ACT-1-2");

    // Nothing more to renew now.
    let mut out = null_mut();
    // SAFETY: an open engine, a valid string and out-pointer.
    let renewed = unsafe { tg_renew_now(engine.handle, c"P".as_ptr(), &mut out) };
    assert_eq!(renewed, tg_status::TG_OK);
    assert_eq!(json(out), Value::Array(vec![]));
}

#[test]
fn renew_now_against_a_dead_service_is_renewal_failed_with_the_manual_message() {
    let (_vendor, server, license) = service();
    let url = server.url();
    server.stop().unwrap();
    let engine = Engine::new(&license);
    let options = tg_renewal_options {
        lead_secs: 1,
        ..fast()
    };
    assert_eq!(engine.enable(&url, &options), tg_status::TG_OK);
    let mut out = null_mut();
    // SAFETY: an open engine, a valid string and out-pointer.
    let status = unsafe { tg_renew_now(engine.handle, c"P".as_ptr(), &mut out) };
    assert_eq!(status, tg_status::TG_RENEWAL_FAILED);
    assert!(out.is_null());
    let message = last_error();
    assert!(
        message.starts_with(&format!(
            "automatic renewal of key \"ACT-1-1\" failed (the activation service at {url} is unreachable (1 attempt)"
        )) && message.ends_with("): start the activation task manually to renew the license"),
        "{message}"
    );
    assert_eq!(engine.keys(), [("ACT-1-1".to_owned(), "active".to_owned())]);
    // SAFETY: a static string.
    let name = unsafe { CStr::from_ptr(tg_status_name(25)) };
    assert_eq!(name.to_str().unwrap(), "TG_RENEWAL_FAILED");
    assert_eq!(tg_status::TG_RENEWAL_FAILED as u32, 25);
}

#[test]
fn bad_arguments_are_refused() {
    let (_vendor, _server, license) = service();
    let engine = Engine::new(&license);
    assert_eq!(
        engine.enable("ftp://example.com", &fast()),
        tg_status::TG_INVALID_ARGUMENT
    );
    assert!(last_error().contains("activation_url"), "{}", last_error());
    // SAFETY: NULL arguments are refused, never read.
    unsafe {
        assert_eq!(
            tg_engine_enable_renewal(null_mut(), c"http://127.0.0.1:1".as_ptr(), null()),
            tg_status::TG_INVALID_ARGUMENT
        );
        assert_eq!(
            tg_engine_enable_renewal(engine.handle, null(), null()),
            tg_status::TG_INVALID_ARGUMENT
        );
        // NULL options are the defaults.
        assert_eq!(
            tg_engine_enable_renewal(engine.handle, c"http://127.0.0.1:1".as_ptr(), null()),
            tg_status::TG_OK
        );
        let mut out = null_mut();
        assert_eq!(
            tg_renew_now(engine.handle, c"nope".as_ptr(), &mut out),
            tg_status::TG_NOT_FOUND
        );
    }
}
