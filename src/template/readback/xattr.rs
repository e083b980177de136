//! Extended attributes: ext4's entries (in the inode and in an attribute
//! block) and the ones carried over to the host, in the form the kernel's
//! xattr calls take.

use super::ext4::{corrupt, u16_at, u32_at, FsError};
use std::ffi::CString;

/// An attribute as stored: (name index, name without its prefix, value).
pub type Raw = (u8, Vec<u8>, Vec<u8>);

/// Longest attribute value copied (a capability is 20 bytes, an ACL a few
/// hundred).
pub const MAX_XATTR_BYTES: usize = 64 * 1024;

/// Attribute entries from `pos` in `entries`; values are at offsets
/// relative to the start of `values`.
pub fn parse(entries: &[u8], mut pos: usize, values: &[u8], ino: u32, out: &mut Vec<Raw>) -> Result<(), FsError> {
    let bad = || corrupt(format!("a bad extended attribute entry in inode {ino}"));
    while pos + 4 <= entries.len() && u32_at(entries, pos) != 0 {
        let name_len = usize::from(entries[pos]);
        let index = entries[pos + 1];
        let value_offs = usize::from(u16_at(entries, pos + 2));
        let value_inum = u32_at(entries, pos + 4);
        let value_size = u32_at(entries, pos + 8) as usize;
        let name = entries.get(pos + 16..pos + 16 + name_len).ok_or_else(bad)?.to_vec();
        if value_inum != 0 {
            return Err(FsError::Unsupported("extended attribute values in their own inodes"));
        }
        if value_size > MAX_XATTR_BYTES {
            return Err(bad());
        }
        let value = values.get(value_offs..value_offs + value_size).ok_or_else(bad)?.to_vec();
        out.push((index, name, value));
        pos += (16 + name_len + 3) & !3;
    }
    Ok(())
}

/// The attributes carried over, with the names and value formats the
/// kernel's xattr calls take; None for the ones dropped.
pub fn kept(index: u8, name: &[u8], value: Vec<u8>) -> Result<Option<(CString, Vec<u8>)>, String> {
    let full = match (index, name) {
        (1, n) if !n.is_empty() => [b"user.", n].concat(),
        (2, b"") => return acl("system.posix_acl_access", &value),
        (3, b"") => return acl("system.posix_acl_default", &value),
        (6, b"capability") => b"security.capability".to_vec(),
        _ => return Ok(None),
    };
    let full = CString::new(full).map_err(|_| "an attribute name holds a NUL".to_owned())?;
    Ok(Some((full, value)))
}

/// ext4 stores POSIX ACLs in its own compact form (version 1, 4-byte
/// entries where no id is needed); the xattr call takes version 2 with
/// 8-byte entries (what e2fsprogs' ext_attr.c converts too).
fn acl(name: &str, disk: &[u8]) -> Result<Option<(CString, Vec<u8>)>, String> {
    let bad = || format!("a malformed {name}");
    if disk.get(..4) != Some(&1u32.to_le_bytes()[..]) {
        return Err(bad());
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut pos = 4;
    while pos < disk.len() {
        let e = disk.get(pos..pos + 4).ok_or_else(bad)?;
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let id = match tag {
            // ACL_USER, ACL_GROUP: with an id.
            2 | 8 => {
                let id = disk.get(pos + 4..pos + 8).ok_or_else(bad)?;
                pos += 8;
                [id[0], id[1], id[2], id[3]]
            }
            // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER.
            1 | 4 | 0x10 | 0x20 => {
                pos += 4;
                u32::MAX.to_le_bytes()
            }
            _ => return Err(bad()),
        };
        out.extend_from_slice(&e[..4]);
        out.extend_from_slice(&id);
    }
    Ok(Some((CString::new(name).expect("a constant name"), out)))
}
