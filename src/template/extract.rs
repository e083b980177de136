//! Copies the files of an ext4 image into a directory tree without
//! mounting it: e2fsprogs' `debugfs -R 'rdump / TREE'`, then a repair pass
//! from debugfs' own listing of every directory.
//!
//! What rdump keeps (checked with debugfs 1.47.0, as root): regular files
//! and their contents, directories, symlinks, owners and groups, permission
//! bits, file access and modification times. What it loses, and what we do:
//! - setuid/setgid bits of files: rdump sets the mode before the owner, and
//!   the kernel clears those bits on chown; restored here from the listing.
//! - hard links: each name becomes its own copy; re-linked here by inode.
//! - extended attributes (file capabilities such as `security.capability`,
//!   ACLs, SELinux labels): lost; not restored (Debian's minimal installs
//!   rely on none of them; a package that sets capabilities in its
//!   postinst loses them in the template).
//! - device nodes, FIFOs and sockets: not copied (an installed root has
//!   none outside /dev, which is a devtmpfs at run time).
//! - directory modification times: not kept.

use crate::exec::{self, ExecError};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("debugfs failed: {0}")]
    Debugfs(ExecError),
    #[error("debugfs could not copy every file out: {0}")]
    Incomplete(String),
    #[error("cannot write the tree at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExtractError {
    let path = path.to_path_buf();
    move |source| ExtractError::Io { path, source }
}

/// debugfs prints its version banner on stderr; anything else there is a
/// complaint (a file it could not read or write).
fn complaints(stderr: &str) -> Option<String> {
    let rest: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs ")).collect();
    (!rest.is_empty()).then(|| rest.iter().take(3).copied().collect::<Vec<_>>().join(" / "))
}

/// Extracts the whole filesystem in `image` into `tree` (created, empty),
/// using `scratch` for debugfs' command and listing files.
pub fn extract(debugfs: &Path, image: &Path, tree: &Path, scratch: &Path, limit: Duration) -> Result<(), ExtractError> {
    fs::create_dir(tree).map_err(io_err(tree))?;
    let cmd = format!("rdump / {}", tree.display());
    let out = exec::run(debugfs, &["-R".as_ref(), OsStr::new(&cmd), image.as_os_str()], limit).map_err(ExtractError::Debugfs)?;
    if let Some(c) = complaints(&out.stderr) {
        return Err(ExtractError::Incomplete(c));
    }
    // mke2fs makes its own; the installed one may hold fsck's findings.
    let lf = tree.join("lost+found");
    if fs::symlink_metadata(&lf).is_ok() {
        crate::fsutil::remove_tree(&lf).map_err(io_err(&lf))?;
    }
    repair(debugfs, image, tree, scratch, limit)
}

/// Directories under `tree` (relative, "" for the root), not following
/// symlinks.
fn directories(tree: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![PathBuf::new()];
    let mut i = 0;
    while i < out.len() {
        let rel = out[i].clone();
        for e in fs::read_dir(tree.join(&rel))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                out.push(rel.join(e.file_name()));
            }
        }
        i += 1;
    }
    Ok(out)
}

/// A path debugfs' argument parser takes as one word inside double quotes.
fn quotable(rel: &Path) -> bool {
    !rel.as_os_str().as_bytes().iter().any(|b| matches!(b, b'"' | b'\\' | b'\n' | b'\r'))
}

/// One line of `ls -p -r`: `/INODE/MODE/UID/GID/NAME/SIZE/`.
struct Entry<'a> {
    inode: u64,
    mode: u32,
    name: &'a [u8],
}

fn parse_entry(line: &[u8]) -> Option<Entry<'_>> {
    let f: Vec<&[u8]> = line.split(|b| *b == b'/').collect();
    let [empty, ino, mode, _uid, _gid, name, _size, end] = f.as_slice() else { return None };
    if !empty.is_empty() || !end.is_empty() || name.is_empty() || *name == b".." {
        return None;
    }
    let inode = std::str::from_utf8(ino).ok()?.parse().ok()?;
    let mode = u32::from_str_radix(std::str::from_utf8(mode).ok()?, 8).ok()?;
    Some(Entry { inode, mode, name })
}

/// Puts back what rdump loses and the listing knows: setuid/setgid (and
/// any other mode difference) and hard links.
fn repair(debugfs: &Path, image: &Path, tree: &Path, scratch: &Path, limit: Duration) -> Result<(), ExtractError> {
    let dirs: Vec<PathBuf> = directories(tree).map_err(io_err(tree))?.into_iter().filter(|d| quotable(d)).collect();
    let cmds = scratch.join("listing.cmds");
    let mut text = Vec::new();
    for d in &dirs {
        text.extend_from_slice(b"ls -p -r \"/");
        text.extend_from_slice(d.as_os_str().as_bytes());
        text.extend_from_slice(b"\"\n");
    }
    fs::write(&cmds, &text).map_err(io_err(&cmds))?;
    let listing = scratch.join("listing.txt");
    let file = fs::File::create(&listing).map_err(io_err(&listing))?;
    let out = exec::run_with_stdout(debugfs, &["-f".as_ref(), cmds.as_os_str(), image.as_os_str()], limit, file)
        .map_err(ExtractError::Debugfs)?;
    if let Some(c) = complaints(&out.stderr) {
        return Err(ExtractError::Incomplete(c));
    }
    let bytes = fs::read(&listing).map_err(io_err(&listing))?;
    let mut section: Option<usize> = None;
    let mut first_of: HashMap<u64, PathBuf> = HashMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        // debugfs echoes each command before its output.
        if line.starts_with(b"debugfs: ") {
            section = Some(section.map_or(0, |s| s + 1));
            continue;
        }
        let Some(dir) = section.and_then(|s| dirs.get(s)) else { continue };
        let Some(e) = parse_entry(line) else { continue };
        // "." only for the root itself (each directory's own mode comes
        // from its parent's listing).
        if e.name == b"." && !dir.as_os_str().is_empty() {
            continue;
        }
        let path = if e.name == b"." { tree.to_path_buf() } else { tree.join(dir).join(OsStr::from_bytes(e.name)) };
        let Ok(m) = fs::symlink_metadata(&path) else { continue };
        let is_file = m.file_type().is_file();
        if !(is_file || m.file_type().is_dir()) {
            continue;
        }
        if is_file {
            if let Some(first) = first_of.get(&e.inode) {
                fs::remove_file(&path).map_err(io_err(&path))?;
                fs::hard_link(first, &path).map_err(io_err(&path))?;
                continue;
            }
            first_of.insert(e.inode, path.clone());
        }
        if m.mode() & 0o7777 != e.mode & 0o7777 {
            fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o7777)).map_err(io_err(&path))?;
        }
    }
    for p in [&cmds, &listing] {
        fs::remove_file(p).map_err(io_err(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines() {
        let e = parse_entry(b"/21/104755/0/0/ping/2/").unwrap();
        assert_eq!((e.inode, e.mode, e.name), (21, 0o104755, &b"ping"[..]));
        assert_eq!(parse_entry(b"/20/040755/0/0/.//").unwrap().name, b".");
        assert!(parse_entry(b"/2/040755/0/0/..//").is_none());
        assert!(parse_entry(b"debugfs: ls -p -r \"/\"").is_none());
        assert!(parse_entry(b"").is_none());
        assert!(parse_entry(b"/x/100644/0/0/a/1/").is_none());
        assert!(complaints("debugfs 1.47.0 (5-Feb-2023)\n").is_none());
        assert!(complaints("debugfs 1.47.0 (5-Feb-2023)\nrdump: File not found by ext2_lookup while ...\n").is_some());
    }
}
