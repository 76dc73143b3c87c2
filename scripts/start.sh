#!/usr/bin/env bash
# Starts the whole system on its embedded defaults: the gRPC core (sample storefront, in-memory
# ephemeral store, SQLite under .data/podconnect, spool printer, development CA) and the weblet
# gateway in front of it, then prints the address to open. Ctrl-C stops both.
# Usage: bash scripts/start.sh [core flags...]  (extra flags go to the core, for example
# `--storefront ustore --ustore-base-url ...` to shop an XMPie uStore storefront; see README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin podconnect-server --bin weblet-gateway

logs=.data/logs
mkdir -p "$logs"
core_out=$(mktemp)
gateway_out=$(mktemp)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$core_out" "$gateway_out"
}
trap stop EXIT INT TERM

# Each binary prints one JSON ready line on stdout once it listens (people's lines and logs go to
# stderr); wait for that line, not for a fixed time. $1: pid, $2: its stdout, $3: its log.
wait_ready() {
    for _ in $(seq 1 600); do
        grep -q '^{"ready"' "$2" && return 0
        kill -0 "$1" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.05
    done
    echo "no ready line after 30 s; see $3" >&2
    exit 1
}

./target/release/podconnect-server --pull-base-url https://localhost:8443/print-files "$@" \
    >"$core_out" 2>"$logs/core.log" &
pids+=($!)
wait_ready "${pids[0]}" "$core_out" "$logs/core.log"
grep -E '^(podconnect-server listening on|pull links:|development CA:)' "$logs/core.log" || true

./target/release/weblet-gateway >"$gateway_out" 2>"$logs/gateway.log" &
pids+=($!)
wait_ready "${pids[1]}" "$gateway_out" "$logs/gateway.log"
grep -E '^(weblet-gateway listening on|open )' "$logs/gateway.log" || true
echo "logs: $logs/core.log, $logs/gateway.log"
wait -n "${pids[@]}"
