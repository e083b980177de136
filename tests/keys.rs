//! `key add|list|remove` with keys made by the real `ssh-keygen`: the
//! fingerprints and sizes we report are the ones `ssh-keygen -lf` prints,
//! every bad shape is refused with exit 2 and leaves the store as it was,
//! and only admins may manage another principal's keys.

mod common;

use base64::Engine;
use common::*;
use std::path::Path;
use std::process::Command;

/// A fresh key pair made by ssh-keygen; returns its public line.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(name);
    sh(Command::new("ssh-keygen").args(["-q", "-N", "", "-C", &format!("{name}@test"), "-f"]).arg(&path).args(args));
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim_end().to_owned()
}

/// What `ssh-keygen -lf` says of a public key line: (bits, fingerprint).
fn keygen_says(dir: &Path, line: &str) -> (u64, String) {
    let f = dir.join("probe.pub");
    std::fs::write(&f, format!("{line}\n")).unwrap();
    let out = sh(Command::new("ssh-keygen").arg("-lf").arg(&f));
    let mut w = out.split_whitespace();
    (w.next().unwrap().parse().unwrap(), w.next().unwrap().to_owned())
}

fn wire(fields: &[&[u8]]) -> String {
    let mut b = Vec::new();
    for f in fields {
        b.extend_from_slice(&(f.len() as u32).to_be_bytes());
        b.extend_from_slice(f);
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn every_accepted_type_reports_what_ssh_keygen_reports() {
    let env = Env::new();
    let d = env.tmp.path();
    let mut lines = vec![
        keygen(d, "ed", &["-t", "ed25519"]),
        keygen(d, "p256", &["-t", "ecdsa", "-b", "256"]),
        keygen(d, "p384", &["-t", "ecdsa", "-b", "384"]),
        keygen(d, "p521", &["-t", "ecdsa", "-b", "521"]),
        keygen(d, "rsa", &["-t", "rsa", "-b", "3072"]),
    ];
    // Security-key types cannot be made without the hardware; their public
    // halves are plain wire data (a real P-256 point, an application).
    let p256 = keygen(d, "p256b", &["-t", "ecdsa", "-b", "256"]);
    let blob = base64::engine::general_purpose::STANDARD.decode(p256.split(' ').nth(1).unwrap()).unwrap();
    let point = &blob[blob.len() - 65..];
    lines.push(format!("sk-ecdsa-sha2-nistp256@openssh.com {} sk@test", wire(&[b"sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", point, b"ssh:"])));
    lines.push(format!("sk-ssh-ed25519@openssh.com {} sk@test", wire(&[b"sk-ssh-ed25519@openssh.com", &[9u8; 32], b"ssh:"])));

    for line in &lines {
        let j = env.run(As::Remote(OWNER), &["key", "add", line, "--json"], b"").ok().json();
        let (bits, fp) = keygen_says(d, line);
        assert_eq!(j["key"]["fingerprint"], fp.as_str(), "{line}");
        assert_eq!(j["key"]["bits"], bits, "{line}");
        assert_eq!(j["key"]["type"], line.split(' ').next().unwrap());
        assert_eq!(j["added"], true);
    }
    let l = env.run(As::Remote(OWNER), &["key", "list", "--json"], b"").ok().json();
    assert_eq!(l["keys"].as_array().unwrap().len(), lines.len());
    // The store is root's alone.
    use std::os::unix::fs::PermissionsExt;
    let dir = env.state.join("keys");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for e in std::fs::read_dir(&dir).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Adding one again changes nothing.
    let before = env.snapshot();
    let j = env.run(As::Remote(OWNER), &["key", "add", &lines[0], "--json"], b"").ok().json();
    assert_eq!(j["added"], false);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn bad_shapes_are_refused_and_change_nothing() {
    let env = Env::new();
    let d = env.tmp.path();
    let good = keygen(d, "ed", &["-t", "ed25519"]);
    env.run(As::Remote(OWNER), &["key", "add", &good], b"").ok();
    let rsa2048 = keygen(d, "rsa2048", &["-t", "rsa", "-b", "2048"]);
    let dsa_blob = wire(&[b"ssh-dss", b"p", b"q", b"g", b"y"]);
    let bad: Vec<(String, &str)> = vec![
        (format!("command=\"/bin/sh\" {good}"), "options"),
        (format!("from=\"192.0.2.1\",no-pty {good}"), "options"),
        (format!("{good}\n{good}"), "single line"),
        (format!("{good} \u{1b}]0;pwned\u{7}"), "control"),
        (format!("{good} {}", "c".repeat(129)), "comment longer"),
        (format!("{good} caf\u{e9}"), "comment with"),
        (rsa2048, "at least 3072 bits"),
        (format!("ssh-dss {dsa_blob}"), "key type"),
        (format!("ssh-ed25519 {}", good.split(' ').nth(1).unwrap().replace('A', "*")), "base64"),
        (format!("ssh-ed25519 {}", wire(&[b"ssh-ed25519", &[1u8; 16]])), "well-formed"),
        (format!("ecdsa-sha2-nistp256 {}", good.split(' ').nth(1).unwrap()), "another type"),
        (String::new(), "empty"),
    ];
    let before = env.snapshot();
    for (line, why) in &bad {
        let out = env.run(As::Remote(OWNER), &["key", "add", line, "--json"], b"");
        assert_eq!(out.code, 2, "{line:?}: {out:?}");
        let msg = out.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(why), "{line:?}: {msg}");
        // The caller's text is never echoed back.
        assert!(!msg.contains("pwned") && !msg.contains("/bin/sh"), "{msg}");
        assert_eq!(env.snapshot(), before, "{line:?} changed the store");
    }
    // Two words where the key line should be one (it was not quoted).
    let mut split: Vec<&str> = vec!["key", "add"];
    split.extend(good.split(' '));
    assert_eq!(env.run(As::Remote(OWNER), &split, b"").code, 2);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn principals_manage_their_own_keys_and_admins_anyones() {
    let env = Env::new();
    let d = env.tmp.path();
    let (a, b) = (keygen(d, "a", &["-t", "ed25519"]), keygen(d, "b", &["-t", "ed25519"]));
    let fp_a = keygen_says(d, &a).1;
    env.run(As::Remote(OWNER), &["key", "add", &a], b"").ok();

    // One key, one principal: the console door tells callers apart by it.
    let before = env.snapshot();
    let out = env.run(As::Remote(COOWNER), &["key", "add", &a, "--json"], b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stdout.contains(OWNER), "who holds a key is not told: {out:?}");
    // Only admins name another principal.
    for args in [&["key", "add", &b, &format!("principal={OWNER}")][..], &["key", "list", &format!("principal={OWNER}")], &["key", "remove", &fp_a, &format!("principal={OWNER}")]] {
        let out = env.run(As::Remote(STRANGER), args, b"");
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
    }
    assert_eq!(env.snapshot(), before);
    // Someone else's fingerprint is not found among one's own keys.
    assert_eq!(env.run(As::Remote(STRANGER), &["key", "remove", &fp_a], b"").code, 4);
    // Root on the host has no keys of its own; it names the principal.
    assert_eq!(env.run(As::Root, &["key", "list"], b"").code, 2);
    let l = env.run(As::Root, &["key", "list", &format!("principal={OWNER}"), "--json"], b"").ok().json();
    assert_eq!(l["keys"][0]["fingerprint"], fp_a.as_str());

    let j = env.run(As::Remote(ADMIN), &["key", "add", &format!("principal={OWNER}"), &b, "--json"], b"").ok().json();
    assert_eq!(j["principal"], OWNER);
    let j = env.run(As::Remote(OWNER), &["key", "remove", &fp_a, "--json"], b"").ok().json();
    assert_eq!(j["removed"]["fingerprint"], fp_a.as_str());
    let l = env.run(As::Remote(OWNER), &["key", "list", "--json"], b"").ok().json();
    assert_eq!(l["keys"].as_array().unwrap().len(), 1);
    assert_eq!(l["keys"][0]["fingerprint"], keygen_says(d, &b).1.as_str());
    // The audit log names the requests, never a key's comment.
    let audit = env.audit().join("\n");
    assert!(audit.contains("key-add") && audit.contains("key-remove"), "{audit}");
}

#[test]
fn the_per_principal_bound_holds() {
    let env = Env::new();
    for n in 0..32u8 {
        let line = format!("ssh-ed25519 {}", wire(&[b"ssh-ed25519", &[n; 32]]));
        env.run(As::Remote(OWNER), &["key", "add", &line], b"").ok();
    }
    let before = env.snapshot();
    let out = env.run(As::Remote(OWNER), &["key", "add", &format!("ssh-ed25519 {}", wire(&[b"ssh-ed25519", &[99u8; 32]])), "--json"], b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("32 keys"));
    assert_eq!(env.snapshot(), before);
}
