//! The seal policy: what a built root tree loses (all that is unique to one
//! guest) and gains (the first-boot identity unit) to become a template,
//! never writing, emptying or reading through a symlink out of the tree.

use super::identity::{IDENTITY_SCRIPT, IDENTITY_UNIT};
use super::{TemplateError, ROOT_LABEL};
use crate::fsutil;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use crate::fsutil::{io_err, PathIo};

/// Units masked in the template: slow or useless on a first boot under
/// emulation (measured: e2scrub_reap alone cost 24 s), and timers.
pub(super) const MASKED: &[&str] = &[
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "getty-static.service",
    "getty@tty1.service",
    "systemd-networkd-wait-online.service",
];

pub(super) const SEAL_VERSION: &str = "seal-5";

/// Refuses to go through a symlink inside the tree: `rel`'s directories
/// (and `rel` itself if `whole`) must not be symlinks. A tree read back
/// from a guest's disk is the guest's to shape, and an `etc` that points
/// at the host's /etc must not make a root process write there. Missing
/// components are fine (they are created as real directories).
pub(super) fn inside(tree: &Path, rel: &str, whole: bool) -> Result<PathBuf, TemplateError> {
    let path = tree.join(rel);
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let upto = if whole { parts.len() } else { parts.len().saturating_sub(1) };
    let mut p = tree.to_path_buf();
    for c in &parts[..upto] {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(TemplateError::Layout(format!("/{rel} goes through a symlink (/{}); refusing to follow it", p.strip_prefix(tree).unwrap_or(&p).display())))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(path)
}

pub(super) fn write(tree: &Path, rel: &str, text: &str, mode: u32) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    // Replace, never write through, a symlink the packages left there.
    let _ = fs::remove_file(&p);
    fs::write(&p, text).map_err(io_err(&p))?;
    Ok(fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))?)
}

pub(super) fn link(tree: &Path, rel: &str, target: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let _ = fs::remove_file(&p);
    Ok(symlink(target, &p).map_err(io_err(&p))?)
}

fn remove_dir(tree: &Path, rel: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    match fs::symlink_metadata(&p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => Ok(fsutil::remove_tree(&p).map_err(io_err(&p))?),
    }
}

fn remove(tree: &Path, rel: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    Ok(fsutil::remove_if_exists(&p).map(|_| ()).map_err(io_err(&p))?)
}

/// Seals the tree: nothing unique to one guest stays in it (SSH host keys,
/// machine id, random seed, logs, apt lists), root's password is locked,
/// and the first-boot identity unit is installed and enabled. It serves
/// both builders, so it also undoes what an install leaves of its build
/// machine: its hostname, hosts entry, static address and name servers,
/// its root password, the installer's logs and a DHCP lease.
pub fn seal(tree: &Path) -> Result<(), TemplateError> {
    write(tree, "etc/hostname", "localhost\n", 0o644)?;
    // d-i writes the build machine's static address here (ifupdown);
    // clones get theirs from the identity seed through systemd-networkd.
    if fs::symlink_metadata(tree.join("etc/network/interfaces")).is_ok() {
        write(tree, "etc/network/interfaces", LOOPBACK_ONLY, 0o644)?;
    }
    // The identity unit writes the clone's own.
    remove(tree, "etc/resolv.conf")?;
    remove_dir(tree, "var/log/installer")?;
    empty_files(&inside(tree, "var/lib/dhcp", true)?)?;
    write(tree, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644)?;
    write(tree, "etc/fstab", &format!("LABEL={ROOT_LABEL}\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"), 0o644)?;
    // An empty machine-id: systemd makes a fresh one at first boot.
    write(tree, "etc/machine-id", "", 0o444)?;
    remove(tree, "var/lib/dbus/machine-id")?;
    remove(tree, "var/lib/systemd/random-seed")?;
    let ssh = inside(tree, "etc/ssh", true)?;
    if let Ok(entries) = fs::read_dir(&ssh) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
    }
    write(tree, "etc/ssh/sshd_config.d/guest-installer.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n", 0o644)?;
    // How root got into the build machine is not how it gets into a clone
    // (each clone's seed says): no keys, no password login over SSH.
    remove(tree, "root/.ssh/authorized_keys")?;
    remove(tree, crate::rootlogin::SSHD_DROP_IN.trim_start_matches('/'))?;
    lock_root(tree)?;
    // Logs and caches.
    for dir in ["var/log", "var/cache/apt", "var/lib/apt/lists"] {
        empty_files(&inside(tree, dir, true)?)?;
    }
    write(tree, "etc/systemd/journald.conf.d/guest-installer.conf", "[Journal]\nStorage=volatile\n", 0o644)?;
    // resolved only forwards to the name servers the machine was given:
    // it answers no multicast name queries on the hosting network.
    write(tree, "etc/systemd/resolved.conf.d/guest-installer.conf", "[Resolve]\nLLMNR=no\nMulticastDNS=no\n", 0o644)?;
    // systemd-networkd configures the static address the seed gives.
    link(tree, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service")?;
    link(tree, "etc/systemd/system/sockets.target.wants/systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket")?;
    for unit in MASKED {
        link(tree, &format!("etc/systemd/system/{unit}"), "/dev/null")?;
    }
    remove(tree, "etc/systemd/system/getty.target.wants/getty@tty1.service")?;
    write(tree, "usr/local/sbin/gi-identity", IDENTITY_SCRIPT, 0o755)?;
    write(tree, "etc/systemd/system/gi-identity.service", IDENTITY_UNIT, 0o644)?;
    link(tree, "etc/systemd/system/sysinit.target.wants/gi-identity.service", "/etc/systemd/system/gi-identity.service")?;
    remove(tree, "var/lib/gi-identity/done")?;
    Ok(())
}

/// What is left of /etc/network/interfaces in a template.
const LOOPBACK_ONLY: &str = "# The loopback interface only: guest-installer's identity seed configures\n\
# the network with systemd-networkd (/etc/systemd/network/).\n\
source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n";

/// Root's password field becomes `!`: no login until the seed sets a hash.
fn lock_root(tree: &Path) -> Result<(), TemplateError> {
    let p = regular_file(tree, "etc/shadow")?;
    let text = fsutil::read_text(&p, 1 << 20).map_err(io_err(&p))?;
    let mut out = String::with_capacity(text.len());
    let mut found = false;
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"root") && f.len() > 2 {
            f[1] = "!";
            found = true;
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    if !found {
        return Err(TemplateError::Layout("/etc/shadow has no root entry".into()));
    }
    // Written to a new file (never through whatever was there) that keeps
    // the old one's owner and group (shadow, for unix_chkpwd).
    let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
    fs::remove_file(&p).map_err(io_err(&p))?;
    fs::write(&p, out).map_err(io_err(&p))?;
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::lchown(&p, Some(m.uid()), Some(m.gid())).map_err(io_err(&p))?;
    }
    Ok(fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).map_err(io_err(&p))?)
}

/// A regular file of the tree (not a symlink, reached through no symlink).
pub(super) fn regular_file(tree: &Path, rel: &str) -> Result<PathBuf, TemplateError> {
    let p = inside(tree, rel, true)?;
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => Ok(p),
        Ok(_) => Err(TemplateError::Layout(format!("/{rel} is not a regular file"))),
        Err(source) => Err(TemplateError::Io(PathIo::new(p, source))),
    }
}

/// Removes the regular files under `dir` (not following symlinks), keeping
/// directories so that packages find them.
fn empty_files(dir: &Path) -> Result<(), TemplateError> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            empty_files(&p)?;
        } else if m.is_file() {
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::build::installed_packages;
    use super::*;

    /// A tree read back from a guest may hold symlinks that point out of
    /// it (absolute ones resolve on the host): sealing must never write,
    /// empty or read through them.
    #[test]
    fn seal_never_follows_symlinks_out_of_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("precious");
        for link in ["etc", "var/log", "etc/ssh", "etc/shadow", "var/lib/dpkg/status"] {
            fs::write(&victim, "root:keep:me\n").unwrap();
            fs::write(outside.path().join("ssh_host_rsa_key"), "host key").unwrap();
            let t = tempfile::tempdir().unwrap();
            let tree = t.path();
            // An otherwise sealable tree, with `link` pointing outside.
            fs::create_dir_all(tree.join("etc")).unwrap();
            fs::write(tree.join("etc/shadow"), "root:$6$x:1::::::\n").unwrap();
            fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
            fs::write(tree.join("var/lib/dpkg/status"), "Package: a\nVersion: 1\nStatus: install ok installed\n").unwrap();
            let l = tree.join(link);
            let _ = fs::remove_file(&l);
            let _ = fs::remove_dir_all(&l);
            fs::create_dir_all(l.parent().unwrap()).unwrap();
            let target = if link.ends_with("shadow") || link.ends_with("status") { victim.clone() } else { outside.path().to_path_buf() };
            symlink(&target, &l).unwrap();
            let r = seal(tree).and_then(|_| installed_packages(tree).map(|_| ()));
            assert!(matches!(r, Err(TemplateError::Layout(_))), "{link}: {r:?}");
            assert_eq!(fs::read_to_string(&victim).unwrap(), "root:keep:me\n", "{link}");
            assert!(outside.path().join("ssh_host_rsa_key").exists(), "{link}");
            assert!(!outside.path().join("hostname").exists(), "{link}");
        }
    }
}
