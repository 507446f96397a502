#!/usr/bin/env bash
# Installs the Tollgate C library the way `cargo cinstall` (cargo-c) lays it out, without
# needing cargo-c:
#
#   $LIBDIR/libtollgate.so.X.Y.Z        the shared library, soname libtollgate.so.$SOVER,
#                                       without its debug info
#   $LIBDIR/.debug/libtollgate.so.X.Y.Z.debug  that debug info, which gdb and perf find through
#                                       the library's .gnu_debuglink
#   $LIBDIR/libtollgate.so.$SOVER       -> libtollgate.so.X.Y.Z
#   $LIBDIR/libtollgate.so              -> libtollgate.so.$SOVER
#   $LIBDIR/libtollgate.a               the static library, without debug info
#   $INCLUDEDIR/tollgate/tollgate.h     the header
#   $INCLUDEDIR/tollgate/tollgate.hpp   the C++17 wrapper over it
#   $LIBDIR/pkgconfig/tollgate.pc       so that `pkg-config --cflags --libs tollgate` works
#   $LIBDIR/cmake/Tollgate/             TollgateConfig.cmake and TollgateConfigVersion.cmake, so
#                                       that CMake's `find_package(Tollgate)` works
#
# $SOVER follows cargo-c: the major version, or 0.MINOR while the major is 0 (scripts/version.sh).
# The libraries are those of scripts/release-build.sh, the one release build that the Python
# package's build bundles too.
#
# Usage: scripts/install-c.sh PREFIX
# Environment:
#   LIBDIR            default PREFIX/lib
#   INCLUDEDIR        default PREFIX/include
#   DESTDIR           staging root prepended to every installed path (the .pc keeps PREFIX)
#   CARGO_TARGET_DIR  the build goes to $CARGO_TARGET_DIR/dist (default ./target/dist: a library
#                     built with a soname is kept apart from target/release, whose unversioned
#                     libtollgate.so programs link with -L target/release)
#   TOLLGATE_LIB_DIR  install libtollgate.so/.a from this directory instead of building them
#                     (they then carry no soname); the test suite uses it
#
# Linux (ELF) only: on macOS, build with -install_name instead of -soname. Without objcopy and
# strip (binutils), the libraries are installed with their debug info.
set -euo pipefail

if [ $# -ne 1 ] || [ "${1#/}" = "$1" ]; then
    echo "usage: $0 PREFIX   (an absolute path, e.g. /usr/local)" >&2
    exit 2
fi
PREFIX=${1%/}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
DESTDIR=${DESTDIR:-}
# shellcheck source=scripts/version.sh
. "$ROOT/scripts/version.sh"

# What a program linking libtollgate.a statically also needs (rustc's native-static-libs).
LIBS_PRIVATE="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

if [ -n "${TOLLGATE_LIB_DIR:-}" ]; then
    LIB_SRC=$TOLLGATE_LIB_DIR
else
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    # Its stdout names the directory; cargo's output is shown and kept for native-static-libs.
    "$ROOT/scripts/release-build.sh" 2>&1 >"$BUILD/dir" | tee "$BUILD/log" >&2
    LIB_SRC=$(cat "$BUILD/dir")
    FOUND=$(sed -n 's/.*native-static-libs: //p' "$BUILD/log" | head -n 1)
    LIBS_PRIVATE=${FOUND:-$LIBS_PRIVATE}
fi
for lib in libtollgate.so libtollgate.a; do
    if [ ! -f "$LIB_SRC/$lib" ]; then
        echo "$LIB_SRC/$lib is missing" >&2
        exit 1
    fi
done

# The .pc file names directories relative to ${prefix} where it can, as cargo-c does.
pc_dir() {
    case "$1" in
        "$PREFIX") echo '${prefix}' ;;
        "$PREFIX"/*) echo "\${prefix}/${1#"$PREFIX"/}" ;;
        *) echo "$1" ;;
    esac
}
PC_LIBDIR=$(pc_dir "$LIBDIR")
PC_LIBDIR=${PC_LIBDIR/#\$\{prefix\}/\$\{exec_prefix\}}
PC_INCLUDEDIR=$(pc_dir "$INCLUDEDIR")

install -d "$DESTDIR$LIBDIR/pkgconfig" "$DESTDIR$INCLUDEDIR/tollgate"
install -m 0755 "$LIB_SRC/libtollgate.so" "$DESTDIR$LIBDIR/libtollgate.so.$VERSION"
if command -v objcopy >/dev/null && command -v strip >/dev/null; then
    # The release profile keeps line tables (debug = 1) for profiling; what ships is the code,
    # with the debug info beside it for whoever needs a symbolic backtrace.
    so=$DESTDIR$LIBDIR/libtollgate.so.$VERSION
    install -d "$DESTDIR$LIBDIR/.debug"
    objcopy --only-keep-debug "$so" "$DESTDIR$LIBDIR/.debug/libtollgate.so.$VERSION.debug"
    chmod 0644 "$DESTDIR$LIBDIR/.debug/libtollgate.so.$VERSION.debug"
    strip --strip-debug --strip-unneeded "$so"
    (cd "$DESTDIR$LIBDIR" &&
        objcopy --add-gnu-debuglink=".debug/libtollgate.so.$VERSION.debug" "libtollgate.so.$VERSION")
fi
if [ "$SOVER" != "$VERSION" ]; then
    ln -sfn "libtollgate.so.$VERSION" "$DESTDIR$LIBDIR/libtollgate.so.$SOVER"
fi
ln -sfn "libtollgate.so.$SOVER" "$DESTDIR$LIBDIR/libtollgate.so"
install -m 0644 "$LIB_SRC/libtollgate.a" "$DESTDIR$LIBDIR/libtollgate.a"
if command -v strip >/dev/null; then
    strip --strip-debug "$DESTDIR$LIBDIR/libtollgate.a"
fi
install -m 0644 "$ROOT/include/tollgate.h" "$DESTDIR$INCLUDEDIR/tollgate/tollgate.h"
install -m 0644 "$ROOT/include/tollgate.hpp" "$DESTDIR$INCLUDEDIR/tollgate/tollgate.hpp"
install -m 0644 "$ROOT/include/tollgate_inline.h" "$DESTDIR$INCLUDEDIR/tollgate/tollgate_inline.h"
sed -e "s|@PREFIX@|$PREFIX|" \
    -e "s|@LIBDIR@|$PC_LIBDIR|" \
    -e "s|@INCLUDEDIR@|$PC_INCLUDEDIR|" \
    -e "s|@VERSION@|$VERSION|" \
    -e "s|@LIBS_PRIVATE@|$LIBS_PRIVATE|" \
    "$ROOT/ffi/tollgate.pc.in" >"$DESTDIR$LIBDIR/pkgconfig/tollgate.pc"
chmod 0644 "$DESTDIR$LIBDIR/pkgconfig/tollgate.pc"
install -d "$DESTDIR$LIBDIR/cmake/Tollgate"
for file in TollgateConfig.cmake TollgateConfigVersion.cmake; do
    sed -e "s|@LIBDIR@|$LIBDIR|g" \
        -e "s|@INCLUDEDIR@|$INCLUDEDIR|g" \
        -e "s|@VERSION@|$VERSION|g" \
        -e "s|@MAJOR@|$MAJOR|g" \
        -e "s|@MINOR@|$MINOR|g" \
        "$ROOT/ffi/$file.in" >"$DESTDIR$LIBDIR/cmake/Tollgate/$file"
    chmod 0644 "$DESTDIR$LIBDIR/cmake/Tollgate/$file"
done

echo "installed tollgate $VERSION (soname libtollgate.so.$SOVER) under $DESTDIR$PREFIX"
echo "  pkg-config: PKG_CONFIG_PATH=$LIBDIR/pkgconfig pkg-config --cflags --libs tollgate"
echo "  CMake:      find_package(Tollgate) with CMAKE_PREFIX_PATH=$PREFIX"
