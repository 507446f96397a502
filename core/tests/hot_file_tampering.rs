//! Rule R31 in docs/rules.md: limits, expiries and usage patched in `hot.tgs` (or in the catalog's
//! copy of a license along with it) are refused as `Tampered`, at open and at every ratchet.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use common::{dv, expiring};
use tollgate_core::{Engine, Error, Options, Refusal, MAX_LIMIT_BYTES};

/// Where the records start in `hot.tgs` (after its 4 KiB header), and their size.
const RECORDS: u64 = 4096;
const RECORD: u64 = 256;

fn options(dir: &Path) -> Options {
    Options {
        // Every flush ratchets.
        ratchet_interval: Duration::ZERO,
        ..common::options(dir)
    }
}

fn hot(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("hot.tgs"))
        .unwrap()
}

/// The cursor word of `record`.
fn cursor(dir: &Path, record: u64) -> u128 {
    let mut word = [0u8; 16];
    hot(dir)
        .read_exact_at(&mut word, RECORDS + record * RECORD)
        .unwrap();
    u128::from_le_bytes(word)
}

/// Offset in the file of the live generation's limits of `record` (see `PairRecord`).
fn limits(dir: &Path, record: u64) -> u64 {
    let epoch = (cursor(dir, record) >> 65) as u64;
    RECORDS + record * RECORD + 16 + 24 * (epoch & 1)
}

/// The state record of `project`'s data-volume pair, from the catalog.
fn pair_record(dir: &Path, project: &str) -> u64 {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    db.query_row(
        "SELECT record FROM pairs JOIN projects ON projects.id = pairs.project_id \
         WHERE projects.name = ?1 AND class = 'data_volume'",
        [project],
        |row| row.get(0),
    )
    .unwrap()
}

/// Offset in the file of the limit of the account of `key` (see `AccountRecord`).
fn account_limit(dir: &Path, key: &str) -> u64 {
    common::account_offset(dir, key) + 8
}

fn write_at(dir: &Path, at: u64, bytes: &[u8]) {
    hot(dir).write_all_at(bytes, at).unwrap();
}

/// Sets the offset (the low half of the cursor word) of `record`.
fn set_offset(dir: &Path, record: u64, offset: u64) {
    write_at(dir, RECORDS + record * RECORD, &offset.to_le_bytes());
}

/// The hot file, the catalog's keys, meta table and audit log: what a refusal must leave.
fn snapshot(dir: &Path) -> (Vec<u8>, Vec<String>) {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT name || '=' || value FROM meta ORDER BY name",
        "SELECT row || ' ' || state || ' ' || json FROM keys ORDER BY row",
        "SELECT seq || ' ' || json FROM events ORDER BY seq",
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let found = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.extend(found.map(Result::unwrap));
    }
    (std::fs::read(dir.join("hot.tgs")).unwrap(), rows)
}

fn tampered<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Tampered { reason }) => reason.to_string(),
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("accepted"),
    }
}

/// A state with project "p" holding key "A" (1,000 bytes), 100 of them used.
fn licensed(dir: &Path) {
    let e = Engine::open_with(dir, options(dir)).unwrap();
    e.create_project("p").unwrap();
    e.add_key("p", dv("A", 1_000)).unwrap();
    e.project("p").unwrap().consume(100).unwrap();
    e.flush().unwrap();
}

const PATCHED: &str = "the Active key \"A\" of project \"p\" has a limit of 70368744177663 in hot.tgs but 1000 in its license: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup";

#[test]
fn a_limit_patched_in_hot_tgs_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    licensed(dir.path());
    write_at(
        dir.path(),
        limits(dir.path(), 0),
        &MAX_LIMIT_BYTES.to_le_bytes(),
    );
    let before = snapshot(dir.path());
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        PATCHED
    );
    // Not an operator's to accept: the limits are the license's.
    assert_eq!(
        tampered(Engine::accept_rollback(dir.path(), options(dir.path()))),
        PATCHED
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_limit_patched_while_a_process_runs_is_refused_at_its_next_ratchet() {
    let dir = tempfile::tempdir().unwrap();
    licensed(dir.path());
    let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
    let p = e.project("p").unwrap();
    write_at(
        dir.path(),
        limits(dir.path(), 0),
        &MAX_LIMIT_BYTES.to_le_bytes(),
    );
    // The pair's limit is only what views show: the key's account bounds every grant.
    assert!(matches!(
        p.consume(5_000_000_000_000),
        Err(Refusal::Exhausted { remaining: 900, .. })
    ));
    assert_eq!(tampered(e.flush()), PATCHED);
    drop((p, e));
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        PATCHED
    );
}

#[test]
fn an_account_limit_patched_while_a_process_runs_is_refused_at_its_next_ratchet() {
    let dir = tempfile::tempdir().unwrap();
    licensed(dir.path());
    let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
    let p = e.project("p").unwrap();
    write_at(
        dir.path(),
        account_limit(dir.path(), "A"),
        &MAX_LIMIT_BYTES.to_le_bytes(),
    );
    // The hot path reads no catalog: until the next ratchet the patched account is believed.
    p.consume(5_000_000_000_000).unwrap();
    let events = snapshot(dir.path()).1;
    let patched = "the account of key \"A\" has a limit of 70368744177663 in hot.tgs but 1000 in its license: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup";
    assert_eq!(tampered(e.flush()), patched);
    assert_eq!(snapshot(dir.path()).1, events);
    drop((p, e));
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        patched
    );
}

#[test]
fn an_expiry_patched_in_hot_tgs_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let expiry = 1_900_000_000;
    {
        let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
        e.create_project("p").unwrap();
        e.add_key("p", expiring(dv("A", 1_000), expiry)).unwrap();
    }
    // The Active key's expiry follows the two 8-byte limits.
    write_at(
        dir.path(),
        limits(dir.path(), 0) + 16,
        &u32::MAX.to_le_bytes(),
    );
    let before = snapshot(dir.path());
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        format!("the Active key \"A\" of project \"p\" has an expiry (Unix seconds) of 4294967295 in hot.tgs but {expiry} in its license: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup")
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn usage_moved_from_one_pair_to_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
        for (project, key, used) in [("p", "A", 300), ("q", "B", 100)] {
            e.create_project(project).unwrap();
            e.add_key(project, dv(key, 1_000)).unwrap();
            e.project(project).unwrap().consume(used).unwrap();
        }
        e.flush().unwrap();
    }
    // The same total, moved from p's key to q's.
    set_offset(dir.path(), pair_record(dir.path(), "p"), 100);
    set_offset(dir.path(), pair_record(dir.path(), "q"), 300);
    let before = snapshot(dir.path());
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        "key row 1 has 100 bytes charged but checkpoint 2 recorded 300: usage was moved between keys or restored from an older copy; an operator can accept it with `tollgate state accept-rollback`"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_license_edited_in_the_catalog_along_with_hot_tgs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    licensed(dir.path());
    // The pair's limit and the key's account, so hot.tgs agrees with the edited license.
    for at in [limits(dir.path(), 0), account_limit(dir.path(), "A")] {
        write_at(dir.path(), at, &MAX_LIMIT_BYTES.to_le_bytes());
    }
    let db = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    let edited = db
        .execute(
            &format!(
                "UPDATE keys SET json = replace(json, '\"limit_bytes\":1000', '\"limit_bytes\":{MAX_LIMIT_BYTES}')"
            ),
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    drop(db);
    let before = snapshot(dir.path());
    assert_eq!(
        tampered(Engine::open_with(dir.path(), options(dir.path()))),
        "key row 1 has a limit of 70368744177663 and an expiry of 4294967295 but checkpoint 2 recorded 1000 and 4294967295: its license in catalog.db was edited; edited license terms are never accepted: restore the file from a backup"
    );
    assert_eq!(snapshot(dir.path()), before);
}

/// The account record of `key`, from the catalog.
fn account_record(dir: &Path, key: &str) -> u64 {
    (account_limit(dir, key) - 8 - RECORDS) / RECORD
}

/// The state record of `project`'s pair of `class`, from the catalog.
fn class_record(dir: &Path, project: &str, class: &str) -> u64 {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    db.query_row(
        "SELECT record FROM pairs JOIN projects ON projects.id = pairs.project_id \
         WHERE projects.name = ?1 AND class = ?2",
        [project, class],
        |row| row.get(0),
    )
    .unwrap()
}

/// Offset in the file of the account id the live generation's Active slot of `record` draws
/// from (`leases[epoch & 1].accounts[0]`, see `PairRecord`).
fn active_account(dir: &Path, record: u64) -> u64 {
    let epoch = (cursor(dir, record) >> 65) as u64;
    RECORDS + record * RECORD + 144 + 48 * (epoch & 1)
}

/// A slot pointed at no account, or at another key's account (of the same amount, so its limit
/// check alone would pass), would escape the quota its key shares with its other holders: data
/// volume and seats alike, refused at open with the exact reason, nothing changed.
#[test]
fn a_slot_pointed_at_another_account_is_refused_at_open() {
    use tollgate_core::{Key, MachineOs, Scheme};
    let machines = |id: &str| Key {
        scheme: Scheme::PerMachine {
            max_machines: 5,
            os: MachineOs::Server,
        },
        ..dv(id, 1)
    };
    let cases: [(&str, &str, &str, Option<&str>); 4] = [
        ("p", "data_volume", "A", None),
        ("p", "data_volume", "A", Some("B")),
        ("s", "per_machine server", "M", None),
        ("s", "per_machine server", "M", Some("M2")),
    ];
    for (project, class, key, pointed_at) in cases {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
            for (p, k) in [("p", dv("A", 1_000)), ("q", dv("B", 1_000))] {
                e.create_project(p).unwrap();
                e.add_key(p, k).unwrap();
            }
            for (p, k) in [("s", machines("M")), ("t", machines("M2"))] {
                e.create_project(p).unwrap();
                e.add_key(p, k).unwrap();
            }
            e.seats("s", tollgate_core::LicenseClass::ServerMachines)
                .unwrap()
                .acquire(2)
                .unwrap();
            e.flush().unwrap();
        }
        let record = class_record(dir.path(), project, class);
        let id = pointed_at.map_or(0, |k| account_record(dir.path(), k) + 1);
        write_at(
            dir.path(),
            active_account(dir.path(), record),
            &(id as u32).to_le_bytes(),
        );
        let before = snapshot(dir.path());
        let named = account_record(dir.path(), key) + 1;
        assert_eq!(
            tampered(Engine::open_with(dir.path(), options(dir.path()))),
            format!(
                "the Active slot of project \"{project}\" draws key \"{key}\" from account {id} in hot.tgs but the catalog says {named}: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup"
            ),
            "{project} {pointed_at:?}"
        );
        assert_eq!(snapshot(dir.path()), before, "{project} {pointed_at:?}");
    }
}

/// A grace written into `hot.tgs` (days for a key sold with none, or more days than sold) would
/// let an expired key grant on: refused at open with the exact reason, nothing changed.
#[test]
fn a_grace_patched_in_hot_tgs_is_refused_at_open() {
    use tollgate_core::Key;
    for (sold, patched) in [(None, 365u16), (Some(2), 30)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
            e.create_project("p").unwrap();
            let key = Key {
                grace_days: sold,
                ..expiring(dv("A", 1_000), 1_900_000_000)
            };
            e.add_key("p", key).unwrap();
        }
        // The grace word follows the two 4-byte account ids; the Active key's days are its
        // low 16 bits.
        let grace = active_account(dir.path(), 0) + 8;
        write_at(dir.path(), grace, &patched.to_le_bytes());
        let before = snapshot(dir.path());
        assert_eq!(
            tampered(Engine::open_with(dir.path(), options(dir.path()))),
            format!("the Active key \"A\" of project \"p\" has a grace (days) of {patched} in hot.tgs but {} in its license: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup", sold.unwrap_or(0))
        );
        assert_eq!(snapshot(dir.path()), before);
    }
}

/// An overage written into a key account in `hot.tgs` (for a key sold with none, or larger
/// than sold) would let its holders grant past the limit: refused at open, nothing changed.
#[test]
fn an_overage_patched_in_hot_tgs_is_refused_at_open() {
    use tollgate_core::Key;
    for (sold, patched) in [(None, 1_000u64), (Some(10), 500)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = Engine::open_with(dir.path(), options(dir.path())).unwrap();
            e.create_project("p").unwrap();
            let key = Key {
                overage_percent: sold,
                ..dv("A", 1_000)
            };
            e.add_key("p", key).unwrap();
        }
        // The overage follows the limit (8), the holders and reported words (4 + 4).
        write_at(
            dir.path(),
            account_limit(dir.path(), "A") + 16,
            &patched.to_le_bytes(),
        );
        let before = snapshot(dir.path());
        let sold_bytes = sold.map_or(0, |percent| 1_000 * u64::from(percent) / 100);
        assert_eq!(
            tampered(Engine::open_with(dir.path(), options(dir.path()))),
            format!("the account of key \"A\" has an overage of {patched} in hot.tgs but {sold_bytes} in its license: hot.tgs was edited; edited license terms are never accepted: restore the file from a backup")
        );
        assert_eq!(snapshot(dir.path()), before);
    }
}
