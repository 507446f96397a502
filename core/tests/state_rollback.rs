//! State rollback (issue 9, tampering): a state directory restored from an older copy, a hot
//! file restored alone, or an edited checkpoint is refused until an operator accepts it.

mod common;

use std::path::Path;

use common::dv;
use tollgate_core::{Engine, Error, EventKind, Options};

fn options(installation: &Path) -> Options {
    Options {
        installation_dir: Some(installation.to_owned()),
        // Every flush checkpoints, so the copies below are taken at known checkpoints.
        checkpoint_interval: std::time::Duration::ZERO,
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

fn refused(result: Result<Engine, Error>) -> String {
    match result {
        Err(Error::Tampered { reason }) => reason,
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn a_state_directory_restored_from_an_older_copy_is_refused_until_accepted() {
    let (dir, installation, copy) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    used_state(dir.path(), installation.path());
    copy_dir(dir.path(), copy.path());
    {
        let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
        e.project("p").unwrap().consume(800).unwrap();
        e.flush().unwrap();
    }
    // Restore the copy taken at 100 bytes used.
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(copy.path(), dir.path());
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert!(reason.contains("restored from an older copy"), "{reason}");
    // Refusing changed nothing: still refused.
    refused(Engine::open_with(dir.path(), options(installation.path())));
    let e = Engine::accept_rollback(dir.path(), options(installation.path())).unwrap();
    assert_eq!(e.usage("p").unwrap().active_used, 100);
    assert!(e.events_after(0, 1_000).unwrap().iter().any(|ev| matches!(
        &ev.kind,
        EventKind::RollbackAccepted { reason } if reason.contains("older copy")
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

#[test]
fn an_edited_checkpoint_or_another_installation_is_refused() {
    let (dir, installation, other) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    used_state(dir.path(), installation.path());
    // Lower the recorded usage of the last checkpoint in the audit log.
    let db = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET json = replace(json, '\"total_used\":100', '\"total_used\":1')
             WHERE seq = (SELECT value FROM meta WHERE name = 'checkpoint_event')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let reason = refused(Engine::open_with(dir.path(), options(installation.path())));
    assert!(reason.contains("does not verify"), "{reason}");
    // Another installation cannot verify this installation's checkpoints either.
    let fresh = tempfile::tempdir().unwrap();
    used_state(fresh.path(), installation.path());
    let reason = refused(Engine::open_with(fresh.path(), options(other.path())));
    assert!(reason.contains("another installation"), "{reason}");
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
    // Usage after the last flush that a crash lost is not a rollback: the checkpoint is at
    // the flush.
    let e = Engine::open_with(dir.path(), options(installation.path())).unwrap();
    assert_eq!(e.usage("p").unwrap().active_used, 130);
    // Checkpoints are in the audit log but are not events.
    assert!(!e
        .events_after(0, 1_000)
        .unwrap()
        .iter()
        .any(|ev| matches!(ev.kind, EventKind::Checkpoint { .. })));
    drop(e);
    let db = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    let checkpoints: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE json LIKE '{\"kind\":\"checkpoint\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // One per open (5) and per flush (1 + 6).
    assert_eq!(checkpoints, 12);
}
