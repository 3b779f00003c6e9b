//! Block mapping: logical file blocks to disk blocks through the direct and
//! indirect pointers, allocating on write and freeing ranges (truncate,
//! hole punching).

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::block_ptr::{block_path, read_ptr, slot_span, write_ptr};
use crate::format::inode::{Inode, IND_BLOCK, N_BLOCKS, N_DIRECT, TIND_BLOCK};

impl Ext2 {
    fn check_ptr(&self, p: u32) -> Result<u32> {
        if p != 0 && (p < self.geo.first_data_block || p >= self.geo.blocks_count) {
            return Err(corrupt(format!("block pointer {p} out of range")));
        }
        Ok(p)
    }

    /// The disk block of logical block `lblk`, or `None` for a hole (and
    /// for an inode without block pointers: see `Inode::has_block_map`).
    pub(crate) fn map(&self, inode: &Inode, lblk: u64) -> Result<Option<u32>> {
        if !inode.has_block_map(self.geo.block_size) {
            return Ok(None);
        }
        let Some(path) = block_path(lblk, self.geo.ptrs()) else {
            return Ok(None);
        };
        let mut p = self.check_ptr(inode.block(path.slot))?;
        for level in 0..path.depth {
            if p == 0 {
                return Ok(None);
            }
            let v = self
                .cache
                .read_with(p as u64, |d| Ok(read_ptr(d, path.idx[level])))?;
            p = self.check_ptr(v)?;
        }
        Ok((p != 0).then_some(p))
    }

    /// The disk block of `lblk` when every indirect block on its path is
    /// cached, else `None`: a goal for an allocation, which only places the
    /// new block. It reads no block (AMA's estimate of a write does not
    /// count the path of the block before it), records no dependence, and
    /// may be stale: the allocator checks the bitmap anyway.
    pub(crate) fn map_if_cached(&self, inode: &Inode, lblk: u64) -> Option<u32> {
        if !inode.has_block_map(self.geo.block_size) {
            return None;
        }
        let in_range = |p: u32| p >= self.geo.first_data_block && p < self.geo.blocks_count;
        let path = block_path(lblk, self.geo.ptrs())?;
        let mut p = inode.block(path.slot);
        for level in 0..path.depth {
            if !in_range(p) {
                return None;
            }
            let b = self.cache.peek(p as u64)?;
            p = read_ptr(&b.peek_bytes(), path.idx[level]);
        }
        in_range(p).then_some(p)
    }

    /// The disk block of `lblk`, allocating it (and any missing indirect
    /// blocks) near `goal`. Returns the block and whether it is new (its
    /// contents are then undefined and the caller must initialize them).
    ///
    /// On failure nothing this call allocated stays behind: when a later
    /// allocation fails (say ENOSPC for the data block after its indirect
    /// block was taken), the blocks already taken are unhooked and freed
    /// again, as the kernel's `ext2_alloc_branch` does. Otherwise the
    /// caller, which may drop the inode on error (a directory that could
    /// not grow), would leak them: marked in use, referenced by nothing.
    pub(crate) fn map_alloc(
        &self,
        inode: &mut Inode,
        lblk: u64,
        goal: u32,
        privileged: bool,
    ) -> Result<(u32, bool)> {
        let path = block_path(lblk, self.geo.ptrs()).ok_or(FsError::TooBig)?;
        let mut fresh: Vec<u32> = Vec::new();
        // Where the pointer to the first fresh block went: the inode's slot
        // (None) or an entry of an existing indirect block.
        let mut hooked: Option<(u32, usize)> = None;
        let r = self.map_alloc_path(inode, &path, goal, privileged, &mut fresh, &mut hooked);
        if r.is_err() && !fresh.is_empty() {
            let undo = (|| -> Result<()> {
                match hooked {
                    None => inode.i_block[path.slot].set(0),
                    Some((parent, idx)) => write_ptr(
                        &mut self
                            .cache
                            .get(parent as u64)?
                            .write_range(idx * 4..idx * 4 + 4),
                        idx,
                        0,
                    ),
                }
                let sectors = fresh.len() as u32 * self.geo.sectors_per_block();
                inode
                    .i_blocks
                    .set(inode.i_blocks.get().saturating_sub(sectors));
                self.release_blocks(&fresh);
                Ok(())
            })();
            if let Err(e) = undo {
                log::error!(
                    "giving back {} blocks of a failed allocation: {e}",
                    fresh.len()
                );
            }
        }
        r
    }

    fn map_alloc_path(
        &self,
        inode: &mut Inode,
        path: &crate::format::block_ptr::BlockPath,
        goal: u32,
        privileged: bool,
        fresh: &mut Vec<u32>,
        hooked: &mut Option<(u32, usize)>,
    ) -> Result<(u32, bool)> {
        let spb = self.geo.sectors_per_block();
        let mut p = self.check_ptr(inode.block(path.slot))?;
        let mut goal = goal;
        let mut is_new = false;
        if p == 0 {
            p = self.alloc_block(goal, privileged)?;
            fresh.push(p);
            inode.i_blocks.set(inode.i_blocks.get() + spb);
            inode.i_block[path.slot].set(p);
            is_new = true;
            if path.depth > 0 {
                self.cache.get_zeroed(p as u64)?;
            }
        }
        for level in 0..path.depth {
            goal = p + 1;
            let parent = self.cache.get(p as u64)?;
            let v = self.check_ptr(read_ptr(&parent.read(), path.idx[level]))?;
            if v != 0 {
                p = v;
                is_new = false;
                continue;
            }
            let nb = self.alloc_block(goal, privileged)?;
            if fresh.is_empty() {
                *hooked = Some((p, path.idx[level]));
            }
            fresh.push(nb);
            inode.i_blocks.set(inode.i_blocks.get() + spb);
            if level + 1 < path.depth {
                self.cache.get_zeroed(nb as u64)?;
            }
            let at = path.idx[level] * 4;
            write_ptr(&mut parent.write_range(at..at + 4), path.idx[level], nb);
            p = nb;
            is_new = true;
        }
        Ok((p, is_new))
    }

    /// Free every block from logical block `keep` on (data and the indirect
    /// blocks that become empty), through all indirect levels.
    /// Nothing for an inode whose `i_block` holds no block pointers (a
    /// device number, a fast symlink's target): see `Inode::has_block_map`.
    pub(crate) fn truncate_blocks(&self, inode: &mut Inode, keep: u64) -> Result<()> {
        self.free_range(inode, keep, u64::MAX, Emptied::Free)
    }

    /// Free the blocks mapping logical blocks `start..end`: the data blocks,
    /// every indirect block whose whole span lies in the range, and (with
    /// [`Emptied::Free`]) those left without pointers. Holes stay holes.
    /// `i_blocks` drops by what was freed; the bitmaps change when the
    /// request commits (`release_blocks`).
    pub(crate) fn free_range(
        &self,
        inode: &mut Inode,
        start: u64,
        end: u64,
        emptied: Emptied,
    ) -> Result<()> {
        if !inode.has_block_map(self.geo.block_size) || start >= end {
            return Ok(());
        }
        let ptrs = self.geo.ptrs();
        let range = Range {
            start,
            end,
            emptied,
        };
        let mut freed: Vec<u32> = Vec::new();
        for slot in 0..N_BLOCKS {
            let p = self.check_ptr(inode.block(slot))?;
            if p == 0 {
                continue;
            }
            let (first, span) = slot_span(slot, ptrs);
            if !range.meets(first, span) {
                continue;
            }
            if slot < N_DIRECT {
                freed.push(p);
                inode.i_block[slot].set(0);
                continue;
            }
            let depth = slot - IND_BLOCK + 1;
            if self.free_tree(p, depth, first, span / ptrs, &range, &mut freed)? {
                freed.push(p);
                inode.i_block[slot].set(0);
            }
        }
        let spb = self.geo.sectors_per_block();
        let sectors = freed.len() as u32 * spb;
        inode
            .i_blocks
            .set(inode.i_blocks.get().saturating_sub(sectors));
        self.release_blocks(&freed);
        debug_assert!(TIND_BLOCK == N_BLOCKS - 1);
        Ok(())
    }

    /// Walk one indirect block of `depth` levels covering logical blocks from
    /// `base`, each entry covering `per_entry` blocks. Frees what lies in
    /// `range`; returns true when the block itself goes too (see [`Range`]).
    fn free_tree(
        &self,
        blk: u32,
        depth: usize,
        base: u64,
        per_entry: u64,
        range: &Range,
        freed: &mut Vec<u32>,
    ) -> Result<bool> {
        let ptrs = self.geo.ptrs() as usize;
        // Read through the scratch page when AMA recycles pages: the block
        // is only written below when it stays (a boundary path), and then
        // through the cache.
        let entries: Vec<u32> = self.cache.read_with(blk as u64, |d| {
            Ok((0..ptrs).map(|i| read_ptr(d, i)).collect())
        })?;
        let mut cleared = Vec::new();
        let mut remaining = 0usize;
        for (i, &p) in entries.iter().enumerate() {
            if p == 0 {
                continue;
            }
            let p = self.check_ptr(p)?;
            let start = base + i as u64 * per_entry;
            if !range.meets(start, per_entry) {
                remaining += 1;
                continue;
            }
            let gone = if depth == 1 {
                true
            } else {
                self.free_tree(p, depth - 1, start, per_entry / ptrs as u64, range, freed)?
            };
            if gone {
                freed.push(p);
                cleared.push(i);
            } else {
                remaining += 1;
            }
        }
        let gone = remaining == 0
            && (range.emptied == Emptied::Free || range.covers(base, per_entry * ptrs as u64));
        if !cleared.is_empty() && !gone {
            let buf = self.cache.get(blk as u64)?;
            let mut d = buf.write();
            for i in cleared {
                write_ptr(&mut d, i, 0);
            }
        }
        Ok(gone)
    }
}

/// What becomes of an indirect block that a freed range only partly
/// covers and that is left without pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Emptied {
    /// Freed with the rest (truncate: nothing past the end stays mapped).
    Free,
    /// Kept, all zeros: the kernel's hole punching on block-mapped files
    /// (`ext4_ind_remove_space`) frees only the indirect blocks whose whole
    /// span lies in the hole, and a later write fills the kept one again.
    Keep,
}

/// Logical blocks `start..end` being freed.
struct Range {
    start: u64,
    end: u64,
    emptied: Emptied,
}

impl Range {
    /// Do blocks `first..first + span` meet the range?
    fn meets(&self, first: u64, span: u64) -> bool {
        first < self.end && first.saturating_add(span) > self.start
    }

    /// Do blocks `first..first + span` all lie in the range?
    fn covers(&self, first: u64, span: u64) -> bool {
        first >= self.start && first.saturating_add(span) <= self.end
    }
}
