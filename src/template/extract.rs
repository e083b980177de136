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
//! - extended attributes: lost; file capabilities (`security.capability`),
//!   POSIX ACLs and `user.*` attributes are restored here from debugfs'
//!   `ea_list`/`ea_get`; other namespaces (`security.selinux`, `trusted.*`,
//!   ...) are dropped on purpose: a guest's labels must not land on files
//!   of the host, even in our private work directory.
//! - device nodes, FIFOs and sockets: not copied (an installed root has
//!   none outside /dev, which is a devtmpfs at run time).
//!
//! Checked against a loop mount of an mmdebstrap root (12,700 entries):
//! after the repair, modes, owners, sizes, symlink targets, hard-link
//! counts and xattrs are identical; only /dev's device nodes are missing.
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
    let entries = repair(debugfs, image, tree, scratch, limit)?;
    restore_xattrs(debugfs, image, tree, scratch, limit, &entries)
}

/// Runs debugfs on `image` with one command per line of `script` and
/// returns its whole standard output (debugfs echoes each command as
/// `debugfs: COMMAND` before its output).
fn run_script(debugfs: &Path, image: &Path, scratch: &Path, script: &[u8], limit: Duration) -> Result<Vec<u8>, ExtractError> {
    let cmds = scratch.join("debugfs.cmds");
    fs::write(&cmds, script).map_err(io_err(&cmds))?;
    let listing = scratch.join("debugfs.out");
    let file = fs::File::create(&listing).map_err(io_err(&listing))?;
    let out = exec::run_with_stdout(debugfs, &["-f".as_ref(), cmds.as_os_str(), image.as_os_str()], limit, file)
        .map_err(ExtractError::Debugfs)?;
    if let Some(c) = complaints(&out.stderr) {
        return Err(ExtractError::Incomplete(c));
    }
    let bytes = fs::read(&listing).map_err(io_err(&listing))?;
    for p in [&cmds, &listing] {
        fs::remove_file(p).map_err(io_err(p))?;
    }
    Ok(bytes)
}

/// Output is matched to commands by debugfs' echo lines: there must be
/// exactly one per command (a file name holding a newline and "debugfs: "
/// must not shift the rest).
fn check_sections(out: &[u8], commands: usize) -> Result<(), ExtractError> {
    let n = out.split(|b| *b == b'\n').filter(|l| l.starts_with(b"debugfs: ")).count();
    if n == commands {
        Ok(())
    } else {
        Err(ExtractError::Incomplete(format!("debugfs answered {n} commands of {commands}")))
    }
}

/// A debugfs command with one path argument (quoted; see `quotable`).
fn command(cmd: &str, rel: &Path, rest: &str) -> Vec<u8> {
    let mut c = Vec::with_capacity(cmd.len() + rel.as_os_str().len() + rest.len() + 8);
    c.extend_from_slice(cmd.as_bytes());
    c.extend_from_slice(b" \"/");
    c.extend_from_slice(rel.as_os_str().as_bytes());
    c.extend_from_slice(b"\"");
    c.extend_from_slice(rest.as_bytes());
    c.push(b'\n');
    c
}

/// Directories under `tree` (relative, "" for the root), not following
/// symlinks. Refuses a tree with a newline in any name.
fn directories(tree: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![PathBuf::new()];
    let mut i = 0;
    while i < out.len() {
        let rel = out[i].clone();
        for e in fs::read_dir(tree.join(&rel))? {
            let e = e?;
            // debugfs lists one entry a line: a name holding a newline
            // could forge entries (modes, hard links) for its siblings.
            if e.file_name().as_bytes().contains(&b'\n') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a file name in /{} holds a newline; refusing a filesystem that could forge its own listing", rel.display()),
                ));
            }
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
fn repair(debugfs: &Path, image: &Path, tree: &Path, scratch: &Path, limit: Duration) -> Result<Vec<PathBuf>, ExtractError> {
    let dirs: Vec<PathBuf> = directories(tree).map_err(io_err(tree))?.into_iter().filter(|d| quotable(d)).collect();
    let script: Vec<u8> = dirs.iter().flat_map(|d| command("ls -p -r", d, "")).collect();
    let bytes = run_script(debugfs, image, scratch, &script, limit)?;
    check_sections(&bytes, dirs.len())?;
    let mut section: Option<usize> = None;
    let mut first_of: HashMap<u64, PathBuf> = HashMap::new();
    // Every file and directory (once per inode), relative to the tree.
    let mut entries = Vec::new();
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
        let rel = if e.name == b"." { PathBuf::new() } else { dir.join(OsStr::from_bytes(e.name)) };
        let path = tree.join(&rel);
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
        if quotable(&rel) {
            entries.push(rel);
        }
        if m.mode() & 0o7777 != e.mode & 0o7777 {
            fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o7777)).map_err(io_err(&path))?;
        }
    }
    Ok(entries)
}

/// Extended attributes carried over: file capabilities, POSIX ACLs and
/// user attributes. Anything else (SELinux labels, `trusted.*`) is not
/// ours to put on a file of the host.
fn kept_xattr(name: &str) -> bool {
    matches!(name, "security.capability" | "system.posix_acl_access" | "system.posix_acl_default")
        || (name.starts_with("user.") && name.len() > 5)
}

/// An attribute name from an `ea_list` line: `  NAME (LEN) = VALUE`.
fn xattr_name(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line.strip_prefix(b"  ")?).ok()?;
    let (name, rest) = line.split_once(" (")?;
    let (len, _) = rest.split_once(") = ")?;
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && len.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(name)
}

/// Longest attribute value we copy (a capability is 20 bytes, an ACL a
/// few hundred).
const MAX_XATTR_BYTES: u64 = 64 * 1024;

/// Lists the attributes of every entry, fetches the kept ones as raw
/// bytes (`ea_get -f`) and sets them on the tree's files.
fn restore_xattrs(debugfs: &Path, image: &Path, tree: &Path, scratch: &Path, limit: Duration, entries: &[PathBuf]) -> Result<(), ExtractError> {
    let script: Vec<u8> = entries.iter().flat_map(|e| command("ea_list", e, "")).collect();
    let bytes = run_script(debugfs, image, scratch, &script, limit)?;
    check_sections(&bytes, entries.len())?;
    let mut wanted: Vec<(&PathBuf, String)> = Vec::new();
    let mut section: Option<usize> = None;
    for line in bytes.split(|b| *b == b'\n') {
        if line.starts_with(b"debugfs: ") {
            section = Some(section.map_or(0, |s| s + 1));
            continue;
        }
        let (Some(rel), Some(name)) = (section.and_then(|s| entries.get(s)), xattr_name(line)) else { continue };
        if kept_xattr(name) {
            wanted.push((rel, name.to_owned()));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let values = scratch.join("xattrs");
    fs::create_dir(&values).map_err(io_err(&values))?;
    let script: Vec<u8> = wanted
        .iter()
        .enumerate()
        // The value files' paths are ours (no blanks); names are checked.
        .flat_map(|(i, (rel, name))| command(&format!("ea_get -f {}", values.join(i.to_string()).display()), rel, &format!(" {name}")))
        .collect();
    run_script(debugfs, image, scratch, &script, limit)?;
    for (i, (rel, name)) in wanted.iter().enumerate() {
        let v = values.join(i.to_string());
        let value = crate::fsutil::read_limited(&v, MAX_XATTR_BYTES).map_err(io_err(&v))?;
        let path = tree.join(rel);
        set_xattr(&path, name, &value).map_err(io_err(&path))?;
    }
    crate::fsutil::remove_tree(&values).map_err(io_err(&values))
}

/// `lsetxattr(2)`: never through a symlink.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::ffi::CString;
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"))?;
    let n = CString::new(name).map_err(|_| io::Error::other("NUL in attribute name"))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the
    // value pointer and length describe one live slice.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_newline_is_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        assert!(directories(d.path()).is_ok());
        fs::write(d.path().join("etc/x\nfake"), b"").unwrap();
        let e = directories(d.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

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
        assert_eq!(xattr_name(b"  security.capability (20) = 01 00 00 02 "), Some("security.capability"));
        assert_eq!(xattr_name(b"  user.foo (3) = \"bar\""), Some("user.foo"));
        assert_eq!(xattr_name(b"Extended attributes:"), None);
        assert_eq!(xattr_name(b"  evil name (3) = x"), None);
        assert!(kept_xattr("security.capability") && kept_xattr("user.x"));
        assert!(!kept_xattr("security.selinux") && !kept_xattr("trusted.overlay.opaque") && !kept_xattr("user."));
        assert!(complaints("debugfs 1.47.0 (5-Feb-2023)\nrdump: File not found by ext2_lookup while ...\n").is_some());
    }
}
