//! Groups and bulk reserve activation (rule R8 in docs/rules.md, the application activation task):
//! one outcome per project, the §2.1 error for each refusal, and a refusal never stops the
//! others.

mod common;

use common::{dv, statuses};
use tollgate_core::{
    BulkTarget, Clock, Delivery, Edition, Engine, Error, Key, KeyKind, KeyStatus, MachineOs,
    Options, Scheme,
};

const NOW: u32 = 1_800_000_000;

fn engine(dir: &std::path::Path) -> Engine {
    Engine::open_with(
        dir,
        Options {
            clock: Clock::manual(NOW),
            ..common::options(dir)
        },
    )
    .unwrap()
}

/// Outcome per project: "added" or the error's variant name.
fn outcomes(e: &Engine, target: &BulkTarget, key: &Key) -> Vec<(String, String)> {
    e.add_reserve_bulk(target, key)
        .unwrap()
        .into_iter()
        .map(|o| {
            let what = match o.result {
                Ok(added) => format!("added as {:?}", added.role),
                Err(e) => format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_owned(),
            };
            (o.project, what)
        })
        .collect()
}

fn cluster(e: &Engine) {
    let setups: [(&str, Option<Key>); 7] = [
        ("svm-active", Some(dv("A1", 100))),
        ("svm-empty", None),
        (
            "svm-subscription",
            Some(Key {
                kind: KeyKind::Subscription,
                ..dv("A3", 100)
            }),
        ),
        (
            "svm-offline",
            Some(Key {
                delivery: Delivery::Offline,
                ..dv("A4", 100)
            }),
        ),
        (
            "svm-enterprise",
            Some(Key {
                edition: Edition::Enterprise,
                ..dv("A5", 100)
            }),
        ),
        (
            "svm-server",
            Some(Key {
                scheme: Scheme::PerMachine {
                    os: MachineOs::Server,
                    max_machines: 5,
                },
                ..dv("A6", 1)
            }),
        ),
        ("svm-full", Some(dv("A7", 100))),
    ];
    for (name, key) in setups {
        e.create_project(name).unwrap();
        if let Some(key) = key {
            e.add_key(name, key).unwrap();
        }
    }
    e.add_key("svm-full", dv("R7", 100)).unwrap();
}

#[test]
fn bulk_activation_gives_one_outcome_per_project_with_the_rule_each_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    cluster(&e);
    e.add_to_group(
        "cluster-1",
        &["svm-active", "svm-empty", "svm-full", "svm-server"],
    )
    .unwrap();
    let reserve = dv("RESERVE", 100);
    let got = outcomes(&e, &BulkTarget::Group("cluster-1".into()), &reserve);
    let want = [
        ("svm-active", "added as Reserved"),
        ("svm-empty", "NoActiveKey"),
        ("svm-full", "ReserveOccupied"),
        ("svm-server", "SchemeMismatch"),
    ];
    assert_eq!(
        got,
        want.map(|(p, w)| (p.to_owned(), w.to_owned())).to_vec()
    );
    // The same key document to all projects: svm-active holds it as its reserve already.
    let got = outcomes(&e, &BulkTarget::All, &reserve);
    let want = [
        ("svm-active", "ReserveOccupied"),
        ("svm-empty", "NoActiveKey"),
        ("svm-enterprise", "EditionMismatch"),
        ("svm-full", "ReserveOccupied"),
        ("svm-offline", "TypeMismatch"),
        ("svm-server", "SchemeMismatch"),
        ("svm-subscription", "Subscription"),
    ];
    assert_eq!(
        got,
        want.map(|(p, w)| (p.to_owned(), w.to_owned())).to_vec()
    );
    // Once the reserve took over, the same document is a duplicate in that project.
    e.project("svm-active").unwrap().consume(150).unwrap();
    let got = outcomes(&e, &BulkTarget::Project("svm-active".into()), &reserve);
    assert_eq!(got, [("svm-active".to_owned(), "DuplicateKey".to_owned())]);
    // The same id with a different document is a duplicate everywhere.
    let impostor = dv("RESERVE", 999);
    let e2 = tempfile::tempdir().unwrap();
    let other = engine(e2.path());
    other.create_project("x").unwrap();
    other.add_key("x", dv("X", 1)).unwrap();
    other.create_project("y").unwrap();
    other.add_key("y", dv("Y", 1)).unwrap();
    let first = outcomes(&other, &BulkTarget::Project("x".into()), &reserve);
    assert_eq!(first, [("x".to_owned(), "added as Reserved".to_owned())]);
    let second = outcomes(&other, &BulkTarget::Project("y".into()), &impostor);
    assert_eq!(second, [("y".to_owned(), "DuplicateKey".to_owned())]);
    // The same document is one key wherever it is held: y may hold it too, as x does, and
    // both draw from its one account (core/tests/accounts.rs meters it).
    other.add_key("y", reserve.clone()).unwrap();
    // Each project shows its own use of the shared key.
    assert_eq!(
        statuses(&e, "svm-active"),
        [
            ("A1".to_owned(), KeyStatus::Retired, 100),
            ("RESERVE".to_owned(), KeyStatus::Active, 50)
        ]
    );
    assert_eq!(
        statuses(&other, "x"),
        [
            ("X".to_owned(), KeyStatus::Active, 0),
            ("RESERVE".to_owned(), KeyStatus::Reserved, 0)
        ]
    );
}

#[test]
fn bad_targets_fail_the_whole_call_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    cluster(&e);
    let key = dv("R", 10);
    let table: Vec<(Result<(), Error>, &str)> = vec![
        (
            e.add_reserve_bulk(&BulkTarget::Group("nope".into()), &key)
                .map(drop),
            "group \"nope\" does not exist",
        ),
        (
            e.add_reserve_bulk(&BulkTarget::Project("nope".into()), &key)
                .map(drop),
            "project \"nope\" does not exist",
        ),
        (
            e.add_reserve_bulk(&BulkTarget::All, dv("", 10)).map(drop),
            "invalid key id: must not be empty",
        ),
        (
            e.add_to_group("g", &["svm-active", "nope"]),
            "project \"nope\" does not exist",
        ),
        (
            e.add_to_group("", &["svm-active"]),
            "invalid group name: must not be empty",
        ),
        (
            e.add_to_group("g", &[]),
            "invalid projects: a group needs at least one project",
        ),
    ];
    for (result, message) in table {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
    assert!(e.groups().unwrap().is_empty());
    e.add_to_group("g", &["svm-full", "svm-active"]).unwrap();
    e.add_to_group("g", &["svm-active"]).unwrap();
    e.add_to_group("h", &["svm-empty"]).unwrap();
    let groups: Vec<(String, Vec<String>)> = e
        .groups()
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.projects))
        .collect();
    assert_eq!(
        groups,
        [
            (
                "g".to_owned(),
                vec!["svm-active".to_owned(), "svm-full".to_owned()]
            ),
            ("h".to_owned(), vec!["svm-empty".to_owned()]),
        ]
    );
}
