//! One lock per machine (and per image being imported): a second request
//! gets `busy` at once instead of waiting. The kernel drops the lock when
//! the process dies, so a killed request never leaves it held.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use crate::fsutil::{io_err, PathIo};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another request holds the lock")]
    Held,
    #[error("cannot open lock file {0}")]
    Io(#[from] PathIo),
}

/// Held until dropped.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] Flock<File>);

pub fn try_lock(path: &Path) -> Result<Lock, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path))?;
    lock_now(file, path)
}

fn lock_now(file: File, path: &Path) -> Result<Lock, LockError> {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Lock(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held),
        Err((_, e)) => Err(LockError::Io(PathIo::new(path, e.into()))),
    }
}

/// Locks a directory itself (flock works on directory descriptors), so
/// that taking the lock creates no file: imports lock the state dir.
pub fn try_lock_dir(dir: &Path) -> Result<Lock, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(io_err(dir))?;
    lock_now(file, dir)
}

/// Like [`try_lock_dir`] (`dir` made, root's alone, if missing), but
/// waits up to `wait` for a holder that is quick: `Held` only after that.
pub fn lock_dir_within(dir: &Path, wait: Duration) -> Result<Lock, LockError> {
    crate::fsutil::ensure_dir(dir, 0o700).map_err(io_err(dir))?;
    retry_within(wait, || try_lock_dir(dir))
}

/// Like [`try_lock`], waiting up to `wait`.
pub fn lock_within(path: &Path, wait: Duration) -> Result<Lock, LockError> {
    retry_within(wait, || try_lock(path))
}

fn retry_within(wait: Duration, mut attempt: impl FnMut() -> Result<Lock, LockError>) -> Result<Lock, LockError> {
    let until = Instant::now() + wait;
    loop {
        match attempt() {
            Err(LockError::Held) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            r => return r,
        }
    }
}

/// Removes what a killed request left in `dir`: hidden temporary files
/// and directories whose names start with one of `prefixes`. Call it only
/// while holding the lock that covers `dir`. One that goes away meanwhile
/// (renamed into place by whoever made it) is no error.
pub fn remove_temporaries(dir: &Path, prefixes: &[&str]) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let p = e.path();
        let removed = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => crate::fsutil::remove_tree(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) => Err(e),
        };
        match removed {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vm1.lock");
        let l = try_lock(&p).unwrap();
        assert!(matches!(try_lock(&p), Err(LockError::Held)));
        drop(l);
        assert!(try_lock(&p).is_ok());
    }

    #[test]
    fn only_temporaries_with_the_prefixes_go_and_a_missing_one_is_no_error() {
        let d = tempfile::tempdir().unwrap();
        for f in [".tmp-a", ".qemu-console-b", "state.json"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(d.path().join(".build-c")).unwrap();
        std::fs::write(d.path().join(".build-c/f"), "x").unwrap();
        remove_temporaries(d.path(), &[".build-", ".tmp-"]).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [".qemu-console-b", "state.json"]);
        // A dangling symlink whose target went: removing it is fine; and a
        // directory gone altogether is nothing to clear.
        std::os::unix::fs::symlink(d.path().join("gone"), d.path().join(".tmp-link")).unwrap();
        remove_temporaries(d.path(), &[".tmp-"]).unwrap();
        assert!(std::fs::symlink_metadata(d.path().join(".tmp-link")).is_err());
        remove_temporaries(&d.path().join("nope"), &[".tmp-"]).unwrap();
    }
}
