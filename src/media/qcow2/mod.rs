//! A qcow2 overlay on top of a read-only base image that differs from it
//! only in a few byte ranges: per-VM media that cost what the per-VM data
//! costs, whatever the size of the base. qemu (and Xen's qemu device
//! model) read it as a whole disk, taking every cluster we did not write
//! from the backing file.
//!
//! Layout, in 64 KiB clusters: header (with the backing file's name and
//! format), refcount table, one refcount block, L1 table, the L2 tables
//! the changed clusters need, then the changed clusters themselves.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

mod header;
pub use header::{backing, backing_format, virtual_size};
use header::{EXT_BACKING_FORMAT, MAGIC};

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
const L2_ENTRIES: u64 = CLUSTER / 8;
const COPIED: u64 = 1 << 63;
/// One 16-bit refcount block covers this many clusters of the overlay.
const REFBLOCK_ENTRIES: u64 = CLUSTER / 2;
const HEADER_LEN: u32 = 104;

/// Writes to `out` an overlay of `base` (of `base_len` bytes, opened for
/// reading) in which `writes` (offset, bytes) replace the base's bytes.
/// `backing_name` is stored in the header: an absolute path.
pub fn write_overlay(
    out: &File,
    base: &mut File,
    base_len: u64,
    backing_name: &Path,
    writes: &[(u64, &[u8])],
) -> io::Result<()> {
    write_overlay_sized(out, base, base_len, base_len, backing_name, writes)
}

/// Like `write_overlay`, for a disk of `size` bytes (at least `base_len`):
/// past the base's end the guest reads zeros until it writes there.
pub fn write_overlay_sized(
    out: &File,
    base: &mut File,
    base_len: u64,
    size: u64,
    backing_name: &Path,
    writes: &[(u64, &[u8])],
) -> io::Result<()> {
    if size < base_len {
        return Err(io::Error::other("the overlay cannot be smaller than its base"));
    }
    let name = backing_name.as_os_str().as_encoded_bytes();
    if !backing_name.is_absolute() || name.len() > 1023 {
        return Err(io::Error::other("the backing file name must be an absolute path of at most 1023 bytes"));
    }
    // Guest clusters touched, with their new contents.
    let mut data: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for &(offset, bytes) in writes {
        let end = offset.checked_add(bytes.len() as u64).filter(|e| *e <= base_len);
        if end.is_none() {
            return Err(io::Error::other("a write falls outside the base image"));
        }
        let mut pos = offset;
        while pos < offset + bytes.len() as u64 {
            let c = pos / CLUSTER;
            let buf = match data.entry(c) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut b = vec![0u8; CLUSTER as usize];
                    let start = c * CLUSTER;
                    let n = CLUSTER.min(base_len - start) as usize;
                    base.seek(SeekFrom::Start(start))?;
                    base.read_exact(&mut b[..n])?;
                    e.insert(b)
                }
            };
            let in_cluster = (pos % CLUSTER) as usize;
            let take = (CLUSTER as usize - in_cluster).min((offset + bytes.len() as u64 - pos) as usize);
            let from = (pos - offset) as usize;
            buf[in_cluster..in_cluster + take].copy_from_slice(&bytes[from..from + take]);
            pos += take as u64;
        }
    }

    let guest_clusters = size.div_ceil(CLUSTER);
    let l1_size = guest_clusters.div_ceil(L2_ENTRIES).max(1);
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER);
    let l2_indices: Vec<u64> = {
        let mut v: Vec<u64> = data.keys().map(|c| c / L2_ENTRIES).collect();
        v.dedup();
        v
    };
    let reftable_at = 1;
    let refblock_at = 2;
    let l1_at = 3;
    let l2_at = l1_at + l1_clusters;
    let data_at = l2_at + l2_indices.len() as u64;
    let total_clusters = data_at + data.len() as u64;
    if total_clusters > REFBLOCK_ENTRIES {
        return Err(io::Error::other("too much per-VM data for one refcount block"));
    }

    let h = header(size, l1_size, l1_at, Some(name));

    let mut reftable = vec![0u8; CLUSTER as usize];
    reftable[..8].copy_from_slice(&(refblock_at * CLUSTER).to_be_bytes());
    let mut refblock = vec![0u8; CLUSTER as usize];
    for c in 0..total_clusters as usize {
        refblock[c * 2..c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    let mut l1 = vec![0u8; (l1_clusters * CLUSTER) as usize];
    let mut l2s = vec![vec![0u8; CLUSTER as usize]; l2_indices.len()];
    for (i, l1_index) in l2_indices.iter().enumerate() {
        let at = (*l1_index * 8) as usize;
        l1[at..at + 8].copy_from_slice((((l2_at + i as u64) * CLUSTER) | COPIED).to_be_bytes().as_slice());
    }
    for (n, c) in data.keys().enumerate() {
        let i = l2_indices.binary_search(&(c / L2_ENTRIES)).map_err(|_| io::Error::other("L2 index"))?;
        let at = ((c % L2_ENTRIES) * 8) as usize;
        l2s[i][at..at + 8].copy_from_slice((((data_at + n as u64) * CLUSTER) | COPIED).to_be_bytes().as_slice());
    }

    out.write_all_at(&h, 0)?;
    out.write_all_at(&reftable, reftable_at * CLUSTER)?;
    out.write_all_at(&refblock, refblock_at * CLUSTER)?;
    out.write_all_at(&l1, l1_at * CLUSTER)?;
    for (i, l2) in l2s.iter().enumerate() {
        out.write_all_at(l2, (l2_at + i as u64) * CLUSTER)?;
    }
    for (n, bytes) in data.values().enumerate() {
        out.write_all_at(bytes, (data_at + n as u64) * CLUSTER)?;
    }
    Ok(())
}

/// The image header (cluster 0): version 3, 64 KiB clusters, 16-bit
/// refcounts, the refcount table in cluster 1, the L1 table at cluster
/// `l1_at`, and the backing file's name (format "raw", so qemu never
/// probes it) if there is one.
fn header(size: u64, l1_size: u64, l1_at: u64, backing: Option<&[u8]>) -> Vec<u8> {
    let mut h = Vec::with_capacity(CLUSTER as usize);
    let name_at: u64 = u64::from(HEADER_LEN) + 16 + 8;
    let (backing_at, backing_len) = backing.map_or((0, 0), |n| (name_at, n.len() as u32));
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&3u32.to_be_bytes());
    h.extend_from_slice(&backing_at.to_be_bytes());
    h.extend_from_slice(&backing_len.to_be_bytes());
    h.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    h.extend_from_slice(&size.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes()); // no encryption
    h.extend_from_slice(&(l1_size as u32).to_be_bytes());
    h.extend_from_slice(&(l1_at * CLUSTER).to_be_bytes());
    h.extend_from_slice(&CLUSTER.to_be_bytes()); // refcount table: cluster 1
    h.extend_from_slice(&1u32.to_be_bytes()); // refcount table clusters
    h.extend_from_slice(&0u32.to_be_bytes()); // snapshots
    h.extend_from_slice(&0u64.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes()); // incompatible features
    h.extend_from_slice(&0u64.to_be_bytes()); // compatible features
    h.extend_from_slice(&0u64.to_be_bytes()); // autoclear features
    h.extend_from_slice(&4u32.to_be_bytes()); // refcount order: 16-bit
    h.extend_from_slice(&HEADER_LEN.to_be_bytes());
    debug_assert_eq!(h.len(), HEADER_LEN as usize);
    if backing.is_some() {
        h.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
        h.extend_from_slice(&3u32.to_be_bytes());
        h.extend_from_slice(b"raw\0\0\0\0\0");
    }
    h.extend_from_slice(&[0u8; 8]); // end of header extensions
    if let Some(name) = backing {
        debug_assert_eq!(h.len() as u64, name_at);
        h.extend_from_slice(name);
    }
    h
}

/// Writes to `out` (empty) a qcow2 image of `size` bytes as the guest
/// sees it, with no backing file and no data: every cluster reads as
/// zeros until the guest writes it.
pub fn write_blank(out: &File, size: u64) -> io::Result<()> {
    let l1_size = size.div_ceil(CLUSTER).div_ceil(L2_ENTRIES).max(1);
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER);
    let (reftable_at, refblock_at, l1_at) = (1u64, 2u64, 3u64);
    let total_clusters = l1_at + l1_clusters;
    if total_clusters > REFBLOCK_ENTRIES || l1_size > u64::from(u32::MAX) {
        return Err(io::Error::other("the image is too large for one refcount block"));
    }
    let mut reftable = vec![0u8; CLUSTER as usize];
    reftable[..8].copy_from_slice(&(refblock_at * CLUSTER).to_be_bytes());
    let mut refblock = vec![0u8; CLUSTER as usize];
    for c in 0..total_clusters as usize {
        refblock[c * 2..c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    out.write_all_at(&header(size, l1_size, l1_at, None), 0)?;
    out.write_all_at(&reftable, reftable_at * CLUSTER)?;
    out.write_all_at(&refblock, refblock_at * CLUSTER)?;
    // The L1 table is all zeros: a hole up to the file's end.
    out.set_len(total_clusters * CLUSTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// qemu-img itself checks the overlay and reads it back.
    #[test]
    fn qemu_img_reads_back_exactly_the_base_with_our_writes() {
        let d = tempfile::tempdir().unwrap();
        let base_path = d.path().join("base.img");
        // 5 clusters and a bit, so the last cluster is partial, and a size
        // spanning two L2 tables is covered by the L1 arithmetic below.
        let len = 5 * CLUSTER + 4096;
        let base: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&base_path, &base).unwrap();
        let a = vec![0xaa; 70_000]; // crosses a cluster boundary
        let b = vec![0xbb; 100];
        let c = vec![0xcc; 4096]; // the partial last cluster
        let writes: [(u64, &[u8]); 3] = [(CLUSTER - 1000, &a), (3 * CLUSTER + 5, &b), (5 * CLUSTER, &c)];
        let out_path = d.path().join("over.qcow2");
        let out = File::create(&out_path).unwrap();
        write_overlay(&out, &mut File::open(&base_path).unwrap(), len, &base_path, &writes).unwrap();
        drop(out);

        let check = Command::new("qemu-img").args(["check", "-f", "qcow2"]).arg(&out_path).output().unwrap();
        assert!(check.status.success(), "qemu-img check: {}", String::from_utf8_lossy(&check.stdout));
        let raw = d.path().join("raw");
        let conv = Command::new("qemu-img").args(["convert", "-f", "qcow2", "-O", "raw"]).arg(&out_path).arg(&raw).output().unwrap();
        assert!(conv.status.success(), "{}", String::from_utf8_lossy(&conv.stderr));
        let mut expect = base.clone();
        for (off, bytes) in writes {
            expect[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
        }
        assert!(std::fs::read(&raw).unwrap() == expect, "overlay does not read back as base + writes");
        // Only the touched clusters are stored: 5 data clusters (0, 1, 2, 3
        // and 5) after header, refcount table and block, L1 and one L2.
        assert_eq!(std::fs::metadata(&out_path).unwrap().len(), 10 * CLUSTER);
    }

    /// A disk larger than its base: qemu-img sees the size, and the part
    /// past the base reads as zeros.
    #[test]
    fn an_overlay_may_be_larger_than_its_base() {
        let d = tempfile::tempdir().unwrap();
        let base_path = d.path().join("base.img");
        std::fs::write(&base_path, vec![0x11u8; 3 * CLUSTER as usize]).unwrap();
        let out_path = d.path().join("big.qcow2");
        let out = File::create(&out_path).unwrap();
        let size = 3 * L2_ENTRIES * CLUSTER + 5 * CLUSTER; // needs four L1 entries
        let mut base = File::open(&base_path).unwrap();
        write_overlay_sized(&out, &mut base, 3 * CLUSTER, size, &base_path, &[(0, &[0x22u8; 10])]).unwrap();
        assert_eq!(virtual_size(&File::open(&out_path).unwrap()), Some(size));
        assert!(write_overlay_sized(&out, &mut base, 3 * CLUSTER, CLUSTER, &base_path, &[]).is_err());
        drop(out);
        let check = Command::new("qemu-img").args(["check", "-f", "qcow2"]).arg(&out_path).output().unwrap();
        assert!(check.status.success(), "qemu-img check: {}", String::from_utf8_lossy(&check.stdout));
        let info = Command::new("qemu-img").args(["info", "--output=json"]).arg(&out_path).output().unwrap();
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        assert!(info.contains(&format!("\"virtual-size\": {size}")), "{info}");
        let raw = d.path().join("raw");
        let conv = Command::new("qemu-img").args(["convert", "-f", "qcow2", "-O", "raw"]).arg(&out_path).arg(&raw).output().unwrap();
        assert!(conv.status.success());
        // (qemu-img writes the raw file sparse: read only some of it.)
        let raw = File::open(&raw).unwrap();
        assert_eq!(raw.metadata().unwrap().len(), size);
        let mut head = vec![0u8; 4 * CLUSTER as usize];
        raw.read_exact_at(&mut head, 0).unwrap();
        assert!(head[..10].iter().all(|b| *b == 0x22) && head[10..3 * CLUSTER as usize].iter().all(|b| *b == 0x11));
        assert!(head[3 * CLUSTER as usize..].iter().all(|b| *b == 0));
        raw.read_exact_at(&mut head, size - 4 * CLUSTER).unwrap();
        assert!(head.iter().all(|b| *b == 0));
        assert_eq!(virtual_size(&File::open(&base_path).unwrap()), None);
    }

    #[test]
    fn writes_outside_the_base_and_relative_backing_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let base_path = d.path().join("base.img");
        std::fs::write(&base_path, vec![0u8; 4096]).unwrap();
        let out = File::create(d.path().join("o")).unwrap();
        let mut base = File::open(&base_path).unwrap();
        assert!(write_overlay(&out, &mut base, 4096, &base_path, &[(4000, &[1u8; 200])]).is_err());
        assert!(write_overlay(&out, &mut base, 4096, &base_path, &[(u64::MAX, &[1u8; 2])]).is_err());
        assert!(write_overlay(&out, &mut base, 4096, Path::new("base.img"), &[]).is_err());
    }

    /// A blank image qemu-img accepts, of the size asked, reading as zeros,
    /// costing a few clusters whatever its size (2 TiB: more than one L1
    /// cluster's worth of L2 tables).
    #[test]
    fn blank_images_are_what_qemu_img_expects() {
        let d = tempfile::tempdir().unwrap();
        for size in [64u64 << 20, 20 << 30, (2 << 40) + (64 << 20)] {
            let p = d.path().join(format!("blank-{size}.qcow2"));
            write_blank(&File::create(&p).unwrap(), size).unwrap();
            let check = Command::new("qemu-img").args(["check", "-f", "qcow2"]).arg(&p).output().unwrap();
            assert!(check.status.success(), "qemu-img check: {}", String::from_utf8_lossy(&check.stdout));
            let info = Command::new("qemu-img").args(["info", "--output=json"]).arg(&p).output().unwrap();
            let info = String::from_utf8_lossy(&info.stdout).into_owned();
            assert!(info.contains(&format!("\"virtual-size\": {size}")) && !info.contains("backing"), "{info}");
            assert_eq!(virtual_size(&File::open(&p).unwrap()), Some(size));
            use std::os::unix::fs::MetadataExt;
            assert!(std::fs::metadata(&p).unwrap().blocks() * 512 <= 4 * CLUSTER, "blank image is not small");
        }
        let raw = d.path().join("raw");
        let conv = Command::new("qemu-img").args(["convert", "-f", "qcow2", "-O", "raw"]).arg(d.path().join(format!("blank-{}.qcow2", 64u64 << 20))).arg(&raw).output().unwrap();
        assert!(conv.status.success(), "{}", String::from_utf8_lossy(&conv.stderr));
        assert!(std::fs::read(&raw).unwrap().iter().all(|b| *b == 0));
    }
}
