//! Machines' volumes: what a name for a disk really names (paths are
//! compared by identity, never as strings: `/dev/vg/lv`, `/dev/dm-3` and
//! a symlink to either are one disk), where a volume may not be (inside
//! the state dir, which holds templates' images and per-VM media), and
//! the one function that makes a volume file.

pub mod pool;

use crate::exec::ExecError;
use crate::types::{DiskFormat, DiskPath, VmName};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use crate::fsutil::{io_err, PathIo};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid disk: {0} does not exist")]
    Missing(DiskPath),
    #[error("invalid disk: {0} is not a block device or a regular file")]
    NotAVolume(DiskPath),
    #[error("invalid disk: {0} lies inside the state directory {1} (templates, images and media live there)")]
    UnderStateDir(DiskPath, PathBuf),
    #[error("invalid disk: {0} is a file with more than one hard link; give a file with a single name")]
    HardLinked(DiskPath),
    #[error("invalid size: no volume pool is configured on this host ([volumes] in the config); ask its admin")]
    NoPool,
    #[error("a volume for {vm} already exists in the pool at {path}; remove it, or import it as root with disk=")]
    Exists { vm: VmName, path: DiskPath },
    #[error("machine {0}'s volume was not created by guest-installer (it was imported with disk=): it is not removed; remove the machine without --purge-volume")]
    Imported(VmName),
    #[error("machine {vm}'s volume {disk} is not where the configured pool keeps it ({expected}); it is not removed")]
    NotInPool { vm: VmName, disk: DiskPath, expected: DiskPath },
    #[error("volume pool directory {0} is unsafe: {1}; it must be a directory owned by root, not writable by group or others")]
    UnsafePool(PathBuf, &'static str),
    #[error("the new volume {0} could not be zeroed, so it was removed again: {1}")]
    Zeroing(DiskPath, ExecError),
    #[error("the thin pool {0} does not zero the blocks it provisions, so a new volume could show a former machine's data; enable it (lvchange --zero y {0})")]
    ThinPoolNotZeroing(String),
    #[error("{0}")]
    Tool(#[from] ExecError),
    #[error("volume I/O error: {0}")]
    Io(#[from] PathIo),
}

/// What a machine's volume is, which decides how it is written, read back
/// and handed to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BlockDevice,
    /// A regular file the guest sees as it is.
    RawFile,
    /// A regular file named `*.qcow2`.
    Qcow2File,
}

/// The kind of volume `disk` names now (following symlinks): `Missing` or
/// `NotAVolume` if it is neither a block device nor a regular file, or a
/// block device named as a qcow2 image.
pub fn kind(disk: &DiskPath) -> Result<Kind, VolumeError> {
    let md = fs::metadata(disk.as_str()).map_err(|_| VolumeError::Missing(disk.clone()))?;
    match (md.is_file(), md.file_type().is_block_device(), disk.format()) {
        (true, _, DiskFormat::Qcow2) => Ok(Kind::Qcow2File),
        (true, _, DiskFormat::Raw) => Ok(Kind::RawFile),
        (_, true, DiskFormat::Raw) => Ok(Kind::BlockDevice),
        _ => Err(VolumeError::NotAVolume(disk.clone())),
    }
}

/// One thing a disk's bytes live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Device(u64),
    File { dev: u64, ino: u64 },
}

/// What a disk name resolves to: the device or file itself (and, for a
/// loop device, the file behind it), and the whole disk a partition is
/// part of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    ids: Vec<Id>,
    parents: Vec<Id>,
}

impl Identity {
    /// True if the two share any byte: the same device or file, or a
    /// partition and the disk that holds it.
    pub fn overlaps(&self, other: &Identity) -> bool {
        let any = |a: &[Id], b: &[Id]| a.iter().any(|x| b.contains(x));
        any(&self.ids, &other.ids) || any(&self.ids, &other.parents) || any(&self.parents, &other.ids)
    }
}

/// The identity of what `disk` names now, if it exists (for the volumes of
/// registered machines, which may have gone since).
pub fn identity(disk: &DiskPath) -> Option<Identity> {
    let (_, identity) = resolve(Path::new(disk.as_str())).ok()?;
    Some(identity)
}

/// Checks a disk that root names for import: it exists, is a block device
/// or a file with one name, and neither it nor (for a loop device) its
/// backing file lies under `state_dir` (by identity of the directories
/// on its path, so a bind mount of the state dir is seen through).
pub fn check_import(disk: &DiskPath, state_dir: &Path) -> Result<Identity, VolumeError> {
    let path = Path::new(disk.as_str());
    let (files, identity) = resolve(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => VolumeError::Missing(disk.clone()),
        _ => VolumeError::Io(PathIo::new(path, e)),
    })?;
    if identity.ids.is_empty() {
        return Err(VolumeError::NotAVolume(disk.clone()));
    }
    let state = fs::metadata(state_dir).map_err(io_err(state_dir))?;
    for (file, m) in &files {
        if m.is_file() && m.nlink() != 1 {
            return Err(VolumeError::HardLinked(disk.clone()));
        }
        for dir in file.ancestors().skip(1) {
            let d = fs::metadata(dir).map_err(io_err(dir))?;
            if (d.dev(), d.ino()) == (state.dev(), state.ino()) {
                return Err(VolumeError::UnderStateDir(disk.clone(), state_dir.into()));
            }
        }
    }
    Ok(identity)
}

/// Resolves `path` (every symlink) to the files its bytes live in: the
/// file or device itself and, for a loop device, its backing file.
fn resolve(path: &Path) -> io::Result<(Vec<(PathBuf, fs::Metadata)>, Identity)> {
    let real = fs::canonicalize(path)?;
    let m = fs::metadata(&real)?;
    let mut identity = Identity::default();
    let mut files = vec![(real, m.clone())];
    if m.is_file() {
        identity.ids.push(Id::File { dev: m.dev(), ino: m.ino() });
    } else if m.file_type().is_block_device() {
        let rdev = m.rdev();
        identity.ids.push(Id::Device(rdev));
        let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev)));
        if sys.join("partition").exists() {
            if let Some(parent) = fs::read_to_string(sys.join("../dev")).ok().and_then(|s| parse_dev(s.trim())) {
                identity.parents.push(Id::Device(parent));
            }
        }
        // A loop device is its backing file by another name.
        if let Ok(backing) = fs::read_to_string(sys.join("loop/backing_file")) {
            let backing = PathBuf::from(backing.trim_end_matches('\n'));
            if let Ok(b) = fs::metadata(&backing) {
                identity.ids.push(Id::File { dev: b.dev(), ino: b.ino() });
                files.push((backing, b));
            }
        }
    }
    Ok((files, identity))
}

/// `MAJOR:MINOR` as sysfs writes it.
fn parse_dev(s: &str) -> Option<u64> {
    let (a, b) = s.split_once(':')?;
    Some(libc::makedev(a.parse().ok()?, b.parse().ok()?))
}

/// Makes a new volume file at `path`: `bytes` long as the guest sees it,
/// sparse (no data block written), mode 0600, and never replacing
/// anything (`AlreadyExists` if something is there). It is written under
/// a temporary name beside `path` and linked into place only when whole.
///
/// Every volume file the program creates is made here.
pub fn create_file(path: &Path, bytes: u64, format: DiskFormat) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("a volume path has a parent"))?;
    // tempfile creates the file 0600 with O_EXCL.
    let tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
    match format {
        DiskFormat::Raw => tmp.as_file().set_len(bytes)?,
        DiskFormat::Qcow2 => crate::media::qcow2::write_blank(tmp.as_file(), bytes)?,
    }
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    crate::fsutil::sync_dir(dir)
}

/// What a volume creation killed half-way leaves in the pool directory.
pub const TEMP_PREFIX: &str = ".gi-volume-";

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dp(p: &Path) -> DiskPath {
        DiskPath::parse(p.to_str().unwrap()).unwrap()
    }

    #[test]
    fn aliases_are_one_disk_and_the_state_dir_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        fs::create_dir_all(state.join("templates")).unwrap();
        let vol = d.path().join("v.img");
        fs::File::create(&vol).unwrap().set_len(1 << 20).unwrap();
        std::os::unix::fs::symlink(&vol, d.path().join("alias")).unwrap();
        let a = check_import(&dp(&vol), &state).unwrap();
        let b = check_import(&dp(&d.path().join("alias")), &state).unwrap();
        assert!(a.overlaps(&b));
        let other = d.path().join("w.img");
        fs::File::create(&other).unwrap();
        assert!(!a.overlaps(&check_import(&dp(&other), &state).unwrap()));

        let inside = state.join("templates/root.img");
        fs::File::create(&inside).unwrap();
        assert!(matches!(check_import(&dp(&inside), &state), Err(VolumeError::UnderStateDir(..))));
        std::os::unix::fs::symlink(&inside, d.path().join("sneaky")).unwrap();
        assert!(matches!(check_import(&dp(&d.path().join("sneaky")), &state), Err(VolumeError::UnderStateDir(..))));
        fs::hard_link(&vol, d.path().join("second-name")).unwrap();
        assert!(matches!(check_import(&dp(&vol), &state), Err(VolumeError::HardLinked(_))));
        assert!(matches!(check_import(&dp(&d.path().join("nope")), &state), Err(VolumeError::Missing(_))));
        assert!(matches!(check_import(&dp(d.path()), &state), Err(VolumeError::NotAVolume(_))));
        assert!(matches!(check_import(&dp(Path::new("/dev/null")), &state), Err(VolumeError::NotAVolume(_))));
    }

    #[test]
    fn volume_files_are_sparse_private_and_never_replace_anything() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vm1.img");
        create_file(&p, 1 << 30, DiskFormat::Raw).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.len(), m.blocks(), m.permissions().mode() & 0o7777), (1 << 30, 0, 0o600));
        fs::write(&p, b"guest data").unwrap();
        assert_eq!(create_file(&p, 1 << 30, DiskFormat::Raw).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"guest data");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "a temporary was left");
    }
}
