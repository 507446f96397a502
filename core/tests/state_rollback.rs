//! State rollback (rule R31 in docs/rules.md): a state directory restored from an older copy, a hot
//! file restored alone, or an edited ratchet is refused until an operator accepts it.

mod common;

use std::path::Path;

use common::dv;
use tollgate_core::{Engine, Error, EventKind, Options};

fn options(installation: &Path) -> Options {
    Options {
        installation_dir: Some(installation.to_owned()),
        // Every flush ratchets, so the copies below are taken at known ratchets.
        ratchet_interval: std::time::Duration::ZERO,
        ..Options::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A state with one project of 1,000 bytes, 100 used and flushed.
fn used_state(dir: &Path, installation: &Path) {
    let e = Engine::open_with(dir, options(installation)).unwrap();
    e.create_project("p").unwrap();
    e.add_key("p", dv("A", 1_000)).unwrap();
    e.project("p").unwrap().consume(100).unwrap();
    e.flush().unwrap();
}

/// A state used to 100 bytes and copied, used on to 900 bytes, then replaced by the copy taken
/// at 100 bytes.
fn restore_an_older_copy(dir: &Path, installation: &Path) {
    used_state(dir, installation);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    {
        let e = Engine::open_with(dir, options(installation)).unwrap();
        e.project("p").unwrap().consume(800).unwrap();
        e.flush().unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
    copy_dir(copy.path(), dir);
}

fn refused(result: Result<Engine, Error>) -> String {
    match result {
        Err(Error::Tampered { reason }) => reason.to_string(),
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn a_state_directory_restored_from_an_older_copy_is_refused_until_accepted() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    restore_an_older_copy(dir.path(), installation.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert!(reason.contains("restored from an older copy"), "{reason}");
    // Refusing changed nothing: still refused.
    refused(Engine::open_with(dir.path(), options(installation.path())));
    let e = Engine::accept_rollback(dir.path(), options(installation.path())).unwrap();
    assert_eq!(e.usage("p").unwrap().active_used, 100);
    assert!(e.events_after(0, 1_000).unwrap().iter().any(|ev| matches!(
        &ev.kind,
        EventKind::RollbackAccepted { reason, .. } if reason.contains("older copy")
    )));
    drop(e);
    // Accepted once: it opens normally from now on.
    Engine::open_with(dir.path(), options(installation.path())).unwrap();
}

#[test]
fn a_hot_file_restored_alone_is_refused() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    used_state(dir.path(), installation.path());
    let old_hot = std::fs::read(dir.path().join("hot.tgs")).unwrap();
    {
        let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
        e.project("p").unwrap().consume(500).unwrap();
        e.flush().unwrap();
    }
    std::fs::write(dir.path().join("hot.tgs"), old_hot).unwrap();
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert!(reason.contains("hot-state file was restored"), "{reason}");
}

/// Lowers the recorded usage of the last ratchet in the audit log, as an attacker would.
fn edit_last_ratchet(dir: &Path) {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET json = replace(json, '\"total_used\":100', '\"total_used\":1')
             WHERE seq = (SELECT value FROM meta WHERE name = 'checkpoint_event')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

/// Rule R31: a state opened with another installation directory than the one that made
/// it (a C program that forgot to set it) is `InstallationMismatch`, naming both directories;
/// a ratchet edited under the installation that made it stays `Tampered`. Either refusal
/// changes nothing.
#[test]
fn an_edited_ratchet_is_tampered_and_another_installation_a_mismatch() {
    const EDITED: &str = "checkpoint 2 in the audit log does not verify: it was edited, its state id was changed, or it was made by another installation; an operator can accept it with `tollgate state accept-rollback`";
    struct Case {
        name: &'static str,
        edit: bool,
        /// Opened with the other installation directory, not the one that made the state.
        other: bool,
        /// The refusal's message; `None`: it opens.
        refused: Option<&'static str>,
    }
    let mismatch = "MISMATCH";
    let cases = [
        Case {
            name: "the installation that made it",
            edit: false,
            other: false,
            refused: None,
        },
        Case {
            name: "another installation",
            edit: false,
            other: true,
            refused: Some(mismatch),
        },
        Case {
            name: "an edited checkpoint",
            edit: true,
            other: false,
            refused: Some(EDITED),
        },
        Case {
            name: "edited, with another installation",
            edit: true,
            other: true,
            refused: Some(mismatch),
        },
    ];
    for case in cases {
        let (dir, installation, other) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        used_state(dir.path(), installation.path());
        if case.edit {
            edit_last_ratchet(dir.path());
        }
        let opener = if case.other {
            other.path()
        } else {
            installation.path()
        };
        // The opener's installation exists before the snapshot, as a refused open leaves it.
        drop(Engine::open_with(
            tempfile::tempdir().unwrap().path(),
            options(opener),
        ));
        let before = snapshot(dir.path(), installation.path());
        let before_opener = snapshot(dir.path(), opener);
        let result = Engine::open_with(dir.path(), options(opener));
        match (case.refused, result) {
            (None, Ok(e)) => assert_eq!(e.usage("p").unwrap().active_used, 100, "{}", case.name),
            (
                Some(m),
                Err(Error::InstallationMismatch {
                    state,
                    installation: named,
                    ratchet,
                }),
            ) if m == mismatch => {
                assert_eq!(state, dir.path().canonicalize().unwrap(), "{}", case.name);
                assert_eq!(named, opener, "{}", case.name);
                assert_eq!(ratchet, 2, "{}", case.name);
                let message = Error::InstallationMismatch {
                    state,
                    installation: named,
                    ratchet,
                }
                .to_string();
                assert_eq!(
                    message,
                    format!(
                        "state directory {} was made by another installation than the installation directory {} it was opened with: open it with the installation directory that made it (Options::installation_dir, tg_engine_options_set_installation_dir or TOLLGATE_INSTALLATION)",
                        dir.path().canonicalize().unwrap().display(),
                        opener.display()
                    ),
                    "{}", case.name
                );
            }
            (Some(m), Err(Error::Tampered { reason })) if m != mismatch => {
                assert_eq!(reason.to_string(), m, "{}", case.name);
            }
            (expected, Err(e)) => {
                panic!("{}: expected {expected:?}, refused with {e:?}", case.name)
            }
            (expected, Ok(_)) => panic!("{}: expected {expected:?}, opened", case.name),
        }
        if case.refused.is_some() {
            // The refusal changed nothing, in the state or in either installation.
            assert_eq!(
                snapshot(dir.path(), installation.path()),
                before,
                "{}",
                case.name
            );
            assert_eq!(snapshot(dir.path(), opener), before_opener, "{}", case.name);
        }
        if case.other && !case.edit {
            // Opened with the installation that made it, it is as it was.
            let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
            assert_eq!(e.usage("p").unwrap().active_used, 100, "{}", case.name);
        }
    }
}

/// An operator who moved a state to another installation on purpose accepts it there with
/// `accept_rollback`, which a mismatch does not stop; the installation that made it then finds
/// another installation's ratchets.
#[test]
fn accept_rollback_takes_a_state_to_another_installation() {
    let (dir, installation, other) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    used_state(dir.path(), installation.path());
    let e = Engine::accept_rollback(dir.path(), options(other.path())).unwrap();
    assert_eq!(e.usage("p").unwrap().active_used, 100);
    drop(e);
    assert!(matches!(
        Engine::open_with(dir.path(), options(installation.path())),
        Err(Error::InstallationMismatch { .. })
    ));
}

#[test]
fn normal_reopens_flushes_and_crash_images_pass() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    used_state(dir.path(), installation.path());
    for _ in 0..3 {
        let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
        e.project("p").unwrap().consume(10).unwrap();
        e.flush().unwrap();
        e.flush().unwrap();
    }
    // Usage after the last flush that a crash lost is not a rollback: the ratchet is at
    // the flush.
    let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
    assert_eq!(e.usage("p").unwrap().active_used, 130);
    // Ratchets are in the audit log but are not events.
    assert!(!e
        .events_after(0, 1_000)
        .unwrap()
        .iter()
        .any(|ev| matches!(ev.kind, EventKind::Ratchet { .. })));
    drop(e);
    let db = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    let ratchets: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE json LIKE '{\"kind\":\"checkpoint\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // One per open (5) and per flush (1 + 6).
    assert_eq!(ratchets, 12);
}

/// Everything a refused open must leave as it was: the hot file, the catalog's meta table,
/// keys and audit log, and the installation's anchors.
fn snapshot(dir: &Path, installation: &Path) -> (Vec<u8>, Vec<String>, Vec<(String, String)>) {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT name || '=' || value FROM meta ORDER BY name",
        "SELECT row || ' ' || state || ' ' || COALESCE(final_used, '-') || ' ' || json FROM keys ORDER BY row",
        "SELECT seq || ' ' || json FROM events ORDER BY seq",
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let found = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.extend(found.map(Result::unwrap));
    }
    let mut anchors: Vec<(String, String)> = std::fs::read_dir(installation.join("anchors"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    anchors.sort();
    (std::fs::read(dir.join("hot.tgs")).unwrap(), rows, anchors)
}

fn sql(dir: &Path, statements: &str) {
    let db = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    db.execute_batch(statements).unwrap();
}

/// Regression: an old copy restored and its state id moved by one SQL update, so that
/// the anchor lookup finds an empty slot.
#[test]
fn a_restored_copy_with_its_state_id_bumped_is_refused() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    restore_an_older_copy(dir.path(), installation.path());
    sql(
        dir.path(),
        "UPDATE meta SET value = value + 1 WHERE name = 'state_id'",
    );
    let before = snapshot(dir.path(), installation.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert_eq!(
        reason,
        "checkpoint 2 in the audit log does not verify: it was edited, its state id was changed, or it was made by another installation; an operator can accept it with `tollgate state accept-rollback`"
    );
    assert_eq!(snapshot(dir.path(), installation.path()), before);
}

/// The same, with the ratchets deleted too, so that the state looks new.
#[test]
fn a_restored_copy_with_its_state_id_bumped_and_its_ratchets_deleted_is_refused() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    used_state(dir.path(), installation.path());
    sql(
        dir.path(),
        "UPDATE meta SET value = value + 1 WHERE name = 'state_id';
         DELETE FROM meta WHERE name = 'checkpoint_event';
         DELETE FROM events WHERE json LIKE '{\"kind\":\"checkpoint\"%';",
    );
    let before = snapshot(dir.path(), installation.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert_eq!(
        reason,
        "the state holds keys but no checkpoint: its checkpoints were deleted from the audit log (a state written before checkpoints existed is accepted once with accept-rollback); an operator can accept it with `tollgate state accept-rollback`"
    );
    assert_eq!(snapshot(dir.path(), installation.path()), before);
}

/// Rule R31: an accepted rollback is in the MAC chain, so deleting or editing its audit entry
/// afterwards is detected.
#[test]
fn deleting_or_editing_the_audited_rollback_acceptance_is_refused() {
    let (dir, installation) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    restore_an_older_copy(dir.path(), installation.path());
    drop(Engine::accept_rollback(dir.path(), options(installation.path())).unwrap());
    // Later ratchets carry the decision along.
    for _ in 0..2 {
        let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
        e.flush().unwrap();
    }
    let accepted: i64 = rusqlite::Connection::open(dir.path().join("catalog.db"))
        .unwrap()
        .query_row(
            "SELECT seq FROM events WHERE json LIKE '{\"kind\":\"rollback_accepted\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let pristine = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), pristine.path());

    sql(
        dir.path(),
        &format!(
            "UPDATE events SET json = replace(json, 'older copy', 'crash') WHERE seq = {accepted}"
        ),
    );
    let before = snapshot(dir.path(), installation.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert_eq!(
        reason,
        format!("the operator decision at audit entry {accepted} does not verify: it was edited; an operator can accept it with `tollgate state accept-rollback`")
    );
    assert_eq!(snapshot(dir.path(), installation.path()), before);

    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(pristine.path(), dir.path());
    sql(
        dir.path(),
        &format!("DELETE FROM events WHERE seq = {accepted}"),
    );
    let before = snapshot(dir.path(), installation.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert_eq!(
        reason,
        format!("the operator decision at audit entry {accepted} is missing: it was deleted from the audit log; an operator can accept it with `tollgate state accept-rollback`")
    );
    assert_eq!(snapshot(dir.path(), installation.path()), before);
}
