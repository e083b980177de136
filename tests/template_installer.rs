//! `template build IMAGE builder=installer machine=VM` (issue 7's second
//! builder) with the real binary, the qemu driver (TCG here) and the real
//! e2fsprogs, no network.
//!
//! The installer is the busybox fake (tests/support/iso/make-busybox-
//! installer) in its opt-in `--disk` mode: the test builds, on the host, a
//! disk that looks like a finished Debian install (sfdisk: an MBR with an
//! ext4 root as partition 1 and swap as logical partition 5; the root made
//! with `mke2fs -d` from a tree holding a kernel and initrd in /boot, a
//! root hash, dpkg's status, SSH host keys, a machine-id, installer logs,
//! the build machine's static address in /etc/network/interfaces, ...).
//! The disk travels gzip'd inside the fake installer's initrd; the fake
//! reads our preseed from the CD, prints what it got, writes the disk to
//! /dev/vda, prints d-i's "Installation complete" and powers off. The
//! program must then find that root partition, read it without mounting,
//! seal it and make the template.
//!
//! Needs (scripts/setup.sh): qemu-system-x86, e2fsprogs, fdisk (sfdisk),
//! xorriso, isolinux, busybox-static, cpio, a linux-image package,
//! debian-installer-12-netboot-amd64 (for the refusal tests' image).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const KVER: &str = "6.1.0-99-amd64";
const KERNEL: &[u8] = b"not really a kernel, but the template's /boot/vmlinuz\n";
const INITRD: &[u8] = b"not really an initrd either\n";
/// The root hash of the fake install: seal must lock it away.
const ROOT_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
/// Where the build machine (VM number 1 of `machine_with`) lives.
const BUILD_IP: &str = "192.0.2.11";
const DPKG_STATUS: &str = "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n\n\
Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u3\n\n\
Package: linux-image-6.1.0-99-amd64\nStatus: install ok installed\nVersion: 6.1.99-1\n\n\
Package: removed-thing\nStatus: deinstall ok config-files\nVersion: 1.0\n";

/// Prints how long a test took (shown with --nocapture), however it ends.
struct Took(&'static str, Instant);

impl Drop for Took {
    fn drop(&mut self) {
        eprintln!("TIME {}: {:.1} s", self.0, self.1.elapsed().as_secs_f64());
    }
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The root filesystem an install of `hostname` at BUILD_IP would leave.
fn installed_tree(root: &Path, hostname: &str) {
    fs::create_dir_all(root).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    write(root, "usr/lib/os-release", b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n", 0o644);
    fs::create_dir_all(root.join("etc")).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    write(root, &format!("boot/vmlinuz-{KVER}"), KERNEL, 0o644);
    write(root, &format!("boot/initrd.img-{KVER}"), INITRD, 0o644);
    write(root, "etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n", 0o644);
    write(root, "etc/shadow", format!("root:{ROOT_HASH}:19800:0:99999:7:::\ndaemon:*:19800:0:99999:7:::\n").as_bytes(), 0o640);
    std::os::unix::fs::chown(root.join("etc/shadow"), Some(0), Some(42)).unwrap();
    write(root, "var/lib/dpkg/status", DPKG_STATUS.as_bytes(), 0o644);
    for k in ["ed25519", "rsa", "ecdsa"] {
        write(root, &format!("etc/ssh/ssh_host_{k}_key"), format!("PRIVATE {k} KEY of the build machine\n").as_bytes(), 0o600);
        write(root, &format!("etc/ssh/ssh_host_{k}_key.pub"), format!("ssh-{k} AAAA root@{hostname}\n").as_bytes(), 0o644);
    }
    write(root, "etc/ssh/sshd_config", b"Include /etc/ssh/sshd_config.d/*.conf\n", 0o644);
    write(root, "etc/machine-id", b"0123456789abcdef0123456789abcdef\n", 0o444);
    write(root, "var/lib/dbus/machine-id", b"0123456789abcdef0123456789abcdef\n", 0o444);
    write(root, "var/lib/systemd/random-seed", &[7u8; 512], 0o600);
    write(root, "var/log/installer/syslog", b"Nov 27 06:00:00 netcfg[1]: ip addr add 192.0.2.11/24\n", 0o600);
    write(root, "var/log/installer/status", DPKG_STATUS.as_bytes(), 0o644);
    write(
        root,
        "etc/network/interfaces",
        format!("auto lo\niface lo inet loopback\n\nauto ens3\niface ens3 inet static\n\taddress {BUILD_IP}/24\n\tgateway 192.0.2.1\n")
            .as_bytes(),
        0o644,
    );
    write(root, "etc/hostname", format!("{hostname}\n").as_bytes(), 0o644);
    write(root, "etc/hosts", format!("127.0.0.1\tlocalhost\n{BUILD_IP}\t{hostname}.example.org\t{hostname}\n").as_bytes(), 0o644);
    write(root, "etc/resolv.conf", b"search example.org\nnameserver 192.0.2.53\n", 0o644);
    write(root, "var/cache/apt/archives/openssh-server_9.2p1-2_amd64.deb", b"a cached package", 0o644);
    write(root, "var/lib/dhcp/dhclient.ens3.leases", b"lease { fixed-address 192.0.2.11; }\n", 0o644);
    // What rdump alone would lose: a setuid program and a hard link.
    write(root, "usr/bin/su", b"#!/bin/true\n", 0o755);
    fs::set_permissions(root.join("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    write(root, "usr/bin/perl5.36.0", b"perl, twice\n", 0o755);
    fs::hard_link(root.join("usr/bin/perl5.36.0"), root.join("usr/bin/perl")).unwrap();
    // ... and a file capability (what iputils-ping's postinst sets) and a
    // user attribute.
    write(root, "usr/bin/ping", b"#!/bin/true\n", 0o755);
    set_xattr(&root.join("usr/bin/ping"), "security.capability", &PING_CAP);
    set_xattr(&root.join("usr/lib/os-release"), "user.gi-test", b"kept");
}

/// cap_net_raw+ep, as `setcap cap_net_raw+ep` writes it (VFS_CAP_REVISION_2).
const PING_CAP: [u8; 20] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a live slice for the call.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

/// A 48 MiB disk: MBR, p1 ext4 root (40 MiB at 1 MiB), p2 extended holding
/// p5 swap, as d-i's "atomic" recipe lays it out.
fn installed_disk(dir: &Path, hostname: &str) -> PathBuf {
    crafted_disk(dir, hostname, |_| {}, |_| {})
}

/// `installed_disk`, with `tree` changing the installed tree before
/// mke2fs and `part` changing the root filesystem's image after.
fn crafted_disk(dir: &Path, hostname: &str, tree_fn: impl Fn(&Path), part_fn: impl Fn(&Path)) -> PathBuf {
    let tree = dir.join("installed");
    let _ = fs::remove_dir_all(&tree);
    installed_tree(&tree, hostname);
    tree_fn(&tree);
    let part = dir.join("root-part.img");
    let _ = fs::remove_file(&part);
    sh(Command::new("mke2fs").args(["-q", "-F", "-t", "ext4", "-L", "installed-root", "-d"]).arg(&tree).arg(&part).arg("40M"));
    part_fn(&part);
    let disk = dir.join("installed-disk.img");
    let _ = fs::remove_file(&disk);
    fs::File::create(&disk).unwrap().set_len(48 << 20).unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sfdisk (package fdisk)");
    std::io::Write::write_all(
        sf.stdin.as_mut().unwrap(),
        b"label: dos\nunit: sectors\n\nstart=2048, size=81920, type=83\nstart=83968, type=5\nstart=86016, size=10240, type=82\n",
    )
    .unwrap();
    assert!(sf.wait_with_output().unwrap().status.success(), "sfdisk failed");
    // The root filesystem into partition 1, and a swap signature into 5.
    let mut d = fs::OpenOptions::new().write(true).open(&disk).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    d.seek(SeekFrom::Start(2048 * 512)).unwrap();
    d.write_all(&fs::read(&part).unwrap()).unwrap();
    d.seek(SeekFrom::Start(86016 * 512 + 4096 - 10)).unwrap();
    d.write_all(b"SWAPSPACE2").unwrap();
    disk
}

/// Imports, as image `fake`, an install CD whose installer is the busybox
/// fake carrying `disk` (or failing before the end).
fn import_fake_installer(env: &Env, disk: &Path, fail: bool) {
    let mut args = vec![std::ffi::OsStr::new("--disk"), disk.as_os_str()];
    if fail {
        args.push(std::ffi::OsStr::new("--fail-before-finish"));
    }
    env.import_busybox_installer(&args);
}

/// debugfs on `img`: a filesystem image, or a whole-disk template's
/// filesystem as `root_fs` names it.
fn debugfs(img: impl AsRef<std::ffi::OsStr>, req: &str) -> String {
    let o = Command::new("debugfs").arg("-R").arg(req).arg(img).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn cat(img: impl AsRef<std::ffi::OsStr>, p: &str) -> String {
    let o = Command::new("debugfs").arg("-R").arg(format!("cat {p}")).arg(img).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names in a directory of the image (`ls -p`: /inode/mode/uid/gid/name/size/).
fn ls(img: impl AsRef<std::ffi::OsStr>, dir: &str) -> Vec<(u64, u32, String)> {
    debugfs(img, &format!("ls -p {dir}"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('/').collect();
            (f.len() == 8 && f[0].is_empty()).then(|| (f[1].parse().unwrap(), u32::from_str_radix(f[2], 8).unwrap(), f[5].to_owned()))
        })
        .filter(|(_, _, n)| n != "." && n != "..")
        .collect()
}

/// Paths under the state dir that are new since `before`, ignoring the
/// lock files and the build machine's directory with its console log and
/// domain config (a record of what ran, as after any install).
fn new_paths(env: &Env, before: &std::collections::BTreeMap<PathBuf, (u32, u32, Vec<u8>)>) -> Vec<PathBuf> {
    env.snapshot()
        .into_keys()
        .filter(|k| !before.contains_key(k))
        .filter(|k| !k.starts_with(env.state.join("locks")))
        .filter(|k| *k != env.state.join("vms") && k.parent() != Some(&env.state.join("vms")))
        .filter(|k| !["console.log", "domain.cfg"].iter().any(|f| k.ends_with(f)))
        .collect()
}

/// Each install stage is reported once, in the installer's order.
fn assert_stages_go_forward(lines: &[(f64, String)]) {
    let order = ["booted", "network configured", "installing base system", "finished"];
    let seen: Vec<usize> = lines
        .iter()
        .filter_map(|(_, t)| t.strip_prefix("install stage: "))
        .map(|s| order.iter().position(|o| *o == s).unwrap_or_else(|| panic!("unknown stage {s:?}")))
        .collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
}

#[test]
fn installer_builder_installs_reads_back_and_seals_a_template() {
    let _took = Took("installer_builder_installs_reads_back_and_seals_a_template", Instant::now());
    let env = Env::new();
    env.use_qemu();
    let disk = installed_disk(env.root(), "tpl1");
    import_fake_installer(&env, &disk, false);
    env.machine_with("build1", 1, Some("fake"), &[]);
    let guest = Guest::new(&env, "build1");

    let t0 = Instant::now();
    let o = env.run(As::Root, &["template", "build", "fake", "name=tpl1", "builder=installer", "machine=build1", "--json"], b"");
    eprintln!("BENCH template build builder=installer (fake installer under TCG, read back, seal, mke2fs): {:.1} s", t0.elapsed().as_secs_f64());
    let c = console(&env, "build1");
    assert_eq!(o.code, 0, "{o:?}\nconsole:\n{}", readable_tail(&c, 40));
    let j = o.json();
    assert_eq!(j["builder"], "installer", "{j}");
    assert!(!guest.qemu_alive(), "the build guest still runs");
    assert_eq!(o.stdout.lines().count(), 1, "{o:?}");
    let lines = steps::assert_steps(
        &o.stderr,
        &[
            "writing the install media for the build machine build1",
            "starting the installer guest build1",
            "waiting for the install to finish (at most ",
            "install stage: finished",
            "the installer guest has stopped",
            "reading the installed system back from ",
            "sealing the tree",
            "making the 2 GiB whole-disk image (mke2fs into its partition, GRUB boot code)",
            "computing the digests",
            "publishing template tpl1",
        ],
    );
    assert_stages_go_forward(&lines);
    assert!(!o.stderr.contains("$6$") && !o.stderr.contains("preseed/"), "a secret on stderr: {o:?}");

    // The fake installer got our preseed: the template's name as hostname,
    // the build machine's address.
    assert!(c.lines().any(|l| l.trim_end() == format!("GI-FAKE-INSTALLER: preseed hostname=tpl1 ip={BUILD_IP}")), "{}", readable_tail(&c, 40));
    assert!(c.contains("GI-FAKE-INSTALLER: disk written"), "{}", readable_tail(&c, 40));

    // The manifest: builder, suite, packages from dpkg's status, digests.
    let dir = env.state.join("templates/tpl1");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["builder"], "installer");
    assert_eq!(m["suite"], "bookworm");
    assert_eq!(m["image"], "fake");
    assert_eq!(m["kernel_version"], KVER);
    assert_eq!(
        m["packages"],
        serde_json::json!(["base-files 12.4+deb12u5", "linux-image-6.1.0-99-amd64 6.1.99-1", "openssh-server 1:9.2p1-2+deb12u3"])
    );
    for (f, content) in [("kernel", KERNEL), ("initrd", INITRD)] {
        let name = m[f]["file"].as_str().unwrap();
        assert_eq!(fs::read(dir.join(name)).unwrap(), content, "{f}");
        assert_eq!(m[f]["sha256"].as_str().unwrap(), sha256(&dir.join(name)), "{f}");
    }
    let img = dir.join(m["root"]["file"].as_str().unwrap());
    assert_eq!(m["root"]["sha256"].as_str().unwrap(), sha256(&img));
    let img = root_fs(&img);

    // Sealed: nothing of the build machine, read without mounting.
    let ssh: Vec<String> = ls(&img, "/etc/ssh").into_iter().map(|e| e.2).collect();
    assert!(ssh.contains(&"sshd_config".to_owned()), "{ssh:?}");
    assert!(!ssh.iter().any(|n| n.starts_with("ssh_host_")), "host keys left: {ssh:?}");
    assert_eq!(cat(&img, "/etc/machine-id"), "");
    assert!(ls(&img, "/var/log").iter().all(|e| e.2 != "installer"), "{:?}", ls(&img, "/var/log"));
    let interfaces = cat(&img, "/etc/network/interfaces");
    assert!(interfaces.contains("iface lo inet loopback"), "{interfaces}");
    assert!(!interfaces.contains(BUILD_IP) && !interfaces.contains("ens3"), "{interfaces}");
    assert!(cat(&img, "/etc/shadow").lines().any(|l| l.starts_with("root:!:")), "root not locked: {}", cat(&img, "/etc/shadow"));
    assert!(!cat(&img, "/etc/shadow").contains(ROOT_HASH));
    assert_eq!(cat(&img, "/etc/hostname"), "localhost\n");
    assert!(!cat(&img, "/etc/hosts").contains(BUILD_IP));
    for (d, gone) in [
        ("/etc", "resolv.conf"),
        ("/var/lib/dbus", "machine-id"),
        ("/var/lib/systemd", "random-seed"),
        ("/var/cache/apt/archives", "openssh-server_9.2p1-2_amd64.deb"),
        ("/var/lib/dhcp", "dhclient.ens3.leases"),
    ] {
        assert!(ls(&img, d).iter().all(|e| e.2 != gone), "{d}/{gone} left");
    }
    assert!(ls(&img, "/usr/local/sbin").iter().any(|e| e.2 == "gi-identity"), "no identity unit");
    // What rdump loses was put back: setuid, hard links, symlinks, owners.
    let bin = ls(&img, "/usr/bin");
    let su = bin.iter().find(|e| e.2 == "su").unwrap();
    assert_eq!(su.1 & 0o7777, 0o4755, "setuid lost on /usr/bin/su");
    let perl: Vec<u64> = bin.iter().filter(|e| e.2.starts_with("perl")).map(|e| e.0).collect();
    assert!(perl.len() == 2 && perl[0] == perl[1], "hard link not kept: {bin:?}");
    let cap = debugfs(&img, "ea_list /usr/bin/ping");
    assert!(cap.contains("security.capability (20) = 01 00 00 02 00 20 00 00"), "file capability lost: {cap}");
    let user = debugfs(&img, "ea_list /usr/lib/os-release");
    assert!(user.contains("user.gi-test (4) = \"kept\""), "user attribute lost: {user}");
    assert!(debugfs(&img, "stat /etc/os-release").contains("Fast link dest: \"../usr/lib/os-release\""));
    assert!(debugfs(&img, "stat /etc/shadow").contains("Group:    42"), "{}", debugfs(&img, "stat /etc/shadow"));

    // The build machine's media (they held the hash) are gone, and no
    // hidden build directory is left.
    for f in ["install.qcow2", "initrd.gz", "qemu.pid"] {
        assert!(!env.vm_file("build1", f).exists(), "{f} left behind");
    }
    for (p, (_, _, content)) in snapshot(&env.state.join("vms")) {
        assert!(!String::from_utf8_lossy(&content).contains("root-password-crypted"), "a preseed is left in {}", p.display());
    }
    for e in fs::read_dir(env.state.join("templates")).unwrap() {
        let n = e.unwrap().file_name();
        assert!(!n.to_string_lossy().starts_with(".template-"), "{n:?} left");
    }

    let t = env.run(As::Remote(OWNER), &["templates", "--json"], b"").ok().json();
    assert_eq!(t["templates"][0]["name"], "tpl1", "{t}");
    assert_eq!(t["templates"][0]["builder"], "installer", "{t}");
}

#[test]
fn an_install_that_stops_before_finishing_builds_nothing() {
    let _took = Took("an_install_that_stops_before_finishing_builds_nothing", Instant::now());
    let env = Env::new();
    env.use_qemu();
    let disk = installed_disk(env.root(), "tpl2");
    import_fake_installer(&env, &disk, true);
    env.machine_with("build2", 2, Some("fake"), &[]);
    let _guest = Guest::new(&env, "build2");
    let before = env.snapshot();

    let t0 = Instant::now();
    let o = env.run(As::Root, &["template", "build", "fake", "name=tpl2", "builder=installer", "machine=build2", "--json"], b"");
    eprintln!("BENCH failing builder=installer build: {:.1} s", t0.elapsed().as_secs_f64());
    let c = console(&env, "build2");
    assert_eq!(o.code, 1, "{o:?}\nconsole:\n{}", readable_tail(&c, 40));
    let err = &o.json()["error"];
    assert_eq!(err["kind"], "failed");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("stopped before the install finished") && msg.contains("last stage: installing base system"), "{msg}");
    let lines = steps::assert_steps(&o.stderr, &["starting the installer guest build2", "install stage: installing base system", "the installer guest has stopped"]);
    assert_stages_go_forward(&lines);
    assert_eq!(lines.last().unwrap().1, "the installer guest has stopped", "a step after the failure: {lines:?}");
    assert!(c.contains("GI-FAKE-INSTALLER: crashing"), "{}", readable_tail(&c, 40));

    assert!(!env.state.join("templates/tpl2").exists());
    let new = new_paths(&env, &before);
    assert!(new.is_empty(), "left behind: {new:?}");
    for f in ["install.qcow2", "initrd.gz"] {
        assert!(!env.vm_file("build2", f).exists(), "{f} left behind");
    }
    let t = env.run(As::Root, &["templates", "--json"], b"").ok().json();
    assert_eq!(t["templates"], serde_json::json!([]));
}

#[test]
fn installer_builder_refusals() {
    let _took = Took("installer_builder_refusals", Instant::now());
    let env = Env::new();
    env.use_qemu();
    env.import("deb12", false);
    let volume = env.machine_with("build3", 3, Some("deb12"), &[]);
    let before = env.snapshot();
    let build = |args: &[&str], who: As| {
        let mut a = vec!["template", "build", "deb12", "name=t3"];
        a.extend_from_slice(args);
        a.push("--json");
        env.run(who, &a, b"")
    };
    let kind = |o: &Out| o.json()["error"]["kind"].as_str().unwrap_or_default().to_owned();

    let o = build(&["builder=installer"], As::Root);
    assert_eq!((o.code, kind(&o)), (2, "invalid".into()), "{o:?}");
    let o = build(&["machine=build3"], As::Root);
    assert_eq!(o.code, 2, "machine= without builder=installer: {o:?}");
    let o = build(&["builder=mmdebstrap", "machine=build3"], As::Root);
    assert_eq!(o.code, 2, "{o:?}");
    let o = build(&["builder=installer", "machine=nosuch"], As::Root);
    assert_eq!((o.code, kind(&o)), (4, "not_found".into()), "{o:?}");
    let o = build(&["builder=installer", "machine=build3"], As::Remote(ADMIN));
    assert_eq!((o.code, kind(&o)), (3, "denied".into()), "{o:?}");

    // Another request holds the build machine's lock: busy at once.
    fs::create_dir_all(env.state.join("locks")).unwrap();
    let lockf = fs::OpenOptions::new().create(true).truncate(false).write(true).open(env.state.join("locks/build3.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lockf, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e).unwrap();
    let o = build(&["builder=installer", "machine=build3"], As::Root);
    assert_eq!((o.code, kind(&o)), (5, "busy".into()), "{o:?}");
    drop(held);

    // No volume: failed before any guest is started.
    fs::remove_file(&volume).unwrap();
    let o = build(&["builder=installer", "machine=build3"], As::Root);
    assert_eq!((o.code, kind(&o)), (1, "failed".into()), "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("is missing"), "{o:?}");
    assert!(!env.vm_file("build3", "console.log").exists(), "a guest was started");

    // A qcow2 volume cannot be read back as a partitioned disk: refused
    // before any guest is started.
    let qcow = env.volume_qcow2("build5");
    env.machine_with("build5", 5, Some("deb12"), &[&format!("disk={}", qcow.display())]);
    let before5 = env.snapshot();
    let o = env.run(As::Root, &["template", "build", "deb12", "name=t5", "builder=installer", "machine=build5", "--json"], b"");
    assert_eq!((o.code, kind(&o)), (1, "failed".into()), "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("needs a raw volume"), "{o:?}");
    assert!(new_paths(&env, &before5).is_empty(), "{:?}", new_paths(&env, &before5));

    let new: Vec<_> = new_paths(&env, &before).into_iter().filter(|p| !p.ends_with("build5.json")).collect();
    assert!(new.is_empty(), "left behind: {new:?}");
}

/// The real Debian installer cannot finish here (no mirror is reachable
/// from the guest), so a build bounded by a few seconds always times out:
/// the guest is destroyed, its media removed, nothing built.
#[test]
fn an_install_that_does_not_stop_in_time_is_destroyed() {
    let _took = Took("an_install_that_does_not_stop_in_time_is_destroyed", Instant::now());
    let env = Env::new();
    env.use_qemu();
    let cfg = fs::read_to_string(&env.config).unwrap();
    assert!(cfg.contains("hypervisor_s = 10\n"));
    fs::write(&env.config, cfg.replace("hypervisor_s = 10\n", "hypervisor_s = 10\ntemplate_s = 5\n")).unwrap();
    env.import("deb12", false);
    env.machine_with("build4", 4, Some("deb12"), &[]);
    let guest = Guest::new(&env, "build4");
    let before = env.snapshot();

    let o = env.run(As::Root, &["template", "build", "deb12", "name=t4", "builder=installer", "machine=build4", "--json"], b"");
    assert_eq!(o.code, 1, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("did not stop within 5 s and was destroyed"), "{msg}");
    assert!(!guest.qemu_alive(), "the timed-out guest still runs");
    assert!(env.vm_file("build4", "console.log").exists(), "the guest was never started: {msg}");
    let new = new_paths(&env, &before);
    assert!(new.is_empty(), "left behind: {new:?}");
    assert!(!env.state.join("templates/t4").exists());
}

/// The same build with the xl driver (Xen's own config parser checks the
/// domain config; the xl stand-in plays the hypervisor): the test plays
/// the installer, writing the installed disk onto the volume and d-i's
/// last words into xenconsoled's log, then making the domain go away. A
/// machine whose domain runs is refused (busy).
#[test]
fn installer_builder_with_the_xl_driver() {
    let _took = Took("installer_builder_with_the_xl_driver", Instant::now());
    let env = Env::new(); // the xl stand-in
    env.import("deb12", false);
    let volume = env.machine_with("xlb1", 5, Some("deb12"), &[]);
    let disk = installed_disk(env.root(), "tpl5");

    let o = std::thread::scope(|s| {
        let build = s.spawn(|| {
            env.run(As::Root, &["template", "build", "deb12", "name=tpl5", "builder=installer", "machine=xlb1", "--json"], b"")
        });
        let t0 = Instant::now();
        while !env.xl_running("xlb1") {
            assert!(!build.is_finished(), "the build ended without starting the guest: {:?}", build.join().unwrap());
            assert!(t0.elapsed().as_secs() < 120, "the guest was never started");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // Still installing: the program waits for the guest.
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert!(!build.is_finished(), "the build did not wait for the guest");
        let cfg = fs::read_to_string(env.vm_file("xlb1", "domain.cfg")).unwrap();
        check_xl_config(&env.vm_file("xlb1", "domain.cfg"));
        assert!(cfg.contains("on_reboot = \"destroy\"") && cfg.contains(&volume.display().to_string()), "{cfg}");
        assert!(env.vm_file("xlb1", "install.qcow2").exists(), "no per-VM media while installing");
        fs::copy(&disk, &volume).unwrap();
        fs::write(env.root().join("console/guest-xlb1.log"), "Installing the base system\nInstallation complete\nreboot: Restarting system\n").unwrap();
        env.xl_guest_finishes("xlb1");
        build.join().unwrap()
    });
    let j = o.ok().json();
    assert_eq!(j["builder"], "installer", "{j}");
    assert_eq!(j["kernel_version"], KVER, "{j}");
    assert!(!env.vm_file("xlb1", "install.qcow2").exists(), "media left behind");
    let img = root_fs(&env.state.join("templates/tpl5/disk.img"));
    assert!(cat(&img, "/etc/shadow").lines().any(|l| l.starts_with("root:!:")));
    assert!(!ls(&img, "/etc/ssh").iter().any(|e| e.2.starts_with("ssh_host_")));

    // Its domain runs: refused at once, nothing started or built.
    env.machine_with("xlb2", 6, Some("deb12"), &[]);
    fs::write(env.xl.parent().unwrap().join("domains/xlb2"), "7 512 1\n").unwrap();
    let o = env.run(As::Root, &["template", "build", "deb12", "name=tpl6", "builder=installer", "machine=xlb2", "--json"], b"");
    assert_eq!(o.code, 5, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("is running"), "{o:?}");
    assert!(!env.vm_file("xlb2", "install.qcow2").exists());
    assert!(!env.state.join("templates/tpl6").exists());
}

/// Imports, as image `name`, the busybox fake installer carrying `disk`
/// (what `Env::import_busybox_installer` does, under another name).
fn import_fake_as(env: &Env, name: &str, disk: &Path) {
    let work = env.root().join(format!("fake-{name}"));
    let (bb, tree, iso) = (work.join("bb"), work.join("tree"), work.join("fake.iso"));
    let support = repo().join("tests/support/iso");
    sh(Command::new(support.join("make-busybox-installer")).arg(&bb).arg("--disk").arg(disk));
    sh(Command::new(support.join("make-installer-tree")).arg(&tree).arg("--kernel").arg(bb.join("vmlinuz")).arg("--initrd").arg(bb.join("initrd.gz")));
    sh(Command::new(support.join("make-installer-iso")).arg(&tree).arg(&iso));
    let sum = format!("sha256={}", sha256(&iso));
    env.run(As::Root, &["image", "import", name, iso.to_str().unwrap(), &sum], b"").ok();
    fs::remove_dir_all(&work).unwrap();
}

/// Renames the one directory entry `from` in the image to `to` (not
/// longer), in place: how a crafted disk gets names mke2fs and the kernel
/// refuse. (A directory entry: inode, record length, name length, type,
/// name.)
fn patch_name(img: &Path, from: &[u8], to: &[u8]) {
    assert!(to.len() <= from.len());
    let mut b = fs::read(img).unwrap();
    let at: Vec<usize> = b.windows(from.len()).enumerate().filter(|(i, w)| *w == from && *i >= 8 && b[i - 2] as usize == from.len()).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "{} entries named {:?}", at.len(), String::from_utf8_lossy(from));
    b[at[0] - 2] = to.len() as u8;
    b[at[0]..at[0] + to.len()].copy_from_slice(to);
    fs::write(img, b).unwrap();
}

/// Where an inode sits in the image (`debugfs imap`).
fn inode_offset(img: &Path, path: &str) -> usize {
    let out = debugfs(img, &format!("imap {path}"));
    let block: usize = out.split("located at block ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let off = usize::from_str_radix(out.split("offset 0x").nth(1).unwrap().split_whitespace().next().unwrap(), 16).unwrap();
    let bs: usize = debugfs(img, "stats").lines().find_map(|l| l.strip_prefix("Block size:")).unwrap().trim().parse().unwrap();
    block * bs + off
}

fn debugfs_w(img: &Path, req: &str) {
    let o = Command::new("debugfs").arg("-w").arg("-R").arg(req).arg(img).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.lines().all(|l| l.starts_with("debugfs ")), "{req}: {err}");
}

/// A host file outside the build: its content and modification time.
fn sentinel_state(p: &Path) -> (Vec<u8>, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap();
    (fs::read(p).unwrap(), m.mtime(), m.mtime_nsec())
}

type Craft = (&'static str, i32, Box<dyn Fn(&Path)>, Box<dyn Fn(&Path)>);

/// A guest decides what is on the disk read back. Each crafted root
/// filesystem below (otherwise a finished install) goes through the real
/// builder and the busybox installer; each must fail with exit 1 and
/// leave nothing, or build from a tree that stayed inside the build dir;
/// and the host files it aims at keep their content and mtime. (10^6
/// empty files is tested at the reader level: such a filesystem is too
/// big to carry in the fake installer's initrd.)
#[test]
fn a_crafted_disk_cannot_steer_the_read_back() {
    let _took = Took("a_crafted_disk_cannot_steer_the_read_back", Instant::now());
    let env = Env::new();
    env.use_qemu();
    let outside = env.root().join("outside");
    fs::create_dir(&outside).unwrap();
    let sentinel = outside.join("sentinel");
    fs::write(&sentinel, b"host file, not the guest's\n").unwrap();
    let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
    nix::sys::stat::utimensat(None, &sentinel, &old, &old, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
    let before = sentinel_state(&sentinel);
    // From STATE/templates/.template-T-XXXXXX/tree/etc up to the test's root.
    let up = "../".repeat(4 + env.state.strip_prefix(env.root()).unwrap().components().count());
    let dotdot_name = format!("{up}outside/sentinel");
    let abs = sentinel.clone();

    let cases: Vec<Craft> = vec![
        // rdump created the symlink, then wrote the file's bytes through it.
        (
            "symlink-then-same-name",
            1,
            Box::new(move |t| {
                std::os::unix::fs::symlink(&abs, t.join("etc/zzdupa")).unwrap();
                write(t, "etc/zzdupb", b"EVIL\n", 0o644);
            }),
            Box::new(|p| patch_name(p, b"zzdupb", b"zzdupa")),
        ),
        (
            "dotdot-in-a-name",
            1,
            Box::new({
                let n = dotdot_name.len();
                move |t| write(t, &format!("etc/{}", "q".repeat(n)), b"EVIL\n", 0o644)
            }),
            Box::new({
                let n = dotdot_name.clone();
                move |p| patch_name(p, "q".repeat(n.len()).as_bytes(), n.as_bytes())
            }),
        ),
        ("a-file-named-dotdot", 1, Box::new(|t| write(t, "etc/zzdotdot1", b"EVIL\n", 0o644)), Box::new(|p| patch_name(p, b"zzdotdot1", b".."))),
        ("a-file-named-dot", 1, Box::new(|t| write(t, "etc/zzdotone1", b"EVIL\n", 0o644)), Box::new(|p| patch_name(p, b"zzdotone1", b"."))),
        (
            "duplicate-names",
            1,
            Box::new(|t| {
                write(t, "etc/zzdupc", b"one\n", 0o644);
                write(t, "etc/zzdupd", b"two\n", 0o644);
            }),
            Box::new(|p| patch_name(p, b"zzdupd", b"zzdupc")),
        ),
        (
            "a-directory-linked-into-itself",
            1,
            Box::new(|t| fs::create_dir(t.join("etc/d")).unwrap()),
            Box::new(|p| debugfs_w(p, "link /etc/d /etc/d/self")),
        ),
        (
            "a-symlink-loop",
            0,
            Box::new(|t| {
                std::os::unix::fs::symlink("loop-b", t.join("etc/loop-a")).unwrap();
                std::os::unix::fs::symlink("loop-a", t.join("etc/loop-b")).unwrap();
                std::os::unix::fs::symlink(".", t.join("etc/here")).unwrap();
            }),
            Box::new(|_| {}),
        ),
        (
            // The journal's needs_recovery flag: not cleanly unmounted.
            "a-journal-that-needs-recovery",
            1,
            Box::new(|_| {}),
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                b[1024 + 96] |= 0x4;
                fs::write(p, b).unwrap();
            }),
        ),
        (
            "a-1-TiB-sparse-file",
            1,
            Box::new(|t| fs::File::create(t.join("var/sparse")).unwrap().set_len(1 << 40).unwrap()),
            Box::new(|_| {}),
        ),
        (
            // Twelve files claiming the blocks of one 4 MiB file: 48 MiB
            // of data from a 40 MiB filesystem.
            "cross-linked-blocks",
            1,
            Box::new(|t| {
                write(t, "var/big", &vec![0x5a; 4 << 20], 0o644);
                for i in 0..12 {
                    write(t, &format!("var/x{i:02}"), b"small\n", 0o644);
                }
            }),
            Box::new(|p| {
                let mut b = fs::read(p).unwrap();
                let big = inode_offset(p, "/var/big");
                for i in 0..12 {
                    let x = inode_offset(p, &format!("/var/x{i:02}"));
                    // i_size_lo, i_block[], i_size_high; i_flags (extents).
                    for (at, len) in [(4, 4), (32, 4), (40, 60), (108, 4)] {
                        let v = b[big + at..big + at + len].to_vec();
                        b[x + at..x + at + len].copy_from_slice(&v);
                    }
                }
                fs::write(p, b).unwrap();
            }),
        ),
    ];

    for (i, (name, want, tree_fn, part_fn)) in cases.iter().enumerate() {
        let n = 20 + i as u8;
        let (vm, image, tpl) = (format!("craft{n}"), format!("craft{n}"), format!("tcraft{n}"));
        let disk = crafted_disk(env.root(), &tpl, tree_fn, part_fn);
        import_fake_as(&env, &image, &disk);
        env.machine_with(&vm, n, Some(&image), &[]);
        let _guest = Guest::new(&env, &vm);
        let o = env.run(As::Root, &["template", "build", &image, &format!("name={tpl}"), "builder=installer", &format!("machine={vm}"), "--json"], b"");
        let c = console(&env, &vm);
        assert!(c.contains("GI-FAKE-INSTALLER: disk written"), "{name}: the install did not run:\n{}", readable_tail(&c, 40));
        assert_eq!(o.code, *want, "{name}: {o:?}");
        if *want != 0 {
            let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(msg.contains("cannot copy the installed system out of its filesystem"), "{name}: {msg}");
            eprintln!("{name}: {msg}");
            assert!(!env.state.join("templates").join(&tpl).exists(), "{name}");
        }
        assert_eq!(sentinel_state(&sentinel), before, "{name}: the host file changed");
        let left: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("sentinel")], "{name}");
        // (A failed first build takes the templates directory away too.)
        for e in fs::read_dir(env.state.join("templates")).into_iter().flatten() {
            let n = e.unwrap().file_name();
            assert!(!n.to_string_lossy().starts_with(".template-"), "{name}: {n:?} left");
        }
    }
    // The symlink loop was copied as what it is: three symlinks.
    let img = root_fs(&env.state.join("templates/tcraft26/disk.img"));
    assert_eq!(cases[6].0, "a-symlink-loop");
    assert!(debugfs(&img, "stat /etc/loop-a").contains("Fast link dest: \"loop-b\""), "{}", debugfs(&img, "stat /etc/loop-a"));
    assert!(debugfs(&img, "stat /etc/here").contains("Fast link dest: \".\""));
}
