//! The state dir holds the registry, images and per-VM media of a root
//! process working for remote callers. Like sudo refusing an insecure
//! sudoers file, we refuse to run on a state dir someone else could change
//! under us.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnsafeStateDir {
    #[error("state directory {0} is unsafe: {1}; fix it (root-owned, not group- or world-writable, no symlinks) before using guest-installer")]
    Unsafe(PathBuf, &'static str),
    #[error("cannot inspect state directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

const SUBDIRS: &[&str] = &["images", "machines", "vms", "locks"];

/// Checks the state dir, its ancestors and its top-level directories.
/// Ancestors may be world-writable only with the sticky bit (as /tmp is),
/// where nobody else can rename or remove what is ours.
pub fn check(state_dir: &Path) -> Result<(), UnsafeStateDir> {
    let me = nix::unistd::geteuid().as_raw();
    let inspect = |p: &Path| fs::symlink_metadata(p).map_err(|e| UnsafeStateDir::Io(p.into(), e));
    let m = inspect(state_dir)?;
    own_dir(state_dir, &m, me)?;
    for sub in SUBDIRS {
        let p = state_dir.join(sub);
        match fs::symlink_metadata(&p) {
            Ok(m) => own_dir(&p, &m, me)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(UnsafeStateDir::Io(p, e)),
        }
    }
    for a in state_dir.ancestors().skip(1) {
        let m = inspect(a)?;
        if m.file_type().is_symlink() {
            return Err(UnsafeStateDir::Unsafe(a.into(), "a parent directory is a symlink"));
        }
        if m.uid() != 0 && m.uid() != me {
            return Err(UnsafeStateDir::Unsafe(a.into(), "a parent directory is owned by another user"));
        }
        if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
            return Err(UnsafeStateDir::Unsafe(a.into(), "a parent directory is group- or world-writable without the sticky bit"));
        }
    }
    Ok(())
}

fn own_dir(p: &Path, m: &fs::Metadata, me: u32) -> Result<(), UnsafeStateDir> {
    if m.file_type().is_symlink() {
        return Err(UnsafeStateDir::Unsafe(p.into(), "it is a symlink"));
    }
    if !m.is_dir() {
        return Err(UnsafeStateDir::Unsafe(p.into(), "it is not a directory"));
    }
    if m.uid() != me {
        return Err(UnsafeStateDir::Unsafe(p.into(), "it is owned by another user"));
    }
    if m.mode() & 0o022 != 0 {
        return Err(UnsafeStateDir::Unsafe(p.into(), "it is group- or world-writable"));
    }
    Ok(())
}
