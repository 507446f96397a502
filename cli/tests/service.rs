//! Against the activation service that `scripts/test.sh` (and so `.ci/run`) starts on loopback
//! with `scripts/activation-server.sh`: a state that trusts the service's vendor key activates
//! codes through `tollgate key activate` and renews an online key through `tollgate key renew`,
//! and a code without renewals left fails with the manual-renewal message. Ignored unless the service is running: `scripts/test.sh` runs it
//! with `--ignored` and `TOLLGATE_ACTIVATION_DIR` pointing at the service's directory.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::str::contains;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

#[test]
#[ignore = "needs the service started by scripts/activation-server.sh (scripts/test.sh runs it)"]
fn renewal_through_the_service_started_for_the_tests() {
    let dir = PathBuf::from(
        std::env::var_os("TOLLGATE_ACTIVATION_DIR").expect("TOLLGATE_ACTIVATION_DIR is set"),
    );
    let url = std::fs::read_to_string(dir.join("url")).unwrap();
    let url = url.trim();
    assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let tollgate = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("TOLLGATE_HOME")
            .env("TOLLGATE_INSTALLATION", work.path().join("installation"))
            .arg("--state")
            .arg(&state)
            .args(args);
        cmd.assert()
    };
    let public = dir.join("vendor/vendor.pub");
    tollgate(&["trust", "add", public.to_str().unwrap()]).success();
    for (project, code) in [("renewable", "ACT-TEST"), ("final", "ACT-NORENEW")] {
        tollgate(&["project", "create", project]).success();
        tollgate(&[
            "key",
            "activate",
            project,
            "--code",
            code,
            "--activation-url",
            url,
        ])
        .success();
    }
    tollgate(&["key", "renew", "renewable", "--activation-url", url]).success();
    let keys = tollgate(&["key", "list", "renewable", "--json"]).success();
    let keys: serde_json::Value = serde_json::from_slice(&keys.get_output().stdout).unwrap();
    let statuses: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "reserved"]);
    tollgate(&["key", "renew", "final", "--activation-url", url])
        .code(1)
        .stderr(contains("RENEWAL_FAILED"))
        .stderr(contains("start the activation task manually"));
    let keys = tollgate(&["key", "list", "final", "--json"]).success();
    let keys: serde_json::Value = serde_json::from_slice(&keys.get_output().stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1, "nothing changed");
}
