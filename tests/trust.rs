//! The config and the preseed template steer a root process for remote
//! callers: like sudo with sudoers, the program trusts them only if only
//! root can change them (owned by root, not writable by group or others,
//! a regular file, at most 1 MiB). Anything else is refused with exit 1,
//! a message that says what to fix, and nothing changed.

mod common;

use common::*;
use nix::unistd::{chown, Uid};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

/// Each way `file` can be untrusted, applied in turn and undone: `run`
/// must fail (exit 1) saying `says`, with the state dir unchanged.
fn each_untrusted_form(env: &Env, file: &Path, run: impl Fn() -> Out) {
    let good = fs::read(file).unwrap();
    let set_mode = |m: u32| fs::set_permissions(file, fs::Permissions::from_mode(m)).unwrap();
    let before = env.snapshot();
    let check = |what: &str, says: &str| {
        let o = run();
        assert_eq!(o.code, 1, "{what}: {o:?}");
        let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("not trusted") && msg.contains(says), "{what}: {msg}");
        assert_same_tree(&before, &env.snapshot(), what);
    };
    chown(file, Some(Uid::from_raw(65534)), None).unwrap();
    check("owned by nobody", "uid 65534, not root");
    chown(file, Some(Uid::from_raw(0)), None).unwrap();
    for m in [0o664, 0o646, 0o666, 0o620] {
        set_mode(m);
        check(&format!("mode {m:o}"), "writable by group or others");
    }
    set_mode(0o644);
    let mut big = good.clone();
    big.extend(std::iter::repeat_n(b"# padding\n".as_slice(), 110_000).flatten());
    fs::write(file, &big).unwrap();
    check("over 1 MiB", "larger than 1048576 bytes");
    fs::write(file, &good).unwrap();
    let real = file.with_extension("real");
    fs::rename(file, &real).unwrap();
    std::os::unix::fs::symlink(&real, file).unwrap();
    check("a symlink", "symbolic link");
    fs::remove_file(file).unwrap();
    fs::rename(&real, file).unwrap();
    // Root's own 0600 or 0644 file is trusted.
    set_mode(0o600);
    let o = run();
    assert_ne!(o.code, 1, "a trusted file was refused: {o:?}");
}

#[test]
fn a_config_only_root_cannot_change_is_refused() {
    let env = Env::new();
    env.machine("web1", 1, None);
    each_untrusted_form(&env, &env.config, || env.run(As::Remote(OWNER), &["status", "web1", "--json"], b""));
    env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok();
}

#[test]
fn a_preseed_template_only_root_cannot_change_is_refused() {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    let template = env.root().join("preseed.cfg");
    each_untrusted_form(&env, &template, || {
        env.run(As::Remote(OWNER), &["install", "web1", "--no-start", "--json"], PW_HASH.as_bytes())
    });
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start", "--json"], PW_HASH.as_bytes()).ok();
}
