//! Files that steer a root process for remote callers (the config, the
//! preseed template) are trusted only if only root can change them, as
//! sudo trusts sudoers: owned by root, not writable by group or others, a
//! regular file that is not a symlink, and not larger than we expect.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The most a trusted file may hold.
pub const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it is a symbolic link; name the file itself")]
    Symlink,
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is owned by uid {0}, not root; only root may be able to change it (chown root)")]
    NotRoot(u32),
    #[error("it is writable by group or others (mode {0:04o}); only root may be able to change it (chmod go-w)")]
    Writable(u32),
    #[error("it is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Reads `path` whole if it is trusted; the checks are made on the file
/// that was opened, so it cannot be swapped in between.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, Untrusted> {
    let f: File = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Untrusted::Symlink),
        Err(e) => return Err(e.into()),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(Untrusted::NotAFile);
    }
    if m.uid() != 0 {
        return Err(Untrusted::NotRoot(m.uid()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Untrusted::Writable(m.mode() & 0o7777));
    }
    if m.len() > limit {
        return Err(Untrusted::TooLarge { limit });
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(Untrusted::TooLarge { limit });
    }
    Ok(buf)
}

/// [`read`] for callers that report an `io::Error`: an untrusted file
/// reads as an error that says why.
pub fn read_io(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read(path, limit).map_err(|e| match e {
        Untrusted::Io(e) => e,
        reason => io::Error::other(format!("not trusted: {reason}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_files_only_root_can_change_are_read() {
        if !nix::unistd::geteuid().is_root() {
            return; // ownership cannot be set up without root
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c");
        std::fs::write(&p, b"x = 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&p, 100).unwrap(), b"x = 1\n");
        for mode in [0o664, 0o646, 0o666] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(matches!(read(&p, 100), Err(Untrusted::Writable(_))), "{mode:o}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read(&p, 3), Err(Untrusted::TooLarge { .. })));
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(read(&p, 100), Err(Untrusted::NotRoot(65534))));
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(read(&l, 100), Err(Untrusted::Symlink)));
        assert!(matches!(read(d.path(), 100), Err(Untrusted::NotAFile)));
    }
}
