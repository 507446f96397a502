#!/usr/bin/env bash
# The one command for Tollgate's benchmarks (BENCHMARKS.md): builds the release binaries and the
# C library, starts a loopback Redis when one is installed, and runs the comparison, which also
# runs the C program and the Python script. Prints the tables; writes target/bench/compare.json.
#
#   scripts/bench.sh [--quick] [--full-scale] [--install-redis] [--json-out PATH]
#
#   --quick          smoke run (seconds): checks that every benchmark executes; rough figures
#   --full-scale     also create all 1,000,000 projects of the largest scaling point (about
#                    4 minutes more on 2 cores); by default that state holds 1,000 projects
#   --install-redis  apt-get install redis-server first when it is missing (never done otherwise)
#
# The full run takes about 15 minutes on 2 cores once built (2026-12-04), 13 of them building the
# 65,536-project state for flush and scaling; a cold release build adds about two.
# The criterion micro-benchmarks are separate: cargo bench -p tollgate-bench
set -euo pipefail
cd "$(dirname "$0")/.."

compare_args=()
install_redis=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick|--full-scale) compare_args+=("$1") ;;
        --install-redis) install_redis=1 ;;
        --json-out) compare_args+=(--json-out "$2"); shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

echo "== building (release): tollgate-ffi (libtollgate.so) and the comparison" >&2
# Two invocations: a --bin filter would apply to tollgate-ffi too and skip its cdylib.
cargo build --release --quiet -p tollgate-ffi
cargo build --release --quiet -p tollgate-bench --bin compare

if [ "$install_redis" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (apt-get)" >&2
    apt-get install -y -qq redis-server >/dev/null
fi

redis_pid=""
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}
trap stop_redis EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if command -v redis-server >/dev/null 2>&1; then
    port=6399
    while port_in_use "$port"; do port=$((port + 1)); done
    # Loopback only, no persistence: a private server for this run, stopped on exit.
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --protected-mode yes --logfile /dev/null --daemonize no &
    redis_pid=$!
    for _ in $(seq 50); do
        port_in_use "$port" && break
        sleep 0.1
    done
    if port_in_use "$port"; then
        export TOLLGATE_BENCH_REDIS="127.0.0.1:$port"
        echo "== redis-server on 127.0.0.1:$port" >&2
    else
        echo "== redis-server did not start; Redis is skipped" >&2
    fi
else
    echo "== redis-server not installed: Redis is skipped (--install-redis installs it)" >&2
fi

echo "== comparing" >&2
target/release/compare ${compare_args[@]+"${compare_args[@]}"}
