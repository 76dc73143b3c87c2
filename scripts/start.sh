#!/usr/bin/env bash
# Starts the whole system on its embedded defaults: the gRPC core (sample storefront, in-memory
# ephemeral store, SQLite under .data/podconnect, spool printer, development CA) and the weblet
# gateway in front of it, then prints the address to open. Ctrl-C stops both.
# Usage: bash scripts/start.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin podconnect-server --bin weblet-gateway

logs=.data/logs
mkdir -p "$logs"
core_out=$(mktemp)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$core_out"
}
trap stop EXIT INT TERM

# The core says where it listens once it is ready; wait for that line, not for a fixed time.
./target/release/podconnect-server --pull-base-url https://localhost:8443/print-files \
    >"$core_out" 2>"$logs/core.log" &
pids+=($!)
for _ in $(seq 1 600); do
    grep -q "^development CA:" "$core_out" && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$logs/core.log" >&2; exit 1; }
    sleep 0.05
done
cat "$core_out"

./target/release/weblet-gateway 2>"$logs/gateway.log" &
pids+=($!)
echo "logs: $logs/core.log, $logs/gateway.log"
wait -n "${pids[@]}"
