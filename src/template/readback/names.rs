//! The names an ext4 filesystem holds: directory entries and symlink
//! targets, read from blocks the guest wrote, every record checked
//! against its block before its name is taken.

use super::ext4::{corrupt, u16_at, u32_at, Fs, FsError, Inode, Limits, Source, EXTENTS_FL};

impl<S: Source + ?Sized> Fs<S> {
    /// The entries of a directory: (name, inode), in on-disk order. Names
    /// are raw bytes, unchecked (the caller decides what a name may be).
    pub fn dir_entries(&self, dir: &Inode, max_extents: usize, limits: Limits) -> Result<Vec<(Vec<u8>, u32)>, FsError> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let bs = self.block_size as usize;
        let mut block = vec![0u8; bs];
        for e in self.extents(dir, max_extents)? {
            if e.unwritten {
                continue;
            }
            for b in 0..e.len {
                self.read_tree_block(e.start + b, &mut block)?;
                let mut pos = 0usize;
                while pos + 8 <= bs {
                    let ino = u32_at(&block, pos);
                    let raw_rec = usize::from(u16_at(&block, pos + 4));
                    // 64 KiB blocks store a whole-block record as 0 or 65535.
                    let rec = if bs == 65536 && (raw_rec == 0 || raw_rec == 65535) { 65536 } else { raw_rec };
                    let name_len = if self.filetype { usize::from(block[pos + 6]) } else { usize::from(u16_at(&block, pos + 6)) };
                    if rec < 8 || rec % 4 != 0 || pos + rec > bs {
                        return Err(corrupt(format!("a bad directory record in inode {}", dir.ino)));
                    }
                    if ino != 0 {
                        if name_len == 0 || 8 + name_len > rec {
                            return Err(corrupt(format!("a bad directory entry name in inode {}", dir.ino)));
                        }
                        bytes += limits.entry_cost + name_len as u64;
                        if out.len() as u64 >= limits.entries || bytes > limits.bytes {
                            return Err(FsError::TooManyEntries(dir.ino));
                        }
                        out.push((block[pos + 8..pos + 8 + name_len].to_vec(), ino));
                    }
                    pos += rec;
                }
            }
        }
        Ok(out)
    }

    /// A symlink's target (at most 4095 bytes, as the kernel allows).
    pub fn symlink_target(&self, inode: &Inode) -> Result<Vec<u8>, FsError> {
        Self::check_flags(inode)?;
        if inode.size == 0 || inode.size > 4095 {
            return Err(corrupt(format!("symlink inode {} is {} bytes long", inode.ino, inode.size)));
        }
        let len = inode.size as usize;
        if inode.flags & EXTENTS_FL == 0 {
            // A fast symlink keeps its target in i_block.
            return inode.block.get(..len).map(<[u8]>::to_vec).ok_or(FsError::Unsupported("block-mapped (ext2/ext3-style) symlinks"));
        }
        let mut out = vec![0u8; len];
        let mut done = 0usize;
        for e in self.extents(inode, 4)? {
            let at = usize::try_from(e.logical * self.block_size).unwrap_or(usize::MAX);
            if e.unwritten || at != done {
                return Err(corrupt(format!("symlink inode {} has a hole", inode.ino)));
            }
            let n = (e.len * self.block_size).min((len - done) as u64) as usize;
            self.read_data(e.start, 0, &mut out[done..done + n])?;
            done += n;
        }
        if done != len {
            return Err(corrupt(format!("symlink inode {} is shorter than its size", inode.ino)));
        }
        Ok(out)
    }
}
