//! File primitives for a root process working for remote callers: every
//! write goes to a temporary name in the same directory and is renamed into
//! place, reads never follow a symlink and never read more than asked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An I/O error and the path it happened on. Every error enum that
/// reports file errors carries one in its `Io` variant (`#[from]`), made
/// by [`io_err`]; the enum's message says what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathIo {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl PathIo {
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> Self {
        PathIo { path: path.into(), source }
    }
}

/// `.map_err(io_err(path))?`: the error, with `path`, into whichever
/// enum the function returns.
pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PathIo {
    let path = path.to_path_buf();
    move |source| PathIo { path, source }
}

/// `data` written and synced under a temporary name beside `path`.
fn staged<'a>(path: &'a Path, data: &[u8], mode: u32) -> io::Result<(tempfile::NamedTempFile, &'a Path)> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok((tmp, dir))
}

/// Writes `data` to `path` atomically with `mode`: readers see the old
/// file or the new one, never a torn one, even if we are killed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, dir) = staged(path, data, mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Like `write_atomic`, but fails with `AlreadyExists` instead of
/// replacing an existing file.
pub fn create_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, dir) = staged(path, data, mode)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens a regular file for reading without following a symlink in its
/// last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Reads a whole small file (a registry entry, a state file) without
/// following symlinks, refusing anything larger than `limit`.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = open_nofollow(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

/// [`read_limited`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Creates `dir` (and parents) with `mode` if missing; an existing one must
/// be a real directory, not a symlink.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::other(format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Removes a tree we made read-only.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    fn writable(p: &Path) -> io::Result<()> {
        let m = std::fs::symlink_metadata(p)?;
        if m.is_dir() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
            for e in std::fs::read_dir(p)? {
                writable(&e?.path())?;
            }
        }
        Ok(())
    }
    writable(dir)?;
    std::fs::remove_dir_all(dir)
}

/// Publishes the finished directory `work` as `dest` with one rename
/// that never replaces anything (`AlreadyExists` if `dest` appeared
/// meanwhile), creating `dest`'s parent (mode 0700) if needed. `work`
/// must be on `dest`'s filesystem (made beside it) so that readers see no
/// directory or a whole one; if it cannot be published it is removed.
pub fn publish_dir(work: tempfile::TempDir, dest: &Path) -> Result<(), PathIo> {
    let parent = dest.parent().ok_or_else(|| PathIo::new(dest, io::Error::other("no parent directory")))?;
    ensure_dir(parent, 0o700).map_err(io_err(parent))?;
    let work = work.keep();
    if let Err(e) = nix::fcntl::renameat2(None, &work, None, dest, nix::fcntl::RenameFlags::RENAME_NOREPLACE) {
        let _ = remove_tree(&work);
        return Err(PathIo::new(dest, e.into()));
    }
    sync_dir(parent).map_err(io_err(parent))
}

/// Removes a file if it is there.
pub fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(create_atomic(&p, b"three", 0o600).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "no temporary left behind");
    }

    #[test]
    fn reads_refuse_symlinks_and_oversized_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        std::os::unix::fs::symlink(&p, d.path().join("l")).unwrap();
        assert!(read_limited(&d.path().join("l"), 100).is_err());
        assert!(read_limited(&p, 5).is_err());
        assert_eq!(read_limited(&p, 10).unwrap(), b"0123456789");
    }
}
