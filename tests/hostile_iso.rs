//! Hostile ISOs on import: whatever an ISO from the internet holds, nothing
//! is written outside the image directory, no symlink escapes the tree, no
//! setuid bit or device survives, and a refused ISO leaves nothing behind.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real installer tree with `tweak` applied, mastered with xorriso (Rock
/// Ridge keeps symlinks, devices and modes).
fn hostile_iso(dir: &Path, name: &str, tweak: impl FnOnce(&Path)) -> PathBuf {
    let tree = dir.join(format!("{name}-tree"));
    sh(Command::new(repo().join("tests/support/iso/make-installer-tree")).arg(&tree));
    tweak(&tree);
    let iso = dir.join(format!("{name}.iso"));
    sh(Command::new("xorriso").args(["-as", "mkisofs", "-quiet", "-R", "-o"]).arg(&iso).arg(&tree));
    iso
}

fn import(env: &Env, iso: &Path) -> Out {
    let sum = format!("sha256={}", sha256(iso));
    env.run(As::Root, &["--json", "image", "import", "evil", iso.to_str().unwrap(), &sum], b"")
}

#[test]
fn escaping_symlinks_are_refused_and_nothing_is_left() {
    let env = Env::new();
    let canary = env.root().join("canary");
    for (name, target) in [("abs", "/etc/shadow".to_owned()), ("rel", "../../../../../../../../../../etc/passwd".into()), ("canary", canary.display().to_string())] {
        let iso = hostile_iso(env.root(), name, |t| std::os::unix::fs::symlink(&target, t.join("install.amd/escape")).unwrap());
        let before = env.snapshot();
        let out = import(&env, &iso);
        assert_eq!(out.code, 2, "{name}: {out:?}");
        assert!(out.json()["error"]["message"].as_str().unwrap().contains("symlink"), "{out:?}");
        assert_eq!(env.snapshot(), before, "{name}: refused import left something");
        assert!(!canary.exists(), "{name}: something was written through the link");
    }
}

#[test]
fn devices_and_setuid_bits_do_not_survive() {
    let env = Env::new();
    let iso = hostile_iso(env.root(), "dev", |t| {
        sh(Command::new("mknod").arg(t.join("install.amd/null")).args(["c", "1", "3"]));
    });
    let out = import(&env, &iso);
    if out.code == 0 {
        // xorriso did not restore the device: it must not be there as one.
        let m = fs::symlink_metadata(env.state.join("images/evil/tree/install.amd/null"));
        assert!(m.map(|m| m.is_file() || m.is_dir()).unwrap_or(true), "a device node was restored");
        guest_installer::fsutil::remove_tree(&env.state.join("images/evil")).unwrap();
    } else {
        assert_eq!(out.code, 2, "{out:?}");
    }

    let iso = hostile_iso(env.root(), "suid", |t| {
        let f = t.join("install.amd/suid-shell");
        fs::copy("/bin/true", &f).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
        let d = t.join("sticky");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
    });
    import(&env, &iso).ok();
    for (p, (mode, uid, _)) in snapshot(&env.state.join("images/evil")) {
        if mode & 0o170000 == 0o120000 {
            continue; // a symlink's own mode means nothing
        }
        assert_eq!(mode & 0o7000, 0, "{} kept a special bit: {mode:o}", p.display());
        assert_eq!(mode & 0o222, 0, "{} is writable: {mode:o}", p.display());
        assert_eq!(uid, 0, "{} not owned by root", p.display());
    }
}

#[test]
fn hard_links_come_out_as_separate_files() {
    let env = Env::new();
    let iso = hostile_iso(env.root(), "hard", |t| {
        fs::hard_link(t.join("install.amd/initrd.gz"), t.join("install.amd/initrd-link.gz")).unwrap();
    });
    import(&env, &iso).ok();
    for (p, _) in snapshot(&env.state.join("images/evil/tree")) {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_file() {
            assert_eq!(m.nlink(), 1, "{} is hard-linked", p.display());
        }
    }
}

#[test]
fn truncated_isos_are_refused_and_nothing_is_left() {
    let env = Env::new();
    let full = fs::read(installer_iso(false)).unwrap();
    for (name, len) in [("half", full.len() / 2), ("head", 40_000), ("three-quarters", full.len() * 3 / 4)] {
        let iso = env.root().join(format!("{name}.iso"));
        fs::write(&iso, &full[..len]).unwrap();
        let before = env.snapshot();
        let out = import(&env, &iso);
        assert_eq!(out.code, 2, "{name}: {out:?}");
        assert_eq!(env.snapshot(), before, "{name}: refused import left something");
    }
}
