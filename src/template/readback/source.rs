//! Where the filesystem's bytes come from: a partition of the build
//! machine's disk, or (fuzzing, tests) a slice. Reads past the end fail.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of a filesystem, read at offsets relative to its start.
pub trait Source {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A partition of a disk (or a whole image file).
pub struct Region {
    pub file: File,
    pub start: u64,
    pub len: u64,
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "a read past the end of the filesystem")
}

impl Source for Region {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        off.checked_add(buf.len() as u64).filter(|e| *e <= self.len).ok_or_else(out_of_range)?;
        self.file.read_exact_at(buf, self.start + off)
    }
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| out_of_range())?;
        let src = start.checked_add(buf.len()).and_then(|end| self.get(start..end)).ok_or_else(out_of_range)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
