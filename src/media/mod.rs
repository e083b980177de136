//! Per-VM boot media built from a pristine image: everything the installer
//! needs to run unattended, and the only place the password hash lives.
//! One small interface, so the way media are made can change without the
//! request path noticing.

pub mod initrd;
pub mod qcow2;

use crate::image::Image;
use crate::state::VmDir;
use crate::types::Boot;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use crate::fsutil::{io_err, PathIo};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the {0} does not fit the image's reserved area (256 KiB); shorten the preseed template")]
    TooLarge(&'static str),
    #[error("cannot write the install media in {0}")]
    Io(#[from] PathIo),
}

/// What was built: a CD image to boot (a qcow2 overlay of the image's
/// base ISO), or a kernel and a per-VM initrd.
#[derive(Debug, Clone)]
pub enum Media {
    Cdrom(PathBuf),
    Kernel { kernel: PathBuf, initrd: PathBuf },
    /// The first boot of a clone of a (whole-disk) golden template, already
    /// on the machine's volume: the boot code in the disk (the kernel and
    /// initrd come from the guest's own filesystem) and the identity seed
    /// as a second disk. `pv`: Xen boots it as a PV guest, through pvgrub.
    Clone { seed: PathBuf, pv: bool },
    /// An installed clone of a bare-filesystem template (made before
    /// templates were whole disks): no boot code of its own, so the host
    /// hands it GRUB (qemu) or pvgrub (Xen); no seed.
    Loader,
    /// An installed machine that boots from its own disk and nothing else:
    /// an installer-path install, or a clone of a whole-disk template.
    /// `pv` if it runs as a PV guest (Xen then boots it through pvgrub).
    Disk { pv: bool },
}

impl Media {
    /// The per-VM file (the one that holds the password hash), if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Media::Cdrom(p) => Some(p),
            Media::Kernel { initrd, .. } => Some(initrd),
            Media::Clone { seed, .. } => Some(seed),
            Media::Loader | Media::Disk { .. } => None,
        }
    }

    /// True while an installer runs: its reboot at the end is how the end
    /// is seen, so the hypervisor must not restart it.
    pub fn is_installer(&self) -> bool {
        matches!(self, Media::Cdrom(_) | Media::Kernel { .. })
    }
}

/// Kernel arguments for the installer when no boot loader passes them;
/// drivers add their console.
pub const INSTALLER_ARGS: &str = "auto=true priority=critical";

/// Builds the per-VM media for `boot` into the VM's directory, replacing
/// any previous media atomically and removing media of the other kind.
pub fn build(
    boot: Boot,
    image: &Image,
    preseed: &str,
    vm: &VmDir,
) -> Result<Media, MediaError> {
    let media = match boot {
        Boot::HvmIso => build_cdrom(image, preseed, vm)?,
        Boot::PvInitrd => build_initrd(image, preseed, vm)?,
    };
    for stale in vm.media() {
        if Some(stale.as_path()) != media.path() {
            crate::fsutil::remove_if_exists(&stale).map_err(io_err(&stale))?;
        }
    }
    Ok(media)
}

/// The per-VM CD: a qcow2 overlay of the image's base ISO in which only
/// the clusters of the two reserved files differ: `/preseed.cfg` (padded
/// with newlines, which debconf skips) and the extra initrd holding
/// `/preseed.cfg` (padded with zeros, which the kernel skips between
/// archives). Its cost does not depend on the size of the image.
fn build_cdrom(image: &Image, preseed: &str, vm: &VmDir) -> Result<Media, MediaError> {
    let base = &image.manifest.base_iso;
    let fits = |what: &'static str, len: usize| {
        if len as u64 <= crate::image::RESERVED {
            Ok(())
        } else {
            Err(MediaError::TooLarge(what))
        }
    };
    fits("preseed", preseed.len())?;
    let mut cfg = preseed.as_bytes().to_vec();
    cfg.resize(crate::image::RESERVED as usize, b'\n');
    let mut img = initrd::write_preseed_cpio(preseed.as_bytes(), Vec::new()).map_err(io_err(&vm.dir))?;
    fits("compressed preseed", img.len())?;
    img.resize(crate::image::RESERVED as usize, 0);

    let base_path = image.base_iso();
    let mut base_file = fs::File::open(&base_path).map_err(io_err(&base_path))?;
    let tmp = tempfile::Builder::new().prefix(".build-").tempfile_in(&vm.dir).map_err(io_err(&vm.dir))?;
    let tmp_path = tmp.path().to_path_buf();
    qcow2::write_overlay(
        tmp.as_file(),
        &mut base_file,
        base.bytes,
        &base_path,
        &[(base.preseed_cfg.offset, &cfg), (base.preseed_img.offset, &img)],
    )
    .map_err(io_err(&tmp_path))?;
    tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
    tmp.persist(vm.cdrom()).map_err(|e| MediaError::Io(PathIo::new(vm.cdrom(), e.error)))?;
    crate::fsutil::sync_dir(&vm.dir).map_err(io_err(&vm.dir))?;
    Ok(Media::Cdrom(vm.cdrom()))
}

/// The ISO-less route: the image's (PV, if it has one) kernel as it is, and
/// a per-VM initrd = the pristine initrd + an appended archive holding
/// `/preseed.cfg` (the kernel unpacks concatenated archives).
fn build_initrd(image: &Image, preseed: &str, vm: &VmDir) -> Result<Media, MediaError> {
    let l = &image.manifest.layout;
    let (kernel, pristine) = match (&l.xen_kernel, &l.xen_initrd) {
        (Some(k), Some(i)) => (image.file(k), image.file(i)),
        _ => (image.file(&l.kernel), image.file(&l.initrd)),
    };
    let mut tmp = tempfile::Builder::new().prefix(".build-").tempfile_in(&vm.dir).map_err(io_err(&vm.dir))?;
    let mut src = fs::File::open(&pristine).map_err(io_err(&pristine))?;
    io::copy(&mut src, tmp.as_file_mut()).map_err(io_err(&pristine))?;
    let tmp_path = tmp.path().to_path_buf();
    initrd::write_preseed_cpio(preseed.as_bytes(), tmp.as_file_mut()).map_err(io_err(&tmp_path))?;
    tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
    tmp.persist(vm.initrd()).map_err(|e| MediaError::Io(PathIo::new(vm.initrd(), e.error)))?;
    crate::fsutil::sync_dir(&vm.dir).map_err(io_err(&vm.dir))?;
    Ok(Media::Kernel { kernel, initrd: vm.initrd() })
}
