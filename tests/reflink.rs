//! Clones onto raw file volumes in O(1) where the filesystem shares
//! blocks: on a loop-mounted XFS (made with reflink) holding both the
//! template and the volume, the clone is a reflink that takes next to no
//! space, reads as the template, and is wiped on cancel without touching
//! the template; a volume on another filesystem gets today's sparse copy.
//!
//! Needs (scripts/setup.sh): xfsprogs, e2fsprogs; the template (see
//! tests/common/golden.rs).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

fn free_bytes(p: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(p).unwrap();
    s.blocks_available() as u64 * s.fragment_size() as u64
}

fn same_prefix(a: &Path, b: &Path, len: u64) -> bool {
    Command::new("cmp").arg("-s").arg(format!("--bytes={len}")).arg(a).arg(b).status().unwrap().success()
}

#[test]
fn clone_onto_xfs_is_a_reflink_and_elsewhere_a_sparse_copy() {
    let mut env = Env::new();
    // The state dir (with the template) and the volume on one XFS; the
    // volume outside the state dir, where a volume must be.
    let xfs_dir = env.root().join("xfs");
    let _xfs = golden::Xfs::mount(&env.root().join("xfs.img"), 8 << 30, &xfs_dir);
    let state = xfs_dir.join("state");
    fs::create_dir(&state).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let text = fs::read_to_string(&env.config).unwrap();
    let text = text.replace(&format!("state_dir = \"{}\"", env.state.display()), &format!("state_dir = \"{}\"", state.display()));
    fs::write(&env.config, text).unwrap();
    env.state = state;
    add_template(&env);
    let root = env.state.join("templates/tpl/disk.img");
    let len = fs::metadata(&root).unwrap().len();
    let tpl_sha = sha256(&root);
    use std::os::unix::fs::MetadataExt;
    let tpl_data = fs::metadata(&root).unwrap().blocks() * 512;
    let vols = xfs_dir.join("vols");
    fs::create_dir(&vols).unwrap();
    let vol = vols.join("rl1.img");
    fs::File::create(&vol).unwrap().set_len(3 << 30).unwrap();
    env.machine_with("rl1", 1, None, &[&format!("disk={}", vol.display())]);

    let before = free_bytes(&env.state);
    let j = env.run(As::Remote(OWNER), &["install", "rl1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    let used = before.saturating_sub(free_bytes(&env.state));
    assert_eq!(j["clone_method"], "reflink", "{j}");
    assert!(used < tpl_data / 10, "the reflink clone used {used} bytes of the template's {tpl_data}");
    assert!(same_prefix(&vol, &root, len), "the volume does not read as the template");
    assert_eq!(fs::metadata(&vol).unwrap().len(), 3 << 30, "the volume's size changed");

    // Cancel wipes the clone (a punched hole in its shared blocks): the
    // template keeps every byte.
    env.run(As::Remote(OWNER), &["cancel", "rl1", "--json"], b"").ok();
    let head = fs::read(&vol).unwrap();
    assert!(head[..1 << 20].iter().all(|b| *b == 0), "the clone was not wiped");
    assert_eq!(sha256(&root), tpl_sha, "wiping the clone changed the template");

    // A volume on another filesystem (the test's ext4) gets a copy.
    let other = env.volume_sized("rl2", 3 << 30);
    env.machine_with("rl2", 2, None, &[&format!("disk={}", other.display())]);
    let j = env.run(As::Remote(OWNER), &["install", "rl2", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["clone_method"], "sparse-copy", "{j}");
    assert!(same_prefix(&other, &root, len));
}
