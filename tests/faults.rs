//! Faults with the real tools: the process killed at random points, a full
//! disk. Afterwards every visible file is complete, the state is the old or
//! the new one, the lock is free and a retry succeeds.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const HASH: &str = "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

/// A small deterministic generator, so a failing trial can be replayed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn visible_files(dir: &Path) -> Vec<std::path::PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn qcow2_ok(p: &Path) -> bool {
    Command::new("qemu-img").args(["check", "-q", "-f", "qcow2"]).arg(p).status().unwrap().success()
}

#[test]
fn install_killed_at_random_points_leaves_old_or_new_state() {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "hostname=old", "--no-start"], HASH.as_bytes()).ok();
    let vmdir = env.state.join("vms/web1");
    let mut rng = Lcg(42);
    for trial in 0..60 {
        let host = format!("h{trial}");
        let arg = format!("hostname={host}");
        let delay = Duration::from_micros(rng.below(12_000));
        kill_after(&env, &["install", "web1", &arg, "--no-start"], HASH.as_bytes(), delay);
        // The lock is free again: the kernel dropped it with the process
        // (and with a tool it had just forked, which dies with it).
        let mut freed = false;
        for _ in 0..100 {
            let lock = fs::File::open(env.state.join("locks/web1.lock")).unwrap();
            if nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok() {
                freed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(freed, "trial {trial}: lock still held");
        // Every visible file is complete.
        for f in visible_files(&vmdir) {
            match f.file_name().unwrap().to_str().unwrap() {
                "state.json" => {
                    let v: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap())
                        .unwrap_or_else(|e| panic!("trial {trial}: torn state.json: {e}"));
                    assert_eq!(v["phase"], "prepared", "trial {trial}");
                }
                "install.qcow2" => {
                    assert!(qcow2_ok(&f), "trial {trial}: torn media");
                }
                "domain.cfg" => {
                    let t = fs::read_to_string(&f).unwrap();
                    // Its last line: the device model's restriction (on by default).
                    assert!(t.ends_with("\ndm_restrict = 1\n"), "trial {trial}: torn domain config");
                }
                other => panic!("trial {trial}: unexpected visible file {other}"),
            }
        }
    }
    // The media holds either the first install's preseed or a later one.
    let preseed = String::from_utf8(iso_file(&vmdir.join("install.qcow2"), "/preseed.cfg")).unwrap();
    assert!(preseed.lines().any(|l| l.starts_with("d-i netcfg/get_hostname string ")));
    // A retry succeeds and clears what the killed requests left behind.
    env.run(As::Remote(OWNER), &["install", "web1", "hostname=final", "--no-start"], HASH.as_bytes()).ok();
    let hidden: Vec<_> = fs::read_dir(&vmdir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_str().unwrap().starts_with('.')).collect();
    assert!(hidden.is_empty(), "leftovers after the retry: {hidden:?}");
    let preseed = String::from_utf8(iso_file(&vmdir.join("install.qcow2"), "/preseed.cfg")).unwrap();
    assert!(preseed.contains("d-i netcfg/get_hostname string final\n"));
}

#[test]
fn import_killed_at_random_points_leaves_no_half_image() {
    let env = Env::new();
    let iso = installer_iso(false);
    let sum = format!("sha256={}", sha256(&iso));
    let args = ["image", "import", "bookworm", iso.to_str().unwrap(), &sum];
    let mut rng = Lcg(7);
    let img = env.state.join("images/bookworm");
    for trial in 0..50 {
        let delay = Duration::from_millis(rng.below(900));
        kill_after(&env, &args, b"", delay);
        if img.exists() {
            // Complete, or not there at all.
            let m: serde_json::Value = serde_json::from_slice(&fs::read(img.join("manifest.json")).unwrap()).unwrap();
            assert_eq!(m["name"], "bookworm", "trial {trial}");
            assert_eq!(fs::metadata(img.join("base.iso")).unwrap().len(), m["base_iso"]["bytes"].as_u64().unwrap());
            fsutil_remove(&img);
        }
    }
    // A retry succeeds and removes every leftover of the killed imports.
    env.run(As::Root, &args, b"").ok();
    let leftovers: Vec<_> = fs::read_dir(&env.state).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_str().unwrap().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], HASH.as_bytes()).ok();
}

fn fsutil_remove(p: &Path) {
    guest_installer::fsutil::remove_tree(p).unwrap();
}

#[test]
fn full_disk_fails_cleanly_and_keeps_the_previous_media() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let env = Env::new();
    // The state dir on a filesystem too small for a second import.
    let _fs = Tmpfs::mount(&env.state, "150m");
    env.import("bookworm", false);
    let before_import = env.snapshot();
    let iso = installer_iso(false);
    let out = env.run(As::Root, &["--json", "image", "import", "second", iso.to_str().unwrap(), &format!("sha256={}", sha256(&iso))], b"");
    assert_eq!(out.code, 1, "{out:?}");
    let msg = out.json()["error"]["message"].as_str().unwrap().to_owned();
    // Whichever step runs out first says so: our write (ENOSPC) or xorriso.
    assert!(msg.contains("No space left") || msg.contains("exceeds free space"), "{out:?}");
    assert_eq!(env.snapshot(), before_import, "a failed import left something behind");

    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "hostname=first", "--no-start"], HASH.as_bytes()).ok();
    // Fill the filesystem to the last block.
    let filler = env.state.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0x55u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    let _ = std::io::Write::write_all(&mut f, &[0u8; 1]);
    drop(f);
    let before = env.snapshot();
    let out = env.run(As::Remote(OWNER), &["--json", "install", "web1", "hostname=second", "--no-start"], HASH.as_bytes());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("No space left"), "{out:?}");
    assert_eq!(env.snapshot(), before, "previous media and state must stay intact");
    let preseed = String::from_utf8(iso_file(&env.vm_file("web1", "install.qcow2"), "/preseed.cfg")).unwrap();
    assert!(preseed.contains("d-i netcfg/get_hostname string first\n"));
    // Room again: the retry works.
    fs::remove_file(&filler).unwrap();
    env.run(As::Remote(OWNER), &["install", "web1", "hostname=second", "--no-start"], HASH.as_bytes()).ok();
}

/// An executable script standing in for a tool that is broken in `how`.
fn broken_tool(dir: &Path, name: &str, how: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let body = match how {
        "fail" => "#!/bin/sh\necho \"$0: simulated failure\" >&2\nexit 3\n",
        "hang" => "#!/bin/sh\nexec sleep 1000\n",
        _ => unreachable!(),
    };
    // Written by a child process: no writable fd of ours on an executable
    // another test thread might exec (ETXTBSY).
    sh(Command::new("sh").arg("-c").arg("printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"").arg("-").arg(body).arg(&p));
    p
}

#[test]
fn xorriso_missing_failing_or_hanging_fails_import_cleanly() {
    for how in ["missing", "fail", "hang"] {
        let probe = Env::new();
        let tool = match how {
            "missing" => probe.root().join("no-such-xorriso"),
            _ => broken_tool(probe.root(), "xorriso", how),
        };
        let env = Env::with_config_extra(&format!("xorriso = \"{}\"", tool.display()));
        let cfg = fs::read_to_string(&env.config).unwrap().replace("tool_s = 120", "tool_s = 2");
        fs::write(&env.config, cfg).unwrap();
        let before = env.snapshot();
        let iso = installer_iso(false);
        let out = env.run(As::Root, &["--json", "image", "import", "x", iso.to_str().unwrap(), &format!("sha256={}", sha256(&iso))], b"");
        assert_eq!(out.code, 1, "{how}: {out:?}");
        let msg = out.json()["error"]["message"].as_str().unwrap().to_owned();
        let want = match how {
            "missing" => "not installed",
            "fail" => "simulated failure",
            _ => "did not finish within 2 s",
        };
        assert!(msg.contains(want), "{how}: {msg}");
        assert_eq!(env.snapshot(), before, "{how}: import left something");
        drop(probe);
    }
}

#[test]
fn qemu_missing_failing_or_hanging_leaves_state_failed_and_no_media() {
    for how in ["missing", "fail", "hang"] {
        let env = Env::new();
        env.use_qemu();
        let tool = match how {
            "missing" => env.root().join("no-such-qemu"),
            _ => broken_tool(env.root(), "qemu", how),
        };
        let cfg = fs::read_to_string(&env.config).unwrap().replace("hypervisor_s = 10", "hypervisor_s = 2");
        let cfg = cfg.replace("driver = \"qemu\"", &format!("driver = \"qemu\"\nqemu = \"{}\"", tool.display()));
        fs::write(&env.config, cfg).unwrap();
        env.import("bookworm", false);
        env.machine("web1", 1, Some("bookworm"));
        let out = env.run(As::Remote(OWNER), &["--json", "install", "web1"], HASH.as_bytes());
        assert_eq!(out.code, 1, "{how}: {out:?}");
        assert!(!env.vm_file("web1", "install.qcow2").exists(), "{how}: media left behind");
        let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
        assert_eq!(s["state"], "failed", "{how}");
        // No qemu of ours is left running.
        let pgrep = Command::new("pgrep").args(["-f", "process=gi-web1"]).output().unwrap();
        assert!(pgrep.stdout.is_empty() || how == "missing", "{how}: leftover process");
    }
}

#[test]
fn corrupt_state_file_is_named_and_not_overwritten_by_status() {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], HASH.as_bytes()).ok();
    fs::write(env.vm_file("web1", "state.json"), b"{\"phase\": \"installing\", ").unwrap();
    let before = env.snapshot();
    for args in [&["status", "web1", "--json"][..], &["list", "--json"], &["cancel", "web1", "--json"]] {
        let out = env.run(As::Remote(OWNER), args, b"");
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.json()["error"]["message"].as_str().unwrap().contains("state.json"), "{out:?}");
    }
    assert_eq!(env.snapshot(), before);
}
