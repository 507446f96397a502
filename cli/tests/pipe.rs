//! `tollgate pipe` in real pipelines of real processes: the bytes that come out are the bytes
//! that went in, and the bytes charged are the bytes written, through a switch, a refusal and a
//! reader that closes early.
//!
//! The default run streams 256 MiB; `TOLLGATE_PIPE_TEST_GIB=1` streams 1 GiB, the proof.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{State, BIN};

const MIB: u64 = 1 << 20;

/// The size of the large stream.
fn large() -> u64 {
    if std::env::var_os("TOLLGATE_PIPE_TEST_GIB").is_some_and(|v| v == "1") {
        1024 * MIB
    } else {
        256 * MIB
    }
}

/// A file of `bytes` random bytes in the state's temporary directory.
fn random_file(state: &State, name: &str, bytes: u64) -> std::path::PathBuf {
    let path = state.installation.path().join(name);
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {bytes} /dev/urandom > '{}'",
            path.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
    path
}

/// Runs a bash script in which `$TG` is `tollgate --state DIR` with the test's installation.
/// `set -o pipefail` is off: each test asks for the exit status it means (`PIPESTATUS`).
fn script(state: &State, text: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(text)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .env(
            "TG",
            format!("{BIN} --state {}", state.dir.path().display()),
        )
        .current_dir(state.installation.path())
        .output()
        .unwrap()
}

/// A project `p` with an Active key `A-1` and a Reserved key `A-2` of these limits.
fn project(state: &State, active: u64, reserve: u64) {
    state.run("project create p").success();
    state
        .run(&format!(
            "key add p --id A-1 --delivery online --limit {active}"
        ))
        .success();
    state
        .run(&format!(
            "key add p --id A-2 --delivery online --limit {reserve}"
        ))
        .success();
}

/// Bytes charged to each key of `p`, by id, and the pair's switches.
fn charged(state: &State) -> (Vec<(String, u64)>, u64) {
    let keys = state.json("key list p");
    let keys = keys
        .as_array()
        .expect("a list of keys")
        .iter()
        .map(|k| {
            (
                k["key"]["id"].as_str().unwrap().to_owned(),
                k["used"].as_u64().unwrap(),
            )
        })
        .collect();
    let switches = state.json("usage p")["switches"].as_u64().unwrap();
    (keys, switches)
}

fn total(keys: &[(String, u64)]) -> u64 {
    keys.iter().map(|(_, used)| used).sum()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Bytes of the stream through the switch, between pipes (the splice path) or files (the
/// read/write path): the output is the input, charged == written, and exactly one switch is
/// reported.
fn through_a_switch(via_pipes: bool, bytes: u64) {
    let state = State::new();
    // The Active key runs out mid-chunk, at no round number.
    let active = bytes / 3 + 12_345;
    project(&state, active, bytes);
    let input = random_file(&state, "in", bytes);
    let line = if via_pipes {
        "cat in | $TG pipe --project p | cat > out; exit ${PIPESTATUS[1]}"
    } else {
        "$TG pipe --project p < in > out"
    };
    let output = script(&state, line);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = state.installation.path().join("out");
    assert!(
        script(&state, "cmp in out").status.success(),
        "the output differs from the input"
    );
    assert_eq!(len(&out), len(&input));
    let (keys, switches) = charged(&state);
    assert_eq!(
        keys,
        vec![
            ("A-1".to_owned(), active),
            ("A-2".to_owned(), bytes - active)
        ]
    );
    assert_eq!(total(&keys), len(&out), "charged == written");
    assert_eq!(switches, 1);
    let text = stderr(&output);
    assert_eq!(
        text.matches("switched from key \"A-1\" to key \"A-2\"")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "only the switch is told: {text}");
}

#[test]
fn a_large_stream_between_pipes_goes_through_the_switch() {
    through_a_switch(true, large());
}

#[test]
fn a_stream_between_files_goes_through_the_switch() {
    through_a_switch(false, 64 * MIB);
}

/// When the keys run out mid-stream, exactly what they still granted is written, then the
/// refusal and its rule, and exit status 3; on both paths.
#[test]
fn a_refusal_mid_stream_writes_what_was_granted_and_exits_3() {
    for (via_pipes, line) in [
        (
            true,
            "cat in | $TG pipe --project p --chunk 256KiB | cat > out; exit ${PIPESTATUS[1]}",
        ),
        (false, "$TG pipe --project p < in > out"),
    ] {
        let state = State::new();
        let (active, reserve) = (10 * MIB + 333, 5 * MIB + 7);
        project(&state, active, reserve);
        random_file(&state, "in", 32 * MIB);
        let output = script(&state, line);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "pipes {via_pipes}: {text}");
        let out = state.installation.path().join("out");
        assert_eq!(len(&out), active + reserve, "pipes {via_pipes}");
        let prefix = format!("cmp -n {} in out", active + reserve);
        assert!(
            script(&state, &prefix).status.success(),
            "a prefix of the input"
        );
        let (keys, switches) = charged(&state);
        assert_eq!(total(&keys), len(&out), "charged == written");
        assert_eq!(switches, 1);
        assert!(
            text.contains("rule EXHAUSTED: pipe forwards exactly"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} bytes written and charged", active + reserve)),
            "{text}"
        );
    }
}

/// What `pipe` reports when its reader closes early: (written, charged, charged but not
/// written).
fn closed_report(text: &str) -> (u64, u64, u64) {
    let line = text
        .lines()
        .find(|l| l.contains("the reader closed standard output"))
        .unwrap_or_else(|| panic!("no report of the closed reader: {text}"));
    let number_before = |word: &str| -> u64 {
        let end = line.find(word).unwrap_or_else(|| panic!("{word}: {line}"));
        line[..end]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let unwritten = if line.contains("charged but not written") {
        number_before(" of them charged")
    } else {
        0
    };
    (
        number_before(" bytes written"),
        number_before(" bytes charged"),
        unwritten,
    )
}

/// The capacity a pipe can be grown to: what a reader may leave unread when it closes.
fn pipe_max() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(MIB)
}

/// A reader that closes early (`head -c`): the guarantee tested is
/// - charged (in the state) == what pipe reports charged == written + charged-but-not-written,
///   the last at most one piece (a chunk), and 0 unless the reader closed in the instant
///   between a piece's charge and its move;
/// - the reader got its bytes, and written exceeds them by at most what the output pipe can
///   hold unread (its capacity, at most `pipe-max-size`).
///
/// Exit status 0: the reader chose to stop.
#[test]
fn a_reader_that_closes_early_is_charged_what_was_written() {
    let took = 3_000_000u64;
    let chunk = 256 * 1024;
    for line in [
        "cat in | $TG pipe --project p --chunk 256KiB | head -c 3000000 > got; exit ${PIPESTATUS[1]}",
        "$TG pipe --project p --chunk 256KiB < in | head -c 3000000 > got; exit ${PIPESTATUS[0]}",
    ] {
        let state = State::new();
        project(&state, 64 * MIB, 64 * MIB);
        random_file(&state, "in", 32 * MIB);
        let output = script(&state, line);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{line}: {text}");
        assert_eq!(len(&state.installation.path().join("got")), took);
        assert!(script(&state, "cmp -n 3000000 in got").status.success());
        let (written, reported, unwritten) = closed_report(&text);
        let (keys, _) = charged(&state);
        assert_eq!(total(&keys), reported, "{line}: {text}");
        assert_eq!(written + unwritten, reported, "{line}: {text}");
        assert!(unwritten <= chunk, "{line}: {text}");
        assert!(written >= took, "{line}: {text}");
        assert!(written <= took + pipe_max(), "{line}: {text}");
    }
}

/// A project without a key writes nothing and exits 3; an unknown project is an error (1).
#[test]
fn no_key_writes_nothing() {
    let state = State::new();
    state.run("project create p").success();
    let output = script(&state, "echo hello | $TG pipe --project p > out");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(len(&state.installation.path().join("out")), 0);
    assert!(stderr(&output).contains("rule NO_ACTIVE_KEY"));
    // Standard output carries the data only: --json prints no error document there.
    let output = script(
        &state,
        "echo hello | $TG --json pipe --project nobody > out",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("project \"nobody\" does not exist"));
    assert_eq!(len(&state.installation.path().join("out")), 0);
    let output = script(&state, "$TG pipe --project p --chunk 1KiB < /dev/null");
    assert_eq!(output.status.code(), Some(2));
}

/// The end of the input with nothing in it charges nothing.
#[test]
fn an_empty_input_charges_nothing() {
    let state = State::new();
    project(&state, MIB, MIB);
    for line in [
        "$TG pipe --project p < /dev/null > out",
        "true | $TG pipe --project p | cat > out",
    ] {
        let output = script(&state, line);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(len(&state.installation.path().join("out")), 0);
    }
    assert_eq!(total(&charged(&state).0), 0);
}

/// `--progress` without a terminal: a line a second while it runs, and one at the end with the
/// bytes copied and each key's usage; without it, nothing.
#[test]
fn progress_lines_without_a_terminal() {
    let state = State::new();
    project(&state, 2 * MIB, 8 * MIB);
    random_file(&state, "in", 3 * MIB);
    let output = script(&state, "$TG pipe --project p --progress < in > out");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    let last = text.lines().last().unwrap();
    assert_eq!(
        last,
        "tollgate pipe: 3.00 MiB copied · ".to_owned()
            + last.split(" · ").nth(1).unwrap()
            + " · key A-2 12 %",
        "{text}"
    );
    assert!(last.split(" · ").nth(1).unwrap().ends_with("/s"), "{text}");
    let output = script(&state, "$TG pipe --project p < in > out");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stderr(&output), "", "silent without --progress");
}
