//! `tollgate state accept-rollback`: a state directory restored from an older copy is refused
//! with TAMPERED until the operator accepts it.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(state: &Path, installation: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", installation)
        .arg("--state")
        .arg(state)
        .args(args);
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_restored_state_is_refused_until_the_operator_accepts_it() {
    let (dir, installation, copy) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let state = dir.path().join("state");
    let run = |args: &[&str]| tollgate(&state, installation.path(), args).assert();
    run(&["project", "create", "first"]).success();
    copy_dir(&state, copy.path());
    run(&["project", "create", "second"]).success();
    // Put the older copy back.
    std::fs::remove_dir_all(&state).unwrap();
    copy_dir(copy.path(), &state);
    run(&["project", "list"])
        .code(1)
        .stderr(contains("TAMPERED"))
        .stderr(contains("restored from an older copy"))
        .stderr(contains("tollgate state accept-rollback"));
    let accepted = run(&["state", "accept-rollback", "--json"]).success();
    let doc: serde_json::Value = serde_json::from_slice(&accepted.get_output().stdout).unwrap();
    assert_eq!(doc["was_refused"], true);
    run(&["project", "list"])
        .success()
        .stdout(contains("first"))
        .stdout(contains("second").not());
    run(&["events"])
        .success()
        .stdout(contains("an operator accepted a refused state"));
    run(&["state", "accept-rollback"])
        .success()
        .stdout(contains("no rollback to accept"));
}

/// Rule R31 in docs/rules.md: a state opened with another installation directory is refused with
/// its own rule code (exit 1), naming both directories, and changes nothing.
#[test]
fn another_installation_is_installation_mismatch() {
    let (dir, installation, other) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let state = dir.path().join("state");
    tollgate(&state, installation.path(), &["project", "create", "p"])
        .assert()
        .success();
    let catalog = std::fs::read(state.join("catalog.db")).unwrap();
    let canonical = state.canonicalize().unwrap();
    tollgate(&state, other.path(), &["project", "list"])
        .assert()
        .code(1)
        .stderr(contains("INSTALLATION_MISMATCH"))
        .stderr(contains(format!(
            "state directory {} was made by another installation than the installation directory {} it was opened with",
            canonical.display(),
            other.path().display()
        )))
        .stderr(contains("TAMPERED").not());
    assert_eq!(std::fs::read(state.join("catalog.db")).unwrap(), catalog);
    tollgate(&state, installation.path(), &["project", "list"])
        .assert()
        .success()
        .stdout(contains("p"));
}

/// Regression: a time once seen in the future expires every key for good; `state
/// accept-clock` gives that time up, audited.
#[test]
fn accept_clock_gives_up_a_latest_time_seen_in_the_future() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let state = dir.path().join("state");
    let run = |args: &[&str]| tollgate(&state, installation.path(), args).assert();
    run(&["project", "create", "p"]).success();
    run(&["state", "accept-clock"])
        .success()
        .stdout(contains("nothing to accept"));
    // The installation's copy of the latest time seen says 2100-01-01, as after an open with
    // the clock there.
    let anchors = installation.path().join("anchors");
    let state_id = std::fs::read_dir(&anchors)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|name| !name.contains('.'))
        .unwrap();
    std::fs::write(anchors.join(format!("{state_id}.seen")), "4102444800\n").unwrap();
    let accepted = run(&["state", "accept-clock", "--json"]).success();
    let doc: serde_json::Value = serde_json::from_slice(&accepted.get_output().stdout).unwrap();
    assert_eq!(doc["given_up"], "2100-01-01T00:00:00Z");
    run(&["events"]).success().stdout(contains(
        "an operator lowered the latest time seen from 2100-01-01T00:00:00Z to the clock's",
    ));
    run(&["state", "accept-clock"])
        .success()
        .stdout(contains("nothing to accept"));
}
