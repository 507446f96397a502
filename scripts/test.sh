#!/usr/bin/env bash
# Runs every test of the project: the README's test command, and what .ci/run runs.
#   cargo test --workspace      Rust unit, integration, multi-process and crash tests, the header
#                               and Python bindings checks, and the C and C++ clients (built and
#                               run by ffi/tests)
#   loom                        the model checks of the slot pair (core/src/slot.rs)
#   pytest tests/python         the Python package over the real shared library, and
#                               `pip install ./python` in a fresh clone (a release build: minutes)
#   activation service          scripts/activation-server.sh starts it on loopback for the
#                               ignored test cli/tests/service.rs, and stops it afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -m pytest --version >/dev/null 2>&1; then
    python3 -m pip install --quiet pytest
fi

# Tests never touch the real installation (~/.local/state/tollgate): each names its own. The run
# gets an empty home, checked at the end; cargo, rustup and the user's Python packages keep
# theirs.
real_home=$HOME
export CARGO_HOME="${CARGO_HOME:-$real_home/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$real_home/.rustup}"
export PYTHONUSERBASE="${PYTHONUSERBASE:-$(python3 -m site --user-base)}"
test_home=$(mktemp -d)
# Temporary files too go to a directory of the run's own, checked at the end like the home: a
# test (or a program it starts, such as Chromium) that leaves files behind fails the run.
# Others may enter it (not list it): the PostgreSQL tests run the server as user postgres.
test_tmp=$(mktemp -d)
chmod 0711 "$test_tmp"
export HOME=$test_home TMPDIR=$test_tmp
unset XDG_STATE_HOME TOLLGATE_INSTALLATION
trap 'rm -rf "$test_home" "$test_tmp"' EXIT

cargo test --workspace

# The activation service on loopback, for the test that talks to a separately started one.
service=target/activation-server-test
rm -rf "$service"
scripts/activation-server.sh start "$service"
trap 'scripts/activation-server.sh stop "$service" || true; rm -rf "$test_home" "$test_tmp"' EXIT
TOLLGATE_ACTIVATION_DIR="$PWD/$service" cargo test -p tollgate-cli --test service -- --ignored
scripts/activation-server.sh stop "$service"
trap 'rm -rf "$test_home" "$test_tmp"' EXIT

# Loom builds every crate with --cfg loom, so it gets a target directory of its own.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p tollgate-core --lib loom

cargo build -p tollgate-ffi
# pytest keeps its temporary directories after the run by design; they go with this run's.
pytest_tmp=$(mktemp -d -p "$PWD/target")
TOLLGATE_LIBRARY="$PWD/target/debug/libtollgate.so" python3 -m pytest tests/python -q \
    -p no:cacheprovider --basetemp="$pytest_tmp"
rm -rf "$pytest_tmp"

# Anything in the empty home was written by a test that did not use its own directories;
# anything left in the temporary directory was not cleaned up by the test that made it.
left=$(find "$test_home" -mindepth 1 -maxdepth 4)
left_tmp=$(find "$test_tmp" -mindepth 1 -maxdepth 1)
rm -rf "$test_home" "$test_tmp"
if [ -n "$left" ]; then
    echo "tests wrote into \$HOME instead of their own temporary directories:" >&2
    echo "$left" >&2
    exit 1
fi
if [ -n "$left_tmp" ]; then
    echo "tests left files in the temporary directory:" >&2
    echo "$left_tmp" >&2
    exit 1
fi
