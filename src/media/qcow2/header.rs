//! Reading a qcow2 image's header: its size and the backing file it names,
//! for our own overlays and qemu-img's alike.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What every qcow2 image starts with.
pub(super) const MAGIC: &[u8; 4] = b"QFI\xfb";
/// The header extension that records the backing file's format.
pub(super) const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;

/// The virtual size in a qcow2 image's header, if `f` is one.
pub fn virtual_size(f: &File) -> Option<u64> {
    let mut h = [0u8; 32];
    f.read_exact_at(&mut h, 0).ok()?;
    (&h[..4] == MAGIC).then(|| u64::from_be_bytes(h[24..32].try_into().expect("8 bytes")))
}

/// The backing file's format, from the header extension that records it.
pub fn backing_format(path: &Path) -> io::Result<Option<String>> {
    let f = crate::fsutil::open_nofollow(path)?;
    let mut h = [0u8; 4];
    f.read_exact_at(&mut h, 0)?;
    if &h != MAGIC {
        return Err(io::Error::other(format!("{} is not a qcow2 image", path.display())));
    }
    f.read_exact_at(&mut h, 4)?;
    // Version 2 headers are 72 bytes; version 3 records the length.
    let mut at = if u32::from_be_bytes(h) >= 3 {
        f.read_exact_at(&mut h, 100)?;
        u64::from(u32::from_be_bytes(h))
    } else {
        72
    };
    // Extensions sit in the first cluster (at least 512 bytes).
    while at + 8 <= 512 {
        let mut e = [0u8; 8];
        f.read_exact_at(&mut e, at)?;
        let kind = u32::from_be_bytes(e[..4].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(e[4..].try_into().expect("4 bytes")) as u64;
        if kind == 0 || len > 512 {
            return Ok(None);
        }
        if kind == EXT_BACKING_FORMAT {
            let mut name = vec![0u8; len as usize];
            f.read_exact_at(&mut name, at + 8)?;
            return Ok(String::from_utf8(name).ok());
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    Ok(None)
}

/// The backing file a qcow2 image's header names, if any (our own
/// overlays and qemu-img's).
pub fn backing(path: &Path) -> io::Result<Option<PathBuf>> {
    let f = crate::fsutil::open_nofollow(path)?;
    let mut h = [0u8; 20];
    f.read_exact_at(&mut h, 0)?;
    if &h[..4] != MAGIC {
        return Err(io::Error::other(format!("{} is not a qcow2 image", path.display())));
    }
    let offset = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(h[16..20].try_into().expect("4 bytes"));
    if offset == 0 || len == 0 {
        return Ok(None);
    }
    if len > 1023 {
        return Err(io::Error::other("backing file name too long"));
    }
    let mut name = vec![0u8; len as usize];
    f.read_exact_at(&mut name, offset)?;
    let p = PathBuf::from(String::from_utf8(name).map_err(|_| io::Error::other("backing file name not UTF-8"))?);
    if !p.is_absolute() {
        return Err(io::Error::other("relative backing file name"));
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::qcow2::write_overlay;

    #[test]
    fn overlays_name_their_backing_file_and_format() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.iso");
        std::fs::write(&base, vec![0u8; 1 << 16]).unwrap();
        let over = d.path().join("over.qcow2");
        let out = File::create(&over).unwrap();
        write_overlay(&out, &mut File::open(&base).unwrap(), 1 << 16, &base, &[(0, b"x")]).unwrap();
        assert_eq!(backing(&over).unwrap(), Some(base.clone()));
        assert_eq!(backing_format(&over).unwrap().as_deref(), Some("raw"));
        assert!(backing(&base).is_err(), "not a qcow2 image");
        // qemu-img's own overlays read the same way.
        let img = |args: &[&str]| {
            let o = std::process::Command::new("qemu-img").args(args).output().unwrap();
            assert!(o.status.success(), "{o:?}");
        };
        let (q, over_raw, over_q) = (d.path().join("b.qcow2"), d.path().join("r.qcow2"), d.path().join("q.qcow2"));
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        img(&["create", "-q", "-f", "qcow2", &s(&q), "1M"]);
        img(&["create", "-q", "-f", "qcow2", "-b", &s(&base), "-F", "raw", &s(&over_raw)]);
        img(&["create", "-q", "-f", "qcow2", "-b", &s(&q), "-F", "qcow2", &s(&over_q)]);
        assert_eq!(backing(&over_raw).unwrap(), Some(base.clone()));
        assert_eq!(backing_format(&over_raw).unwrap().as_deref(), Some("raw"));
        assert_eq!(backing_format(&over_q).unwrap().as_deref(), Some("qcow2"));
        assert_eq!(backing(&q).unwrap(), None);
    }
}
