//! Extended attributes in ext2 xattr blocks (`i_file_acl`): read (get and
//! list) and released with the inode. Setting and removing attributes is not
//! implemented: those calls answer EOPNOTSUPP, and an inode's attributes
//! written by another implementation are kept intact.

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::inode::Inode;

const XATTR_MAGIC: u32 = 0xEA02_0000;
const HEADER_LEN: usize = 32;
const ENTRY_LEN: usize = 16;

fn prefix(index: u8) -> Option<&'static str> {
    Some(match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => return None,
    })
}

fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().unwrap())
}

/// Entries from `first` on in `d` (an xattr block, or the in-inode area
/// starting at its first entry); value offsets count from the start of `d`.
fn parse_entries(
    d: &[u8],
    first: usize,
) -> std::result::Result<Vec<(String, Vec<u8>)>, &'static str> {
    let mut out = Vec::new();
    let mut off = first;
    loop {
        // The list ends with four zero bytes, or where the area ends.
        if off + 4 > d.len() || u32_at(d, off) == 0 {
            return Ok(out);
        }
        if off + ENTRY_LEN > d.len() {
            return Err("entry past the end");
        }
        let name_len = d[off] as usize;
        let value_offs = u16_at(d, off + 2) as usize;
        let value_size = u32_at(d, off + 8) as usize;
        let name_end = off + ENTRY_LEN + name_len;
        if name_end > d.len() || value_offs + value_size > d.len() {
            return Err("entry out of bounds");
        }
        if let Some(p) = prefix(d[off + 1]) {
            let name = format!(
                "{p}{}",
                String::from_utf8_lossy(&d[off + ENTRY_LEN..name_end])
            );
            out.push((name, d[value_offs..value_offs + value_size].to_vec()));
        }
        off += (ENTRY_LEN + name_len + 3) & !3;
    }
}

impl Ext2 {
    /// All (name, value) pairs of an inode's xattr block, checked.
    fn xattr_entries(&self, i: &Inode) -> Result<Vec<(String, Vec<u8>)>> {
        let blk = i.i_file_acl.get();
        if blk == 0 {
            return Ok(Vec::new());
        }
        if blk < self.geo.first_data_block || blk >= self.geo.blocks_count {
            return Err(corrupt(format!("xattr block {blk} out of range")));
        }
        let buf = self.cache.get(blk as u64)?;
        let d = buf.read();
        if u32_at(&d, 0) != XATTR_MAGIC {
            return Err(corrupt(format!("xattr block {blk}: bad magic")));
        }
        parse_entries(&d, HEADER_LEN).map_err(|m| corrupt(format!("xattr block {blk}: {m}")))
    }

    /// Attributes stored in the extra space of a large inode (after
    /// `i_extra_isize`), as ext4 -- which also serves `mount -t ext2` on
    /// many kernels -- and e2fsprogs write them on ext2 images with 256-byte
    /// inodes: a magic word, then entries laid out as in an xattr block, with
    /// value offsets counted from the first entry. A missing or malformed
    /// area counts as no attributes (we never write it).
    fn xattr_ibody_entries(&self, ino: u32) -> Result<Vec<(String, Vec<u8>)>> {
        if self.geo.inode_size <= 128 {
            return Ok(Vec::new());
        }
        let slot = self.read_inode_slot(ino)?;
        let extra = u16_at(&slot, 128) as usize;
        let start = 128 + extra + 4; // first entry, and base of value offsets
        if extra % 4 != 0 || start > slot.len() || u32_at(&slot, start - 4) != XATTR_MAGIC {
            return Ok(Vec::new());
        }
        parse_entries(&slot[start..], 0)
            .map_err(|m| corrupt(format!("inode {ino}: in-inode xattr {m}")))
    }

    pub fn getxattr(&self, ino: u32, name: &str) -> Result<Vec<u8>> {
        let _g = self.locks.read(ino);
        let i = self.read_inode(ino)?;
        // In-inode attributes first, then the xattr block (ext4's order).
        self.xattr_ibody_entries(ino)?
            .into_iter()
            .chain(self.xattr_entries(&i)?)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or(FsError::NoData)
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u32) -> Result<Vec<u8>> {
        let _g = self.locks.read(ino);
        let i = self.read_inode(ino)?;
        let mut out = Vec::new();
        for (n, _) in self
            .xattr_ibody_entries(ino)?
            .into_iter()
            .chain(self.xattr_entries(&i)?)
        {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// Drop the inode's reference to its xattr block; free the block with
    /// the last reference.
    pub(crate) fn xattr_release(&self, i: &mut Inode) -> Result<()> {
        let blk = i.i_file_acl.get();
        if blk == 0 {
            return Ok(());
        }
        i.i_file_acl.set(0);
        if blk < self.geo.first_data_block || blk >= self.geo.blocks_count {
            log::error!("xattr block {blk} out of range; dropped");
            return Ok(());
        }
        let spb = self.geo.sectors_per_block();
        i.i_blocks.set(i.i_blocks.get().saturating_sub(spb));
        let buf = self.cache.get(blk as u64)?;
        let last = {
            let mut d = buf.write();
            if u32_at(&d, 0) != XATTR_MAGIC {
                log::error!("xattr block {blk}: bad magic; not freed");
                return Ok(());
            }
            let refs = u32_at(&d, 4);
            d[4..8].copy_from_slice(&refs.saturating_sub(1).to_le_bytes());
            refs <= 1
        };
        if last {
            self.release_blocks(&mut [blk])?;
        }
        Ok(())
    }
}
