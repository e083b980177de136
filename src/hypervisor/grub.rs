//! The boot loader qemu runs for clones of bare-filesystem templates
//! (made before templates were whole disks, with no boot code of their
//! own): GRUB for i386-pc, loaded with
//! `-kernel` (GRUB's `lnxboot.img` in front of a `core.img` that holds
//! every module it needs), which reads `/boot/grub/grub.cfg` from the
//! guest's own disk and boots the kernel that file names. The host never
//! looks inside the guest's filesystem; GRUB does, inside the guest.
//!
//! Made once per host into `STATE/boot/grub-i386-pc.bin` (again when the
//! installed GRUB is newer), written to a temporary name and renamed into
//! place, so a request sees a whole image or makes its own.

use super::HvError;
use crate::fsutil;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Clones are a bare ext4 filesystem on the whole volume, with no
/// partition table: the first BIOS disk itself is the root.
const PREFIX: &str = "(hd0)/boot/grub";

pub struct GrubPc {
    pub mkimage: PathBuf,
    /// GRUB's i386-pc directory (`lnxboot.img` and the modules).
    pub modules: PathBuf,
    /// Where the image is kept (`STATE/boot`).
    pub out_dir: PathBuf,
    pub timeout: Duration,
}

impl GrubPc {
    pub fn path(&self) -> PathBuf {
        self.out_dir.join("grub-i386-pc.bin")
    }

    /// The image, made first if it is missing or older than the GRUB it
    /// is made from.
    pub fn image(&self) -> Result<PathBuf, HvError> {
        let out = self.path();
        let lnxboot = self.modules.join("lnxboot.img");
        let err = |message: String| HvError::BootLoader { path: out.clone(), message };
        let src_time = fs::metadata(&lnxboot)
            .and_then(|m| m.modified())
            .map_err(|e| err(format!("{}: {e} (install grub-pc-bin)", lnxboot.display())))?;
        if fs::metadata(&out).and_then(|m| m.modified()).is_ok_and(|t| t >= src_time) {
            return Ok(out);
        }
        fsutil::ensure_dir(&self.out_dir, 0o700).map_err(|e| err(e.to_string()))?;
        let core = tempfile::Builder::new()
            .prefix(".core-")
            .tempfile_in(&self.out_dir)
            .map_err(|e| err(e.to_string()))?;
        let grub = crate::template::disk::Grub { mkimage: &self.mkimage, modules: &self.modules, timeout: self.timeout };
        grub.core_image(PREFIX, core.path()).map_err(|e| err(e.to_string()))?;
        let mut bin = fs::read(&lnxboot).map_err(|e| err(format!("{}: {e}", lnxboot.display())))?;
        bin.extend(fs::read(core.path()).map_err(|e| err(e.to_string()))?);
        fsutil::write_atomic(&out, &bin, 0o644).map_err(|e| err(e.to_string()))?;
        Ok(out)
    }
}

/// True if `p` is a regular file (the Xen boot loader must exist before a
/// config names it: xl reads it at `xl create`).
pub fn check_file(p: &Path, package: &str) -> Result<(), HvError> {
    match fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        _ => Err(HvError::BootLoader { path: p.into(), message: format!("not a file (install {package})") }),
    }
}
