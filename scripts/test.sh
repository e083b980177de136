#!/bin/sh
# The whole test suite: unit tests, the pipeline with real xorriso and the
# real d-i kernel/initrd, Xen's config parser, remctld in a throwaway
# Kerberos realm, the Debian package, and qemu boot tests (TCG). Run as root
# after scripts/setup.sh.
set -eu
cd "$(dirname "$0")/.."
exec cargo test --locked "$@"
