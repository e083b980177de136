//! The installer path's root login, run by debian-installer's own
//! machinery: the preseed the real binary renders (read back from the
//! per-VM media) is loaded by d-i's `debconf-set-selections` under d-i's
//! cdebconf, and `preseed_command preseed/late_command` runs it as d-i's
//! finish-install does (`log-output sh -c VALUE`), its `in-target` doing
//! the real `chroot_setup` into `/target`. The installer is the netboot
//! initrd of debian-installer-12-netboot-amd64, unpacked; `/target` is a
//! copy of the golden template's root filesystem (a real Debian 12 with
//! openssh-server), loop-mounted. Checked in the target: authorized_keys
//! (contents, owner, 0600 in a 0700 /root/.ssh), root's password locked,
//! our sshd drop-in (0644) only without keys and what sshd makes of it
//! (`sshd -T`), and an admin's own late_command from the preseed template
//! run after ours.
//!
//! Needs root (chroot, loop mounts), debian-installer-12-netboot-amd64,
//! xorriso, qemu-utils and the template fixture.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DI_INITRD: &str = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/initrd.gz";
const DROP_IN: &str = "etc/ssh/sshd_config.d/50-guest-installer.conf";
const ADMIN_LATE: &str = "d-i preseed/late_command string in-target touch /root/admin-was-here";

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The d-i initrd, unpacked once per test run.
fn installer_root() -> PathBuf {
    cached("di-netboot-initrd", |out| {
        fs::create_dir_all(out).unwrap();
        let gz = fs::File::open(DI_INITRD).unwrap_or_else(|e| panic!("{DI_INITRD}: {e} (install debian-installer-12-netboot-amd64)"));
        let mut zcat = Command::new("zcat").stdin(gz).stdout(Stdio::piped()).spawn().unwrap();
        let o = Command::new("cpio").args(["-idm", "--quiet"]).current_dir(out).stdin(zcat.stdout.take().unwrap()).output().unwrap();
        assert!(zcat.wait().unwrap().success() && o.status.success(), "{o:?}");
    })
}

/// What one late_command run left in the target.
struct Target {
    /// The installer's root (a copy of the unpacked initrd), with the
    /// target mounted at `target/`.
    di: PathBuf,
    _mounts: Vec<Mounted>,
}

impl Target {
    fn path(&self, rel: &str) -> PathBuf {
        self.di.join("target").join(rel)
    }
    fn meta(&self, rel: &str) -> (u32, u32, u32) {
        let m = fs::symlink_metadata(self.path(rel)).unwrap_or_else(|e| panic!("/{rel}: {e}"));
        (m.mode() & 0o7777, m.uid(), m.gid())
    }
    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }
    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }
    fn root_password(&self) -> String {
        self.read("etc/shadow").lines().find_map(|l| l.strip_prefix("root:")).unwrap().split(':').next().unwrap().to_owned()
    }
    /// What the target's sshd makes of its configuration for root.
    fn sshd_permit_root_login(&self) -> String {
        let t = self.di.join("target");
        sh(Command::new("chroot").arg(&t).args(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/ssh/ssh_host_ed25519_key"]));
        fs::create_dir_all(t.join("run/sshd")).unwrap();
        let out = sh(Command::new("chroot").arg(&t).args(["/usr/sbin/sshd", "-T", "-C", "user=root,host=owner.example,addr=192.0.2.9"]));
        out.lines().find_map(|l| l.strip_prefix("permitrootlogin ")).unwrap_or_else(|| panic!("sshd -T:\n{out}")).to_owned()
    }
}

/// Runs `preseed`'s late_command as d-i does, into a fresh copy of the
/// template's root filesystem.
fn run_late_command(work: &Path, preseed: &[u8]) -> Target {
    let di = work.join("di");
    let _ = fs::remove_dir_all(&di);
    sh(Command::new("cp").arg("-a").arg(installer_root()).arg(&di));
    let mut mounts = Vec::new();
    let img = work.join("target.img");
    sh(Command::new("cp").arg("--sparse=always").arg(template_fixture().join("tpl/disk.img")).arg(&img));
    fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::create_dir_all(di.join("target")).unwrap();
    sh(Command::new("mount").arg("-o").arg(format!("loop,offset={}", guest_installer::template::disk::PARTITION_START)).arg(&img).arg(di.join("target")));
    mounts.push(Mounted(di.join("target")));
    sh(Command::new("mount").args(["-t", "proc", "proc"]).arg(di.join("proc")));
    mounts.push(Mounted(di.join("proc")));
    fs::write(di.join("preseed.cfg"), preseed).unwrap();
    // d-i's own steps: its templates loaded, the preseed file loaded by its
    // debconf-set-selections, the late_command run by preseed_command.
    write_executable(
        &di.join("gi-late"),
        "#!/bin/sh\nset -e\n. /usr/share/debconf/confmodule\ndebconf-set-selections /preseed.cfg\n\
         preseed_command preseed/late_command\necho ran >/gi-late.done\n",
    );
    let o = Command::new("timeout")
        .args(["120", "chroot"])
        .arg(&di)
        .args(["/bin/sh", "-c", "debconf-loadtemplate d-i /var/lib/dpkg/info/*.templates && exec /gi-late"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEBIAN_FRONTEND", "text")
        .env("DEBIAN_PRIORITY", "critical")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && di.join("gi-late.done").exists(), "d-i's run failed: {o:?}");
    // preseed_command shows d-i's dialog when the command fails.
    assert!(!out.contains("Failed to run preseeded command"), "{out}");
    // in-target's chroot_setup undid its mounts.
    let mounts_now = fs::read_to_string("/proc/mounts").unwrap();
    let target = di.join("target");
    assert_eq!(mounts_now.lines().filter(|l| l.split(' ').nth(1).is_some_and(|m| Path::new(m).starts_with(&target))).count(), 1, "{mounts_now}");
    Target { di, _mounts: mounts }
}

/// The preseed `install VM --no-start` wrote into the machine's media.
fn rendered_preseed(env: &Env, vm: &str) -> Vec<u8> {
    iso_file(&env.vm_file(vm, "install.qcow2"), "/preseed.cfg")
}

#[test]
fn the_installers_late_command_installs_keys_locks_root_and_writes_the_drop_in() {
    if !root() {
        eprintln!("skipped: needs root (chroot, loop mounts)");
        return;
    }
    let env = Env::new();
    env.import("deb12", false);
    // The admin's own late_command, which must still run (after ours).
    let preseed_template = env.root().join("preseed.cfg");
    let mut text = fs::read_to_string(&preseed_template).unwrap();
    text.push_str(&format!("{ADMIN_LATE}\n"));
    fs::write(&preseed_template, text).unwrap();
    let key = {
        let k = env.root().join("id_bob");
        sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop (work)", "-f"]).arg(&k));
        fs::read_to_string(k.with_extension("pub")).unwrap().trim().to_owned()
    };
    env.run(As::Remote(OWNER), &["key", "add", &key], b"").ok();
    env.machine("li1", 1, Some("deb12"));
    let work = env.root().join("late");
    fs::create_dir(&work).unwrap();
    let install = |who: &str, password: &str| {
        let j = env.run(As::Remote(who), &["install", "li1", "--no-start", "--json"], password.as_bytes()).ok().json();
        let preseed = rendered_preseed(&env, "li1");
        let text = String::from_utf8_lossy(&preseed);
        // One late_command: ours, then the template's.
        let late: Vec<&str> = text.lines().filter(|l| l.contains("preseed/late_command")).collect();
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0].ends_with(&format!(" || exit 1; {}", ADMIN_LATE.trim_start_matches("d-i preseed/late_command string "))), "{}", late[0]);
        assert!(!late[0].contains(&key), "the key is in the preseed as text");
        (j, preseed)
    };

    // Bob's key and no password: root locked, key installed, no drop-in.
    let (j, preseed) = install(OWNER, "\n");
    assert_eq!(j["root_login"], serde_json::json!({"ssh_keys": 1, "ssh_password": false, "console_password": false}), "{j}");
    assert!(String::from_utf8_lossy(&preseed).contains("\nd-i passwd/root-password-crypted password !locked\n"));
    let t = run_late_command(&work, &preseed);
    assert_eq!(t.meta("root/.ssh"), (0o700, 0, 0));
    assert_eq!(t.meta("root/.ssh/authorized_keys"), (0o600, 0, 0));
    assert_eq!(t.read("root/.ssh/authorized_keys"), format!("{key}\n"));
    assert_eq!(t.root_password(), "!");
    assert!(!t.exists(DROP_IN), "a drop-in with keys");
    assert!(!t.exists("tmp/gi-root-login"), "the script stayed in the target");
    assert!(t.exists("root/admin-was-here"), "the preseed template's late_command did not run");
    assert_eq!(t.sshd_permit_root_login(), "without-password", "Debian's default (prohibit-password)");
    drop(t);

    // Bob's key and a password: the key, Debian's default for sshd.
    let (j, preseed) = install(OWNER, "bob's password\n");
    assert_eq!(j["root_login"], serde_json::json!({"ssh_keys": 1, "ssh_password": false, "console_password": true}), "{j}");
    let t = run_late_command(&work, &preseed);
    assert_eq!(t.read("root/.ssh/authorized_keys"), format!("{key}\n"));
    assert_eq!(t.root_password(), "!", "the late_command touched root's password (user-setup sets it, from the preseed)");
    assert!(!t.exists(DROP_IN));
    assert_eq!(t.sshd_permit_root_login(), "without-password");
    drop(t);

    // Carol has no key: her password, and our drop-in lets sshd take it.
    let (j, preseed) = install(COOWNER, "carol's password\n");
    assert_eq!(j["root_login"], serde_json::json!({"ssh_keys": 0, "ssh_password": true, "console_password": true}), "{j}");
    let t = run_late_command(&work, &preseed);
    assert_eq!(t.meta(DROP_IN), (0o644, 0, 0));
    assert!(t.read(DROP_IN).lines().any(|l| l == "PermitRootLogin yes"), "{}", t.read(DROP_IN));
    assert!(!t.exists("root/.ssh/authorized_keys"));
    assert!(t.exists("root/admin-was-here"));
    assert_eq!(t.sshd_permit_root_login(), "yes");
    drop(t);
}
