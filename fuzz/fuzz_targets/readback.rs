//! The template read-back on hostile filesystem images (a build install's
//! root is read back from a guest's disk): an error that leaves nothing,
//! or a tree inside its directory; never a panic, and never a write
//! outside (a sentinel file beside the tree keeps its bytes and mtime).
//!
//! The input is either a whole image (first byte 0) or patches to a small
//! valid filesystem made once with mke2fs -d (hard links, symlinks fast
//! and slow, setuid, a user attribute, a sparse file, a big directory), so
//! that mutations reach past the superblock.
#![no_main]
use guest_installer::template::readback::{extract, Budget};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        fs::create_dir_all(t.join("etc/many")).unwrap();
        fs::write(t.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::hard_link(t.join("etc/passwd"), t.join("etc/passwd-")).unwrap();
        std::os::unix::fs::symlink("passwd", t.join("etc/short")).unwrap();
        std::os::unix::fs::symlink("/a/target/longer/than/sixty/bytes/so/it/needs/a/block/of/its/own", t.join("etc/long")).unwrap();
        fs::write(t.join("su"), b"#!/bin/true\n").unwrap();
        fs::set_permissions(t.join("su"), std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
        let s = fs::File::create(t.join("sparse")).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&s, b"end", 100_000).unwrap();
        for i in 0..60 {
            fs::write(t.join(format!("etc/many/f{i}")), b"x").unwrap();
        }
        let _ = xattr_user(&t.join("etc/passwd"));
        let img = d.path().join("img");
        let ok = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "1024", "-N", "128", "-O", "^has_journal,^resize_inode", "-d"])
            .arg(&t)
            .arg(&img)
            .arg("512K")
            .status()
            .unwrap()
            .success();
        assert!(ok, "mke2fs failed");
        fs::read(&img).unwrap()
    })
}

fn xattr_user(p: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated strings and a live slice for the call.
    let r = unsafe { libc::setxattr(c.as_ptr(), c"user.x".as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Patches: 3 bytes of offset (modulo the image), 1 byte of length, bytes.
fn patched(data: &[u8]) -> Vec<u8> {
    let mut img = base().to_vec();
    let mut d = data;
    while d.len() >= 4 {
        let off = (usize::from(d[0]) << 16 | usize::from(d[1]) << 8 | usize::from(d[2])) % img.len();
        let n = usize::from(d[3]).min(d.len() - 4).min(img.len() - off);
        img[off..off + n].copy_from_slice(&d[4..4 + n]);
        d = &d[4 + n..];
    }
    img
}

fuzz_target!(|data: &[u8]| {
    let img = match data.split_first() {
        Some((0, rest)) => rest.to_vec(),
        _ => patched(data),
    };
    let scratch = if Path::new("/dev/shm").is_dir() { tempfile::tempdir_in("/dev/shm") } else { tempfile::tempdir() }.unwrap();
    let outside = scratch.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let sentinel = outside.join("sentinel");
    fs::write(&sentinel, b"host").unwrap();
    let before = fs::metadata(&sentinel).unwrap();
    let tree = scratch.path().join("tree");
    let r = extract(img.into_boxed_slice(), &tree, Budget { bytes: 4 << 20, entries: 4096, ..Budget::default() });
    let after = fs::metadata(&sentinel).unwrap();
    assert_eq!(fs::read(&sentinel).unwrap(), b"host");
    assert_eq!((before.mtime(), before.mtime_nsec(), before.ino()), (after.mtime(), after.mtime_nsec(), after.ino()));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "something was written beside the sentinel");
    let mut names: Vec<_> = fs::read_dir(scratch.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    let want: Vec<std::ffi::OsString> = if r.is_ok() { vec!["outside".into(), "tree".into()] } else { vec!["outside".into()] };
    assert_eq!(names, want, "{r:?}");
});
