#!/usr/bin/env bash
# Fuzzes Tollgate's hostile inputs (fuzz/: key JSON, names, the C entry points taking strings,
# metering amounts) with cargo-fuzz / libFuzzer for SECONDS in total, split evenly over the
# targets, and fails on any crash, panic, failed assertion, sanitizer report or hang.
#
# Usage: scripts/fuzz.sh SECONDS        (CI: scripts/fuzz.sh 60, i.e. 15 s per target)
#
# - Installs cargo-fuzz if it is missing (`cargo install cargo-fuzz --locked`, ~2 min).
# - cargo-fuzz needs nightly flags (sanitizer coverage, -Zsanitizer=address); the stable
#   toolchain accepts them with RUSTC_BOOTSTRAP=1, which this script sets for its own cargo runs.
# - Builds every target once, with cargo-fuzz's defaults (optimised, AddressSanitizer, debug
#   assertions so that an arithmetic overflow panics), before the clock starts: the build
#   (several minutes from clean) is not part of SECONDS.
# - Starts each target from the checked-in seed corpus fuzz/corpus/<target>/ and writes the
#   inputs it discovers to a scratch corpus, so the checked-in one never changes. The state
#   directories of the engine-backed targets go to a tmpfs (/dev/shm) when there is one. Both
#   are removed at the end.
# - A crashing input is kept in fuzz/artifacts/<target>/ (git-ignored); reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...
#
# Prints the executions and discovered inputs per target.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
    echo "usage: $0 SECONDS   (total fuzzing time, split over the targets)" >&2
    exit 2
fi
TARGETS=(key_json names c_strings amounts)
per_target=$(($1 / ${#TARGETS[@]}))
[ "$per_target" -ge 1 ] || per_target=1

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

scratch_root=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    scratch_root=/dev/shm
fi
scratch=$(mktemp -d "$scratch_root/tollgate-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tmp"

cargo fuzz build

declare -A executions discovered outcome
failed=0
for target in "${TARGETS[@]}"; do
    corpus="$scratch/corpus/$target"
    log="$scratch/$target.log"
    mkdir -p "$corpus"
    echo "fuzz.sh: $target for ${per_target}s" >&2
    # -timeout: an input taking 10 s is a hang. -rss_limit_mb: libFuzzer's default, stated.
    options=(-max_total_time="$per_target" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    # amounts calls only the core's safe Rust API, where a leak is no memory error, and
    # libFuzzer's leak scans after inputs that allocate (the catalog's caches) halve its speed.
    [ "$target" = amounts ] && options+=(-detect_leaks=0)
    if TMPDIR="$scratch/tmp" cargo fuzz run "$target" "$corpus" "fuzz/corpus/$target" -- \
        "${options[@]}" >"$log" 2>&1; then
        outcome[$target]=ok
    else
        outcome[$target]=FAILED
        failed=1
        echo "---- $target failed; the end of its log:" >&2
        tail -n 60 "$log" >&2
    fi
    executions[$target]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    discovered[$target]=$(find "$corpus" -type f | wc -l)
    rm -rf "${scratch:?}/tmp/"*
done

printf '\n%-10s %8s %12s %10s %s\n' target seconds executions discovered result
for target in "${TARGETS[@]}"; do
    printf '%-10s %8s %12s %10s %s\n' "$target" "$per_target" "${executions[$target]:-?}" \
        "${discovered[$target]}" "${outcome[$target]}"
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: a target failed; its crashing input is in fuzz/artifacts/" >&2
    exit 1
fi
echo "fuzz.sh: ${#TARGETS[@]} targets, no crash"
