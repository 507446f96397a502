//! Activation by code through the C ABI, against the real activation
//! service on loopback: `tg_key_activate` adds the key issued for this machine, a code whose
//! one activation another machine holds is `TG_ACTIVATION_FAILED` and changes nothing,
//! `tg_key_activate_bulk` activates once for a group, and bad arguments are refused. The
//! functions are called through the Rust rlib, exactly as C calls them.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use serde_json::Value;
use tollgate::*;

mod common;
use common::{c, last_error, take};
use tollgate_activation::{Server, ServerHandle};
use tollgate_license::VendorSecret;

const TEMPLATE: &str = r#"{"kind": "commercial", "edition": "standard",
    "scheme": {"data_volume": {"limit_bytes": 1073741824}}}"#;

/// The service with ACT-C (one activation, free) and ACT-TAKEN (one activation, held by
/// another machine).
fn service() -> (tempfile::TempDir, ServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("codes.json");
    std::fs::write(
        &catalog,
        format!(
            r#"{{"codes": [
            {{"code": "ACT-C", "term_days": 30, "renewals_left": 0, "key": {TEMPLATE}}},
            {{"code": "ACT-TAKEN", "term_days": 30, "renewals_left": 0, "key": {TEMPLATE},
              "issued": [{{"id": "ACT-TAKEN-1", "expires_at": "2099-01-01T00:00:00Z",
                           "machine": "another machine"}}]}}]}}"#
        ),
    )
    .unwrap();
    let server = Server::bind(
        &catalog,
        VendorSecret::generate().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
    .spawn();
    (dir, server)
}

struct Engine {
    handle: *mut tg_engine,
    _dir: tempfile::TempDir,
}

impl Engine {
    fn new(projects: &[&str]) -> Engine {
        common::isolate_process_installation();
        let dir = tempfile::tempdir().unwrap();
        let mut handle = null_mut();
        let path = c(dir.path().to_str().unwrap());
        // SAFETY: valid strings and out-pointers; the handle is closed in `drop`.
        unsafe {
            assert_eq!(tg_engine_open(path.as_ptr(), &mut handle), tg_status::TG_OK);
            for project in projects {
                let project = c(project);
                assert_eq!(
                    tg_project_create(handle, project.as_ptr()),
                    tg_status::TG_OK
                );
            }
        }
        Engine { handle, _dir: dir }
    }

    fn activate(&self, project: &str, code: &str, url: &str, out: &mut *mut c_char) -> tg_status {
        let (project, code, url) = (c(project), c(code), c(url));
        // SAFETY: an open engine, valid strings and out-pointer.
        unsafe {
            tg_key_activate(
                self.handle,
                project.as_ptr(),
                code.as_ptr(),
                url.as_ptr(),
                null(),
                false,
                out,
            )
        }
    }

    fn key_ids(&self, project: &str) -> Vec<String> {
        let project = c(project);
        let mut out = null_mut();
        // SAFETY: an open engine, a valid string and out-pointer.
        let status = unsafe { tg_keys_json(self.handle, project.as_ptr(), &mut out) };
        assert_eq!(status, tg_status::TG_OK);
        let keys: Value = serde_json::from_str(&take(out)).unwrap();
        keys.as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"]["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: opened in `new`, closed once.
        unsafe { tg_engine_close(self.handle) };
    }
}

fn issued(dir: &tempfile::TempDir, code: usize) -> Value {
    let catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("codes.json")).unwrap())
            .unwrap();
    catalog["codes"][code]["issued"].clone()
}

#[test]
fn tg_key_activate_adds_the_key_issued_for_this_machine() {
    let (dir, service) = service();
    let engine = Engine::new(&["wh"]);
    let mut out = null_mut();
    assert_eq!(
        engine.activate("wh", "ACT-C", &service.url(), &mut out),
        tg_status::TG_OK,
        "{}",
        last_error()
    );
    let activated: Value = serde_json::from_str(&take(out)).unwrap();
    assert_eq!(activated["key"], "ACT-C-1");
    assert_eq!(activated["role"], "active");
    assert_eq!(engine.key_ids("wh"), ["ACT-C-1"]);
    let mut id = null_mut();
    // SAFETY: an open engine and a valid out-pointer.
    assert_eq!(
        unsafe { tg_engine_machine_id(engine.handle, &mut id) },
        tg_status::TG_OK
    );
    assert_eq!(issued(&dir, 0)[0]["machine"], take(id).as_str());
}

/// Through C: the code's one activation is another machine's, so the service answers
/// 409 and the call is `TG_ACTIVATION_FAILED` with its reason; nothing changed.
#[test]
fn a_code_used_up_by_another_machine_is_tg_activation_failed() {
    let (dir, service) = service();
    let engine = Engine::new(&["wh"]);
    let mut out = null_mut();
    assert_eq!(
        engine.activate("wh", "ACT-TAKEN", &service.url(), &mut out),
        tg_status::TG_ACTIVATION_FAILED
    );
    assert!(out.is_null());
    assert_eq!(
        last_error(),
        "activation code \"ACT-TAKEN\" was not activated: the activation service refused the \
request (409 no_activations_left): activation code \"ACT-TAKEN\" has no activations left: its \
one activation is used by another machine"
    );
    assert!(engine.key_ids("wh").is_empty());
    assert_eq!(issued(&dir, 1).as_array().unwrap().len(), 1);
    // SAFETY: the status name is a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(tg_status_name(26)) };
    assert_eq!(name.to_str().unwrap(), "TG_ACTIVATION_FAILED");
}

#[test]
fn tg_key_activate_bulk_activates_once_for_every_project_of_a_group() {
    let (dir, service) = service();
    let engine = Engine::new(&["svm-1", "svm-2"]);
    for project in ["svm-1", "svm-2"] {
        let (p, key) = (
            c(project),
            c(&format!(
                r#"{{"id": "K-{project}", "delivery": "online", "kind": "commercial",
                    "edition": "standard", "scheme": {{"data_volume": {{"limit_bytes": 1000}}}}}}"#
            )),
        );
        // SAFETY: an open engine and valid strings.
        assert_eq!(
            unsafe { tg_key_add(engine.handle, p.as_ptr(), key.as_ptr()) },
            tg_status::TG_OK
        );
    }
    let projects = c(r#"["svm-1", "svm-2"]"#);
    // SAFETY: an open engine and valid strings.
    assert_eq!(
        unsafe { tg_group_add(engine.handle, c"cluster".as_ptr(), projects.as_ptr()) },
        tg_status::TG_OK
    );
    let (target, url) = (c(r#"{"group": "cluster"}"#), c(&service.url()));
    let mut out = null_mut();
    // SAFETY: an open engine, valid strings and out-pointer.
    let status = unsafe {
        tg_key_activate_bulk(
            engine.handle,
            target.as_ptr(),
            c"ACT-C".as_ptr(),
            url.as_ptr(),
            null(),
            &mut out,
        )
    };
    assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    let outcomes: Value = serde_json::from_str(&take(out)).unwrap();
    let lines: Vec<(&str, &str)> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["project"].as_str().unwrap(), o["role"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("svm-1", "reserved"), ("svm-2", "reserved")]);
    assert_eq!(engine.key_ids("svm-2"), ["K-svm-2", "ACT-C-1"]);
    assert_eq!(issued(&dir, 0).as_array().unwrap().len(), 1);
}

#[test]
fn bad_arguments_are_refused_before_the_service_is_asked() {
    let (dir, service) = service();
    let engine = Engine::new(&["wh"]);
    let url = c(&service.url());
    let mut out = null_mut();
    // SAFETY: an open engine; the NULL code is what is tested.
    let status = unsafe {
        tg_key_activate(
            engine.handle,
            c"wh".as_ptr(),
            null(),
            url.as_ptr(),
            null(),
            false,
            &mut out,
        )
    };
    assert_eq!(status, tg_status::TG_INVALID_ARGUMENT);
    assert_eq!(last_error(), "argument `code` is NULL");
    let missing = c("/nowhere/ca.pem");
    // SAFETY: an open engine and valid strings.
    let status = unsafe {
        tg_key_activate(
            engine.handle,
            c"wh".as_ptr(),
            c"ACT-C".as_ptr(),
            url.as_ptr(),
            missing.as_ptr(),
            false,
            &mut out,
        )
    };
    assert_eq!(status, tg_status::TG_INVALID_ARGUMENT);
    assert!(
        last_error()
            .starts_with("invalid ca_file: /nowhere/ca.pem is not a file of trusted certificates"),
        "{}",
        last_error()
    );
    assert_eq!(
        engine.activate("nowhere", "ACT-C", &service.url(), &mut out),
        tg_status::TG_NOT_FOUND
    );
    assert!(issued(&dir, 0).is_null(), "nothing was activated");
    assert_eq!(service.requests_served(), 0);
}
