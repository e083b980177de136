//! An owner gets into what `install` made, over the network, with real
//! `ssh` against the guest's real sshd: clones of the golden template boot
//! under qemu on a bridge in a network namespace the test makes
//! (192.0.2.0/24, a documentation range; no way out), each with its own
//! way in:
//!
//! - `sshkey`: bob's registered key and a root password. The key logs in
//!   and runs `hostname`; the password, which works on the console, is
//!   refused over SSH (Debian's default stays); mallory's key (registered
//!   to another principal) gets `Permission denied`.
//! - `sshpw`: carol has no key: her password logs in over SSH (our sshd
//!   drop-in), and the reply said so.
//! - `sshlock`: bob's key and an empty password line: root is locked; the
//!   key logs in; after `stop` and `start` the SSH host key `status`
//!   shows is still the one recorded, and still the guest's.
//!
//! Needs root (network namespaces, taps), qemu, openssh-client and the
//! template fixture (tests/common/golden.rs).

mod common;

use common::netns::{NetNs, BRIDGE};
use common::ssh::{keypair, ssh_answer, wait_for_login_prompts, Auth};
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A clone with no login prompt by then is hung (measured: ~40-60 s each
/// under TCG; three at once on two cores take longer).
const BOOT_BOUND: Duration = Duration::from_secs(600);

const BOB_PASSWORD: &str = "bob's console password";
const CAROL_PASSWORD: &str = "carol's ssh password";

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// sshd refused: the answer, and nothing else went wrong (an askpass
/// that failed would make any password look refused).
fn denied(o: &Out) -> bool {
    o.code == 255 && o.stderr.trim_end().ends_with("Permission denied (publickey,password).") && o.stderr.lines().count() == 1
}

/// The guest's ed25519 host key fingerprint, as ssh-keyscan sees it.
fn scanned_host_key(ns: &NetNs, dir: &Path, addr: &str) -> String {
    let o = ns.cmd("ssh-keyscan", &["-T", "5", "-t", "ed25519", addr]).output().unwrap();
    let f = dir.join(format!("scan-{addr}"));
    fs::write(&f, &o.stdout).unwrap();
    let fp = sh(Command::new("ssh-keygen").arg("-lf").arg(&f));
    fp.split_whitespace().nth(1).unwrap_or_else(|| panic!("no host key from {addr}: {fp}")).to_owned()
}

/// An SSH_ASKPASS program that answers `password` (kept in a file of its
/// own, so no quoting can go wrong).
fn askpass(dir: &Path, name: &str, password: &str) -> PathBuf {
    let p = dir.join(name);
    let secret = dir.join(format!("{name}.txt"));
    fs::write(&secret, format!("{password}\n")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    write_executable(&p, &format!("#!/bin/sh\nexec cat '{}'\n", secret.display()));
    p
}

fn status(env: &Env, who: &str, vm: &str) -> serde_json::Value {
    env.run(As::Remote(who), &["status", vm, "--json"], b"").ok().json()
}

#[test]
fn owners_log_in_over_ssh_with_their_keys_or_their_password() {
    if !root() {
        eprintln!("skipped: needs root (network namespaces and taps)");
        return;
    }
    let env = Env::new();
    env.use_qemu_on_bridge(BRIDGE);
    add_template(&env);
    // Declared before the guests: dropped (removed) after them.
    let ns = NetNs::new("ssh", "192.0.2.1/24");
    let work = env.root().join("ssh");
    fs::create_dir(&work).unwrap();
    let (bob_key, bob_pub) = keypair(&work, "bob", "bob@laptop");
    let (mallory_key, mallory_pub) = keypair(&work, "mallory", "mallory@elsewhere");
    env.run(As::Remote(OWNER), &["key", "add", &bob_pub], b"").ok();
    env.run(As::Remote(STRANGER), &["key", "add", &mallory_pub], b"").ok();
    let bob_askpass = askpass(&work, "bob-askpass", BOB_PASSWORD);
    let carol_askpass = askpass(&work, "carol-askpass", CAROL_PASSWORD);

    // (vm, n, who installs, password line, hostname, address)
    let guests = [
        ("sshkey", 1u8, OWNER, BOB_PASSWORD, "gi-sshkey", "192.0.2.11"),
        ("sshpw", 2, COOWNER, CAROL_PASSWORD, "gi-sshpw", "192.0.2.12"),
        ("sshlock", 3, OWNER, "", "gi-sshlock", "192.0.2.13"),
    ];
    for (vm, n, ..) in guests {
        let vol = env.volume_qcow2(vm);
        env.machine_with(vm, n, None, &["memory=512", &format!("disk={}", vol.display())]);
    }

    // No key and no password: nobody could log in, so nothing is made.
    let before = env.snapshot();
    let o = env.run_prefixed(&ns.prefix(), As::Remote(COOWNER), &["install", "sshpw", "template=tpl", "--json"], b"\n");
    assert_eq!(o.code, 2, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("key add") && msg.contains("no root password"), "{msg}");
    let o = env.run(As::Remote(OWNER), &["install", "sshlock", "template=tpl", "keys=none", "--json"], b"");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("keys=none"), "{o:?}");
    assert_same_tree(&before, &env.snapshot(), "a refused install changed the state dir");

    // All three at once: they boot in parallel.
    let mut guards = Vec::new();
    let mut requested = Vec::new();
    for (vm, _, who, password, host, _) in guests {
        let t0 = Instant::now();
        let o = env.run_prefixed(&ns.prefix(), As::Remote(who), &["install", vm, "template=tpl", &format!("hostname={host}"), "--json"], format!("{password}\n").as_bytes());
        guards.push(Guest::new(&env, vm));
        let j = o.ok().json();
        assert_eq!(j["state"], "installing", "{j}");
        let want = match vm {
            "sshkey" => serde_json::json!({"ssh_keys": 1, "ssh_password": false, "console_password": true}),
            "sshpw" => serde_json::json!({"ssh_keys": 0, "ssh_password": true, "console_password": true}),
            _ => serde_json::json!({"ssh_keys": 1, "ssh_password": false, "console_password": false}),
        };
        assert_eq!(j["root_login"], want, "{vm}: {j}");
        requested.push(t0);
    }
    let ports = ns.ports();
    assert_eq!(ports.len(), 3, "one tap per guest on the namespace's bridge: {ports:?}");

    // Each to its login prompt with its own name.
    let prompts: Vec<(&str, &str)> = guests.iter().map(|g| (g.0, g.4)).collect();
    wait_for_login_prompts(&env, &prompts, BOOT_BOUND);

    // sshkey: the key gets in; the password (right, and good on the
    // console) does not; another principal's key does not.
    let (vm, _, _, _, host, addr) = guests[0];
    let o = ssh_answer(&ns, &Auth::Key(&bob_key), addr, "hostname; stat -c '%a %U %G' /root/.ssh /root/.ssh/authorized_keys; test ! -e /etc/ssh/sshd_config.d/50-guest-installer.conf && echo no-drop-in");
    assert_eq!(o.code, 0, "{vm}: bob's key: {o:?}");
    eprintln!("BENCH {vm}: request -> first SSH login (key) {:.1} s (TCG)", requested[0].elapsed().as_secs_f64());
    assert_eq!(o.stdout, format!("{host}\n700 root root\n600 root root\nno-drop-in\n"), "{vm}");
    let s = status(&env, OWNER, vm);
    assert_eq!(s["state"], "installed", "{s}");
    assert_eq!(s["ssh_host_key"].as_str(), Some(scanned_host_key(&ns, &work, addr).as_str()), "{s}");
    let o = ssh_answer(&ns, &Auth::Password(&bob_askpass), addr, "hostname");
    assert!(denied(&o), "{vm}: the root password was taken over SSH: {o:?}");
    let o = ssh_answer(&ns, &Auth::Key(&mallory_key), addr, "hostname");
    assert!(denied(&o), "{vm}: another principal's key got in: {o:?}");
    env.run(As::Remote(OWNER), &["stop", vm, "--force", "--json"], b"").ok();

    // sshpw: carol's password, over SSH, through our drop-in.
    let (vm, _, _, _, host, addr) = guests[1];
    let o = ssh_answer(&ns, &Auth::Password(&carol_askpass), addr, "hostname; stat -c %a /etc/ssh/sshd_config.d/50-guest-installer.conf; test ! -e /root/.ssh/authorized_keys && echo no-keys");
    assert_eq!(o.code, 0, "{vm}: carol's password: {o:?}");
    eprintln!("BENCH {vm}: request -> first SSH login (password) {:.1} s (TCG)", requested[1].elapsed().as_secs_f64());
    assert_eq!(o.stdout, format!("{host}\n644\nno-keys\n"), "{vm}");
    let o = ssh_answer(&ns, &Auth::Key(&bob_key), addr, "hostname");
    assert!(denied(&o), "{vm}: a key nobody installed got in: {o:?}");
    env.run(As::Remote(COOWNER), &["stop", vm, "--force", "--json"], b"").ok();

    // sshlock: the key gets in, root's password is locked.
    let (vm, _, _, _, host, addr) = guests[2];
    let o = ssh_answer(&ns, &Auth::Key(&bob_key), addr, "hostname; getent shadow root | cut -d: -f2");
    assert_eq!(o.code, 0, "{vm}: bob's key: {o:?}");
    eprintln!("BENCH {vm}: request -> first SSH login (key, root locked) {:.1} s (TCG)", requested[2].elapsed().as_secs_f64());
    assert_eq!(o.stdout, format!("{host}\n!\n"), "{vm}");
    let recorded = status(&env, OWNER, vm)["ssh_host_key"].as_str().unwrap().to_owned();
    assert_eq!(recorded, scanned_host_key(&ns, &work, addr));
    // After stop and start the first boot's console is gone; the host key
    // recorded stays, and is still the guest's.
    env.run(As::Remote(OWNER), &["stop", vm, "--force", "--json"], b"").ok();
    let restarted = Instant::now();
    env.run_prefixed(&ns.prefix(), As::Remote(OWNER), &["start", vm, "--json"], b"").ok();
    let s = status(&env, OWNER, vm);
    assert_eq!((s["running"].as_bool(), s["ssh_host_key"].as_str()), (Some(true), Some(recorded.as_str())), "{s}");
    let o = ssh_answer(&ns, &Auth::Key(&bob_key), addr, "hostname");
    assert_eq!((o.code, o.stdout.as_str()), (0, format!("{host}\n").as_str()), "{vm} after a restart: {o:?}");
    eprintln!("BENCH {vm}: start -> SSH login {:.1} s (TCG)", restarted.elapsed().as_secs_f64());
    assert_eq!(scanned_host_key(&ns, &work, addr), recorded);
    env.run(As::Remote(OWNER), &["stop", vm, "--force", "--json"], b"").ok();
    drop(guards);
    assert!(ns.ports().is_empty(), "taps outlived their guests: {:?}", ns.ports());
}

