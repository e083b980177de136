//! `export` and `import`: an instance's disk as a stream that carries only
//! what is not zero, so that a 20 GiB disk holding 600 MiB of system
//! costs 600 MiB on the wire (Ganeti pipes the stream to the export's
//! node, and back into `import`).
//!
//! Format: the line `guest-installer-disk 1\n`, the disk's size (u64,
//! big-endian), then records `offset u64, length u32, bytes`, in
//! increasing offset order, non-overlapping, and the end record
//! `u64::MAX, 0`. What no record covers reads as zeros.
//!
//! `import` treats the stream as untrusted: a record out of order, past
//! the size, too long, a truncated stream or a disk too small is refused.

use crate::blocks;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

const MAGIC: &[u8] = b"guest-installer-disk 1\n";
/// Record size: large enough for throughput, small enough to skip zeros.
const CHUNK: usize = 1 << 20;
const END: u64 = u64::MAX;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read the disk: {0}")]
    Read(io::Error),
    #[error("cannot write the stream: {0}")]
    Out(io::Error),
    #[error("cannot read the stream: {0}")]
    In(io::Error),
    #[error("cannot write the disk: {0}")]
    Write(io::Error),
    #[error("not an export of this OS definition (bad header)")]
    Header,
    #[error("the stream is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("the disk holds {have} bytes, less than the exported disk's {need}; import onto a disk at least as large")]
    TooSmall { have: u64, need: u64 },
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// Writes the disk's stream to `out`; returns the bytes written. The size
/// estimate (the data extents, before zero chunks are dropped) goes to
/// `size_out` first, as Ganeti's progress report wants it.
pub fn export(disk: &File, out: &mut impl Write, size_out: Option<&mut dyn Write>) -> Result<u64, StreamError> {
    let len = blocks::len(disk).map_err(StreamError::Read)?;
    let ext = blocks::data_extents(disk, len).map_err(StreamError::Read)?;
    if let Some(w) = size_out {
        let data: u64 = ext.iter().map(|(a, b)| b - a).sum();
        let estimate = MAGIC.len() as u64 + 8 + data + 12 * (data / CHUNK as u64 + ext.len() as u64 + 1);
        let _ = writeln!(w, "{estimate}");
        let _ = w.flush();
    }
    let mut written = 0u64;
    let mut put = |b: &[u8]| -> Result<(), StreamError> {
        written += b.len() as u64;
        out.write_all(b).map_err(StreamError::Out)
    };
    put(MAGIC)?;
    put(&len.to_be_bytes())?;
    let mut buf = vec![0u8; CHUNK];
    for (start, end) in ext {
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(CHUNK);
            disk.read_exact_at(&mut buf[..n], at).map_err(StreamError::Read)?;
            if !is_zero(&buf[..n]) {
                put(&at.to_be_bytes())?;
                put(&(n as u32).to_be_bytes())?;
                put(&buf[..n])?;
            }
            at += n as u64;
        }
    }
    put(&END.to_be_bytes())?;
    put(&0u32.to_be_bytes())?;
    out.flush().map_err(StreamError::Out)?;
    Ok(written)
}

fn read_exact(input: &mut impl Read, b: &mut [u8]) -> Result<(), StreamError> {
    input.read_exact(b).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { StreamError::Corrupt("it ends early") } else { StreamError::In(e) })
}

/// Writes a stream made by `export` onto `disk`; returns the exported
/// disk's size. Regions no record covers are zeroed.
pub fn import(input: &mut impl Read, disk: &File) -> Result<u64, StreamError> {
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|_| StreamError::Header)?;
    if magic != MAGIC {
        return Err(StreamError::Header);
    }
    let mut w8 = [0u8; 8];
    let mut w4 = [0u8; 4];
    read_exact(input, &mut w8)?;
    let size = u64::from_be_bytes(w8);
    let have = blocks::len(disk).map_err(StreamError::Write)?;
    if have < size {
        return Err(StreamError::TooSmall { have, need: size });
    }
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        read_exact(input, &mut w8)?;
        read_exact(input, &mut w4)?;
        let (off, n) = (u64::from_be_bytes(w8), u32::from_be_bytes(w4) as usize);
        if off == END && n == 0 {
            break;
        }
        if n == 0 || n > CHUNK {
            return Err(StreamError::Corrupt("a record has a bad length"));
        }
        if off < done || off.checked_add(n as u64).is_none_or(|e| e > size) {
            return Err(StreamError::Corrupt("a record is out of order or past the disk's end"));
        }
        read_exact(input, &mut buf[..n])?;
        if off > done {
            blocks::zero(disk, done, off - done).map_err(StreamError::Write)?;
        }
        disk.write_all_at(&buf[..n], off).map_err(StreamError::Write)?;
        done = off + n as u64;
    }
    if size > done {
        blocks::zero(disk, done, size - done).map_err(StreamError::Write)?;
    }
    let mut extra = [0u8; 1];
    if input.read(&mut extra).map_err(StreamError::In)? != 0 {
        return Err(StreamError::Corrupt("it goes on after its end record"));
    }
    disk.sync_all().map_err(StreamError::Write)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dir: &std::path::Path, name: &str, len: u64, fill: u8) -> File {
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.join(name)).unwrap();
        f.set_len(len).unwrap();
        if fill != 0 {
            f.write_all_at(&vec![fill; len as usize], 0).unwrap();
        }
        f
    }

    #[test]
    fn round_trip_carries_data_not_zeros() {
        let d = tempfile::tempdir().unwrap();
        let src = disk(d.path(), "src", 16 << 20, 0);
        src.write_all_at(&[7u8; 5000], 3 << 20).unwrap();
        src.write_all_at(&[0u8; 1 << 20], 6 << 20).unwrap(); // allocated zeros
        src.write_all_at(b"tail", (16 << 20) - 4).unwrap();
        let mut stream = Vec::new();
        let mut size = Vec::new();
        let n = export(&src, &mut stream, Some(&mut size)).unwrap();
        assert_eq!(n as usize, stream.len());
        assert!(stream.len() < 3 << 20, "{} bytes for 2 MiB of data", stream.len());
        let est: usize = String::from_utf8(size).unwrap().trim().parse().unwrap();
        assert!(est >= stream.len(), "estimate {est} < {}", stream.len());
        // The target held something else: every byte must match afterwards.
        let dst = disk(d.path(), "dst", 20 << 20, 0x55);
        assert_eq!(import(&mut stream.as_slice(), &dst).unwrap(), 16 << 20);
        let (a, b) = (std::fs::read(d.path().join("src")).unwrap(), std::fs::read(d.path().join("dst")).unwrap());
        assert!(a == b[..a.len()]);
        // Too small a disk, a bad header, a truncated or tampered stream.
        let small = disk(d.path(), "small", 8 << 20, 0x55);
        assert!(matches!(import(&mut stream.as_slice(), &small), Err(StreamError::TooSmall { .. })));
        assert!(matches!(import(&mut &b"garbage"[..], &dst), Err(StreamError::Header)));
        assert!(matches!(import(&mut &stream[..stream.len() - 5], &dst), Err(StreamError::Corrupt(_))));
        let mut past = stream.clone();
        let at = MAGIC.len() + 8; // the first record's offset
        past[at..at + 8].copy_from_slice(&((16u64 << 20) - 10).to_be_bytes());
        assert!(matches!(import(&mut past.as_slice(), &dst), Err(StreamError::Corrupt(_))));
        let mut more = stream.clone();
        more.push(0);
        assert!(matches!(import(&mut more.as_slice(), &dst), Err(StreamError::Corrupt(_))));
    }
}
