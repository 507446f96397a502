//! `tollgate metrics`: after a scripted run — bytes consumed through `pipe`, a switch, a
//! refusal, seats taken — every metric equals what the engine itself reports through `key
//! list`, `usage`, `seat status` and `events`; the text parses, passes `promtool check
//! metrics` when promtool is installed, and `--listen` serves the same text at /metrics.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::{State, BIN};

const MIB: u64 = 1 << 20;

/// Samples of an exposition, `name{labels}` → value, with the labels as printed.
fn parse(text: &str) -> BTreeMap<String, u64> {
    let mut samples = BTreeMap::new();
    let mut described = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            described.push(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let name = series.split('{').next().unwrap();
        assert!(
            described.iter().any(|d| d == name),
            "{name} comes after its TYPE line"
        );
        let value: f64 = value.parse().expect("a number");
        assert_eq!(value.fract(), 0.0, "{line}");
        let previous = samples.insert(series.to_owned(), value as u64);
        assert!(previous.is_none(), "{series} appears once");
    }
    samples
}

/// `tollgate pipe` of `bytes` zero bytes into /dev/null; returns its exit status.
fn pipe(state: &State, project: &str, bytes: u64) -> i32 {
    let output = state
        .cmd(&["pipe", "--project", project])
        .write_stdin(vec![0u8; bytes as usize])
        .output()
        .unwrap();
    output.status.code().unwrap()
}

/// A state after a scripted run: `p` consumes through a switch, then is refused (exhausted);
/// `empty` has no key and is refused (no active key); `svm` holds 3 server seats of 10; `o`
/// uses a quarter MiB of its key's overage.
fn scripted() -> State {
    let state = State::new();
    state.run("project create p").success();
    state
        .run("key add p --id A-1 --delivery online --limit 1048576")
        .success();
    state
        .run("key add p --id A-2 --delivery online --limit 2097152")
        .success();
    assert_eq!(pipe(&state, "p", MIB + MIB / 2), 0);
    assert_eq!(pipe(&state, "p", 2 * MIB), 3);
    state.run("project create empty").success();
    assert_eq!(pipe(&state, "empty", 10), 3);
    state.run("project create svm").success();
    state
        .run("key add svm --id M-1 --delivery online --machines 10 --os server")
        .success();
    state
        .run("seat acquire svm --class server --units 3")
        .success();
    state.run("project create o").success();
    state
        .run("key add o --id O-1 --delivery online --limit 1048576 --overage-percent 50")
        .success();
    assert_eq!(pipe(&state, "o", MIB + MIB / 4), 0);
    state
}

/// The metrics a state's engine reports through its other commands.
fn expected(state: &State) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for project in ["empty", "o", "p", "svm"] {
        for key in state
            .json(&format!("key list {project}"))
            .as_array()
            .unwrap()
        {
            if key["key"]["scheme"]["data_volume"].is_null() {
                continue;
            }
            let labels = format!(
                "{{key=\"{}\",project=\"{project}\",role=\"{}\"}}",
                key["key"]["id"].as_str().unwrap(),
                key["status"].as_str().unwrap()
            );
            let limit = key["key"]["scheme"]["data_volume"]["limit_bytes"]
                .as_u64()
                .unwrap();
            want.insert(
                format!("tollgate_key_used_bytes{labels}"),
                key["used"].as_u64().unwrap(),
            );
            want.insert(format!("tollgate_key_limit_bytes{labels}"), limit);
            let account_used = key["account"]["used"].as_u64().unwrap();
            want.insert(
                format!("tollgate_key_overage_bytes{labels}"),
                account_used.saturating_sub(limit),
            );
        }
        let usage = state.json(&format!("usage {project}"));
        want.insert(
            format!("tollgate_switches_total{{project=\"{project}\"}}"),
            usage["switches"].as_u64().unwrap(),
        );
        for reason in ["exhausted", "expired", "no_active_key"] {
            let refused = state
                .json(&format!("events --project {project}"))
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "refused" && e["reason"] == reason)
                .count();
            want.insert(
                format!("tollgate_refusals_total{{project=\"{project}\",reason=\"{reason}\"}}"),
                refused as u64,
            );
        }
    }
    let seats = state.json("seat status svm --class server");
    want.insert(
        "tollgate_seats_held{class=\"server\",project=\"svm\"}".to_owned(),
        seats["held"].as_u64().unwrap(),
    );
    want.insert("tollgate_events_dropped_total".to_owned(), 0);
    want
}

#[test]
fn metrics_equal_the_engines_own_usage_after_a_scripted_run() {
    let state = scripted();
    let assert = state.run("metrics").success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let got = parse(&text);
    assert_eq!(got, expected(&state), "{text}");
    // The run's own numbers, not just agreement: 1.5 MiB then 1.5 MiB more, through one
    // switch, then a refusal.
    let series = |s: &str| got[s];
    assert_eq!(
        series("tollgate_key_used_bytes{key=\"A-1\",project=\"p\",role=\"retired\"}"),
        MIB
    );
    assert_eq!(
        series("tollgate_key_used_bytes{key=\"A-2\",project=\"p\",role=\"active\"}"),
        2 * MIB
    );
    assert_eq!(series("tollgate_switches_total{project=\"p\"}"), 1);
    assert_eq!(
        series("tollgate_key_overage_bytes{key=\"O-1\",project=\"o\",role=\"active\"}"),
        MIB / 4,
        "a quarter MiB past O-1's limit, of its half MiB of overage"
    );
    assert_eq!(
        series("tollgate_refusals_total{project=\"p\",reason=\"exhausted\"}"),
        1
    );
    assert_eq!(
        series("tollgate_refusals_total{project=\"empty\",reason=\"no_active_key\"}"),
        1
    );
    assert_eq!(
        series("tollgate_seats_held{class=\"server\",project=\"svm\"}"),
        3
    );
    promtool_check(&text);
}

/// `promtool check metrics`, when Debian's `prometheus` package (or any promtool) is installed.
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed: the exposition was checked by parsing only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET path` over HTTP/1.1 from `address`: the status line, the headers and the body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_owned(), body.to_owned())
}

#[test]
fn listen_serves_the_same_metrics_until_sigterm() {
    let state = scripted();
    let mut child = std::process::Command::new(BIN)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .arg("--state")
        .arg(state.dir.path())
        .args(["metrics", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first}"));
    let address = url.strip_suffix("/metrics").unwrap();
    let (head, body) = get(address, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(parse(&body), expected(&state));
    // The server counts refusals from the audit log incrementally between scrapes: a second
    // exhaustion (a fresh key, used up) is counted once more, nothing twice.
    state
        .run("key add p --id A-3 --delivery online --limit 1048576")
        .success();
    assert_eq!(pipe(&state, "p", 2 * MIB), 3);
    let (_, body) = get(address, "/metrics");
    let got = parse(&body);
    assert_eq!(got, expected(&state));
    assert_eq!(
        got["tollgate_refusals_total{project=\"p\",reason=\"exhausted\"}"],
        2
    );
    let (head, _) = get(address, "/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with the pid of our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success(), "SIGTERM stops it cleanly");
}

#[test]
fn listen_is_loopback_unless_allowed() {
    let state = State::new();
    let refusal = state.refusal("metrics --listen 0.0.0.0:0");
    assert_eq!(refusal["error"]["code"], "NOT_LOOPBACK");
    assert!(
        !state.dir.path().join("state").exists()
            && std::fs::read_dir(state.dir.path())
                .unwrap()
                .next()
                .is_none(),
        "refused before the state is opened"
    );
}
