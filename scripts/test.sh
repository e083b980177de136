#!/bin/sh
# The whole test suite: a bounded run of every fuzz target, then unit
# tests and the integration tests (the pipeline with real xorriso and the
# real d-i kernel/initrd, Xen's config parser, remctld in a throwaway
# Kerberos realm, the Debian package, faults, qemu boot tests under TCG).
# Run as root after scripts/setup.sh. FUZZ_SECONDS=0 skips fuzzing.
set -eu
cd "$(dirname "$0")/.."
# rustup's cargo, wherever the environment left PATH.
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
exec cargo test --locked "$@"
