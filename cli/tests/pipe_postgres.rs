//! `pg_dump src | tollgate pipe | psql dst` between two databases of a PostgreSQL server the test
//! starts (initdb into a temporary directory, a Unix socket there, no TCP), `src` initialised
//! by pgbench: the row counts are equal, the dump went through a switch, and the bytes charged
//! are the bytes of the dump.
//!
//! PostgreSQL's server binaries are looked for under /usr/lib/postgresql/*/bin (Debian's
//! `postgresql` package, which `.ci/run` installs); without them the test says so and passes.
//! As root the server runs as the `postgres` user, since PostgreSQL refuses to run as root.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{State, BIN};

/// The directory of PostgreSQL's server programs, the newest version installed.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("pgbench").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A PostgreSQL server on a Unix socket in a temporary directory, stopped on drop.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

impl Server {
    fn start(bin: PathBuf) -> Server {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let server = Server {
            bin,
            dir,
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let options = format!("-k {} -c listen_addresses='' -c fsync=off", server.socket());
        let log = format!("{}/log", server.socket());
        server.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        server
    }

    fn data(&self) -> String {
        format!("{}/data", self.socket())
    }

    /// The socket's directory.
    fn socket(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Runs a server program as the server's user and expects success.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs a client program against the server and expects success.
    fn client(&self, program: &str, args: &[&str]) -> Output {
        let output = Command::new(self.bin.join(program))
            .args(["-h", &self.socket(), "-U", "postgres"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `SELECT count(*) FROM table` in `database`.
    fn count(&self, database: &str, table: &str) -> u64 {
        let query = format!("SELECT count(*) FROM {table}");
        let output = self.client("psql", &["-At", "-d", database, "-c", &query]);
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn pg_dump_through_pipe_into_psql_copies_every_row() {
    let Some(bin) = server_bin() else {
        eprintln!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): test skipped");
        return;
    };
    let server = Server::start(bin.clone());
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
        pg = bin.display(),
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
