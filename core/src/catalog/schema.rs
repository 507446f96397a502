//! The catalog's schema: its tables, its version, and the upgrade from each older version.

/// Version of the catalog schema this build reads and writes. Older versions are upgraded in
/// place at open: version 1 (before pools, groups and keys shared by several projects),
/// version 2 (before trusted vendor keys), version 3 (before key accounts), version 4
/// (before usage periods) and version 5 (before fleet mode).
pub(super) const SCHEMA_VERSION: i64 = 6;

pub(super) const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE pairs (
    record INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    class TEXT NOT NULL,
    synced_epoch INTEGER NOT NULL,
    UNIQUE (project_id, class)
);
KEYS_TABLE
CREATE TABLE switches (key_row INTEGER PRIMARY KEY);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    project TEXT NOT NULL,
    json TEXT NOT NULL
);
POOL_TABLES
TRUST_TABLE
ACCOUNTS_TABLE
PERIOD_TABLES
FLEET_TABLES
";

/// The key table. A key id names one key document; the same document may sit in the pairs of
/// several projects (the activation task of rule R8 in docs/rules.md adds one reserve key to every
/// SVM of a cluster), but only once per pair.
pub(super) const KEYS_TABLE: &str = "
CREATE TABLE keys (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    record INTEGER NOT NULL REFERENCES pairs(record),
    json TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'retired', 'removed')),
    final_used INTEGER,
    added_at TEXT NOT NULL,
    ended_at TEXT,
    UNIQUE (id, record)
);
CREATE INDEX keys_by_id ON keys (id);
CREATE INDEX keys_by_record ON keys (record);
CREATE INDEX keys_pending ON keys (record) WHERE state = 'pending';
";

/// Groups, companies, purchases, pool licenses and instances (rules R8 and R22–R26 in
/// docs/rules.md).
pub(super) const POOL_TABLES: &str = "
CREATE TABLE groups (
    name TEXT NOT NULL,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    PRIMARY KEY (name, project_id)
);
CREATE TABLE companies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE purchases (
    id INTEGER PRIMARY KEY,
    license_type TEXT NOT NULL CHECK (license_type IN ('server', 'desktop', 'workstation')),
    kind TEXT NOT NULL CHECK (kind IN ('commercial', 'trial')),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    company_id INTEGER REFERENCES companies(id),
    expires_at TEXT,
    auto_renew INTEGER NOT NULL,
    payment_mode TEXT NOT NULL CHECK (payment_mode IN ('monthly', 'annual')),
    premium_support INTEGER NOT NULL,
    onboarding INTEGER NOT NULL,
    bought_at TEXT NOT NULL
);
CREATE TABLE licenses (
    id TEXT PRIMARY KEY,
    purchase_id INTEGER NOT NULL REFERENCES purchases(id),
    instance_id INTEGER UNIQUE REFERENCES projects(id),
    key_id TEXT,
    assigned_at TEXT
);
CREATE TABLE instances (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    os TEXT NOT NULL CHECK (os IN ('windows', 'macos', 'linux')),
    company_id INTEGER REFERENCES companies(id)
);
CREATE TABLE assignments (serial INTEGER PRIMARY KEY, license_id TEXT NOT NULL);
";

/// The vendor public keys the state trusts (base64, as `VendorPublic::fingerprint` writes
/// them). Rows are only ever added: a state that trusts a key cannot be made to forget it.
pub(super) const TRUST_TABLE: &str = "
CREATE TABLE trusted_keys (public TEXT PRIMARY KEY, added_at TEXT NOT NULL);
";

/// The hot-state record of each data-volume key's quota account, by key id (see
/// `slot::account`). Rows are only ever added: an account outlives every pair that held its key.
pub(super) const ACCOUNTS_TABLE: &str = "
CREATE TABLE accounts (key_id TEXT PRIMARY KEY, record INTEGER NOT NULL UNIQUE);
";

/// Usage periods of keys with a `reset` term (rule R40 in docs/rules.md): each account's term
/// and current period start (Unix seconds; NULL for a key without a reset), what each key row had used when
/// the last period closed (`closed_used`: its usage in the current period is what it used
/// beyond that), and every closed period with its usage. Added by ALTER so that the key table's
/// shape stays the one `UPGRADE_FROM_1` copies.
pub(super) const PERIOD_TABLES: &str = "
ALTER TABLE accounts ADD COLUMN reset TEXT;
ALTER TABLE accounts ADD COLUMN period INTEGER;
ALTER TABLE keys ADD COLUMN closed_used INTEGER NOT NULL DEFAULT 0;
CREATE TABLE periods (
    key_id TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    used INTEGER NOT NULL,
    closed_at TEXT NOT NULL,
    PRIMARY KEY (key_id, starts_at)
);
";

/// Upgrades a version-1 catalog to version 2: the key table loses its global id uniqueness
/// (rebuilt, since SQLite cannot drop a constraint) and the pool tables are added.
pub(super) const UPGRADE_FROM_1: &str = "
ALTER TABLE keys RENAME TO keys_v1;
DROP INDEX keys_by_record;
DROP INDEX keys_pending;
KEYS_TABLE
INSERT INTO keys SELECT * FROM keys_v1;
DROP TABLE keys_v1;
POOL_TABLES
";

/// Upgrades a version-2 catalog to version 3: the trusted vendor keys.
pub(super) const UPGRADE_FROM_2: &str = "TRUST_TABLE";

/// Upgrades a version-3 catalog to version 4: key accounts (filled in by the engine at open).
pub(super) const UPGRADE_FROM_3: &str = "ACCOUNTS_TABLE";

/// Fleet mode (`engine::fleet`): the host the state meters for in a fleet (one row, none for
/// an embedded state) with the last change of the fleet's admin log it applied, and the leases of the fleet store this host holds: the store's lease
/// id, its key, its block (`granted`), what the host drew of it (`drawn`) and reported used
/// (`reported`), its last applied renewal (`seq`), where its drawn part starts in the key's
/// stock (`base`: the account's `supply` before its first draw), whether the store closed
/// it before this host settled it (`lapsed`), and how much of its drawn part a closing engine
/// gave back unused (`returned`).
pub(super) const FLEET_TABLES: &str = "
CREATE TABLE fleet_host (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    name TEXT NOT NULL,
    admin_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE fleet_leases (
    id INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    granted INTEGER NOT NULL,
    drawn INTEGER NOT NULL,
    reported INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    base INTEGER NOT NULL,
    lapsed INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0
);
";

/// Upgrades a version-5 catalog to version 6: fleet mode.
pub(super) const UPGRADE_FROM_5: &str = "FLEET_TABLES";

/// Upgrades a version-4 catalog to version 5: usage periods.
pub(super) const UPGRADE_FROM_4: &str = "PERIOD_TABLES";

/// The upgrade from each older version to the next, by the version it starts from.
pub(super) const UPGRADES: [(i64, &str); 5] = [
    (1, UPGRADE_FROM_1),
    (2, UPGRADE_FROM_2),
    (3, UPGRADE_FROM_3),
    (4, UPGRADE_FROM_4),
    (5, UPGRADE_FROM_5),
];

/// The schema text with its shared table definitions filled in.
pub(super) fn expand(sql: &str) -> String {
    sql.replace("KEYS_TABLE", KEYS_TABLE)
        .replace("POOL_TABLES", POOL_TABLES)
        .replace("TRUST_TABLE", TRUST_TABLE)
        .replace("ACCOUNTS_TABLE", ACCOUNTS_TABLE)
        .replace("PERIOD_TABLES", PERIOD_TABLES)
        .replace("FLEET_TABLES", FLEET_TABLES)
}
