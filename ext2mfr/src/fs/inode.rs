//! Reading and writing inodes in the inode tables (through the block cache).

use super::Ext2;
use crate::error::{corrupt, Result};
use crate::format::inode::{Inode, INODE_KNOWN_SIZE, WANT_EXTRA_ISIZE};

impl Ext2 {
    /// Block and byte offset of inode `ino`.
    pub(crate) fn inode_pos(&self, ino: u32) -> Result<(u64, usize)> {
        if ino == 0 || ino > self.geo.inodes_count {
            return Err(corrupt(format!("inode number {ino} out of range")));
        }
        let g = (ino - 1) / self.geo.inodes_per_group;
        let byte = ((ino - 1) % self.geo.inodes_per_group) as u64 * self.geo.inode_size as u64;
        let bs = self.geo.block_size as u64;
        Ok((
            self.geo.inode_table[g as usize] as u64 + byte / bs,
            (byte % bs) as usize,
        ))
    }

    pub fn read_inode(&self, ino: u32) -> Result<Inode> {
        let (blk, off) = self.inode_pos(ino)?;
        let b = self.cache.get(blk)?;
        let d = b.read();
        Ok(Inode::from_slot(
            &d[off..off + self.geo.inode_size as usize],
        ))
    }

    /// The whole on-disk slot of inode `ino` (`inode_size` bytes, so with the
    /// extra space of large inodes, where in-inode xattrs live).
    pub(crate) fn read_inode_slot(&self, ino: u32) -> Result<Vec<u8>> {
        let (blk, off) = self.inode_pos(ino)?;
        let b = self.cache.get(blk)?;
        let d = b.read();
        Ok(d[off..off + self.geo.inode_size as usize].to_vec())
    }

    /// Write the inode: its core and the extra fields it has; in-inode
    /// attributes after them stay as they are.
    pub(crate) fn write_inode(&self, ino: u32, inode: &Inode) -> Result<()> {
        let (blk, off) = self.inode_pos(ino)?;
        let b = self.cache.get(blk)?;
        inode.to_slot(&mut b.write()[off..off + self.geo.inode_size as usize]);
        Ok(())
    }

    /// A new in-memory inode: with every extra field (times in
    /// nanoseconds, past 2038, creation time) where the inodes are large
    /// enough, as the kernel's driver makes one (`s_want_extra_isize`).
    pub(crate) fn blank_inode(&self) -> Inode {
        let mut i = Inode::default();
        if self.geo.inode_size as usize >= INODE_KNOWN_SIZE {
            i.i_extra_isize.set(WANT_EXTRA_ISIZE);
        }
        i
    }

    /// Write a freshly allocated inode: the whole on-disk slot is zeroed
    /// first, so no stale extra fields from a previous owner survive.
    pub(crate) fn write_new_inode(&self, ino: u32, inode: &Inode) -> Result<()> {
        let (blk, off) = self.inode_pos(ino)?;
        let b = self.cache.get(blk)?;
        let mut d = b.write();
        let slot = &mut d[off..off + self.geo.inode_size as usize];
        slot.fill(0);
        inode.to_slot(slot);
        Ok(())
    }
}
