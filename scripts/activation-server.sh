#!/usr/bin/env bash
# The activation service on loopback, in the background, for tests (.ci/run):
#
#   scripts/activation-server.sh start [DIR]   start it; prints its URL and writes it to DIR/url
#   scripts/activation-server.sh stop [DIR]    stop it (SIGTERM, then SIGKILL after 5 s)
#
# DIR (default target/activation-server) holds the service's files: a vendor key pair in
# DIR/vendor/ and a catalog DIR/codes.json, both made on first start (codes ACT-TEST: 365
# days, 5 renewals; ACT-NORENEW: 365 days, no renewal; each activates on 1000 machines, as each
# test's installation is a machine of its own); and DIR/pid, DIR/url, DIR/server.log.
# Tests trust DIR/vendor/vendor.pub. The binary is $TOLLGATE_BIN, else a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
dir=${2:-target/activation-server}

running() {
    [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

start() {
    if running; then
        echo "the activation service is already running: $(cat "$dir/url")" >&2
        exit 1
    fi
    local bin=${TOLLGATE_BIN:-}
    if [[ -z $bin ]]; then
        cargo build --quiet -p tollgate-cli
        bin=${CARGO_TARGET_DIR:-target}/debug/tollgate
    fi
    mkdir -p "$dir"
    [[ -f $dir/vendor/vendor.key ]] || "$bin" license keygen --out "$dir/vendor" >/dev/null
    if [[ ! -f $dir/codes.json ]]; then
        local key='{"kind": "commercial", "edition": "standard", "scheme": {"data_volume": {"limit_bytes": 1073741824}}}'
        cat >"$dir/codes.json" <<JSON
{"codes": [
  {"code": "ACT-TEST", "key": $key, "term_days": 365, "renewals_left": 5, "activations": 1000},
  {"code": "ACT-NORENEW", "key": $key, "term_days": 365, "renewals_left": 0, "activations": 1000}
]}
JSON
    fi
    rm -f "$dir/url"
    "$bin" serve-activation --codes "$dir/codes.json" --key "$dir/vendor/vendor.key" \
        --listen 127.0.0.1:0 >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    # The first line names the port; wait for it (10 s at most).
    local line=""
    for _ in $(seq 100); do
        line=$(head -n 1 "$dir/server.log")
        [[ $line == "listening on "* ]] && break
        if ! running; then
            echo "the activation service did not start:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [[ $line != "listening on "* ]]; then
        echo "the activation service did not say where it listens within 10 s" >&2
        stop
        exit 1
    fi
    echo "${line#listening on }" >"$dir/url"
    cat "$dir/url"
}

stop() {
    if ! running; then
        rm -f "$dir/pid" "$dir/url"
        return 0
    fi
    local pid
    pid=$(cat "$dir/pid")
    kill -TERM "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "the activation service did not stop on SIGTERM; killing it" >&2
        kill -KILL "$pid"
    fi
    rm -f "$dir/pid" "$dir/url"
}

case $mode in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop [DIR]" >&2
        exit 2
        ;;
esac
