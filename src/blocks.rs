//! A disk's bytes on a regular file and on a block device alike: its size,
//! where its data lies (`SEEK_DATA`/`SEEK_HOLE`), making a range read as
//! zeros without writing it, and the sparse copy built on those. Clones
//! and Ganeti's disk streams both go through here, so there is one idea
//! of what a hole is.

use nix::unistd::{lseek, Whence};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};

const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKZEROOUT: libc::c_ulong = 0x127f;

fn is_device(f: &File) -> io::Result<bool> {
    Ok(f.metadata()?.file_type().is_block_device())
}

/// The size of a file, or of a block device (which `metadata` says is 0).
pub fn len(f: &File) -> io::Result<u64> {
    let md = f.metadata()?;
    if !md.file_type().is_block_device() {
        return Ok(md.len());
    }
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// The ranges `[start, end)` of the first `len` bytes of `f` that may hold
/// data, in order. What lies between them reads as zeros. A block device
/// (or a file system that cannot tell) is one range.
pub fn data_extents(f: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    if !f.metadata()?.is_file() {
        return Ok(if len > 0 { vec![(0, len)] } else { Vec::new() });
    }
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let data = match lseek(f.as_raw_fd(), pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= len {
            break;
        }
        let hole = (lseek(f.as_raw_fd(), data as i64, Whence::SeekHole)? as u64).min(len);
        out.push((data, hole));
        pos = hole;
    }
    Ok(out)
}

/// Makes `[off, off+n)` of `dst` read as zeros: a punched hole in a file
/// (it needs no free space), BLKZEROOUT on a device (cheap on thin
/// volumes); written zeros where neither is supported.
pub fn zero(dst: &File, off: u64, n: u64) -> io::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let fd = dst.as_raw_fd();
    let done = if is_device(dst)? {
        let range: [u64; 2] = [off, n];
        // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer.
        off.is_multiple_of(512) && n.is_multiple_of(512) && unsafe { libc::ioctl(fd, BLKZEROOUT, range.as_ptr()) } == 0
    } else {
        // SAFETY: plain fallocate(2) on an open descriptor.
        unsafe { libc::fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off as i64, n as i64) == 0 }
    };
    if done {
        return Ok(());
    }
    let zeros = vec![0u8; (1 << 20).min(n as usize)];
    let mut at = off;
    while at < off + n {
        let k = ((off + n - at) as usize).min(zeros.len());
        dst.write_all_at(&zeros[..k], at)?;
        at += k as u64;
    }
    Ok(())
}

/// Copies the first `len` bytes of `src` onto `dst`: data extents are
/// copied, the holes between them made to read as zeros (see [`zero`]).
/// The rest of a larger `dst` is left as it was.
pub fn copy_sparse(src: &File, len: u64, dst: &File) -> io::Result<()> {
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    for (start, end) in data_extents(src, len)? {
        zero(dst, done, start - done)?;
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], at)?;
            dst.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        done = end;
    }
    zero(dst, done, len - done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn extents_find_data_and_a_copy_keeps_holes_as_holes() {
        let d = tempfile::tempdir().unwrap();
        let src = File::options().read(true).write(true).create(true).truncate(true).open(d.path().join("src")).unwrap();
        src.set_len(8 << 20).unwrap();
        src.write_all_at(&[0xaa; 4096], 0).unwrap();
        src.write_all_at(&[0xbb; 8192], 5 << 20).unwrap();
        let ext = data_extents(&src, 8 << 20).unwrap();
        assert_eq!(ext.first().map(|e| e.0), Some(0));
        assert!(ext.iter().all(|(a, b)| a < b && *b <= 8 << 20));
        let covered: u64 = ext.iter().map(|(a, b)| b - a).sum();
        assert!(covered < 8 << 20, "holes were seen: {ext:?}");
        assert!(data_extents(&src, 0).unwrap().is_empty());

        let dst = File::options().read(true).write(true).create(true).truncate(true).open(d.path().join("dst")).unwrap();
        dst.write_all_at(&vec![0x55u8; 10 << 20], 0).unwrap();
        copy_sparse(&src, 8 << 20, &dst).unwrap();
        let got = std::fs::read(d.path().join("dst")).unwrap();
        let want = std::fs::read(d.path().join("src")).unwrap();
        assert_eq!(&got[..8 << 20], &want[..]);
        assert!(got[8 << 20..].iter().all(|b| *b == 0x55), "beyond len is left alone");
        assert!(dst.metadata().unwrap().blocks() * 512 < 6 << 20, "holes were punched");
        assert_eq!(len(&dst).unwrap(), 10 << 20);
    }
}
