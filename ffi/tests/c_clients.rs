//! Builds the C and C++ clients against `include/tollgate.h`, links each once to
//! `libtollgate.so` and once to `libtollgate.a`, and runs them: natively, then under valgrind
//! (`--leak-check=full`, errors fail the test) when valgrind is on PATH.

mod common;

// The PostgreSQL server of the fleet client: the store crate's test harness.
#[allow(dead_code)]
#[path = "../../store/tests/common/mod.rs"]
mod postgres;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_success, build, compiler, library_dir, this_build_library, workspace, Language, Linkage,
};
/// The core starts one process-wide clock thread that lives until the process exits (it is
/// never joined, by design); glibc's per-thread TLS block of such a thread is reported as
/// "possibly lost" at exit. Waking an event subscriber (the callback thread of
/// `tg_engine_on_event`) from a thread Rust did not start, such as C's main thread, makes
/// crossbeam ask for `std::thread::current()`, whose handle that thread keeps until its TLS
/// destructors run: never, for the main thread, as the process exits first. Nothing else is
/// suppressed.
const VALGRIND_SUPPRESSIONS: &str = r#"
{
   tollgate-current-thread-handle-of-the-main-thread
   Memcheck:Leak
   match-leak-kinds: possible
   fun:malloc
   ...
   fun:*init_current*
}
{
   tollgate-clock-thread-lives-until-exit
   Memcheck:Leak
   match-leak-kinds: possible
   fun:calloc
   ...
   fun:_dl_allocate_tls
   ...
   fun:*Clock*system*
}
"#;

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `exe` with a fresh state directory as first argument, natively and then under
/// valgrind, and returns the native run's stdout.
fn run(exe: &Path, extra_args: &[&str], valgrind_args: &[&str]) -> String {
    let state = tempfile::tempdir().expect("temp state dir");
    let output = this_build_library(&mut Command::new(exe))
        .env("TOLLGATE_INSTALLATION", common::installation(state.path()))
        .arg(state.path())
        .args(extra_args)
        .output()
        .expect("run the client");
    assert_success(&format!("{}", exe.display()), &output);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();

    if valgrind_available() {
        let state = tempfile::tempdir().expect("temp state dir");
        let scratch = tempfile::tempdir().expect("temp dir");
        let suppressions = scratch.path().join("tollgate.supp");
        std::fs::write(&suppressions, VALGRIND_SUPPRESSIONS).expect("write suppressions");
        let output = this_build_library(&mut Command::new("valgrind"))
            .env("TOLLGATE_INSTALLATION", common::installation(state.path()))
            .args(["--error-exitcode=99", "--leak-check=full", "--quiet"])
            .arg(format!("--suppressions={}", suppressions.display()))
            .arg(exe)
            .arg(state.path())
            .args(valgrind_args)
            .output()
            .expect("run valgrind");
        assert_success(&format!("valgrind {}", exe.display()), &output);
    } else {
        eprintln!(
            "valgrind is not on PATH: {} ran natively only",
            exe.display()
        );
    }
    stdout
}

fn client(source: &str, language: Language, linkage: Linkage) -> (PathBuf, tempfile::TempDir) {
    let out_dir = tempfile::tempdir().expect("temp build dir");
    let exe = build(source, language, linkage, out_dir.path());
    (exe, out_dir)
}

/// Builds one self-checking client, runs it on a fresh state with `args` (also under valgrind),
/// and asserts it printed each of `expected` and its final "checks passed".
fn checks_pass(
    source: &str,
    language: Language,
    linkage: Linkage,
    args: &[&str],
    expected: &[&str],
) {
    let (exe, _dir) = client(source, language, linkage);
    let stdout = run(&exe, args, args);
    for line in expected {
        assert!(stdout.contains(line), "{stdout}");
    }
    assert!(stdout.contains("checks passed"), "{stdout}");
}

/// The signed license fixtures, for the clients that verify signatures.
fn fixtures() -> String {
    let fixtures = workspace().join("tests/fixtures/licenses");
    fixtures
        .to_str()
        .expect("a UTF-8 workspace path")
        .to_owned()
}

fn c_test_api(linkage: Linkage) {
    checks_pass("tests/c/test_api.c", Language::C, linkage, &[], &[]);
}

fn c_pools_seats(linkage: Linkage) {
    checks_pass(
        "tests/c/pools_seats.c",
        Language::C,
        linkage,
        &[],
        &["pools_seats:"],
    );
}

fn c_signatures(linkage: Linkage) {
    let fixtures = fixtures();
    checks_pass(
        "tests/c/signatures.c",
        Language::C,
        linkage,
        &[&fixtures],
        &["signatures:"],
    );
}

fn c_events(linkage: Linkage) {
    checks_pass(
        "tests/c/events.c",
        Language::C,
        linkage,
        &[],
        &["switch seen once by the callback while 4 threads consumed 2000 bytes"],
    );
}

fn c_fork(linkage: Linkage) {
    checks_pass(
        "tests/c/fork.c",
        Language::C,
        linkage,
        &[],
        &["the child closed its inherited handles, then metered 100 bytes"],
    );
}

fn c_usage_v2(linkage: Linkage) {
    checks_pass(
        "tests/c/usage_v2.c",
        Language::C,
        linkage,
        &[],
        &["total 125 bytes over 3 keys, 1 switch"],
    );
}

fn c_thread_handles(linkage: Linkage) {
    checks_pass(
        "tests/c/thread_handles.c",
        Language::C,
        linkage,
        &[],
        &["threads granted", "exactly as charged, 1 switch"],
    );
}

fn c_options(linkage: Linkage) {
    let fixtures = fixtures();
    checks_pass(
        "tests/c/options.c",
        Language::C,
        linkage,
        &[&fixtures],
        &["options:"],
    );
}

/// The fleet client against a PostgreSQL server of this test's own (without the server
/// binaries it says so loudly and passes): natively it drains 16 MiB as host `c-native`, under
/// valgrind 2 MiB as host `c-valgrind`, each its own key; afterwards the store charged each key
/// exactly its limit, and nothing of it is leased or in doubt, the engine's close having
/// settled its leases.
fn c_fleet(linkage: Linkage) {
    let test = format!("c_fleet_{linkage:?}").to_lowercase();
    let Some(server) = postgres::Server::start(&test) else {
        return;
    };
    let params = server.params();
    let native = ("c-native", "FLEET-C-NATIVE", 16u64 << 20);
    let valgrind = ("c-valgrind", "FLEET-C-VALGRIND", 2u64 << 20);
    let (native_limit, valgrind_limit) = (native.2.to_string(), valgrind.2.to_string());
    let (exe, _dir) = client("tests/c/fleet.c", Language::C, linkage);
    let stdout = run(
        &exe,
        &[&params, native.0, native.1, &native_limit],
        &[&params, valgrind.0, valgrind.1, &valgrind_limit],
    );
    assert!(
        stdout.contains("fleet: host c-native drained key FLEET-C-NATIVE: 16777216 of 16777216"),
        "{stdout}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    let mut store = tollgate_store::Store::connect(&params).expect("connect to the store");
    let mut ran = vec![native];
    if valgrind_available() {
        ran.push(valgrind);
    }
    for (host, key, limit) in ran {
        let account = store.account(key).expect("the key's store account");
        assert_eq!(
            (account.used, account.leased, account.in_doubt),
            (limit, 0, 0),
            "{host}'s key {key}: used, leased, in doubt"
        );
    }
}

fn cpp_copier(linkage: Linkage) {
    let (exe, _dir) = client("examples/cpp/copier.cpp", Language::Cxx, linkage);
    // Natively 4 threads over 16 MiB; under valgrind 3 threads over 2 MiB.
    let stdout = run(&exe, &["4", "16"], &["3", "2"]);
    assert!(stdout.contains("switched: key copy-"), "{stdout}");
    assert!(
        stdout.contains("is exhausted, now metering copy-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("charged         16777216 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("OK: every byte copied"), "{stdout}");
}

fn cpp_hpp(linkage: Linkage) {
    checks_pass("tests/cpp/hpp.cpp", Language::Cxx, linkage, &[], &["hpp:"]);
}

fn cpp_test_api(linkage: Linkage) {
    checks_pass("tests/cpp/test_api.cpp", Language::Cxx, linkage, &[], &[]);
}

fn migrator(linkage: Linkage) {
    let (exe, _dir) = client("examples/c/migrator.c", Language::C, linkage);
    // Natively 4 threads over 24 MiB; under valgrind, which runs the threads one at a time
    // and each instruction many times slower, 3 threads over 3 MiB.
    let stdout = run(&exe, &["4", "24"], &["3", "3"]);
    assert!(stdout.contains("switches        1"), "{stdout}");
    assert!(stdout.contains("OK: every byte copied"), "{stdout}");
}

#[test]
fn c_test_api_shared() {
    c_test_api(Linkage::Shared);
}

#[test]
fn c_test_api_static() {
    c_test_api(Linkage::Static);
}

#[test]
fn c_pools_seats_shared() {
    c_pools_seats(Linkage::Shared);
}

#[test]
fn c_pools_seats_static() {
    c_pools_seats(Linkage::Static);
}

#[test]
fn c_signatures_shared() {
    c_signatures(Linkage::Shared);
}

#[test]
fn c_signatures_static() {
    c_signatures(Linkage::Static);
}

#[test]
fn c_events_shared() {
    c_events(Linkage::Shared);
}

#[test]
fn c_events_static() {
    c_events(Linkage::Static);
}

#[test]
fn c_fork_shared() {
    c_fork(Linkage::Shared);
}

#[test]
fn c_fork_static() {
    c_fork(Linkage::Static);
}

#[test]
fn c_usage_v2_shared() {
    c_usage_v2(Linkage::Shared);
}

#[test]
fn c_usage_v2_static() {
    c_usage_v2(Linkage::Static);
}

#[test]
fn c_thread_handles_shared() {
    c_thread_handles(Linkage::Shared);
}

#[test]
fn c_thread_handles_static() {
    c_thread_handles(Linkage::Static);
}

#[test]
fn c_options_shared() {
    c_options(Linkage::Shared);
}

#[test]
fn c_options_static() {
    c_options(Linkage::Static);
}

#[test]
fn c_fleet_shared() {
    c_fleet(Linkage::Shared);
}

#[test]
fn c_fleet_static() {
    c_fleet(Linkage::Static);
}

#[test]
fn cpp_copier_shared() {
    cpp_copier(Linkage::Shared);
}

#[test]
fn cpp_copier_static() {
    cpp_copier(Linkage::Static);
}

#[test]
fn cpp_hpp_shared() {
    cpp_hpp(Linkage::Shared);
}

#[test]
fn cpp_hpp_static() {
    cpp_hpp(Linkage::Static);
}

#[test]
fn cpp_test_api_shared() {
    cpp_test_api(Linkage::Shared);
}

#[test]
fn cpp_test_api_static() {
    cpp_test_api(Linkage::Static);
}

#[test]
fn c_migrator_shared() {
    migrator(Linkage::Shared);
}

#[test]
fn c_migrator_static() {
    migrator(Linkage::Static);
}

/// `scripts/install-c.sh` lays the library out like cargo-c, and a client builds with nothing but
/// `pkg-config --cflags --libs tollgate`. The script installs this build's libraries
/// (`TOLLGATE_LIB_DIR`) instead of making a release build of its own.
#[test]
fn installed_library_builds_clients_through_pkg_config() {
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("pkg-config is not on PATH: install check skipped");
        return;
    }
    let prefix = tempfile::tempdir().expect("temp prefix");
    let output = Command::new("bash")
        .arg(workspace().join("scripts/install-c.sh"))
        .arg(prefix.path())
        .env("TOLLGATE_LIB_DIR", library_dir())
        .env_remove("LIBDIR")
        .env_remove("INCLUDEDIR")
        .env_remove("DESTDIR")
        .output()
        .expect("run scripts/install-c.sh");
    assert_success("scripts/install-c.sh", &output);

    let lib = prefix.path().join("lib");
    let version = env!("CARGO_PKG_VERSION");
    for file in [
        format!("libtollgate.so.{version}"),
        "libtollgate.so".to_owned(),
        "libtollgate.a".to_owned(),
        "pkgconfig/tollgate.pc".to_owned(),
    ] {
        assert!(lib.join(&file).exists(), "{file} is not installed");
    }
    assert!(prefix.path().join("include/tollgate/tollgate.h").is_file());
    assert!(prefix
        .path()
        .join("include/tollgate/tollgate.hpp")
        .is_file());
    // The shared library ships without its debug info, which lies beside it (the migrator
    // below runs against the stripped library).
    let debug = lib.join(format!(".debug/libtollgate.so.{version}.debug"));
    assert!(debug.is_file(), "{} is not installed", debug.display());
    if let Ok(sections) = Command::new("readelf")
        .arg("-S")
        .arg(lib.join(format!("libtollgate.so.{version}")))
        .output()
    {
        let sections = String::from_utf8_lossy(&sections.stdout);
        assert!(sections.contains(".gnu_debuglink"), "{sections}");
        assert!(!sections.contains(".debug_info"), "{sections}");
    }

    let pkg_config = |args: &[&str]| -> String {
        let output = Command::new("pkg-config")
            .args(args)
            .arg("tollgate")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .output()
            .expect("run pkg-config");
        assert_success(&format!("pkg-config {args:?}"), &output);
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(pkg_config(&["--modversion"]), version);
    let flags = pkg_config(&["--cflags", "--libs"]);
    let include = prefix.path().join("include/tollgate");
    assert!(
        flags.contains(&format!("-I{}", include.display())),
        "{flags}"
    );
    assert!(flags.contains("-ltollgate"), "{flags}");
    assert!(pkg_config(&["--static", "--libs"]).contains("-lpthread"));

    let out_dir = tempfile::tempdir().expect("temp build dir");
    let exe = out_dir.path().join("migrator");
    let output = Command::new(compiler(Language::C))
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11"])
        .arg(workspace().join("examples/c/migrator.c"))
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lpthread")
        .output()
        .expect("compile the migrator");
    assert_success("compile the migrator with pkg-config flags", &output);
    let state = tempfile::tempdir().expect("temp state dir");
    let output = Command::new(&exe)
        .env("TOLLGATE_INSTALLATION", common::installation(state.path()))
        .arg(state.path())
        .args(["2", "4"])
        .output()
        .expect("run the migrator");
    assert_success("the installed migrator", &output);
}

/// The CMake package that `scripts/install-c.sh` installs: `find_package(Tollgate 0.1)` in
/// `tests/cmake` builds the C migrator against `Tollgate::tollgate` and the C++ copier against
/// `Tollgate::tollgate_static`, both run, and a request for another ABI (0.2) is refused.
#[test]
fn installed_library_builds_clients_through_cmake() {
    if Command::new("cmake").arg("--version").output().is_err() {
        eprintln!("cmake is not on PATH: CMake package check skipped");
        return;
    }
    let prefix = tempfile::tempdir().expect("temp prefix");
    let output = Command::new("bash")
        .arg(workspace().join("scripts/install-c.sh"))
        .arg(prefix.path())
        .env("TOLLGATE_LIB_DIR", library_dir())
        .env_remove("LIBDIR")
        .env_remove("INCLUDEDIR")
        .env_remove("DESTDIR")
        .output()
        .expect("run scripts/install-c.sh");
    assert_success("scripts/install-c.sh", &output);
    let package = prefix.path().join("lib/cmake/Tollgate");
    assert!(package.join("TollgateConfig.cmake").is_file());
    assert!(package.join("TollgateConfigVersion.cmake").is_file());

    let configure = |build: &Path, wanted: &str| {
        Command::new("cmake")
            .arg("-S")
            .arg(workspace().join("tests/cmake"))
            .arg("-B")
            .arg(build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.path().display()))
            .arg(format!("-DTOLLGATE_WANTED={wanted}"))
            .output()
            .expect("run cmake")
    };
    let scratch = tempfile::tempdir().expect("temp build dir");
    let build = scratch.path().join("build");
    assert_success("cmake configure", &configure(&build, "0.1"));
    let output = Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .output()
        .expect("run cmake --build");
    assert_success("cmake --build", &output);

    for (program, args, expected) in [
        ("migrator", ["2", "4"], "OK: every byte copied"),
        ("copier", ["2", "4"], "OK: every byte copied"),
    ] {
        let state = tempfile::tempdir().expect("temp state dir");
        let output = Command::new(build.join(program))
            .env("TOLLGATE_INSTALLATION", common::installation(state.path()))
            .arg(state.path())
            .args(args)
            .output()
            .expect("run the CMake-built client");
        assert_success(program, &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(expected), "{program}: {stdout}");
    }

    let refused = configure(&scratch.path().join("other-abi"), "0.2");
    assert!(
        !refused.status.success(),
        "find_package(Tollgate 0.2) found 0.1"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Tollgate"), "{stderr}");
}
