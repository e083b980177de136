#!/bin/sh
# Runs every cargo-fuzz target for a bounded time (default 15 s each; the
# first argument overrides). cargo-fuzz needs nightly-only compiler flags;
# RUSTC_BOOTSTRAP lets the machine's stable toolchain accept them.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-15}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in $(cargo fuzz list); do
    echo "== fuzz $t for ${secs}s"
    cargo fuzz run -O "$t" -- -max_total_time="$secs" 2>&1 | grep -E '^(Done|SUMMARY|thread|==)' || true
    # A crash leaves an artifact and a non-zero status: fail loudly.
    cargo fuzz run -O "$t" -- -runs=0 >/dev/null 2>&1
    if ls "fuzz/artifacts/$t" 2>/dev/null | grep -q .; then
        echo "fuzz target $t found a crash: see fuzz/artifacts/$t" >&2
        exit 1
    fi
done
