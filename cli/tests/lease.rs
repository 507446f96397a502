//! `tollgate --store URL lease list|reclaim|write-off` against a real PostgreSQL server each
//! test starts (the store crate's harness: `initdb` into a temporary directory, a Unix socket
//! there, no TCP, stopped and removed on drop), with leases taken through `tollgate_store` as a
//! host would take them; and `--store`/`--host` refused by every other command, since their
//! fleet mode does not exist yet.
//!
//! Without PostgreSQL's server binaries the server tests say so loudly and pass.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;

// The fleet store's test server, shared with `store/tests/` rather than copied.
#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::thread::sleep;
use std::time::Duration;

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::str::contains;
use serde_json::{json, Value};
use tollgate_store::{AccountKind, LeaseTerms, Store};

use common::State;
use postgres::Server;

/// Terms whose leases expire quickly, for the reclaim tests; long enough that a loaded machine
/// still renews a lease before it expires.
const SHORT: LeaseTerms = LeaseTerms {
    ttl: Duration::from_millis(1000),
    margin: Duration::from_millis(100),
};

/// Waits until every lease taken or renewed with [`SHORT`] terms so far has expired.
fn outlive_short_leases() {
    sleep(SHORT.ttl + Duration::from_millis(300));
}

/// `tollgate --store PARAMS ARGS…`, with a fresh installation and no state directory.
fn lease(state: &State, server: &Server, args: &[&str]) -> Command {
    let mut cmd = state.bare();
    cmd.arg("--store").arg(server.params()).args(args);
    cmd
}

/// The one JSON document a command printed.
fn document(assert: &Assert) -> Value {
    serde_json::from_slice(&assert.get_output().stdout).expect("one JSON document")
}

/// Standard output, one whitespace-split line per line.
fn lines(assert: &Assert) -> Vec<Vec<String>> {
    String::from_utf8(assert.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// A key account's parts: `[leased, used, in_doubt, written_off, free]`.
fn parts(store: &mut Store, key: &str) -> [u64; 5] {
    let a = store.account(key).unwrap();
    [a.leased, a.used, a.in_doubt, a.written_off, a.free()]
}

/// A JSON lease without its two timestamps, which the test checks apart.
fn figures(mut lease: Value) -> Value {
    let lease = lease.as_object_mut().unwrap();
    for at in ["taken_at", "expires_at"] {
        let stamp = lease.remove(at).unwrap();
        let stamp = stamp.as_str().unwrap();
        assert!(
            stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{at} is RFC 3339 in UTC: {stamp}"
        );
    }
    Value::Object(lease.clone())
}

#[test]
fn an_empty_store_is_migrated_and_listed_as_empty() {
    let Some(server) = Server::start("an_empty_store_is_migrated_and_listed_as_empty") else {
        return;
    };
    let state = State::new();
    lease(&state, &server, &["lease", "list"])
        .assert()
        .success()
        .stdout("No leases in the fleet store.\n");
    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    assert_eq!(document(&listed), json!([]));
    lease(&state, &server, &["lease", "reclaim"])
        .assert()
        .success()
        .stdout("No open lease has expired: nothing to reclaim.\n");
    // The first command applied the store's migrations: a host can lease at once.
    let mut store = Store::connect(&server.params()).unwrap();
    assert_eq!(store.schema_versions().unwrap(), vec![1, 2, 3, 4, 5]);
    assert!(store.migrate().unwrap().is_empty(), "nothing left to apply");
    // No state directory was opened or created: lease commands use none.
    assert_eq!(std::fs::read_dir(state.dir.path()).unwrap().count(), 0);
}

#[test]
fn leases_taken_through_the_store_are_listed_with_exact_figures() {
    let Some((server, mut store)) = postgres::fleet(
        "leases_taken_through_the_store_are_listed_with_exact_figures",
        LeaseTerms::default(),
    ) else {
        return;
    };
    store
        .create_account("K-1", AccountKind::Bytes, 1000)
        .unwrap();
    store.create_account("S-1", AccountKind::Seats, 2).unwrap();
    store.register_host("host-a").unwrap();
    store.register_host("host-b").unwrap();
    let mut a = store.take("host-a", "K-1", 600).unwrap();
    store.renew(&mut a, 1, 120, 500).unwrap();
    let b = store.take("host-b", "K-1", 300).unwrap();
    let seat = store.take_seat("host-b", "S-1").unwrap();
    let state = State::new();

    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    let leases: Vec<Value> = document(&listed)
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(figures)
        .collect();
    assert_eq!(
        leases,
        vec![
            json!({"id": a.id.0, "key": "K-1", "host": "host-a", "state": "open",
                   "granted": 600, "drawn": 500, "reported": 120, "in_doubt": 0,
                   "settled": null, "seq": 1}),
            json!({"id": b.id.0, "key": "K-1", "host": "host-b", "state": "open",
                   "granted": 300, "drawn": 0, "reported": 0, "in_doubt": 0,
                   "settled": null, "seq": 0}),
            json!({"id": seat.id.0, "key": "S-1", "host": "host-b", "state": "open",
                   "granted": 1, "drawn": 1, "reported": 0, "in_doubt": 0,
                   "settled": null, "seq": 0}),
        ]
    );

    let table = lease(&state, &server, &["lease", "list"])
        .assert()
        .success();
    let rows = lines(&table);
    assert_eq!(
        rows[0],
        [
            "LEASE", "KEY", "HOST", "GRANTED", "DRAWN", "REPORTED", "STATE", "EXPIRES", "IN",
            "DOUBT"
        ]
    );
    // id, key, host, granted, drawn, reported, state, expiry (date, time, UTC), in doubt.
    let row = |i: usize| {
        let r = &rows[i];
        assert_eq!(r.len(), 11, "{r:?}");
        assert_eq!(r[9], "UTC", "{r:?}");
        [&r[..7], &r[10..]].concat()
    };
    assert_eq!(
        row(1),
        [
            &a.id.to_string(),
            "K-1",
            "host-a",
            "600",
            "500",
            "120",
            "open",
            "0"
        ]
    );
    assert_eq!(
        row(2),
        [
            &b.id.to_string(),
            "K-1",
            "host-b",
            "300",
            "0",
            "0",
            "open",
            "0"
        ]
    );
    assert_eq!(
        row(3),
        [
            &seat.id.to_string(),
            "S-1",
            "host-b",
            "1",
            "1",
            "0",
            "open",
            "0"
        ]
    );
    assert_eq!(rows.len(), 4, "{rows:?}");

    // --host shows that host's leases only.
    let mine = lease(
        &state,
        &server,
        &["--host", "host-b", "lease", "list", "--json"],
    )
    .assert()
    .success();
    let ids: Vec<i64> = document(&mine)
        .as_array()
        .unwrap()
        .iter()
        .map(|lease| lease["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![b.id.0, seat.id.0]);
    state
        .bare()
        .env("TOLLGATE_STORE", server.params())
        .env("TOLLGATE_HOST", "nobody")
        .args(["lease", "list"])
        .assert()
        .success()
        .stdout("Host \"nobody\" holds no leases in the fleet store.\n");

    // A settled lease is listed as settled with its final usage; listing changed nothing.
    store.settle(a.id, 450).unwrap();
    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    let first = &document(&listed)[0];
    assert_eq!(
        (&first["state"], &first["settled"]),
        (&json!("settled"), &json!(450))
    );
    assert_eq!(parts(&mut store, "K-1"), [300, 450, 0, 0, 250]);
}

#[test]
fn an_expired_lease_is_reclaimed_with_exact_figures() {
    let Some((server, mut store)) =
        postgres::fleet("an_expired_lease_is_reclaimed_with_exact_figures", SHORT)
    else {
        return;
    };
    store
        .create_account("K-1", AccountKind::Bytes, 1000)
        .unwrap();
    store.register_host("host-a").unwrap();
    store.register_host("host-b").unwrap();
    // host-a drew 400 of its 600 and reported 100, then went silent.
    let mut dead = store.take("host-a", "K-1", 600).unwrap();
    store.renew(&mut dead, 1, 100, 400).unwrap();
    // host-b's lease lives 60 s: not reclaimed.
    let mut long = Store::connect(&server.params()).unwrap();
    let alive = long.take("host-b", "K-1", 100).unwrap();
    outlive_short_leases();

    let state = State::new();
    let reclaimed = lease(&state, &server, &["lease", "reclaim"])
        .assert()
        .success();
    let rows = lines(&reclaimed);
    assert_eq!(rows[0].join(" "), "Reclaimed 1 expired lease:");
    assert_eq!(rows[1], ["LEASE", "KEY", "HOST", "RETURNED", "IN", "DOUBT"]);
    assert_eq!(
        rows[2],
        [&dead.id.to_string(), "K-1", "host-a", "200", "300"]
    );
    assert!(
        rows[3].join(" ").starts_with("Returned: never drawn"),
        "{rows:?}"
    );
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 300, 0, 500]);

    // Reclaimed once: a second run finds nothing.
    let again = lease(&state, &server, &["lease", "reclaim", "--json"])
        .assert()
        .success();
    assert_eq!(document(&again), json!([]));
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 300, 0, 500]);

    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    let leases: Vec<Value> = document(&listed)
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(figures)
        .collect();
    assert_eq!(
        leases,
        vec![
            json!({"id": dead.id.0, "key": "K-1", "host": "host-a", "state": "reclaimed",
                   "granted": 600, "drawn": 400, "reported": 100, "in_doubt": 300,
                   "settled": null, "seq": 1}),
            json!({"id": alive.id.0, "key": "K-1", "host": "host-b", "state": "open",
                   "granted": 100, "drawn": 0, "reported": 0, "in_doubt": 0,
                   "settled": null, "seq": 0}),
        ]
    );
    lease(&state, &server, &["lease", "list"])
        .assert()
        .success()
        .stdout(contains(
            "300 in doubt over 1 reclaimed lease: counted until the host settles it",
        ));

    // The JSON form of a reclaim, on a second expired lease.
    let mut short = store.take("host-a", "K-1", 50).unwrap();
    store.renew(&mut short, 1, 0, 50).unwrap();
    outlive_short_leases();
    let reclaimed = lease(&state, &server, &["lease", "reclaim", "--json"])
        .assert()
        .success();
    assert_eq!(
        document(&reclaimed),
        json!([{"lease": short.id.0, "key": "K-1", "host": "host-a",
                "returned": 0, "in_doubt": 50}])
    );
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 350, 0, 450]);
}

#[test]
fn a_reclaimed_lease_is_written_off_once() {
    let Some((server, mut store)) = postgres::fleet("a_reclaimed_lease_is_written_off_once", SHORT)
    else {
        return;
    };
    store
        .create_account("K-1", AccountKind::Bytes, 1000)
        .unwrap();
    store.register_host("host-a").unwrap();
    let mut dead = store.take("host-a", "K-1", 600).unwrap();
    store.renew(&mut dead, 1, 100, 400).unwrap();
    let mut long = Store::connect(&server.params()).unwrap();
    let open = long.take("host-a", "K-1", 100).unwrap();
    outlive_short_leases();
    let state = State::new();
    lease(&state, &server, &["lease", "reclaim"])
        .assert()
        .success();
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 300, 0, 500]);

    let id = dead.id.0.to_string();
    lease(&state, &server, &["lease", "write-off", &id])
        .assert()
        .success()
        .stdout(format!(
            "Wrote off lease #{id}: its 300 in doubt is counted as written off and never \
             leased again.\n"
        ));
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 0, 300, 500]);

    // A second time is the store's refusal, and changes nothing.
    let again = lease(
        &state,
        &server,
        &["lease", "write-off", &format!("#{id}"), "--json"],
    )
    .assert()
    .code(1)
    .stderr(contains("rule LEASE_CLOSED"));
    let error = &document(&again)["error"];
    assert_eq!(error["code"], "LEASE_CLOSED");
    assert_eq!(error["message"], format!("lease #{id} is written off"));
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 0, 300, 500]);

    // Neither an open lease nor an unknown one can be written off.
    let refused = lease(
        &state,
        &server,
        &["lease", "write-off", &open.id.0.to_string(), "--json"],
    )
    .assert()
    .code(1);
    assert_eq!(
        document(&refused)["error"]["message"],
        format!("lease #{} is open", open.id.0)
    );
    let refused = lease(&state, &server, &["lease", "write-off", "999", "--json"])
        .assert()
        .code(1);
    assert_eq!(document(&refused)["error"]["code"], "LEASE_NOT_FOUND");
    assert_eq!(document(&refused)["error"]["message"], "no lease #999");
    assert_eq!(parts(&mut store, "K-1"), [100, 100, 0, 300, 500]);

    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    assert_eq!(document(&listed)[0]["state"], "written_off");
    let table = lease(&state, &server, &["lease", "list"])
        .assert()
        .success();
    assert_eq!(lines(&table)[1][6..8], ["written", "off"]);
}

#[test]
fn a_stopped_store_is_unavailable_and_named() {
    let Some((server, mut store)) = postgres::fleet(
        "a_stopped_store_is_unavailable_and_named",
        LeaseTerms::default(),
    ) else {
        return;
    };
    store
        .create_account("K-1", AccountKind::Bytes, 1000)
        .unwrap();
    store.register_host("host-a").unwrap();
    store.take("host-a", "K-1", 10).unwrap();
    let state = State::new();
    lease(&state, &server, &["lease", "list"])
        .assert()
        .success();

    server.stop_immediate();
    for args in [
        &["lease", "list", "--json"][..],
        &["lease", "reclaim", "--json"],
        &["lease", "write-off", "1", "--json"],
    ] {
        let refused = lease(&state, &server, args)
            .assert()
            .code(1)
            .stderr(contains("rule UNAVAILABLE"));
        let error = &document(&refused)["error"];
        assert_eq!(error["code"], "UNAVAILABLE", "{args:?}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "the fleet store \"{}\" is unavailable: ",
                server.params()
            )),
            "{args:?}: {message}"
        );
    }

    // Back again: the same command works, and the lease is still there.
    server.start_again();
    let listed = lease(&state, &server, &["lease", "list", "--json"])
        .assert()
        .success();
    assert_eq!(document(&listed)[0]["granted"], 10);
}

#[test]
fn other_commands_refuse_store_and_host() {
    let state = State::new();
    state
        .cmd(&[
            "--store",
            "postgresql://tollgate@db.example/fleet",
            "seat",
            "reclaim",
        ])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "error: fleet mode is not available yet for `tollgate seat reclaim`: --store (or \
             TOLLGATE_STORE) works only with `tollgate lease …`, `project …`, `key \
             add|add-reserve|replace|remove-reserve|list`, `group …`, `pool …`, `instance \
             add|assign|unassign|list`, `usage`, `events` and `pipe` so far; leave it out to use \
             the state directory\n",
        );
    // From the environment too, and --host alike: never silently ignored.
    state
        .cmd(&["instance", "check", "web"])
        .env("TOLLGATE_STORE", "host=/nowhere")
        .assert()
        .code(2)
        .stderr(contains(
            "fleet mode is not available yet for `tollgate instance check`: --store (or \
             TOLLGATE_STORE) works only",
        ));
    state
        .cmd(&["--host", "svm-07", "trust", "list"])
        .assert()
        .code(2)
        .stderr(contains(
            "fleet mode is not available yet for `tollgate trust list`: --host (or TOLLGATE_HOST) \
             works only",
        ));
    state
        .cmd(&["key", "periods", "K", "--store", "host=/nowhere"])
        .env("TOLLGATE_HOST", "svm-07")
        .assert()
        .code(2)
        .stderr(contains(
            "--store (or TOLLGATE_STORE) and --host (or TOLLGATE_HOST) work only with",
        ));
    // Nothing ran: no state was created.
    assert_eq!(std::fs::read_dir(state.dir.path()).unwrap().count(), 0);
}

#[test]
fn lease_commands_need_a_store() {
    let state = State::new();
    for command in ["list", "reclaim"] {
        state
            .bare()
            .args(["lease", command])
            .assert()
            .code(2)
            .stderr(format!(
                "error: `tollgate lease {command}` acts on the fleet store: give --store URL (or \
                 set TOLLGATE_STORE), e.g. --store postgresql://tollgate@db.example/fleet\n"
            ));
    }
    state
        .bare()
        .args(["lease", "write-off", "3", "--store", "x"])
        .assert()
        .code(2)
        .stderr("error: --store \"x\" is neither a postgresql:// URL nor key=value connection parameters\n");
    state
        .bare()
        .args([
            "--host",
            "svm-07",
            "--store",
            "host=/nowhere",
            "lease",
            "reclaim",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "--host \"svm-07\" (or TOLLGATE_HOST) does not apply",
        ));
    state
        .bare()
        .args(["lease", "write-off", "seven", "--store", "host=/nowhere"])
        .assert()
        .code(2)
        .stderr(contains("\"seven\" is not a lease id like 7 or #7"));
}
