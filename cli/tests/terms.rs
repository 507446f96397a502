//! The commercial terms on the command line (rules R38 and R39 in docs/rules.md): `key add
//! --grace-days` and `--overage-percent`, their errors, and the card's overage line. What the
//! terms grant is tested in `core/tests/grace.rs` and `core/tests/overage.rs`, where the clock
//! and the processes are the test's.

mod common;

use common::State;
use predicates::str::contains;

/// `--grace-days`: each bad value gets its field's error and changes nothing; a good one is in
/// the key's JSON. (What a grace grants is tested in `core/tests/grace.rs`, where the clock is
/// the test's.)
#[test]
fn grace_days_are_checked_and_kept_with_the_key() {
    let state = State::new();
    state.run("project create wh").success();
    for (flags, message) in [
        (
            "--grace-days 0 --expires 2099-01-01",
            "invalid grace_days: key \"G\" has 0 days of grace; it may have 1 to 365 (omit the field for none)",
        ),
        (
            "--grace-days 366 --expires 2099-01-01",
            "invalid grace_days: key \"G\" has 366 days of grace; it may have 1 to 365 (omit the field for none)",
        ),
    ] {
        state
            .run(&format!("key add wh --id G --delivery online --limit 1GiB {flags}"))
            .code(1)
            .stderr(contains(message));
    }
    // Without an expiry there is no grace to give: a usage error, before anything is read.
    state
        .run("key add wh --id G --delivery online --limit 1GiB --grace-days 3")
        .code(2)
        .stderr(contains("--expires"));
    assert_eq!(state.json("key list wh").as_array().unwrap().len(), 0);
    state
        .run(
            "key add wh --id G --delivery online --limit 1GiB --expires 2099-01-01 --grace-days 30",
        )
        .success();
    let keys = state.json("key list wh");
    assert_eq!(keys[0]["key"]["grace_days"], 30);
}

/// `--overage-percent`: a bad value gets its field's error and changes nothing; a good one is in
/// the key's JSON, and the card says how much of the overage is used. (Draining into it is
/// tested in `core/tests/overage.rs`.)
#[test]
fn overage_is_checked_kept_and_shown_on_the_card() {
    let state = State::new();
    state.run("project create wh").success();
    let refusal =
        state.refusal("key add wh --id K --delivery online --limit 100MB --overage-percent 101");
    assert_eq!(refusal["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(
        refusal["error"]["message"],
        "invalid overage_percent: key \"K\" has an overage of 101 %; it may have 1 to 100 % (omit the field for none)"
    );
    assert_eq!(state.json("key list wh").as_array().unwrap().len(), 0);
    state
        .run("key add wh --id K --delivery online --limit 100MB --overage-percent 12")
        .success();
    assert_eq!(state.json("key list wh")[0]["key"]["overage_percent"], 12);
    state
        .run("project show wh")
        .success()
        .stdout(contains("Overage 0 B of 12.00 MB allowed"));
}
