//! `pg_dump src | tollgate pipe | psql dst` between two databases of a PostgreSQL server the test
//! starts (initdb into a temporary directory, a Unix socket there, no TCP), `src` initialised
//! by pgbench: the row counts are equal, the dump went through a switch, and the bytes charged
//! are the bytes of the dump.
//!
//! The server is the fleet store's test server (`store/tests/common`): without PostgreSQL's
//! server binaries the test says so loudly and passes.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;

// The fleet store's test server, shared with `store/tests/` rather than copied.
#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::path::Path;
use std::process::Command;

use common::{State, BIN};
use postgres::Server;

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn pg_dump_through_pipe_into_psql_copies_every_row() {
    let Some(server) = Server::start("pg_dump_through_pipe_into_psql_copies_every_row") else {
        return;
    };
    server.client("createdb", &["src"]);
    server.client("createdb", &["dst"]);
    server.client("pgbench", &["-i", "-s", "1", "-q", "src"]);

    let state = State::new();
    state.run("project create db").success();
    // The Active key runs out a few MB into the dump.
    state
        .run("key add db --id DB-1 --delivery online --limit 4MB")
        .success();
    state
        .run("key add db --id DB-2 --delivery online --limit 1GiB")
        .success();
    let dump = state.installation.path().join("dump.sql");
    let socket = server.socket();
    let line = format!(
        "set -o pipefail; {pg}/pg_dump -h {socket} -U postgres src \
         | {BIN} --state {state} pipe --project db \
         | tee {dump} \
         | {pg}/psql -q -v ON_ERROR_STOP=1 -h {socket} -U postgres -d dst >/dev/null",
        pg = server.bin().display(),
        state = state.dir.path().display(),
        dump = dump.display(),
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&line)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("switched from key \"DB-1\" to key \"DB-2\"")
            .count(),
        1,
        "{stderr}"
    );

    for table in [
        "pgbench_accounts",
        "pgbench_branches",
        "pgbench_tellers",
        "pgbench_history",
    ] {
        assert_eq!(
            server.count("dst", table),
            server.count("src", table),
            "{table}"
        );
    }
    assert_eq!(server.count("dst", "pgbench_accounts"), 100_000);

    let keys = state.json("key list db");
    let charged: u64 = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["used"].as_u64().unwrap())
        .sum();
    assert_eq!(charged, len(&dump), "charged == the bytes of the dump");
    assert_eq!(keys[0]["used"].as_u64().unwrap(), 4_000_000);
}
