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

/// A symlink that stays inside when read as text, but not when followed:
/// `install.amd/sub/up -> ../..` is the root, so `install.amd/sub/esc ->
/// up/../..` is the directory above the tree.
#[test]
fn chained_symlinks_that_escape_are_refused() {
    let env = Env::new();
    let iso = hostile_iso(env.root(), "chain", |t| {
        let sub = t.join("install.amd/sub");
        fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink("../..", sub.join("up")).unwrap();
        std::os::unix::fs::symlink("up/../../canary", sub.join("esc")).unwrap();
    });
    let before = env.snapshot();
    let out = import(&env, &iso);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("symlink install.amd/sub/esc"), "{out:?}");
    assert_eq!(env.snapshot(), before, "refused import left something");
}

/// The bytes hashed are the bytes extracted: an xorriso that first
/// replaces the ISO the admin named (by rename, or by rewriting it in
/// place, as its owner could between hash and extract) still extracts
/// the ISO whose digest was checked.
#[test]
fn an_iso_swapped_after_hashing_is_not_what_is_extracted() {
    for how in ["rename", "rewrite"] {
        let env = Env::new();
        let good = env.root().join("good.iso");
        fs::copy(installer_iso(false), &good).unwrap();
        let evil = hostile_iso(env.root(), "evil", |t| fs::write(t.join("install.amd/EVIL"), "swapped in").unwrap());
        let swap = match how {
            "rename" => format!("cp {evil} {good}.new && mv -f {good}.new {good}", evil = evil.display(), good = good.display()),
            _ => format!("cat {evil} > {good}", evil = evil.display(), good = good.display()),
        };
        // The hook: runs the real xorriso after swapping, on its first
        // (extracting) run only.
        let wrapper = env.root().join("xorriso");
        let done = env.root().join("swapped");
        write_executable(
            &wrapper,
            &format!(
                "#!/bin/sh\nif [ ! -e {done} ]; then : > {done}; {swap}; fi\nexec /usr/bin/xorriso \"$@\"\n",
                done = done.display()
            ),
        );
        let text = fs::read_to_string(&env.config).unwrap();
        fs::write(&env.config, text.replacen("\n[mirror]", &format!("xorriso = \"{}\"\n[mirror]", wrapper.display()), 1)).unwrap();

        let sum = sha256(&good);
        env.run(As::Root, &["--json", "image", "import", "img", good.to_str().unwrap(), &format!("sha256={sum}")], b"").ok();
        assert!(done.exists(), "{how}: the hook did not run");
        assert_eq!(sha256(&good), sha256(&evil), "{how}: the hook did not swap the ISO");
        let tree = env.state.join("images/img/tree");
        assert!(tree.join("install.amd/initrd.gz").is_file(), "{how}: no image");
        assert!(!tree.join("install.amd/EVIL").exists(), "{how}: the swapped-in ISO was extracted");
        let m: serde_json::Value = serde_json::from_slice(&fs::read(env.state.join("images/img/manifest.json")).unwrap()).unwrap();
        assert_eq!(m["source_sha256"], sum);
        // The private copy is gone.
        let left: Vec<_> = fs::read_dir(env.state.join("images/img")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().ends_with(".iso") && n != "base.iso"), "{left:?}");
    }
}

#[test]
fn an_oversized_boot_menu_is_refused_without_reading_it_whole() {
    let env = Env::new();
    let iso = hostile_iso(env.root(), "bigcfg", |t| {
        let cfg = t.join("isolinux/isolinux.cfg");
        let mut text = fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!("# {}\n", "x".repeat(2 << 20)));
        fs::write(cfg, text).unwrap();
    });
    let before = env.snapshot();
    let out = import(&env, &iso);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("isolinux.cfg is larger than"), "{out:?}");
    assert_eq!(env.snapshot(), before, "refused import left something");
}
