#!/usr/bin/env bash
# Runs every test of the project: the README's test command, and what .ci/run runs.
#   cargo test --workspace      Rust unit, integration, multi-process and crash tests, the header
#                               check, and the C and C++ clients (built and run by ffi/tests)
#   loom                        the model checks of the slot pair (core/src/slot.rs)
#   pytest tests/python         the Python package over the real shared library
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -m pytest --version >/dev/null 2>&1; then
    python3 -m pip install --quiet pytest
fi

cargo test --workspace

# Loom builds every crate with --cfg loom, so it gets a target directory of its own.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p tollgate-core --lib loom

cargo build -p tollgate-ffi
TOLLGATE_LIBRARY="$PWD/target/debug/libtollgate.so" python3 -m pytest tests/python -q
