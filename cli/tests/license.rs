//! `tollgate license keygen|sign|verify` end to end: a vendor key pair on disk, a signed
//! license file, and each way a license file is refused. None of them may touch a state.

use std::path::{Path, PathBuf};

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

const KEY_JSON: &str = r#"{"id": "OFF-1", "delivery": "offline", "kind": "commercial",
"edition": "standard", "scheme": {"data_volume": {"limit_bytes": 1073741824}},
"expires_at": "2030-01-01T00:00:00Z"}"#;

/// A working directory holding a vendor key pair in `vendor/`, the key JSON as `key.json`,
/// and a `--state` that must never be created.
struct Vendor {
    dir: TempDir,
}

impl Vendor {
    /// A fresh directory with a vendor key pair made by `license keygen`.
    fn new() -> Vendor {
        let vendor = Vendor {
            dir: tempfile::tempdir().unwrap(),
        };
        vendor
            .run(&["license", "keygen", "--out", "vendor"])
            .success();
        std::fs::write(vendor.path("key.json"), KEY_JSON).unwrap();
        vendor
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `tollgate --state DIR/state ARGS…` run in the directory, then checks that it left no
    /// state behind.
    fn run(&self, args: &[&str]) -> Assert {
        let assert = Command::new(BIN)
            .env_remove("TOLLGATE_HOME")
            .env("TOLLGATE_INSTALLATION", self.path("installation"))
            .current_dir(self.dir.path())
            .arg("--state")
            .arg(self.path("state"))
            .args(args)
            .assert();
        assert!(
            !self.path("state").exists(),
            "`{}` created a state directory",
            args.join(" ")
        );
        assert
    }

    /// Signs `key.json` with `vendor/vendor.key` (or another secret key) into `name`.
    fn sign(&self, secret: &str, name: &str) -> Value {
        let assert = self
            .run(&["license", "sign", "--key", secret, "key.json"])
            .success();
        let text = &assert.get_output().stdout;
        std::fs::write(self.path(name), text).unwrap();
        serde_json::from_slice(text).expect("a license file is one JSON document")
    }

    /// Runs `license verify --pub vendor/vendor.pub FILE --json`, expects exit 1, and
    /// returns the error's code and message.
    fn refusal(&self, file: &str) -> (String, String) {
        let assert = self
            .run(&[
                "license",
                "verify",
                "--pub",
                "vendor/vendor.pub",
                file,
                "--json",
            ])
            .code(1);
        let document: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
        let error = &document["error"];
        (
            error["code"].as_str().unwrap().to_owned(),
            error["message"].as_str().unwrap().to_owned(),
        )
    }

    /// The public key text of `vendor.pub` in `dir`: its second line.
    fn fingerprint(&self, dir: &str) -> String {
        let text = std::fs::read_to_string(self.path(dir).join("vendor.pub")).unwrap();
        text.lines().nth(1).unwrap().to_owned()
    }
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

#[test]
fn keygen_writes_a_private_secret_key_and_a_public_key_and_never_overwrites() {
    let vendor = Vendor::new();
    let secret = std::fs::read_to_string(vendor.path("vendor/vendor.key")).unwrap();
    let public = std::fs::read_to_string(vendor.path("vendor/vendor.pub")).unwrap();
    assert!(secret.starts_with("tollgate-vendor-secret-1\n"), "{secret}");
    assert!(public.starts_with("tollgate-vendor-public-1\n"), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(vendor.path("vendor/vendor.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    vendor
        .run(&["license", "keygen", "--out", "vendor"])
        .code(1)
        .stderr(contains("vendor.key already exists"));
    assert_eq!(
        std::fs::read_to_string(vendor.path("vendor/vendor.key")).unwrap(),
        secret
    );

    let assert = vendor
        .run(&["license", "keygen", "--out", "second", "--json"])
        .success();
    let document: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(
        document["fingerprint"],
        vendor.fingerprint("second").as_str()
    );
    assert!(document["secret"].as_str().unwrap().ends_with("vendor.key"));
}

#[test]
fn sign_prints_a_license_file_that_verifies() {
    let vendor = Vendor::new();
    let license = vendor.sign("vendor/vendor.key", "key.lic");
    assert_eq!(license["format"], "tollgate-license-2");
    assert_eq!(license["key"]["id"], "OFF-1");
    assert_eq!(license["signer"], vendor.fingerprint("vendor").as_str());

    vendor
        .run(&["license", "verify", "--pub", "vendor/vendor.pub", "key.lic"])
        .success()
        .stdout(format!(
            "valid: key OFF-1 signed by {}\n",
            vendor.fingerprint("vendor")
        ));
    let assert = vendor
        .run(&[
            "license",
            "verify",
            "--pub",
            "vendor/vendor.pub",
            "key.lic",
            "--json",
        ])
        .success();
    let document: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(document["valid"], true);
    assert_eq!(document["key_id"], "OFF-1");
    assert_eq!(
        document["key"]["scheme"]["data_volume"]["limit_bytes"],
        1_073_741_824u64
    );
}

#[test]
fn verify_refuses_an_altered_license() {
    let vendor = Vendor::new();
    let mut license = vendor.sign("vendor/vendor.key", "key.lic");
    license["key"]["scheme"]["data_volume"]["limit_bytes"] = 2_147_483_648u64.into();
    write_json(&vendor.path("key.lic"), &license);

    let (code, message) = vendor.refusal("key.lic");
    assert_eq!(code, "BAD_SIGNATURE");
    assert!(
        message.contains("the key was altered after signing"),
        "{message}"
    );
    vendor
        .run(&["license", "verify", "--pub", "vendor/vendor.pub", "key.lic"])
        .code(1)
        .stderr(contains("altered"));
}

#[test]
fn verify_refuses_a_license_re_signed_with_another_vendor_key() {
    let vendor = Vendor::new();
    vendor
        .run(&["license", "keygen", "--out", "forger"])
        .success();
    vendor.sign("forger/vendor.key", "forged.lic");

    let (code, message) = vendor.refusal("forged.lic");
    assert_eq!(code, "UNTRUSTED_SIGNER");
    assert!(
        message.contains(&format!(
            "signed by {}, which is not a trusted vendor key",
            vendor.fingerprint("forger")
        )),
        "{message}"
    );
    // Trusting the forger's key too makes it valid: trust is the verifier's list.
    vendor
        .run(&[
            "license",
            "verify",
            "--pub",
            "vendor/vendor.pub",
            "--pub",
            "forger/vendor.pub",
            "forged.lic",
        ])
        .success();
}

#[test]
fn verify_refuses_an_unsigned_key() {
    let vendor = Vendor::new();
    let (code, message) = vendor.refusal("key.json");
    assert_eq!(code, "UNSIGNED");
    assert!(message.contains("key \"OFF-1\" is unsigned"), "{message}");
}

#[test]
fn verify_refuses_a_malformed_license() {
    let vendor = Vendor::new();
    let mut license = vendor.sign("vendor/vendor.key", "key.lic");
    license["format"] = "tollgate-license-9".into();
    write_json(&vendor.path("key.lic"), &license);
    let (code, message) = vendor.refusal("key.lic");
    assert_eq!(code, "MALFORMED_LICENSE");
    assert!(message.contains("\"tollgate-license-9\""), "{message}");
}

#[test]
fn wrong_or_missing_inputs_say_what_is_wrong() {
    let vendor = Vendor::new();
    vendor
        .run(&["license", "sign", "--key", "vendor/vendor.pub", "key.json"])
        .code(1)
        .stderr(contains(
            "a vendor public key where the secret key was expected",
        ));
    vendor
        .run(&[
            "license",
            "verify",
            "--pub",
            "vendor/vendor.key",
            "key.json",
        ])
        .code(1)
        .stderr(contains(
            "a vendor secret key where a public key was expected",
        ));
    vendor.sign("vendor/vendor.key", "key.lic");
    vendor
        .run(&["license", "sign", "--key", "vendor/vendor.key", "key.lic"])
        .code(1)
        .stderr(contains("key.lic is already a signed license"));
    std::fs::write(vendor.path("bad.json"), KEY_JSON.replace("1073741824", "0")).unwrap();
    vendor
        .run(&["license", "sign", "--key", "vendor/vendor.key", "bad.json"])
        .code(1)
        .stderr(contains("limit of 0 bytes"));
    vendor
        .run(&[
            "license",
            "sign",
            "--key",
            "vendor/vendor.key",
            "absent.json",
        ])
        .code(1)
        .stderr(contains("cannot read the key from absent.json"));
    vendor
        .run(&["license", "verify", "key.lic"])
        .code(2)
        .stderr(contains("--pub"));
}
