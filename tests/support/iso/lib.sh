# Shared helpers for the ISO fixture scripts. Sourced, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034  # used by the scripts that source this

DI_IMAGES=${GI_DI_IMAGES:-/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64}
ISOLINUX_DIR=${GI_ISOLINUX_DIR:-/usr/lib/ISOLINUX}
SYSLINUX_BIOS=${GI_SYSLINUX_BIOS:-/usr/lib/syslinux/modules/bios}

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

need_file() {
    [ -f "$1" ] || die "missing $1${2:+ (install package $2)}"
}

need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "missing command $1${2:+ (install package $2)}"
}

# Prints the version string of an x86 bzImage (e.g. 6.1.0-50-amd64), read
# from its setup header: 0x202 holds "HdrS", the u16 at 0x20E points (from
# 0x200) at a NUL-terminated "VERSION (builder) #..." string.
bzimage_version() {
    local img=$1 magic off
    magic=$(dd if="$img" bs=1 skip=514 count=4 2>/dev/null) || return 1
    [ "$magic" = HdrS ] || return 1
    off=$(od -An -tu2 -j 526 -N 2 "$img" | tr -d ' \n')
    [ -n "$off" ] && [ "$off" -gt 0 ] || return 1
    dd if="$img" bs=1 skip=$((off + 512)) count=256 2>/dev/null \
        | tr '\0' '\n' | head -n 1 | cut -d ' ' -f 1
}
