//! The read-back against the kernel's own ext4 driver (a read-only loop
//! mount of the same image), and its budgets. Needs root, mke2fs and loop
//! devices, as the rest of the suite does.

use super::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a live slice for the call.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(r, 0, "{name} on {}: {}", p.display(), io::Error::last_os_error());
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "{}", io::Error::last_os_error());
    let mut out = BTreeMap::new();
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0);
        v.truncate(m as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), v);
    }
    out
}

/// A POSIX ACL as the xattr calls take it: user::rwx, user:1000:r-x,
/// group::r-x, mask::r-x, other::r--.
fn acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [(1u16, 7u16, u32::MAX), (2, 5, 1000), (4, 5, u32::MAX), (0x10, 5, u32::MAX), (0x20, 4, u32::MAX)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// A tree with everything the read-back must keep.
fn rich_tree(root: &Path) {
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    w("usr/bin/su", b"#!/bin/true\n", 0o4755);
    w("usr/bin/wall", b"#!/bin/true\n", 0o2755);
    std::os::unix::fs::chown(root.join("usr/bin/wall"), Some(0), Some(5)).unwrap();
    fs::set_permissions(root.join("usr/bin/wall"), fs::Permissions::from_mode(0o2755)).unwrap();
    w("usr/bin/perl5.36.0", b"perl, three times\n", 0o755);
    fs::hard_link(root.join("usr/bin/perl5.36.0"), root.join("usr/bin/perl")).unwrap();
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    fs::hard_link(root.join("usr/bin/perl5.36.0"), root.join("usr/lib/perl-too")).unwrap();
    w("usr/bin/ping", b"#!/bin/true\n", 0o755);
    set_xattr(&root.join("usr/bin/ping"), "security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    w("home/u/notes", b"mine\n", 0o640);
    std::os::unix::fs::chown(root.join("home/u/notes"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(root.join("home/u"), Some(1000), Some(1000)).unwrap();
    set_xattr(&root.join("home/u/notes"), "user.origin", b"kept");
    set_xattr(&root.join("home/u/notes"), "system.posix_acl_access", &acl());
    set_xattr(&root.join("home/u"), "system.posix_acl_default", &acl());
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("srv/shared")).unwrap();
    fs::set_permissions(root.join("srv/shared"), fs::Permissions::from_mode(0o2775)).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("usr/os-release")).unwrap();
    let long = "/".to_owned() + &"long-target/".repeat(20);
    std::os::unix::fs::symlink(&long, root.join("usr/long-link")).unwrap();
    w("empty", b"", 0o600);
    // 3 MiB apparent, one block of data at 2 MiB.
    let sparse = fs::File::create(root.join("var-sparse")).unwrap();
    sparse.write_all_at(b"data after a hole", 2 << 20).unwrap();
    sparse.set_len(3 << 20).unwrap();
    // A big directory (an htree), and a multi-block file.
    for i in 0..1500 {
        w(&format!("usr/share/many/entry-with-a-longish-name-{i:05}"), format!("{i}\n").as_bytes(), 0o644);
    }
    w("usr/share/big", &(0..600_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>(), 0o644);
    run(Command::new("mkfifo").arg(root.join("fifo")));
}

fn mkfs(tree: &Path, img: &Path, size: &str, extra: &[&str]) {
    run(Command::new("mke2fs").args(["-q", "-F", "-t", "ext4"]).args(extra).arg("-d").arg(tree).arg(img).arg(size));
}

fn image(img: &Path) -> Box<ext4::Region> {
    let file = fs::File::open(img).unwrap();
    let len = file.metadata().unwrap().len();
    Box::new(ext4::Region { file, start: 0, len })
}

/// Everything the read-back keeps, per path: type, mode, owner, size,
/// mtime, content or target, attributes, and which hard-link group.
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut groups: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("lost+found") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                groups.entry(m.ino()).or_default().push(rel.clone());
                files.push((rel.clone(), m.ino()));
                let data = fs::read(&p).unwrap();
                format!("file {} bytes, sum {}, nlink {}", data.len(), data.iter().map(|b| u64::from(*b)).sum::<u64>(), m.nlink())
            } else {
                continue;
            };
            let x = if ft.is_symlink() { BTreeMap::new() } else { xattrs(&p) };
            let mtime = if ft.is_dir() { 0 } else { m.mtime() };
            out.insert(rel, format!("{what} mode {:o} {}:{} mtime {mtime} {x:?}", m.mode(), m.uid(), m.gid()));
        }
    }
    // Which names share an inode.
    for (rel, ino) in files {
        let mut names = groups[&ino].clone();
        names.sort();
        out.get_mut(&rel).unwrap().push_str(&format!(" names {names:?}"));
    }
    out
}

struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn matches_a_loop_mount_of_the_same_image() {
    let d = tempfile::tempdir().unwrap();
    let (src, img, out, mnt) = (d.path().join("src"), d.path().join("img"), d.path().join("out"), d.path().join("mnt"));
    rich_tree(&src);
    mkfs(&src, &img, "64M", &[]);
    let sum = extract(image(&img), &out, Budget::default()).unwrap();
    fs::create_dir(&mnt).unwrap();
    run(Command::new("mount").args(["-o", "ro,loop"]).arg(&img).arg(&mnt));
    let _m = Mounted(mnt.clone());
    let (want, got) = (describe(&mnt), describe(&out));
    assert!(want.len() > 1500, "{}", want.len());
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{}", k.display());
    }
    assert_eq!(got.len(), want.len(), "extra: {:?}", got.keys().filter(|k| !want.contains_key(*k)).collect::<Vec<_>>());
    // The hole stays a hole; the fifo is not copied.
    assert!(fs::metadata(out.join("var-sparse")).unwrap().blocks() <= 16);
    assert!(!out.join("fifo").exists() && mnt.join("fifo").exists());
    assert!(got[Path::new("usr/bin/perl")].contains("nlink 3"), "{}", got[Path::new("usr/bin/perl")]);
    assert!(xattrs(&out.join("usr/bin/ping")).contains_key("security.capability"));
    assert_eq!(sum.entries as usize, want.len());
}

#[test]
fn budgets_refuse_and_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (src, img, out) = (d.path().join("src"), d.path().join("img"), d.path().join("out"));
    rich_tree(&src);
    mkfs(&src, &img, "64M", &[]);
    let e = extract(image(&img), &out, Budget { entries: 100, ..Budget::default() }).unwrap_err();
    assert!(matches!(e, ReadbackError::OverBudget(_) | ReadbackError::Fs(_)), "{e}");
    assert!(!out.exists());
    let e = extract(image(&img), &out, Budget { bytes: 1 << 20, ..Budget::default() }).unwrap_err();
    assert!(matches!(e, ReadbackError::OverBudget(_)), "{e}");
    assert!(!out.exists());
    // Out of time: refused the same way.
    let e = extract(image(&img), &out, Budget { time: std::time::Duration::ZERO, ..Budget::default() }).unwrap_err();
    assert!(e.to_string().contains("took longer than"), "{e}");
    assert!(!out.exists());
    // An existing tree is never written into.
    fs::create_dir(&out).unwrap();
    assert!(matches!(extract(image(&img), &out, Budget::default()), Err(ReadbackError::Io(_))));
}

#[test]
fn not_a_filesystem_or_unsupported() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let zeros = vec![0u8; 1 << 20].into_boxed_slice();
    assert!(matches!(extract(zeros, &out, Budget::default()), Err(ReadbackError::Fs(_))));
    assert!(!out.exists());
    // ext2 (block maps, no extents): refused with a clear word.
    let (src, img) = (d.path().join("src"), d.path().join("img"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    run(Command::new("mke2fs").args(["-q", "-F", "-t", "ext2", "-d"]).arg(&src).arg(&img).arg("8M"));
    let e = extract(image(&img), &out, Budget::default()).unwrap_err();
    assert!(e.to_string().contains("block-mapped"), "{e}");
    assert!(!out.exists());
}

#[test]
fn names_that_could_steer_a_write_are_refused() {
    let e = |n: &[u8], i: u32| (n.to_vec(), i);
    let ok = vec![e(b".", 5), e(b"..", 2), e(b"a", 7), e(b"b", 7)];
    assert_eq!(check_names(ok, 5, 2).unwrap(), vec![e(b"a", 7), e(b"b", 7)]);
    for bad in [
        vec![e(b".", 5), e(b"..", 2), e(b"a/b", 7)],
        vec![e(b".", 5), e(b"..", 2), e(b"a\0", 7)],
        vec![e(b".", 5), e(b"..", 2), e(b"x\nfake", 7)],
        vec![e(b".", 5), e(b"..", 2), e(b"a", 7), e(b"a", 8)],
        vec![e(b".", 5), e(b"..", 2), e(b"..", 2)],
        vec![e(b".", 5), e(b"..", 9)],
        vec![e(b".", 6), e(b"..", 2)],
        vec![e(b"..", 2), e(b"a", 7)],
    ] {
        assert!(check_names(bad.clone(), 5, 2).is_err(), "{bad:?}");
    }
}

#[test]
fn acls_convert_to_the_xattr_form() {
    // ext4's form of user::rw-, user:1000:r--, group::r--, mask::r--, other::---.
    let mut disk = 1u32.to_le_bytes().to_vec();
    disk.extend_from_slice(&[1, 0, 6, 0]);
    disk.extend_from_slice(&[2, 0, 4, 0, 0xe8, 3, 0, 0]);
    disk.extend_from_slice(&[4, 0, 4, 0, 0x10, 0, 4, 0, 0x20, 0, 0, 0]);
    let (name, v) = xattr::kept(2, b"", disk.clone()).unwrap().unwrap();
    assert_eq!(name.to_bytes(), b"system.posix_acl_access");
    assert_eq!(v.len(), 4 + 5 * 8);
    assert_eq!(&v[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
    assert!(xattr::kept(2, b"", disk[..disk.len() - 2].to_vec()).is_err());
    assert!(xattr::kept(4, b"overlay.opaque", b"y".to_vec()).unwrap().is_none());
    assert!(xattr::kept(6, b"selinux", b"x".to_vec()).unwrap().is_none());
    assert!(xattr::kept(1, b"", b"x".to_vec()).unwrap().is_none());
    assert!(xattr::kept(1, b"a\0b", b"x".to_vec()).is_err());
}

/// A directory of `n` names, all of one empty file, crafted in place: a
/// regular file whose blocks are written as directory blocks, then made
/// a directory. mke2fs would take minutes for 10^6 real files; what the
/// read-back meets is the same: 10^6 entries, 10^6 files to create.
fn many_names(dir: &Path, n: usize, inodes: &str) -> PathBuf {
    let src = dir.join("many-src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("target"), b"").unwrap();
    let per_block = 4096 / 16;
    let blocks = (n + 2).div_ceil(per_block);
    fs::write(src.join("bigdir"), vec![0xffu8; blocks * 4096]).unwrap();
    let img = dir.join("many.img");
    let size = format!("{}M", blocks * 4096 / (1 << 20) + 48 + inodes.parse::<usize>().unwrap() * 128 / (1 << 20));
    mkfs(&src, &img, &size, &["-b", "4096", "-I", "128", "-N", inodes, "-E", "lazy_itable_init=1", "-O", "^metadata_csum"]);
    let stat = |p: &str| String::from_utf8(Command::new("debugfs").args(["-R", &format!("stat {p}")]).arg(&img).output().unwrap().stdout).unwrap();
    let ino = |p: &str| -> u32 { stat(p).split("Inode: ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap() };
    let (dir_ino, target) = (ino("/bigdir"), ino("/target"));
    // "(0-2047):1234-3281, (2048-3906):..." → physical block of each logical one.
    let s = stat("/bigdir");
    let mut phys = Vec::new();
    for run in s.split("EXTENTS:").nth(1).unwrap().split(", ").filter(|r| !r.trim().starts_with("(ETB")) {
        let (l, p) = run.trim().split_once("):").unwrap();
        let (l0, l1) = l.trim_start_matches('(').split_once('-').map_or((l.trim_start_matches('('), l.trim_start_matches('(')), |x| x);
        let (l0, l1): (u64, u64) = (l0.parse().unwrap(), l1.parse().unwrap());
        let p0: u64 = p.split('-').next().unwrap().trim().parse().unwrap();
        phys.extend((0..=l1 - l0).map(|i| p0 + i));
    }
    assert_eq!(phys.len(), blocks);
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    let mut names = (0..n).map(|i| (format!("f{i:07}"), target)).peekable();
    for (b, p) in phys.iter().enumerate() {
        let mut block = vec![0u8; 4096];
        let mut recs: Vec<(Vec<u8>, u32)> = Vec::new();
        if b == 0 {
            recs.push((b".".to_vec(), dir_ino));
            recs.push((b"..".to_vec(), 2));
        }
        while recs.len() < per_block {
            let Some((name, i)) = names.next() else { break };
            recs.push((name.into_bytes(), i));
        }
        let count = recs.len();
        for (k, (name, i)) in recs.into_iter().enumerate() {
            let at = k * 16;
            let rec: u16 = if k + 1 == count { (4096 - at) as u16 } else { 16 };
            block[at..at + 4].copy_from_slice(&i.to_le_bytes());
            block[at + 4..at + 6].copy_from_slice(&rec.to_le_bytes());
            block[at + 6] = name.len() as u8;
            block[at + 7] = 1;
            block[at + 8..at + 8 + name.len()].copy_from_slice(&name);
        }
        f.write_all_at(&block, p * 4096).unwrap();
    }
    assert!(names.peek().is_none());
    // The file becomes a directory (drwxr-xr-x, two links).
    let out = String::from_utf8(Command::new("debugfs").args(["-R", "imap /bigdir"]).arg(&img).output().unwrap().stdout).unwrap();
    let blk: u64 = out.split("located at block ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let off = u64::from_str_radix(out.split("offset 0x").nth(1).unwrap().trim(), 16).unwrap();
    f.write_all_at(&0o40755u16.to_le_bytes(), blk * 4096 + off).unwrap();
    f.write_all_at(&2u16.to_le_bytes(), blk * 4096 + off + 26).unwrap();
    img
}

/// 10^6 empty files: within an entry budget the filesystem's inode count
/// allows, all written inside the tree; over a smaller budget (or in a
/// filesystem with fewer inodes than names), refused with nothing left.
#[test]
fn a_million_empty_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let n = 1_000_000;
    let img = many_names(d.path(), n, "1000100");
    let e = extract(image(&img), &out, Budget { entries: 10_000, ..Budget::default() }).unwrap_err();
    assert!(matches!(e, ReadbackError::OverBudget(_)), "{e}");
    assert!(!out.exists());
    let t0 = std::time::Instant::now();
    let sum = extract(image(&img), &out, Budget::default()).unwrap();
    eprintln!("BENCH 10^6 empty files read back: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(sum.entries, n as u64 + 2);
    assert_eq!(fs::read_dir(out.join("bigdir")).unwrap().count(), n);
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 3, "written beside the tree");
    // The same names in a filesystem of 16,384 inodes: more names than an
    // honest one could hold.
    let d2 = tempfile::tempdir().unwrap();
    let img = many_names(d2.path(), n, "16384");
    let e = extract(image(&img), &d2.path().join("out"), Budget::default()).unwrap_err();
    assert!(matches!(e, ReadbackError::OverBudget(_)), "{e}");
    assert!(!d2.path().join("out").exists());
}

/// What `debugfs -R "stat PATH"` says of a path: its inode and the physical
/// block of each logical one.
fn blocks_of(img: &Path, path: &str) -> (u32, Vec<u64>) {
    let s = String::from_utf8(Command::new("debugfs").args(["-R", &format!("stat {path}")]).arg(img).output().unwrap().stdout).unwrap();
    let ino = s.split("Inode: ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let mut phys = Vec::new();
    if let Some(ext) = s.split("EXTENTS:").nth(1) {
        for run in ext.split(", ").map(str::trim).filter(|r| !r.is_empty() && !r.starts_with("(ETB")) {
            let (l, p) = run.split_once("):").unwrap();
            let l = l.trim_start_matches('(');
            let (l0, l1) = l.split_once('-').unwrap_or((l, l));
            let (l0, l1): (u64, u64) = (l0.parse().unwrap(), l1.parse().unwrap());
            let p0: u64 = p.split('-').next().unwrap().trim().parse().unwrap();
            phys.extend((0..=l1 - l0).map(|i| p0 + i));
        }
    }
    (ino, phys)
}

/// Where `debugfs` says inode `path` lies, in bytes from the start.
fn inode_at(img: &Path, path: &str) -> u64 {
    inode_at_bs(img, path, 4096)
}

fn inode_at_bs(img: &Path, path: &str, block_size: u64) -> u64 {
    let out = String::from_utf8(Command::new("debugfs").args(["-R", &format!("imap {path}")]).arg(img).output().unwrap().stdout).unwrap();
    let blk: u64 = out.split("located at block ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let off = u64::from_str_radix(out.split("offset 0x").nth(1).unwrap().trim(), 16).unwrap();
    blk * block_size + off
}

/// A 4 KiB directory block of `recs` (each record as long as its name
/// needs; the last one takes the rest of the block).
fn dir_block(recs: &[(&[u8], u32)]) -> Vec<u8> {
    let mut block = vec![0u8; 4096];
    let mut at = 0;
    for (k, (name, ino)) in recs.iter().enumerate() {
        let len = (8 + name.len()).next_multiple_of(4);
        let rec = if k + 1 == recs.len() { 4096 - at } else { len };
        block[at..at + 4].copy_from_slice(&ino.to_le_bytes());
        block[at + 4..at + 6].copy_from_slice(&(rec as u16).to_le_bytes());
        block[at + 6] = name.len() as u8;
        block[at + 7] = 2;
        block[at + 8..at + 8 + name.len()].copy_from_slice(name);
        at += len;
    }
    assert!(at <= 4096);
    block
}

/// A chain of `levels` directories, each holding `per_level` names of
/// `name_len` bytes (all of one empty file) and the next directory,
/// crafted in place: the levels' own first blocks differ, the blocks of
/// names are one run that every level's extents share (so the image stays
/// small however deep the chain). The superblock then claims 2^20 inodes
/// (32,768 a group), so the entry budget alone would let a million names
/// wait in memory.
fn chain_of_names(dir: &Path, levels: usize, per_level: usize, name_len: usize) -> PathBuf {
    let src = dir.join("chain-src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("target"), b"").unwrap();
    let per_block = 4096 / (8 + name_len).next_multiple_of(4);
    let shared_blocks = per_level.div_ceil(per_block);
    fs::write(src.join("shared"), vec![0xffu8; shared_blocks * 4096]).unwrap();
    for k in 0..levels {
        fs::write(src.join(format!("l{k:03}")), vec![0xffu8; 4096]).unwrap();
    }
    let img = dir.join("chain.img");
    mkfs(&src, &img, "4G", &["-b", "4096", "-I", "128", "-N", "65536", "-O", "^metadata_csum,^dir_index,^resize_inode"]);
    let f = fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    // Everything debugfs tells first: it reads the geometry patched below
    // as the inconsistency it is. (The inodes used all lie in group 0, where
    // both geometries put them alike.)
    let locations: Vec<u64> = (0..levels).map(|k| inode_at(&img, &format!("/l{k:03}"))).collect();
    let (target, _) = blocks_of(&img, "/target");
    let (_, shared) = blocks_of(&img, "/shared");
    assert!(shared.windows(2).all(|w| w[1] == w[0] + 1), "the shared names are not one run");
    // The shared blocks: names that all name the empty file.
    let names: Vec<Vec<u8>> = (0..per_level).map(|i| format!("f{i:0width$}", width = name_len - 1).into_bytes()).collect();
    for (b, chunk) in names.chunks(per_block).enumerate() {
        let recs: Vec<(&[u8], u32)> = chunk.iter().map(|n| (&n[..], target)).collect();
        f.write_all_at(&dir_block(&recs), shared[b] * 4096).unwrap();
    }
    let level: Vec<(u32, u64)> = (0..levels)
        .map(|k| {
            let (ino, b) = blocks_of(&img, &format!("/l{k:03}"));
            (ino, b[0])
        })
        .collect();
    // The root names only the first level.
    let (_, root_blocks) = blocks_of(&img, "/");
    let mut root = vec![0u8; 4096];
    f.read_exact_at(&mut root, root_blocks[0] * 4096).unwrap();
    let mut pos = 0;
    while pos < 4096 {
        let rec = usize::from(u16::from_le_bytes([root[pos + 4], root[pos + 5]]));
        let name = &root[pos + 8..pos + 8 + usize::from(root[pos + 6])];
        if name.starts_with(b"l") && name != b"l000" || name == b"shared" {
            root[pos..pos + 4].copy_from_slice(&0u32.to_le_bytes());
        }
        pos += rec;
    }
    f.write_all_at(&root, root_blocks[0] * 4096).unwrap();
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024).unwrap();
    let groups = u32::from_le_bytes(sb[0..4].try_into().unwrap()) / u32::from_le_bytes(sb[40..44].try_into().unwrap());
    assert_eq!(groups, 32);
    f.write_all_at(&(groups * 32768).to_le_bytes(), 1024).unwrap();
    f.write_all_at(&32768u32.to_le_bytes(), 1024 + 40).unwrap();
    for k in 0..levels {
        let (ino, own) = level[k];
        let parent = if k == 0 { 2 } else { level[k - 1].0 };
        let mut recs: Vec<(&[u8], u32)> = vec![(b".", ino), (b"..", parent)];
        if k + 1 < levels {
            recs.push((b"d", level[k + 1].0));
        }
        f.write_all_at(&dir_block(&recs), own * 4096).unwrap();
        // The inode: a directory whose extents are its own block, then the
        // shared names.
        let at = locations[k];
        let mut i_block = [0u8; 60];
        i_block[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
        i_block[2..4].copy_from_slice(&2u16.to_le_bytes());
        i_block[4..6].copy_from_slice(&4u16.to_le_bytes());
        let ext = |at: usize, logical: u32, len: u16, start: u64, b: &mut [u8; 60]| {
            b[at..at + 4].copy_from_slice(&logical.to_le_bytes());
            b[at + 4..at + 6].copy_from_slice(&len.to_le_bytes());
            b[at + 6..at + 8].copy_from_slice(&((start >> 32) as u16).to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&(start as u32).to_le_bytes());
        };
        ext(12, 0, 1, own, &mut i_block);
        ext(24, 1, shared_blocks as u16, shared[0], &mut i_block);
        f.write_all_at(&0o40755u16.to_le_bytes(), at).unwrap();
        f.write_all_at(&(((1 + shared_blocks) * 4096) as u32).to_le_bytes(), at + 4).unwrap();
        f.write_all_at(&2u16.to_le_bytes(), at + 26).unwrap();
        f.write_all_at(&i_block, at + 40).unwrap();
    }
    img
}

/// The peak memory (VmHWM, KiB) of reading back `img` in a child process
/// (this test binary, running `readback_child`), and what it said.
fn read_back_in_a_child(img: &Path, out: &Path) -> (u64, String) {
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "template::readback::tests::readback_child", "--nocapture", "--test-threads=1"])
        .env("GI_READBACK_CHILD", format!("{}\n{}", img.display(), out.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let hwm = text.split("CHILD-VMHWM ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok());
    (hwm.unwrap_or_else(|| panic!("the child said no VmHWM:\n{text}")), text)
}

/// Not a test of its own: the child side of `read_back_in_a_child`.
#[test]
fn readback_child() {
    let Ok(args) = std::env::var("GI_READBACK_CHILD") else { return };
    let (img, out) = args.split_once('\n').unwrap();
    let r = extract(image(Path::new(img)), Path::new(out), Budget::default());
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").to_owned();
    println!("CHILD-RESULT {r:?}");
    println!("CHILD-VMHWM {hwm}");
}

/// A chain of 32 directories of 200,000 names (250 bytes each) each, in a
/// filesystem that claims a million inodes: what waits to be written in every
/// level is bounded together, not level by level, so the read-back fails
/// cleanly well under 256 MiB (it took +404 MiB when each level could
/// hold the whole entry budget).
#[test]
fn a_deep_chain_of_big_directories_stays_within_a_fixed_peak() {
    let d = tempfile::tempdir().unwrap();
    let img = chain_of_names(d.path(), 32, 200_000, 250);
    let out = d.path().join("out");
    let (hwm_kib, said) = read_back_in_a_child(&img, &out);
    eprintln!("BENCH deep chain read-back peak: {} MiB", hwm_kib >> 10);
    assert!(said.contains("CHILD-RESULT Err(OverBudget("), "{said}");
    assert!(said.contains("MiB of names waiting to be written"), "{said}");
    assert!(hwm_kib < 256 << 10, "peak {} MiB", hwm_kib >> 10);
    assert!(!out.exists(), "a refused read-back left its tree");
}

/// One file whose extent tree (64 KiB blocks) has 4 index entries naming
/// one index block of 5,460 entries that all name one leaf of 5,460
/// extents: a tree of 119 million extents in three blocks. Each node is
/// read when it is visited, so the read-back holds one block at a time and
/// fails on the extent bound; reading a node's children before descending
/// held every child block at once (about the filesystem's size).
#[test]
fn a_fanned_out_extent_tree_is_read_one_block_at_a_time() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), vec![0xffu8; 65536]).unwrap();
    fs::write(src.join("idx"), vec![0xffu8; 2 * 65536]).unwrap();
    let img = d.path().join("fan.img");
    mkfs(&src, &img, "2G", &["-b", "65536", "-O", "^metadata_csum"]);
    let (_, data) = blocks_of(&img, "/big");
    let (_, idx) = blocks_of(&img, "/idx");
    let at = inode_at_bs(&img, "/big", 65536);
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    let header = |entries: u16, max: u16, depth: u16| {
        let mut h = Vec::with_capacity(12);
        for v in [0xF30Au16, entries, max, depth, 0, 0] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    };
    let n = 5460u16;
    let mut index = header(n, 5461, 1);
    let mut leaf = header(n, 5461, 0);
    for j in 0..u32::from(n) {
        index.extend_from_slice(&j.to_le_bytes());
        index.extend_from_slice(&(idx[1] as u32).to_le_bytes());
        index.extend_from_slice(&[0u8; 4]);
        leaf.extend_from_slice(&j.to_le_bytes());
        leaf.extend_from_slice(&1u16.to_le_bytes());
        leaf.extend_from_slice(&0u16.to_le_bytes());
        leaf.extend_from_slice(&(data[0] as u32).to_le_bytes());
    }
    f.write_all_at(&index, idx[0] * 65536).unwrap();
    f.write_all_at(&leaf, idx[1] * 65536).unwrap();
    let mut root = header(4, 4, 2);
    for j in 0..4u32 {
        root.extend_from_slice(&j.to_le_bytes());
        root.extend_from_slice(&(idx[0] as u32).to_le_bytes());
        root.extend_from_slice(&[0u8; 4]);
    }
    f.write_all_at(&root, at + 40).unwrap();
    f.write_all_at(&(1u32 << 30).to_le_bytes(), at + 4).unwrap();
    let out = d.path().join("out");
    let (hwm_kib, said) = read_back_in_a_child(&img, &out);
    eprintln!("BENCH fanned-out extent tree read-back peak: {} MiB", hwm_kib >> 10);
    assert!(said.contains("CHILD-RESULT Err(Fs(Corrupt("), "{said}");
    assert!(hwm_kib < 128 << 10, "peak {} MiB", hwm_kib >> 10);
    assert!(!out.exists(), "a refused read-back left its tree");
}
