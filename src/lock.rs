//! One lock per machine (and per image being imported): a second request
//! gets `busy` at once instead of waiting. The kernel drops the lock when
//! the process dies, so a killed request never leaves it held.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another request holds the lock")]
    Held,
    #[error("cannot open lock file {path}: {source}")]
    Io { path: String, source: io::Error },
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
        .map_err(|source| LockError::Io { path: path.display().to_string(), source })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Lock(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held),
        Err((_, e)) => Err(LockError::Io { path: path.display().to_string(), source: e.into() }),
    }
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
}
