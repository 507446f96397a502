#!/usr/bin/env bash
# Memory safety under AddressSanitizer, from a clean checkout. Exits non-zero on any report.
#
#   (a) The Rust test suites of tollgate-core and tollgate-ffi (unit and integration tests),
#       built with rustc's AddressSanitizer (-Zsanitizer=address; RUSTC_BOOTSTRAP=1 lets the
#       stable toolchain take the flag) into target/asan. Tests that re-execute their own
#       binary as child processes (crash, locks, concurrency, crash_mixed) run as usual: the
#       children are instrumented too. crash_mixed's C consumer links the instrumented
#       libtollgate.so, so it is compiled through a wrapper that links rustc's ASan runtime
#       into it. Excluded, because they cannot run under ASan:
#         ffi/tests/c_clients.rs        runs every client under valgrind too, which cannot run
#                                       an ASan binary; the same C and C++ programs run in (b)
#         ffi/tests/mixed_languages.rs  loads the instrumented libtollgate.so into python3,
#                                       and rustc ships its ASan runtime only as a static
#                                       library, which no python3 can preload
#   (b) The C and C++ programs (tests/c/test_api.c, events.c, usage_v2.c, fork.c, options.c,
#       tests/cpp/test_api.cpp, hpp.cpp, examples/c/migrator.c, examples/cpp/copier.cpp) compiled by gcc with -fsanitize=address,undefined against the
#       ordinary release libtollgate.a, run with leak detection on. The Rust code in the
#       archive is not instrumented, but every allocation it makes goes through ASan's malloc,
#       so misuse of Tollgate's pointers from C, leaks and C-side UB are caught.
#
# Every sanitizer report, from any process (children and killed processes included), is
# written under target/asan/reports/; the script fails unless that directory ends up empty.
#
# Needs: the Rust toolchain (its x86_64 Linux target ships the ASan runtime), gcc and g++
# with their sanitizer runtimes (Debian: gcc, g++ and libgcc-12-dev, which brings libasan8
# and libubsan1).
#
# Usage: scripts/asan.sh [a|b]    (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

parts=${1:-ab}
reports="$PWD/target/asan/reports"
rm -rf "$reports"
mkdir -p "$reports"

check_reports() {
    local found
    found=$(find "$reports" -type f | sort)
    if [ -n "$found" ]; then
        echo "asan.sh: sanitizer reports in $reports:" >&2
        for file in $found; do
            echo "---- $file" >&2
            cat "$file" >&2
        done
        exit 1
    fi
}

rust_suites() {
    local host runtime real_cc wrapper
    host=$(rustc -vV | sed -n 's/^host: //p')
    runtime="$(rustc --print sysroot)/lib/rustlib/$host/lib/librustc-stable_rt.asan.a"
    [ -f "$runtime" ] || { echo "asan.sh: no ASan runtime at $runtime" >&2; exit 1; }

    # A C compiler that links rustc's ASan runtime into every executable it links (an
    # executable that loads the instrumented libtollgate.so must carry the runtime, exported so
    # the library binds to it); compile-only calls (cc-rs building SQLite) pass through.
    real_cc=${CC:-cc}
    wrapper="$PWD/target/asan/cc-with-rust-asan"
    cat >"$wrapper" <<EOF
#!/bin/sh
for arg in "\$@"; do
    case "\$arg" in -c|-E|-S|-M|-MM) exec $real_cc "\$@" ;; esac
done
exec $real_cc "\$@" -Wl,--whole-archive "$runtime" -Wl,--no-whole-archive -rdynamic \\
    -lpthread -lrt -lm -ldl
EOF
    chmod +x "$wrapper"

    local tests=() name
    for file in core/tests/*.rs ffi/tests/*.rs; do
        name=$(basename "$file" .rs)
        case $name in
        c_clients | mixed_languages) continue ;; # see the header of this script
        esac
        tests+=(--test "$name")
    done
    echo "asan.sh (a): Rust suites under -Zsanitizer=address: --lib ${tests[*]}" >&2
    local status=0
    # The state machine's 10,000 sequences check the model, not memory: 500 do here.
    # handle_sigbus=0: the SIGBUS tests (core/tests/hostile_files.rs) check where a SIGBUS goes
    # (Tollgate's handler, the host's earlier one, the default action); ASan's own SIGBUS
    # handler would take the signal first and report it as a crash.
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
        TOLLGATE_STATE_MACHINE_CASES=500 CC="$wrapper" \
        ASAN_OPTIONS="detect_leaks=1:handle_sigbus=0:log_path=$reports/rust" \
        cargo test --target "$host" -p tollgate-core -p tollgate-ffi --lib "${tests[@]}" ||
        status=$?
    # Reports go to files, not to the failing test's output: show them first.
    check_reports
    [ "$status" -eq 0 ] || { echo "asan.sh: the Rust suites failed" >&2; exit "$status"; }
}

# run_sanitized DIR PROGRAM [ARGS...]: runs DIR/PROGRAM with a fresh state directory and ARGS.
run_sanitized() {
    local out=$1 program=$2 state
    shift 2
    state=$(mktemp -d -p "$out")
    echo "asan.sh (b): $program $*" >&2
    if ! TOLLGATE_INSTALLATION="$state/installation" \
        ASAN_OPTIONS="detect_leaks=1:log_path=$reports/c" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/c" \
        "$out/$program" "$state" "$@" >"$out/stdout"; then
        cat "$out/stdout"
        check_reports
        echo "asan.sh: $program failed" >&2
        exit 1
    fi
    tail -n 1 "$out/stdout"
}

c_programs() {
    if ! echo 'int main(void) { return 0; }' |
        gcc -x c -fsanitize=address,undefined - -o target/asan/probe 2>/dev/null; then
        echo "asan.sh: gcc cannot link -fsanitize=address,undefined;" \
            "install libgcc-12-dev (libasan8, libubsan1)" >&2
        exit 1
    fi
    cargo build --release -p tollgate-ffi
    local archive=target/release/libtollgate.a out flags
    out=$(mktemp -d)
    trap 'rm -rf "$out"' RETURN
    flags=(-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
        -fno-omit-frame-pointer -Wall -Wextra -Werror -Iinclude)
    gcc -std=c11 "${flags[@]}" tests/c/test_api.c "$archive" -lpthread -ldl -lm \
        -o "$out/test_api_c"
    g++ -std=c++17 "${flags[@]}" tests/cpp/test_api.cpp "$archive" -lpthread -ldl -lm \
        -o "$out/test_api_cpp"
    gcc -std=c11 "${flags[@]}" examples/c/migrator.c "$archive" -lpthread -ldl -lm \
        -o "$out/migrator"
    local program
    for program in events usage_v2 fork options; do
        gcc -std=c11 "${flags[@]}" "tests/c/$program.c" "$archive" -lpthread -ldl -lm \
            -o "$out/$program"
    done
    g++ -std=c++17 "${flags[@]}" tests/cpp/hpp.cpp "$archive" -lpthread -ldl -lm \
        -o "$out/hpp"
    g++ -std=c++17 "${flags[@]}" examples/cpp/copier.cpp "$archive" -lpthread -ldl -lm \
        -o "$out/copier"

    run_sanitized "$out" test_api_c
    run_sanitized "$out" test_api_cpp
    run_sanitized "$out" migrator 4 24
    run_sanitized "$out" events
    run_sanitized "$out" usage_v2
    run_sanitized "$out" fork
    run_sanitized "$out" options "$PWD/tests/fixtures/licenses"
    run_sanitized "$out" hpp
    run_sanitized "$out" copier 4 16
    check_reports
}

mkdir -p target/asan
case $parts in
a) rust_suites ;;
b) c_programs ;;
ab) rust_suites && c_programs ;;
*) echo "usage: $0 [a|b]" >&2; exit 2 ;;
esac
echo "asan.sh: no sanitizer report"
