//! `tollgate serve-activation` as an operator runs it: a real process on loopback, a real
//! client, a restart in between, and a clean stop on SIGTERM; HTTPS with a certificate the test
//! makes. And `tollgate key activate` as a customer runs it against that service: one project,
//! in bulk, past the code's limit, under trust.

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
          "scheme": {"data_volume": {"limit_bytes": 1073741824}}}},
  {"code": "ACT-ONE", "term_days": 365, "renewals_left": 0,
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
        Service::start_with(dir, &[])
    }

    /// The service with these arguments besides `--listen 127.0.0.1:0`.
    fn start_with(dir: &Path, args: &[&str]) -> Service {
        let mut child = serve(dir, &[&["--listen", "127.0.0.1:0"], args].concat())
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
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "{url}"
        );
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

/// A customer's state and installation (one machine), and `tollgate` commands on them.
struct Customer {
    dir: TempDir,
}

impl Customer {
    fn new() -> Customer {
        Customer {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `tollgate --state DIR/state ARGS…` with `$TOLLGATE_INSTALLATION` at DIR/installation.
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .env_remove("TOLLGATE_HOME")
            .env_remove("TOLLGATE_ACTIVATION_URL")
            .env_remove("TOLLGATE_ACTIVATION_CA")
            .env(
                "TOLLGATE_INSTALLATION",
                self.dir.path().join("installation"),
            )
            .arg("--state")
            .arg(self.dir.path().join("state"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `ARGS… --json`, expects exit status `code`, and parses the JSON document.
    fn json(&self, args: &[&str], code: i32) -> Value {
        let output = self.run(&[args, &["--json"]].concat());
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// The ids and statuses of a project's keys.
    fn keys(&self, project: &str) -> Vec<(String, String)> {
        let keys = self.json(&["key", "list", project], 0);
        keys.as_array()
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
}

fn issued(dir: &Path, code: usize) -> Vec<Value> {
    let catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("codes.json")).unwrap()).unwrap();
    catalog["codes"][code]["issued"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Regression: a customer could not activate a code. `key activate` adds the key the
/// service issues for this machine, verified under trust; the same machine asking again gets
/// the same key; a second machine past the code's one activation is refused with
/// ACTIVATION_FAILED and the service's 409, and nothing changes in its state.
#[test]
fn key_activate_adds_the_key_and_a_second_machine_past_the_limit_is_refused() {
    let dir = vendor();
    let service = Service::start(dir.path());
    let url = service.url.as_str();
    let public = dir.path().join("vendor/vendor.pub");

    let first = Customer::new();
    first.json(&["trust", "add", public.to_str().unwrap()], 0);
    first.json(&["project", "create", "wh"], 0);
    let activate = |project: &'static str| {
        vec![
            "key",
            "activate",
            project,
            "--code",
            "ACT-ONE",
            "--activation-url",
            url,
        ]
    };
    let added = first.json(&activate("wh"), 0);
    assert_eq!(added["key"], "ACT-ONE-1");
    assert_eq!(added["role"], "active");
    assert_eq!(first.keys("wh"), [("ACT-ONE-1".into(), "active".into())]);
    // The same machine again: the service gives the same key, which the project holds already,
    // and spends no other activation.
    let again = first.json(&activate("wh"), 1);
    assert_eq!(again["error"]["code"], "DUPLICATE_KEY", "{again}");
    assert_eq!(first.keys("wh"), [("ACT-ONE-1".into(), "active".into())]);
    let records = issued(dir.path(), 1);
    assert_eq!(records.len(), 1);
    let machine = records[0]["machine"].as_str().unwrap();
    assert!(
        machine.len() == 64 && machine.bytes().all(|b| b.is_ascii_hexdigit()),
        "{machine}"
    );

    // Another installation is another machine: one past the limit.
    let second = Customer::new();
    second.json(&["project", "create", "wh"], 0);
    let refused = second.json(&activate("wh"), 1);
    assert_eq!(refused["error"]["code"], "ACTIVATION_FAILED", "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "activation code \"ACT-ONE\" was not activated: the activation service refused the \
request (409 no_activations_left): activation code \"ACT-ONE\" has no activations left: its \
one activation is used by another machine"
    );
    assert!(second.keys("wh").is_empty());
    assert_eq!(issued(dir.path(), 1).len(), 1);

    // A state that trusts another vendor refuses the service's license: nothing changes.
    let stranger = Customer::new();
    let other = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["license", "keygen", "--out"])
        .arg(other.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let other_public = other.path().join("vendor.pub");
    stranger.json(&["trust", "add", other_public.to_str().unwrap()], 0);
    stranger.json(&["project", "create", "wh"], 0);
    let mut activate_123 = activate("wh");
    activate_123[4] = "ACT-123";
    let refused = stranger.json(&activate_123, 1);
    assert_eq!(refused["error"]["code"], "BAD_SIGNATURE", "{refused}");
    assert!(stranger.keys("wh").is_empty());

    // An unknown project is refused before the service is asked.
    let refused = first.json(&activate("nowhere"), 1);
    assert_eq!(refused["error"]["code"], "PROJECT_NOT_FOUND", "{refused}");
}

/// The activation task of rule R8 (docs/rules.md) with a code: `key activate --group` activates
/// once and adds the one key as the Reserved key of every project of the group; `--reserve` on one
/// project with no Active key is NO_ACTIVE_KEY.
#[test]
fn key_activate_in_bulk_adds_one_key_as_the_reserve_of_every_project() {
    let dir = vendor();
    let service = Service::start(dir.path());
    let url = service.url.as_str();
    let customer = Customer::new();
    for project in ["svm-1", "svm-2"] {
        customer.json(&["project", "create", project], 0);
        let id = format!("K-{project}");
        customer.json(
            &[
                "key",
                "add",
                project,
                "--id",
                &id,
                "--delivery",
                "online",
                "--limit",
                "1GiB",
            ],
            0,
        );
    }
    customer.json(&["project", "create", "empty"], 0);
    customer.json(&["group", "add", "cluster", "svm-1", "svm-2"], 0);
    let lines = customer.json(
        &[
            "key",
            "activate",
            "--group",
            "cluster",
            "--code",
            "ACT-ONE",
            "--activation-url",
            url,
        ],
        0,
    );
    let statuses: Vec<(&str, &str)> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["project"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("svm-1", "added"), ("svm-2", "added")]);
    for project in ["svm-1", "svm-2"] {
        assert_eq!(
            customer.keys(project)[1],
            ("ACT-ONE-1".into(), "reserved".into())
        );
    }
    assert_eq!(
        issued(dir.path(), 1).len(),
        1,
        "one machine, one activation"
    );

    let refused = customer.json(
        &[
            "key",
            "activate",
            "empty",
            "--reserve",
            "--code",
            "ACT-ONE",
            "--activation-url",
            url,
        ],
        1,
    );
    assert_eq!(refused["error"]["code"], "NO_ACTIVE_KEY", "{refused}");
    assert!(customer.keys("empty").is_empty());
}

/// The service serves HTTPS itself (`--tls-cert`, `--tls-key`), and `key activate`
/// trusts its test-made certificate through `--activation-ca`; without it the connection is
/// refused and nothing changes.
#[test]
fn key_activate_over_https_trusts_the_certificate_given_with_activation_ca() {
    let dir = vendor();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.path().join("service.crt");
    let key = dir.path().join("service.key");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let service = Service::start_with(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(service.url.starts_with("https://"), "{}", service.url);
    let customer = Customer::new();
    customer.json(&["project", "create", "wh"], 0);
    let activate = [
        "key",
        "activate",
        "wh",
        "--code",
        "ACT-123",
        "--activation-url",
        &service.url,
        "--attempts",
        "1",
    ];
    let refused = customer.json(&activate, 1);
    assert_eq!(refused["error"]["code"], "ACTIVATION_FAILED", "{refused}");
    assert!(customer.keys("wh").is_empty());
    assert!(issued(dir.path(), 0).is_empty());

    let trusting = [&activate[..], &["--activation-ca", cert.to_str().unwrap()]].concat();
    assert_eq!(customer.json(&trusting, 0)["key"], "ACT-123-1");
    assert_eq!(customer.keys("wh"), [("ACT-123-1".into(), "active".into())]);
}
