//! Just enough ISO 9660 to find where a file's bytes live in an image:
//! the primary volume descriptor, directory records, and Rock Ridge `NM`
//! names (xorriso writes the real names there; the ISO 9660 names are
//! upper-cased and mangled). Reads through a bounded `Read + Seek`, never
//! trusts a length it has not checked, and never panics on hostile input.

use std::io::{self, Read, Seek, SeekFrom};

pub const SECTOR: u64 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("not an ISO 9660 image (no primary volume descriptor)")]
    NotIso,
    #[error("{0} is not in the image")]
    NotFound(String),
    #[error("malformed ISO 9660 directory: {0}")]
    Malformed(&'static str),
    #[error("cannot read the image: {0}")]
    Io(#[from] io::Error),
}

/// Where a file's data is: one contiguous extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extent {
    /// Byte offset of the data in the image.
    pub offset: u64,
    pub len: u64,
}

struct Record {
    lba: u32,
    len: u32,
    is_dir: bool,
    name: String,
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses one directory record; `None` for a malformed one.
fn parse_record(r: &[u8]) -> Option<Record> {
    let name_len = *r.get(32)? as usize;
    let name = r.get(33..33 + name_len)?;
    let flags = *r.get(25)?;
    // System use area (Rock Ridge) starts after the name, padded to even.
    let mut su = 33 + name_len + (1 - name_len % 2);
    let mut rr_name: Option<String> = None;
    while su + 4 <= r.len() {
        let sig = &r[su..su + 2];
        let len = r[su + 2] as usize;
        if len < 4 || su + len > r.len() {
            break;
        }
        if sig == b"NM" && len >= 5 {
            let part = String::from_utf8_lossy(&r[su + 5..su + len]);
            rr_name.get_or_insert_with(String::new).push_str(&part);
        }
        su += len;
    }
    let name = match rr_name {
        Some(n) => n,
        None => {
            let n = String::from_utf8_lossy(name).to_ascii_lowercase();
            let n = n.split(';').next().unwrap_or("").trim_end_matches('.').to_owned();
            n
        }
    };
    Some(Record { lba: u32_le(r, 2)?, len: u32_le(r, 10)?, is_dir: flags & 2 != 0, name })
}

/// The records of a directory extent (without `.` and `..`).
fn read_dir<R: Read + Seek>(img: &mut R, lba: u32, len: u32, image_len: u64) -> Result<Vec<Record>, IsoError> {
    const MAX_DIR: u32 = 16 << 20;
    if len > MAX_DIR || u64::from(lba) * SECTOR + u64::from(len) > image_len {
        return Err(IsoError::Malformed("directory extent out of range"));
    }
    let mut buf = vec![0u8; len as usize];
    img.seek(SeekFrom::Start(u64::from(lba) * SECTOR))?;
    img.read_exact(&mut buf)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rec_len = buf[pos] as usize;
        if rec_len == 0 {
            // Records do not cross sectors: skip to the next one.
            pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        let rec = buf.get(pos..pos + rec_len).ok_or(IsoError::Malformed("record overruns its directory"))?;
        let r = parse_record(rec).ok_or(IsoError::Malformed("bad directory record"))?;
        let ident = rec.get(33).copied();
        let name_len = rec.get(32).copied();
        // `.` and `..` are single bytes 0 and 1.
        if !(name_len == Some(1) && matches!(ident, Some(0) | Some(1))) {
            out.push(r);
        }
        pos += rec_len;
    }
    Ok(out)
}

/// Finds `path` (e.g. `/install.amd/preseed.img`) in the image.
pub fn find<R: Read + Seek>(img: &mut R, path: &str) -> Result<Extent, IsoError> {
    let image_len = img.seek(SeekFrom::End(0))?;
    let mut pvd = [0u8; 2048];
    img.seek(SeekFrom::Start(16 * SECTOR))?;
    img.read_exact(&mut pvd).map_err(|_| IsoError::NotIso)?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Err(IsoError::NotIso);
    }
    let root = parse_record(&pvd[156..190]).ok_or(IsoError::Malformed("bad root record"))?;
    let (mut lba, mut len) = (root.lba, root.len);
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(IsoError::NotFound(path.to_owned()));
    }
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let rec = read_dir(img, lba, len, image_len)?
            .into_iter()
            .find(|r| r.name == *part && r.is_dir != last)
            .ok_or_else(|| IsoError::NotFound(path.to_owned()))?;
        if last {
            let offset = u64::from(rec.lba) * SECTOR;
            if offset + u64::from(rec.len) > image_len {
                return Err(IsoError::Malformed("file extent beyond the end of the image"));
            }
            return Ok(Extent { offset, len: u64::from(rec.len) });
        }
        lba = rec.lba;
        len = rec.len;
    }
    unreachable!("the loop returns on the last component")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rng = 0x2545F4914F6CDD1Du64;
        for size in [0usize, 100, 40_000, 70_000] {
            let mut data = vec![0u8; size];
            for b in data.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            if size > 34_000 {
                data[32768] = 1;
                data[32769..32774].copy_from_slice(b"CD001");
            }
            assert!(find(&mut io::Cursor::new(data), "/a/b").is_err());
        }
    }
}
