//! A PostgreSQL server for one test: `initdb` into a temporary directory, a Unix socket there,
//! no TCP unless asked for ([`Server::start_with_tcp`]), stopped and removed on drop. Also the server of `cli/tests/lease.rs` and
//! `cli/tests/pipe_postgres.rs`, which include this file by `#[path]`.
//!
//! The server binaries are looked for under /usr/lib/postgresql/*/bin (Debian's `postgresql`
//! package, which `.ci/run` installs); without them [`Server::start`] returns `None` and the
//! test says so loudly and passes. As root the server runs as the `postgres` user, since
//! PostgreSQL refuses to run as root; the temporary directory is then opened to it (TMPDIR
//! itself need only let others enter, as `scripts/test.sh` makes it).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory of PostgreSQL's server programs, the newest version installed.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A PostgreSQL server on a Unix socket in a temporary directory, stopped on drop.
pub struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    /// The loopback TCP port it also listens on, if any (and its socket's number then).
    port: Option<u16>,
}

impl Server {
    /// Starts a fresh server, or says why not and returns `None` when PostgreSQL is absent.
    pub fn start(test: &str) -> Option<Server> {
        Server::start_on(test, None)
    }

    /// [`Server::start`], the server also listening on a free port of 127.0.0.1
    /// ([`Server::tcp_port`]): for a test that puts something between client and server.
    pub fn start_with_tcp(test: &str) -> Option<Server> {
        // A port the kernel found free a moment ago: another process could take it before
        // the server binds it, which would fail the start loudly, not silently.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        Server::start_on(test, Some(port))
    }

    fn start_on(test: &str, port: Option<u16>) -> Option<Server> {
        let Some(bin) = server_bin() else {
            eprintln!(
                "\n*** {test}: SKIPPED: PostgreSQL's server binaries are not installed \
                 (/usr/lib/postgresql/*/bin); install Debian's postgresql package ***\n"
            );
            return None;
        };
        // /proc/self belongs to the process's effective user: root when uid 0.
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let server = Server {
            bin,
            dir,
            as_postgres,
            port,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.start_again();
        Some(server)
    }

    /// Starts the (stopped) server on its data directory and waits until it accepts.
    pub fn start_again(&self) {
        let listen = match self.port {
            Some(port) => format!("-c listen_addresses=127.0.0.1 -p {port}"),
            None => "-c listen_addresses=''".to_owned(),
        };
        let options = format!(
            "-k {} {listen} -c fsync=off -c max_connections=60",
            self.socket()
        );
        let log = format!("{}/log", self.socket());
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Connection parameters for the `postgres` database over the Unix socket.
    pub fn params(&self) -> String {
        format!(
            "host={} {}user=postgres dbname=postgres",
            self.socket(),
            self.port_param()
        )
    }

    /// The loopback TCP port of a server started with [`Server::start_with_tcp`].
    pub fn tcp_port(&self) -> u16 {
        self.port.expect("a server started with TCP")
    }

    /// `port=N ` when the server has a port of its own (which also names its socket).
    fn port_param(&self) -> String {
        self.port
            .map_or(String::new(), |port| format!("port={port} "))
    }

    fn data(&self) -> String {
        format!("{}/data", self.socket())
    }

    /// The socket's directory (`-h` of the client programs).
    pub fn socket(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// The directory of the server's programs, clients included (`pg_dump`, `psql`, …).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs a client program against the server as user `postgres` and expects success.
    pub fn client(&self, program: &str, args: &[&str]) -> Output {
        let output = Command::new(self.bin.join(program))
            .args(["-h", &self.socket(), "-U", "postgres"])
            .args(self.port.map(|port| format!("-p{port}")))
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
    pub fn count(&self, database: &str, table: &str) -> u64 {
        let query = format!("SELECT count(*) FROM {table}");
        let output = self.client("psql", &["-At", "-d", database, "-c", &query]);
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs a server program as the server's user and expects success.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A started server with the schema migrated, and one store connected to it.
pub fn fleet(
    test: &str,
    terms: tollgate_store::LeaseTerms,
) -> Option<(Server, tollgate_store::Store)> {
    let server = Server::start(test)?;
    let mut store = tollgate_store::Store::connect_with(&server.params(), terms).unwrap();
    store.migrate().unwrap();
    Some((server, store))
}
