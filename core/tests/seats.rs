//! Seat schemes (rules R16 and R17 in docs/rules.md): per-machine (server and desktop), per-core
//! and per-instance gauges through the engine, each rule with its exact error; threads and killed
//! processes.

mod common;

use std::time::Duration;

use common::{child_env, child_result, dv, spawn_child};
use tollgate_core::{
    Clock, Edition, Engine, Error, EventKind, Key, LicenseClass, MachineOs, Options, Refusal,
    Scheme, SeatUsage,
};

const NOW: u32 = 1_800_000_000;

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

fn seat_key(id: &str, scheme: Scheme) -> Key {
    Key {
        scheme,
        ..dv(id, 1)
    }
}

fn machines(id: &str, os: MachineOs, max_machines: u32) -> Key {
    seat_key(id, Scheme::PerMachine { os, max_machines })
}

fn cores(id: &str, max_cores: u32) -> Key {
    seat_key(id, Scheme::PerCore { max_cores })
}

fn expiring(key: Key, at: u32) -> Key {
    common::expiring(key, i64::from(at))
}

#[test]
fn seat_rules_each_with_its_exact_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.create_project("svm").unwrap();
    e.add_key("svm", machines("S", MachineOs::Server, 3))
        .unwrap();
    e.add_key("svm", machines("D", MachineOs::Desktop, 2))
        .unwrap();
    e.add_key("svm", cores("C", 8)).unwrap();

    // One project holds a server pair and a desktop pair at once, each bounded by its own key.
    let server = e.seats("svm", LicenseClass::ServerMachines).unwrap();
    let desktop = e.seats("svm", LicenseClass::DesktopMachines).unwrap();
    let core = e.seats("svm", LicenseClass::Cores).unwrap();
    server.acquire(3).unwrap();
    desktop.acquire(2).unwrap();
    core.acquire(8).unwrap();
    let table: Vec<(&str, Result<(), Refusal>, &str)> = vec![
        (
            "server pair full",
            server.acquire(1),
            "no free seats: 1 requested but only 0 of the active key's seats are free in all the projects that hold it",
        ),
        (
            "desktop pair full",
            desktop.acquire(1),
            "no free seats: 1 requested but only 0 of the active key's seats are free in all the projects that hold it",
        ),
        (
            "cores full",
            core.acquire(2),
            "no free seats: 2 requested but only 0 of the active key's seats are free in all the projects that hold it",
        ),
        (
            "release more than held",
            server.release(4),
            "cannot release 4 seats: only 3 are held",
        ),
    ];
    for (case, result, message) in table {
        assert_eq!(result.unwrap_err().to_string(), message, "{case}");
    }
    assert!(matches!(
        server.acquire(1),
        Err(Refusal::SeatsExhausted {
            requested: 1,
            available: 0
        })
    ));
    assert!(matches!(
        server.release(4),
        Err(Refusal::NotHeld {
            requested: 4,
            held: 3
        })
    ));
    // A refusal changed nothing.
    assert_eq!(server.usage().held, 3);
    assert_eq!(server.held(), 3);
    server.release(1).unwrap();
    server.acquire(1).unwrap();

    // Seats are per owner: another handle of the same process shares the owner, the operator
    // is another owner and cannot release the process's seats.
    let operator = e
        .operator_seats("svm", LicenseClass::ServerMachines)
        .unwrap();
    assert!(matches!(
        operator.release(1),
        Err(Refusal::NotHeld {
            requested: 1,
            held: 0
        })
    ));

    // Wrong class, unknown project, no key yet.
    e.create_project("empty").unwrap();
    let cases: Vec<(Result<(), Error>, &str)> = vec![
        (
            e.seats("svm", LicenseClass::DataVolume).map(drop),
            "taking seats is not supported for data_volume keys",
        ),
        (
            e.seats("nope", LicenseClass::Cores).map(drop),
            "project \"nope\" does not exist",
        ),
        (
            e.seats("empty", LicenseClass::Cores)
                .unwrap()
                .acquire(1)
                .map_err(Error::from),
            "no active license key: add a key before metering or adding a reserve",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
    // The empty pair the handle created takes the first key of its class.
    e.add_key("empty", cores("C2", 4)).unwrap();
    e.seats("empty", LicenseClass::Cores)
        .unwrap()
        .acquire(4)
        .unwrap();
}

#[test]
fn an_expired_active_key_switches_to_the_reserve_and_the_seats_stay_held() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.create_project("svm").unwrap();
    e.add_key(
        "svm",
        expiring(machines("OLD", MachineOs::Server, 5), NOW + 100),
    )
    .unwrap();
    let added = e
        .add_key("svm", machines("NEW", MachineOs::Server, 4))
        .unwrap();
    assert!(added.message.is_some(), "the second key became the reserve");
    // A reserve's amount replaces the Active key's, it does not add to it.
    let seats = e.seats("svm", LicenseClass::ServerMachines).unwrap();
    seats.acquire(5).unwrap();
    assert!(matches!(
        seats.acquire(1),
        Err(Refusal::SeatsExhausted { available: 0, .. })
    ));
    clock.set(NOW + 100);
    // The next caller switches: 5 seats held against the new key's 4.
    assert!(matches!(
        seats.acquire(1),
        Err(Refusal::SeatsExhausted { available: 0, .. })
    ));
    assert_eq!(
        seats.usage(),
        SeatUsage {
            held: 5,
            limit: 4,
            reserved_limit: 0,
            has_reserved: false,
            switches: 1
        }
    );
    seats.release(2).unwrap();
    seats.acquire(1).unwrap();
    assert_eq!(seats.usage().held, 4);
    std::thread::sleep(Duration::from_millis(100));
    let switches: Vec<_> = e
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|ev| matches!(ev.kind, EventKind::Switched { .. }))
        .collect();
    assert_eq!(switches.len(), 1, "{switches:?}");
    // The admin side sees the switch too; the old key's final count is the seats at the switch.
    let keys = e.keys("svm").unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.key.id.as_str(), k.used))
            .collect::<Vec<_>>(),
        [("OLD", 5), ("NEW", 4)]
    );
    // Without a valid key only releasing works.
    e.add_key("svm", machines("R2", MachineOs::Server, 4))
        .unwrap();
    drop(e);
}

#[test]
fn seats_survive_admin_changes_and_a_reserve_of_another_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.create_project("svm").unwrap();
    e.add_key("svm", machines("S1", MachineOs::Server, 10))
        .unwrap();
    let seats = e.seats("svm", LicenseClass::ServerMachines).unwrap();
    seats.acquire(7).unwrap();
    e.add_key("svm", machines("S2", MachineOs::Server, 10))
        .unwrap();
    e.replace_active_key("svm", machines("S3", MachineOs::Server, 8))
        .unwrap();
    assert_eq!(seats.usage().held, 7);
    assert_eq!(seats.usage().limit, 8);
    // A desktop key is no reserve for a server pair (rule R6 in docs/rules.md).
    assert!(matches!(
        e.add_reserve("svm", machines("D1", MachineOs::Desktop, 10)),
        Err(Error::SchemeMismatch { .. })
    ));
    assert!(matches!(
        e.add_reserve(
            "svm",
            Key {
                edition: Edition::Enterprise,
                ..machines("S4", MachineOs::Server, 10)
            }
        ),
        Err(Error::EditionMismatch { .. })
    ));
    assert!(matches!(
        e.add_reserve("svm", machines("S4", MachineOs::Server, 10)),
        Err(Error::ReserveOccupied { .. })
    ));
}

#[test]
fn threads_never_hold_more_seats_than_the_active_key_allows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(NOW);
    let e = engine(dir.path(), &clock);
    e.create_project("svm").unwrap();
    e.add_key("svm", cores("C", 32)).unwrap();
    let seats = e.seats("svm", LicenseClass::Cores).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let seats = seats.clone();
            std::thread::spawn(move || {
                let mut mine = 0u64;
                let mut peak = 0u64;
                for i in 0..20_000u64 {
                    let units = 1 + (i + t) % 4;
                    if i % 2 == 1 && mine >= units {
                        seats.release(units).unwrap();
                        mine -= units;
                    } else if seats.acquire(units).is_ok() {
                        mine += units;
                    }
                    peak = peak.max(seats.usage().held);
                }
                seats.release(mine).unwrap();
                peak
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap() <= 32);
    }
    assert_eq!(seats.usage().held, 0);
    assert_eq!(seats.held(), 0);
}

#[test]
#[ignore = "child process entry point; run by seats_of_a_killed_process_are_reclaimed"]
fn seat_child() {
    let Some(dir) = child_env("SEAT_DIR") else {
        return;
    };
    let units: u64 = child_env("SEAT_UNITS").unwrap().parse().unwrap();
    let churn = child_env("SEAT_CHURN").is_some();
    let project = child_env("SEAT_PROJECT").unwrap_or_else(|| "svm".into());
    let e = common::open(&dir).unwrap();
    let seats = e.seats(&project, LicenseClass::Cores).unwrap();
    seats.acquire(units).unwrap();
    println!("RESULT {units}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    if churn {
        // Take and give back seats until killed.
        loop {
            if seats.acquire(1).is_ok() {
                seats.release(1).unwrap();
            }
        }
    }
    std::thread::sleep(Duration::from_secs(60));
}

fn wait_for_result(child: &mut std::process::Child) -> u64 {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(stdout);
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "child exited");
        if let Some((_, n)) = line.split_once("RESULT ") {
            return n.trim().parse().unwrap();
        }
    }
}

#[test]
fn seats_of_a_killed_process_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let e = common::open(dir.path()).unwrap();
    e.create_project("svm").unwrap();
    e.add_key("svm", cores("C", 100)).unwrap();
    let seats = e.seats("svm", LicenseClass::Cores).unwrap();
    seats.acquire(10).unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let mut children: Vec<_> = [20u64, 30]
        .iter()
        .map(|units| {
            spawn_child(
                "seat_child",
                &[
                    ("SEAT_DIR", path.clone()),
                    ("SEAT_UNITS", units.to_string()),
                ],
            )
        })
        .collect();
    let taken: u64 = children.iter_mut().map(wait_for_result).sum();
    assert_eq!(taken, 50);
    assert_eq!(seats.usage().held, 60);
    // Living holders are never reclaimed.
    assert!(e.reclaim_seats().unwrap().is_empty());
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Only 40 are free until the dead processes' 50 are reclaimed; a refused acquire asks the
    // reclaimer thread for it, and a retry a moment later succeeds.
    assert!(matches!(
        seats.acquire(90),
        Err(Refusal::SeatsExhausted {
            requested: 90,
            available: 40
        })
    ));
    common::await_that("the dead holders' seats", || seats.acquire(90).is_ok());
    assert_eq!(seats.usage().held, 100);
    assert_eq!(seats.held(), 100);
    std::thread::sleep(Duration::from_millis(200));
    let reclaimed: u64 = e
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .filter_map(|ev| match ev.kind {
            EventKind::SeatsReclaimed { units, .. } => Some(units),
            _ => None,
        })
        .sum();
    assert_eq!(reclaimed, 50);
    seats.release(100).unwrap();
    assert_eq!(seats.usage().held, 0);
}

#[test]
fn processes_killed_while_taking_and_giving_seats_never_free_a_seat_twice() {
    let dir = tempfile::tempdir().unwrap();
    let e = common::open(dir.path()).unwrap();
    e.create_project("svm").unwrap();
    e.add_key("svm", cores("C", 1_000)).unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let trials = 10;
    let mut caught = 0;
    for trial in 0..trials {
        let children: Vec<_> = (0..3)
            .map(|_| {
                spawn_child(
                    "seat_child",
                    &[
                        ("SEAT_DIR", path.clone()),
                        ("SEAT_UNITS", "5".into()),
                        ("SEAT_CHURN", "1".into()),
                    ],
                )
            })
            .collect();
        // Each child held 5 seats and had at most one more in flight. Reclaiming returns what
        // each entry counted, and a seat that a kill between the two atomic steps of an acquire
        // or a release left counted as held is dropped once no owner names the pair any more
        // (this parent holds no handle on it, so none does).
        let reclaimed = kill_and_reclaim(&e, children, trial);
        assert_eq!(held_on(&e), 0, "trial {trial}");
        caught += reclaimed - 15;
    }
    println!(
        "{trials} trials of 3 killed churning processes: {caught} in-flight seats reclaimed, none left held"
    );
}

/// One per-core key held by three projects is one account: processes on the three projects
/// never hold more than its amount together, and after they are killed mid-churn every seat
/// (also one a kill left between the account and a gauge) comes back, none twice.
#[test]
fn processes_on_three_projects_share_one_seat_key_and_leave_none_behind() {
    let dir = tempfile::tempdir().unwrap();
    let e = common::open(dir.path()).unwrap();
    let projects = ["svm-a", "svm-b", "svm-c"];
    for project in projects {
        e.create_project(project).unwrap();
        e.add_key(project, cores("C-SHARED", 20)).unwrap();
    }
    let path = dir.path().to_str().unwrap().to_owned();
    let spawn = |project: &str, units: u64, churn: bool| {
        let mut env = vec![
            ("SEAT_DIR", path.clone()),
            ("SEAT_UNITS", units.to_string()),
            ("SEAT_PROJECT", project.to_owned()),
        ];
        if churn {
            env.push(("SEAT_CHURN", "1".into()));
        }
        spawn_child("seat_child", &env)
    };
    let account = |e: &Engine| {
        let keys = e.keys("svm-b").unwrap();
        keys.into_iter()
            .find(|k| k.key.id == "C-SHARED")
            .and_then(|k| k.account)
            .unwrap()
    };
    let trials = 10;
    for trial in 0..trials {
        let churners: Vec<_> = projects.iter().map(|p| spawn(p, 5, true)).collect();
        // 15 held, at most one more in flight per process: on a gauge, or in the account. (This
        // process holds no seat handle yet: one would name its pair, and a pair still named
        // keeps what a kill left counted until its last owner is gone.)
        kill_and_reclaim(&e, churners, trial);
        let usage = account(&e);
        assert_eq!((usage.used, usage.leased_unused), (0, 0), "trial {trial}");
    }
    // 8 + 8 held on two projects: only 4 are left for the third, in any process.
    let mut holders: Vec<_> = [("svm-a", 8), ("svm-b", 8)]
        .into_iter()
        .map(|(p, n)| spawn(p, n, false))
        .collect();
    let taken: u64 = holders.iter_mut().map(wait_for_result).sum();
    assert_eq!(taken, 16);
    let third = e.seats("svm-c", LicenseClass::Cores).unwrap();
    assert!(matches!(
        third.acquire(5),
        Err(Refusal::SeatsExhausted {
            requested: 5,
            available: 4
        })
    ));
    third.acquire(4).unwrap();
    let usage = account(&e);
    assert_eq!((usage.limit, usage.used, usage.leased_unused), (20, 20, 0));
    third.release(4).unwrap();
    let mark = e
        .events_after(0, 1_000_000)
        .unwrap()
        .last()
        .map_or(0, |event| event.seq);
    for child in &mut holders {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    drop(third);
    // The engine's reclaimer thread may take some back first: the refused `acquire(5)` asked it
    // for a pass, which under load can run after the kills. Either way each seat is reclaimed
    // once, and each reclaim is in the audit log.
    e.reclaim_seats().unwrap();
    let reclaimed = || -> u64 {
        e.events_after(mark, 1_000_000)
            .unwrap()
            .iter()
            .map(|event| match event.kind {
                EventKind::SeatsReclaimed { units, .. } => units,
                _ => 0,
            })
            .sum()
    };
    common::await_that("16 seats reclaimed in the audit log", || reclaimed() >= 16);
    assert_eq!(reclaimed(), 16);

    // The whole amount is free again, across the three projects.
    let handles: Vec<_> = projects
        .iter()
        .map(|p| e.seats(p, LicenseClass::Cores).unwrap())
        .collect();
    for (handle, units) in handles.iter().zip([10, 6, 4]) {
        handle.acquire(units).unwrap();
    }
    assert!(matches!(
        handles[0].acquire(1),
        Err(Refusal::SeatsExhausted { available: 0, .. })
    ));
}

/// Waits until each churning child holds its 5 seats, lets them churn a while (longer each
/// trial), kills them, reclaims, and returns the seats reclaimed: the 15 held plus at most one
/// in flight per child.
fn kill_and_reclaim(e: &Engine, mut children: Vec<std::process::Child>, trial: u64) -> u64 {
    for child in &mut children {
        wait_for_result(child);
    }
    std::thread::sleep(Duration::from_millis(5 + trial * 3));
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let reclaimed: u64 = e.reclaim_seats().unwrap().iter().map(|r| r.units).sum();
    assert!((15..=18).contains(&reclaimed), "trial {trial}: {reclaimed}");
    reclaimed
}

/// Seats held on the per-core pair, read from the keys (no seat handle, so no owner entry).
fn held_on(e: &Engine) -> u64 {
    e.keys("svm")
        .unwrap()
        .iter()
        .filter(|k| k.status == tollgate_core::KeyStatus::Active)
        .map(|k| k.used)
        .sum()
}

#[test]
fn operator_seats_outlive_the_process_and_are_never_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = common::open(dir.path()).unwrap();
        e.create_project("svm").unwrap();
        e.add_key("svm", machines("S", MachineOs::Desktop, 4))
            .unwrap();
        e.operator_seats("svm", LicenseClass::DesktopMachines)
            .unwrap()
            .acquire(3)
            .unwrap();
        e.flush().unwrap();
    }
    let e = common::open(dir.path()).unwrap();
    assert!(e.reclaim_seats().unwrap().is_empty());
    let operator = e
        .operator_seats("svm", LicenseClass::DesktopMachines)
        .unwrap();
    assert_eq!(operator.held(), 3);
    assert_eq!(operator.usage().held, 3);
    assert!(matches!(
        e.seats("svm", LicenseClass::DesktopMachines)
            .unwrap()
            .acquire(2),
        Err(Refusal::SeatsExhausted {
            requested: 2,
            available: 1
        })
    ));
    operator.release(3).unwrap();
    assert_eq!(operator.usage().held, 0);
    let _ = child_result;
}
