//! Reads the installed root filesystem back from the build machine's disk
//! into a directory tree of the host, in-process and without mounting:
//! [`ext4`] parses the filesystem, [`write`] creates every name through
//! directory file descriptors. What the disk holds is the guest's to
//! shape, so it cannot steer a write: every entry name must be one path
//! component (no `/`, NUL or newline), `.` and `..` only as themselves,
//! no name twice in one directory, no directory reached twice (a
//! directory hard link, a loop); and the whole tree has a byte budget and
//! an entry budget. Any of these refuses the filesystem and removes what
//! was written.
//!
//! What is kept: regular files (sparse files stay sparse), directories,
//! symlinks, hard links (as hard links), owners, permission bits with
//! setuid/setgid/sticky, access and modification times, and the extended
//! attributes a system needs: file capabilities (`security.capability`),
//! POSIX ACLs and `user.*`. Other namespaces (`security.selinux`,
//! `trusted.*`, ...) are dropped on purpose: a guest's labels must not land
//! on files of the host. Device nodes, FIFOs and sockets are not copied (an
//! installed root has none outside /dev, a devtmpfs at run time), nor is
//! the root's lost+found (mke2fs makes its own).

pub mod ext4;
mod names;
mod source;
#[cfg(test)]
mod tests;
mod write;
mod xattr;

use ext4::{Extent, Fs, FsError, Inode, Kind, Limits, Source, ROOT_INODE};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use crate::fsutil::{io_err, PathIo};

/// Limits for one read-back. The filesystem's own size and inode count
/// bound them further: an honest filesystem cannot need more.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Bytes of file data (allocated, not apparent: holes are free; but
    /// no file's apparent size may exceed it either).
    pub bytes: u64,
    /// Names written (directories, files, symlinks, hard links).
    pub entries: u64,
    /// How long the whole read-back may take.
    pub time: std::time::Duration,
}

impl Default for Budget {
    /// Far above a Debian install (about 60,000 names, a few GiB, well
    /// under a minute).
    fn default() -> Self {
        Budget { bytes: u64::MAX, entries: 4 << 20, time: std::time::Duration::from_secs(1800) }
    }
}

/// Directory entries read but not yet written are held in memory, in every
/// directory from the root down to the one being filled: their names and
/// slots may take at most this much, however the directories nest (the
/// entry budget alone would let each level of a deep chain hold it all).
const MAX_HELD_BYTES: u64 = 128 << 20;
/// What one held entry costs besides its name: its slot and allocation.
const ENTRY_COST: u64 = 48;

/// Deeper directories are refused (a Debian root is about 15 deep; each
/// level holds one open descriptor).
const MAX_DEPTH: usize = 256;
/// Extent tree nodes and extents per file.
const MAX_EXTENTS: usize = 1 << 20;
/// File data is copied in pieces of at most this many bytes.
const CHUNK: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("refusing the filesystem: {0}")]
    Refused(String),
    #[error("the filesystem holds more than the read-back allows: {0}")]
    OverBudget(String),
    #[error("cannot write the tree at {0}")]
    Io(#[from] PathIo),
}

/// What was written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
}

/// Extracts the filesystem in `src` into `tree` (created; it must not
/// exist). On any error, `tree` is removed.
pub fn extract<S: Source + ?Sized>(src: Box<S>, tree: &Path, cap: Budget) -> Result<Summary, ReadbackError> {
    let len = src.len();
    let fs = Fs::open(src)?;
    let budget = Budget { bytes: cap.bytes.min(len), entries: cap.entries.min(u64::from(fs.inodes_count)), time: cap.time };
    let deadline = std::time::Instant::now() + cap.time;
    let root = write::create_root(tree).map_err(io_err(tree))?;
    let walk = Walk {
        fs: &fs,
        tree,
        budget,
        deadline,
        used: Summary::default(),
        pending: 0,
        held_bytes: 0,
        links: HashMap::new(),
        dirs: HashSet::new(),
    };
    let r = walk.copy_tree(root);
    if r.is_err() {
        let _ = crate::fsutil::remove_tree(tree);
    }
    r
}

struct Frame {
    inode: Inode,
    fd: OwnedFd,
    /// Relative to the tree, "" for its root.
    rel: Vec<u8>,
    entries: std::vec::IntoIter<(Vec<u8>, u32)>,
    /// What its entries were charged against `MAX_HELD_BYTES`.
    held_bytes: u64,
}

struct Walk<'a, S: Source + ?Sized> {
    fs: &'a Fs<S>,
    tree: &'a Path,
    budget: Budget,
    deadline: std::time::Instant,
    used: Summary,
    /// Entries read in the directories on the stack and not yet written.
    pending: u64,
    /// Bytes the frames on the stack hold (see `MAX_HELD_BYTES`).
    held_bytes: u64,
    /// First name written for each multiply-linked inode.
    links: HashMap<u32, Vec<u8>>,
    dirs: HashSet<u32>,
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

impl<S: Source + ?Sized> Walk<'_, S> {
    /// The error for `rel`, made only when there is one (this is called
    /// on every read and write of the walk).
    fn io<'b>(&'b self, rel: &'b [u8]) -> impl FnOnce(io::Error) -> ReadbackError + 'b {
        move |source| ReadbackError::Io(PathIo::new(self.tree.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rel)), source))
    }

    fn copy_tree(mut self, root_fd: OwnedFd) -> Result<Summary, ReadbackError> {
        let root = self.fs.inode(ROOT_INODE)?;
        if root.kind != Kind::Dir {
            return Err(ReadbackError::Refused("the root inode is not a directory".into()));
        }
        let keep = root_fd.try_clone().map_err(self.io(b""))?;
        self.dirs.insert(ROOT_INODE);
        let mut stack = vec![self.frame(root, root_fd, Vec::new(), ROOT_INODE)?];
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { break };
            let Some((name, ino)) = top.entries.next() else {
                let done = stack.pop().expect("the stack is not empty");
                self.held_bytes -= done.held_bytes;
                self.finish(&done.fd, &done.inode, &done.rel)?;
                continue;
            };
            self.pending -= 1;
            self.in_time()?;
            let rel = if top.rel.is_empty() { name.clone() } else { [&top.rel[..], b"/", &name].concat() };
            let child = self.fs.inode(ino)?;
            if top.rel.is_empty() && name == b"lost+found" && child.kind == Kind::Dir {
                continue;
            }
            self.used.entries += 1;
            if self.used.entries > self.budget.entries {
                return Err(ReadbackError::OverBudget(format!("more than {} names", self.budget.entries)));
            }
            let cname = CString::new(name).expect("names with NUL are refused when the directory is read");
            let parent_ino = top.inode.ino;
            let dir = &top.fd;
            match child.kind {
                Kind::Dir => {
                    if !self.dirs.insert(ino) {
                        return Err(ReadbackError::Refused(format!("directory inode {ino} is reached twice (at /{}): a directory hard link or a loop", show(&rel))));
                    }
                    if depth >= MAX_DEPTH {
                        return Err(ReadbackError::Refused(format!("directories nest deeper than {MAX_DEPTH} levels")));
                    }
                    let fd = write::mkdir(dir, &cname).map_err(self.io(&rel))?;
                    let f = self.frame(child, fd, rel, parent_ino)?;
                    stack.push(f);
                }
                Kind::File | Kind::Symlink if self.links.contains_key(&ino) => {
                    write::hard_link(&keep, &self.links[&ino], dir, &cname).map_err(self.io(&rel))?;
                }
                Kind::File => {
                    self.file(dir, &cname, &child, &rel)?;
                    if child.links > 1 {
                        self.links.insert(ino, rel);
                    }
                }
                Kind::Symlink => {
                    let target = self.fs.symlink_target(&child)?;
                    self.charge(target.len() as u64)?;
                    let target = CString::new(target).map_err(|_| ReadbackError::Refused(format!("the symlink /{} holds a NUL", show(&rel))))?;
                    write::symlink(dir, &cname, &target).map_err(self.io(&rel))?;
                    let t = |t: ext4::Time| (t.secs, t.nsecs);
                    write::set_link_meta(dir, &cname, child.uid, child.gid, t(child.atime), t(child.mtime)).map_err(self.io(&rel))?;
                    if child.links > 1 {
                        self.links.insert(ino, rel);
                    }
                }
                Kind::Other => self.used.entries -= 1,
            }
        }
        Ok(self.used)
    }

    /// A directory about to be filled: its entries, checked, and charged
    /// to what the walk may hold (see `MAX_HELD_BYTES`).
    fn frame(&mut self, inode: Inode, fd: OwnedFd, rel: Vec<u8>, parent: u32) -> Result<Frame, ReadbackError> {
        let left = Limits {
            entries: self.budget.entries.saturating_sub(self.used.entries + self.pending) + 2,
            bytes: MAX_HELD_BYTES - self.held_bytes,
            entry_cost: ENTRY_COST,
        };
        let raw = self.fs.dir_entries(&inode, MAX_EXTENTS, left).map_err(|e| match e {
            FsError::TooManyEntries(_) => ReadbackError::OverBudget(format!(
                "directory /{} makes more than {} names, or more than {} MiB of names waiting to be written",
                show(&rel),
                self.budget.entries,
                MAX_HELD_BYTES >> 20
            )),
            e => e.into(),
        })?;
        let entries = check_names(raw, inode.ino, parent).map_err(|m| ReadbackError::Refused(format!("directory /{}: {m}", show(&rel))))?;
        let held_bytes = entries.iter().map(|(n, _)| ENTRY_COST + n.len() as u64).sum();
        self.pending += entries.len() as u64;
        self.held_bytes += held_bytes;
        Ok(Frame { inode, fd, rel, entries: entries.into_iter(), held_bytes })
    }

    fn in_time(&self) -> Result<(), ReadbackError> {
        if std::time::Instant::now() > self.deadline {
            return Err(ReadbackError::OverBudget(format!("the read-back took longer than {} s", self.budget.time.as_secs())));
        }
        Ok(())
    }

    fn charge(&mut self, bytes: u64) -> Result<(), ReadbackError> {
        self.used.bytes = self.used.bytes.saturating_add(bytes);
        if self.used.bytes > self.budget.bytes {
            return Err(ReadbackError::OverBudget(format!("more than {} bytes of file data", self.budget.bytes)));
        }
        Ok(())
    }

    fn file(&mut self, dir: &OwnedFd, name: &CString, inode: &Inode, rel: &[u8]) -> Result<(), ReadbackError> {
        if inode.size > self.budget.bytes {
            return Err(ReadbackError::OverBudget(format!("/{} is {} bytes long", show(rel), inode.size)));
        }
        let bs = self.fs.block_size;
        let extents: Vec<Extent> = self.fs.extents(inode, MAX_EXTENTS)?.into_iter().filter(|e| !e.unwritten).collect();
        self.charge(extents.iter().map(|e| e.len * bs).sum())?;
        let f = write::create_file(dir, name).map_err(self.io(rel))?;
        let mut buf = Vec::new();
        for e in &extents {
            let (from, to) = (e.logical * bs, ((e.logical + e.len) * bs).min(inode.size));
            let mut at = from;
            while at < to {
                self.in_time()?;
                let n = (to - at).min(CHUNK);
                buf.resize(n as usize, 0);
                self.fs.read_data(e.start, at - from, &mut buf)?;
                f.write_all_at(&buf, at).map_err(self.io(rel))?;
                at += n;
            }
        }
        f.set_len(inode.size).map_err(self.io(rel))?;
        self.finish(&f, inode, rel)
    }

    /// Owner, kept attributes, mode and times, once the contents are in.
    fn finish(&self, fd: &impl std::os::fd::AsRawFd, inode: &Inode, rel: &[u8]) -> Result<(), ReadbackError> {
        let mut kept = Vec::new();
        for (index, name, value) in self.fs.xattrs(inode)? {
            if let Some(x) = xattr::kept(index, &name, value).map_err(|m| ReadbackError::Refused(format!("/{}: {m}", show(rel))))? {
                kept.push(x);
            }
        }
        write::set_meta(fd, inode.uid, inode.gid, &kept, inode.perm).map_err(self.io(rel))?;
        let t = |t: ext4::Time| (t.secs, t.nsecs);
        write::set_times(fd, t(inode.atime), t(inode.mtime)).map_err(self.io(rel))
    }
}

/// A directory's entries without `.` and `..`, or why they are refused.
/// (Names are compared in place: a directory of a million names is not
/// copied to be checked.)
fn check_names(mut raw: Vec<(Vec<u8>, u32)>, me: u32, parent: u32) -> Result<Vec<(Vec<u8>, u32)>, String> {
    let (mut dot, mut dotdot) = (false, false);
    {
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(raw.len());
        for (name, ino) in &raw {
            match &name[..] {
                b"." if !dot && *ino == me => dot = true,
                b".." if !dotdot && *ino == parent => dotdot = true,
                b"." | b".." => return Err(format!("an entry {} that is not what the name means (inode {ino})", show(name))),
                n if n.iter().any(|b| matches!(b, b'/' | 0 | b'\n')) => {
                    return Err(format!("an entry name holding '/', NUL or a newline: \"{}\"", show(n)))
                }
                n => {
                    if !seen.insert(n) {
                        return Err(format!("two entries named \"{}\"", show(n)));
                    }
                }
            }
        }
    }
    if !(dot && dotdot) {
        return Err("no \".\" or \"..\" entry".into());
    }
    raw.retain(|(n, _)| n != b"." && n != b"..");
    Ok(raw)
}
