//! The few on-disk ext4 structures the read-back needs (superblock, group
//! descriptors, inodes, extent trees, directory blocks, extended
//! attributes), parsed from a disk the guest wrote: every field is checked
//! before use, every read is bounded by the filesystem's size, and nothing
//! follows a chain the disk could make endless.
//!
//! Not supported, refused with a clear error: a filesystem that needs
//! journal recovery (not cleanly unmounted), meta_bg, compression, a
//! separate journal device, dirdata, and inodes without extents (ext2/ext3
//! block maps), inline data or encryption. d-i makes ext4 with extents and
//! unmounts it before the machine stops. Checksums are not verified: a
//! damaged block reads as what it holds, and the checks below still apply.
//! The format: <https://docs.kernel.org/filesystems/ext4/>.

use std::io;

pub use super::source::{Region, Source};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot read the filesystem: {0}")]
    Io(#[from] io::Error),
    #[error("the filesystem is corrupt or crafted: {0}")]
    Corrupt(String),
    #[error("the filesystem uses {0}, which the read-back does not support")]
    Unsupported(&'static str),
    #[error("directory inode {0} holds more entries than the read-back allows")]
    TooManyEntries(u32),
}

/// How much one directory's listing may hold: entries, and bytes of
/// names at `entry_cost` each besides the name itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub entries: u64,
    pub bytes: u64,
    pub entry_cost: u64,
}

pub(super) fn corrupt(what: impl Into<String>) -> FsError {
    FsError::Corrupt(what.into())
}

pub(super) fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_64BIT: u32 = 0x80;
/// filetype, extents, 64bit, mmp, flex_bg, ea_inode, csum_seed, largedir,
/// inline_data, encrypt, casefold: readable (per-inode checks below).
const INCOMPAT_KNOWN: u32 = 0x2 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000;
const INCOMPAT_REFUSED: [(u32, &str); 5] = [
    (0x1, "compression"),
    (0x4, "a journal that needs recovery (it was not cleanly unmounted)"),
    (0x8, "a separate journal device"),
    (0x10, "meta_bg"),
    (0x1000, "dirdata"),
];

pub(super) const EXTENTS_FL: u32 = 0x80000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const ENCRYPT_FL: u32 = 0x800;
/// An extent tree is at most this deep (the kernel's own bound).
const MAX_EXTENT_DEPTH: u16 = 5;
pub const ROOT_INODE: u32 = 2;

pub struct Fs<S: ?Sized> {
    pub block_size: u64,
    pub inodes_count: u32,
    blocks_count: u64,
    inodes_per_group: u32,
    inode_size: usize,
    pub(super) filetype: bool,
    /// The inode table's first block, per group.
    tables: Vec<u64>,
    /// Extent tree and directory blocks read so far: each belongs to one
    /// inode, so an honest filesystem has no more than `blocks_count` of
    /// them; more means blocks claimed many times over, and unbounded work.
    tree_blocks: std::cell::Cell<u64>,
    src: Box<S>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// Devices, FIFOs, sockets: not copied.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub secs: i64,
    pub nsecs: u32,
}

#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u32,
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    pub atime: Time,
    pub mtime: Time,
    pub(super) flags: u32,
    pub(super) block: [u8; 60],
    file_acl: u64,
    /// The in-inode extended attribute area (after i_extra_isize).
    xattr_area: Vec<u8>,
}

/// A run of blocks of a file: `len` blocks from logical block `logical`
/// are at physical block `start`. Unwritten extents read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub start: u64,
    pub len: u64,
    pub unwritten: bool,
}

impl<S: Source + ?Sized> Fs<S> {
    pub fn open(src: Box<S>) -> Result<Self, FsError> {
        let mut sb = [0u8; 1024];
        src.read_at(1024, &mut sb).map_err(|_| corrupt("no superblock (the partition is too small)"))?;
        if u16_at(&sb, 56) != 0xEF53 {
            return Err(corrupt("no ext2/3/4 superblock magic"));
        }
        let incompat = u32_at(&sb, 96);
        for (bit, what) in INCOMPAT_REFUSED {
            if incompat & bit != 0 {
                return Err(FsError::Unsupported(what));
            }
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(FsError::Unsupported("incompatible features unknown to the read-back"));
        }
        let log = u32_at(&sb, 24);
        if log > 6 {
            return Err(corrupt(format!("block size 1024 << {log}")));
        }
        let block_size = 1024u64 << log;
        let inodes_count = u32_at(&sb, 0);
        let first_data_block = u64::from(u32_at(&sb, 20));
        let blocks_per_group = u64::from(u32_at(&sb, 32));
        let inodes_per_group = u32_at(&sb, 40);
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let blocks_count = u64::from(u32_at(&sb, 4)) | if is64 { u64::from(u32_at(&sb, 0x150)) << 32 } else { 0 };
        // Revision 0 has 128-byte inodes and no s_inode_size.
        let inode_size = if u32_at(&sb, 76) == 0 { 128 } else { usize::from(u16_at(&sb, 88)) };
        let desc_size = if is64 { u64::from(u16_at(&sb, 0xFE)) } else { 32 };
        if blocks_count == 0 || blocks_count.saturating_mul(block_size) > src.len() {
            return Err(corrupt(format!("{blocks_count} blocks of {block_size} bytes do not fit in the partition")));
        }
        if inodes_per_group == 0 || u64::from(inodes_per_group) > 8 * block_size || blocks_per_group == 0 {
            return Err(corrupt("bad group geometry"));
        }
        if !(128..=block_size as usize).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(corrupt(format!("inode size {inode_size}")));
        }
        if !(32..=block_size).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(corrupt(format!("group descriptor size {desc_size}")));
        }
        let groups = u64::from(inodes_count).div_ceil(u64::from(inodes_per_group));
        let block_groups = blocks_count.saturating_sub(first_data_block).div_ceil(blocks_per_group);
        if inodes_count < ROOT_INODE || groups > block_groups {
            return Err(corrupt("more inode groups than block groups"));
        }
        let gdt = (first_data_block + 1) * block_size;
        // 2^20 groups is a 128 TiB filesystem; more is a forged geometry.
        if groups > 1 << 20 || gdt + groups * desc_size > src.len() {
            return Err(corrupt(format!("{groups} block groups do not fit in the partition")));
        }
        let mut table = vec![0u8; usize::try_from(groups * desc_size).map_err(|_| corrupt("group table size"))?];
        src.read_at(gdt, &mut table).map_err(|_| corrupt("the group descriptors lie outside the partition"))?;
        let tables = table
            .chunks_exact(desc_size as usize)
            .map(|d| u64::from(u32_at(d, 8)) | if desc_size >= 64 { u64::from(u32_at(d, 0x28)) << 32 } else { 0 })
            .collect();
        let filetype = incompat & INCOMPAT_FILETYPE != 0;
        let tree_blocks = std::cell::Cell::new(0);
        Ok(Fs { block_size, inodes_count, blocks_count, inodes_per_group, inode_size, filetype, tables, tree_blocks, src })
    }

    /// Reads an extent tree or directory block (see `tree_blocks`).
    pub(super) fn read_tree_block(&self, block: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let n = self.tree_blocks.get() + 1;
        if n > self.blocks_count {
            return Err(corrupt("more extent tree and directory blocks than the filesystem has (blocks claimed many times over)"));
        }
        self.tree_blocks.set(n);
        self.read_block(block, buf)
    }

    fn read_block(&self, block: u64, buf: &mut [u8]) -> Result<(), FsError> {
        if block == 0 || block >= self.blocks_count {
            return Err(corrupt(format!("block {block} is outside the filesystem")));
        }
        self.src.read_at(block * self.block_size, buf).map_err(FsError::Io)
    }

    /// Reads `len` bytes at byte `off` of physical block `block`.
    pub fn read_data(&self, block: u64, off: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let end = block * self.block_size + off + buf.len() as u64;
        if block == 0 || end > self.blocks_count * self.block_size {
            return Err(corrupt(format!("data at block {block} lies outside the filesystem")));
        }
        self.src.read_at(block * self.block_size + off, buf).map_err(FsError::Io)
    }

    pub fn inode(&self, ino: u32) -> Result<Inode, FsError> {
        if ino == 0 || ino > self.inodes_count {
            return Err(corrupt(format!("inode {ino} does not exist")));
        }
        let group = (ino - 1) / self.inodes_per_group;
        let index = u64::from((ino - 1) % self.inodes_per_group);
        let table = self.tables[group as usize];
        let table_blocks = (u64::from(self.inodes_per_group) * self.inode_size as u64).div_ceil(self.block_size);
        if table == 0 || table.checked_add(table_blocks).is_none_or(|e| e > self.blocks_count) {
            return Err(corrupt(format!("the inode table of group {group} lies outside the filesystem")));
        }
        let mut raw = vec![0u8; self.inode_size];
        self.src.read_at(table * self.block_size + index * self.inode_size as u64, &mut raw)?;
        let mode = u16_at(&raw, 0);
        let kind = match mode & 0xF000 {
            0x4000 => Kind::Dir,
            0x8000 => Kind::File,
            0xA000 => Kind::Symlink,
            _ => Kind::Other,
        };
        let extra = if self.inode_size > 128 { usize::from(u16_at(&raw, 128)) } else { 0 };
        let time = |at: usize, extra_at: usize| {
            let lo = i64::from(u32_at(&raw, at) as i32);
            if extra >= extra_at + 4 - 128 {
                let x = u32_at(&raw, extra_at);
                Time { secs: lo + (i64::from(x & 3) << 32), nsecs: (x >> 2).min(999_999_999) }
            } else {
                Time { secs: lo, nsecs: 0 }
            }
        };
        let xattr_area = if extra > 0 && 128 + extra + 4 <= self.inode_size { raw[128 + extra..].to_vec() } else { Vec::new() };
        let mut block = [0u8; 60];
        block.copy_from_slice(&raw[40..100]);
        Ok(Inode {
            ino,
            kind,
            perm: u32::from(mode & 0o7777),
            uid: u32::from(u16_at(&raw, 2)) | u32::from(u16_at(&raw, 120)) << 16,
            gid: u32::from(u16_at(&raw, 24)) | u32::from(u16_at(&raw, 122)) << 16,
            size: u64::from(u32_at(&raw, 4)) | u64::from(u32_at(&raw, 108)) << 32,
            links: u16_at(&raw, 26),
            atime: time(8, 140),
            mtime: time(16, 136),
            flags: u32_at(&raw, 32),
            block,
            file_acl: u64::from(u32_at(&raw, 104)) | u64::from(u16_at(&raw, 118)) << 32,
            xattr_area,
        })
    }

    pub(super) fn check_flags(inode: &Inode) -> Result<(), FsError> {
        if inode.flags & INLINE_DATA_FL != 0 {
            return Err(FsError::Unsupported("inline data"));
        }
        if inode.flags & ENCRYPT_FL != 0 {
            return Err(FsError::Unsupported("encrypted files"));
        }
        Ok(())
    }

    /// The extents of `inode` that lie within its size, in logical order,
    /// at most `max` of them (tree nodes count too).
    pub fn extents(&self, inode: &Inode, max: usize) -> Result<Vec<Extent>, FsError> {
        Self::check_flags(inode)?;
        if inode.size == 0 {
            return Ok(Vec::new());
        }
        if inode.flags & EXTENTS_FL == 0 {
            return Err(FsError::Unsupported("block-mapped (ext2/ext3-style) files"));
        }
        let file_blocks = inode.size.div_ceil(self.block_size);
        let mut out = Vec::new();
        let mut visited = 0usize;
        // Nodes still to visit: the inode's own, or a child's block number
        // with the depth its parent promised. A child is read only when it
        // is visited, so one block is held at a time, not a whole level.
        enum Node {
            Root,
            Block(u64, u16),
        }
        let mut stack = vec![Node::Root];
        let mut block = vec![0u8; self.block_size as usize];
        while let Some(next) = stack.pop() {
            visited += 1;
            if visited > max {
                return Err(corrupt(format!("inode {} has more than {max} extents", inode.ino)));
            }
            let (node, want_depth): (&[u8], Option<u16>) = match next {
                Node::Root => (&inode.block[..], None),
                Node::Block(b, d) => {
                    self.read_tree_block(b, &mut block)?;
                    (&block[..], Some(d))
                }
            };
            let (entries, depth) = (usize::from(u16_at(node, 2)), u16_at(node, 6));
            if u16_at(node, 0) != 0xF30A || 12 + entries * 12 > node.len() || entries > usize::from(u16_at(node, 4)) {
                return Err(corrupt(format!("a bad extent tree node in inode {}", inode.ino)));
            }
            if depth > MAX_EXTENT_DEPTH || want_depth.is_some_and(|d| d != depth) {
                return Err(corrupt(format!("a bad extent tree depth in inode {}", inode.ino)));
            }
            // Children go on the stack in reverse, so leaves come out in order.
            for i in (0..entries).rev() {
                let e = &node[12 + i * 12..24 + i * 12];
                if depth == 0 {
                    let raw_len = u64::from(u16_at(e, 4));
                    let (len, unwritten) = if raw_len > 32768 { (raw_len - 32768, true) } else { (raw_len, false) };
                    let start = u64::from(u32_at(e, 8)) | u64::from(u16_at(e, 6)) << 32;
                    let ext = Extent { logical: u64::from(u32_at(e, 0)), start, len, unwritten };
                    if len == 0 || start == 0 || start.checked_add(len).is_none_or(|end| end > self.blocks_count) {
                        return Err(corrupt(format!("an extent of inode {} lies outside the filesystem", inode.ino)));
                    }
                    if out.len() >= max {
                        return Err(corrupt(format!("inode {} has more than {max} extents", inode.ino)));
                    }
                    out.push(ext);
                } else {
                    if stack.len() >= max {
                        return Err(corrupt(format!("inode {} has more than {max} extents", inode.ino)));
                    }
                    let leaf = u64::from(u32_at(e, 4)) | u64::from(u16_at(e, 8)) << 32;
                    stack.push(Node::Block(leaf, depth - 1));
                }
            }
        }
        // In order, not overlapping; clipped to the file's size.
        out.sort_by_key(|e| e.logical);
        let mut next = 0;
        let mut clipped = Vec::with_capacity(out.len());
        for mut e in out {
            if e.logical < next {
                return Err(corrupt(format!("overlapping extents in inode {}", inode.ino)));
            }
            next = e.logical + e.len;
            if e.logical >= file_blocks {
                continue;
            }
            e.len = e.len.min(file_blocks - e.logical);
            clipped.push(e);
        }
        Ok(clipped)
    }

    /// The raw extended attributes of `inode`, (name index, name, value),
    /// from the inode and its attribute block.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<super::xattr::Raw>, FsError> {
        let mut out = Vec::new();
        if u32_at(&inode.xattr_area, 0) == 0xEA02_0000 {
            let area = &inode.xattr_area[4..];
            super::xattr::parse(area, 0, area, inode.ino, &mut out)?;
        }
        if inode.file_acl != 0 {
            let mut block = vec![0u8; self.block_size as usize];
            self.read_block(inode.file_acl, &mut block)?;
            if u32_at(&block, 0) != 0xEA02_0000 || u32_at(&block, 8) != 1 {
                return Err(corrupt(format!("a bad extended attribute block in inode {}", inode.ino)));
            }
            super::xattr::parse(&block, 32, &block, inode.ino, &mut out)?;
        }
        Ok(out)
    }
}
