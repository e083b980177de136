#!/bin/bash
# The main job end to end on the qemu driver: import a Debian installer
# image (built here from Debian's own installer kernel and initrd, laid out
# as an install CD), register a machine, install it, and watch the real
# installer take the preseed. There is no Debian mirror reachable from the
# guest here, so the demo stops the guest once the installer has configured
# the network and reached the mirror step (~2 min under TCG).
# Run as root after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
cargo build --release --locked --quiet
bin=$top/target/release/guest-installer

demo=$(mktemp -d /var/tmp/guest-installer-demo.XXXXXX)
syslog_pid=
# The guests' network: a bridge (the host side is 192.0.2.1) in a network
# namespace of its own; the driver's taps join it when guests start there.
ns=gi-demo-$$
bridge=gidemo0
innet() { ip netns exec "$ns" "$@"; }
cleanup() {
    GUEST_INSTALLER_CONFIG=$demo/config.toml "$bin" cancel demo1 >/dev/null 2>&1 || true
    GUEST_INSTALLER_CONFIG=$demo/config.toml "$bin" stop demo2 --force >/dev/null 2>&1 || true
    GUEST_INSTALLER_CONFIG=$demo/config.toml "$bin" cancel demo2 >/dev/null 2>&1 || true
    [ -z "$syslog_pid" ] || kill "$syslog_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$demo"
}
trap cleanup EXIT
mkdir -m 0700 "$demo/state"
ip netns add "$ns"
innet ip link set lo up
innet ip link add "$bridge" type bridge
innet ip addr add 192.0.2.1/24 dev "$bridge"
innet ip link set "$bridge" up
# The Debian archive this host's own apt sources use (templates come from it).
mirror=$(scripts/host-mirror)
mirror=${mirror#*://}
mirror_host=${mirror%%/*}
mirror_dir=/${mirror#*/}
[ "$mirror_dir" != "/$mirror" ] || mirror_dir=/
cp etc/preseed.cfg "$demo/preseed.cfg"
cat > "$demo/config.toml" <<CFG
state_dir = "$demo/state"
preseed_template = "$demo/preseed.cfg"
admins = ["alice/admin@EXAMPLE.ORG"]
domain = "example.org"
[mirror]
host = "$mirror_host"
directory = "$mirror_dir"
[hypervisor]
driver = "qemu"
qemu_net = "bridge"
bridge = "$bridge"
[timeouts]
stop_s = 30
[audit]
syslog_socket = "$demo/syslog.sock"
CFG
# The program trusts only files only root can change, whatever the umask.
chmod 0644 "$demo/config.toml" "$demo/preseed.cfg"
# The audit records go to syslog; this machine may run no syslog daemon, so
# the demo listens on a socket of its own and shows them at the end.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(8192) + b"\n")
' "$demo/syslog.sock" "$demo/audit.log" &
syslog_pid=$!
for _ in $(seq 50); do [ -S "$demo/syslog.sock" ] && break; sleep 0.1; done
export GUEST_INSTALLER_CONFIG=$demo/config.toml
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# Waits until the console of $1 shows "$1 login:" (its own host name),
# or gives up after $2 seconds.
wait_login() {
    local vm=$1 limit=$2 t=0
    while [ "$t" -lt "$limit" ]; do
        if grep -aq "$vm login:" "$demo/state/vms/$vm/console.log" 2>/dev/null; then
            echo "  ($vm's console shows its login prompt after ~${t} s)"
            return 0
        fi
        sleep 2
        t=$((t + 2))
    done
    echo "$vm showed no login prompt within $limit s" >&2
    return 1
}

# The fast path: a golden template (built once from the Debian mirror in
# the config), cloned onto a machine's volume with its own identity; the
# clone boots its own kernel through the GRUB in its own disk, is stopped
# and started again.
fast_path() {
    echo
    echo "== the fast path: a golden template cloned onto a machine's volume in seconds"
    say guest-installer template build bookworm name=bookworm
    "$bin" template build bookworm name=bookworm
    say guest-installer machine add demo2 owner=bob@EXAMPLE.ORG ip=192.0.2.11 ... template=bookworm
    truncate -s 4G "$demo/demo2.img"
    "$bin" machine add demo2 owner=bob@EXAMPLE.ORG ip=192.0.2.11 netmask=255.255.255.0 \
        gateway=192.0.2.1 nameserver=192.0.2.53 mac=00:16:3e:00:00:11 \
        "disk=$demo/demo2.img" memory=1024 template=bookworm
    # The owner's key, registered once; install puts it into root's
    # authorized_keys, so no root password is needed at all.
    ssh-keygen -q -t ed25519 -N '' -C bob@laptop -f "$demo/id_bob"
    say 'REMOTE_USER=bob@EXAMPLE.ORG guest-installer key add "$(cat ~/.ssh/id_ed25519.pub)"'
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" key add "$(cat "$demo/id_bob.pub")"
    say "echo '' | REMOTE_USER=bob@EXAMPLE.ORG guest-installer install demo2    # no root password: key only"
    echo '' | REMOTE_USER=bob@EXAMPLE.ORG innet "$bin" install demo2
    wait_login demo2 600
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer status demo2"
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" status demo2
    ssh_in demo2 192.0.2.11
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer stop demo2"
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" stop demo2 --force
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer start demo2"
    REMOTE_USER=bob@EXAMPLE.ORG innet "$bin" start demo2
    wait_login demo2 600
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer list"
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" list
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer stop demo2"
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" stop demo2 --force
}

# The owner logs in as root with the registered key, checking the host key
# against the fingerprint `status` showed (sshd may need a few seconds
# after the login prompt).
ssh_in() {
    local vm=$1 addr=$2 fp t=0
    fp=$(REMOTE_USER=bob@EXAMPLE.ORG "$bin" status "$vm" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ssh_host_key"] or "")')
    say "ssh -i ~/.ssh/id_ed25519 root@$addr 'hostname -f; id'      # host key $fp"
    while [ "$t" -lt 120 ]; do
        if innet ssh -i "$demo/id_bob" -o BatchMode=yes -o ConnectTimeout=5 \
            -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$demo/known_hosts" \
            "root@$addr" 'hostname -f; id' 2>"$demo/ssh.err"; then
            local seen
            seen=$(ssh-keygen -lf "$demo/known_hosts" | awk '{print $2}')
            if [ -n "$fp" ] && [ "$seen" != "$fp" ]; then
                echo "the guest's host key $seen is not the one status showed ($fp)" >&2
                return 1
            fi
            echo "  (logged in with the owner's key; the host key matches status)"
            return 0
        fi
        sleep 3
        t=$((t + 3))
    done
    echo "could not log into $vm over SSH:" >&2
    cat "$demo/ssh.err" >&2
    return 1
}

echo "== building an installer CD from debian-installer-12-netboot-amd64"
tests/support/iso/make-installer-tree "$demo/cd" >/dev/null
tests/support/iso/make-installer-iso "$demo/cd" "$demo/debian-12-installer.iso"
sum=$(sha256sum "$demo/debian-12-installer.iso" | cut -d' ' -f1)

say guest-installer image import bookworm debian-12-installer.iso sha256=$sum
"$bin" image import bookworm "$demo/debian-12-installer.iso" "sha256=$sum"
say guest-installer images
"$bin" images

truncate -s 4G "$demo/demo1.img"
say guest-installer machine add demo1 owner=bob@EXAMPLE.ORG ip=192.0.2.10 ...
"$bin" machine add demo1 owner=bob@EXAMPLE.ORG ip=192.0.2.10 netmask=255.255.255.0 \
    gateway=192.0.2.1 nameserver=192.0.2.53 mac=00:16:3e:00:00:10 \
    "disk=$demo/demo1.img" memory=1024 image=bookworm

say "echo '<password>' | REMOTE_USER=bob@EXAMPLE.ORG guest-installer install demo1"
head -c 12 /dev/urandom | base64 | REMOTE_USER=bob@EXAMPLE.ORG innet "$bin" install demo1

# Follow the install as its owner would.
for _ in $(seq 1 40); do
    sleep 10
    say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer status demo1"
    REMOTE_USER=bob@EXAMPLE.ORG "$bin" status demo1 2>/dev/null
    if REMOTE_USER=bob@EXAMPLE.ORG "$bin" status demo1 --json 2>/dev/null | grep -q '"progress":"network configured"'; then
        echo
        echo "The installer booted our label, loaded our preseed and configured the static"
        echo "network with no question asked; it now wants a Debian mirror, which this"
        echo "machine's guests cannot reach. Stopping here."
        say "REMOTE_USER=bob@EXAMPLE.ORG guest-installer cancel demo1"
        REMOTE_USER=bob@EXAMPLE.ORG "$bin" cancel demo1
        fast_path
        echo
        echo "== the audit log (syslog, authpriv): who, what, which machine, outcome; never the password"
        cat "$demo/audit.log"
        exit 0
    fi
done
echo "the installer did not reach the mirror step in time" >&2
exit 1
