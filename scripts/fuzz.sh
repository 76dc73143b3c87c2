#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a fixed time, starting from the seed
# corpus committed in fuzz/corpus/<target>/ (new inputs go to a scratch folder, so the seeds
# stay as committed). A crash stops the script; its input is in fuzz/artifacts/<target>/.
# Usage: bash scripts/fuzz.sh [seconds per target, default 20] [target ...]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz wants nightly-only rustc
# flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
export RUSTC_BOOTSTRAP=1
# AddressSanitizer by default (it works on stable with RUSTC_BOOTSTRAP=1); `none` builds faster.
sanitizer="${PODCONNECT_FUZZ_SANITIZER:-address}"

start=$(date +%s)
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"
echo "fuzz build: $(( $(date +%s) - start )) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    # -rss_limit_mb: a target that grows past 2 GiB counts as a failure (an unbounded input).
    if ! cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    echo "$target: $runs runs in ${seconds} s ($(( runs / seconds ))/s)"
done
echo "fuzzing: $(( $(date +%s) - start )) s in total"
