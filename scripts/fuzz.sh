#!/bin/sh
# Runs every cargo-fuzz target for a bounded time (default 15 s each; the
# first argument overrides) and fails on the first crash or panic.
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP lets the
# machine's stable toolchain accept them.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-15}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in $(cargo fuzz list); do
    if ! cargo fuzz run -O "$t" -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz target $t failed: the input is in fuzz/artifacts/$t" >&2
        exit 1
    fi
    echo "fuzz $t: $(grep -E '^Done [0-9]+ runs' "$log")"
done
