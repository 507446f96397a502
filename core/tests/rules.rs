//! rules R5–R8 and R18–R21 in docs/rules.md through the engine: every rule with its exact error,
//! and a refused call changes nothing.

mod common;

use common::{dv, expiring, statuses};
use tollgate_core::{
    Clock, Delivery, Edition, Engine, Error, EventKind, Key, KeyKind, KeyStatus, MachineOs,
    Options, Refusal, RemovalReason, Role, Scheme,
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

/// Everything an observer could see of a project.
fn snapshot(engine: &Engine, project: &str) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        engine.keys(project).unwrap(),
        engine.usage(project).unwrap(),
        engine.view(project).unwrap(),
        engine.events_after(0, 10_000).unwrap().len(),
    )
}

fn per_machine(id: &str, os: MachineOs) -> Key {
    Key {
        scheme: Scheme::PerMachine {
            os,
            max_machines: 10,
        },
        ..dv(id, 1)
    }
}

#[test]
fn reserve_rules_each_with_its_error_and_no_change() {
    type Setup = fn(&Engine);
    let with_active: Setup = |e| {
        e.add_key("P", dv("A", 100)).unwrap();
    };
    let with_pair: Setup = |e| {
        e.add_key("P", dv("A", 100)).unwrap();
        e.add_key("P", dv("R", 100)).unwrap();
    };
    let with_subscription: Setup = |e| {
        e.add_key(
            "P",
            Key {
                kind: KeyKind::Subscription,
                ..dv("A", 100)
            },
        )
        .unwrap();
    };
    let with_server_pair: Setup = |e| {
        e.add_key("P", per_machine("SRV", MachineOs::Server))
            .unwrap();
    };
    let with_other_project_key: Setup = |e| {
        e.add_key("P", dv("A", 100)).unwrap();
        e.create_project("Q").unwrap();
        e.add_key("Q", dv("USED", 100)).unwrap();
    };
    let nothing: Setup = |_| {};
    type Case = (&'static str, Setup, bool, Key, &'static str);
    let cases: Vec<Case> = vec![
        (
            "reserve on an empty pair",
            nothing,
            true,
            dv("R", 1),
            "NoActiveKey",
        ),
        (
            "subscription active",
            with_subscription,
            false,
            dv("R", 1),
            "Subscription",
        ),
        (
            "subscription reserve",
            with_active,
            false,
            Key {
                kind: KeyKind::Subscription,
                ..dv("R", 1)
            },
            "Subscription",
        ),
        (
            "offline for online",
            with_active,
            false,
            Key {
                delivery: Delivery::Offline,
                ..dv("R", 1)
            },
            "TypeMismatch",
        ),
        (
            "enterprise for standard",
            with_active,
            false,
            Key {
                edition: Edition::Enterprise,
                ..dv("R", 1)
            },
            "EditionMismatch",
        ),
        (
            "per-core reserve for data volume",
            with_active,
            true,
            Key {
                scheme: Scheme::PerCore { max_cores: 8 },
                ..dv("R", 1)
            },
            "SchemeMismatch",
        ),
        (
            "desktop reserve for a server pair",
            with_server_pair,
            true,
            per_machine("DSK", MachineOs::Desktop),
            "SchemeMismatch",
        ),
        (
            "second reserve",
            with_pair,
            false,
            dv("R2", 1),
            "ReserveOccupied",
        ),
        (
            "id used in another project",
            with_other_project_key,
            false,
            dv("USED", 1),
            "DuplicateKey",
        ),
        (
            "id of the active key",
            with_active,
            false,
            dv("A", 1),
            "DuplicateKey",
        ),
        (
            "already expired",
            with_active,
            false,
            expiring(dv("R", 1), i64::from(NOW) - 1),
            "KeyExpired",
        ),
        (
            "limit too large",
            with_active,
            false,
            dv("R", u64::MAX),
            "InvalidArgument",
        ),
    ];
    for (name, setup, explicit_reserve, key, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        e.create_project("P").unwrap();
        setup(&e);
        let before = snapshot(&e, "P");
        let result = if explicit_reserve {
            e.add_reserve("P", key)
        } else {
            e.add_key("P", key)
        };
        let got = format!("{:?}", result.unwrap_err());
        assert!(got.starts_with(expected), "{name}: got {got}");
        assert_eq!(
            snapshot(&e, "P"),
            before,
            "{name}: the refused call changed state"
        );
    }
}

#[test]
fn first_key_is_active_second_is_reserved_with_the_seed_text() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("Payroll").unwrap();
    let first = e.add_key("Payroll", dv("A", 100)).unwrap();
    assert_eq!((first.role, first.message), (Role::Active, None));
    let view = e.view("Payroll").unwrap();
    assert!(view.pairs[0].add_license_available);
    let second = e.add_key("Payroll", dv("R", 100)).unwrap();
    assert_eq!(second.role, Role::Reserved);
    assert_eq!(
        second.message.unwrap(),
        "You have added an additional license key for project Payroll. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key."
    );
    let view = e.view("Payroll").unwrap();
    let pair = &view.pairs[0];
    assert!(!pair.add_license_available);
    assert_eq!(pair.cards.len(), 2);
    assert_eq!(pair.cards[0].status, Role::Active);
    assert_eq!(
        pair.cards[0].tooltip,
        "Migration data for project Payroll is processed under this license key."
    );
    assert_eq!(pair.cards[0].type_label, "Online");
    assert_eq!(pair.cards[1].status, Role::Reserved);
    assert_eq!(pair.cards[1].expiration, "Reserved");
    assert_eq!(
        pair.cards[1].tooltip,
        "This is a reserved key. Migration will automatically continue with this key after the first key expires."
    );
}

#[test]
fn after_the_switch_one_card_remains_and_add_license_returns() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("P").unwrap();
    e.add_key("P", dv("A", 100)).unwrap();
    e.add_key("P", dv("R", 100)).unwrap();
    e.project("P").unwrap().consume(150).unwrap();
    let pair = &e.view("P").unwrap().pairs[0];
    assert_eq!(pair.cards.len(), 1);
    assert_eq!(pair.cards[0].key.id, "R");
    assert_eq!(pair.cards[0].used, 50);
    assert!(pair.add_license_available);
    let third = e.add_key("P", dv("R3", 100)).unwrap();
    assert_eq!(third.role, Role::Reserved);
    assert_eq!(
        statuses(&e, "P"),
        vec![
            ("A".into(), KeyStatus::Retired, 100),
            ("R".into(), KeyStatus::Active, 50),
            ("R3".into(), KeyStatus::Reserved, 0)
        ]
    );
}

#[test]
fn a_reserve_added_to_a_spent_active_key_takes_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("P").unwrap();
    e.add_key("P", dv("A", 100)).unwrap();
    let p = e.project("P").unwrap();
    p.consume(100).unwrap();
    assert!(matches!(
        p.consume(1),
        Err(Refusal::Exhausted { remaining: 0, .. })
    ));
    let added = e.add_key("P", dv("B", 100)).unwrap();
    assert_eq!(added.role, Role::Active);
    assert_eq!(added.switched_from.as_deref(), Some("A"));
    p.consume(60).unwrap();
    let u = p.usage();
    assert_eq!((u.active_used, u.active_limit, u.switches), (60, 100, 1));
}

#[test]
fn replacing_removes_a_reserve_that_ends_before_the_new_term() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let year = 365 * 24 * 3600;
    e.create_project("P").unwrap();
    e.add_key("P", expiring(dv("A", 100), i64::from(NOW) + year))
        .unwrap();
    e.add_key("P", expiring(dv("R", 100), i64::from(NOW) + 2 * year))
        .unwrap();
    e.project("P").unwrap().consume(30).unwrap();
    let sub = e.subscribe(16);
    let replaced = e
        .replace_active_key("P", expiring(dv("N", 500), i64::from(NOW) + 3 * year))
        .unwrap();
    assert_eq!(replaced.old, "A");
    assert_eq!(replaced.removed_reserve.as_deref(), Some("R"));
    let kinds: Vec<_> = std::iter::from_fn(|| sub.recv_timeout(std::time::Duration::from_secs(2)))
        .take(2)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::KeyReplaced {
                old: "A".into(),
                new: "N".into()
            },
            EventKind::ReserveRemoved {
                key: "R".into(),
                reason: RemovalReason::ExpiresBeforeNewTerm
            }
        ]
    );
    assert_eq!(
        statuses(&e, "P"),
        vec![
            ("A".into(), KeyStatus::Retired, 30),
            ("R".into(), KeyStatus::Removed, 0),
            ("N".into(), KeyStatus::Active, 0)
        ]
    );
}

#[test]
fn replacing_keeps_a_reserve_that_outlasts_the_new_term() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("P").unwrap();
    e.add_key("P", dv("A", 100)).unwrap();
    e.add_key("P", dv("R", 100)).unwrap();
    let replaced = e
        .replace_active_key("P", expiring(dv("N", 100), i64::from(NOW) + 1000))
        .unwrap();
    assert_eq!(replaced.removed_reserve, None);
    let u = e.usage("P").unwrap();
    assert_eq!(
        (u.active_limit, u.reserved_limit, u.has_reserved),
        (100, 100, true)
    );
}

#[test]
fn replacement_and_removal_errors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("P").unwrap();
    e.create_project("Empty").unwrap();
    e.add_key("P", dv("A", 100)).unwrap();
    e.add_key("P", dv("R", 100)).unwrap();
    let before = snapshot(&e, "P");
    let cases: Vec<(Result<(), Error>, &str)> = vec![
        (
            e.replace_active_key("Empty", dv("X", 1)).map(drop),
            "NoActiveKey",
        ),
        (
            e.replace_active_key("P", dv("A", 1)).map(drop),
            "DuplicateKey",
        ),
        (
            e.replace_active_key("P", expiring(dv("X", 1), 1)).map(drop),
            "KeyExpired",
        ),
        (
            e.replace_active_key(
                "P",
                Key {
                    scheme: Scheme::PerCore { max_cores: 4 },
                    ..dv("X", 1)
                },
            )
            .map(drop),
            "SchemeMismatch",
        ),
        (
            e.replace_active_key("Nope", dv("X", 1)).map(drop),
            "ProjectNotFound",
        ),
        (e.remove_reserve("P", "A"), "ReserveNotFound"),
        (e.remove_reserve("P", "nope"), "ReserveNotFound"),
        (e.create_project("P"), "ProjectExists"),
        (e.create_project(""), "InvalidArgument"),
        (e.create_project("a\0b"), "InvalidArgument"),
        (e.create_project(&"x".repeat(65)), "InvalidArgument"),
    ];
    for (result, expected) in cases {
        let got = format!("{:?}", result.unwrap_err());
        assert!(got.starts_with(expected), "expected {expected}, got {got}");
    }
    assert_eq!(snapshot(&e, "P"), before);
    e.remove_reserve("P", "R").unwrap();
    let u = e.usage("P").unwrap();
    assert!(!u.has_reserved);
    assert!(e.view("P").unwrap().pairs[0].add_license_available);
}

#[test]
fn seat_classes_get_their_own_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("SVM").unwrap();
    e.add_key("SVM", per_machine("S1", MachineOs::Server))
        .unwrap();
    e.add_key("SVM", per_machine("D1", MachineOs::Desktop))
        .unwrap();
    assert_eq!(
        e.add_reserve("SVM", per_machine("S2", MachineOs::Server))
            .unwrap()
            .role,
        Role::Reserved
    );
    assert_eq!(
        e.add_reserve("SVM", per_machine("D2", MachineOs::Desktop))
            .unwrap()
            .role,
        Role::Reserved
    );
    let view = e.view("SVM").unwrap();
    let classes: Vec<_> = view
        .pairs
        .iter()
        .map(|p| (p.class.as_str(), p.cards.len()))
        .collect();
    assert_eq!(
        classes,
        vec![("per_machine server", 2), ("per_machine desktop", 2)],
        "no empty data-volume block beside the seat keys"
    );
}

#[test]
fn capacity_is_enforced_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open_with(
        dir.path(),
        Options {
            capacity: 2,
            ..common::options(dir.path())
        },
    )
    .unwrap();
    e.create_project("a").unwrap();
    e.create_project("b").unwrap();
    let err = e.create_project("c").unwrap_err();
    assert!(matches!(err, Error::Capacity { capacity: 2 }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("the state file holds its maximum of 2 records"));
    assert_eq!(e.projects().unwrap(), vec!["a", "b"]);
}

/// A data-volume key's account takes a record too: with the table full, adding a new key is
/// refused with the same error and changes nothing.
#[test]
fn a_key_account_needs_a_record_too() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open_with(
        dir.path(),
        Options {
            capacity: 2,
            ..common::options(dir.path())
        },
    )
    .unwrap();
    e.create_project("a").unwrap();
    e.add_key("a", dv("A", 100)).unwrap();
    let before = e.keys("a").unwrap();
    let err = e.add_key("a", dv("B", 100)).unwrap_err();
    assert!(matches!(err, Error::Capacity { capacity: 2 }), "{err:?}");
    assert_eq!(e.keys("a").unwrap(), before);
}

/// Rule R19: after a replacement the pair still satisfies rule R6 in docs/rules.md. A reserve that
/// expires before the new key's term ends goes (§2.3) whatever else differs; a reserve that
/// stays must match the new Active key's delivery, edition and class, and sit under no
/// subscription key, else the replacement is refused with that rule's error and nothing
/// changes.
#[test]
fn replacing_keeps_the_pair_within_the_reserve_rules() {
    enum Want {
        /// Replaced; the reserve stays.
        Kept,
        /// Replaced; the reserve is removed with `ExpiresBeforeNewTerm`.
        Removed,
        /// Refused with exactly this error (Debug form).
        Refused(&'static str),
    }
    let year = 365 * 24 * 3600;
    let term = |years: i64| i64::from(NOW) + years * year;
    let new = |delivery, edition, kind| Key {
        delivery,
        edition,
        kind,
        ..expiring(dv("N", 500), term(3))
    };
    use Delivery::{Offline, Online};
    use Edition::{Enterprise, Standard};
    use KeyKind::{Commercial, Subscription, Trial};
    // (case, reserve expiry in years, or None for never, new key, outcome)
    let cases: Vec<(&str, Option<i64>, Key, Want)> = vec![
        (
            "same delivery, edition and class",
            None,
            new(Online, Standard, Commercial),
            Want::Kept,
        ),
        (
            "a trial key: the kind is no reserve rule",
            None,
            new(Online, Standard, Trial),
            Want::Kept,
        ),
        (
            "offline new key, online reserve",
            None,
            new(Offline, Standard, Commercial),
            Want::Refused(
                r#"TypeMismatch { reserve: "R", reserve_delivery: "online", active: "N", active_delivery: "offline" }"#,
            ),
        ),
        (
            "enterprise new key, standard reserve",
            None,
            new(Online, Enterprise, Commercial),
            Want::Refused(
                r#"EditionMismatch { reserve: "R", reserve_edition: "standard", active: "N", active_edition: "enterprise" }"#,
            ),
        ),
        (
            "offline enterprise new key: delivery is checked first",
            None,
            new(Offline, Enterprise, Commercial),
            Want::Refused(
                r#"TypeMismatch { reserve: "R", reserve_delivery: "online", active: "N", active_delivery: "offline" }"#,
            ),
        ),
        (
            "subscription new key over a reserve",
            None,
            new(Online, Standard, Subscription),
            Want::Refused(r#"Subscription { key: "N" }"#),
        ),
        (
            "new key of another class",
            None,
            Key {
                scheme: Scheme::PerCore { max_cores: 8 },
                ..new(Online, Standard, Commercial)
            },
            Want::Refused(
                r#"SchemeMismatch { reserve: "N", reserve_class: "per_core", active: "A", active_class: "data_volume" }"#,
            ),
        ),
        (
            "reserve outlasting the new term",
            Some(4),
            new(Online, Standard, Commercial),
            Want::Kept,
        ),
        (
            "reserve expiring first",
            Some(2),
            new(Online, Standard, Commercial),
            Want::Removed,
        ),
        (
            "reserve expiring first, offline new key",
            Some(2),
            new(Offline, Standard, Commercial),
            Want::Removed,
        ),
        (
            "reserve expiring first, enterprise new key",
            Some(2),
            new(Online, Enterprise, Commercial),
            Want::Removed,
        ),
        (
            "reserve expiring first, subscription new key",
            Some(2),
            new(Online, Standard, Subscription),
            Want::Removed,
        ),
        (
            "reserve outlasting the new term, offline new key",
            Some(4),
            new(Offline, Standard, Commercial),
            Want::Refused(
                r#"TypeMismatch { reserve: "R", reserve_delivery: "online", active: "N", active_delivery: "offline" }"#,
            ),
        ),
    ];
    for (name, reserve_years, key, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        e.create_project("P").unwrap();
        e.add_key("P", expiring(dv("A", 100), term(1))).unwrap();
        let reserve = dv("R", 100);
        let reserve = match reserve_years {
            Some(years) => expiring(reserve, term(years)),
            None => reserve,
        };
        e.add_key("P", reserve).unwrap();
        e.project("P").unwrap().consume(30).unwrap();
        let before = snapshot(&e, "P");
        let seen = e.events_after(0, 10_000).unwrap().len();
        let result = e.replace_active_key("P", key);
        let (removed, reserve_status) = match want {
            Want::Refused(expected) => {
                assert_eq!(format!("{:?}", result.unwrap_err()), expected, "{name}");
                assert_eq!(
                    snapshot(&e, "P"),
                    before,
                    "{name}: the refusal changed state"
                );
                continue;
            }
            Want::Kept => (None, KeyStatus::Reserved),
            Want::Removed => (Some("R"), KeyStatus::Removed),
        };
        let replaced = result.unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert_eq!(
            (replaced.old.as_str(), replaced.removed_reserve.as_deref()),
            ("A", removed),
            "{name}"
        );
        let mut expected_events = vec![EventKind::KeyReplaced {
            old: "A".into(),
            new: "N".into(),
        }];
        if removed.is_some() {
            expected_events.push(EventKind::ReserveRemoved {
                key: "R".into(),
                reason: RemovalReason::ExpiresBeforeNewTerm,
            });
        }
        let events: Vec<_> = e.events_after(0, 10_000).unwrap()[seen..]
            .iter()
            .map(|event| event.kind.clone())
            .collect();
        assert_eq!(events, expected_events, "{name}");
        assert_eq!(
            statuses(&e, "P"),
            vec![
                ("A".into(), KeyStatus::Retired, 30),
                ("R".into(), reserve_status, 0),
                ("N".into(), KeyStatus::Active, 0)
            ],
            "{name}"
        );
    }
}

/// Rule R28 (docs/rules.md), through the engine: the cards of seat and instance keys carry texts
/// that fit them, a subscription key is offered no Add License, and a project shows no empty
/// data-volume block once it holds keys of another class.
#[test]
fn views_fit_the_keys_they_show() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("Fresh").unwrap();
    let fresh = e.view("Fresh").unwrap();
    let shown: Vec<_> = fresh
        .pairs
        .iter()
        .map(|p| (p.class.as_str(), p.cards.len(), p.add_license_available))
        .collect();
    assert_eq!(
        shown,
        vec![("data_volume", 0, false)],
        "where the first key goes"
    );

    e.create_project("SVM").unwrap();
    e.add_key("SVM", per_machine("S1", MachineOs::Server))
        .unwrap();
    let added = e
        .add_reserve("SVM", per_machine("S2", MachineOs::Server))
        .unwrap();
    assert_eq!(
        added.message.as_deref(),
        Some("You have added an additional license key for project SVM. After the first key expires, protection of server machines will automatically continue with the reserved key.")
    );
    e.add_key(
        "SVM",
        Key {
            scheme: Scheme::PerCore { max_cores: 8 },
            ..dv("C1", 1)
        },
    )
    .unwrap();
    let shown: Vec<_> = e
        .view("SVM")
        .unwrap()
        .pairs
        .iter()
        .map(|p| {
            (
                p.class.clone(),
                p.cards
                    .iter()
                    .map(|c| c.tooltip.clone())
                    .collect::<Vec<_>>(),
                p.add_license_available,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "per_machine server".to_owned(),
                vec![
                    "Protected server machines of project SVM are counted under this license key.".to_owned(),
                    "This is a reserved key. Protection of server machines will automatically continue with this key after the first key expires.".to_owned(),
                ],
                false
            ),
            (
                "per_core".to_owned(),
                vec!["Processor cores of project SVM are counted under this license key.".to_owned()],
                true
            ),
        ]
    );

    e.create_project("Sub").unwrap();
    e.add_key(
        "Sub",
        Key {
            kind: KeyKind::Subscription,
            ..dv("SUB", 100)
        },
    )
    .unwrap();
    let pair = &e.view("Sub").unwrap().pairs[0];
    assert_eq!(pair.cards.len(), 1);
    assert!(
        !pair.add_license_available,
        "a subscription key takes no reserve, so Add License is not offered"
    );
}

/// Rule R28 (docs/rules.md): an expired key's refusal says what to do next ("please
/// request a new license or contact us").
#[test]
fn expired_refusals_say_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = Engine::open_with(
        dir.path(),
        Options {
            clock: clock.clone(),
            ..common::options(dir.path())
        },
    )
    .unwrap();
    e.create_project("P").unwrap();
    e.add_key("P", expiring(dv("A", 100), i64::from(NOW) + 10))
        .unwrap();
    let p = e.project("P").unwrap();
    clock.set(NOW + 20);
    assert_eq!(
        p.consume(1).unwrap_err().to_string(),
        "license expired: the active key has expired and no unexpired reserve key can take over; request a new license key or contact your vendor"
    );
    assert_eq!(
        e.add_key("P", expiring(dv("B", 100), 978_307_200))
            .unwrap_err()
            .to_string(),
        "key \"B\" expired at 2001-01-01T00:00:00Z: request a new license key or contact your vendor"
    );
}

#[test]
fn lookalike_names_with_format_characters_are_refused() {
    // Regression: "base\u{200b}" looked like "base", and U+202E reversed what followed.
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.create_project("base").unwrap();
    e.add_key("base", dv("A", 10)).unwrap();
    let before = (
        e.projects().unwrap(),
        snapshot(&e, "base"),
        e.groups().unwrap(),
    );
    let format = |field: &str, value: &str, code: &str| {
        format!("invalid {field}: {value:?} contains the invisible format character U+{code}, which makes a name look like another")
    };
    let composed = |field: &str, value: &str| {
        format!("invalid {field}: {value:?} is not in Unicode normalization form C: write it composed, as \"caf\u{e9}\"")
    };
    let cases: Vec<(Result<(), Error>, String)> = vec![
        (
            e.create_project("base\u{200b}"),
            format("project name", "base\u{200b}", "200B"),
        ),
        (
            e.create_project("\u{202e}esab"),
            format("project name", "\u{202e}esab", "202E"),
        ),
        (
            e.create_project("cafe\u{301}"),
            composed("project name", "cafe\u{301}"),
        ),
        (
            e.add_key("base", dv("A\u{feff}", 10)).map(drop),
            format("key id", "A\u{feff}", "FEFF"),
        ),
        (
            e.add_key(
                "base",
                Key {
                    company: Some("Ac\u{2066}me".into()),
                    ..dv("B", 10)
                },
            )
            .map(drop),
            format("company", "Ac\u{2066}me", "2066"),
        ),
        (
            e.add_instance("web\u{200d}", tollgate_core::InstanceOs::Linux, None),
            format("instance name", "web\u{200d}", "200D"),
        ),
        (
            e.add_to_group("g\u{ad}", &["base"]),
            format("group name", "g\u{ad}", "00AD"),
        ),
    ];
    for (result, message) in cases {
        match result {
            Err(error @ Error::InvalidArgument { .. }) => assert_eq!(error.to_string(), message),
            other => panic!("{message}: {other:?}"),
        }
    }
    assert_eq!(
        (
            e.projects().unwrap(),
            snapshot(&e, "base"),
            e.groups().unwrap()
        ),
        before
    );
    // Composed, visible non-ASCII names are fine.
    e.create_project("caf\u{e9} \u{65e5}\u{672c}").unwrap();
}
