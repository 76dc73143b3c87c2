#!/usr/bin/env bash
# Counts the instructions the release gateway executes per forwarded call, under callgrind: unlike
# the gateway bench's timings, the count is the same from run to run on a busy shared machine, so
# it shows small changes to the per-call path. Needs valgrind (Debian's `valgrind`).
#
#   bash scripts/gateway-instructions.sh
#
# It builds the release binaries, puts a wrapper that runs the gateway under callgrind in place of
# target/release/weblet-gateway for one bench run at concurrency 64, stops the gateway after a few
# seconds of load so callgrind writes its counts, restores the binary, and divides the gateway's
# instructions (start-up included; it is under 1 %) by the calls tonic-web handled.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }

cargo build --release --workspace --bins
work=$(mktemp -d)
binary=target/release/weblet-gateway
cp "$binary" "$work/weblet-gateway"
restore() {
    cp "$work/weblet-gateway" "$binary"
    rm -rf "$work"
}
trap restore EXIT
cat >"$binary" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/callgrind.out --dump-instr=no $work/weblet-gateway "\$@"
EOF
chmod +x "$binary"
cargo bench -p tests --bench gateway --no-run 2>/dev/null

BENCH_ROUNDS=1 BENCH_SECONDS=20 BENCH_CONCURRENCY=64 cargo bench -p tests --bench gateway >"$work/bench.log" 2>&1 &
bench_job=$!
gateway=""
until [ -n "$gateway" ]; do
    gateway=$(pgrep -f "$work/weblet-gateway" | head -1 || true)
    kill -0 "$bench_job" 2>/dev/null || { cat "$work/bench.log" >&2; exit 1; }
    sleep 0.2
done
# The gateway path runs after the direct (and HAProxy) runs: wait until the gateway has used
# 4 s of CPU, then let it serve for 8 s more.
until [ "$(awk '{print $14 + $15}' "/proc/$gateway/stat")" -ge 400 ]; do sleep 0.2; done
sleep 8
bench=$(pgrep -f "target/release/deps/gateway-" | head -1)
# Freeze the load so graceful shutdown ends with the calls in flight, then stop the gateway.
kill -STOP "$bench"
kill -TERM "$gateway"
# (The stopped bench cannot reap it, so an ended gateway shows as a zombie.)
while [ "$(awk '{print $3}' "/proc/$gateway/stat" 2>/dev/null || echo Z)" != Z ]; do sleep 0.2; done
# The bench then fails on the closed connection and stops the core (and HAProxy) on its way out.
kill -CONT "$bench"
wait "$bench_job" 2>/dev/null || true

python3 - "$work/callgrind.out" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
target = "<tonic_web::service::GrpcWebService<S> as tower_service::Service<"
ids = {m.group(1) for l in lines if (m := re.match(r"c?fn=\((\d+)\) (.*)$", l))
       and target in m.group(2) and m.group(2).endswith(">::call")}
calls = sum(int(lines[i + 1].split("=")[1].split()[0]) for i, l in enumerate(lines)
            if (m := re.match(r"cfn=\((\d+)\)", l)) and m.group(1) in ids and lines[i + 1].startswith("calls="))
total = next(int(l.split()[1]) for l in lines if l.startswith(("summary:", "totals:")))
print(f"{total:,} instructions over {calls:,} calls: {total / calls:,.0f} per forwarded call")
EOF
