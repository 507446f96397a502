//! Pools and per-instance licensing (rules R22–R26 in docs/rules.md) through the engine: every rule
//! with its exact error, listing filters, the shortfall, persistence, and assignment under threads
//! and processes.

mod common;

use std::collections::HashSet;

use common::{child_env, child_result, spawn_child};
use time::OffsetDateTime;
use tollgate_core::{
    Clock, Engine, Error, EventKind, InstanceOs, Key, KeyOrLicense, LicenseFilter, LicenseType,
    NeedReason, Options, PaymentMode, PoolKind, Purchase, Refusal, Scheme, NOT_PURCHASED,
};

const NOW: u32 = 1_800_000_000;
const DAY: u32 = 86_400;

fn engine(dir: &std::path::Path, clock: &Clock) -> Engine {
    Engine::open_with(
        dir,
        Options {
            clock: clock.clone(),
            ..common::options(dir)
        },
    )
    .unwrap()
}

fn at(unix: u32) -> Option<OffsetDateTime> {
    Some(OffsetDateTime::from_unix_timestamp(i64::from(unix)).unwrap())
}

fn buy(license_type: LicenseType, quantity: u32) -> Purchase {
    Purchase::new(license_type, quantity, PaymentMode::Annual)
}

fn for_company(purchase: Purchase, company: &str) -> Purchase {
    Purchase {
        company: Some(company.into()),
        ..purchase
    }
}

fn count(e: &Engine, filter: LicenseFilter) -> usize {
    e.list_licenses(&filter)
        .unwrap()
        .iter()
        .map(|t| t.count)
        .sum()
}

#[test]
fn the_payment_mode_is_fixed_by_the_first_purchase() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), &Clock::manual(NOW));
    assert_eq!(e.payment_mode().unwrap(), None);
    e.buy_licenses(&Purchase::new(LicenseType::Server, 2, PaymentMode::Monthly))
        .unwrap();
    let refused = e
        .buy_licenses(&Purchase::new(LicenseType::Desktop, 1, PaymentMode::Annual))
        .unwrap_err();
    assert!(matches!(
        refused,
        Error::PaymentModeMismatch {
            chosen: "monthly",
            requested: "annual"
        }
    ));
    assert_eq!(
        refused.to_string(),
        "payment mode annual refused: the payment mode was fixed to monthly at the first purchase"
    );
    // Nothing was bought by the refused purchase.
    assert_eq!(count(&e, LicenseFilter::default()), 2);
    e.buy_licenses(&Purchase::new(
        LicenseType::Desktop,
        1,
        PaymentMode::Monthly,
    ))
    .unwrap();
    assert_eq!(count(&e, LicenseFilter::default()), 3);
    assert_eq!(e.payment_mode().unwrap(), Some(PaymentMode::Monthly));
}

#[test]
fn bad_purchases_and_instances_get_their_exact_error_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), &Clock::manual(NOW));
    let table: Vec<(Purchase, &str)> = vec![
        (
            buy(LicenseType::Server, 0),
            "invalid quantity: 0 is outside 1..=100000",
        ),
        (
            Purchase {
                expires_at: at(NOW),
                ..buy(LicenseType::Server, 1)
            },
            "invalid expires_at: 2027-01-15T08:00:00Z is already past",
        ),
        (
            for_company(buy(LicenseType::Server, 1), ""),
            "invalid company name: must not be empty",
        ),
    ];
    for (purchase, message) in table {
        let error = e.buy_licenses(&purchase).unwrap_err().to_string();
        assert!(error.starts_with(message), "{error}");
    }
    assert_eq!(e.payment_mode().unwrap(), None, "no purchase was recorded");
    e.add_instance("web", InstanceOs::Linux, None).unwrap();
    e.create_project("plain").unwrap();
    let cases: Vec<(Result<(), Error>, &str)> = vec![
        (
            e.add_instance("web", InstanceOs::Linux, None),
            "project \"web\" already exists",
        ),
        (
            e.assign("nope", None).map(drop),
            "instance \"nope\" does not exist",
        ),
        (
            e.assign("plain", None).map(drop),
            "instance \"plain\" does not exist",
        ),
        (e.unassign("web").map(drop), "instance \"web\" holds no pool license"),
        (
            e.assign("web", None).map(drop),
            "no license available for instance \"web\": no valid, unassigned desktop or server license in the global pool",
        ),
        (
            e.assign("web", Some(LicenseType::Workstation)).map(drop),
            "a workstation license cannot license a linux instance: macOS and Linux need a desktop or server license",
        ),
        (
            e.check_instance("web"),
            "no active license key: add a key before metering or adding a reserve",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
}

#[test]
fn assignment_takes_the_company_pool_first_then_the_global_pool_and_fits_the_os() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.buy_licenses(&buy(LicenseType::Workstation, 2)).unwrap();
    e.buy_licenses(&buy(LicenseType::Server, 1)).unwrap();
    e.buy_licenses(&for_company(buy(LicenseType::Desktop, 1), "Acme"))
        .unwrap();
    e.buy_licenses(&for_company(buy(LicenseType::Desktop, 1), "Globex"))
        .unwrap();
    e.add_instance("acme-mac", InstanceOs::Macos, Some("Acme"))
        .unwrap();
    e.add_instance("acme-linux", InstanceOs::Linux, Some("Acme"))
        .unwrap();
    e.add_instance("acme-linux-2", InstanceOs::Linux, Some("Acme"))
        .unwrap();
    e.add_instance("win", InstanceOs::Windows, None).unwrap();

    // The company's own desktop license first.
    let a = e.assign("acme-mac", None).unwrap();
    assert_eq!(
        (a.license.as_str(), a.license_type, a.from_company_pool),
        ("desktop-3-1", LicenseType::Desktop, true)
    );
    // The company pool is empty now: the global pool's server license (workstations do not fit
    // Linux, and Globex's desktop license is not Acme's).
    let a = e.assign("acme-linux", None).unwrap();
    assert_eq!(
        (a.license.as_str(), a.from_company_pool),
        ("server-2-1", false)
    );
    let refused = e.assign("acme-linux-2", None).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "no license available for instance \"acme-linux-2\": no valid, unassigned desktop or server license in company \"Acme\"'s pool or the global pool"
    );
    // Windows takes the narrowest type that fits.
    let a = e.assign("win", None).unwrap();
    assert_eq!(a.license_type, LicenseType::Workstation);
    assert!(matches!(
        e.assign("win", None),
        Err(Error::AlreadyAssigned { ref license, .. }) if license == "workstation-1-1"
    ));
    for name in ["acme-mac", "acme-linux", "win"] {
        e.check_instance(name).unwrap();
    }
    // Unassigning returns the license: the refused instance can now have it.
    assert_eq!(e.unassign("acme-linux").unwrap(), "server-2-1");
    assert!(matches!(
        e.check_instance("acme-linux"),
        Err(Error::NoActiveKey)
    ));
    let a = e.assign("acme-linux-2", None).unwrap();
    assert_eq!(a.license, "server-2-1");
    // Each assignment installed a key of its own.
    let keys: Vec<String> = e
        .keys("acme-linux-2")
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert_eq!(keys, ["server-2-1#4"]);
    let instances = e.instances().unwrap();
    let licensed: Vec<(&str, Option<&str>)> = instances
        .iter()
        .map(|i| (i.name.as_str(), i.license.as_deref()))
        .collect();
    assert_eq!(
        licensed,
        [
            ("acme-linux", None),
            ("acme-linux-2", Some("server-2-1")),
            ("acme-mac", Some("desktop-3-1")),
            ("win", Some("workstation-1-1")),
        ]
    );
}

#[test]
fn an_expired_license_refuses_the_instance_and_assigning_again_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.buy_licenses(&Purchase {
        expires_at: at(NOW + 10 * DAY),
        kind: PoolKind::Trial,
        ..buy(LicenseType::Server, 1)
    })
    .unwrap();
    e.buy_licenses(&Purchase {
        expires_at: at(NOW + 400 * DAY),
        ..buy(LicenseType::Server, 1)
    })
    .unwrap();
    e.add_instance("db", InstanceOs::Linux, None).unwrap();
    // Commercial before trial.
    assert_eq!(e.assign("db", None).unwrap().license, "server-2-1");
    e.unassign("db").unwrap();
    e.buy_licenses(&Purchase {
        expires_at: at(NOW + 5 * DAY),
        ..buy(LicenseType::Server, 1)
    })
    .unwrap();
    // Among commercial licenses, the soonest expiry first.
    assert_eq!(e.assign("db", None).unwrap().license, "server-3-1");
    let gate = e.instance("db").unwrap();
    gate.check().unwrap();
    clock.set(NOW + 5 * DAY);
    assert!(matches!(gate.check(), Err(Refusal::Expired)));
    let again = e.assign("db", None).unwrap();
    assert_eq!(
        (again.license.as_str(), again.replaced_expired.as_deref()),
        ("server-2-1", Some("server-3-1"))
    );
    gate.check().unwrap();
    // An expired license is never handed out again.
    e.add_instance("db2", InstanceOs::Linux, None).unwrap();
    assert_eq!(e.assign("db2", None).unwrap().license, "server-1-1");
    clock.set(NOW + 10 * DAY);
    assert!(matches!(e.check_instance("db2"), Err(Error::Expired)));
    e.add_instance("db3", InstanceOs::Linux, None).unwrap();
    assert!(matches!(
        e.assign("db3", None),
        Err(Error::NoLicenseAvailable { .. })
    ));
}

#[test]
fn listing_filters_group_by_type_with_counts_and_say_when_a_type_was_never_bought() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.buy_licenses(&Purchase {
        auto_renew: true,
        premium_support: true,
        ..for_company(buy(LicenseType::Server, 3), "Acme")
    })
    .unwrap();
    e.buy_licenses(&Purchase {
        kind: PoolKind::Trial,
        expires_at: at(NOW + DAY),
        onboarding: true,
        ..buy(LicenseType::Server, 2)
    })
    .unwrap();
    e.add_instance("acme-1", InstanceOs::Windows, Some("Acme"))
        .unwrap();
    e.add_instance("trial-box", InstanceOs::Windows, None)
        .unwrap();
    e.assign("acme-1", None).unwrap();
    e.assign("trial-box", None).unwrap();
    clock.set(NOW + DAY);

    let f = LicenseFilter::default;
    let table: Vec<(&str, LicenseFilter, usize)> = vec![
        ("all", f(), 5),
        (
            "company",
            LicenseFilter {
                company: Some("Acme".into()),
                ..f()
            },
            3,
        ),
        (
            "trial",
            LicenseFilter {
                kind: Some(PoolKind::Trial),
                ..f()
            },
            2,
        ),
        (
            "commercial",
            LicenseFilter {
                kind: Some(PoolKind::Commercial),
                ..f()
            },
            3,
        ),
        (
            "valid",
            LicenseFilter {
                valid: Some(true),
                ..f()
            },
            3,
        ),
        (
            "expired",
            LicenseFilter {
                valid: Some(false),
                ..f()
            },
            2,
        ),
        // Used/unused applies to commercial licenses only: the assigned trial is not "used".
        (
            "used",
            LicenseFilter {
                used: Some(true),
                ..f()
            },
            1,
        ),
        (
            "unused",
            LicenseFilter {
                used: Some(false),
                ..f()
            },
            2,
        ),
        (
            "auto-renew only",
            LicenseFilter {
                auto_renew_only: true,
                ..f()
            },
            3,
        ),
        (
            "search instance",
            LicenseFilter {
                search: Some("TRIAL-B".into()),
                ..f()
            },
            1,
        ),
        (
            "search license id",
            LicenseFilter {
                search: Some("server-2-".into()),
                ..f()
            },
            2,
        ),
        (
            "combined",
            LicenseFilter {
                company: Some("Acme".into()),
                used: Some(false),
                valid: Some(true),
                ..f()
            },
            2,
        ),
    ];
    for (case, filter, expected) in table {
        assert_eq!(count(&e, filter), expected, "{case}");
    }
    let listing = e.list_licenses(&LicenseFilter::default()).unwrap();
    let types: Vec<(LicenseType, usize, usize, Option<&str>)> = listing
        .iter()
        .map(|t| (t.license_type, t.count, t.used, t.message.as_deref()))
        .collect();
    assert_eq!(
        types,
        [
            (LicenseType::Server, 5, 2, None),
            (LicenseType::Desktop, 0, 0, Some(NOT_PURCHASED)),
            (LicenseType::Workstation, 0, 0, Some(NOT_PURCHASED)),
        ]
    );
    assert_eq!(
        NOT_PURCHASED,
        "You have not purchased licenses of this type"
    );
    let acme = &listing[0].licenses[0];
    assert!(acme.premium_support && !acme.onboarding && acme.auto_renew);
    let trial = &listing[0].licenses[3];
    assert!(trial.onboarding && !trial.premium_support && !trial.valid);
    // A filter that matches nothing of a purchased type is a zero count, not the message.
    let none = e
        .list_licenses(&LicenseFilter {
            license_type: Some(LicenseType::Server),
            search: Some("zzz".into()),
            ..f()
        })
        .unwrap();
    assert_eq!(
        (none.len(), none[0].count, none[0].message.clone()),
        (1, 0, None)
    );
}

#[test]
fn the_shortfall_counts_unlicensed_and_soon_expiring_instances_less_what_the_pools_cover() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    // Expiring in 10 days, no auto-renew: counted within 30 days.
    e.buy_licenses(&Purchase {
        expires_at: at(NOW + 10 * DAY),
        ..buy(LicenseType::Server, 1)
    })
    .unwrap();
    // Expiring in 10 days with auto-renew: not counted.
    e.buy_licenses(&Purchase {
        expires_at: at(NOW + 10 * DAY),
        auto_renew: true,
        ..buy(LicenseType::Desktop, 1)
    })
    .unwrap();
    // One spare workstation valid beyond the horizon covers one Windows instance.
    e.buy_licenses(&buy(LicenseType::Workstation, 1)).unwrap();
    for (name, os) in [
        ("srv", InstanceOs::Linux),
        ("desk", InstanceOs::Macos),
        ("w1", InstanceOs::Windows),
        ("w2", InstanceOs::Windows),
        ("w3", InstanceOs::Windows),
        ("mac", InstanceOs::Macos),
    ] {
        e.add_instance(name, os, None).unwrap();
    }
    e.assign("srv", Some(LicenseType::Server)).unwrap();
    e.assign("desk", Some(LicenseType::Desktop)).unwrap();
    let s = e.shortfall(30).unwrap();
    let types: Vec<(LicenseType, usize, usize, usize)> = s
        .types
        .iter()
        .map(|t| (t.license_type, t.needed, t.covered, t.to_buy))
        .collect();
    assert_eq!(
        types,
        [
            (LicenseType::Server, 1, 0, 1),
            (LicenseType::Desktop, 1, 0, 1),
            (LicenseType::Workstation, 3, 1, 2),
        ]
    );
    let reasons: Vec<(&str, NeedReason)> = s
        .needs
        .iter()
        .map(|n| (n.instance.as_str(), n.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("mac", NeedReason::Unlicensed),
            ("srv", NeedReason::ExpiresSoon),
            ("w1", NeedReason::Unlicensed),
            ("w2", NeedReason::Unlicensed),
            ("w3", NeedReason::Unlicensed),
        ]
    );
    // With a horizon shorter than the expiry only the unlicensed count.
    let short = e.shortfall(5).unwrap();
    assert_eq!(short.needs.len(), 4);
}

#[test]
fn pools_instances_and_assignments_persist_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    {
        let e = engine(dir.path(), &clock);
        e.buy_licenses(&for_company(buy(LicenseType::Desktop, 2), "Acme"))
            .unwrap();
        e.add_instance("a", InstanceOs::Macos, Some("Acme"))
            .unwrap();
        e.assign("a", None).unwrap();
    }
    let e = engine(dir.path(), &clock);
    e.check_instance("a").unwrap();
    assert_eq!(e.companies().unwrap(), ["Acme"]);
    assert_eq!(
        e.instances().unwrap()[0].license.as_deref(),
        Some("desktop-1-1")
    );
    let kinds: Vec<String> = e
        .events_after(0, 100)
        .unwrap()
        .into_iter()
        .map(|ev| {
            serde_json::to_value(&ev.kind).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for wanted in [
        "licenses_purchased",
        "instance_added",
        "key_added",
        "license_assigned",
    ] {
        assert!(kinds.iter().any(|k| k == wanted), "{wanted} in {kinds:?}");
    }
    assert!(e
        .events_after(0, 100)
        .unwrap()
        .iter()
        .any(|ev| matches!(&ev.kind, EventKind::LicenseAssigned { license, .. } if license == "desktop-1-1")));
}

#[test]
fn threads_assigning_from_one_pool_never_hand_a_license_to_two_instances() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), &Clock::manual(NOW));
    e.buy_licenses(&buy(LicenseType::Server, 50)).unwrap();
    for t in 0..8 {
        for i in 0..10 {
            e.add_instance(&format!("i-{t}-{i}"), InstanceOs::Linux, None)
                .unwrap();
        }
    }
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..10 {
                    match e.assign(&format!("i-{t}-{i}"), None) {
                        Ok(a) => got.push(a.license),
                        Err(Error::NoLicenseAvailable { .. }) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
                got
            })
        })
        .collect();
    let licenses: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let distinct: HashSet<&String> = licenses.iter().collect();
    assert_eq!(licenses.len(), 50);
    assert_eq!(distinct.len(), 50);
    let licensed = e
        .instances()
        .unwrap()
        .into_iter()
        .filter(|i| {
            let has = i.license.is_some();
            assert_eq!(e.check_instance(&i.name).is_ok(), has, "{}", i.name);
            has
        })
        .count();
    assert_eq!(licensed, 50);
}

#[test]
#[ignore = "child process entry point; run by processes_assigning_from_one_pool_never_share_a_license"]
fn assign_child() {
    let Some(dir) = child_env("POOL_DIR") else {
        return;
    };
    let me = child_env("POOL_CHILD").unwrap();
    let e = common::open(&dir).unwrap();
    let mut got = 0;
    for i in 0..20 {
        match e.assign(&format!("p{me}-{i}"), None) {
            Ok(_) => got += 1,
            Err(Error::NoLicenseAvailable { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    println!("RESULT {got}");
}

#[test]
fn processes_assigning_from_one_pool_never_share_a_license() {
    let dir = tempfile::tempdir().unwrap();
    let e = common::open(dir.path()).unwrap();
    e.buy_licenses(&buy(LicenseType::Desktop, 40)).unwrap();
    for c in 0..3 {
        for i in 0..20 {
            e.add_instance(&format!("p{c}-{i}"), InstanceOs::Windows, None)
                .unwrap();
        }
    }
    let path = dir.path().to_str().unwrap().to_owned();
    let children: Vec<_> = (0..3)
        .map(|c| {
            spawn_child(
                "assign_child",
                &[("POOL_DIR", path.clone()), ("POOL_CHILD", c.to_string())],
            )
        })
        .collect();
    let assigned: u64 = children.into_iter().map(child_result).sum();
    assert_eq!(assigned, 40);
    let listing = e.list_licenses(&LicenseFilter::default()).unwrap();
    let holders: Vec<&str> = listing[1]
        .licenses
        .iter()
        .filter_map(|l| l.assigned_to.as_deref())
        .collect();
    let distinct: HashSet<&&str> = holders.iter().collect();
    assert_eq!((holders.len(), distinct.len()), (40, 40));
}

/// Rule R26 in docs/rules.md (the filters): the Company filter "displays the licenses used for
/// selected company", so it shows the company's pool and global-pool licenses assigned to its
/// instances; "You have not purchased licenses of this type" is said for a type never bought
/// as the trial or commercial kind the filter asks for.
#[test]
fn the_company_filter_shows_licenses_used_for_the_company_and_not_purchased_follows_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), &Clock::manual(NOW));
    e.buy_licenses(&for_company(buy(LicenseType::Server, 1), "Acme"))
        .unwrap();
    e.buy_licenses(&buy(LicenseType::Desktop, 2)).unwrap();
    e.buy_licenses(&Purchase {
        kind: PoolKind::Trial,
        ..buy(LicenseType::Workstation, 1)
    })
    .unwrap();
    // Acme's Linux box asks for a desktop license: Acme's pool holds only a server one, so it
    // comes from the global pool. Globex's box takes the other global desktop license.
    e.add_instance("acme-linux", InstanceOs::Linux, Some("Acme"))
        .unwrap();
    e.add_instance("globex-linux", InstanceOs::Linux, Some("Globex"))
        .unwrap();
    assert!(
        !e.assign("acme-linux", Some(LicenseType::Desktop))
            .unwrap()
            .from_company_pool
    );
    e.assign("globex-linux", None).unwrap();

    // Per type: (license, instance) listed, and the status message.
    type Listing = Vec<(LicenseType, Vec<(String, Option<String>)>, Option<String>)>;
    let listed = |filter: LicenseFilter| -> Listing {
        e.list_licenses(&filter)
            .unwrap()
            .into_iter()
            .map(|t| {
                (
                    t.license_type,
                    t.licenses
                        .into_iter()
                        .map(|l| (l.id, l.assigned_to))
                        .collect(),
                    t.message,
                )
            })
            .collect()
    };
    let not_purchased = Some(NOT_PURCHASED.to_owned());
    let f = LicenseFilter::default;
    let table: Vec<(&str, LicenseFilter, Listing)> = vec![
        (
            "company Acme: its pool and the global license its instance uses",
            LicenseFilter {
                company: Some("Acme".into()),
                ..f()
            },
            vec![
                (LicenseType::Server, vec![("server-1-1".into(), None)], None),
                (
                    LicenseType::Desktop,
                    vec![("desktop-2-1".into(), Some("acme-linux".into()))],
                    None,
                ),
                (LicenseType::Workstation, vec![], None),
            ],
        ),
        (
            "company Globex: no pool of its own, the license its instance uses",
            LicenseFilter {
                company: Some("Globex".into()),
                ..f()
            },
            vec![
                (LicenseType::Server, vec![], None),
                (
                    LicenseType::Desktop,
                    vec![("desktop-2-2".into(), Some("globex-linux".into()))],
                    None,
                ),
                (LicenseType::Workstation, vec![], None),
            ],
        ),
        (
            "trial: only the workstation type was ever bought as a trial",
            LicenseFilter {
                kind: Some(PoolKind::Trial),
                ..f()
            },
            vec![
                (LicenseType::Server, vec![], not_purchased.clone()),
                (LicenseType::Desktop, vec![], not_purchased.clone()),
                (
                    LicenseType::Workstation,
                    vec![("workstation-3-1".into(), None)],
                    None,
                ),
            ],
        ),
        (
            "commercial: workstation was bought as a trial only",
            LicenseFilter {
                kind: Some(PoolKind::Commercial),
                license_type: Some(LicenseType::Workstation),
                ..f()
            },
            vec![(LicenseType::Workstation, vec![], not_purchased.clone())],
        ),
    ];
    for (case, filter, expected) in table {
        assert_eq!(listed(filter), expected, "{case}");
    }
}

/// What `check_instance`, `instances` and `shortfall` say of one instance: whether its check
/// passes, the license the list shows, and whether the shortfall counts it as unlicensed.
fn verdicts(e: &Engine, name: &str) -> (bool, Option<String>, bool) {
    let listed = e.instances().unwrap().into_iter().find(|i| i.name == name);
    let unlicensed = e
        .shortfall(0)
        .unwrap()
        .needs
        .iter()
        .any(|n| n.instance == name && n.reason == NeedReason::Unlicensed);
    (
        e.check_instance(name).is_ok(),
        listed.unwrap().license,
        unlicensed,
    )
}

#[test]
fn home_made_per_instance_key_cannot_license_an_instance() {
    // Regression: `instance add ghost; key add ghost --id HOMEMADE --per-instance` made
    // `instance check ghost` pass while the list showed no license and the shortfall counted
    // ghost as unlicensed.
    const REASON: &str = "a per-instance key comes from a pool assignment (`tollgate instance assign`) or as a license signed by a trusted vendor key, and this state trusts none";
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), &Clock::manual(NOW));
    e.add_instance("ghost", InstanceOs::Linux, None).unwrap();
    let events = e.events_after(0, 1000).unwrap().len();
    let home_made = Key {
        scheme: Scheme::PerInstance,
        ..Key::data_volume("HOMEMADE", 1)
    };
    // Plain, or signed by a key of one's own: development mode trusts no signer.
    let own = tollgate_license::VendorSecret::generate().unwrap();
    for document in [
        KeyOrLicense::from(home_made.clone()),
        KeyOrLicense::from(tollgate_license::sign(&own, &home_made)),
    ] {
        match e.add_key("ghost", document) {
            Err(Error::BadSignature { key, reason }) => {
                assert_eq!(
                    (key.as_str(), reason.to_string().as_str()),
                    ("HOMEMADE", REASON)
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(e.keys("ghost").unwrap().is_empty());
    assert_eq!(e.events_after(0, 1000).unwrap().len(), events);
    assert!(matches!(e.check_instance("ghost"), Err(Error::NoActiveKey)));
    assert_eq!(verdicts(&e, "ghost"), (false, None, true));
    // A pool assignment licenses it, and all three say so.
    e.buy_licenses(&buy(LicenseType::Server, 1)).unwrap();
    e.assign("ghost", None).unwrap();
    assert_eq!(
        verdicts(&e, "ghost"),
        (true, Some("server-1-1".to_owned()), false)
    );
}

#[test]
fn a_vendor_signed_per_instance_key_licenses_an_instance_in_check_list_and_shortfall() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = tollgate_license::VendorSecret::generate().unwrap();
    let e = Engine::open_with(
        dir.path(),
        Options {
            clock: Clock::manual(NOW),
            trusted_keys: vec![vendor.public()],
            ..common::options(dir.path())
        },
    )
    .unwrap();
    e.add_instance("web", InstanceOs::Windows, None).unwrap();
    let key = Key {
        scheme: Scheme::PerInstance,
        expires_at: at(NOW + 10 * DAY),
        ..Key::data_volume("SIGNED-1", 1)
    };
    e.add_key("web", tollgate_license::sign(&vendor, &key))
        .unwrap();
    assert_eq!(
        verdicts(&e, "web"),
        (true, Some("SIGNED-1".to_owned()), false)
    );
    // It expires within 30 days without auto-renewal: the shortfall says so.
    let need = e.shortfall(30).unwrap().needs;
    assert_eq!(need.len(), 1);
    assert_eq!(need[0].reason, NeedReason::ExpiresSoon);
    // One instance: the same license on a second instance is refused, and changes nothing.
    e.add_instance("db", InstanceOs::Windows, None).unwrap();
    match e.add_key("db", tollgate_license::sign(&vendor, &key)) {
        Err(Error::DuplicateKey { id }) => assert_eq!(id, "SIGNED-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(verdicts(&e, "db"), (false, None, true));
}
