//! Unit tests of the catalog: schema, projects, pairs, keys and the audit log.

use super::*;

/// The version-1 schema as shipped: key ids unique across the state, no pool tables.
const SCHEMA_V1: &str = "
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL);
    CREATE TABLE pairs (record INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id), class TEXT NOT NULL,
        synced_epoch INTEGER NOT NULL, UNIQUE (project_id, class));
    CREATE TABLE keys (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        record INTEGER NOT NULL REFERENCES pairs(record), json TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'retired', 'removed')),
        final_used INTEGER, added_at TEXT NOT NULL, ended_at TEXT);
    CREATE INDEX keys_by_record ON keys (record);
    CREATE INDEX keys_pending ON keys (record) WHERE state = 'pending';
    CREATE TABLE switches (key_row INTEGER PRIMARY KEY);
    CREATE TABLE events (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, project TEXT NOT NULL,
        json TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema_version', 1);
    INSERT INTO projects VALUES (1, 'p', 'then'), (2, 'q', 'then');
    INSERT INTO pairs VALUES (0, 1, 'data_volume', 3), (1, 2, 'data_volume', 0);
";

#[test]
fn a_version_1_catalog_is_upgraded_in_place_keeping_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = Key::data_volume("K", 10);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO keys (row, id, record, json, state, final_used, added_at)
             VALUES (7, 'K', 0, ?1, 'retired', 10, 'then')",
            [key.to_json()],
        )
        .unwrap();
    }
    let catalog = Catalog::open(&path, false).unwrap();
    let keys = catalog.keys_of(0).unwrap();
    assert_eq!(keys[&7].key, key);
    assert_eq!(
        (keys[&7].state.as_str(), keys[&7].final_used),
        ("retired", Some(10))
    );
    // The same document may now sit in another pair, and the pool and trust tables exist.
    catalog.insert_pending_key(1, &key, "now").unwrap();
    assert_eq!(catalog.key_uses("K").unwrap().len(), 2);
    assert!(catalog.licenses().unwrap().is_empty());
    assert!(catalog.trusted_keys().unwrap().is_empty());
    assert_eq!(schema_version(&catalog), SCHEMA_VERSION);
    drop(catalog);
    // Opening again finds the current version and changes nothing.
    Catalog::open(&path, false).unwrap();
}

#[test]
fn a_version_2_catalog_is_upgraded_in_place_and_can_then_trust_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = Key::data_volume("K", 10);
    {
        // The version-2 schema as shipped: today's, without the trusted keys, accounts, usage
        // periods and fleet tables.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            &expand(SCHEMA)
                .replace(TRUST_TABLE, "")
                .replace(ACCOUNTS_TABLE, "")
                .replace(PERIOD_TABLES, "")
                .replace(FLEET_TABLES, ""),
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO meta VALUES ('schema_version', 2);
             INSERT INTO projects VALUES (1, 'p', 'then');
             INSERT INTO pairs VALUES (0, 1, 'data_volume', 0);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO keys (row, id, record, json, state, added_at)
             VALUES (3, 'K', 0, ?1, 'live', 'then')",
            [key.to_json()],
        )
        .unwrap();
    }
    let catalog = Catalog::open(&path, false).unwrap();
    assert_eq!(schema_version(&catalog), SCHEMA_VERSION);
    assert_eq!(catalog.keys_of(0).unwrap()[&3].key, key);
    assert!(catalog.trusted_keys().unwrap().is_empty());
    let tx = catalog.begin().unwrap();
    assert!(Catalog::trust_key(&tx, "a2V5", "now").unwrap());
    assert!(!Catalog::trust_key(&tx, "a2V5", "later").unwrap());
    tx.commit().unwrap();
    assert_eq!(
        catalog.trusted_keys().unwrap(),
        vec![("a2V5".to_owned(), "now".to_owned())]
    );
    drop(catalog);
    Catalog::open(&path, false).unwrap();
}

fn schema_version(catalog: &Catalog) -> i64 {
    catalog
        .conn
        .query_row(
            "SELECT value FROM meta WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}
