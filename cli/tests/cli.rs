//! The `tollgate` binary end to end: every command, text and `--json`, and exit statuses
//! 0 (success), 1 (refused) and 2 (usage error). Each test has its own state directory.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::{contains, is_match};
use serde_json::Value;

mod common;

use common::{State, BIN};

const POPUP: &str = "You have added an additional license key for project wh. After the first key’s data usage is exhausted, migration will automatically continue with the reserved key.";

impl State {
    /// A project "wh" with an online standard Active key A-1 of 1 GiB.
    fn with_active(&self) -> &State {
        self.run("project create wh").success();
        self.run("key add wh --id A-1 --delivery online --limit 1GiB")
            .success();
        self
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let state = State::new();
    state.run("").code(2);
    state.run("fly").code(2);
    state.run("project show").code(2);
    state
        .run("key add wh --id A-1 --limit 1GB")
        .code(2)
        .stderr(contains("--delivery"));
    state
        .run("key add wh --id A-1 --delivery online")
        .code(2)
        .stderr(contains("--limit"));
    state
        .run("key add wh --file k.json --id A-1")
        .code(2)
        .stderr(contains("cannot be used with"));
    state
        .run("key add wh --id A --delivery online --limit 1GB --cores 4")
        .code(2);
    state
        .run("key add wh --id A --delivery online --machines 4")
        .code(2);
    state
        .run("key add wh --id A --delivery sideways --limit 1GB")
        .code(2);
    state.run("init --capacity 0").code(2);
    state
        .run("events --since soon")
        .code(2)
        .stderr(contains("sequence number"));
    state
        .run("key add wh --id A --delivery online --limit 1GB --expires tomorrow")
        .code(2)
        .stderr(contains("RFC 3339"));
    state
        .run("--help")
        .success()
        .stdout(contains("tollgate demo"));
}

#[test]
fn bad_sizes_are_usage_errors_that_say_why() {
    let state = State::new();
    for (size, why) in [
        ("5XB", "has the unknown unit \"XB\"; use a whole number of bytes, or a number with B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"),
        ("GB", "does not start with a number"),
        ("1.5B", "is not a whole number of bytes"),
        ("99999999TB", "is larger than the largest size"),
    ] {
        state
            .run(&format!("key add wh --id A --delivery online --limit {size}"))
            .code(2)
            .stderr(contains(format!("invalid value '{size}' for '--limit <SIZE>'")))
            .stderr(contains(why));
    }
}

#[test]
fn sizes_accept_decimal_and_binary_units() {
    let state = State::new();
    let cases = [
        ("1000", 1_000u64),
        ("1000B", 1_000),
        ("2KB", 2_000),
        ("3MB", 3_000_000),
        ("500GB", 500_000_000_000),
        ("1TB", 1_000_000_000_000),
        ("2KiB", 2_048),
        ("64MiB", 64 << 20),
        ("1.5GiB", 3 << 29),
        ("1TiB", 1 << 40),
        ("2gib", 2 << 30),
    ];
    for (i, (size, bytes)) in cases.into_iter().enumerate() {
        state.run(&format!("project create p{i}")).success();
        let added = state.json(&format!(
            "key add p{i} --id K-{i} --delivery online --limit {size}"
        ));
        assert_eq!(added["role"], "active");
        let keys = state.json(&format!("key list p{i}"));
        assert_eq!(
            keys[0]["key"]["scheme"]["data_volume"]["limit_bytes"], bytes,
            "{size}"
        );
    }
    state
        .cmd(&[
            "key",
            "add",
            "p0",
            "--id",
            "S",
            "--delivery",
            "online",
            "--limit",
            "1 KiB",
        ])
        .assert()
        .success();
}

#[test]
fn init_creates_once_and_refuses_an_existing_state() {
    let state = State::new();
    let created = state.json("init --capacity 64");
    assert_eq!(created["capacity"], 64);
    state
        .run("init")
        .code(1)
        .stderr(contains("a Tollgate state already exists at"))
        .stderr(contains("rule STATE_EXISTS"));
    assert_eq!(state.refusal("init")["error"]["code"], "STATE_EXISTS");
    state.run("init --state").code(2);
    let fresh = State::new();
    fresh
        .run("init")
        .success()
        .stdout(contains("with room for 65536 slot pairs"));
}

#[test]
fn global_options_go_anywhere_and_the_environment_names_the_state() {
    let state = State::new();
    state
        .bare()
        .args(["project", "create", "wh", "--json", "--state"])
        .arg(state.dir.path())
        .assert()
        .success()
        .stdout(contains("\"created\": true"));
    state
        .bare()
        .env("TOLLGATE_HOME", state.dir.path())
        .args(["--json", "project", "list"])
        .assert()
        .success()
        .stdout(contains("\"name\": \"wh\""));
}

#[test]
fn projects_are_created_listed_and_shown() {
    let state = State::new();
    // A read-only command does not create a missing state.
    state
        .run("project list")
        .code(1)
        .stderr(contains("holds no Tollgate state"));
    state.run("init").success();
    state
        .run("project list")
        .success()
        .stdout(contains("No projects yet"));
    state
        .run("project create wh")
        .success()
        .stdout(contains("Created project \"wh\""));
    state
        .run("project create wh")
        .code(1)
        .stderr(contains("project \"wh\" already exists"))
        .stderr(contains("rule PROJECT_EXISTS"));
    state
        .run("project show wh")
        .success()
        .stdout(contains("No license key yet"));
    state
        .run("project show nope")
        .code(1)
        .stderr(contains("project \"nope\" does not exist"));
    state
        .cmd(&["project", "create", ""])
        .assert()
        .code(1)
        .stderr(contains("invalid project name: must not be empty"));
    state
        .run("key add wh --id A-1 --delivery online --limit 1GB")
        .success();
    state.run("project list").success().stdout(
        is_match(r"(?m)^PROJECT +ACTIVE +RESERVED +ADD LICENSE\nwh +A-1 +— +yes$").unwrap(),
    );
    let listed = state.json("project list");
    assert_eq!(listed[0]["name"], "wh");
    assert_eq!(listed[0]["active"], serde_json::json!(["A-1"]));
    assert_eq!(listed[0]["add_license_available"], true);
}

#[test]
fn show_draws_the_license_cards_of_seed_000() {
    let state = State::new();
    state.with_active();
    state
        .run("project show wh")
        .success()
        .stdout(contains("Card 1 of 1 · Active"))
        .stdout(contains("Type             Online"))
        .stdout(contains("Expiration date  Never"))
        .stdout(contains("░░░░░░░░░░ 0 % of 1.00 GiB"))
        .stdout(contains(
            "ⓘ Migration data for project wh is processed under this license key.",
        ))
        .stdout(contains("[Add License] available"));
    state
        .run("key add wh --id A-2 --delivery online --limit 2GiB --expires 2099-01-01")
        .success();
    state
        .run("project show wh")
        .success()
        .stdout(contains("Card 2 of 2 · Reserved"))
        .stdout(contains("Expiration date  Reserved"))
        .stdout(contains("ⓘ This is a reserved key. Migration will automatically continue with this key after the first key expires."))
        .stdout(contains("[Add License] not shown"));
    let view = state.json("project show wh");
    let pair = &view["pairs"][0];
    assert_eq!(pair["class"], "data_volume");
    assert_eq!(pair["add_license_available"], false);
    assert_eq!(pair["cards"][0]["status"], "active");
    assert_eq!(pair["cards"][0]["type"], "Online");
    assert_eq!(pair["cards"][1]["status"], "reserved");
    assert_eq!(pair["cards"][1]["expiration"], "Reserved");
}

#[test]
fn adding_a_reserve_prints_the_popup_text() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id A-2 --delivery online --limit 1GiB")
        .success()
        .stdout(contains(
            "Added key \"A-2\" to project \"wh\" as the Reserved key.",
        ))
        .stdout(contains(POPUP));
    state
        .run("key add wh --id A-3 --delivery online --limit 1GiB")
        .code(1)
        .stderr(contains("project \"wh\" already has reserve key \"A-2\""))
        .stderr(contains(
            "rule RESERVE_OCCUPIED: a project holds one Active and at most one Reserved key",
        ));
}

#[test]
fn refused_reserves_name_the_rule() {
    let state = State::new();
    state.with_active();
    for (flags, message, rule) in [
        (
            "--id B-1 --delivery offline --limit 1GiB",
            "error: reserve key \"B-1\" is offline but the active key \"A-1\" is online",
            "rule TYPE_MISMATCH: both keys must be of the same type (both Online or both Offline)",
        ),
        (
            "--id B-2 --delivery online --edition enterprise --limit 1GiB",
            "reserve key \"B-2\" is enterprise edition but the active key \"A-1\" is standard",
            "rule EDITION_MISMATCH",
        ),
        (
            "--id B-3 --delivery online --kind subscription --limit 1GiB",
            "key \"B-3\" is a subscription key",
            "rule SUBSCRIPTION",
        ),
        (
            "--id A-1 --delivery online --limit 1GiB",
            "key id \"A-1\" is already used",
            "rule DUPLICATE_KEY",
        ),
        (
            "--id B-4 --delivery online --limit 1GiB --expires 2001-01-01",
            "key \"B-4\" expired at 2001-01-01T00:00:00Z: request a new license key or contact your vendor",
            "rule EXPIRED",
        ),
        (
            "--id B-5 --delivery online --limit 0",
            "invalid limit_bytes: key \"B-5\" has a limit of 0 bytes",
            "error:",
        ),
    ] {
        state
            .run(&format!("key add wh {flags}"))
            .code(1)
            .stderr(contains(message))
            .stderr(contains(rule));
    }
    let refusal = state.refusal("key add wh --id B-5 --delivery offline --limit 1GB");
    assert_eq!(refusal["error"]["code"], "TYPE_MISMATCH");
    assert_eq!(
        refusal["error"]["message"],
        "reserve key \"B-5\" is offline but the active key \"A-1\" is online"
    );
    assert_eq!(
        refusal["error"]["rule"],
        "both keys must be of the same type (both Online or both Offline)"
    );
    let keys = state.json("key list wh");
    assert_eq!(keys.as_array().unwrap().len(), 1, "refusals change nothing");
}

#[test]
fn add_reserve_needs_an_active_key_of_the_same_class() {
    let state = State::new();
    state.run("project create wh").success();
    state
        .run("key add-reserve wh --id R-1 --delivery online --limit 1GB")
        .code(1)
        .stderr(contains("no active license key"))
        .stderr(contains("rule NO_ACTIVE_KEY"));
    state
        .run("key add wh --id A-1 --delivery online --limit 1GB")
        .success();
    state
        .run("key add-reserve wh --id R-2 --delivery online --cores 8")
        .code(1)
        .stderr(contains(
            "reserve key \"R-2\" is a per_core key but the active key \"A-1\" is a data_volume key",
        ))
        .stderr(contains("rule SCHEME_MISMATCH"));
    let added = state.json("key add-reserve wh --id R-1 --delivery online --limit 1GB");
    assert_eq!(added["role"], "reserved");
    assert_eq!(added["key"], "R-1");
    assert_eq!(added["project"], "wh");
    assert_eq!(added["message"], POPUP);
}

#[test]
fn keys_come_from_files_and_standard_input() {
    let state = State::new();
    state.run("project create wh").success();
    let file = state.dir.path().join("key.json");
    std::fs::write(
        &file,
        r#"{"id": "F-1", "delivery": "offline", "kind": "trial", "edition": "enterprise",
            "scheme": {"data_volume": {"limit_bytes": 1000}}, "company": "Acme"}"#,
    )
    .unwrap();
    state
        .run(&format!("key add wh --file {}", file.display()))
        .success()
        .stdout(contains("Added key \"F-1\""));
    state
        .cmd(&["key", "add", "wh", "--file", "-"])
        .write_stdin(
            r#"{"id": "F-2", "delivery": "offline", "kind": "trial", "edition": "enterprise",
                "scheme": {"data_volume": {"limit_bytes": 1000}}}"#,
        )
        .assert()
        .success()
        .stdout(contains("as the Reserved key"));
    state
        .run("key add wh --file /nonexistent/key.json")
        .code(1)
        .stderr(contains("cannot read the key from /nonexistent/key.json"));
    state
        .cmd(&["key", "add", "wh", "--file", "-"])
        .write_stdin("{\"id\": 5}")
        .assert()
        .code(1)
        .stderr(contains("invalid key JSON"));
}

#[test]
fn seat_keys_get_their_own_slot_pair() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id S-1 --delivery online --machines 50 --os server")
        .success()
        .stdout(contains("as the Active key"));
    state
        .run("key add wh --id S-2 --delivery online --machines 10 --os desktop")
        .success()
        .stdout(contains("as the Active key"));
    state
        .run("key add wh --id C-1 --delivery online --cores 64")
        .success();
    // A per-instance key comes from a pool assignment or signed: not from flags.
    state
        .run("key add wh --id I-1 --delivery online --per-instance")
        .code(1);
    state
        .run("project show wh")
        .success()
        .stdout(contains("License Information · server machines"))
        .stdout(contains("0 % of 50 server machines"))
        .stdout(contains("0 % of 10 desktop machines"))
        .stdout(contains("0 % of 64 cores"));
}

#[test]
fn replace_renews_the_active_key_and_drops_a_shorter_reserve() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id A-2 --delivery online --limit 1GiB --expires 2090-01-01")
        .success();
    let replaced = state.json(
        "key replace wh --id A-3 --delivery online --limit 2GiB --expires 2095-06-30T12:00:00Z",
    );
    assert_eq!(replaced["old"], "A-1");
    assert_eq!(replaced["new"], "A-3");
    assert_eq!(replaced["removed_reserve"], "A-2");
    state
        .run("key replace wh --id A-4 --delivery online --limit 2GiB")
        .success()
        .stdout(contains(
            "Replaced the Active key \"A-3\" of project \"wh\" with \"A-4\"",
        ));
    state
        .run("key replace wh --id A-5 --delivery online --cores 4")
        .code(1)
        .stderr(contains("rule SCHEME_MISMATCH"));
    let keys = state.json("key list wh");
    let status: Vec<(&str, &str)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"]["id"].as_str().unwrap(),
                k["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("A-1", "retired"),
            ("A-2", "removed"),
            ("A-3", "retired"),
            ("A-4", "active")
        ]
    );
}

#[test]
fn replacing_prints_the_automatic_reserve_removal() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id A-2 --delivery online --limit 1GiB --expires 2090-01-01")
        .success();
    state
        .run("key replace wh --id A-3 --delivery online --limit 1GiB")
        .success()
        .stdout(contains(
            "Removed the Reserved key \"A-2\": it expires before the new Active key's term ends.",
        ));
}

#[test]
fn remove_reserve_frees_the_slot() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id A-2 --delivery online --limit 1GiB")
        .success();
    state
        .run("key remove-reserve wh A-2")
        .success()
        .stdout(contains("Add License is available again"));
    state
        .run("key remove-reserve wh A-2")
        .code(1)
        .stderr(contains("project \"wh\" has no reserve key \"A-2\""));
    state
        .run("key add wh --id A-3 --delivery online --limit 1GiB")
        .success();
    let removed = state.json("key remove-reserve wh A-3");
    assert_eq!(removed["removed"], "A-3");
}

#[test]
fn key_list_shows_status_type_and_usage() {
    let state = State::new();
    state.run("project create wh").success();
    state
        .run("key list wh")
        .success()
        .stdout(contains("has no keys yet"));
    state
        .run("key add wh --id A-1 --delivery online --limit 1GiB --expires 2099-01-01")
        .success();
    state
        .run("key add wh --id A-2 --delivery online --limit 1GiB --company Acme --auto-renew")
        .success();
    state
        .run("key list wh")
        .success()
        .stdout(is_match(r"(?m)^KEY +STATUS +TYPE +LICENSE +LIMITS +USED +EXPIRES$").unwrap())
        .stdout(contains("2099-01-01 00:00:00 UTC"))
        .stdout(is_match(r"(?m)^A-2 +Reserved +Online +Commercial Standard +data volume +0 B of 1\.00 GiB \(0 %\) +never$").unwrap());
    let keys = state.json("key list wh");
    assert_eq!(keys[1]["key"]["company"], "Acme");
    assert_eq!(keys[1]["key"]["auto_renew"], true);
    assert_eq!(keys[1]["status"], "reserved");
    assert_eq!(keys[1]["used"], 0);
    state.run("key list nope").code(1);
}

#[test]
fn usage_tables_every_project_or_details_one() {
    let state = State::new();
    state.with_active();
    state
        .run("key add wh --id A-2 --delivery online --limit 512MiB")
        .success();
    state.run("project create empty").success();
    state.run("usage").success().stdout(
        is_match(r"(?m)^wh +A-1 +0 B of 1\.00 GiB \(0 %\) +A-2 +512\.00 MiB +1\.50 GiB +0$")
            .unwrap(),
    );
    state
        .run("usage wh")
        .success()
        .stdout(contains("Active    A-1  ░░░░░░░░░░ 0 % of 1.00 GiB"))
        .stdout(contains("Reserved  A-2  ░░░░░░░░░░ 0 % of 512.00 MiB"))
        .stdout(contains("Left      1.50 GiB"));
    state
        .run("usage empty")
        .success()
        .stdout(contains("no key: metering is refused (NO_ACTIVE_KEY)"));
    let all = state.json("usage");
    assert_eq!(all.as_array().unwrap().len(), 2);
    let one = state.json("usage wh");
    assert_eq!(one["active_key"], "A-1");
    assert_eq!(one["reserved_key"], "A-2");
    assert_eq!(one["active_limit"], 1u64 << 30);
    assert_eq!(one["remaining"], 3u64 << 29);
    assert_eq!(one["switches"], 0);
    state
        .run("usage nope")
        .code(1)
        .stderr(contains("project \"nope\" does not exist"));
}

#[test]
fn events_show_the_audit_log() {
    let state = State::new();
    state
        .run("events")
        .code(1)
        .stderr(contains("holds no Tollgate state"));
    state.run("init").success();
    state.run("events").success().stdout(contains("No events."));
    state.with_active();
    state.run("project create other").success();
    state
        .run("events")
        .success()
        .stdout(
            is_match(r"(?m)^ +\d+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  wh  project created$")
                .unwrap(),
        )
        .stdout(contains("wh  key A-1 added as the Active key"));
    let all = state.json("events");
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[1]["kind"], "key_added");
    assert_eq!(all[1]["key"], "A-1");
    assert_eq!(all[1]["role"], "active");
    // Positions count the audit log's ratchets too, which are not shown as events.
    let after = state.json(&format!("events --since {}", all[1]["seq"]));
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["project"], "other");
    let dated = state.json("events --since 2000-01-01");
    assert_eq!(dated.as_array().unwrap().len(), 3);
    let future = state.json("events --since 2999-01-01T00:00:00Z");
    assert_eq!(future.as_array().unwrap().len(), 0);
    let wh = state.json("events --project wh");
    assert_eq!(wh.as_array().unwrap().len(), 2);
    state
        .run("events --project nope")
        .code(1)
        .stderr(contains("project \"nope\" does not exist"));
}

#[test]
fn events_follow_streams_json_lines() {
    let state = State::new();
    state.run("project create first").success();
    let first = state.json("events")[0]["seq"].as_u64().unwrap();
    let mut child = std::process::Command::new(BIN)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .arg("--state")
        .arg(state.dir.path())
        .args(["events", "--follow", "--json", "--since"])
        .arg(first.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    state.run("project create second").success();
    let line = received.recv_timeout(Duration::from_secs(10));
    child.kill().unwrap();
    child.wait().unwrap();
    let event: Value = serde_json::from_str(&line.expect("a streamed event")).unwrap();
    assert_eq!(event["project"], "second");
    assert_eq!(event["kind"], "project_created");
    assert!(event["seq"].as_u64().unwrap() > first);
}

#[test]
fn demo_json_reports_exact_totals_and_one_switch() {
    let state = State::new();
    let summary = state.json("demo --volume 64MiB --pace 0");
    assert_eq!(summary["project"], "warehouse-migration");
    assert_eq!(summary["temporary"], false);
    assert_eq!(summary["bytes_granted"], 128u64 << 20);
    assert_eq!(summary["bytes_charged"], 128u64 << 20);
    assert_eq!(summary["exact"], true);
    assert_eq!(summary["switches"], 1);
    assert_eq!(summary["switch"]["from"], "MIG-0001");
    assert_eq!(summary["switch"]["to"], "MIG-0002");
    assert_eq!(summary["switch"]["reason"], "exhausted");
    assert_eq!(summary["threads"], 4);
    assert!(summary["calls"].as_u64().unwrap() >= 32);
    assert!(summary["refused_calls"].as_u64().unwrap() >= 4);
    assert!(summary["longest_call_ns"].as_u64().unwrap() > 0);
    assert!(summary["first_refusal"]
        .as_str()
        .unwrap()
        .starts_with("license exhausted"));
    let used: Vec<u64> = summary["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["used"].as_u64().unwrap())
        .collect();
    assert_eq!(used, [64 << 20, 64 << 20]);
    let kinds: Vec<&str> = summary["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "switched").count(), 1);
    assert!(kinds.contains(&"refused"));
    // A state given with --state stays behind: both keys are used up.
    state
        .run("usage warehouse-migration")
        .success()
        .stdout(contains(
            "Active    MIG-0002  ██████████ 100 % of 64.00 MiB",
        ))
        .stdout(contains("Switches  1"));
    state
        .run("events --project warehouse-migration")
        .success()
        .stdout(contains(
            "switched: MIG-0001 used up, Reserved key MIG-0002 is now the Active key",
        ))
        .stdout(contains("key MIG-0002 reached 100 % of its limit"));
}

#[test]
fn demo_text_tells_the_story_on_a_temporary_state() {
    let installation = tempfile::tempdir().unwrap();
    let assert = Command::new(BIN)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", installation.path())
        .args(["demo", "--volume", "32MiB", "--pace", "0.2", "--threads", "3"])
        .assert()
        .success()
        .stdout(contains("(temporary, removed at exit)"))
        .stdout(contains("MIG-0001 → Active"))
        .stdout(contains("MIG-0002 → Reserved"))
        .stdout(contains("“You have added an additional license key for project warehouse-migration."))
        .stdout(contains("⇄ SWITCH: MIG-0001 is used up; the Reserved key MIG-0002 is now the Active key"))
        .stdout(contains("MIG-0002 · Active: “Migration data for project warehouse-migration is processed under this license key.”"))
        .stdout(contains("✗ REFUSED"))
        .stdout(contains("100 %  64.00 MiB of 64.00 MiB granted"))
        .stdout(contains("Card 1 of 1 · Active"))
        .stdout(contains("= granted, exactly"))
        .stdout(contains("switches      1 (MIG-0001 → MIG-0002"))
        .stdout(contains("longest call"))
        .stdout(contains("on 3 threads"))
        .stdout(contains("calls/s"));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("State: "))
        .and_then(|l| l.strip_suffix(" (temporary, removed at exit)"))
        .expect("the state line");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was removed");
}

#[test]
fn demo_refuses_a_state_that_already_has_its_project() {
    let state = State::new();
    state.run("project create warehouse-migration").success();
    state
        .run("demo --volume 1MiB --pace 0")
        .code(1)
        .stderr(contains("project \"warehouse-migration\" already exists"));
}

/// Regression, as an operator sees it: a limit written `1GB` reads in decimal units
/// everywhere (it read `953.67 MiB`), a subscription key is offered no Add License, and seat
/// keys show their own texts with no empty data-volume block beside them.
#[test]
fn views_show_sizes_as_written_and_texts_that_fit_the_key() {
    let state = State::new();
    state.run("project create dm").success();
    state
        .run("key add dm --id G-1 --delivery online --limit 1GB")
        .success();
    state
        .run("key list dm")
        .success()
        .stdout(is_match(r"(?m)^G-1 +Active .* 0 B of 1\.00 GB \(0 %\) +never$").unwrap());
    state
        .run("usage")
        .success()
        .stdout(is_match(r"(?m)^dm +G-1 +0 B of 1\.00 GB \(0 %\) +— +— +1\.00 GB +0$").unwrap());
    state
        .run("project show dm")
        .success()
        .stdout(contains("Usage            ░░░░░░░░░░ 0 % of 1.00 GB"))
        .stdout(contains("MiB").not());

    state.run("project create sub").success();
    state
        .run("key add sub --id S-1 --delivery online --kind subscription --limit 1GiB")
        .success();
    state.run("project show sub").success().stdout(contains(
        "  [Add License] not shown: a subscription key takes no Reserved key.",
    ));

    state.run("project create svm").success();
    state
        .run("key add svm --id M-1 --delivery online --machines 5 --os server")
        .success();
    state
        .run("project show svm")
        .success()
        .stdout(contains(
            "ⓘ Protected server machines of project svm are counted under this license key.",
        ))
        .stdout(contains("data volume").not())
        .stdout(contains("Migration").not());
}

/// Completion scripts and man pages from the parser's own definition.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let state = State::new();
    let bash = state.run("completions bash").success();
    let script = String::from_utf8(bash.get_output().stdout.clone()).unwrap();
    assert!(script.contains("_tollgate()"), "{script}");
    for command in ["accept-rollback", "add-reserve", "shortfall", "completions"] {
        assert!(script.contains(command), "{command} is not completed");
    }
    state
        .run("completions zsh")
        .success()
        .stdout(contains("#compdef tollgate"));

    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    state
        .run(&format!("man {}", man.display()))
        .success()
        .stdout(contains("Wrote 56 man pages into"));
    let top = std::fs::read_to_string(man.join("tollgate.1")).unwrap();
    assert!(top.contains(".TH tollgate 1"), "{top}");
    assert!(top.contains("tollgate\\-project(1)"), "{top}");
    assert!(man.join("tollgate-pipe.1").exists() && man.join("tollgate-metrics.1").exists());
    assert!(man.join("tollgate-console.1").exists());
    assert!(man.join("tollgate-key-periods.1").exists());
    assert!(man.join("tollgate-lease-write-off.1").exists());
    let page = std::fs::read_to_string(man.join("tollgate-key-add.1")).unwrap();
    assert!(page.contains(".TH tollgate-key-add 1"), "{page}");
    assert!(page.contains("\"tollgate 0.1.0\""), "{page}");
    // Neither reads nor makes a state.
    assert!(std::fs::read_dir(state.dir.path())
        .unwrap()
        .next()
        .is_none());
}

/// One key, one quota: the same key in two projects is one account, which `key list --json`
/// shows from either project, and `pipe` through both draws from it once.
#[test]
fn a_key_in_two_projects_is_one_account_in_key_list() {
    let state = State::new();
    for project in ["a", "b"] {
        state.run(&format!("project create {project}")).success();
        state
            .run(&format!(
                "key add {project} --id SHARED --delivery online --limit 1000"
            ))
            .success();
    }
    for (project, bytes) in [("a", 600usize), ("b", 600)] {
        state
            .cmd(&["pipe", "--project", project])
            .write_stdin(vec![0u8; bytes])
            .assert()
            .code(if project == "a" { 0 } else { 3 });
    }
    for project in ["a", "b"] {
        let keys = state.json(&format!("key list {project}"));
        let account = &keys[0]["account"];
        assert_eq!(account["limit"], 1000, "{keys}");
        assert_eq!(account["used"], 1000, "{keys}");
        assert_eq!(account["holders"].as_array().unwrap().len(), 2, "{keys}");
    }
    let a = state.json("key list a");
    assert_eq!(a[0]["used"], 600);
    let b = state.json("key list b");
    assert_eq!(b[0]["used"], 400);
}
