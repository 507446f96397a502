#!/usr/bin/env bash
# Throughput of `tollgate pipe` beside `cat` and `pv` (when installed), in the same run, on the
# same pipeline (BENCHMARKS.md, "tollgate pipe"):
#
#   dd if=/dev/zero bs=1M count=N | MIDDLE | dd of=/dev/null bs=1M
#
# MIDDLE is nothing (source straight into sink), cat, pv -q, and
# `tollgate --state S pipe --project P` (release build) on a project whose Active key runs out
# in the first run, so the switch is inside the measurement; `tollgate-64k` is the same with
# --chunk 64KiB, which leaves both pipes at Linux's default 64 KiB as they are for the others
# (the default 1 MiB chunk grows them to 1 MiB). The contestants run in turn,
# round after round, so a drift of the machine's speed touches them alike; the figure is the
# median wall time of the rounds, as GiB/s, and tollgate's ratio to cat and pv.
#
#   scripts/pipe-bench.sh [--quick] [--size GIB] [--rounds N] [--json-out PATH]
#
#   --quick     smoke run (seconds): 256 MiB, one round; checks that every part executes
#   --size      GiB per run (default 4)
#   --rounds    runs of each contestant (default 5)
#
# Prints a table and one JSON line (also written to target/bench/pipe.json).
set -euo pipefail
cd "$(dirname "$0")/.."

mib=4096
rounds=5
json_out=target/bench/pipe.json
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mib=256; rounds=1 ;;
        --size) mib=$(($2 * 1024)); shift ;;
        --rounds) rounds=$2; shift ;;
        --json-out) json_out=$2; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "pipe-bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

echo "== building (release): tollgate" >&2
cargo build --release --quiet -p tollgate-cli
tollgate=$PWD/target/release/tollgate

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A private state and installation: nothing under $HOME.
export TOLLGATE_INSTALLATION=$work/installation
unset TOLLGATE_HOME
state=$work/state
tg() { "$tollgate" --state "$state" "$@" >/dev/null; }
tg project create bench
# The Active key runs out halfway through the first run; the reserve covers every other run.
tg key add bench --id BENCH-1 --delivery online --limit $((mib / 2))MiB
tg key add bench --id BENCH-2 --delivery online --limit $(((2 * rounds + 1) * mib))MiB

contestants=(none cat)
command -v pv >/dev/null 2>&1 && contestants+=(pv)
contestants+=(tollgate tollgate-64k)

middle() {
    case "$1" in
        none) cat_source ;;
        cat) cat_source | cat ;;
        pv) cat_source | pv -q ;;
        tollgate) cat_source | "$tollgate" --state "$state" pipe --project bench ;;
        tollgate-64k) cat_source | "$tollgate" --state "$state" pipe --project bench --chunk 64KiB ;;
    esac
}
cat_source() { dd if=/dev/zero bs=1M count="$mib" status=none; }

now() { date +%s%N; }
declare -A times
for round in $(seq "$rounds"); do
    for c in "${contestants[@]}"; do
        start=$(now)
        middle "$c" | dd of=/dev/null bs=1M status=none
        times[$c]+="$(( $(now) - start )) "
    done
    echo "   round $round of $rounds done" >&2
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
max() { tr ' ' '\n' | grep . | sort -n | tail -1; }
gibs() { awk -v ns="$1" -v mib="$mib" 'BEGIN { printf "%.2f", (mib / 1024) / (ns / 1e9) }'; }

# Every byte tollgate moved is charged to one of the two keys: check it, the bench is no use
# otherwise.
charged=$("$tollgate" --state "$state" key list bench --json |
    awk -F: '/^    "used"/ { gsub(/[ ,]/, "", $2); sum += $2 } END { printf "%.0f\n", sum }')
expected=$((2 * rounds * mib * 1024 * 1024))
if [ "$charged" -ne "$expected" ]; then
    echo "pipe-bench.sh: tollgate charged $charged bytes, expected $expected" >&2
    exit 1
fi

printf '\n%s MiB per run, %s rounds, median and slowest wall time\n\n' "$mib" "$rounds"
printf '%-10s %10s %14s %14s\n' MIDDLE GiB/s "median ms" "max ms"
json="{\"bench\":\"pipe\",\"mib\":$mib,\"rounds\":$rounds"
for c in "${contestants[@]}"; do
    m=$(echo "${times[$c]}" | median)
    x=$(echo "${times[$c]}" | max)
    printf '%-10s %10s %14d %14d\n' "$c" "$(gibs "$m")" $((m / 1000000)) $((x / 1000000))
    json+=",\"${c//-/_}_median_ns\":$m,\"${c//-/_}_gibs\":$(gibs "$m")"
done
tg_median=$(echo "${times[tollgate]}" | median)
for base in cat pv; do
    [ -n "${times[$base]:-}" ] || continue
    ratio=$(awk -v a="$tg_median" -v b="$(echo "${times[$base]}" | median)" 'BEGIN { printf "%.3f", b / a }')
    printf 'tollgate throughput / %s throughput: %s\n' "$base" "$ratio"
    json+=",\"tollgate_vs_${base}\":$ratio"
done
json+="}"
mkdir -p "$(dirname "$json_out")"
echo "$json" | tee "$json_out"
