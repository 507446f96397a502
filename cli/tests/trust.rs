//! `tollgate trust add|list` and signed license files through `key add|add-reserve|replace
//! --file`, end to end: the vendor makes a key pair and signs a key, the operator trusts the
//! vendor's public key, and from then on the state takes an offline key only as a license file
//! signed by it and unchanged since (rule BAD_SIGNATURE, exit status 1, otherwise).

mod common;

use std::path::{Path, PathBuf};

use common::State;
use predicates::str::contains;
use serde_json::Value;

const KEY_JSON: &str = r#"{"id": "OFF-1", "delivery": "offline", "kind": "commercial",
"edition": "standard", "scheme": {"data_volume": {"limit_bytes": 1073741824}}}"#;

/// A state, and beside it a vendor directory made by `license keygen`.
struct Vendor {
    state: State,
    files: tempfile::TempDir,
}

impl Vendor {
    fn new() -> Vendor {
        let vendor = Vendor {
            state: State::new(),
            files: tempfile::tempdir().unwrap(),
        };
        let out = vendor.path("vendor");
        vendor
            .state
            .cmd(&["license", "keygen", "--out", out.to_str().unwrap()])
            .assert()
            .success();
        vendor
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// Writes the key JSON `json` to `NAME.json` and its license, signed by `vendor/`, to
    /// `NAME.lic`; returns the license text.
    fn sign(&self, name: &str, json: &str) -> String {
        std::fs::write(self.path(&format!("{name}.json")), json).unwrap();
        let assert = self
            .state
            .cmd(&[
                "license",
                "sign",
                "--key",
                &self.arg("vendor/vendor.key"),
                &self.arg(&format!("{name}.json")),
            ])
            .assert()
            .success();
        let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
        std::fs::write(self.path(&format!("{name}.lic")), &text).unwrap();
        text
    }

    /// The public key as `vendor.pub` shows it: its second line.
    fn fingerprint(&self) -> String {
        let text = std::fs::read_to_string(self.path("vendor/vendor.pub")).unwrap();
        text.lines().nth(1).unwrap().to_owned()
    }

    /// Runs `key VERB … --file FILE --json`, expects exit 1 and returns the error document.
    fn refused(&self, verb_and_target: &[&str], file: &str) -> Value {
        let file = self.arg(file);
        let mut args = vec!["key"];
        args.extend_from_slice(verb_and_target);
        args.extend_from_slice(&["--file", &file, "--json"]);
        let assert = self.state.cmd(&args).assert().code(1);
        serde_json::from_slice(&assert.get_output().stdout).expect("one JSON error document")
    }
}

#[test]
fn keygen_sign_trust_add_then_a_signed_license_is_added_and_an_altered_one_refused() {
    let v = Vendor::new();
    let license = v.sign("key", KEY_JSON);
    std::fs::write(
        v.path("altered.lic"),
        license.replace("1073741824", "2147483648"),
    )
    .unwrap();
    v.state.run("project create p").success();
    v.state
        .cmd(&["trust", "add", &v.arg("vendor/vendor.pub")])
        .assert()
        .success()
        .stdout(contains(format!(
            "This state now trusts vendor key {}",
            v.fingerprint()
        )));

    v.state
        .cmd(&["key", "add", "p", "--file", &v.arg("key.lic")])
        .assert()
        .success()
        .stdout("Added key \"OFF-1\" to project \"p\" as the Active key.\n");

    let error = &v.refused(&["add", "p"], "altered.lic")["error"];
    assert_eq!(error["code"], "BAD_SIGNATURE");
    assert_eq!(
        error["message"],
        "key \"OFF-1\" refused: the signature does not match the key: the key was altered \
after signing, or the signature is damaged"
    );
    assert!(error["rule"]
        .as_str()
        .unwrap()
        .contains("signed by a trusted key"));
    v.state
        .cmd(&["key", "add", "p", "--file", &v.arg("altered.lic")])
        .assert()
        .code(1)
        .stderr(contains("rule BAD_SIGNATURE"));

    let keys = v.state.json("key list p");
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(
        keys[0]["key"]["scheme"]["data_volume"]["limit_bytes"],
        1_073_741_824u64
    );
}

#[test]
fn with_trust_every_key_command_takes_signed_licenses_and_refuses_the_rest() {
    let v = Vendor::new();
    v.sign("a", KEY_JSON);
    v.sign("r", &KEY_JSON.replace("OFF-1", "OFF-2"));
    v.sign("n", &KEY_JSON.replace("OFF-1", "OFF-3"));
    v.state.run("project create p").success();
    v.state
        .cmd(&["trust", "add", &v.arg("vendor/vendor.pub")])
        .assert()
        .success();
    v.state
        .cmd(&["key", "add", "p", "--file", &v.arg("a.lic")])
        .assert()
        .success();

    for (verb, file) in [
        (&["add-reserve", "p"][..], "r.json"),
        (&["add-reserve", "--all"][..], "r.json"),
        (&["replace", "p"][..], "n.json"),
    ] {
        let error = &v.refused(verb, file)["error"];
        assert_eq!(error["code"], "BAD_SIGNATURE", "{verb:?}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("it is unsigned"),
            "{verb:?}: {error}"
        );
    }
    // Flags make plain key JSON too: an offline key from flags is unsigned.
    let error = v
        .state
        .refusal("key add p --id F-1 --delivery offline --limit 1GiB");
    assert_eq!(error["error"]["code"], "BAD_SIGNATURE");

    v.state
        .cmd(&["key", "add-reserve", "p", "--file", &v.arg("r.lic")])
        .assert()
        .success();
    v.state
        .cmd(&["key", "replace", "p", "--file", &v.arg("n.lic")])
        .assert()
        .success();
    // Online keys too: they come signed from the activation service.
    v.sign(
        "on",
        &KEY_JSON
            .replace("OFF-1", "ON-1")
            .replace("offline", "online"),
    );
    v.state.run("project create q").success();
    v.state
        .cmd(&["key", "add", "q", "--file", &v.arg("on.lic")])
        .assert()
        .success();
}

#[test]
fn forged_online_key_after_trust_add_is_refused() {
    // Regression: after `trust add`, this key was accepted and 1 TB consumed on it.
    let v = Vendor::new();
    v.state.run("project create p1").success();
    v.state
        .cmd(&["trust", "add", &v.arg("vendor/vendor.pub")])
        .assert()
        .success();
    let events = v.state.json("events");
    let error = v
        .state
        .refusal("key add p1 --id FORGED --delivery online --limit 70368744177663");
    assert_eq!(error["error"]["code"], "BAD_SIGNATURE");
    assert_eq!(
        error["error"]["message"],
        "key \"FORGED\" refused: it is unsigned, and this state trusts vendor keys: an online key \
must come from the activation service or as a license file signed by one of them"
    );
    assert_eq!(v.state.json("key list p1"), serde_json::json!([]));
    assert_eq!(v.state.json("events"), events);
}

#[test]
fn trust_list_shows_development_mode_then_the_trusted_keys_and_add_is_idempotent() {
    let v = Vendor::new();
    v.state.run("init").success();
    v.state
        .run("trust list")
        .success()
        .stdout(contains("development mode, unsigned keys are accepted"));
    assert_eq!(v.state.json("trust list"), Value::Array(vec![]));
    for added in [true, false] {
        let assert = v
            .state
            .cmd(&["trust", "add", &v.arg("vendor/vendor.pub"), "--json"])
            .assert()
            .success();
        let document: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
        assert_eq!(document["added"], added);
        assert_eq!(document["key"], v.fingerprint().as_str());
    }
    let listed = v.state.json("trust list");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["key"], v.fingerprint().as_str());
    v.state
        .run("trust list")
        .success()
        .stdout(contains(v.fingerprint()));
    let events = v.state.run("events").success();
    let events = String::from_utf8(events.get_output().stdout.clone()).unwrap();
    assert!(
        events.contains(&format!("vendor public key {} trusted", v.fingerprint())),
        "{events}"
    );

    // The secret key is not a public key, and nothing is trusted from it.
    let error = v
        .state
        .cmd(&["trust", "add", &v.arg("vendor/vendor.key"), "--json"])
        .assert()
        .code(1);
    let error: Value = serde_json::from_slice(&error.get_output().stdout).unwrap();
    assert_eq!(error["error"]["code"], "VENDOR_KEY");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("a vendor secret key where a public key was expected"));
}

/// The fixtures the C and Python tests read are exactly what `license sign` makes of them
/// (Ed25519 signatures are deterministic), so they cannot drift from the format.
#[test]
fn the_license_fixtures_are_what_license_sign_makes() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/licenses");
    let state = State::new();
    for (secret, key, license) in [
        ("vendor.key", "OFF-1.json", "OFF-1.lic"),
        ("vendor.key", "OFF-2.json", "OFF-2.lic"),
        ("vendor.key", "ON-1.json", "ON-1.lic"),
        ("stranger.key", "OFF-2.json", "OFF-2.stranger.lic"),
    ] {
        let signed = state
            .cmd(&["license", "sign", "--key"])
            .arg(fixtures.join(secret))
            .arg(fixtures.join(key))
            .assert()
            .success();
        let expected = std::fs::read(fixtures.join(license)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&signed.get_output().stdout),
            String::from_utf8_lossy(&expected),
            "{license}: regenerate it as tests/fixtures/licenses/README.md says"
        );
    }
    // The license of the first format, signed before JCS, still verifies.
    let v1 = fixtures.join("OFF-1.v1.lic");
    assert!(std::fs::read_to_string(&v1)
        .unwrap()
        .contains("\"tollgate-license-1\""));
    state
        .cmd(&["license", "verify", "--pub"])
        .arg(fixtures.join("vendor.pub"))
        .arg(&v1)
        .assert()
        .success();
}
