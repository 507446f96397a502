//! Unit tests of the engine: open, admin changes and handles.

use super::*;

fn dv(id: &str, limit_bytes: u64) -> Key {
    Key::data_volume(id, limit_bytes)
}

/// Opens `dir` with its own installation inside it, never the real one under `$HOME`.
fn open(dir: &Path) -> Engine {
    let options = Options {
        installation_dir: Some(dir.join("installation")),
        ..Options::default()
    };
    Engine::open_with(dir, options).unwrap()
}

/// Runs the first half of an admin change (pending row, publish) and stops, as a crash
/// between the publish and the catalog commit would.
fn interrupted(engine: &Engine, key: &Key, plan: impl Fn(&PairState, u32) -> NextGen) {
    let admin = engine.admin().unwrap();
    let project = project_row(&admin.catalog, "P").unwrap();
    let pair = data_volume_pair(&admin.catalog, &project).unwrap();
    let account = engine.account_for(&admin, key).unwrap();
    let row = admin
        .catalog
        .insert_pending_key(pair.record, key, &now_text())
        .unwrap();
    let state = &engine.inner.state;
    state
        .record(pair.record)
        .publish::<()>(&**state, |now| {
            Ok(with_account(plan(now, row), row, account))
        })
        .unwrap();
}

fn statuses(engine: &Engine) -> Vec<(String, KeyStatus, u64)> {
    engine
        .keys("P")
        .unwrap()
        .into_iter()
        .map(|k| (k.key.id, k.status, k.used))
        .collect()
}

fn recovered(engine: &Engine) -> usize {
    engine
        .events_after(0, 1000)
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Recovered { .. }))
        .count()
}

#[test]
fn an_interrupted_reserve_addition_is_completed_from_the_hot_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 100)).unwrap();
    interrupted(&engine, &dv("R", 50), |state, row| NextGen {
        active: state.active,
        reserve: Some(live_key(row, &dv("R", 50))),
        retired: None,
        switches: state.switches,
    });
    drop(engine);
    let engine = open(dir.path());
    assert!(matches!(
        engine.add_key("P", dv("X", 1)),
        Err(Error::ReserveOccupied { .. })
    ));
    assert_eq!(recovered(&engine), 1);
    assert_eq!(
        statuses(&engine),
        vec![
            ("A".into(), KeyStatus::Active, 0),
            ("R".into(), KeyStatus::Reserved, 0)
        ]
    );
}

#[test]
fn an_interrupted_replacement_keeps_the_old_keys_final_usage() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 100)).unwrap();
    engine.project("P").unwrap().consume(30).unwrap();
    interrupted(&engine, &dv("N", 100), |state, row| NextGen {
        active: Some(live_key(row, &dv("N", 100))),
        reserve: None,
        retired: state.active.map(|a| (a.key, a.used)),
        switches: state.switches,
    });
    engine.project("P").unwrap().consume(5).unwrap();
    engine.add_key("P", dv("R", 10)).unwrap();
    assert_eq!(recovered(&engine), 1);
    assert_eq!(
        statuses(&engine),
        vec![
            ("A".into(), KeyStatus::Retired, 30),
            ("N".into(), KeyStatus::Active, 5),
            ("R".into(), KeyStatus::Reserved, 0)
        ]
    );
}

#[test]
fn a_key_that_never_reached_its_slot_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 100)).unwrap();
    {
        let admin = engine.admin().unwrap();
        let project = project_row(&admin.catalog, "P").unwrap();
        let pair = data_volume_pair(&admin.catalog, &project).unwrap();
        admin
            .catalog
            .insert_pending_key(pair.record, &dv("R", 5), &now_text())
            .unwrap();
    }
    assert_eq!(
        engine.add_key("P", dv("R", 5)).unwrap().role,
        Role::Reserved
    );
}
