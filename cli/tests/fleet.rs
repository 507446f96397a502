//! The CLI in fleet mode (`--store URL --host NAME`) against a real PostgreSQL server each test
//! starts (the store crate's harness): admin commands on one host reach another through the
//! store's admin log (projects and keys, groups and the bulk task, pool purchases, instances and
//! assignments), `pipe` meters from the store's accounts, and an unreachable store is
//! `UNAVAILABLE` (exit 1).
//!
//! Without PostgreSQL's server binaries the tests say so loudly and pass.

#[allow(dead_code)]
mod common;

#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;
use tollgate_store::Store;

use common::State;
use postgres::Server;

/// `tollgate --state DIR --store PARAMS --host HOST ARGS…`.
fn host(state: &State, server: &Server, name: &str, args: &[&str]) -> Command {
    let mut cmd = state.cmd(&["--store", &server.params(), "--host", name]);
    cmd.args(args);
    cmd
}

fn json(cmd: &mut Command) -> Value {
    let out = cmd.arg("--json").assert().success();
    serde_json::from_slice(&out.get_output().stdout).expect("one JSON document")
}

/// A project and its keys made on host h1 reach host h2 (within 2 s), which meters them with
/// `pipe`; the store charges the keys exactly what h2 forwarded.
#[test]
fn admin_on_one_host_reaches_another_and_pipe_meters_from_the_store() {
    let Some(server) = Server::start("admin_on_one_host_reaches_another") else {
        return;
    };
    let (a, b) = (State::new(), State::new());
    for line in [
        "project create p",
        "key add p --id F-1 --limit 1MiB --delivery online",
        "key add-reserve --project p --id F-2 --limit 1MiB --delivery online",
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        host(&a, &server, "h1", &args).assert().success();
    }
    // h2 opens its state (new) and finds the fleet's project and keys.
    let started = Instant::now();
    loop {
        let keys = json(&mut host(&b, &server, "h2", &["key", "list", "p"]));
        let ids: Vec<&str> = keys
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["key"]["id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if ids == ["F-1", "F-2"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{keys}");
    }
    // 1.5 MiB through h2: the Active key, then the reserve.
    let data = vec![7u8; 3 << 19];
    let piped = host(&b, &server, "h2", &["pipe", "--project", "p"])
        .write_stdin(data.clone())
        .assert()
        .success();
    assert_eq!(piped.get_output().stdout, data);
    // The store charged each key what h2's pair used of it plus, for the key it still meters,
    // the block its pair holds unused (h2's to grant next time), and the uses add up to what the
    // pipe forwarded. (h1's idle stock may keep part of a key leased or in doubt: never granted
    // twice, never lost.)
    let keys = json(&mut host(&b, &server, "h2", &["key", "list", "p"]));
    let mut store = Store::connect(&server.params()).unwrap();
    let mut forwarded = 0;
    for key in keys.as_array().unwrap() {
        let id = key["key"]["id"].as_str().unwrap();
        let used = key["used"].as_u64().unwrap();
        let account = store.account(id).unwrap();
        assert!(
            account.used >= used && account.used - used <= 4 << 20,
            "{id}: charged {}, used {used}: {:?}",
            account.used,
            store.list_leases()
        );
        assert!(account.used + account.leased + account.in_doubt <= 1 << 20);
        forwarded += used;
    }
    assert_eq!(forwarded, 3 << 19);
}

/// Runs each line on `state` as host `name`, each expected to succeed.
fn run_lines(state: &State, server: &Server, name: &str, lines: &[&str]) {
    for line in lines {
        let args: Vec<&str> = line.split_whitespace().collect();
        host(state, server, name, &args).assert().success();
    }
}

/// Runs `args` (a listing) on `state` as host `name` until `done` holds of its JSON, 2 s at
/// most; returns the JSON.
fn within_two_seconds(
    state: &State,
    server: &Server,
    name: &str,
    args: &[&str],
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let listed = json(&mut host(state, server, name, args));
        if done(&listed) {
            return listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{args:?} on {name}: {listed}"
        );
    }
}

/// A purchase, an instance and its assignment made on host h1 reach host h2, whose `instance
/// list` and `pool list` show the same license assigned; a group made on h1 and the bulk task
/// on it run on h2 reach h1; a reserve removed and a key replaced on h1 reach h2.
#[test]
fn pools_instances_groups_and_key_changes_reach_another_host() {
    let Some(server) = Server::start("pools_instances_groups_reach_another_host") else {
        return;
    };
    let (a, b) = (State::new(), State::new());
    run_lines(
        &a,
        &server,
        "h1",
        &[
            "pool buy --type server --quantity 2 --mode annual",
            "instance add web --os linux",
            "instance assign web",
        ],
    );
    let mine = json(&mut host(&a, &server, "h1", &["instance", "list"]));
    let license = mine[0]["license"].as_str().expect("assigned").to_owned();
    within_two_seconds(&b, &server, "h2", &["instance", "list"], |theirs| {
        *theirs == mine
    });
    let pool = within_two_seconds(&b, &server, "h2", &["pool", "list"], |_| true);
    let assigned: Vec<(&str, &str)> = pool
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|listing| listing["licenses"].as_array().unwrap())
        .filter_map(|l| Some((l["id"].as_str()?, l["assigned_to"].as_str()?)))
        .collect();
    assert_eq!(assigned, [(&*license, "web")], "{pool}");

    run_lines(
        &a,
        &server,
        "h1",
        &[
            "project create p",
            "project create q",
            "key add p --id G-A --limit 1MiB --delivery online",
            "group add g p q",
        ],
    );
    within_two_seconds(&b, &server, "h2", &["group", "list"], |groups| {
        groups[0]["projects"] == serde_json::json!(["p", "q"])
    });
    // The bulk task on h2: p takes the reserve, q (no Active key) refuses it, the command
    // reports both (exit 1 for the refusal).
    host(
        &b,
        &server,
        "h2",
        &[
            "key",
            "add-reserve",
            "--group",
            "g",
            "--id",
            "G-R",
            "--limit",
            "1MiB",
            "--delivery",
            "online",
        ],
    )
    .assert()
    .code(1);
    let keys = within_two_seconds(&a, &server, "h1", &["key", "list", "p"], |keys| {
        keys.as_array().is_some_and(|keys| keys.len() == 2)
    });
    assert_eq!(keys[1]["key"]["id"], "G-R", "{keys}");
    assert_eq!(keys[1]["status"], "reserved", "{keys}");
    // h1 removes that reserve and replaces the Active key: h2 sees both.
    run_lines(
        &a,
        &server,
        "h1",
        &[
            "key remove-reserve p G-R",
            "key replace p --id G-B --limit 1MiB --delivery online",
        ],
    );
    let statuses = |keys: &Value| -> Vec<(String, String)> {
        let keys = keys.as_array().into_iter().flatten();
        keys.map(|k| (k["key"]["id"].to_string(), k["status"].to_string()))
            .collect()
    };
    let mine = statuses(&json(&mut host(&a, &server, "h1", &["key", "list", "p"])));
    assert!(
        mine.contains(&("\"G-B\"".into(), "\"active\"".into())),
        "{mine:?}"
    );
    within_two_seconds(&b, &server, "h2", &["key", "list", "p"], |theirs| {
        statuses(theirs) == mine
    });
}

/// With the store stopped, an admin command is refused `UNAVAILABLE` (exit 1) and changes
/// nothing; `--store` without `--host` is a usage error (exit 2).
#[test]
fn an_unreachable_store_is_unavailable() {
    let Some(server) = Server::start("an_unreachable_store_is_unavailable") else {
        return;
    };
    let a = State::new();
    host(&a, &server, "h1", &["project", "create", "p"])
        .assert()
        .success();
    server.stop_immediate();
    let refused = host(&a, &server, "h1", &["project", "create", "q", "--json"])
        .assert()
        .code(1);
    let error: Value = serde_json::from_slice(&refused.get_output().stdout).unwrap();
    assert_eq!(error["error"]["code"], "UNAVAILABLE", "{error}");
    server.start_again();
    let projects = json(&mut host(&a, &server, "h1", &["project", "list"]));
    assert_eq!(projects.as_array().unwrap().len(), 1, "{projects}");
    a.cmd(&["--store", &server.params(), "project", "list"])
        .assert()
        .code(2)
        .stderr(contains(
            "fleet mode needs both --store URL and --host NAME",
        ));
}
