//! Per-VM boot media built from a pristine image: everything the installer
//! needs to run unattended, and the only place the password hash lives.
//! One small interface, so the way media are made can change without the
//! request path noticing.

pub mod initrd;
pub mod iso;

use crate::exec::ExecError;
use crate::image::Image;
use crate::isolinux;
use crate::state::VmDir;
use crate::types::Boot;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("building the install media failed: {0}")]
    Tool(#[from] ExecError),
    #[error("cannot write the install media in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What was built: an ISO to boot, or a kernel and a per-VM initrd.
#[derive(Debug, Clone)]
pub enum Media {
    Iso(PathBuf),
    Kernel { kernel: PathBuf, initrd: PathBuf },
}

impl Media {
    /// The per-VM file (the one that holds the password hash).
    pub fn path(&self) -> &Path {
        match self {
            Media::Iso(p) => p,
            Media::Kernel { initrd, .. } => initrd,
        }
    }
}

/// Kernel arguments for the installer when no boot loader passes them;
/// drivers add their console.
pub const INSTALLER_ARGS: &str = "auto=true priority=critical";

/// Builds the per-VM media for `boot` into the VM's directory, replacing
/// any previous media atomically and removing media of the other kind.
pub fn build(
    boot: Boot,
    xorriso: &Path,
    image: &Image,
    preseed: &str,
    vm: &VmDir,
    timeout: Duration,
) -> Result<Media, MediaError> {
    let media = match boot {
        Boot::HvmIso => build_iso(xorriso, image, preseed, vm, timeout)?,
        Boot::PvInitrd => build_initrd(image, preseed, vm)?,
    };
    for stale in vm.media() {
        if stale != media.path() {
            crate::fsutil::remove_if_exists(&stale).map_err(|source| MediaError::Io { path: stale.clone(), source })?;
        }
    }
    Ok(media)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MediaError {
    let path = path.to_path_buf();
    move |source| MediaError::Io { path, source }
}

/// Renames a finished file into place and makes the rename durable.
fn publish(tmp: &Path, dest: &Path, dir: &Path) -> Result<(), MediaError> {
    fs::File::open(tmp).and_then(|f| f.sync_all()).map_err(io_err(tmp))?;
    fs::rename(tmp, dest).map_err(io_err(dest))?;
    crate::fsutil::sync_dir(dir).map_err(io_err(dir))
}

/// The per-VM ISO. The preseed exists on disk only inside a private
/// (0700) temporary directory while xorriso reads it.
fn build_iso(xorriso: &Path, image: &Image, preseed: &str, vm: &VmDir, timeout: Duration) -> Result<Media, MediaError> {
    let work = tempfile::Builder::new().prefix(".build-").tempdir_in(&vm.dir).map_err(io_err(&vm.dir))?;
    let cfg = work.path().join("preseed.cfg");
    let img = work.path().join("preseed.img");
    fs::write(&cfg, preseed).map_err(io_err(&cfg))?;
    let f = fs::File::create(&img).map_err(io_err(&img))?;
    initrd::write_preseed_cpio(preseed.as_bytes(), f).map_err(io_err(&img))?;
    let out = work.path().join("install.iso");
    iso::build(xorriso, image, &[("/preseed.cfg", &cfg), (isolinux::PRESEED_INITRD, &img)], &out, timeout)?;
    publish(&out, &vm.iso(), &vm.dir)?;
    Ok(Media::Iso(vm.iso()))
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
    tmp.persist(vm.initrd()).map_err(|e| MediaError::Io { path: vm.initrd(), source: e.error })?;
    crate::fsutil::sync_dir(&vm.dir).map_err(io_err(&vm.dir))?;
    Ok(Media::Kernel { kernel, initrd: vm.initrd() })
}
