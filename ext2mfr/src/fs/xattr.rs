//! Extended attributes: get, list, set and remove, in the extra space of
//! large inodes and in an xattr block (`i_file_acl`), placed as the
//! kernel's ext4 driver (which serves `mount -t ext2`) places them: in the
//! inode when the attribute fits there, else in the block. A block shared
//! by several inodes (`h_refcount`, as e2fsprogs and the kernel share equal
//! blocks) is copied before it changes; the last reference frees it.
//! POSIX ACLs are stored in ext2's compact form and cross the request
//! boundary in the kernel's xattr form (see `acl.rs`).

use super::attr::Ctx;
use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::inode::{Inode, Timestamp};
use crate::format::xattr::{self, Entry};

/// setxattr(2) flags.
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

/// An inode's attributes as stored: those in the inode, those in its block.
struct Stored {
    ibody: Vec<Entry>,
    block: Vec<Entry>,
}

/// Where a name was found.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Ibody(usize),
    Block(usize),
}

fn position(list: &[Entry], index: u8, name: &[u8]) -> Option<usize> {
    list.iter().position(|e| e.index == index && e.name == name)
}

impl Stored {
    fn find(&self, index: u8, name: &[u8]) -> Option<Place> {
        // In-inode first, then the block (the kernel's order).
        position(&self.ibody, index, name)
            .map(Place::Ibody)
            .or_else(|| position(&self.block, index, name).map(Place::Block))
    }

    fn value(&self, at: Place) -> &[u8] {
        match at {
            Place::Ibody(k) => &self.ibody[k].value,
            Place::Block(k) => &self.block[k].value,
        }
    }
}

/// The index and stored name of a full name, or the kernel's errno.
fn split(name: &[u8]) -> Result<(u8, &[u8])> {
    let (index, rest) = xattr::split_name(name).ok_or(FsError::NotSupported)?;
    if rest.len() > xattr::NAME_MAX {
        return Err(FsError::Range);
    }
    // "user." alone names nothing (the kernel's xattr_resolve_name).
    if rest.is_empty() && !is_acl(index) {
        return Err(FsError::Invalid);
    }
    Ok((index, rest))
}

fn is_acl(index: u8) -> bool {
    index == xattr::INDEX_POSIX_ACL_ACCESS || index == xattr::INDEX_POSIX_ACL_DEFAULT
}

impl Ext2 {
    fn xattr_block_no(&self, i: &Inode) -> Result<Option<u32>> {
        let blk = i.i_file_acl.get();
        if blk == 0 {
            return Ok(None);
        }
        if blk < self.geo.first_data_block || blk >= self.geo.blocks_count {
            return Err(corrupt(format!("xattr block {blk} out of range")));
        }
        Ok(Some(blk))
    }

    /// Both lists of an inode's attributes, checked.
    fn xattr_stored(&self, ino: u32, i: &Inode) -> Result<Stored> {
        let ibody = if self.geo.inode_size > 128 {
            let slot = self.read_inode_slot(ino)?;
            xattr::ibody_raw(&slot)
                .map_err(|m| corrupt(format!("inode {ino}: in-inode xattr {m}")))?
        } else {
            Vec::new()
        };
        let block = match self.xattr_block_no(i)? {
            None => Vec::new(),
            Some(blk) => {
                let buf = self.cache.get(blk as u64)?;
                let d = buf.read();
                let entries =
                    xattr::block_raw(&d).map_err(|m| corrupt(format!("xattr block {blk}: {m}")))?;
                self.xattr_share_note(blk, &d);
                entries
            }
        };
        Ok(Stored { ibody, block })
    }

    /// The value of attribute `name` (ACLs in the kernel's xattr form).
    pub fn getxattr(&self, ino: u32, name: &[u8]) -> Result<Vec<u8>> {
        let (index, short) = split(name)?;
        let _g = self.locks.read(ino);
        let i = self.live_inode(ino)?;
        let s = self.xattr_stored(ino, &i)?;
        let at = s.find(index, short).ok_or(FsError::NoData)?;
        let v = s.value(at);
        if is_acl(index) {
            return Self::acl_to_xattr(ino, v);
        }
        Ok(v.to_vec())
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them;
    /// trusted.* only for the privileged, as the kernel lists them.
    pub fn listxattr(&self, ctx: &Ctx, ino: u32) -> Result<Vec<u8>> {
        let _g = self.locks.read(ino);
        let i = self.live_inode(ino)?;
        let s = self.xattr_stored(ino, &i)?;
        let mut out = Vec::new();
        for e in s.ibody.iter().chain(&s.block) {
            if e.index == xattr::INDEX_TRUSTED && !ctx.privileged() {
                continue;
            }
            if let Some(n) = e.full_name() {
                out.extend_from_slice(n.as_bytes());
                out.push(0);
            }
        }
        Ok(out)
    }

    /// setxattr(2): `flags` XATTR_CREATE / XATTR_REPLACE. ACLs also set
    /// the mode they stand for (see `set_acl`).
    pub fn setxattr(
        &self,
        ctx: &Ctx,
        ino: u32,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        let (index, short) = split(name)?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        let changed = if is_acl(index) {
            self.set_acl(ctx, ino, &mut i, index, Some(value), flags)?
        } else {
            self.xattr_set(ctx, ino, &mut i, index, short, Some(value), flags)?
        };
        if changed {
            i.set_ctime(Timestamp::now());
            self.write_inode(ino, &i)?;
        }
        Ok(())
    }

    pub fn removexattr(&self, ctx: &Ctx, ino: u32, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        let (index, short) = split(name)?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        let changed = if is_acl(index) {
            self.set_acl(ctx, ino, &mut i, index, None, XATTR_REPLACE)?
        } else {
            self.xattr_set(ctx, ino, &mut i, index, short, None, XATTR_REPLACE)?
        };
        if changed {
            i.set_ctime(Timestamp::now());
            self.write_inode(ino, &i)?;
        }
        Ok(())
    }

    /// The value of an entry, if the inode has it (no name checks: callers
    /// inside the file system, e.g. ACL inheritance).
    pub(crate) fn xattr_value(
        &self,
        ino: u32,
        i: &Inode,
        index: u8,
        name: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let s = self.xattr_stored(ino, i)?;
        Ok(s.find(index, name).map(|at| s.value(at).to_vec()))
    }

    /// Set (`Some`) or remove (`None`) one entry of inode `ino`, whose
    /// in-memory inode `i` the caller writes back (its xattr block and
    /// block count may change here; the in-inode area is written here).
    /// Placement as the kernel's ext4_xattr_set_handle: in the inode if it
    /// fits there (leaving the block), else in the block (leaving the
    /// inode), else ENOSPC. Returns whether anything changed (a value set
    /// to what it was changes nothing, not even ctime, as in the kernel).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn xattr_set(
        &self,
        ctx: &Ctx,
        ino: u32,
        i: &mut Inode,
        index: u8,
        name: &[u8],
        value: Option<&[u8]>,
        flags: u32,
    ) -> Result<bool> {
        let s = self.xattr_stored(ino, i)?;
        let found = s.find(index, name);
        match found {
            None if flags & XATTR_REPLACE != 0 => return Err(FsError::NoData),
            None if value.is_none() => return Ok(false),
            Some(_) if flags & XATTR_CREATE != 0 => return Err(FsError::Exists),
            Some(at) if value == Some(s.value(at)) => return Ok(false),
            _ => {}
        }
        let Stored {
            mut ibody,
            mut block,
        } = s;
        let Some(value) = value else {
            match found.expect("checked above") {
                Place::Ibody(k) => {
                    ibody.remove(k);
                    self.store_ibody(ino, &ibody)?;
                }
                Place::Block(k) => {
                    block.remove(k);
                    self.store_block(ctx, ino, i, &block)?;
                }
            }
            return Ok(true);
        };
        let entry = Entry {
            index,
            name: name.to_vec(),
            value: value.to_vec(),
        };
        // In the inode: replaced where it is, or added at the end.
        let mut in_ibody = ibody.clone();
        match found {
            Some(Place::Ibody(k)) => in_ibody[k] = entry.clone(),
            _ => in_ibody.push(entry.clone()),
        }
        if self.store_ibody(ino, &in_ibody)? {
            if let Some(Place::Block(k)) = found {
                block.remove(k);
                self.store_block(ctx, ino, i, &block)?;
            }
            return Ok(true);
        }
        match found {
            Some(Place::Block(k)) => block[k] = entry,
            _ => block.push(entry),
        }
        if !xattr::fits_block(&block, self.geo.block_size as usize) {
            return Err(FsError::NoSpace);
        }
        self.store_block(ctx, ino, i, &block)?;
        if let Some(Place::Ibody(k)) = found {
            ibody.remove(k);
            self.store_ibody(ino, &ibody)?;
        }
        Ok(true)
    }

    /// Write the in-inode list of `ino`; false (nothing written) when it
    /// does not fit or the inode has no such area.
    fn store_ibody(&self, ino: u32, entries: &[Entry]) -> Result<bool> {
        if self.geo.inode_size <= 128 {
            return Ok(entries.is_empty());
        }
        let (b, off) = self.inode_buf(ino)?;
        let end = off + self.geo.inode_size as usize;
        // Tried on a copy first: a list that does not fit leaves the
        // block unwritten (and unlogged).
        let mut slot = b.read()[off..end].to_vec();
        if !xattr::encode_ibody(entries, &mut slot) {
            return Ok(false);
        }
        if slot != b.read()[off..end] {
            b.write_range(off..end)[off..end].copy_from_slice(&slot);
        }
        Ok(true)
    }

    /// Make `entries` the inode's xattr block: rewritten in place when the
    /// inode is its only user, else (shared, or none yet) a new block;
    /// none at all when the list is empty. The list must fit.
    fn store_block(&self, ctx: &Ctx, ino: u32, i: &mut Inode, entries: &[Entry]) -> Result<()> {
        let old = self.xattr_block_no(i)?;
        if entries.is_empty() {
            return self.xattr_release(i);
        }
        let bs = self.geo.block_size as usize;
        let spb = self.geo.sectors_per_block();
        let data = xattr::encode_block(entries, bs, 1).ok_or(FsError::NoSpace)?;
        // An equal block another inode has: share it, as the kernel does.
        if let Some(shared) = self.xattr_share_take(&data, old) {
            self.xattr_release(i)?;
            i.i_file_acl.set(shared);
            i.i_blocks.set(i.i_blocks.get() + spb);
            return Ok(());
        }
        if let Some(blk) = old {
            let buf = self.cache.get(blk as u64)?;
            // Count and rewrite under one lock: a concurrent request may
            // be taking a reference to share it (`xattr_share_take`).
            let mut d = buf.write();
            let refs = xattr::block_refcount(&d)
                .ok_or_else(|| corrupt(format!("xattr block {blk}: bad magic")))?;
            if refs <= 1 {
                // (Forgotten while it changes; remembered as it is after.)
                self.xattr_share_forget(blk);
                d.copy_from_slice(&data);
                drop(d);
                self.xattr_share_note(blk, &data);
                return Ok(());
            }
        }
        // Near the inode, as the kernel's goal (its group's first block).
        let group = (ino - 1) / self.geo.inodes_per_group;
        let goal = self.geo.first_data_block + group * self.geo.blocks_per_group;
        let new = self.alloc_block(goal, ctx.privileged())?;
        self.cache.get_new_with(new as u64, 0, &data)?;
        self.xattr_share_note(new, &data);
        if old.is_some() {
            // Copy on write: one reference less on the shared block; the
            // inode's block count stays (one block for one block).
            self.xattr_release(i)?;
        }
        i.i_file_acl.set(new);
        i.i_blocks.set(i.i_blocks.get() + spb);
        Ok(())
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
            // The last reference writes 0, so that nobody shares the
            // block between now and its free at commit.
            xattr::set_block_refcount(&mut d, refs.saturating_sub(1));
            refs <= 1
        };
        if last {
            self.xattr_share_forget(blk);
            self.release_blocks(&[blk]);
        }
        Ok(())
    }
}
