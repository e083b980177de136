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

/// What was built.
#[derive(Debug, Clone)]
pub struct Media {
    pub iso: PathBuf,
}

/// Builds the per-VM ISO into `vm.iso()`, replacing any previous one
/// atomically. The preseed exists on disk only inside a private (0700)
/// temporary directory while xorriso reads it.
pub fn build(xorriso: &Path, image: &Image, preseed: &str, vm: &VmDir, timeout: Duration) -> Result<Media, MediaError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io { path, source }
    };
    let work = tempfile::Builder::new().prefix(".build-").tempdir_in(&vm.dir).map_err(io_err(&vm.dir))?;
    let cfg = work.path().join("preseed.cfg");
    let img = work.path().join("preseed.img");
    fs::write(&cfg, preseed).map_err(io_err(&cfg))?;
    let f = fs::File::create(&img).map_err(io_err(&img))?;
    initrd::write_preseed_cpio(preseed.as_bytes(), f).map_err(io_err(&img))?;
    let out = work.path().join("install.iso");
    iso::build(
        xorriso,
        image,
        &[("/preseed.cfg", &cfg), (isolinux::PRESEED_INITRD, &img)],
        &out,
        timeout,
    )?;
    fs::File::open(&out).and_then(|f| f.sync_all()).map_err(io_err(&out))?;
    fs::rename(&out, vm.iso()).map_err(io_err(&vm.iso()))?;
    crate::fsutil::sync_dir(&vm.dir).map_err(io_err(&vm.dir))?;
    Ok(Media { iso: vm.iso() })
}
