//! The configured volume pool (`[volumes]`): where `machine add VM
//! size=...` makes a machine's volume and `machine remove VM
//! --purge-volume` removes it. A caller gives a size, never a path: the
//! volume is named after the machine, in a place the admin chose.
//!
//! - `kind = "file"`: a sparse file `DIR/VM.img` (raw) or `DIR/VM.qcow2`;
//! - `kind = "lvm"`: a logical volume `/dev/VG/VM`, made by `lvcreate`.
//!   A new machine must never read a former one's data: a thick LV's
//!   extents may have been another machine's (lvcreate zeroes only their
//!   first 4 KiB), so the whole LV is zeroed (`blkdiscard --zeroout`)
//!   before the machine is registered; in the thin pool `thinpool`
//!   unwritten blocks read as zeros, and the pool must zero the blocks it
//!   provisions (checked with `lvs` before the LV is made).

use super::{create_file, VolumeError, TEMP_PREFIX};
use crate::config::AbsPath;
use crate::exec;
use crate::fsutil;
use crate::types::{DiskFormat, DiskPath, Rule, VmName, VolumeSize};
use serde::Deserialize;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;
use crate::fsutil::{io_err, PathIo};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PoolConfig {
    File(FilePool),
    Lvm(LvmPool),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePool {
    #[serde(deserialize_with = "pool_dir")]
    pub dir: DiskPath,
    #[serde(default)]
    pub format: DiskFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmPool {
    pub vg: LvmName,
    #[serde(default)]
    pub thinpool: Option<LvmName>,
    #[serde(default = "default_lvcreate")]
    pub lvcreate: AbsPath,
    #[serde(default = "default_lvremove")]
    pub lvremove: AbsPath,
    #[serde(default = "default_lvs")]
    pub lvs: AbsPath,
    #[serde(default = "default_blkdiscard")]
    pub blkdiscard: AbsPath,
}

fn default_lvcreate() -> AbsPath {
    AbsPath::from_static("/usr/sbin/lvcreate")
}
fn default_lvremove() -> AbsPath {
    AbsPath::from_static("/usr/sbin/lvremove")
}
fn default_lvs() -> AbsPath {
    AbsPath::from_static("/usr/sbin/lvs")
}
fn default_blkdiscard() -> AbsPath {
    AbsPath::from_static("/usr/sbin/blkdiscard")
}

/// A volume group or logical volume name as LVM allows it, and one that
/// is a single path component (it names `/dev/VG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvmName(String);

impl LvmName {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        let ok = !s.is_empty()
            && s.len() <= 127
            && !s.starts_with(['-', '.'])
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b));
        if ok {
            Ok(LvmName(s.to_owned()))
        } else {
            Err(Rule("must be 1-127 letters, digits, '+', '_', '.' and '-', not starting with '-' or '.'"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LvmName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LvmName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl PoolConfig {
    /// Where the pool keeps `vm`'s volume.
    pub fn path_for(&self, vm: &VmName) -> DiskPath {
        let p = match self {
            PoolConfig::File(f) => {
                format!("{}/{vm}.{}", f.dir.as_str(), f.format.file_extension())
            }
            PoolConfig::Lvm(l) => format!("/dev/{}/{vm}", l.vg.as_str()),
        };
        DiskPath::parse(&p).expect("a pool directory or VG joined with a machine name is a disk path")
    }

    /// Makes `vm`'s volume of `size`. Call it under the registry lock: a
    /// file pool's leftovers of a killed creation are cleared first.
    pub fn create(&self, vm: &VmName, size: VolumeSize, limit: Duration, state_dir: &Path) -> Result<DiskPath, VolumeError> {
        let disk = self.path_for(vm);
        match self {
            PoolConfig::File(f) => {
                let dir = Path::new(f.dir.as_str());
                check_dir(dir, state_dir, true)?;
                crate::lock::remove_temporaries(dir, &[TEMP_PREFIX])
                    .map_err(io_err(dir))?;
                create_file(Path::new(disk.as_str()), size.bytes(), f.format).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => VolumeError::Exists { vm: vm.clone(), path: disk.clone() },
                    _ => VolumeError::Io(PathIo::new(disk.as_str(), e)),
                })?;
            }
            PoolConfig::Lvm(l) => {
                if Path::new(disk.as_str()).symlink_metadata().is_ok() {
                    return Err(VolumeError::Exists { vm: vm.clone(), path: disk });
                }
                if let Some(pool) = &l.thinpool {
                    check_thin_pool_zeroes(l, pool, limit)?;
                }
                exec::run(l.lvcreate.path(), &lvcreate_args(l, vm, size), limit)?;
                if l.thinpool.is_none() {
                    if let Err(e) = exec::run(l.blkdiscard.path(), &["--zeroout", disk.as_str()], limit) {
                        // Never left behind holding someone's old data.
                        let _ = exec::run(l.lvremove.path(), &lvremove_args(l, vm), limit);
                        return Err(VolumeError::Zeroing(disk, e));
                    }
                }
            }
        }
        Ok(disk)
    }

    /// Removes the volume the pool made for `vm` at `disk`.
    pub fn remove(&self, vm: &VmName, disk: &DiskPath, limit: Duration, state_dir: &Path) -> Result<(), VolumeError> {
        let expected = self.path_for(vm);
        if *disk != expected {
            return Err(VolumeError::NotInPool { vm: vm.clone(), disk: disk.clone(), expected });
        }
        match self {
            PoolConfig::File(f) => {
                check_dir(Path::new(f.dir.as_str()), state_dir, false)?;
                fsutil::remove_if_exists(Path::new(disk.as_str()))
                    .map_err(io_err(Path::new(disk.as_str())))?;
                fsutil::sync_dir(Path::new(f.dir.as_str()))
                    .map_err(|source| VolumeError::Io(PathIo::new(f.dir.as_str(), source)))
            }
            PoolConfig::Lvm(l) => {
                exec::run(l.lvremove.path(), &lvremove_args(l, vm), limit)?;
                Ok(())
            }
        }
    }
}

fn lvremove_args(l: &LvmPool, vm: &VmName) -> Vec<String> {
    vec!["--yes".to_owned(), format!("{}/{vm}", l.vg.as_str())]
}

/// A thin pool that does not zero the blocks it provisions would let a
/// new volume read, around what its guest wrote, what an old one left in
/// the same chunk.
fn check_thin_pool_zeroes(l: &LvmPool, pool: &LvmName, limit: Duration) -> Result<(), VolumeError> {
    let name = format!("{}/{}", l.vg.as_str(), pool.as_str());
    let out = exec::run(l.lvs.path(), &["--noheadings", "--binary", "--options", "zero", name.as_str()], limit)?;
    match out.stdout.trim() {
        "1" => Ok(()),
        _ => Err(VolumeError::ThinPoolNotZeroing(name)),
    }
}

/// `lvcreate`'s argv: never a shell, every word ours.
fn lvcreate_args(l: &LvmPool, vm: &VmName, size: VolumeSize) -> Vec<String> {
    let size = format!("{}m", size.mib());
    let mut a: Vec<String> = vec!["--yes".into(), "--name".into(), vm.to_string()];
    match &l.thinpool {
        Some(pool) => a.extend(["--virtualsize".into(), size, "--thin".into(), format!("{}/{}", l.vg.as_str(), pool.as_str())]),
        None => a.extend([
            "--wipesignatures".into(),
            "y".into(),
            "--zero".into(),
            "y".into(),
            "--size".into(),
            size,
            l.vg.as_str().into(),
        ]),
    }
    a
}

/// A file pool's directory: short enough that every volume path in it
/// (`DIR/VM.qcow2`, a VM name being at most 63 characters) is a disk path.
fn pool_dir<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DiskPath, D::Error> {
    const ROOM: usize = 1 + 63 + ".qcow2".len();
    let dir = DiskPath::deserialize(d)?;
    if dir.as_str().len() + ROOM > 255 {
        return Err(serde::de::Error::custom(format!("a file pool's dir must be at most {} bytes long", 255 - ROOM)));
    }
    Ok(dir)
}

/// The pool directory is made if missing (with `create`; a removal leaves
/// a missing one alone); one that exists must be a real directory only
/// root can change, as the state dir must be, and not the state dir or
/// inside it (seen through symlinks and bind mounts).
fn check_dir(dir: &Path, state_dir: &Path, create: bool) -> Result<(), VolumeError> {
    let unsafe_dir = |why| VolumeError::UnsafePool(dir.into(), why);
    let inspect = |p: &Path| fs::metadata(p).map_err(|source| VolumeError::Io(PathIo::new(p, source)));
    let state = inspect(state_dir)?;
    for d in dir.ancestors() {
        match fs::metadata(d) {
            Ok(a) if (a.dev(), a.ino()) == (state.dev(), state.ino()) => {
                return Err(unsafe_dir("it is inside the state directory"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(VolumeError::Io(PathIo::new(d, source))),
        }
    }
    if create {
        fsutil::ensure_dir(dir, 0o700).map_err(io_err(dir))?;
    }
    let m = match fs::symlink_metadata(dir) {
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        m => m.map_err(io_err(dir))?,
    };
    if !m.is_dir() {
        return Err(unsafe_dir("it is not a directory"));
    }
    if m.uid() != 0 {
        return Err(unsafe_dir("it is owned by another user"));
    }
    if m.mode() & 0o022 != 0 {
        return Err(unsafe_dir("it is group- or world-writable"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        volumes: PoolConfig,
    }

    fn pool(text: &str) -> Result<PoolConfig, String> {
        toml::from_str::<Wrap>(text).map(|w| w.volumes).map_err(|e| e.to_string())
    }

    #[test]
    fn pools_parse_and_name_volumes_after_machines() {
        let vm = VmName::parse("web1").unwrap();
        let f = pool("[volumes]\nkind = \"file\"\ndir = \"/srv/vols\"\nformat = \"qcow2\"\n").unwrap();
        assert_eq!(f.path_for(&vm).as_str(), "/srv/vols/web1.qcow2");
        assert_eq!(f.path_for(&vm).format(), DiskFormat::Qcow2);
        let f = pool("[volumes]\nkind = \"file\"\ndir = \"/srv/vols\"\n").unwrap();
        assert_eq!(f.path_for(&vm).as_str(), "/srv/vols/web1.img");
        assert_eq!(f.path_for(&vm).format(), DiskFormat::Raw);
        let l = pool("[volumes]\nkind = \"lvm\"\nvg = \"xenvg\"\n").unwrap();
        assert_eq!(l.path_for(&vm).as_str(), "/dev/xenvg/web1");
        for bad in [
            "[volumes]\nkind = \"zfs\"\n",
            "[volumes]\nkind = \"file\"\ndir = \"/srv/../etc\"\n",
            "[volumes]\nkind = \"file\"\ndir = \"relative\"\n",
            "[volumes]\nkind = \"file\"\ndir = \"/srv\"\nformat = \"vmdk\"\n",
            "[volumes]\nkind = \"file\"\ndir = \"/srv\"\nvg = \"x\"\n",
            "[volumes]\nkind = \"lvm\"\nvg = \"../etc\"\n",
            "[volumes]\nkind = \"lvm\"\nvg = \"-x\"\n",
            "[volumes]\nkind = \"lvm\"\nvg = \"x\"\nbogus = 1\n",
        ] {
            assert!(pool(bad).is_err(), "{bad}");
        }
        // Room for every `DIR/VM.qcow2`: a longer dir is refused, not a panic later.
        let long = |n: usize| pool(&format!("[volumes]\nkind = \"file\"\ndir = \"/{}\"\n", "d".repeat(n - 1)));
        assert!(long(255 - 70).is_ok());
        assert!(long(255 - 69).unwrap_err().contains("at most 185 bytes"));
        let vm63 = VmName::parse(&format!("a{}", "b".repeat(62))).unwrap();
        let f = pool(&format!("[volumes]\nkind = \"file\"\ndir = \"/{}\"\nformat = \"qcow2\"\n", "d".repeat(184))).unwrap();
        assert_eq!(f.path_for(&vm63).as_str().len(), 255);
    }

    #[test]
    fn lvcreate_gets_sizes_in_mib_and_the_thin_pool_if_any() {
        let vm = VmName::parse("web1").unwrap();
        let size = VolumeSize::parse("20G").unwrap();
        let PoolConfig::Lvm(thick) = pool("[volumes]\nkind = \"lvm\"\nvg = \"xenvg\"\n").unwrap() else { panic!() };
        assert_eq!(
            lvcreate_args(&thick, &vm, size).join(" "),
            "--yes --name web1 --wipesignatures y --zero y --size 20480m xenvg"
        );
        let PoolConfig::Lvm(thin) = pool("[volumes]\nkind = \"lvm\"\nvg = \"xenvg\"\nthinpool = \"pool0\"\n").unwrap() else { panic!() };
        assert_eq!(lvcreate_args(&thin, &vm, size).join(" "), "--yes --name web1 --virtualsize 20480m --thin xenvg/pool0");
    }
}
