//! What the ffi integration tests share: where this build's libraries are, and how to compile
//! a C or C++ client against `include/tollgate.h`.
//!
//! Where the libraries come from: `cargo test -p tollgate-ffi` builds the library target with
//! all its crate types before the integration tests, and writes `libtollgate.so` and
//! `libtollgate.a` into `target/<profile>/deps/`, the directory of the test's own executable
//! (it does not copy them up to `target/<profile>/` as `cargo build` does; checked with cargo
//! 1.95). So the tests look beside their executable first, then one level up, and never run a
//! nested cargo build. A custom `CARGO_TARGET_DIR` or `--release` moves both together.
//!
//! The compilers are `cc` and `c++`, or `$CC` and `$CXX` when set.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `text` as a C string.
pub fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

/// This thread's last error message from the library.
pub fn last_error() -> String {
    // SAFETY: `tg_last_error_message` returns a NUL-terminated string that stays valid until
    // the next Tollgate call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(tollgate::tg_last_error_message()) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// Takes a string the library returned, and frees it.
pub fn take(out: *mut c_char) -> String {
    assert!(!out.is_null());
    // SAFETY: a NUL-terminated string from the library, freed right after.
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library and not freed yet.
    unsafe { tollgate::tg_string_free(out) };
    text
}

#[derive(Clone, Copy, Debug)]
pub enum Language {
    /// C11.
    C,
    /// C++17.
    Cxx,
}

#[derive(Clone, Copy, Debug)]
pub enum Linkage {
    /// Against `libtollgate.so`, with an rpath.
    Shared,
    /// Against `libtollgate.a`.
    Static,
}

/// The installation (MAC key and anchors) of a test's engines on state `dir`: inside it, so the
/// real one under `$HOME` is never touched and every process of the test finds the same one.
pub fn installation(dir: &Path) -> PathBuf {
    dir.join("installation")
}

/// `Engine::open` with the test's installation (see [`installation`]).
pub fn open(dir: impl AsRef<Path>) -> tollgate_core::Result<tollgate_core::Engine> {
    let options = tollgate_core::Options {
        installation_dir: Some(installation(dir.as_ref())),
        ..tollgate_core::Options::default()
    };
    tollgate_core::Engine::open_with(dir, options)
}

/// For tests that open engines in this process through the C ABI, which has no installation
/// option yet: points `TOLLGATE_INSTALLATION` at a directory of this test binary under cargo's
/// `CARGO_TARGET_TMPDIR`, once. Every such test calls it before anything else, so no thread of
/// the test reads the environment while it is being set.
pub fn isolate_process_installation() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let binary = std::env::current_exe().expect("test executable");
        let name = binary.file_stem().expect("executable name").to_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("installations")
            .join(name);
        std::env::set_var("TOLLGATE_INSTALLATION", dir);
    });
}

/// Makes a child process that opens engines on state `dir` use the test's installation.
pub fn with_installation<'c>(cmd: &'c mut Command, dir: &Path) -> &'c mut Command {
    cmd.env("TOLLGATE_INSTALLATION", installation(dir))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ffi/ has a parent")
        .to_owned()
}

/// The directory holding both `libtollgate.so` and `libtollgate.a` from this build.
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its executable");
    let deps = exe.parent().expect("the executable is in a directory");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        if dir.join("libtollgate.so").is_file() && dir.join("libtollgate.a").is_file() {
            return dir.to_owned();
        }
    }
    panic!(
        "libtollgate.so and libtollgate.a are neither in {} nor in its parent; \
         run this test through `cargo test -p tollgate-ffi`",
        deps.display()
    );
}

pub fn compiler(language: Language) -> String {
    let (var, default) = match language {
        Language::C => ("CC", "cc"),
        Language::Cxx => ("CXX", "c++"),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Compiles `source` (relative to the workspace) into `out_dir` and returns the executable.
pub fn build(source: &str, language: Language, linkage: Linkage, out_dir: &Path) -> PathBuf {
    let lib = library_dir();
    let stem = Path::new(source).file_stem().unwrap().to_string_lossy();
    let exe = out_dir.join(format!("{stem}-{linkage:?}").to_lowercase());
    let mut cmd = Command::new(compiler(language));
    cmd.args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg(match language {
            Language::C => "-std=c11",
            Language::Cxx => "-std=c++17",
        })
        .arg("-I")
        .arg(workspace().join("include"))
        .arg(workspace().join(source))
        .arg("-o")
        .arg(&exe);
    match linkage {
        Linkage::Shared => {
            cmd.arg("-L")
                .arg(&lib)
                .arg("-ltollgate")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        // The archive is named by path so that the linker cannot pick the .so beside it.
        Linkage::Static => {
            cmd.arg(lib.join("libtollgate.a"));
        }
    }
    cmd.args(["-lpthread", "-ldl", "-lm"]);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    assert_success(&format!("compile {source} ({linkage:?})"), &output);
    exe
}

pub fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// Points a client process at this build's library. Cargo puts `target/<profile>` on the test's
/// `LD_LIBRARY_PATH`, which the dynamic loader searches before a client's rpath: a stale
/// `libtollgate.so` left there by an earlier `cargo build` would otherwise be loaded instead.
pub fn this_build_library(cmd: &mut Command) -> &mut Command {
    cmd.env("LD_LIBRARY_PATH", library_dir())
}

/// Checks that the committed generated file at `path` is `fresh`, or with `TOLLGATE_BLESS=1`
/// writes `fresh` there instead. On a difference, fails naming `what` is out of date and the
/// first line that differs, and says how to regenerate it with the test target `test`.
pub fn check_generated(path: &Path, fresh: &str, what: &str, test: &str) {
    if std::env::var_os("TOLLGATE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, fresh).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == fresh {
        return;
    }
    let first_difference = committed
        .lines()
        .zip(fresh.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
    let line = |text: &str| {
        text.lines()
            .nth(first_difference)
            .unwrap_or("<end of file>")
            .to_owned()
    };
    panic!(
        "{what} is out of date (first difference at line {}):\n  committed: {}\n  generated: {}\n\
         Regenerate it with: TOLLGATE_BLESS=1 cargo test -p tollgate-ffi --test {test}",
        first_difference + 1,
        line(&committed),
        line(fresh),
    );
}
