#!/usr/bin/env bash
# The one release build of libtollgate.so and libtollgate.a that ships: scripts/install-c.sh
# installs it and the Python package's build (python/setup.py) bundles it, so whichever runs
# second finds it up to date and compiles nothing.
#
# It is kept apart from target/release, in target/dist: the shared library gets a soname
# (libtollgate.so.$SOVER, see scripts/version.sh), which a program linked against it records
# and then looks for at run time. Given to target/release's libtollgate.so, it would break every
# program linked with `-L target/release -ltollgate` (the README's instructions and the tests),
# which finds no libtollgate.so.$SOVER there. Cargo fingerprints the extra rustc arguments, so
# any other invocation on the same directory would rebuild the crate: both callers go through
# this script, never their own cargo command.
#
# Usage: scripts/release-build.sh
# Prints the directory holding the two libraries on stdout, and nothing else there; cargo's
# output (with rustc's native-static-libs line) goes to stderr. Without cargo, a release build
# already there is used, with a warning; with none either, it fails.
# Environment:
#   CARGO_TARGET_DIR  the build goes to $CARGO_TARGET_DIR/dist (default ./target/dist)
#   CARGO             the cargo to run (default cargo)
#
# Linux (ELF) only: on macOS the soname would be an -install_name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/version.sh
. "$ROOT/scripts/version.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/dist
case $TARGET_DIR in
    /*) ;;
    *) TARGET_DIR=$PWD/$TARGET_DIR ;; # cargo runs in $ROOT: a relative path is the caller's
esac
CARGO=${CARGO:-cargo}

if ! command -v "$CARGO" >/dev/null; then
    if [ -f "$TARGET_DIR/release/libtollgate.so" ] && [ -f "$TARGET_DIR/release/libtollgate.a" ]; then
        echo "warning: $CARGO is not on PATH: using the release build already in" \
            "$TARGET_DIR/release, which may be older than the sources" >&2
        echo "$TARGET_DIR/release"
        exit 0
    fi
    echo "error: $CARGO is not on PATH, and there is no release build of libtollgate in" \
        "$TARGET_DIR/release to use instead: install Rust (https://rustup.rs) and try again" >&2
    exit 1
fi

# `cargo rustc` passes the soname to this crate's link only; the libraries come out in
# $TARGET_DIR/release like a `cargo build --release`.
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR "$CARGO" rustc -p tollgate-ffi --lib \
    --release -- -C "link-arg=-Wl,-soname,libtollgate.so.$SOVER" --print native-static-libs) >&2
echo "$TARGET_DIR/release"
