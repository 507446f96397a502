//! `tollgate serve-activation` as an operator runs it: a real process on loopback, a real
//! client, a restart in between, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_license::{verify, VendorPublic};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

const CATALOG: &str = r#"{"codes": [{"code": "ACT-123", "term_days": 365, "renewals_left": 5,
  "key": {"kind": "commercial", "edition": "standard",
          "scheme": {"data_volume": {"limit_bytes": 1073741824}}}}]}"#;

/// A vendor directory: `vendor/` from `license keygen`, and `codes.json`.
fn vendor() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["license", "keygen", "--out"])
        .arg(dir.path().join("vendor"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.path().join("codes.json"), CATALOG).unwrap();
    dir
}

/// A running `tollgate serve-activation`, killed if a test fails before stopping it.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(dir: &Path) -> Service {
        let mut child = serve(dir, &["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Service { child, url }
    }

    fn client(&self) -> ActivationClient {
        let options = ClientOptions {
            timeout: Duration::from_secs(5),
            retries: 0,
            ..ClientOptions::default()
        };
        ActivationClient::new(&self.url, options).unwrap()
    }

    /// Sends SIGTERM and waits for the process to end.
    fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tollgate serve-activation --codes DIR/codes.json --key DIR/vendor/vendor.key ARGS…`
fn serve(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("TOLLGATE_HOME")
        .current_dir(dir)
        .arg("serve-activation")
        .arg("--codes")
        .arg(dir.join("codes.json"))
        .arg("--key")
        .arg(dir.join("vendor/vendor.key"))
        .args(args);
    command
}

fn renewals_left(dir: &Path) -> Value {
    let catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("codes.json")).unwrap()).unwrap();
    catalog["codes"][0]["renewals_left"].clone()
}

#[test]
fn the_service_activates_and_renews_keys_across_a_restart_and_stops_on_sigterm() {
    let dir = vendor();
    let trusted = [VendorPublic::read(&dir.path().join("vendor/vendor.pub")).unwrap()];

    let service = Service::start(dir.path());
    let key = verify(
        &service.client().activate("ACT-123", "M-1").unwrap().license,
        &trusted,
    )
    .unwrap();
    assert_eq!(key.id, "ACT-123-1");
    assert_eq!(key.activation_code.as_deref(), Some("ACT-123"));
    let renewed = verify(&service.client().renew(&key).unwrap().license, &trusted).unwrap();
    assert_eq!(renewed.id, "ACT-123-2");
    assert!(service.terminate().success());
    assert_eq!(renewals_left(dir.path()), 4);

    let service = Service::start(dir.path());
    let again = verify(&service.client().renew(&renewed).unwrap().license, &trusted).unwrap();
    assert_eq!(again.id, "ACT-123-3");
    assert_eq!(
        again.expires_at.unwrap() - renewed.expires_at.unwrap(),
        time::Duration::days(365)
    );
    assert_eq!(renewals_left(dir.path()), 3);
    assert!(service.terminate().success());
}

#[test]
fn a_bad_catalog_or_address_is_refused_before_serving() {
    let dir = vendor();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "{\"codes\": [}",
            &["--listen", "127.0.0.1:0"],
            "error: catalog ",
        ),
        (
            CATALOG,
            &["--listen", &busy],
            "error: cannot listen on 127.0.0.1:",
        ),
        (
            CATALOG,
            &["--listen", "localhost"],
            "invalid value 'localhost'",
        ),
    ];
    for (catalog, args, expected) in cases {
        std::fs::write(dir.path().join("codes.json"), catalog).unwrap();
        let output = serve(dir.path(), args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let missing_key: PathBuf = dir.path().join("nowhere/vendor.key");
    let output = Command::new(BIN)
        .args(["serve-activation", "--codes"])
        .arg(dir.path().join("codes.json"))
        .arg("--key")
        .arg(&missing_key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere/vendor.key"));
}
