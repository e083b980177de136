//! Writing the tree on the host through directory file descriptors: every
//! name is created new (`O_EXCL`, `mkdirat`, `symlinkat`, `linkat` all
//! fail on an existing name) and opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW`, so nothing in the tree, not even
//! a symlink the filesystem put there a moment ago, can send a write
//! elsewhere. Names reach here already checked to be one path component.

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

fn open_beneath(dir: RawFd, name: &CStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    let fd = openat2(dir, name, how(flags).mode(Mode::from_bits_truncate(mode)))?;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates `tree` (it must not exist), private to root until finished.
pub fn create_root(tree: &Path) -> io::Result<OwnedFd> {
    std::fs::create_dir(tree)?;
    std::fs::set_permissions(tree, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tree)?;
    Ok(f.into())
}

use std::os::unix::fs::OpenOptionsExt;

/// A new directory `name` in `dir`, opened.
pub fn mkdir(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700))?;
    open_beneath(dir.as_raw_fd(), name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
}

/// A new, empty regular file `name` in `dir`, open for writing.
pub fn create_file(dir: &OwnedFd, name: &CStr) -> io::Result<File> {
    let fd = open_beneath(dir.as_raw_fd(), name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, 0o600)?;
    Ok(File::from(fd))
}

pub fn symlink(dir: &OwnedFd, name: &CStr, target: &CStr) -> io::Result<()> {
    nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name)?;
    Ok(())
}

/// A hard link `name` in `dir` to `first` (a path relative to `root` that
/// this extraction wrote: real directories only, still refused if any
/// component is a symlink).
pub fn hard_link(root: &OwnedFd, first: &[u8], dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    let (parent, last) = match first.iter().rposition(|b| *b == b'/') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (&b"."[..], first),
    };
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let pdir = open_beneath(root.as_raw_fd(), &cstr(parent)?, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)?;
    nix::unistd::linkat(Some(pdir.as_raw_fd()), cstr(last)?.as_c_str(), Some(dir.as_raw_fd()), name, nix::fcntl::AtFlags::empty())?;
    Ok(())
}

/// Owner, then attributes, then mode: chown clears setuid/setgid and file
/// capabilities, so they must come after it.
pub fn set_meta(fd: &impl AsRawFd, uid: u32, gid: u32, xattrs: &[(CString, Vec<u8>)], perm: u32) -> io::Result<()> {
    nix::unistd::fchown(fd.as_raw_fd(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    for (name, value) in xattrs {
        // SAFETY: a NUL-terminated name and one live slice for the call.
        let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("setting {}: {e}", name.to_string_lossy())));
        }
    }
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(perm & 0o7777))?;
    Ok(())
}

pub fn set_times(fd: &impl AsRawFd, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    nix::sys::stat::futimens(fd.as_raw_fd(), &spec(atime), &spec(mtime))?;
    Ok(())
}

/// Owner and times of the symlink `name` in `dir` (not of its target).
pub fn set_link_meta(dir: &OwnedFd, name: &CStr, uid: u32, gid: u32, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    nix::sys::stat::utimensat(Some(dir.as_raw_fd()), name, &spec(atime), &spec(mtime), UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

fn spec((secs, nsecs): (i64, u32)) -> TimeSpec {
    TimeSpec::new(secs, i64::from(nsecs))
}
