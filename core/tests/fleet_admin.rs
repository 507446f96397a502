//! Admin through the fleet store, against a real PostgreSQL server each test starts: a project
//! created and keys added on one host reach every host through the store's admin log (NOTIFY,
//! or a poll a second at most), in the same order, and a host that joins later replays them at
//! open; a change refused on the host that makes it is never appended; a host that cannot reach
//! the store refuses admin changes and lookups of what it does not know with `Unavailable`.
//! Every admin change (key replace, reserve removal, groups and the bulk task, pool purchases,
//! instances and assignments) leaves every host in the same state, a late host included; two
//! hosts racing for the last pool license: one wins, on every host.
//!
//! Without PostgreSQL's server binaries the tests say so loudly and pass.
// Loom builds leave fleet mode out (see core/Cargo.toml).
#![cfg(not(loom))]

mod common;

#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use tollgate_core::{
    BulkTarget, Engine, Error, FleetConfig, Group, Instance, InstanceOs, KeyStatus, LicenseFilter,
    LicenseType, Options, PaymentMode, Purchase, Refusal,
};
use tollgate_store::Store;

use common::{dv, expiring};
use postgres::Server;

const MIB: u64 = 1 << 20;

fn open_host(dir: &Path, params: &str, host: &str) -> Engine {
    let options = Options {
        fleet: Some(FleetConfig {
            lease_ttl: Duration::from_secs(3),
            ..FleetConfig::new(params, host)
        }),
        ..common::options(dir)
    };
    Engine::open_with(dir, options).unwrap()
}

/// Hosts `h0`, `h1`, … of the fleet, one per directory.
fn open_hosts(dirs: &[tempfile::TempDir], params: &str) -> Vec<Engine> {
    dirs.iter()
        .enumerate()
        .map(|(i, d)| open_host(d.path(), params, &format!("h{i}")))
        .collect()
}

/// The number of changes in the store's admin log.
fn log_len(params: &str) -> usize {
    Store::connect(params)
        .unwrap()
        .admin_since(0, 10_000)
        .unwrap()
        .len()
}

/// Waits up to 2 s for `condition`; returns how long it took.
fn within_two_seconds(what: &str, condition: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: not within 2 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

/// One host creates a project and adds an Active and a Reserved key; the other two hosts see
/// each change within 2 s, with the same roles, and meter the project from the same store
/// accounts; a fourth host opened afterwards has it all at open.
#[test]
fn admin_changes_reach_every_host_in_order() {
    let Some(server) = Server::start("admin_changes_reach_every_host_in_order") else {
        return;
    };
    let params = server.params();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts = open_hosts(&dirs[..3], &params);
    hosts[0].create_project("p").unwrap();
    for (i, host) in hosts.iter().enumerate() {
        let took = within_two_seconds("project", || host.projects().unwrap() == ["p"]);
        println!("host h{i} saw the project after {took:?}");
    }
    let added = hosts[0].add_key("p", dv("ADM-A", 256 * MIB)).unwrap();
    assert_eq!(added.role, tollgate_core::Role::Active);
    hosts[0].add_reserve("p", dv("ADM-R", 256 * MIB)).unwrap();
    let roles = |engine: &Engine| -> Vec<(String, KeyStatus)> {
        engine
            .keys("p")
            .unwrap()
            .into_iter()
            .map(|k| (k.key.id, k.status))
            .collect()
    };
    let expected = vec![
        ("ADM-A".to_owned(), KeyStatus::Active),
        ("ADM-R".to_owned(), KeyStatus::Reserved),
    ];
    for (i, host) in hosts.iter().enumerate() {
        let took = within_two_seconds("keys", || roles(host) == expected);
        println!("host h{i} saw both keys after {took:?}");
    }
    // Every host meters the project; the fleet's total is the two keys' amounts.
    let mut granted = 0;
    for host in &hosts {
        let handle = host.project("p").unwrap();
        let started = Instant::now();
        while granted < MIB {
            match handle.consume_partial(64 << 10) {
                Ok(n) => granted += n,
                Err(Refusal::Unavailable) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("{e}"),
            }
            assert!(started.elapsed() < Duration::from_secs(10));
        }
        granted = 0;
    }
    let late = open_host(dirs[3].path(), &params, "h3");
    assert_eq!(late.projects().unwrap(), ["p"], "replayed at open");
    assert_eq!(roles(&late), expected);
    assert_eq!(log_len(&params), 3, "one change per admin call");
}

/// A change the host refuses (an unknown project, a project that exists, a bad name) is
/// refused as an embedded engine refuses it and never appended to the log.
#[test]
fn refused_changes_are_not_appended() {
    let Some(server) = Server::start("refused_changes_are_not_appended") else {
        return;
    };
    let params = server.params();
    let dir = tempfile::tempdir().unwrap();
    let host = open_host(dir.path(), &params, "h0");
    host.create_project("p").unwrap();
    assert!(matches!(
        host.create_project("p"),
        Err(Error::ProjectExists { .. })
    ));
    assert!(matches!(
        host.add_key("nope", dv("K", MIB)),
        Err(Error::ProjectNotFound { .. })
    ));
    assert!(matches!(
        host.create_project(""),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(log_len(&params), 1);
}

/// With the store out of reach, admin changes are refused `Unavailable` and change nothing; a
/// project the host does not know is `Unavailable` too (it cannot know it is not new), while
/// one it knows keeps metering from its stock.
#[test]
fn an_unreachable_store_refuses_admin_changes() {
    let Some(server) = Server::start("an_unreachable_store_refuses_admin_changes") else {
        return;
    };
    let params = server.params();
    let dir = tempfile::tempdir().unwrap();
    let host = open_host(dir.path(), &params, "h0");
    host.create_project("p").unwrap();
    host.add_key("p", dv("UNR-A", 64 * MIB)).unwrap();
    let handle = host.project("p").unwrap();
    within_two_seconds("a first stock", || handle.consume(1).is_ok());
    server.stop_immediate();
    assert!(matches!(host.create_project("q"), Err(Error::Unavailable)));
    assert_eq!(host.projects().unwrap(), ["p"]);
    within_two_seconds("the thread notices", || {
        matches!(host.project("q"), Err(Error::Unavailable))
    });
    assert!(host.project("p").is_ok());
    server.start_again();
    within_two_seconds("the thread reconnects", || {
        matches!(host.project("q"), Err(Error::ProjectNotFound { .. }))
    });
    host.create_project("q").unwrap();
}

/// Engines that close right after an admin change (as a CLI command does) give back the stock
/// their fleet threads drew meanwhile: nothing stays leased to the host (unused pair blocks
/// aside: no grant was made).
#[test]
fn a_closing_engine_leaves_nothing_leased() {
    let Some(server) = Server::start("a_closing_engine_leaves_nothing_leased") else {
        return;
    };
    let params = server.params();
    let dir = tempfile::tempdir().unwrap();
    open_host(dir.path(), &params, "h0")
        .create_project("p")
        .unwrap();
    open_host(dir.path(), &params, "h0")
        .add_key("p", dv("CLOSE-A", MIB))
        .unwrap();
    open_host(dir.path(), &params, "h0")
        .add_reserve("p", dv("CLOSE-R", MIB))
        .unwrap();
    // A close the fleet thread finishes (it held the engine, applying the log, when the last
    // handle went) completes just after the drop: wait for it, 2 s at most.
    let mut store = Store::connect(&params).unwrap();
    for key in ["CLOSE-A", "CLOSE-R"] {
        let parts = |store: &mut Store| match store.account(key) {
            Ok(account) => (account.used, account.leased, account.in_doubt),
            Err(tollgate_store::Error::AccountNotFound { .. }) => (0, 0, 0),
            Err(e) => panic!("{e}"),
        };
        let started = Instant::now();
        while parts(&mut store) != (0, 0, 0) {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{key}: {:?}",
                store.list_leases()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What an admin change can change on a host, as its public calls show it.
#[derive(Debug, PartialEq)]
struct AdminState {
    projects: Vec<String>,
    /// Each project's keys: id and status.
    keys: Vec<Vec<(String, KeyStatus)>>,
    groups: Vec<Group>,
    /// Every pool license: id and the instance it is assigned to.
    licenses: Vec<(String, Option<String>)>,
    instances: Vec<Instance>,
}

fn admin_state(engine: &Engine) -> AdminState {
    let projects = engine.projects().unwrap();
    let keys = projects
        .iter()
        .map(|p| {
            let keys = engine.keys(p).unwrap().into_iter();
            keys.map(|k| (k.key.id, k.status)).collect()
        })
        .collect();
    let licenses = engine
        .list_licenses(&LicenseFilter::default())
        .unwrap()
        .into_iter()
        .flat_map(|listing| listing.licenses)
        .map(|l| (l.id, l.assigned_to))
        .collect();
    AdminState {
        projects,
        keys,
        groups: engine.groups().unwrap(),
        licenses,
        instances: engine.instances().unwrap(),
    }
}

/// Waits until every host is in the state of `hosts[caller]` (which made the change that
/// `started` timed), 2 s at most from the call; prints when each got there.
fn same_everywhere(hosts: &[Engine], caller: usize, what: &str, started: Instant) -> AdminState {
    let expected = admin_state(&hosts[caller]);
    for (i, host) in hosts.iter().enumerate() {
        while admin_state(host) != expected {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what}: h{i} not within 2 s of the call: {:?} != {expected:?}",
                admin_state(host)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        println!("{what}: h{i} has it {:?} after the call", started.elapsed());
    }
    expected
}

/// Every kind of admin change, each made on one of 3 hosts, leaves all 3 in the same state
/// within 2 s (the same keys and roles, groups, license ids and assignments; the bulk task's
/// reserve where it fits); a host opened afterwards replays them all to that state.
#[test]
fn every_admin_change_leaves_every_host_alike() {
    let Some(server) = Server::start("every_admin_change_leaves_every_host_alike") else {
        return;
    };
    let params = server.params();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts = open_hosts(&dirs[..3], &params);
    hosts[0].create_project("p").unwrap();
    hosts[0].create_project("q").unwrap();
    hosts[0].add_key("p", dv("ALL-A", MIB)).unwrap();
    hosts[0].add_reserve("p", dv("ALL-R", MIB)).unwrap();
    same_everywhere(&hosts, 0, "projects and keys", Instant::now());

    let started = Instant::now();
    let replaced = hosts[1]
        .replace_active_key("p", expiring(dv("ALL-B", MIB), 4_000_000_000))
        .unwrap();
    assert_eq!(replaced.old, "ALL-A");
    let state = same_everywhere(&hosts, 1, "key replace", started);
    assert!(state.keys[0].contains(&("ALL-B".into(), KeyStatus::Active)));

    let started = Instant::now();
    hosts[2].remove_reserve("p", "ALL-R").unwrap();
    let state = same_everywhere(&hosts, 2, "reserve removal", started);
    assert!(!state.keys[0].contains(&("ALL-R".into(), KeyStatus::Reserved)));

    let started = Instant::now();
    hosts[0].add_to_group("g", &["p", "q"]).unwrap();
    let state = same_everywhere(&hosts, 0, "group add", started);
    assert_eq!(state.groups[0].projects, ["p", "q"]);

    // The bulk task on the group: p takes the reserve, q (no Active key) refuses it.
    let started = Instant::now();
    let outcomes = hosts[1]
        .add_reserve_bulk(&BulkTarget::Group("g".into()), dv("ALL-BULK", MIB))
        .unwrap();
    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    assert!(outcomes[1].result.is_err(), "{outcomes:?}");
    let state = same_everywhere(&hosts, 1, "bulk reserve", started);
    assert!(state.keys[0].contains(&("ALL-BULK".into(), KeyStatus::Reserved)));

    let started = Instant::now();
    let bought = hosts[1]
        .buy_licenses(&Purchase::new(LicenseType::Server, 2, PaymentMode::Annual))
        .unwrap();
    let state = same_everywhere(&hosts, 1, "pool buy", started);
    let ids: Vec<&str> = state.licenses.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, bought);

    let started = Instant::now();
    hosts[2]
        .add_instance("web", InstanceOs::Linux, None)
        .unwrap();
    same_everywhere(&hosts, 2, "instance add", started);

    let started = Instant::now();
    let assigned = hosts[0].assign("web", None).unwrap();
    let state = same_everywhere(&hosts, 0, "instance assign", started);
    assert_eq!(
        state.instances[0].license.as_deref(),
        Some(&*assigned.license)
    );
    for host in &hosts {
        host.check_instance("web").unwrap();
    }

    let started = Instant::now();
    assert_eq!(hosts[1].unassign("web").unwrap(), assigned.license);
    let state = same_everywhere(&hosts, 1, "instance unassign", started);
    assert_eq!(state.instances[0].license, None);
    let again = hosts[2].assign("web", None).unwrap();
    let state = same_everywhere(&hosts, 2, "instance assign again", started);

    let late = open_host(dirs[3].path(), &params, "h3");
    assert_eq!(admin_state(&late), state, "replayed at open");
    late.check_instance("web").unwrap();
    assert_eq!(late.instances().unwrap()[0].license, Some(again.license));
}

/// Changes the host refuses (an unknown project, instance or reserve, a payment mode other
/// than the first purchase's, a name taken, no free license, nothing to unassign) are refused
/// as an embedded engine refuses them and never appended.
#[test]
fn refused_pool_and_key_changes_are_not_appended() {
    let Some(server) = Server::start("refused_pool_and_key_changes_are_not_appended") else {
        return;
    };
    let params = server.params();
    let dir = tempfile::tempdir().unwrap();
    let host = open_host(dir.path(), &params, "h0");
    host.create_project("p").unwrap();
    host.add_key("p", dv("REF-A", MIB)).unwrap();
    host.add_instance("web", InstanceOs::Linux, None).unwrap();
    let appended = log_len(&params);
    let refusals = [
        host.replace_active_key("nope", dv("REF-B", MIB)).map(drop),
        host.remove_reserve("p", "REF-A"),
        host.add_to_group("g", &["p", "nope"]),
        host.add_instance("p", InstanceOs::Linux, None),
        host.assign("nope", None).map(drop),
        host.assign("web", None).map(drop),
        host.unassign("web").map(drop),
    ];
    let expected = |e: &Error| {
        matches!(
            e,
            Error::ProjectNotFound { .. }
                | Error::ReserveNotFound { .. }
                | Error::ProjectExists { .. }
                | Error::InstanceNotFound { .. }
                | Error::NoLicenseAvailable { .. }
                | Error::NotAssigned { .. }
        )
    };
    for refusal in &refusals {
        assert!(refusal.as_ref().is_err_and(expected), "{refusal:?}");
    }
    assert_eq!(log_len(&params), appended);
    host.buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
        .unwrap();
    assert!(matches!(
        host.buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Monthly)),
        Err(Error::PaymentModeMismatch { .. })
    ));
    assert_eq!(log_len(&params), appended + 1);
}

/// Two hosts assign the last free license at the same moment, each to its own instance, over
/// several rounds: exactly one gets it, the other is refused `NoLicenseAvailable` (by its own
/// check, or by the log's order when both changes were appended), and all 3 hosts show the one
/// assignment.
#[test]
fn two_hosts_racing_for_the_last_license_one_wins_everywhere() {
    let Some(server) = Server::start("two_hosts_racing_for_the_last_license") else {
        return;
    };
    let params = server.params();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts = open_hosts(&dirs, &params);
    hosts[0]
        .buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
        .unwrap();
    hosts[0].add_instance("a", InstanceOs::Linux, None).unwrap();
    hosts[0].add_instance("b", InstanceOs::Linux, None).unwrap();
    same_everywhere(&hosts, 0, "pool and instances", Instant::now());
    let assigns = || {
        let store = Store::connect(&params).unwrap().admin_since(0, 10_000);
        let log = store.unwrap();
        log.iter()
            .filter(|c| c.change.contains("\"assign\""))
            .count()
    };
    let mut both_appended = 0;
    for round in 0..8 {
        let before = assigns();
        let barrier = Barrier::new(2);
        let race = |host: &Engine, instance: &'static str| {
            barrier.wait();
            host.assign(instance, None)
        };
        let (h1, h2) = (&hosts[1], &hosts[2]);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(move || race(h1, "a"));
            let b = s.spawn(move || race(h2, "b"));
            (a.join().unwrap(), b.join().unwrap())
        });
        let (winner, loser, host) = match (&a, &b) {
            (Ok(won), Err(lost)) => (won, lost, 1),
            (Err(lost), Ok(won)) => (won, lost, 2),
            _ => panic!("round {round}: exactly one wins: {a:?} {b:?}"),
        };
        assert!(
            matches!(loser, Error::NoLicenseAvailable { .. }),
            "{loser:?}"
        );
        both_appended += usize::from(assigns() - before == 2);
        let state = same_everywhere(&hosts, host, "the race's outcome", Instant::now());
        let assigned: Vec<_> = state.licenses.iter().filter_map(|l| l.1.as_ref()).collect();
        assert_eq!(assigned, [&winner.instance], "round {round}");
        hosts[0].unassign(&winner.instance).unwrap();
        same_everywhere(&hosts, 0, "the unassignment", Instant::now());
    }
    println!("rounds in which both changes were appended (the log's order decided): {both_appended} of 8");
}

/// The log's order decides, whatever the hosts checked: two assignments of the last license
/// appended one after the other (as two hosts that both found it free append them, written
/// here straight to the store) leave it with the first instance on every host, the second
/// refused everywhere; a host opened afterwards replays the same.
#[test]
fn the_first_of_two_appended_assignments_wins_on_every_host() {
    let Some(server) = Server::start("the_first_of_two_appended_assignments_wins") else {
        return;
    };
    let params = server.params();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts = open_hosts(&dirs[..3], &params);
    hosts[0]
        .buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
        .unwrap();
    hosts[0].add_instance("a", InstanceOs::Linux, None).unwrap();
    hosts[0].add_instance("b", InstanceOs::Linux, None).unwrap();
    let mut store = Store::connect(&params).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let at = now.format(&time::format_description::well_known::Rfc3339);
    for instance in ["b", "a"] {
        let change = serde_json::json!({
            "op": "assign",
            "instance": instance,
            "license_type": null,
            "when": {"now": now.unix_timestamp(), "at": at.as_ref().unwrap()},
            "serial": store.next_number().unwrap(),
        });
        store.append_admin("hx", &change.to_string()).unwrap();
    }
    let licensed = |engine: &Engine| -> Vec<(String, Option<String>)> {
        let instances = engine.instances().unwrap().into_iter();
        instances.map(|i| (i.name, i.license)).collect()
    };
    let expected = vec![("a".into(), None), ("b".into(), Some("server-1-1".into()))];
    for (i, host) in hosts.iter().enumerate() {
        let took = within_two_seconds("the first assignment", || licensed(host) == expected);
        println!("h{i} applied both after {took:?}");
    }
    hosts[1].check_instance("b").unwrap();
    assert!(matches!(
        hosts[2].check_instance("a"),
        Err(Error::NoActiveKey)
    ));
    let late = open_host(dirs[3].path(), &params, "h3");
    assert_eq!(licensed(&late), expected);
}
