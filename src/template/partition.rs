//! Reads an installed disk's partition table (MBR with its logical
//! partitions, or GPT) and finds its ext4 filesystems, without mounting
//! anything and without trusting the disk: every offset is checked against
//! the disk's size, and chains are bounded.
//!
//! Sectors are taken to be 512 bytes (what virtual disks and d-i use);
//! GPT checksums are not verified (a disk whose table is damaged gives no
//! usable ext4 partition, and the build fails).

use std::io::{self, Read, Seek, SeekFrom};

const SECTOR: u64 = 512;
/// ext4's superblock starts 1024 bytes into the filesystem; its magic
/// (0xEF53, little-endian) is 56 bytes into the superblock.
const EXT4_MAGIC_AT: u64 = 1024 + 56;
/// Logical partitions followed at most (Linux numbers up to 255 minors).
const MAX_LOGICAL: usize = 128;
const MAX_GPT_ENTRIES: u32 = 1024;

/// One partition, in bytes from the start of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Linux's number: 1–4 primary, 5… logical, GPT entries from 1.
    pub number: u32,
    pub start: u64,
    pub len: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot read the disk: {0}")]
    Io(#[from] io::Error),
    #[error("the disk has no partition table (no MBR signature): did the install finish?")]
    NoTable,
    #[error("the disk's partition table is malformed: {0}")]
    Malformed(&'static str),
}

fn read_at<R: Read + Seek>(f: &mut R, off: u64, buf: &mut [u8]) -> io::Result<()> {
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(buf)
}

fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u64le(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The disk's size: a file's length, or a block device's (seek to its end).
fn disk_len<R: Seek>(f: &mut R) -> io::Result<u64> {
    f.seek(SeekFrom::End(0))
}

/// The four MBR entries of the sector at `off`: (type, first LBA, sectors).
fn mbr_entries(sector: &[u8; 512]) -> Result<[(u8, u64, u64); 4], PartitionError> {
    if sector[510..512] != [0x55, 0xAA] {
        return Err(PartitionError::NoTable);
    }
    let mut out = [(0u8, 0u64, 0u64); 4];
    for (i, e) in out.iter_mut().enumerate() {
        let b = &sector[446 + 16 * i..446 + 16 * (i + 1)];
        *e = (b[4], u64::from(u32le(&b[8..12])), u64::from(u32le(&b[12..16])));
    }
    Ok(out)
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0f | 0x85)
}

/// Every partition on the disk, in Linux's order.
pub fn partitions<R: Read + Seek>(f: &mut R) -> Result<Vec<Partition>, PartitionError> {
    let size = disk_len(f)?;
    let mut mbr = [0u8; 512];
    read_at(f, 0, &mut mbr)?;
    let entries = mbr_entries(&mbr)?;
    if entries.iter().any(|e| e.0 == 0xee) {
        return gpt(f, size);
    }
    let mut out = Vec::new();
    let mut extended = None;
    for (i, &(t, lba, n)) in entries.iter().enumerate() {
        if t == 0 || n == 0 {
            continue;
        }
        if is_extended(t) {
            extended = Some((lba, n));
            continue;
        }
        out.push(checked(i as u32 + 1, lba, n, size)?);
    }
    if let Some((ext_start, ext_len)) = extended {
        // Each EBR holds one logical partition (relative to the EBR) and a
        // link to the next EBR (relative to the extended partition).
        let mut ebr = ext_start;
        for number in 5..5 + MAX_LOGICAL as u32 {
            if ebr.checked_mul(SECTOR).is_none_or(|b| b + SECTOR > size) {
                return Err(PartitionError::Malformed("a logical partition's table lies beyond the disk"));
            }
            let mut sector = [0u8; 512];
            read_at(f, ebr * SECTOR, &mut sector)?;
            let e = mbr_entries(&sector).map_err(|_| PartitionError::Malformed("a logical partition's table has no signature"))?;
            let (t, lba, n) = e[0];
            if t != 0 && n != 0 {
                out.push(checked(number, ebr + lba, n, size)?);
            }
            let (nt, next, _) = e[1];
            if !is_extended(nt) || next == 0 {
                break;
            }
            if next >= ext_len {
                return Err(PartitionError::Malformed("a logical partition link leaves the extended partition"));
            }
            ebr = ext_start + next;
        }
    }
    Ok(out)
}

fn checked(number: u32, lba: u64, sectors: u64, size: u64) -> Result<Partition, PartitionError> {
    let start = lba.checked_mul(SECTOR).ok_or(PartitionError::Malformed("a partition starts beyond the disk"))?;
    let len = sectors.checked_mul(SECTOR).ok_or(PartitionError::Malformed("a partition is too large"))?;
    if start == 0 || start.checked_add(len).is_none_or(|end| end > size) {
        return Err(PartitionError::Malformed("a partition lies beyond the end of the disk"));
    }
    Ok(Partition { number, start, len })
}

/// GPT: the header in LBA 1, then its entry array.
fn gpt<R: Read + Seek>(f: &mut R, size: u64) -> Result<Vec<Partition>, PartitionError> {
    let mut h = [0u8; 92];
    read_at(f, SECTOR, &mut h)?;
    if &h[0..8] != b"EFI PART" {
        return Err(PartitionError::Malformed("protective MBR without a GPT header"));
    }
    let (array, count, esize) = (u64le(&h[72..80]), u32le(&h[80..84]), u32le(&h[84..88]));
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&esize) {
        return Err(PartitionError::Malformed("implausible GPT entry array"));
    }
    let mut out = Vec::new();
    let mut e = vec![0u8; esize as usize];
    for i in 0..count {
        let off = array
            .checked_mul(SECTOR)
            .and_then(|a| a.checked_add(u64::from(i) * u64::from(esize)))
            .filter(|o| o.checked_add(u64::from(esize)).is_some_and(|end| end <= size))
            .ok_or(PartitionError::Malformed("the GPT entry array lies beyond the disk"))?;
        read_at(f, off, &mut e)?;
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let (first, last) = (u64le(&e[32..40]), u64le(&e[40..48]));
        if last < first {
            return Err(PartitionError::Malformed("a GPT entry ends before it starts"));
        }
        out.push(checked(i + 1, first, last - first + 1, size)?);
    }
    Ok(out)
}

/// Whether an ext2/3/4 superblock starts the partition.
pub fn is_ext4<R: Read + Seek>(f: &mut R, p: &Partition) -> io::Result<bool> {
    if p.len < EXT4_MAGIC_AT + 2 {
        return Ok(false);
    }
    let mut m = [0u8; 2];
    read_at(f, p.start + EXT4_MAGIC_AT, &mut m)?;
    Ok(m == [0x53, 0xEF])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn entry(t: u8, lba: u32, n: u32) -> [u8; 16] {
        let mut e = [0u8; 16];
        e[4] = t;
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&n.to_le_bytes());
        e
    }

    fn table(img: &mut [u8], at: usize, entries: &[[u8; 16]]) {
        for (i, e) in entries.iter().enumerate() {
            img[at + 446 + 16 * i..at + 446 + 16 * (i + 1)].copy_from_slice(e);
        }
        img[at + 510] = 0x55;
        img[at + 511] = 0xAA;
    }

    fn file(img: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(img).unwrap();
        f
    }

    #[test]
    fn primary_and_logical_partitions_as_linux_numbers_them() {
        // 4 MiB disk: p1 at 1 MiB (1 MiB, ext4 magic), p2 extended from
        // 2 MiB holding p5 (256 KiB) and p6 (256 KiB).
        let mut img = vec![0u8; 4 << 20];
        table(&mut img, 0, &[entry(0x83, 2048, 2048), entry(0x05, 4096, 2048)]);
        table(&mut img, 4096 * 512, &[entry(0x82, 1, 512), entry(0x05, 1024, 513)]);
        table(&mut img, (4096 + 1024) * 512, &[entry(0x83, 1, 512)]);
        img[2048 * 512 + 1080] = 0x53;
        img[2048 * 512 + 1081] = 0xEF;
        let mut f = file(&img);
        let ps = partitions(&mut f).unwrap();
        assert_eq!(
            ps,
            vec![
                Partition { number: 1, start: 2048 * 512, len: 1 << 20 },
                Partition { number: 5, start: 4097 * 512, len: 256 << 10 },
                Partition { number: 6, start: 5121 * 512, len: 256 << 10 },
            ]
        );
        assert!(is_ext4(&mut f, &ps[0]).unwrap());
        assert!(!is_ext4(&mut f, &ps[1]).unwrap());
    }

    #[test]
    fn hostile_tables_are_refused() {
        let mut f = file(&vec![0u8; 1 << 20]);
        assert!(matches!(partitions(&mut f), Err(PartitionError::NoTable)));
        // A partition past the end of the disk.
        let mut img = vec![0u8; 1 << 20];
        table(&mut img, 0, &[entry(0x83, 2048, 4096)]);
        assert!(matches!(partitions(&mut file(&img)), Err(PartitionError::Malformed(_))));
        // A logical chain that loops back on itself ends (bounded).
        let mut img = vec![0u8; 1 << 20];
        table(&mut img, 0, &[entry(0x05, 1024, 1024)]);
        table(&mut img, 1024 * 512, &[entry(0x83, 1, 8), entry(0x05, 0, 8)]);
        assert_eq!(partitions(&mut file(&img)).unwrap().len(), 1);
        let mut img = vec![0u8; 1 << 20];
        table(&mut img, 0, &[entry(0x05, 1024, 1024)]);
        table(&mut img, 1024 * 512, &[entry(0x83, 1, 8), entry(0x05, 512, 8)]);
        table(&mut img, 1536 * 512, &[entry(0x83, 1, 8), entry(0x05, 512, 8)]);
        assert!(partitions(&mut file(&img)).unwrap().len() <= MAX_LOGICAL);
    }

    #[test]
    fn gpt_entries() {
        let mut img = vec![0u8; 2 << 20];
        table(&mut img, 0, &[entry(0xee, 1, 4095)]);
        img[512..520].copy_from_slice(b"EFI PART");
        img[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        img[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        img[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        // Entry 2 (entry 1 unused): sectors 2048..=3071.
        let e = 1024 + 128;
        img[e] = 1;
        img[e + 32..e + 40].copy_from_slice(&2048u64.to_le_bytes());
        img[e + 40..e + 48].copy_from_slice(&3071u64.to_le_bytes());
        let ps = partitions(&mut file(&img)).unwrap();
        assert_eq!(ps, vec![Partition { number: 2, start: 2048 * 512, len: 1024 * 512 }]);
    }
}
