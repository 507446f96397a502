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

/// `--reset`: kept in the key's JSON; a bad word is a usage error, a seat key refuses it. `key
/// periods` lists a key's closed periods: here a state written by the library with its clock a
/// year back, whose day (and so period) ended long before the command's own clock, which
/// closes it before listing.
#[test]
fn reset_is_kept_and_closed_periods_are_listed() {
    use tollgate_core::{Clock, Engine, Key, Options, Period};
    let state = State::new();
    state.run("project create wh").success();
    state
        .run("key add wh --id D --delivery online --limit 1GiB --reset hourly")
        .code(2)
        .stderr(contains("invalid value 'hourly' for '--reset <PERIOD>'"));
    let refusal = state.refusal("key add wh --id S --delivery online --cores 4 --reset daily");
    assert_eq!(
        refusal["error"]["message"],
        "invalid reset: key \"S\" is a per_core key; only data_volume keys take a reset"
    );
    state
        .run("key add wh --id M --delivery online --limit 1GiB --reset monthly")
        .success();
    assert_eq!(state.json("key list wh")[0]["key"]["reset"], "monthly");
    // The card says when the usage next returns to 0: the first of next month.
    let today = time::OffsetDateTime::now_utc().date();
    let next = Period::Monthly
        .next_after(Period::Monthly.start_of(time::OffsetDateTime::now_utc().unix_timestamp()));
    let next = time::OffsetDateTime::from_unix_timestamp(next)
        .unwrap()
        .date();
    assert!(next > today && next.day() == 1, "{next}");
    state
        .run("project show wh")
        .success()
        .stdout(contains(format!(
            "Resets monthly, next on {next}T00:00:00Z"
        )));
    state
        .run("key periods M")
        .success()
        .stdout(contains("Key \"M\" has no closed usage period."));
    state
        .run("key periods nope")
        .code(1)
        .stderr(contains("no key \"nope\" in this state"));

    // A year back: a daily key used 5 MB on that day, in a state (and installation) that never
    // saw a later time.
    let past = State::new();
    let year_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 365 * 86_400;
    let options = Options {
        clock: Clock::manual(u32::try_from(year_ago).unwrap()),
        installation_dir: Some(past.installation.path().to_owned()),
        ..Options::default()
    };
    {
        let engine = Engine::open_with(past.dir.path(), options).unwrap();
        engine.create_project("old").unwrap();
        let key = Key {
            reset: Some(Period::Daily),
            ..Key::data_volume("DAY", 10_000_000)
        };
        engine.add_key("old", key).unwrap();
        engine.project("old").unwrap().consume(5_000_000).unwrap();
    }
    let periods = past.json("key periods DAY");
    assert_eq!(periods.as_array().unwrap().len(), 1, "{periods}");
    assert_eq!(periods[0]["used"], 5_000_000);
    assert_eq!(
        periods[0]["starts_at"],
        Period::Daily.start_of(year_ago),
        "the day it was used"
    );
    past.run("key periods DAY")
        .success()
        .stdout(contains("5.00 MB"));
    assert_eq!(past.json("key list old")[0]["used"], 0, "a new day");
}
