//! The image catalog: what an imported image is (its manifest, boot layout
//! and base ISO) and reading one image or all of them back from disk.

use super::ImageError;
use crate::fsutil;
use crate::iso9660::Extent;
use crate::types::{CdPath, ImageName, Sha256Hex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use crate::fsutil::PathIo;

const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// Where an image's boot files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub isolinux_cfg: CdPath,
    pub isolinux_bin: CdPath,
    pub kernel: CdPath,
    pub initrd: CdPath,
    /// The paravirtualised installer (`install.amd/xen/`), if the CD has one.
    pub xen_kernel: Option<CdPath>,
    pub xen_initrd: Option<CdPath>,
}

/// Bytes reserved in the base ISO for each per-VM file.
pub const RESERVED: u64 = 256 * 1024;
pub const BASE_ISO: &str = "base.iso";

/// The bootable ISO built once at import, with zero-filled reserved files
/// whose extents per-VM media overwrite (in a copy-on-write overlay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseIso {
    pub bytes: u64,
    /// `/preseed.cfg`, padded with newlines.
    pub preseed_cfg: Extent,
    /// `/install.amd/preseed.img`, the extra initrd, padded with zeros.
    pub preseed_img: Extent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: ImageName,
    pub source_sha256: Sha256Hex,
    pub source_bytes: u64,
    pub imported_at: u64,
    pub layout: Layout,
    pub base_iso: BaseIso,
    pub files: u64,
    pub bytes: u64,
}

/// An imported image: its manifest and its read-only tree.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl Image {
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }
    pub fn file(&self, p: &CdPath) -> PathBuf {
        self.tree().join(p.relative())
    }
    pub fn base_iso(&self) -> PathBuf {
        self.dir.join(BASE_ISO)
    }
}

pub fn load(images_dir: &Path, name: &ImageName) -> Result<Image, ImageError> {
    let dir = images_dir.join(name.as_str());
    let path = dir.join("manifest.json");
    let bytes = match fsutil::read_limited(&path, MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ImageError::NotFound(name.clone())),
        Err(source) => return Err(ImageError::Io(PathIo::new(path, source))),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt { path: path.clone(), message: e.to_string() })?;
    if manifest.name != *name {
        return Err(ImageError::Corrupt { path, message: "its name does not match its directory".into() });
    }
    Ok(Image { manifest, dir })
}

/// Every imported image, by name. Directories of an interrupted import
/// (`.import-*`) are skipped.
pub fn list(images_dir: &Path) -> Result<Vec<Image>, ImageError> {
    let entries = match fs::read_dir(images_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ImageError::Io(PathIo::new(images_dir, source))),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if let Some(name) = e.file_name().to_str().and_then(|n| ImageName::parse(n).ok()) {
            out.push(load(images_dir, &name)?);
        }
    }
    out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    Ok(out)
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    sha256_stream(&mut fs::File::open(path)?, |e| e, |_, _| Ok(()))
}

/// Reads `src` to its end, hashing it; each chunk also goes to `each`
/// with the bytes read so far. Returns the SHA-256 (lowercase hex) and
/// the length. A read error becomes `read_err`'s, so a caller can tell it
/// from its own.
pub fn sha256_stream<E>(
    src: &mut impl Read,
    read_err: impl Fn(io::Error) -> E,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(String, u64), E> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(&read_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
        each(total, &buf[..n])?;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}
