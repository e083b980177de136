//! Installer images: import an upstream Debian installer ISO once (checked
//! against its SHA-256 first, extracted without mounting, sanitised,
//! patched, read-only), and read them back for installs.


mod catalog;
mod import;
mod tree;

pub use catalog::{list, load, sha256_file, sha256_stream, BaseIso, Image, Layout, Manifest, BASE_ISO, RESERVED};
pub use import::{import, ImportRequest};

use crate::exec::ExecError;
use crate::iso9660::IsoError;
use crate::types::ImageName;
use std::io;
use std::path::PathBuf;
use crate::fsutil::PathIo;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0} is not imported (see `guest-installer images`)")]
    NotFound(ImageName),
    #[error("image {0} is already imported")]
    Exists(ImageName),
    #[error("another image import is in progress; try again when it has finished")]
    Busy,
    #[error("cannot read ISO {path}: {source}")]
    IsoUnreadable { path: PathBuf, source: io::Error },
    #[error("the ISO's SHA-256 does not match sha256=: refusing to import it (got {actual})")]
    DigestMismatch { actual: String },
    #[error("{0} is not an ISO 9660 image")]
    NotIso(PathBuf),
    #[error("the ISO is truncated: it declares {declared} bytes but has {actual}; download it again")]
    Truncated { declared: u64, actual: u64 },
    #[error("xorriso could not extract the ISO: {0}")]
    Extract(ExecError),
    #[error("No space left in the state directory for the image: it needs about {need} bytes more, {free} are free")]
    NoSpace { need: u64, free: u64 },
    #[error("building the base ISO failed: {0}")]
    Master(ExecError),
    #[error("the base ISO just built is unreadable: {0}")]
    BaseIso(IsoError),
    #[error("the ISO is not a Debian installer CD: {0} is missing")]
    Layout(&'static str),
    #[error("the ISO holds an unsafe entry, refusing it: {0}")]
    Unsafe(String),
    #[error("manifest {path} is corrupt ({message}); an admin must fix or re-import the image")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write the image under {0}")]
    Io(#[from] PathIo),
}
