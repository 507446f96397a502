#!/usr/bin/env bash
# Runs every test of the project: the README's test command, and what .ci/run runs.
#   cargo test --workspace      Rust unit, integration, multi-process and crash tests, the header
#                               check, and the C and C++ clients (built and run by ffi/tests)
#   loom                        the model checks of the slot pair (core/src/slot.rs)
#   pytest tests/python         the Python package over the real shared library
#   activation service          scripts/activation-server.sh starts it on loopback for the
#                               ignored test cli/tests/service.rs, and stops it afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -m pytest --version >/dev/null 2>&1; then
    python3 -m pip install --quiet pytest
fi

cargo test --workspace

# The activation service on loopback, for the test that talks to a separately started one.
service=target/activation-server-test
rm -rf "$service"
scripts/activation-server.sh start "$service"
trap 'scripts/activation-server.sh stop "$service" || true' EXIT
TOLLGATE_ACTIVATION_DIR="$PWD/$service" cargo test -p tollgate-cli --test service -- --ignored
scripts/activation-server.sh stop "$service"
trap - EXIT

# Loom builds every crate with --cfg loom, so it gets a target directory of its own.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p tollgate-core --lib loom

cargo build -p tollgate-ffi
TOLLGATE_LIBRARY="$PWD/target/debug/libtollgate.so" python3 -m pytest tests/python -q
