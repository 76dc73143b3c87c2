#!/usr/bin/env bash
# Starts the whole system on its embedded defaults: the gRPC core (sample storefront, in-memory
# ephemeral store, SQLite under .data/podconnect, spool printer, development CA) and the weblet
# gateway in front of it, then prints the address to open. Ctrl-C stops both.
# Usage: bash scripts/start.sh [core flags...]  (extra flags go to the core, for example
# `--storefront ustore --ustore-base-url ...` to shop an XMPie uStore storefront; see README.md)
#
# `bash scripts/start.sh --scaled [core flags...]` starts the scaled system instead: three core
# instances sharing Redis (ephemeral store, job leases, events) and PostgreSQL (persistent store),
# with the gateway balancing across them. It uses the Redis on 127.0.0.1:6379 and the PostgreSQL
# on 127.0.0.1:5432 when they answer, and otherwise starts its own (Debian's redis-server and
# postgresql) under .data/scaled. See docs/deployment.md.
set -euo pipefail
cd "$(dirname "$0")/.."

scaled=false
if [ "${1:-}" = "--scaled" ]; then
    scaled=true
    shift
fi

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

if ! $scaled; then
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
    exit
fi

# The scaled system. The three instances share one data folder: the development CA and
# certificate, the session-record and SSO key files, the device-user issuer and the spool folder
# (in production these are files every instance mounts, or secrets; see docs/deployment.md).
state=.data/scaled
mkdir -p "$state"
chmod 700 "$state"

# Polls a command until it succeeds, for at most $1 tenths of a second.
poll() {
    local tries=$1
    shift
    for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

redis_url=redis://127.0.0.1:6379
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || { echo "install Redis: apt-get install redis-server redis-tools" >&2; exit 1; }
    redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$state" \
        >"$logs/redis.log" 2>&1 &
    pids+=($!)
    poll 100 redis-cli -h 127.0.0.1 -p 6390 ping || { cat "$logs/redis.log" >&2; exit 1; }
    redis_url=redis://127.0.0.1:6390
fi

pg_port=5432
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$bin" ] || { echo "install PostgreSQL: apt-get install postgresql" >&2; exit 1; }
    # PostgreSQL refuses to run as root: its folder belongs to the postgres user then.
    as_pg=()
    if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
    pgdata=$state/pg
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        mkdir -p "$pgdata"
        [ "${#as_pg[@]}" -eq 0 ] || chown postgres "$pgdata"
        "${as_pg[@]}" "$bin/initdb" -D "$pgdata" -A trust -U postgres >"$logs/postgres.log" 2>&1
    fi
    pg_port=5440
    "${as_pg[@]}" "$bin/postgres" -D "$pgdata" -p "$pg_port" -k "$(realpath "$pgdata")" \
        -c listen_addresses=127.0.0.1 >>"$logs/postgres.log" 2>&1 &
    pids+=($!)
    poll 300 pg_isready -q -h 127.0.0.1 -p "$pg_port" || { cat "$logs/postgres.log" >&2; exit 1; }
fi
psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'podconnect'" \
    | grep -q 1 || psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE podconnect"
database_url=postgres://postgres@127.0.0.1:$pg_port/podconnect

upstreams=()
for i in 1 2 3; do
    out=$state/core-$i.ready
    : >"$out"
    ./target/release/podconnect-server --data-dir "$state/data" --instance-id "core-$i" \
        --listen "127.0.0.1:$((50442 + i))" --pull-listen "127.0.0.1:$((50479 + i))" \
        --pull-base-url https://localhost:8443/print-files \
        --ephemeral-store "$redis_url" --database-url "$database_url" "$@" \
        >"$out" 2>"$logs/core-$i.log" &
    pids+=($!)
    # The first instance makes the development CA the others then use: one at a time.
    wait_ready "${pids[-1]}" "$out" "$logs/core-$i.log"
    upstreams+=("https://127.0.0.1:$((50442 + i))")
done
echo "three core instances on 127.0.0.1:50443-50445 (Redis $redis_url, PostgreSQL 127.0.0.1:$pg_port/podconnect)"

./target/release/weblet-gateway --core-data-dir "$state/data" --upstream "$(IFS=,; echo "${upstreams[*]}")" \
    --pull-upstream https://127.0.0.1:50480 >"$gateway_out" 2>"$logs/gateway.log" &
pids+=($!)
wait_ready "${pids[-1]}" "$gateway_out" "$logs/gateway.log"
grep -E '^(weblet-gateway listening on|open )' "$logs/gateway.log" || true
echo "logs: $logs/core-{1,2,3}.log, $logs/gateway.log"
wait -n "${pids[@]}"
