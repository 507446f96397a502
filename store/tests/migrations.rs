//! Schema migrations against a real server: applied once, re-applying is a no-op, and two
//! migrators starting together apply each migration once.

// The harness is shared by every test binary; this one needs only some of it.
#[allow(dead_code)]
mod common;

use std::thread;

use tollgate_store::migrations::MIGRATIONS;
use tollgate_store::Store;

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[test]
fn migrations_apply_once_and_reapplying_is_a_no_op() {
    let Some(server) = common::Server::start("migrations_apply_once") else {
        return;
    };
    let mut store = Store::connect(&server.params()).unwrap();
    assert_eq!(store.schema_versions().unwrap(), Vec::<i32>::new());
    assert_eq!(store.migrate().unwrap(), all_versions());
    assert_eq!(store.schema_versions().unwrap(), all_versions());
    assert_eq!(store.migrate().unwrap(), Vec::<i32>::new(), "second run");
    let mut other = Store::connect(&server.params()).unwrap();
    assert_eq!(other.migrate().unwrap(), Vec::<i32>::new(), "another host");
    assert_eq!(other.schema_versions().unwrap(), all_versions());
}

#[test]
fn concurrent_migrators_apply_each_migration_once() {
    let Some(server) = common::Server::start("concurrent_migrators") else {
        return;
    };
    let params = server.params();
    let migrators: Vec<_> = (0..4)
        .map(|_| {
            let params = params.clone();
            thread::spawn(move || Store::connect(&params).unwrap().migrate().unwrap())
        })
        .collect();
    let mut applied: Vec<i32> = migrators
        .into_iter()
        .flat_map(|m| m.join().unwrap())
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        all_versions(),
        "each version applied by exactly one"
    );
    let mut store = Store::connect(&params).unwrap();
    assert_eq!(store.schema_versions().unwrap(), all_versions());
}
