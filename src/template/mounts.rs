//! Mounts in a build's tree: finding and unmounting them, so that clearing
//! what a failed or killed build left behind never reaches the host's.

use super::TemplateError;
use nix::mount::{umount2, MntFlags};
use crate::fsutil;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use crate::fsutil::{io_err, PathIo};

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Unmounts whatever a killed mmdebstrap left mounted in a build tree, so
/// that removing the tree can never reach the host's /dev or /proc. A
/// lazy (detaching) unmount: a busy mount leaves the tree at once.
pub(super) fn unmount_under(dir: &Path) -> Result<(), TemplateError> {
    for m in mounts_under(dir) {
        let _ = umount2(&m, MntFlags::MNT_DETACH);
    }
    if let Some(m) = mounts_under(dir).first() {
        return Err(TemplateError::Io(PathIo::new(m.clone(), io::Error::other("still mounted after unmounting"))));
    }
    Ok(())
}

pub(super) fn clear_leftovers(state_dir: &Path) -> Result<(), TemplateError> {
    for e in fs::read_dir(state_dir).map_err(io_err(state_dir))?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".template-") {
            let p = e.path();
            unmount_under(&p)?;
            fsutil::remove_tree(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}
