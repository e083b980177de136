//! A template's whole-disk layout: an MBR partition table with one
//! bootable Linux partition from 1 MiB to the end of the disk holding the
//! root filesystem, GRUB's boot sector in the MBR and its core image in
//! the gap before the partition. Any PC firmware boots it with nothing
//! from the host: qemu `-boot c`, Xen HVM, Ganeti's kvm with no kernel
//! path; Xen PV guests run pvgrub2, which finds the same grub.cfg.
//!
//! The boot code is written by us (the MBR) and by `grub-mkimage` (the
//! core image, with every module the menu needs built in and the
//! partition as its prefix), never by `grub-install`, which probes the
//! host's devices. The guest's own grub.cfg stays the only boot menu.

use super::partition::{self, Partition};
use super::TemplateError;
use crate::exec;
use crate::fsutil::io_err;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// How a template's image holds its root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskLayout {
    /// A bare ext4 filesystem, no partition table, no boot code: what
    /// templates were before they were whole disks (manifests without the
    /// field). Refused for new clones.
    #[default]
    BareFilesystem,
    /// Partition table, root partition, boot code: see the module.
    WholeDisk,
}

const SECTOR: u64 = 512;
/// Where the root partition starts (what partitioning tools align to);
/// the 1 MiB before it holds the MBR and GRUB's core image.
pub const PARTITION_START: u64 = 1 << 20;
/// The template's disk (sparse); clones need a volume at least this large
/// and grow the partition into the rest at first boot.
pub const DISK_BYTES: u64 = 2 << 30;
/// What GRUB's core image reads its menu from: the root partition.
const GRUB_PREFIX: &str = "(hd0,msdos1)/boot/grub";
/// Built into the core image: nothing is loaded from the guest's disk
/// (it has no GRUB modules), so the menu may use only these.
pub const GRUB_MODULES: &[&str] =
    &["biosdisk", "part_msdos", "ext2", "configfile", "linux", "normal", "serial", "terminal", "echo", "test"];
/// The boot code GRUB's boot.img puts before the disk signature.
const BOOT_CODE: usize = 440;

/// GRUB for i386-pc: `grub-mkimage` and its module directory (which holds
/// `boot.img`).
pub struct Grub<'a> {
    pub mkimage: &'a Path,
    pub modules: &'a Path,
    pub timeout: Duration,
}

impl Grub<'_> {
    /// Writes to `out` a core image with [`GRUB_MODULES`] built in, which
    /// reads its menu from `prefix`.
    pub fn core_image(&self, prefix: &str, out: &Path) -> Result<(), exec::ExecError> {
        let mut args: Vec<std::ffi::OsString> =
            vec!["-O".into(), "i386-pc".into(), "-d".into(), self.modules.into(), "-p".into(), prefix.into(), "-o".into(), out.into()];
        args.extend(GRUB_MODULES.iter().map(Into::into));
        exec::run(self.mkimage, &args, self.timeout).map(drop)
    }
}

/// The MBR: GRUB's boot code, then one bootable Linux partition from
/// [`PARTITION_START`] to the end of a disk of `disk_bytes`.
pub fn mbr(boot_img: &[u8], disk_bytes: u64) -> Result<[u8; 512], TemplateError> {
    if boot_img.len() != 512 {
        return Err(TemplateError::Layout(format!("GRUB's boot.img is {} bytes, not 512", boot_img.len())));
    }
    let first = PARTITION_START / SECTOR;
    let sectors = u32::try_from(disk_bytes / SECTOR - first)
        .map_err(|_| TemplateError::Layout("the disk is too large for an MBR partition table".into()))?;
    let mut s = [0u8; 512];
    s[..BOOT_CODE].copy_from_slice(&boot_img[..BOOT_CODE]);
    let e = &mut s[446..462];
    e[0] = 0x80;
    e[1..4].copy_from_slice(&chs(first));
    e[4] = 0x83;
    e[5..8].copy_from_slice(&chs(first + u64::from(sectors) - 1));
    e[8..12].copy_from_slice(&(first as u32).to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xAA;
    Ok(s)
}

/// A sector's address in the CHS form BIOSes once read (255 heads, 63
/// sectors a track), or the "beyond 1024 cylinders" marker past it.
fn chs(lba: u64) -> [u8; 3] {
    let (c, rest) = (lba / (255 * 63), lba % (255 * 63));
    if c > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let (h, s) = (rest / 63, rest % 63 + 1);
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

/// Makes `disk` (a new sparse file of `disk_bytes`, [`DISK_BYTES`] for a
/// template) from the sealed `tree`: the filesystem by `mke2fs -d` at the
/// partition's offset, then the boot code.
pub fn make(disk: &Path, disk_bytes: u64, tree: &Path, mke2fs: &Path, mkfs_args: &[&str], grub: &Grub, timeout: Duration) -> Result<(), TemplateError> {
    let f = fs::OpenOptions::new().write(true).create_new(true).open(disk).map_err(io_err(disk))?;
    f.set_len(disk_bytes).map_err(io_err(disk))?;
    let mut mk: Vec<std::ffi::OsString> = vec!["-q".into(), "-F".into(), "-E".into(), format!("offset={PARTITION_START}").into()];
    mk.extend(mkfs_args.iter().map(Into::into));
    mk.extend(["-d".into(), tree.as_os_str().to_owned(), disk.as_os_str().to_owned()]);
    mk.push(format!("{}k", (disk_bytes - PARTITION_START) >> 10).into());
    exec::run(mke2fs, &mk, timeout).map_err(TemplateError::Mkfs)?;

    let dir = disk.parent().unwrap_or(Path::new("."));
    let core = tempfile::Builder::new().prefix(".core-").tempfile_in(dir).map_err(io_err(dir))?;
    grub.core_image(GRUB_PREFIX, core.path()).map_err(|e| TemplateError::BootCode(format!("grub-mkimage: {e}")))?;
    let boot_path = grub.modules.join("boot.img");
    let boot_img = fs::read(&boot_path).map_err(|e| TemplateError::BootCode(format!("{}: {e} (install grub-pc-bin)", boot_path.display())))?;
    let core_img = fs::read(core.path()).map_err(io_err(core.path()))?;
    // The core image lies in sectors 1.. before the partition, where
    // boot.img's default says it is.
    if core_img.is_empty() || core_img.len() as u64 > PARTITION_START - SECTOR {
        return Err(TemplateError::BootCode(format!("GRUB's core image ({} bytes) does not fit before the partition", core_img.len())));
    }
    f.write_all_at(&mbr(&boot_img, disk_bytes)?, 0).map_err(io_err(disk))?;
    f.write_all_at(&core_img, SECTOR).map_err(io_err(disk))?;
    f.sync_all().map_err(io_err(disk))?;
    Ok(())
}

/// Where a machine's root filesystem is on its disk: partition 1 of a
/// disk cloned from a whole-disk template, or the whole disk of one
/// cloned from a bare-filesystem template. The disk is the guest's (it
/// may have rewritten its table): every offset is checked, and anything
/// else is refused.
pub fn root_filesystem<R: Read + Seek>(disk: &mut R) -> Result<Partition, String> {
    let whole = Partition { number: 0, start: 0, len: disk.seek(std::io::SeekFrom::End(0)).map_err(|e| e.to_string())? };
    match partition::partitions(disk) {
        Ok(ps) => {
            let p = ps.into_iter().find(|p| p.number == 1).ok_or("the disk has no partition 1 (the root partition of a clone)")?;
            match partition::is_ext4(disk, &p) {
                Ok(true) => Ok(p),
                Ok(false) => Err("partition 1 holds no ext4 filesystem".into()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(partition::PartitionError::NoTable) => match partition::is_ext4(disk, &whole) {
            Ok(true) => Ok(whole),
            Ok(false) => Err("the disk has neither a partition table nor an ext4 filesystem".into()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn boot_img() -> Vec<u8> {
        let mut b = vec![0xEBu8; 512];
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    /// sfdisk (util-linux) reads our table as one bootable Linux
    /// partition from 1 MiB to the end, and our own reader agrees.
    #[test]
    fn the_table_is_one_bootable_linux_partition_to_the_end() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk");
        let f = fs::File::create(&img).unwrap();
        f.set_len(DISK_BYTES).unwrap();
        f.write_all_at(&mbr(&boot_img(), DISK_BYTES).unwrap(), 0).unwrap();
        let out = Command::new("sfdisk").arg("--dump").arg(&img).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let dump = String::from_utf8(out.stdout).unwrap();
        let line = dump.lines().find(|l| l.contains("start=")).unwrap();
        let words: String = line.split_once(':').unwrap().1.split_whitespace().collect();
        assert_eq!(words, format!("start=2048,size={},type=83,bootable", DISK_BYTES / 512 - 2048), "{dump}");
        let mut r = fs::File::open(&img).unwrap();
        let ps = partition::partitions(&mut r).unwrap();
        assert_eq!(ps, vec![Partition { number: 1, start: PARTITION_START, len: DISK_BYTES - PARTITION_START }]);
        // The boot code is GRUB's, up to the disk signature.
        assert_eq!(fs::read(&img).unwrap()[..BOOT_CODE], boot_img()[..BOOT_CODE]);
    }

    fn grub(mkimage: &'static str) -> Grub<'static> {
        Grub { mkimage: Path::new(mkimage), modules: Path::new("/usr/lib/grub/i386-pc"), timeout: Duration::from_secs(60) }
    }

    /// With the real mke2fs and grub-mkimage: the tree is the filesystem
    /// of partition 1 (debugfs reads it there), GRUB's boot code is in the
    /// MBR and its core image in the sectors after it.
    #[test]
    fn a_whole_disk_from_a_tree_with_the_real_tools() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("boot/grub")).unwrap();
        fs::write(tree.join("boot/grub/grub.cfg"), "set timeout=0\n").unwrap();
        let img = d.path().join("disk.img");
        make(&img, 64 << 20, &tree, Path::new("/usr/sbin/mke2fs"), &["-t", "ext4", "-L", "gi-root"], &grub("/usr/bin/grub-mkimage"), Duration::from_secs(60)).unwrap();
        let bytes = fs::read(&img).unwrap();
        assert_eq!(bytes.len() as u64, 64 << 20);
        let boot = fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap();
        assert_eq!(bytes[..BOOT_CODE], boot[..BOOT_CODE]);
        assert!(bytes[512..1024].iter().any(|b| *b != 0), "no core image after the MBR");
        let fs = format!("{}?offset={PARTITION_START}", img.display());
        let out = Command::new("debugfs").args(["-R", "cat /boot/grub/grub.cfg"]).arg(&fs).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "set timeout=0\n");
        let label = Command::new("e2label").arg(&fs).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "gi-root");
        assert_eq!(root_filesystem(&mut fs::File::open(&img).unwrap()).unwrap().start, PARTITION_START);
    }

    /// A missing grub-mkimage (grub-pc-bin not installed) fails the build
    /// with its name, and so does an empty module directory.
    #[test]
    fn missing_grub_is_an_error_that_names_it() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        let mke2fs = Path::new("/usr/sbin/mke2fs");
        let e = make(&d.path().join("a.img"), 64 << 20, &tree, mke2fs, &["-t", "ext4"], &grub("/nonexistent/grub-mkimage"), Duration::from_secs(60)).unwrap_err();
        assert!(matches!(e, TemplateError::BootCode(_)) && e.to_string().contains("grub-mkimage"), "{e}");
        let empty = d.path().join("modules");
        fs::create_dir(&empty).unwrap();
        let g = Grub { modules: &empty, ..grub("/usr/bin/grub-mkimage") };
        let e = make(&d.path().join("b.img"), 64 << 20, &tree, mke2fs, &["-t", "ext4"], &g, Duration::from_secs(60)).unwrap_err();
        assert!(matches!(e, TemplateError::BootCode(_)), "{e}");
    }

    #[test]
    fn chs_of_the_first_sector_and_of_one_past_the_bios_limit() {
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(1024 * 255 * 63), [0xFE, 0xFF, 0xFF]);
        assert!(mbr(&[0; 100], DISK_BYTES).is_err());
        assert!(mbr(&boot_img(), 4 << 40).is_err(), "an MBR cannot describe 4 TiB");
    }

    /// The root filesystem of a whole disk is partition 1; of a bare
    /// filesystem, the whole disk; anything else is refused.
    #[test]
    fn the_root_filesystem_is_partition_1_or_the_whole_bare_disk() {
        let ext4_at = |img: &mut Vec<u8>, at: usize| {
            img[at + 1080] = 0x53;
            img[at + 1081] = 0xEF;
        };
        let mut img = vec![0u8; 4 << 20];
        img[..512].copy_from_slice(&mbr(&boot_img(), 4 << 20).unwrap());
        ext4_at(&mut img, 1 << 20);
        assert_eq!(root_filesystem(&mut std::io::Cursor::new(&img)).unwrap(), Partition { number: 1, start: 1 << 20, len: 3 << 20 });
        let mut bare = vec![0u8; 4 << 20];
        ext4_at(&mut bare, 0);
        assert_eq!(root_filesystem(&mut std::io::Cursor::new(&bare)).unwrap().start, 0);
        let no_fs = &mut img.clone();
        no_fs[(1 << 20) + 1080] = 0;
        assert!(root_filesystem(&mut std::io::Cursor::new(no_fs)).unwrap_err().contains("no ext4"));
        assert!(root_filesystem(&mut std::io::Cursor::new(vec![0u8; 1 << 20])).unwrap_err().contains("neither"));
        // A guest that moved partition 1 past the end of its disk.
        let mut moved = img.clone();
        moved[446 + 8..446 + 12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(root_filesystem(&mut std::io::Cursor::new(moved)).is_err());
    }
}
