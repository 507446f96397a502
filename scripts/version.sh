# Sourced by scripts/release-build.sh and scripts/install-c.sh: sets VERSION (the package version
# of tollgate-ffi), MAJOR, MINOR, PATCH and SOVER, the soname's version, from the Cargo.toml
# files under $ROOT. $SOVER follows cargo-c: the major version, or 0.MINOR while the major is 0
# (0.0.PATCH while both are 0).

# ffi/Cargo.toml inherits the workspace's version unless it sets its own.
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/ffi/Cargo.toml" | head -n 1)
if [ -z "$VERSION" ]; then
    VERSION=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' \
        "$ROOT/Cargo.toml" | head -n 1)
fi
IFS=. read -r MAJOR MINOR PATCH <<<"$VERSION"
if [ "$MAJOR" != 0 ]; then
    SOVER=$MAJOR
elif [ "$MINOR" != 0 ]; then
    SOVER=0.$MINOR
else
    SOVER=0.0.$PATCH
fi
