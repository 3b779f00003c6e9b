//! Looking at the file system before a request holds its locks (cache
//! peeking): inodes and blocks from the cache in place, or, when not cached,
//! straight from the image into a buffer of the requirement phase. Only
//! estimates: the request looks again under its locks.

use crate::format::block_ptr::block_path;
use crate::format::inode::{Inode, INODE_STRUCT_SIZE};
use crate::format::xattr;
use crate::fs::Ext2;

/// Where an inode's xattr block number lies in its slot.
const I_FILE_ACL: usize = std::mem::offset_of!(Inode, i_file_acl);

impl Ext2 {
    /// The inode `name` names in `parent` (for the child of an unlink or
    /// rename, whose size decides what freeing it costs). Blocks come from
    /// the cache or, when not cached, straight from the image into one
    /// buffer of the requirement phase (the paper: what peeking itself
    /// needs is allocated as part of pre-allocation). An estimate only: the
    /// request itself looks again under its locks.
    pub(super) fn peek_child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let dir = self.estimate_inode(parent)?;
        let bs = self.geo.block_size as usize;
        let n = dir.size() / bs as u64;
        let mut buf = vec![0u8; bs];
        if self.maybe_indexed(&dir) {
            return self.peek_child_indexed(&dir, name, &mut buf);
        }
        for lblk in 0..n {
            let p = self.estimate_dir_block(&dir, lblk, &mut buf)?;
            // A cached block is looked at in place (no copy).
            let cached = (p != 0 && p < self.geo.blocks_count as u64)
                .then(|| self.cache.peek(p))
                .flatten();
            let found = match cached {
                Some(b) => self.find_in(&b.peek_bytes(), name)?,
                None => {
                    self.estimate_block(p, &mut buf)?;
                    self.find_in(&buf, name)?
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The physical block of a directory's logical block `lblk` (`buf`
    /// holds the indirect blocks on the way).
    fn estimate_dir_block(&self, dir: &Inode, lblk: u64, buf: &mut [u8]) -> Option<u64> {
        let path = block_path(lblk, self.geo.ptrs())?;
        let mut p = dir.block(path.slot) as u64;
        for level in 0..path.depth {
            self.estimate_block(p, buf)?;
            p = crate::format::block_ptr::read_ptr(buf, path.idx[level]) as u64;
        }
        Some(p)
    }

    /// [`Ext2::peek_child`] through a directory's index: the root, a node,
    /// the leaf, and the next leaf when the hash continues there.
    fn peek_child_indexed(&self, dir: &Inode, name: &[u8], buf: &mut [u8]) -> Option<u32> {
        use crate::format::htree;
        let root = self.estimate_dir_block(dir, 0, buf)?;
        self.estimate_block(root, buf)?;
        let info = htree::root_info(buf).ok()?;
        let hash = htree::Hasher::new(info.hash_version, self.geo.hash_seed, self.geo.hash_flags)
            .hash(name)
            .major;
        let mut root_block = true;
        let mut next_start = None;
        let mut lblk = 0;
        for _ in 0..=info.indirect_levels {
            let (_, count) = htree::checked_entries(buf, root_block).ok()?;
            let at = htree::entries_at(root_block);
            let k = htree::find(buf, at, count, hash);
            lblk = htree::entry(buf, at, k).1;
            next_start = (k + 1 < count).then(|| htree::entry(buf, at, k + 1));
            let p = self.estimate_dir_block(dir, lblk as u64, buf)?;
            self.estimate_block(p, buf)?;
            root_block = false;
        }
        let _ = lblk;
        if let Some(found) = self.find_in(buf, name)? {
            return Some(found);
        }
        match next_start {
            Some((start, next)) if start & !1 == hash => {
                let p = self.estimate_dir_block(dir, next as u64, buf)?;
                self.estimate_block(p, buf)?;
                self.find_in(buf, name)?
            }
            _ => None,
        }
    }

    /// The inode `name` names in directory block `data`; `None` (outer)
    /// for a corrupt block.
    pub(super) fn find_in(&self, data: &[u8], name: &[u8]) -> Option<Option<u32>> {
        let mut found = None;
        crate::format::dirent::visit_block(data, self.geo.inodes_count, |e| {
            if found.is_none() && e.is(name) {
                found = Some(e.inode);
            }
        })
        .ok()?;
        Some(found)
    }

    /// Block `blk` into `buf`, from the cache or the image (see
    /// [`Ext2::peek_child`]). `None` for a bad number or an I/O error.
    pub(super) fn estimate_block(&self, blk: u64, buf: &mut [u8]) -> Option<()> {
        if blk == 0 || blk >= self.geo.blocks_count as u64 {
            return None;
        }
        match self.cache.peek(blk) {
            Some(b) => buf.copy_from_slice(&b.peek_bytes()),
            None => self.cache.device().read_block(blk, buf).ok()?,
        }
        Some(())
    }

    /// Inode `ino` as it is now, from the cache or the image (an inode not
    /// in the cache has no uncommitted version).
    pub(super) fn estimate_inode(&self, ino: u32) -> Option<Inode> {
        let (blk, off) = self.inode_pos(ino).ok()?;
        if let Some(b) = self.cache.peek(blk) {
            let d = b.peek_bytes();
            return Some(Inode::from_slot(
                &d[off..off + self.geo.inode_size as usize],
            ));
        }
        let mut raw = [0u8; INODE_STRUCT_SIZE];
        self.cache.device().will_need(self.inode_window(ino, blk));
        let pos = blk * self.geo.block_size as u64 + off as u64;
        self.cache.device().read_at(pos, &mut raw).ok()?;
        Some(Inode::from_slot(&raw))
    }

    /// Whether inode `ino` has extended attributes (an xattr block, or
    /// entries in its extra space), from the cache or the image; `None`
    /// when it cannot be read.
    pub(super) fn estimate_has_xattrs(&self, ino: u32) -> Option<bool> {
        let (blk, off) = self.inode_pos(ino).ok()?;
        let size = self.geo.inode_size as usize;
        let has = |slot: &[u8]| {
            let acl = u32::from_le_bytes(slot[I_FILE_ACL..I_FILE_ACL + 4].try_into().unwrap());
            acl != 0 || xattr::ibody_has_entries(slot)
        };
        // Looked at in place when cached (no copy, no allocation).
        if let Some(b) = self.cache.peek(blk) {
            return Some(has(&b.peek_bytes()[off..off + size]));
        }
        let mut slot = vec![0u8; size];
        self.cache.device().will_need(self.inode_window(ino, blk));
        let pos = blk * self.geo.block_size as u64 + off as u64;
        self.cache.device().read_at(pos, &mut slot).ok()?;
        Some(has(&slot))
    }
}
