//! `tollgate pool|instance|group|seat` and bulk `key add-reserve` end to end (rules R8,
//! R16, R17 and R22–R26 in docs/rules.md): text and `--json`, the rule codes of refusals, and state
//! kept between invocations. Each test has its own state directory.

use std::time::Duration;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

mod common;

use common::State;

const NOT_PURCHASED: &str = "You have not purchased licenses of this type";

/// The listing of one type in `pool list --json`.
fn of_type<'a>(listing: &'a Value, license_type: &str) -> &'a Value {
    listing
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["license_type"] == license_type)
        .unwrap_or_else(|| panic!("no {license_type} group in {listing}"))
}

/// `pool list FLAGS --json` as (type, count) pairs in listing order.
fn counts(state: &State, flags: &str) -> Vec<(String, u64)> {
    state
        .json(&format!("pool list {flags}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["license_type"].as_str().unwrap().to_owned(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

/// The RFC 3339 instant `after` from now.
fn instant_in(after: Duration) -> String {
    (OffsetDateTime::now_utc() + after)
        .format(&Rfc3339)
        .unwrap()
}

/// Writes a key JSON file into the state's directory and returns its path.
fn key_file(state: &State, id: &str) -> String {
    let path = state.dir.path().join(format!("{id}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
                "scheme": {{"data_volume": {{"limit_bytes": 1000000}}}}}}"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn buying_and_listing_groups_licenses_by_type_with_counts_and_add_ons() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 3 --mode annual --expires 2030-01-01 --premium-support --onboarding")
        .success()
        .stdout(contains(
            "Bought 3 commercial server licenses into the global pool, paid annual: server-1-1, server-1-2, server-1-3.",
        ))
        .stdout(contains("Term ends: 2030-01-01 00:00:00 UTC"))
        .stdout(contains("Add-on services: Premium Support, Onboarding."));
    let bought = state.json(
        "pool buy --type desktop --quantity 8 --mode annual --trial --company Acme --auto-renew",
    );
    assert_eq!(bought["licenses"].as_array().unwrap().len(), 8);
    assert_eq!(bought["licenses"][0], "desktop-2-1");
    assert_eq!(bought["purchase"]["kind"], "trial");
    assert_eq!(bought["purchase"]["company"], "Acme");
    assert_eq!(bought["purchase"]["payment_mode"], "annual");

    state
        .run("pool list")
        .success()
        .stdout(contains(
            "Payment mode: annual (fixed by the first purchase)",
        ))
        .stdout(contains("Server licenses: 3 shown, 0 used"))
        .stdout(contains("Premium Support, Onboarding"))
        .stdout(contains("Desktop licenses: 8 shown, 0 used"))
        .stdout(contains(format!("Workstation licenses: {NOT_PURCHASED}")));
    let listing = state.json("pool list");
    let server = of_type(&listing, "server");
    assert_eq!(
        (server["count"].as_u64(), server["used"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(server["licenses"][0]["premium_support"], true);
    assert_eq!(server["licenses"][0]["onboarding"], true);
    assert_eq!(server["licenses"][0]["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(server["message"], Value::Null);
    let desktop = of_type(&listing, "desktop");
    assert_eq!(desktop["licenses"][0]["premium_support"], false);
    assert_eq!(desktop["licenses"][0]["auto_renew"], true);
    assert_eq!(of_type(&listing, "workstation")["message"], NOT_PURCHASED);
    assert_eq!(of_type(&listing, "workstation")["count"], 0);

    let only = state.json("pool list --type workstation");
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["message"], NOT_PURCHASED);
    state
        .run("pool list --type workstation")
        .success()
        .stdout(contains(format!("Workstation licenses: {NOT_PURCHASED}")))
        .stdout(contains("Server").not());
}

#[test]
fn list_filters_kind_use_company_renewal_and_text() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 2 --mode monthly")
        .success();
    state
        .run("pool buy --type desktop --quantity 3 --mode monthly --trial --company Acme --auto-renew")
        .success();
    state.run("instance add web-01 --os linux").success();
    state
        .run("instance add acme-01 --os macos --company Acme")
        .success();
    state.run("instance assign web-01 --type server").success();
    state.run("instance assign acme-01").success();

    // Counts of server, desktop and workstation licenses each filter shows.
    for (flags, [server, desktop, workstation]) in [
        ("", [2, 3, 0]),
        ("--commercial", [2, 0, 0]),
        ("--trial", [0, 3, 0]),
        // Used and unused apply to commercial licenses only: the assigned trial is left out.
        ("--used", [1, 0, 0]),
        ("--unused", [1, 0, 0]),
        ("--company Acme", [0, 3, 0]),
        ("--auto-renew", [0, 3, 0]),
        ("--valid", [2, 3, 0]),
        ("--expired", [0, 0, 0]),
        ("--search WEB-0", [1, 0, 0]),
        ("--search acme --trial --used", [0, 0, 0]),
    ] {
        assert_eq!(
            counts(&state, flags),
            pairs(&[
                ("server", server),
                ("desktop", desktop),
                ("workstation", workstation)
            ]),
            "pool list {flags}"
        );
    }
    let used = state.json("pool list --type server --used");
    assert_eq!(used[0]["licenses"][0]["assigned_to"], "web-01");
    assert_eq!(used[0]["used"], 1);
    state
        .run("pool list --used")
        .success()
        .stdout(contains("Server licenses: 1 shown, 1 used"))
        .stdout(contains("web-01"))
        .stdout(contains("Desktop licenses: none match"));

    for conflict in [
        "pool list --trial --commercial",
        "pool list --used --unused",
        "pool list --valid --expired",
        "pool list --type laptop",
    ] {
        state.run(conflict).code(2);
    }
}

#[test]
fn purchases_are_checked_before_anything_is_bought() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 0 --mode annual")
        .code(2);
    state.run("pool buy --type server --quantity 2").code(2);
    state
        .run("pool buy --type server --quantity 2 --mode annual --expires someday")
        .code(2)
        .stderr(contains("RFC 3339"));
    let past =
        state.refusal("pool buy --type server --quantity 2 --mode annual --expires 2020-01-01");
    assert_eq!(past["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(counts(&state, "--type server"), pairs(&[("server", 0)]));
}

#[test]
fn the_payment_mode_is_fixed_by_the_first_purchase() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 2 --mode annual")
        .success();
    state
        .run("pool buy --type desktop --quantity 1 --mode monthly")
        .code(1)
        .stderr(contains(
            "payment mode monthly refused: the payment mode was fixed to annual at the first purchase",
        ))
        .stderr(contains("rule PAYMENT_MODE_MISMATCH"));
    let refused = state.refusal("pool buy --type desktop --quantity 1 --mode monthly");
    assert_eq!(refused["error"]["code"], "PAYMENT_MODE_MISMATCH");
    assert_eq!(
        counts(&state, ""),
        pairs(&[("server", 2), ("desktop", 0), ("workstation", 0)]),
        "a refused purchase buys nothing"
    );
    state
        .run("pool buy --type desktop --quantity 1 --mode annual")
        .success();
}

#[test]
fn instances_are_assigned_checked_and_unassigned() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 1 --mode annual")
        .success();
    state
        .run("pool buy --type server --quantity 1 --mode annual --company Acme")
        .success();
    state
        .run("instance add web-01 --os windows --company Acme")
        .success()
        .stdout(contains(
            "Added Windows instance \"web-01\" of company \"Acme\"",
        ));
    let unlicensed = state.refusal("instance check web-01");
    assert_eq!(unlicensed["error"]["code"], "NO_ACTIVE_KEY");

    state
        .run("instance assign web-01")
        .success()
        .stdout(contains(
        "Assigned server license server-2-1 to instance \"web-01\" from company \"Acme\"'s pool.",
    ));
    state
        .run("instance check web-01")
        .success()
        .stdout(contains("Instance \"web-01\" is licensed by server-2-1."));
    let checked = state.json("instance check web-01");
    assert_eq!(checked["licensed"], true);
    assert_eq!(checked["license"], "server-2-1");
    let again = state.refusal("instance assign web-01");
    assert_eq!(again["error"]["code"], "ALREADY_ASSIGNED");

    state
        .run("instance unassign web-01")
        .success()
        .stdout(contains("License server-2-1 went back to its pool"));
    state
        .run("instance check web-01")
        .code(1)
        .stderr(contains("instance \"web-01\" holds no license"))
        .stderr(contains("rule NO_ACTIVE_KEY"));
    assert_eq!(
        state.refusal("instance unassign web-01")["error"]["code"],
        "NOT_ASSIGNED"
    );
    assert_eq!(
        state.refusal("instance check nobody")["error"]["code"],
        "INSTANCE_NOT_FOUND"
    );

    state.run("instance add db-01 --os linux").success();
    let assigned = state.json("instance assign db-01");
    assert_eq!(assigned["license"], "server-1-1");
    assert_eq!(assigned["from_company_pool"], false);
    let instances = state.json("instance list");
    assert_eq!(instances[0]["name"], "db-01");
    assert_eq!(instances[0]["os"], "linux");
    assert_eq!(instances[0]["license"], "server-1-1");
    assert_eq!(instances[1]["company"], "Acme");
    assert_eq!(instances[1]["license"], Value::Null);
    state
        .run("instance list")
        .success()
        .stdout(contains("INSTANCE  OS"))
        .stdout(contains("Linux"));
    state.run("instance add x --os beos").code(2);
}

#[test]
fn a_linux_instance_is_refused_workstation_licenses() {
    let state = State::new();
    state
        .run("pool buy --type workstation --quantity 3 --mode annual")
        .success();
    state.run("instance add lin-01 --os linux").success();
    state
        .run("instance assign lin-01")
        .code(1)
        .stderr(contains(
            "no license available for instance \"lin-01\": no valid, unassigned desktop or server license in the global pool",
        ))
        .stderr(contains(
            "rule NO_LICENSE_AVAILABLE: an instance takes a valid, unassigned license of a type that fits its OS (macOS and Linux need Desktop or Server)",
        ));
    let unfit = state.refusal("instance assign lin-01 --type workstation");
    assert_eq!(unfit["error"]["code"], "LICENSE_TYPE_UNFIT");
    assert_eq!(
        unfit["error"]["message"],
        "a workstation license cannot license a linux instance: macOS and Linux need a desktop or server license"
    );
    state.run("instance add win-01 --os windows").success();
    state
        .run("instance assign win-01")
        .success()
        .stdout(contains("Assigned workstation license workstation-1-1"));
}

#[test]
fn an_expired_license_fails_the_check_and_lists_as_expired() {
    let state = State::new();
    state
        .run(&format!(
            "pool buy --type server --quantity 1 --mode annual --expires {}",
            instant_in(Duration::from_secs(2))
        ))
        .success();
    state.run("instance add web-01 --os windows").success();
    state.run("instance assign web-01").success();
    state.run("instance check web-01").success();
    std::thread::sleep(Duration::from_millis(3_200));
    state
        .run("instance check web-01")
        .code(1)
        .stderr(contains(
            "the license server-1-1 of instance \"web-01\" has expired",
        ))
        .stderr(contains("rule EXPIRED"));
    assert_eq!(
        counts(&state, "--type server --expired"),
        pairs(&[("server", 1)])
    );
    assert_eq!(
        counts(&state, "--type server --valid"),
        pairs(&[("server", 0)])
    );
    let shortfall = state.json("pool shortfall");
    assert_eq!(shortfall["needs"][0]["instance"], "web-01");
    assert_eq!(shortfall["needs"][0]["reason"], "unlicensed");
}

#[test]
fn shortfall_counts_what_to_buy_per_type() {
    let state = State::new();
    state
        .run("pool buy --type desktop --quantity 1 --mode annual")
        .success();
    state
        .run(&format!(
            "pool buy --type server --quantity 1 --mode annual --expires {}",
            instant_in(Duration::from_secs(10 * 86_400))
        ))
        .success();
    // a-mac holds the server license, which ends in 10 days without auto-renew; b-lin and
    // c-win hold nothing. The unassigned desktop license covers one Desktop-or-Server need.
    state.run("instance add a-mac --os macos").success();
    state.run("instance assign a-mac --type server").success();
    state.run("instance add b-lin --os linux").success();
    state.run("instance add c-win --os windows").success();

    let table = |shortfall: &Value| -> Vec<(String, u64, u64, u64)> {
        shortfall["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["license_type"].as_str().unwrap().to_owned(),
                    t["needed"].as_u64().unwrap(),
                    t["covered"].as_u64().unwrap(),
                    t["to_buy"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let row = |t: &str, needed, covered, to_buy| (t.to_owned(), needed, covered, to_buy);

    let month = state.json("pool shortfall");
    assert_eq!(month["days"], 30);
    assert_eq!(
        table(&month),
        [
            row("server", 1, 1, 0),
            row("desktop", 1, 0, 1),
            row("workstation", 1, 0, 1)
        ]
    );
    assert_eq!(month["needs"][0]["instance"], "a-mac");
    assert_eq!(month["needs"][0]["reason"], "expires_soon");
    assert_eq!(month["needs"][0]["covered_by"], "desktop-1-1");

    let week = state.json("pool shortfall --days 5");
    assert_eq!(
        table(&week),
        [
            row("server", 0, 0, 0),
            row("desktop", 1, 1, 0),
            row("workstation", 1, 0, 1)
        ]
    );
    state
        .run("pool shortfall --days 5")
        .success()
        .stdout(contains(
            "To keep every instance licensed for the next 5 days:",
        ))
        .stdout(contains("TYPE         NEEDED  COVERED  TO BUY"))
        .stdout(contains("Workstation  1       0        1"))
        .stdout(contains("c-win"));

    let empty = State::new();
    empty.run("init").success();
    empty
        .run("pool shortfall")
        .success()
        .stdout(contains("nothing to buy"));
}

#[test]
fn bulk_reserve_reports_one_line_per_project() {
    let state = State::new();
    for project in ["a", "b", "c", "d"] {
        state.run(&format!("project create {project}")).success();
    }
    for project in ["a", "b", "d"] {
        state
            .run(&format!(
                "key add {project} --id A-{project} --delivery online --limit 1GB"
            ))
            .success();
    }
    state
        .run("group add cluster-1 a b c")
        .success()
        .stdout(contains("Group \"cluster-1\" has 3 projects: a, b, c."));
    let groups = state.json("group list");
    assert_eq!(groups[0]["name"], "cluster-1");
    assert_eq!(groups[0]["projects"], serde_json::json!(["a", "b", "c"]));
    assert_eq!(
        state.refusal("group add cluster-2 a nobody")["error"]["code"],
        "PROJECT_NOT_FOUND"
    );

    let r1 = key_file(&state, "R-1");
    let assert = state
        .run(&format!("key add-reserve --group cluster-1 --file {r1}"))
        .code(1)
        .stderr(contains("1 of 3 projects refused reserve key \"R-1\""));
    assert_eq!(
        String::from_utf8_lossy(&assert.get_output().stdout),
        "a: added as reserve\n\
         b: added as reserve\n\
         c: NO_ACTIVE_KEY no active license key: add a key before metering or adding a reserve\n"
    );
    let d_keys = state.json("key list d");
    assert_eq!(d_keys.as_array().unwrap().len(), 1, "d is not in the group");

    let one = state.json(&format!(
        "key add-reserve --project d --file {}",
        key_file(&state, "R-2")
    ));
    assert_eq!(
        one,
        serde_json::json!([{
            "project": "d", "status": "added", "role": "reserved", "code": null,
            "message": "You have added an additional license key for project d. After the first key’s data usage is exhausted, migration will automatically continue with the reserved key.",
            "rule": null
        }])
    );

    state
        .run("key add c --id A-c --delivery online --limit 1GB")
        .success();
    let all = state
        .run(&format!(
            "key add-reserve --all --file {} --json",
            key_file(&state, "R-3")
        ))
        .code(1);
    let lines: Value = serde_json::from_slice(&all.get_output().stdout).unwrap();
    let summary: Vec<(&str, &str, &str)> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["project"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
                l["code"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "refused", "RESERVE_OCCUPIED"),
            ("b", "refused", "RESERVE_OCCUPIED"),
            ("c", "added", "-"),
            ("d", "refused", "RESERVE_OCCUPIED"),
        ]
    );
    assert_eq!(lines[0]["role"], Value::Null);
    assert_eq!(lines[2]["role"], "reserved");

    let r4 = key_file(&state, "R-4");
    assert_eq!(
        state.refusal(&format!("key add-reserve --group nope --file {r4}"))["error"]["code"],
        "GROUP_NOT_FOUND"
    );
    assert_eq!(
        state.refusal(&format!("key add-reserve --project nope --file {r4}"))["error"]["code"],
        "PROJECT_NOT_FOUND"
    );
    state
        .run(&format!(
            "key add-reserve --all --group cluster-1 --file {r4}"
        ))
        .code(2);
    state
        .run(&format!("key add-reserve a --all --file {r4}"))
        .code(2);
    state.run(&format!("key add-reserve --file {r4}")).code(2);
    let help = state.run("key add-reserve --help").success();
    let help = String::from_utf8_lossy(&help.get_output().stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("Exit status: 0 when every project took the key, 1 when any refused it"),
        "{help}"
    );
}

#[test]
fn operator_seats_stay_held_across_invocations() {
    let state = State::new();
    state.run("project create svm").success();
    state
        .run("key add svm --id M-1 --delivery online --machines 5 --os server")
        .success();
    state
        .run("seat acquire svm --class server --units 3")
        .success()
        .stdout(contains(
            "Acquired 3 server machines on project \"svm\" for the operator",
        ))
        .stdout(contains("██████░░░░ 60 % of 5 server machines"));

    // Each command is its own process: the seats outlive it, and reclaiming leaves them.
    let reclaimed = state.json("seat reclaim");
    assert_eq!(reclaimed, serde_json::json!([]));
    let status = state.json("seat status svm --class server");
    assert_eq!(status["held"], 3);
    assert_eq!(status["operator_held"], 3);
    assert_eq!(status["limit"], 5);
    assert_eq!(status["has_reserved"], false);
    state
        .run("seat status svm --class server")
        .success()
        .stdout(contains("Operator  3 server machines"));

    let exhausted = state.refusal("seat acquire svm --class server --units 3");
    assert_eq!(exhausted["error"]["code"], "SEATS_EXHAUSTED");
    state
        .run("seat release svm --class server --units 4")
        .code(1)
        .stderr(contains("cannot release 4 seats: only 3 are held"))
        .stderr(contains("rule NOT_HELD"));
    assert_eq!(
        state.refusal("seat release svm --class server --units 4")["error"]["code"],
        "NOT_HELD"
    );
    let released = state.json("seat release svm --class server --units 2");
    assert_eq!(
        (
            released["held"].as_u64(),
            released["operator_held"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(state.json("seat status svm --class server")["held"], 1);

    // Desktop machines are a pair of their own, with no key yet.
    let desktop = state.refusal("seat acquire svm --class desktop --units 1");
    assert_eq!(desktop["error"]["code"], "NO_ACTIVE_KEY");
    assert_eq!(state.json("seat status svm --class server")["held"], 1);
    state
        .run("seat reclaim")
        .success()
        .stdout(contains("Nothing to reclaim"));

    state
        .run("seat acquire svm --class server --units 0")
        .code(2);
    state
        .run("seat acquire svm --class floppy --units 1")
        .code(2);
    assert_eq!(
        state.refusal("seat status nobody --class cores")["error"]["code"],
        "PROJECT_NOT_FOUND"
    );
}

#[test]
fn events_tell_pool_instance_and_group_changes() {
    let state = State::new();
    state
        .run("pool buy --type server --quantity 2 --mode annual --company Acme")
        .success();
    state
        .run("instance add web-01 --os linux --company Acme")
        .success();
    state.run("instance assign web-01").success();
    state.run("instance unassign web-01").success();
    state.run("group add g web-01").success();
    state
        .run("events")
        .success()
        .stdout(contains(
            "—  2 commercial server licenses bought into company \"Acme\"'s pool (server-1-1 … server-1-2)",
        ))
        .stdout(contains("web-01  Linux instance of Acme added"))
        .stdout(contains("web-01  server license server-1-1 assigned"))
        .stdout(contains("web-01  license server-1-1 returned to its pool"))
        .stdout(contains("web-01  joined group g"));
    let events = state.json("events");
    assert_eq!(events[0]["kind"], "licenses_purchased");
    assert_eq!(events[0]["project"], "");
}

#[test]
fn every_command_prints_one_json_document() {
    let state = State::new();
    let added = state.json("instance add web-01 --os macos --company Acme");
    assert_eq!(
        added,
        serde_json::json!({"instance": "web-01", "os": "macos", "company": "Acme"})
    );
    state
        .run("pool buy --type desktop --quantity 1 --mode annual")
        .success();
    assert_eq!(
        state.json("instance assign web-01")["license"],
        "desktop-1-1"
    );
    assert_eq!(
        state.json("instance unassign web-01"),
        serde_json::json!({"instance": "web-01", "license": "desktop-1-1"})
    );
    assert_eq!(
        state.json("group add g web-01"),
        serde_json::json!({"name": "g", "projects": ["web-01"]})
    );
    state
        .run("key add web-01 --id C-1 --delivery online --cores 8")
        .success();
    let acquired = state.json("seat acquire web-01 --class cores --units 8");
    assert_eq!(acquired["class"], "per_core");
    assert_eq!(
        (acquired["held"].as_u64(), acquired["limit"].as_u64()),
        (Some(8), Some(8))
    );
}

#[test]
fn home_made_per_instance_key_cannot_license_an_instance() {
    // Regression: this made `instance check ghost` exit 0 while `instance list` showed
    // no license and `pool shortfall` counted ghost as unlicensed.
    let state = State::new();
    state.run("instance add ghost --os linux").success();
    let events = state.json("events");
    let error = state.refusal("key add ghost --id HOMEMADE --delivery online --per-instance");
    assert_eq!(error["error"]["code"], "BAD_SIGNATURE");
    assert_eq!(
        error["error"]["message"],
        "key \"HOMEMADE\" refused: a per-instance key comes from a pool assignment (`tollgate \
instance assign`) or as a license signed by a trusted vendor key, and this state trusts none"
    );
    assert_eq!(state.json("events"), events);
    assert_eq!(state.json("key list ghost"), serde_json::json!([]));
    // The three agree: not licensed.
    assert_eq!(
        state.refusal("instance check ghost")["error"]["code"],
        "NO_ACTIVE_KEY"
    );
    assert_eq!(state.json("instance list")[0]["license"], Value::Null);
    let shortfall = state.json("pool shortfall");
    assert_eq!(shortfall["needs"][0]["instance"], "ghost");
    assert_eq!(shortfall["needs"][0]["reason"], "unlicensed");
}

/// Rule R8 (docs/rules.md) with one key account: the activation task adds one 5-machine key to the
/// three SVMs of a cluster (as the reserve of each SVM's own short key, which then expires); the
/// five machines are shared by the cluster, not five per SVM. The sixth is refused on every SVM, a
/// release on one lets another acquire, and `key list` shows the account and its holders.
#[test]
fn one_seat_key_on_three_svms_protects_its_amount_in_all() {
    let state = State::new();
    let svms = ["svm-1", "svm-2", "svm-3"];
    let expires = instant_in(Duration::from_secs(3));
    for svm in svms {
        state.run(&format!("project create {svm}")).success();
        state
            .run(&format!(
                "key add {svm} --id OWN-{svm} --delivery online --machines 2 --os server --expires {expires}"
            ))
            .success();
    }
    state.run("group add cluster svm-1 svm-2 svm-3").success();
    let shared = state.dir.path().join("M-5.json");
    std::fs::write(
        &shared,
        r#"{"id": "M-5", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {"per_machine": {"max_machines": 5, "os": "server"}}}"#,
    )
    .unwrap();
    state
        .run(&format!(
            "key add-reserve --group cluster --file {}",
            shared.display()
        ))
        .success()
        .stdout("svm-1: added as reserve\nsvm-2: added as reserve\nsvm-3: added as reserve\n");
    std::thread::sleep(Duration::from_secs(4));

    // Each SVM switches to M-5 on its first acquire; the five machines are the cluster's.
    for (svm, units) in [("svm-1", 2), ("svm-2", 2), ("svm-3", 1)] {
        state
            .run(&format!(
                "seat acquire {svm} --class server --units {units}"
            ))
            .success();
    }
    for svm in svms {
        let refused = state.refusal(&format!("seat acquire {svm} --class server --units 1"));
        assert_eq!(
            refused["error"]["code"], "SEATS_EXHAUSTED",
            "{svm}: {refused}"
        );
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only 0 of the active key's seats are free in all the projects"),
            "{refused}"
        );
    }
    let account = |svm: &str| {
        let keys = state.json(&format!("key list {svm}"));
        let shared = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"]["id"] == "M-5")
            .unwrap()
            .clone();
        assert_eq!(shared["status"], "active", "{shared}");
        shared["account"].clone()
    };
    let seen = account("svm-3");
    assert_eq!(
        (seen["limit"].as_u64(), seen["used"].as_u64()),
        (Some(5), Some(5))
    );
    let holders: Vec<(String, u64)> = seen["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["project"].as_str().unwrap().to_owned(),
                h["used"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        holders,
        [
            ("svm-1".into(), 2),
            ("svm-2".into(), 2),
            ("svm-3".into(), 1)
        ]
    );
    assert_eq!(
        account("svm-1"),
        seen,
        "one account, seen alike from every SVM"
    );

    // A release on svm-2 frees a machine for svm-3; then the cluster is full again.
    state
        .run("seat release svm-2 --class server --units 1")
        .success();
    state
        .run("seat acquire svm-3 --class server --units 1")
        .success();
    assert_eq!(
        state.refusal("seat acquire svm-1 --class server --units 1")["error"]["code"],
        "SEATS_EXHAUSTED"
    );
    let held: Vec<u64> = svms
        .iter()
        .map(|svm| {
            state.json(&format!("seat status {svm} --class server"))["held"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(held, [2, 1, 2]);
    assert_eq!(account("svm-2")["used"], 5);
}
