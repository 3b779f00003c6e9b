//! Symbolic links: the target in `i_block` (fast) or in a block (slow).

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::inode::{Inode, FAST_SYMLINK_MAX};

impl Ext2 {
    /// Store `target` in new symlink `ino`: in `i_block` when it fits
    /// there (a fast symlink, no block), else in a block of its own.
    pub(super) fn write_symlink_target(
        &self,
        ino: u32,
        i: &mut Inode,
        target: &[u8],
        privileged: bool,
    ) -> Result<()> {
        if target.len() <= FAST_SYMLINK_MAX {
            let mut raw = [0u8; 60];
            raw[..target.len()].copy_from_slice(target);
            for (k, p) in i.i_block.iter_mut().enumerate() {
                p.set(u32::from_le_bytes(
                    raw[k * 4..k * 4 + 4].try_into().expect("4 bytes"),
                ));
            }
        } else {
            let goal = self
                .geo
                .group_first_block((ino - 1) / self.geo.inodes_per_group);
            let (b, new) = self.map_alloc(i, 0, goal, privileged)?;
            let buf = self.cache.get_cleared(b as u64, new)?;
            buf.write()[..target.len()].copy_from_slice(target);
        }
        i.set_size(target.len() as u64);
        Ok(())
    }

    pub fn readlink(&self, ino: u32) -> Result<Vec<u8>> {
        let _g = self.locks.read(ino);
        let i = self.live_inode(ino)?;
        if !i.is_symlink() {
            return Err(FsError::Invalid);
        }
        let size = i.size() as usize;
        if i.is_fast_symlink(self.geo.block_size) {
            if size > FAST_SYMLINK_MAX + 1 {
                return Err(corrupt(format!("fast symlink {ino} with size {size}")));
            }
            let raw: Vec<u8> = i
                .i_block
                .iter()
                .flat_map(|p| p.get().to_le_bytes())
                .collect();
            return Ok(raw[..size].to_vec());
        }
        if size >= self.geo.block_size as usize {
            return Err(corrupt(format!("symlink {ino} with size {size}")));
        }
        let b = self
            .map(&i, 0)?
            .ok_or_else(|| corrupt(format!("symlink {ino} has no block")))?;
        let buf = self.cache.get(b as u64)?;
        let out = buf.read()[..size].to_vec();
        Ok(out)
    }
}
