//! Admin through the fleet store, against a real PostgreSQL server each test starts: a project
//! created and keys added on one host reach every host through the store's admin log (NOTIFY,
//! or a poll a second at most), in the same order, and a host that joins later replays them at
//! open; a change refused on the host that makes it is never appended; a host that cannot reach
//! the store refuses admin changes and lookups of what it does not know with `Unavailable`.
//!
//! Without PostgreSQL's server binaries the tests say so loudly and pass.
// Loom builds leave fleet mode out (see core/Cargo.toml).
#![cfg(not(loom))]

mod common;

#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_core::{Engine, Error, FleetConfig, KeyStatus, Options, Refusal};
use tollgate_store::Store;

use common::dv;
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
    let hosts: Vec<Engine> = dirs[..3]
        .iter()
        .enumerate()
        .map(|(i, d)| open_host(d.path(), &params, &format!("h{i}")))
        .collect();
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
