//! A gzip'd newc cpio archive holding `/preseed.cfg`. The kernel unpacks
//! every archive in its initrd, one after another, so this can be loaded
//! as a second initrd (isolinux `initrd=a,b`) or appended to the image's
//! own; d-i reads `/preseed.cfg` from its initramfs by itself.

use flate2::{write::GzEncoder, Compression};
use std::io::{self, Write};

/// Writes the archive to `out`.
pub fn write_preseed_cpio<W: Write>(preseed: &[u8], out: W) -> io::Result<W> {
    let mut gz = GzEncoder::new(out, Compression::default());
    {
        let entry = cpio::newc::Builder::new("preseed.cfg").mode(0o100600).uid(0).gid(0).nlink(1);
        let mut w = entry.write(&mut gz, preseed.len() as u32);
        w.write_all(preseed)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut gz)?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn archive_round_trips_through_cpio_reader() {
        let data = write_preseed_cpio(b"d-i x string y\n", Vec::new()).unwrap();
        let mut gz = flate2::read::GzDecoder::new(&data[..]);
        let mut raw = Vec::new();
        gz.read_to_end(&mut raw).unwrap();
        let mut r = cpio::NewcReader::new(&raw[..]).unwrap();
        assert_eq!(r.entry().name(), "preseed.cfg");
        assert_eq!(r.entry().mode(), 0o100600);
        let mut body = String::new();
        r.read_to_string(&mut body).unwrap();
        assert_eq!(body, "d-i x string y\n");
        let next = r.finish().unwrap();
        assert!(cpio::NewcReader::new(next).unwrap().entry().is_trailer());
    }
}
