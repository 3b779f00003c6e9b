//! Extended attributes in ext2 xattr blocks (`i_file_acl`): read (get and
//! list) and released with the inode. Setting and removing attributes is not
//! implemented: those calls answer EOPNOTSUPP, and an inode's attributes
//! written by another implementation are kept intact.

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::inode::Inode;
use crate::format::xattr::{self, Attribute};

impl Ext2 {
    /// All (name, value) pairs of an inode's xattr block, checked.
    fn xattr_entries(&self, i: &Inode) -> Result<Vec<Attribute>> {
        let blk = i.i_file_acl.get();
        if blk == 0 {
            return Ok(Vec::new());
        }
        if blk < self.geo.first_data_block || blk >= self.geo.blocks_count {
            return Err(corrupt(format!("xattr block {blk} out of range")));
        }
        let buf = self.cache.get(blk as u64)?;
        let d = buf.read();
        xattr::block_entries(&d).map_err(|m| corrupt(format!("xattr block {blk}: {m}")))
    }

    /// Attributes stored in the extra space of a large inode (after
    /// `i_extra_isize`), as ext4 -- which also serves `mount -t ext2` on
    /// many kernels -- and e2fsprogs write them on ext2 images with 256-byte
    /// inodes.
    fn xattr_ibody_entries(&self, ino: u32) -> Result<Vec<Attribute>> {
        if self.geo.inode_size <= 128 {
            return Ok(Vec::new());
        }
        let slot = self.read_inode_slot(ino)?;
        xattr::ibody_entries(&slot).map_err(|m| corrupt(format!("inode {ino}: in-inode xattr {m}")))
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
            let Some(refs) = xattr::block_refcount(&d) else {
                log::error!("xattr block {blk}: bad magic; not freed");
                return Ok(());
            };
            xattr::set_block_refcount(&mut d, refs.saturating_sub(1));
            refs <= 1
        };
        if last {
            self.release_blocks(&[blk]);
        }
        Ok(())
    }
}
