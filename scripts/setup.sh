#!/bin/sh
# Installs everything guest-installer needs to build, test and demo on a
# fresh Debian 12 machine. Idempotent; run as root.
set -eu

export DEBIAN_FRONTEND=noninteractive
# rustup's cargo, wherever the environment left PATH.
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"

# qemu-system-x86 comes from bookworm-backports: a host that carries
# qemu-utils from backports cannot install bookworm's own qemu-system 7.2
# (Breaks), and the backported pair works everywhere.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same archive as the host's own sources, its backports suite.
    archive=$(sh "$(dirname "$0")/host-mirror")
    cat > /etc/apt/sources.list.d/guest-installer-backports.sources <<SRC
Types: deb
URIs: $archive
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

apt-get update -q
# dnsmasq-base: the DHCP server tests/network_families.rs runs in its own
# namespace; it ships no service (the dnsmasq package would start one).
apt-get install -y -q --no-install-recommends \
    xorriso isolinux syslinux-common debian-installer-12-netboot-amd64 \
    busybox-static cpio e2fsprogs genisoimage \
    xen-utils-4.17 libxen-dev gcc \
    krb5-kdc krb5-admin-server krb5-user remctl-server remctl-client python3-pyremctl iproute2 \
    debhelper devscripts lintian fakeroot build-essential \
    mmdebstrap fdisk \
    grub-pc-bin grub-xen-host xfsprogs systemd git \
    openssh-server openssh-client dnsmasq-base
apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils
# A real Ganeti (3.0) for tests/ganeti.rs and tests/ganeti_kvm.rs (its own
# daemons start only when a test makes a cluster; it pulls in
# openssh-server, socat and lvm2).
apt-get install -y -q --no-install-recommends ganeti
# Debian 13's netboot installer is fetched from the mirror and checked from
# the archive's signature down (tests/support/iso/fetch-di-netboot).
apt-get install -y -q --no-install-recommends curl gpgv xz-utils debian-archive-keyring
# tests/trixie_host.rs runs the package in a Debian 13 system it makes.
apt-get install -y -q --no-install-recommends systemd-container

# The qemu driver runs qemu as this user (the package's postinst creates it
# on real hosts; the tests run the cargo-built binary, not the package).
if ! getent passwd guest-installer-qemu >/dev/null; then
    adduser --system --group --no-create-home --home /nonexistent guest-installer-qemu
fi

# Xen runs guests' device models as this user (the package's postinst
# creates it on real hosts; the xl driver refuses to start guests without
# it, as Xen would run them as root).
if ! getent passwd xen-qemuuser-shared >/dev/null; then
    adduser --system --group --no-create-home --home /nonexistent xen-qemuuser-shared
fi

# The linux-image package whose version matches the installer kernel (read
# from the bzImage header); the busybox "installer" of the boot tests runs
# that kernel with its own modules. Any installed kernel works as a fallback.
di_kernel=/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux
off=$(od -An -tu2 -j 526 -N 2 "$di_kernel" | tr -d ' \n')
kver=$(dd if="$di_kernel" bs=1 skip=$((off + 512)) count=64 2>/dev/null | tr '\0' ' ' | cut -d ' ' -f 1)
if apt-cache show "linux-image-$kver" >/dev/null 2>&1; then kpkg=linux-image-$kver; else kpkg=linux-image-amd64; fi
apt-get install -y -q --no-install-recommends "$kpkg"

# cargo-fuzz for the bounded fuzzing run of scripts/test.sh.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
