//! Tests of the ISO fixtures in tests/support/iso/ themselves: the
//! installer-like tree and ISO they build are what real Debian netinst media
//! look like to isolinux, and the busybox "installer" really boots from such
//! an ISO under qemu (TCG) and reports the preseed it found on /dev/vda.
//!
//! Needs (scripts/setup.sh): xorriso isolinux syslinux-common
//! debian-installer-12-netboot-amd64 busybox-static cpio qemu-system-x86 and
//! a linux-image-<version>-amd64 package.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const DISK_BYTES: u64 = 16 * 1024 * 1024;

const HOSTNAME: &str = "vm-fixture-07";
const IP: &str = "192.0.2.47";
// A real SHA-512 crypt string: '$', '/' and '.' must all survive.
const HASH: &str =
    "$6$Qr8lJ0xk$uO2c/8sM0rTn7fC.9yXo3vYpW1hZ4bG6eQ5dK2jL8aN0tR7sU3wV1xY9zA4bC6dE8fG0hI2jK4lM6nO8pQ0r.";

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/iso")
}

fn script(name: &str) -> Command {
    Command::new(support_dir().join(name))
}

/// Runs a command, panicking with its output unless it succeeds; returns
/// stdout and stderr together.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn make_iso(tree: &Path, iso: &Path) {
    run(script("make-installer-iso").arg(tree).arg(iso));
}

#[test]
fn installer_tree_iso_has_isolinux_el_torito_boot_record() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let iso = tmp.path().join("debian.iso");

    run(script("make-installer-tree").arg(&tree).arg("--xen"));

    for f in [
        "isolinux/isolinux.bin",
        "isolinux/ldlinux.c32",
        "isolinux/vesamenu.c32",
        "isolinux/libcom32.c32",
        "isolinux/libutil.c32",
        "isolinux/menu.cfg",
        "isolinux/txt.cfg",
        "install.amd/vmlinuz",
        "install.amd/initrd.gz",
        "install.amd/xen/vmlinuz",
        "install.amd/xen/initrd.gz",
        ".disk/info",
        "md5sum.txt",
    ] {
        assert!(tree.join(f).is_file(), "tree lacks {f}");
    }
    let cfg = fs::read_to_string(tree.join("isolinux/isolinux.cfg")).unwrap();
    for line in [
        "path ",
        "include menu.cfg",
        "default vesamenu.c32",
        "prompt 0",
        "timeout 0",
    ] {
        assert!(
            cfg.lines().any(|l| l == line),
            "isolinux.cfg lacks {line:?}:\n{cfg}"
        );
    }
    let txt = fs::read_to_string(tree.join("isolinux/txt.cfg")).unwrap();
    for needle in [
        "default install",
        "label install",
        "kernel /install.amd/vmlinuz",
        "append vga=788 initrd=/install.amd/initrd.gz --- quiet",
    ] {
        assert!(txt.contains(needle), "txt.cfg lacks {needle:?}:\n{txt}");
    }
    let md5 = fs::read_to_string(tree.join("md5sum.txt")).unwrap();
    assert!(
        md5.contains("  ./install.amd/vmlinuz\n"),
        "md5sum.txt:\n{md5}"
    );
    run(Command::new("md5sum")
        .arg("--quiet")
        .arg("-c")
        .arg("md5sum.txt")
        .current_dir(&tree));

    let pristine_bin = fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap();
    make_iso(&tree, &iso);
    assert_eq!(
        fs::read(tree.join("isolinux/isolinux.bin")).unwrap(),
        pristine_bin,
        "building the ISO modified the tree's isolinux.bin"
    );

    let report = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-report_el_torito", "plain"]));
    assert!(report.contains("Boot record  : El Torito"), "{report}");
    assert!(
        report.contains("Volume id    : 'Debian 12 amd64 n'"),
        "{report}"
    );
    let img_path = report
        .lines()
        .find(|l| l.starts_with("El Torito img path :"))
        .unwrap_or_else(|| panic!("no boot image in report:\n{report}"));
    assert!(
        img_path.trim_end().ends_with("/isolinux/isolinux.bin"),
        "{img_path}"
    );
    let boot_img = report
        .lines()
        .find(|l| l.starts_with("El Torito boot img :"))
        .unwrap_or_else(|| panic!("no boot image line:\n{report}"));
    let fields: Vec<&str> = boot_img.split_whitespace().collect();
    // "El Torito boot img : 1 BIOS y none 0x0000 0x00 4 LBA"
    assert_eq!(
        &fields[5..10],
        &["1", "BIOS", "y", "none", "0x0000"],
        "{boot_img}"
    );
    assert_eq!(fields[11], "4", "boot load size: {boot_img}");
    assert!(report.contains("boot-info-table"), "{report}");

    let extracted = tmp.path().join("isolinux.cfg.out");
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .arg("-extract")
        .arg("/isolinux/isolinux.cfg")
        .arg(&extracted));
    assert_eq!(fs::read_to_string(&extracted).unwrap(), cfg);

    // Extra xorriso args (graft points) override the tree's files without
    // touching the tree.
    let override_cfg = tmp.path().join("override.cfg");
    fs::write(&override_cfg, "serial 0 115200\ndefault install\n").unwrap();
    let grafted = tmp.path().join("grafted.iso");
    run(script("make-installer-iso")
        .arg(&tree)
        .arg(&grafted)
        .arg("-graft-points")
        .arg(format!("/isolinux/isolinux.cfg={}", override_cfg.display())));
    let extracted2 = tmp.path().join("isolinux.cfg.grafted");
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&grafted)
        .arg("-extract")
        .arg("/isolinux/isolinux.cfg")
        .arg(&extracted2));
    assert_eq!(
        fs::read_to_string(&extracted2).unwrap(),
        "serial 0 115200\ndefault install\n"
    );
    assert_eq!(
        fs::read_to_string(tree.join("isolinux/isolinux.cfg")).unwrap(),
        cfg
    );
}

/// An installer tree whose kernel/initrd are the busybox fake installer,
/// booting it straight away on the serial console.
fn fake_installer_tree(dir: &Path, preseed: Option<&str>) -> PathBuf {
    let bb = dir.join("bb");
    let tree = dir.join("tree");
    run(script("make-busybox-installer").arg(&bb));
    run(script("make-installer-tree")
        .arg(&tree)
        .arg("--kernel")
        .arg(bb.join("vmlinuz"))
        .arg("--initrd")
        .arg(bb.join("initrd.gz")));
    if let Some(p) = preseed {
        fs::write(tree.join("preseed.cfg"), p).unwrap();
    }
    fs::write(
        tree.join("isolinux/isolinux.cfg"),
        "serial 0 115200\n\
         default fake\n\
         prompt 0\n\
         timeout 0\n\
         label fake\n\
         \tkernel /install.amd/vmlinuz\n\
         \tappend initrd=/install.amd/initrd.gz console=ttyS0,115200n8 panic=5 --- \n",
    )
    .unwrap();
    tree
}

/// Boots `iso` with `disk` as a virtio disk; returns qemu's exit status, the
/// serial console log and the wall time. Kills qemu after BOOT_TIMEOUT.
fn boot(iso: &Path, disk: &Path, log: &Path) -> (ExitStatus, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-monitor",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-cdrom")
        .arg(iso)
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .args(["-boot", "d", "-no-reboot", "-nic", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start qemu-system-x86_64 (package qemu-system-x86)");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "qemu still running after {BOOT_TIMEOUT:?}; console:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    let mut qemu_out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut qemu_out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut qemu_out)
        .unwrap();
    let console = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
    assert!(
        status.success(),
        "qemu failed ({status}):\n{qemu_out}\nconsole:\n{console}"
    );
    (status, console, elapsed)
}

fn blank_disk(path: &Path) {
    fs::File::create(path).unwrap().set_len(DISK_BYTES).unwrap();
}

fn disk_head(path: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    fs::File::open(path).unwrap().read_exact(&mut buf).unwrap();
    buf
}

/// Boots the fake installer (with `preseed` on its CD, if any) from a CD
/// made in `dir` onto a blank disk, until it powers off; returns the disk
/// and the console, which must show that it booted.
fn boot_fake_installer(dir: &Path, preseed: Option<&str>) -> (PathBuf, String) {
    let tree = fake_installer_tree(dir, preseed);
    let iso = dir.join("vm.iso");
    make_iso(&tree, &iso);
    let disk = dir.join("disk.img");
    blank_disk(&disk);
    let (_, console, elapsed) = boot(&iso, &disk, &dir.join("console.log"));
    eprintln!("fake installer (preseed: {}): boot to power-off took {:.1} s", preseed.is_some(), elapsed.as_secs_f64());
    assert!(console.contains("GI-FAKE-INSTALLER: booted"), "console:\n{console}");
    (disk, console)
}

#[test]
fn busybox_installer_boots_from_iso_and_writes_preseed_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let preseed = format!(
        "# guest-installer fixture preseed\n\
         d-i debian-installer/locale string en_US.UTF-8\n\
         d-i netcfg/choose_interface select auto\n\
         d-i netcfg/get_hostname string {HOSTNAME}\n\
         d-i netcfg/get_domain string example.org\n\
         d-i netcfg/get_ipaddress string {IP}\n\
         d-i netcfg/get_netmask string 255.255.255.0\n\
         d-i passwd/root-password-crypted password {HASH}\n\
         d-i finish-install/reboot_in_progress note\n"
    );
    let (disk, console) = boot_fake_installer(tmp.path(), Some(&preseed));
    let cmdline = console
        .lines()
        .find(|l| l.starts_with("GI-FAKE-INSTALLER: cmdline "))
        .unwrap_or_else(|| panic!("no cmdline on console:\n{console}"));
    assert!(cmdline.contains("console=ttyS0,115200n8"), "{cmdline}");
    assert!(
        cmdline.contains("initrd=/install.amd/initrd.gz"),
        "{cmdline}"
    );
    assert!(
        !console.contains("GI-FAKE-INSTALLER: error"),
        "console:\n{console}"
    );
    assert!(
        console.contains("GI-FAKE-INSTALLER: done"),
        "console:\n{console}"
    );

    let head = disk_head(&disk);
    let expected =
        format!("GUEST-INSTALLER-MARKER v1\nhostname={HOSTNAME}\nip={IP}\nhash={HASH}\nEND\n");
    assert_eq!(
        String::from_utf8_lossy(&head[..expected.len()]),
        expected,
        "marker on disk"
    );
    assert!(
        head[expected.len()..].iter().all(|&b| b == 0),
        "marker block is not NUL-padded"
    );
}

#[test]
fn busybox_installer_without_preseed_reports_error_and_leaves_disk_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (disk, console) = boot_fake_installer(tmp.path(), None);
    assert!(
        console.contains("GI-FAKE-INSTALLER: error no preseed.cfg"),
        "console:\n{console}"
    );
    assert!(
        !console.contains("GI-FAKE-INSTALLER: done"),
        "console:\n{console}"
    );
    assert!(disk_head(&disk).iter().all(|&b| b == 0), "disk was written");
}
