//! Reads and writes a few files inside an instance's ext4 filesystem
//! (partition 1 of a whole-disk clone, or the whole disk of a clone of a
//! bare-filesystem template: `template::disk::root_filesystem`), never
//! mounting it. The filesystem is the guest's (after its first boot,
//! the guest wrote it): it is read with our own ext4 reader
//! (`template::readback::ext4`, every field checked, every read bounded),
//! never through a link; a file is replaced only if it is a regular file,
//! and every write is read back. The one write is `debugfs -w`, run
//! confined (`exec::run_confined`, `jail`: a root holding only /usr, the
//! disk and our bytes; no capability, no network, a seccomp filter; as
//! `nobody` where the disk's mode allows), as libext2fs parses what the
//! guest wrote too.
//!
//! Paths inside the filesystem are constants of ours; the only other word
//! in a debugfs command is the jail's fixed `/data`, so nothing of a
//! caller's reaches debugfs's command language.

use crate::exec::{self, ExecError};
use crate::jail::Given;
use crate::template::readback::ext4::{self, Fs, FsError, Kind, Limits, Region, ROOT_INODE};
use crate::template::disk;
use crate::template::partition::Partition;
use std::path::Path;
use std::time::Duration;

/// How much of one directory the lookup reads: far above any directory
/// on the way to the files we touch.
const DIR_LIMITS: Limits = Limits { entries: 1 << 20, bytes: 64 << 20, entry_cost: 48 };
/// Extents of a file we read (ours are a few KiB).
const MAX_EXTENTS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum GuestFsError {
    #[error("debugfs failed on {disk}: {source}")]
    Tool { disk: String, source: ExecError },
    #[error("{disk}: {message}")]
    Refused { disk: String, message: String },
    #[error("cannot read the filesystem on {disk}: {source}")]
    Read { disk: String, source: FsError },
}

/// One file's inode: its type (as debugfs names it), permission bits,
/// owner and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

pub struct GuestFs<'a> {
    pub debugfs: &'a Path,
    pub disk: &'a Path,
    pub timeout: Duration,
}

impl GuestFs<'_> {
    fn disk_name(&self) -> String {
        self.disk.display().to_string()
    }

    fn refused(&self, message: impl Into<String>) -> GuestFsError {
        GuestFsError::Refused { disk: self.disk_name(), message: message.into() }
    }

    /// Runs the command file `script` with `-w` on the disk, confined:
    /// debugfs sees the disk, the script and `data` (at `/data`), nothing
    /// else of the host.
    fn debugfs_write(&self, script: &str, data: &[u8]) -> Result<exec::Output, GuestFsError> {
        let root = self.root()?;
        let given = [
            Given::Device { host: self.disk, name: "disk" },
            Given::Data { name: "script", bytes: script.as_bytes() },
            Given::Data { name: "data", bytes: data },
        ];
        // libext2fs's `?offset=` opens the filesystem where the partition starts.
        let fs = match root.start {
            0 => given[0].inside(),
            start => format!("{}?offset={start}", given[0].inside()),
        };
        let args = ["-w".to_owned(), "-f".to_owned(), given[1].inside(), fs];
        exec::run_confined(self.debugfs, &args, &given, self.timeout).map_err(|source| GuestFsError::Tool { disk: self.disk_name(), source })
    }

    fn read_err(&self) -> impl Fn(FsError) -> GuestFsError + '_ {
        move |source| GuestFsError::Read { disk: self.disk_name(), source }
    }

    /// Where the root filesystem is on the disk.
    fn root(&self) -> Result<Partition, GuestFsError> {
        let mut file = std::fs::File::open(self.disk).map_err(|e| self.read_err()(FsError::Io(e)))?;
        disk::root_filesystem(&mut file).map_err(|m| self.refused(format!("disk 0: {m}")))
    }

    /// The filesystem, opened read-only; one whose journal needs replaying
    /// (written to now, it would be damaged) is refused.
    fn open(&self) -> Result<Fs<Region>, GuestFsError> {
        let root = self.root()?;
        let file = std::fs::File::open(self.disk).map_err(|e| self.read_err()(FsError::Io(e)))?;
        match Fs::open(Box::new(Region { file, start: root.start, len: root.len })) {
            Ok(fs) => Ok(fs),
            Err(FsError::Unsupported(what)) if what.contains("journal") => Err(self.refused(
                "the filesystem was not cleanly unmounted (its journal needs replaying): start the instance and shut it down cleanly, then try again",
            )),
            Err(FsError::Corrupt(_)) => Err(self.refused("no ext4 filesystem found on disk 0")),
            Err(e) => Err(self.read_err()(e)),
        }
    }

    /// Refuses a filesystem that is not ext4 or not cleanly unmounted.
    pub fn check_clean(&self) -> Result<(), GuestFsError> {
        self.open().map(drop)
    }

    /// The inode at `path`, or None if there is none. No component of the
    /// path is followed if it is a link.
    pub fn stat(&self, path: &str) -> Result<Option<Inode>, GuestFsError> {
        let fs = self.open()?;
        Ok(self.lookup(&fs, path)?.map(|i| Inode {
            kind: match i.kind {
                Kind::File => "regular",
                Kind::Dir => "directory",
                Kind::Symlink => "symlink",
                Kind::Other => "other",
            }
            .to_owned(),
            mode: i.perm,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
        }))
    }

    fn lookup(&self, fs: &Fs<Region>, path: &str) -> Result<Option<ext4::Inode>, GuestFsError> {
        let mut at = fs.inode(ROOT_INODE).map_err(self.read_err())?;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            match at.kind {
                Kind::Dir => {}
                Kind::Symlink => return Err(self.refused(format!("{path} goes through a symlink"))),
                _ => return Ok(None),
            }
            let entries = fs.dir_entries(&at, MAX_EXTENTS, DIR_LIMITS).map_err(self.read_err())?;
            let Some((_, ino)) = entries.into_iter().find(|(n, _)| n == name.as_bytes()) else { return Ok(None) };
            at = fs.inode(ino).map_err(self.read_err())?;
        }
        Ok(Some(at))
    }

    /// The contents of the regular file at `path` (at most `limit` bytes),
    /// or None if there is no file there.
    pub fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, GuestFsError> {
        let fs = self.open()?;
        let Some(ino) = self.lookup(&fs, path)? else { return Ok(None) };
        if ino.kind != Kind::File {
            return Err(self.refused(format!("{path} is not a regular file")));
        }
        if ino.size > limit {
            return Err(self.refused(format!("{path} is larger than {limit} bytes")));
        }
        let mut data = vec![0u8; ino.size as usize];
        let bs = fs.block_size;
        for e in fs.extents(&ino, MAX_EXTENTS).map_err(self.read_err())? {
            if e.unwritten {
                continue;
            }
            let from = e.logical * bs;
            let to = ((e.logical + e.len) * bs).min(ino.size);
            fs.read_data(e.start, 0, &mut data[from as usize..to as usize]).map_err(self.read_err())?;
        }
        Ok(Some(data))
    }

    /// Replaces (or creates) the regular file `dir/name` with `data`,
    /// owned by root with `mode`, then reads it back. `dir` must be a
    /// directory (made with mode `dir_mode` if missing) and an existing
    /// `dir/name` a regular file.
    pub fn replace(&self, dir: &str, dir_mode: u32, name: &str, data: &[u8], mode: u32) -> Result<(), GuestFsError> {
        let path = format!("{dir}/{name}");
        let mut cmds = String::new();
        match self.stat(dir)? {
            Some(d) if d.kind == "directory" => {}
            Some(_) => return Err(self.refused(format!("{dir} is not a directory"))),
            None => cmds.push_str(&format!("mkdir {dir}\nsif {dir} mode 0{:o}\n", 0o40000 | dir_mode)),
        }
        match self.stat(&path)? {
            Some(f) if f.kind == "regular" => cmds.push_str(&format!("rm {path}\n")),
            Some(_) => return Err(self.refused(format!("{path} is not a regular file"))),
            None => {}
        }
        cmds.push_str(&format!("cd {dir}\nwrite /data {name}\nsif {path} mode 0{:o}\nsif {path} uid 0\nsif {path} gid 0\n", 0o100000 | mode));
        self.debugfs_write(&cmds, data)?;
        // debugfs reports a failed command but still exits 0: read back.
        let ino = self.stat(&path)?.ok_or_else(|| self.refused(format!("{path} was not written")))?;
        if ino.kind != "regular" || ino.mode != mode || ino.uid != 0 || ino.gid != 0 {
            return Err(self.refused(format!("{path} was not written as a root-owned file with mode {mode:o}")));
        }
        if self.read(&path, data.len() as u64)?.as_deref() != Some(data) {
            return Err(self.refused(format!("{path} does not read back as written")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ext4 image made by mke2fs from a tree with a regular file,
    /// a symlink where a file is expected, and a file where a directory is.
    fn image(dir: &Path) -> std::path::PathBuf {
        image_at(dir, None)
    }

    /// The same tree as the root partition of a whole disk (a clone of a
    /// whole-disk template), when `disk_bytes` is given.
    fn image_at(dir: &Path, disk_bytes: Option<u64>) -> std::path::PathBuf {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::create_dir_all(tree.join("var/lib")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "localhost\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", tree.join("etc/hosts")).unwrap();
        std::fs::write(tree.join("var/lib/gi-identity"), "not a directory").unwrap();
        let img = dir.join(if disk_bytes.is_some() { "disk.img" } else { "fs.img" });
        let mut mk = std::process::Command::new("mke2fs");
        mk.args(["-q", "-F", "-t", "ext4"]);
        if let Some(len) = disk_bytes {
            std::fs::File::create(&img).unwrap().set_len(len).unwrap();
            mk.arg("-E").arg(format!("offset={}", disk::PARTITION_START));
        }
        assert!(mk.arg("-d").arg(&tree).arg(&img).arg("8M").status().unwrap().success());
        if let Some(len) = disk_bytes {
            use std::os::unix::fs::FileExt;
            let mbr = disk::mbr(&[0u8; 512], len).unwrap();
            std::fs::OpenOptions::new().write(true).open(&img).unwrap().write_all_at(&mbr, 0).unwrap();
        }
        img
    }

    fn fs_on(img: &Path) -> GuestFs<'_> {
        GuestFs { debugfs: Path::new("/usr/sbin/debugfs"), disk: img, timeout: Duration::from_secs(60) }
    }

    /// On a bare filesystem and on partition 1 of a whole disk, whose
    /// first MiB (its boot code) is left as it was.
    #[test]
    fn files_are_replaced_as_root_owned_regular_files_and_read_back() {
        for whole in [None, Some(9u64 << 20)] {
            let d = tempfile::tempdir().unwrap();
            let img = image_at(d.path(), whole);
            let head = std::fs::read(&img).unwrap()[..disk::PARTITION_START as usize].to_vec();
            let g = fs_on(&img);
            g.check_clean().unwrap();
            assert_eq!(g.read("/etc/hostname", 100).unwrap().unwrap(), b"localhost\n");
            assert_eq!(g.read("/etc/nothing", 100).unwrap(), None);
            g.replace("/etc", 0o755, "hostname", b"web1\n", 0o644).unwrap();
            assert_eq!(g.read("/etc/hostname", 100).unwrap().unwrap(), b"web1\n");
            // A new directory, made with its mode.
            g.replace("/var/lib/seeds", 0o700, "seed", b"secret", 0o600).unwrap();
            let dir = g.stat("/var/lib/seeds").unwrap().unwrap();
            assert_eq!((dir.kind.as_str(), dir.mode), ("directory", 0o700));
            let f = g.stat("/var/lib/seeds/seed").unwrap().unwrap();
            assert_eq!((f.kind.as_str(), f.mode, f.uid, f.gid, f.size), ("regular", 0o600, 0, 0, 6));
            if whole.is_some() {
                assert_eq!(std::fs::read(&img).unwrap()[..disk::PARTITION_START as usize], head[..], "the boot code changed");
                let fs = format!("{}?offset={}", img.display(), disk::PARTITION_START);
                let fsck = std::process::Command::new("e2fsck").arg("-fn").arg(fs).output().unwrap();
                assert!(fsck.status.success(), "{fsck:?}");
            }
        }
    }

    #[test]
    fn links_non_directories_large_files_and_dirty_journals_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let img = image(d.path());
        let g = fs_on(&img);
        // Never written through a link, never read through one.
        assert!(matches!(g.replace("/etc", 0o755, "hosts", b"x", 0o644), Err(GuestFsError::Refused { .. })));
        assert_eq!(g.stat("/etc/hosts").unwrap().unwrap().kind, "symlink");
        assert!(matches!(g.read("/etc/hosts", 100), Err(GuestFsError::Refused { .. })));
        assert!(matches!(g.replace("/var/lib/gi-identity", 0o700, "seed", b"x", 0o600), Err(GuestFsError::Refused { .. })));
        assert!(matches!(g.read("/etc/hostname", 4), Err(GuestFsError::Refused { .. })));
        let st = std::process::Command::new("debugfs").args(["-w", "-R", "feature needs_recovery"]).arg(&img).output().unwrap();
        assert!(st.status.success());
        let e = g.check_clean().unwrap_err().to_string();
        assert!(e.contains("not cleanly unmounted"), "{e}");
        // Not a filesystem at all.
        let junk = d.path().join("junk.img");
        std::fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
        assert!(fs_on(&junk).check_clean().is_err());
    }
}
