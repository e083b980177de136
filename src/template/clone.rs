//! Puts a template's root filesystem onto a machine's own volume, the way
//! the volume allows:
//!
//! - a file volume named `*.qcow2`: a qcow2 overlay backed by the
//!   template's `root.img` replaces the file (copy-on-write; costs the
//!   same whatever the template's size; the template must outlive it);
//! - any other file on the template's own filesystem, where that
//!   filesystem shares extents (XFS with reflink, btrfs): a reflink
//!   (`FICLONE`): the volume shares the template's blocks copy-on-write,
//!   costs the same whatever the template's size, and owes the template
//!   nothing (removing the template leaves it whole);
//! - any other file, or a block device: a sparse copy: the template's data
//!   extents are copied and its holes punched (files) or zeroed with
//!   `BLKZEROOUT` (devices, cheap on thin volumes), so the clone owes the
//!   template nothing afterwards.
//!
//! LVM snapshots (`lvcreate -s`) would need the template to be a logical
//! volume in the machine's volume group; that is not built (there is no
//! device-mapper on the machines this was written on).

use crate::blocks;
use crate::media::qcow2;
use crate::types::{DiskFormat, DiskPath};
use crate::volume::{self, VolumeError};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use crate::fsutil::{io_err, PathIo};

/// How a clone was put onto its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Overlay,
    /// Chosen for any raw volume; a file volume may end up a [`Method::Reflink`].
    SparseCopy,
    Reflink,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Overlay => "qcow2-overlay",
            Method::SparseCopy => "sparse-copy",
            Method::Reflink => "reflink",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error("the volume {0} does not exist; ask an admin to create it")]
    Missing(DiskPath),
    #[error("the volume {0} is not a block device or a regular file; ask an admin")]
    NotAVolume(DiskPath),
    #[error("the volume {0} is a symbolic link to a file; register the file itself")]
    Symlink(DiskPath),
    #[error("the volume {disk} holds {have} bytes, less than the template's {need}; ask an admin to grow it")]
    TooSmall { disk: DiskPath, have: u64, need: u64 },
    #[error("the volume {0} is in use (mounted or open by another program)")]
    InUse(DiskPath),
    #[error("cannot read {0}")]
    Io(#[from] PathIo),
    /// The volume may hold part of a clone.
    #[error("cannot write the clone onto {0}")]
    Write(PathIo),
}

impl CloneError {
    /// True if the volume was written to before the error.
    pub fn touched_volume(&self) -> bool {
        matches!(self, CloneError::Write(_))
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> CloneError {
    let f = io_err(path);
    move |source| CloneError::Write(f(source))
}

/// Leftovers of an overlay write killed mid-way start with this, beside
/// the volume (`.NAME.gi-clone-XXXXXX`).
fn temp_prefix(volume: &Path) -> String {
    format!(".{}.gi-clone-", volume.file_name().unwrap_or_default().to_string_lossy())
}

/// The way `disk` takes a clone.
pub fn method(disk: &DiskPath) -> Result<Method, CloneError> {
    let p = Path::new(disk.as_str());
    let kind = volume::kind(disk).map_err(|e| match e {
        VolumeError::Missing(_) => CloneError::Missing(disk.clone()),
        _ => CloneError::NotAVolume(disk.clone()),
    })?;
    // A file volume is written through its own name only: the overlay is
    // renamed onto the path (which would replace a symlink, not its
    // target), and a copy must not follow a link someone put in its
    // place. Block devices are reached through links (/dev/VG/LV).
    if kind != volume::Kind::BlockDevice && fs::symlink_metadata(p).map_err(io_err(p))?.file_type().is_symlink() {
        return Err(CloneError::Symlink(disk.clone()));
    }
    Ok(match kind {
        volume::Kind::Qcow2File => Method::Overlay,
        volume::Kind::RawFile | volume::Kind::BlockDevice => Method::SparseCopy,
    })
}

/// Checks, without writing anything, that `disk` can take a clone of the
/// template image `root`.
pub fn check(root: &Path, disk: &DiskPath) -> Result<Method, CloneError> {
    let m = method(disk)?;
    if m == Method::SparseCopy {
        let need = fs::metadata(root).map_err(io_err(root))?.len();
        let p = Path::new(disk.as_str());
        // Opened as for the copy (O_EXCL on a device): a mounted volume is
        // refused here, before anything is written.
        let have = blocks::len(&open_volume(disk)?).map_err(io_err(p))?;
        if have < need {
            return Err(CloneError::TooSmall { disk: disk.clone(), have, need });
        }
    }
    Ok(m)
}

/// Clones the template image `root` onto `disk`. If the error says it
/// `touched_volume`, the volume may hold part of a clone and the caller
/// wipes it (see `wipe`); otherwise nothing was written.
pub fn clone_onto(root: &Path, disk: &DiskPath) -> Result<Method, CloneError> {
    let m = check(root, disk)?;
    let volume = Path::new(disk.as_str());
    let mut base = File::open(root).map_err(io_err(root))?;
    let len = base.metadata().map_err(io_err(root))?.len();
    match m {
        Method::Overlay => write_overlay(volume, &mut base, len, overlay_size(volume, len), root, &[])?,
        Method::SparseCopy | Method::Reflink => {
            let dst = open_volume(disk)?;
            let have = blocks::len(&dst).map_err(io_err(volume))?;
            if have < len {
                return Err(CloneError::TooSmall { disk: disk.clone(), have, need: len });
            }
            if reflink(&base, &dst) {
                dst.sync_all().map_err(write_err(volume))?;
                return Ok(Method::Reflink);
            }
            blocks::copy_sparse(&base, len, &dst).map_err(write_err(volume))?;
            dst.sync_all().map_err(write_err(volume))?;
        }
    }
    Ok(m)
}

/// Makes the start of the file `dst` share the whole of `src`'s blocks
/// (FICLONE); the rest of a larger volume is left as it was, as a copy
/// leaves it. False where the filesystem cannot (another filesystem, no
/// reflink support, a block device, a template whose size is not a whole
/// number of blocks below a larger volume's end): nothing was changed
/// then, and the caller copies.
fn reflink(src: &File, dst: &File) -> bool {
    use std::os::fd::AsRawFd;
    if dst.metadata().map(|m| !m.is_file()).unwrap_or(true) {
        return false;
    }
    // SAFETY: FICLONE takes the source descriptor as its argument.
    unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) == 0 }
}

/// Makes a half-made clone unusable: the first 2 MiB of the volume, where
/// the partition table, the boot code and the root filesystem's
/// superblock and the start of its metadata live, read as zeros
/// afterwards, so it neither mounts nor boots. For an overlay this needs
/// the template it was made from (`root`).
pub fn wipe(disk: &DiskPath, root: Option<&Path>) -> Result<(), CloneError> {
    const WIPE: usize = 2 << 20;
    let volume = Path::new(disk.as_str());
    match method(disk) {
        Err(CloneError::Missing(_)) => Ok(()),
        Err(e) => Err(e),
        Ok(Method::Overlay) => match root {
            Some(root) => {
                let mut base = File::open(root).map_err(io_err(root))?;
                let len = base.metadata().map_err(io_err(root))?.len();
                let zeros = vec![0u8; WIPE.min(len as usize)];
                write_overlay(volume, &mut base, len, overlay_size(volume, len), root, &[(0, &zeros)])
            }
            // No template to lay zeros over: an empty file is no disk.
            None => write_replacing(volume, |_| Ok(())),
        },
        Ok(Method::SparseCopy | Method::Reflink) => {
            // A punched hole (files) or BLKZEROOUT (devices): it needs no
            // free space, so a clone that failed on a full filesystem can
            // still be wiped.
            let dst = open_volume(disk)?;
            let n = blocks::len(&dst).map_err(io_err(volume))?.min(WIPE as u64);
            blocks::zero(&dst, 0, n).map_err(write_err(volume))?;
            dst.sync_all().map_err(write_err(volume))
        }
    }
}

/// Removes what a clone killed while writing an overlay left beside its
/// volume.
pub fn remove_overlay_temporaries(disk: &DiskPath) -> Result<(), CloneError> {
    let volume = Path::new(disk.as_str());
    let Some(dir) = volume.parent() else { return Ok(()) };
    if disk.format() != DiskFormat::Qcow2 {
        return Ok(());
    }
    crate::lock::remove_temporaries(dir, &[&temp_prefix(volume)]).map_err(io_err(dir))?;
    Ok(())
}

/// Opens a volume for writing in place. A block device is opened with
/// O_EXCL, which the kernel refuses while it is mounted or claimed; a file
/// with O_NOFOLLOW.
fn open_volume(disk: &DiskPath) -> Result<File, CloneError> {
    let p = Path::new(disk.as_str());
    let is_dev = fs::metadata(p).map_err(io_err(p))?.file_type().is_block_device();
    let mut o = OpenOptions::new();
    o.write(true);
    o.custom_flags(if is_dev { libc::O_EXCL } else { libc::O_NOFOLLOW });
    o.open(p).map_err(|e| if e.raw_os_error() == Some(libc::EBUSY) { CloneError::InUse(disk.clone()) } else { CloneError::Io(PathIo::new(p, e)) })
}

/// The size of an overlay replacing `volume`: the size the admin gave it
/// if it is a qcow2 image (the guest grows its root filesystem into it at
/// first boot), never less than the template's `len`.
fn overlay_size(volume: &Path, len: u64) -> u64 {
    File::open(volume).ok().and_then(|f| qcow2::virtual_size(&f)).unwrap_or(0).max(len)
}

/// Writes the overlay to a temporary beside `volume` and renames it over
/// the volume, keeping the volume's owner and mode.
fn write_overlay(volume: &Path, base: &mut File, len: u64, size: u64, root: &Path, writes: &[(u64, &[u8])]) -> Result<(), CloneError> {
    write_replacing(volume, |out| qcow2::write_overlay_sized(out, base, len, size, root, writes))
}

fn write_replacing(volume: &Path, fill: impl FnOnce(&File) -> io::Result<()>) -> Result<(), CloneError> {
    let dir = volume.parent().ok_or_else(|| CloneError::Io(PathIo::new(volume, io::Error::other("no parent directory"))))?;
    let old = fs::symlink_metadata(volume).map_err(io_err(volume))?;
    let tmp = tempfile::Builder::new().prefix(&temp_prefix(volume)).tempfile_in(dir).map_err(io_err(dir))?;
    fill(tmp.as_file()).map_err(io_err(volume))?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777)).map_err(io_err(volume))?;
    std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid())).map_err(io_err(volume))?;
    tmp.as_file().sync_all().map_err(io_err(volume))?;
    tmp.persist(volume).map_err(|e| CloneError::Io(PathIo::new(volume, e.error)))?;
    crate::fsutil::sync_dir(dir).map_err(write_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::os::unix::fs::FileExt;

    fn sparse_source(dir: &Path) -> PathBuf {
        let p = dir.join("root.img");
        let f = File::create(&p).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(&[0xaa; 4096], 0).unwrap();
        f.write_all_at(&[0xbb; 8192], 5 << 20).unwrap();
        p
    }

    #[test]
    fn sparse_copy_reproduces_data_and_zeroes_holes() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse_source(d.path());
        let vol = d.path().join("vm.img");
        // The volume held something before: holes must read as zeros after.
        fs::write(&vol, vec![0x55u8; 12 << 20]).unwrap();
        let disk = DiskPath::parse(vol.to_str().unwrap()).unwrap();
        assert_eq!(clone_onto(&src, &disk).unwrap(), Method::SparseCopy);
        let got = fs::read(&vol).unwrap();
        let want = fs::read(&src).unwrap();
        assert_eq!(&got[..want.len()], &want[..]);
        // Beyond the template's size the volume is left alone.
        assert!(got[want.len()..].iter().all(|b| *b == 0x55));
        wipe(&disk, None).unwrap();
        assert!(fs::read(&vol).unwrap()[..1 << 20].iter().all(|b| *b == 0));
    }

    #[test]
    fn refuses_a_volume_smaller_than_the_template() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse_source(d.path());
        let vol = d.path().join("vm.img");
        fs::write(&vol, vec![0x55u8; 1 << 20]).unwrap();
        let disk = DiskPath::parse(vol.to_str().unwrap()).unwrap();
        assert!(matches!(clone_onto(&src, &disk), Err(CloneError::TooSmall { .. })));
        assert!(fs::read(&vol).unwrap().iter().all(|b| *b == 0x55), "a refused clone wrote to the volume");
    }

    #[test]
    fn qcow2_volume_gets_an_overlay_with_its_mode() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse_source(d.path());
        let vol = d.path().join("vm.qcow2");
        fs::write(&vol, b"").unwrap();
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o640)).unwrap();
        let disk = DiskPath::parse(vol.to_str().unwrap()).unwrap();
        assert_eq!(clone_onto(&src, &disk).unwrap(), Method::Overlay);
        let head = fs::read(&vol).unwrap();
        assert_eq!(&head[..4], b"QFI\xfb");
        assert_eq!(fs::metadata(&vol).unwrap().mode() & 0o777, 0o640);
        for name in ["link.qcow2", "link.img"] {
            let link = d.path().join(name);
            std::os::unix::fs::symlink(&vol, &link).unwrap();
            let disk = DiskPath::parse(link.to_str().unwrap()).unwrap();
            assert!(matches!(clone_onto(&src, &disk), Err(CloneError::Symlink(_))), "{name}");
        }
        let missing = DiskPath::parse(d.path().join("nope.img").to_str().unwrap()).unwrap();
        assert!(matches!(clone_onto(&src, &missing), Err(CloneError::Missing(_))));
    }
}
