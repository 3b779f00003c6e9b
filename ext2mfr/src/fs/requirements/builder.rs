//! The accounting of one requirement: frames for blocks not cached,
//! before-images for blocks written, pins for what peeking found cached,
//! and the scans (directories, block ranges, the indirect tree) that count
//! them.

use super::RECYCLE_DIR_BLOCKS;
use crate::cache::{BufRef, BUFFER};
use crate::format::block_ptr::{block_path, BlockPath};
use crate::format::inode::Inode;
use crate::fs::Ext2;
use ama::{Aad, Reserve};

/// What peeking at a directory found.
#[derive(Default)]
pub(super) struct DirPeek {
    pub(super) child: Child,
    /// Room for this entry and one per other worker in cached blocks: the
    /// directory need not grow.
    pub(super) room: bool,
}

#[derive(Default, Clone, Copy)]
pub(super) enum Child {
    Found(u32),
    /// Every block was looked at: the name is not there.
    Absent,
    #[default]
    Unknown,
}

/// Accumulates one requirement, pinning what it peeks at.
pub(super) struct Builder<'a, 'p> {
    pub(super) fs: &'a Ext2,
    pub(super) r: &'a mut Reserve<'p>,
    pub(super) peek: bool,
    pub(super) recycle: bool,
    /// Keep margins for what concurrent requests may change before this one
    /// holds its locks (no restart on a stale estimate).
    pub(super) margins: bool,
    /// A stale estimate restarts the request even after it changed state
    /// (recovery rolls it back): no margin for a directory's room either.
    pub(super) rollback: bool,
    /// First try with a restart allowed: what only the request can check
    /// cheaply under its locks is assumed (see `ama::Reserve::assume`), not
    /// found out by scanning directories here as well.
    pub(super) optimistic: bool,
    /// Blocks pinned so far (not counted twice).
    /// (Inline: a request pins a handful, and an allocation per request
    /// showed in AMA's cost.)
    pub(super) pinned: smallvec::SmallVec<[u64; 8]>,
    pub(super) frames: u32,
    pub(super) images: u32,
    pub(super) scratch: bool,
    /// Blocks a write surely allocates (under a hole): written without a
    /// before-image.
    pub(super) sure_new: u64,
    /// The smaller, recycling-heavy requirement (`policy=retry-alternate`).
    pub(super) alternate: bool,
    /// The inode-table block peeked at last, for [`Builder::inode`]: most
    /// requirements price an inode's block, then look at the inode.
    pub(super) inode_buf: Option<(u64, BufRef)>,
}

impl Builder<'_, '_> {
    /// A block whose number is known: pinned if cached (with peeking), else
    /// one frame.
    pub(super) fn block(&mut self, blk: u64) {
        self.peeked_block(blk);
    }

    /// [`Builder::block`], and the block when this call found it cached
    /// (not when an earlier one did).
    fn peeked_block(&mut self, blk: u64) -> Option<BufRef> {
        if self.pinned.contains(&blk) {
            return None;
        }
        let cached = if self.peek {
            self.fs.cache.peek(blk)
        } else {
            None
        };
        match cached {
            Some(b) => {
                self.r.note_peeked();
                self.pinned.push(blk);
                Some(b)
            }
            None => {
                self.frames += 1;
                None
            }
        }
    }

    /// `n` blocks whose numbers are not known on entry.
    pub(super) fn unknown(&mut self, n: u64) {
        self.frames = self.frames.saturating_add(n.min(u32::MAX as u64) as u32);
    }

    /// `n` blocks written (before-images, with recovery on).
    pub(super) fn written(&mut self, n: u64) {
        if self.fs.rt.enabled() {
            self.images = self.images.saturating_add(n.min(u32::MAX as u64) as u32);
        }
    }

    pub(super) fn inode_block(&mut self, ino: u32) {
        let Ok((blk, _)) = self.fs.inode_pos(ino) else {
            self.unknown(1);
            return;
        };
        if let Some(b) = self.peeked_block(blk) {
            self.inode_buf = Some((blk, b));
        }
    }

    pub(super) fn inode(&self, ino: u32) -> Option<Inode> {
        if let (Some((blk, b)), Ok((at, off))) = (&self.inode_buf, self.fs.inode_pos(ino)) {
            if *blk == at {
                let size = self.fs.geo.inode_size as usize;
                return Some(Inode::from_slot(&b.peek_bytes()[off..off + size]));
            }
        }
        self.fs.estimate_inode(ino)
    }

    pub(super) fn blocks_of(&self, size: u64) -> u64 {
        size.div_ceil(self.fs.geo.block_size as u64)
    }

    /// Indirect blocks needed to map logical blocks `0..n`.
    /// The first logical block of a byte range, and how many it spans.
    pub(super) fn blocks_spanned(&self, offset: u64, size: u64) -> (u64, u64) {
        let bs = self.fs.geo.block_size as u64;
        let first = offset / bs;
        (first, (offset + size).div_ceil(bs).saturating_sub(first))
    }

    pub(super) fn ind_blocks(&self, n: u64) -> u64 {
        indirect_blocks(self.fs.geo.ptrs(), n)
    }

    /// Indirect blocks on the paths of `count` consecutive logical blocks:
    /// per level, the blocks the range spans plus one for a boundary, on at
    /// most two indirect trees.
    pub(super) fn range_ind(&self, first: u64, count: u64) -> u64 {
        if first + count <= 12 {
            return 0;
        }
        let p = self.fs.geo.ptrs();
        let per_tree = 3 + count / p + count / (p * p) + 2;
        (2 * per_tree).min(self.ind_blocks(first + count))
    }

    /// Logical block `lblk` of `i`, through cached indirect blocks only
    /// (pinning them); `None` if a hole or an indirect block is not cached.
    pub(super) fn peek_map(&mut self, i: &Inode, lblk: u64) -> Option<u64> {
        let path = block_path(lblk, self.fs.geo.ptrs())?;
        let p = self.walk(i, &path).ok()?;
        (p != 0 && p < self.fs.geo.blocks_count as u64).then_some(p)
    }

    /// Walk `path` of `i` through cached indirect blocks, pinning them: the
    /// block number it ends at (0 for a hole), or where it left the cache
    /// (the level, and whether at a hole, below which nothing exists, or at
    /// a block not cached).
    pub(super) fn walk(&mut self, i: &Inode, path: &BlockPath) -> Result<u64, (usize, bool)> {
        if !i.has_block_map(self.fs.geo.block_size) {
            return Ok(0); // a device number or a target: no blocks to pin
        }
        let nblocks = self.fs.geo.blocks_count as u64;
        let mut p = i.block(path.slot) as u64;
        for level in 0..path.depth {
            let b = if p == 0 || p >= nblocks {
                None
            } else {
                self.fs.cache.peek(p)
            };
            let Some(b) = b else {
                return Err((level, p == 0));
            };
            let next = {
                let d = b.peek_bytes();
                crate::format::block_ptr::read_ptr(&d, path.idx[level]) as u64
            };
            if !self.pinned.contains(&p) {
                self.r.note_peeked();
                self.pinned.push(p);
            }
            p = next;
        }
        Ok(p)
    }

    /// Blocks `first..first+count` of `i` (data or directory blocks) and the
    /// indirect blocks mapping them, to be read (`write` false) or written.
    /// Returns how many blocks the write may allocate (data blocks in holes
    /// and missing indirect blocks).
    ///
    /// With peeking, each block's path is walked through the cache: what is
    /// cached is pinned; a zero pointer in a cached block is a hole (for a
    /// read nothing, for a write new blocks from there down); an indirect
    /// block not cached costs a frame, and so does every block below it.
    /// Indirect blocks are counted once, by their place in the tree.
    pub(super) fn range(&mut self, i: Option<&Inode>, first: u64, count: u64, write: bool) -> u64 {
        let Some(i) = i.filter(|_| self.peek && count <= 64) else {
            let ind = self.range_ind(first, count);
            self.unknown(count + ind);
            return count + ind;
        };
        let ptrs = self.fs.geo.ptrs();
        // Indirect blocks not found cached: (slot, level, index above).
        let mut missing: Vec<(usize, usize, [usize; 2])> = Vec::new();
        let mut allocs = 0;
        for lblk in first..first + count {
            let Some(path) = block_path(lblk, ptrs) else {
                continue; // past the largest file: the request fails
            };
            let hole = match self.walk(i, &path) {
                Ok(0) => true,
                Ok(p) => {
                    self.block(p);
                    continue;
                }
                Err((from, hole)) => {
                    for level in from..path.depth {
                        let key = match level {
                            0 => (path.slot, 0, [0, 0]),
                            1 => (path.slot, 1, [path.idx[0], 0]),
                            _ => (path.slot, 2, [path.idx[0], path.idx[1]]),
                        };
                        if missing.contains(&key) {
                            continue;
                        }
                        missing.push(key);
                        // New under a hole (written only); else read, or
                        // below a block not cached, perhaps new.
                        if !hole || write {
                            self.frames += 1;
                        }
                        if write && (hole || level > from) {
                            allocs += 1;
                        }
                        if write && hole {
                            self.sure_new += 1;
                        }
                    }
                    hole
                }
            };
            // The data block: under a hole new (written only); else
            // perhaps there, perhaps new.
            if !hole || write {
                self.frames += 1;
            }
            if write {
                allocs += 1;
            }
            if write && hole {
                self.sure_new += 1;
            }
        }
        allocs
    }

    /// A scan of directory `dir`: all its blocks, or (recycling) one scratch
    /// page plus the cached ones it will use in place.
    /// `name`: the name to look for, and room for; `None` when the caller
    /// needs the blocks pinned or reserved but nothing found in them.
    pub(super) fn dir_scan(&mut self, dir: u32, name: Option<&[u8]>, alternate: bool) -> DirPeek {
        let i = self.inode(dir);
        if !alternate && i.as_ref().is_some_and(|i| self.fs.maybe_indexed(i)) {
            // Through the index: the root, a node, the leaf and the leaf
            // that may continue its last hash; read through the cache.
            self.unknown(DX_LOOKUP_BLOCKS);
            return DirPeek::default();
        }
        let slack = if self.margins {
            self.fs.config.threads.saturating_sub(1) as u64
        } else {
            0
        };
        let n = i
            .as_ref()
            .map_or(RECYCLE_DIR_BLOCKS, |i| self.blocks_of(i.size()))
            + slack;
        if (self.recycle && n > RECYCLE_DIR_BLOCKS) || alternate {
            // Scanned through scratch; the block an entry is then added to
            // or removed from, and its path, come through the cache.
            self.scratch = true;
            self.unknown(4);
            return DirPeek::default();
        }
        let Some(i) = i.filter(|_| self.peek && n <= 64) else {
            self.range(i.as_ref(), 0, n, false);
            return DirPeek::default();
        };
        // Peek at every block once: pin it, and look in it for the name
        // and for room for one more entry.
        let nblocks = self.blocks_of(i.size());
        let need = crate::format::dirent::rec_len_for(name.map_or(0, |n| n.len().min(255)));
        let mut found = None;
        let mut complete = true;
        let mut slots = 0usize;
        let mut ind_missing = false;
        for lblk in 0..n {
            let cached = if lblk < nblocks {
                self.peek_map(&i, lblk)
                    .and_then(|blk| self.fs.cache.peek(blk).map(|b| (blk, b)))
            } else {
                None // room for what may be added before we hold the lock
            };
            let Some((blk, b)) = cached else {
                complete &= lblk >= nblocks;
                ind_missing |= lblk >= 12;
                self.unknown(1);
                continue;
            };
            if let (None, Some(name)) = (found, name) {
                // Through the block's name index (see `Ext2::name_index`),
                // else every entry.
                let seen = b.peek_derived(|data, slot| match self.fs.name_index(data, slot) {
                    Some(index) => {
                        found = index.find(data, name);
                        slots += index.slots(need);
                        Ok(())
                    }
                    None => {
                        crate::format::dirent::visit_block(data, self.fs.geo.inodes_count, |e| {
                            if e.is(name) {
                                found = Some(e.inode);
                            }
                            // (No division for the many entries without room.)
                            let free = e.slack();
                            if free >= need {
                                slots += free / need;
                            }
                        })
                    }
                });
                if seen.is_err() {
                    complete = false;
                }
            }
            if !self.pinned.contains(&blk) {
                self.r.note_peeked();
                self.pinned.push(blk);
            }
        }
        if ind_missing {
            let ind = self.range_ind(0, n);
            self.unknown(ind);
        }
        if name.is_none() {
            return DirPeek::default();
        }
        DirPeek {
            child: match found {
                Some(ino) => Child::Found(ino),
                None if complete => Child::Absent,
                None => Child::Unknown,
            },
            room: complete
                && slots
                    >= if self.rollback {
                        1
                    } else {
                        self.fs.config.threads.max(1)
                    },
        }
    }

    /// Cutting `i` down to `size` bytes (0: freeing it): the indirect tree
    /// (or, recycling, the scratch page and the boundary path), the bitmaps
    /// of the freed blocks at commit, the new last block when `size` ends
    /// inside it (its tail is zeroed) and the xattr block (freed with the
    /// inode).
    pub(super) fn truncate(&mut self, i: Option<&Inode>, size: u64) {
        let keep = self.blocks_of(size);
        let spb = self.fs.geo.sectors_per_block() as u64;
        let Some(i) = i else {
            // Unknown: the largest tree.
            if self.recycle {
                self.scratch = true;
                self.unknown(3 + 2);
            } else {
                self.unknown(self.ind_blocks(u32::MAX as u64) + 2);
            }
            self.bitmaps(u32::MAX as u64);
            self.written(3 + 1);
            return;
        };
        let nblocks = i.i_blocks.get() as u64 / spb;
        // (A device node, FIFO, socket or fast symlink has no tree; at most
        // an xattr block, below.)
        let tree = if i.has_block_map(self.fs.geo.block_size) {
            self.ind_blocks(self.blocks_of(i.size())).min(nblocks)
        } else {
            0
        };
        let boundary = if keep > 0 { tree.min(3) } else { 0 };
        if tree > 0 {
            if self.recycle {
                self.scratch = true;
                self.unknown(boundary);
            } else {
                self.unknown(tree);
            }
        }
        self.written(boundary);
        // (The new size decides, not the old: a file of whole blocks cut
        // to a partial one has its new last block zeroed past the end.)
        if !size.is_multiple_of(self.fs.geo.block_size as u64) {
            self.unknown(1);
            self.written(1);
        }
        if i.i_file_acl.get() != 0 {
            // Its reference count is written when the inode goes.
            self.block(i.i_file_acl.get() as u64);
            self.written(1);
        }
        self.bitmaps(nblocks);
    }

    /// Bitmap blocks for `k` allocations or frees: with peeking, the cached
    /// bitmaps of a small file system are pinned instead.
    pub(super) fn bitmaps(&mut self, k: u64) {
        if k == 0 || self.fs.bitmaps_resident() {
            return;
        }
        let groups = self.fs.geo.groups as u64;
        if self.peek && groups <= 8 {
            for g in 0..groups as usize {
                self.block(self.fs.geo.block_bitmap[g] as u64);
            }
        } else {
            self.unknown(k.min(groups));
        }
    }

    pub(super) fn inode_bitmap(&mut self, near: u32) {
        if self.fs.bitmaps_resident() {
            return;
        }
        let g = (near.max(1) - 1) / self.fs.geo.inodes_per_group;
        if self.fs.geo.groups <= 8 && self.peek {
            for g in 0..self.fs.geo.groups as usize {
                self.block(self.fs.geo.inode_bitmap[g] as u64);
            }
        } else {
            self.block(self.fs.geo.inode_bitmap[g as usize] as u64);
            if self.fs.geo.groups > 1 {
                self.unknown(1);
            }
        }
    }

    /// Will adding `name` to `dir` find room in its blocks (pinned or
    /// reserved here)? Optimistically assumed: the request checks it with
    /// its own scan, and restarts if not (see `Ext2::dir_probe`).
    pub(super) fn dir_room(&mut self, dir: u32, name: &[u8], alternate: bool) -> bool {
        if self.optimistic {
            self.dir_scan(dir, None, alternate);
            self.r.assume();
            return true;
        }
        self.dir_scan(dir, Some(name), alternate).room
    }

    /// Blocks a directory may need to grow by (`None`: it has room
    /// enough, as `dir_scan` found): one block for a linear directory;
    /// for an indexed one a new leaf, a split index node and a new index
    /// level; two for a single block about to be indexed; plus the
    /// indirect blocks of the directory's own block map past the direct
    /// ones.
    pub(super) fn dir_growth(&self, dir: Option<&Inode>) -> u64 {
        let Some(d) = dir else {
            return 0;
        };
        let n = self.blocks_of(d.size());
        let new = if self.fs.maybe_indexed(d) {
            DX_SPLIT_BLOCKS
        } else if self.fs.geo.dir_index && n <= 1 {
            2
        } else {
            1
        };
        if n + new + (self.fs.config.threads as u64) < 12 {
            new
        } else {
            new + 3
        }
    }

    pub(super) fn aad(&self) -> Aad {
        let mut a =
            Aad::pages(self.frames.saturating_add(self.images)).with_objects(BUFFER, self.frames);
        if self.scratch {
            a = a.with_scratch();
        }
        a
    }
}

/// Blocks a lookup through an index reads: the root, a node, the leaf,
/// and the next leaf when the hash continues there.
const DX_LOOKUP_BLOCKS: u64 = 4;
/// Blocks an insert into an indexed directory may add: a leaf, an index
/// node split off, and a node for a new level.
pub(super) const DX_SPLIT_BLOCKS: u64 = 3;

/// Deepest directory tree an estimate walks up through; deeper, the rest
/// is counted as unknown blocks.
const MAX_WALK_DEPTH: u32 = 1 << 12;

impl Builder<'_, '_> {
    /// The walk from `dir` up to the root that `Ext2::is_within` makes:
    /// each directory's inode block and the first block, which holds "..".
    /// Cached blocks are pinned; the others cost a frame each, and are
    /// read here (as `peek_child` reads) to find the next parent.
    pub(super) fn ancestors(&mut self, dir: u32) {
        use crate::format::inode::ROOT_INO;
        let mut buf = vec![0u8; self.fs.geo.block_size as usize];
        let mut cur = dir;
        for _ in 0..MAX_WALK_DEPTH {
            if cur == ROOT_INO {
                return;
            }
            self.inode_block(cur);
            let Some(i) = self.inode(cur) else {
                self.unknown(1);
                return;
            };
            let first = i.block(0) as u64;
            if self.fs.estimate_block(first, &mut buf).is_none() {
                return; // a bad block number: the request fails there too
            }
            self.block(first);
            match self.fs.find_in(&buf, b"..") {
                Some(Some(parent)) if parent != cur => cur = parent,
                _ => return,
            }
        }
        // Deeper than this: a loop in a corrupt image (the request then
        // walks on until its reserve is spent and it fails).
    }

    pub(super) fn dir_scan_inode(&mut self, i: &Inode, alternate: bool) {
        let n = self.blocks_of(i.size());
        if (self.recycle && n > RECYCLE_DIR_BLOCKS) || alternate {
            self.scratch = true;
        } else {
            self.range(Some(i), 0, n, false);
        }
    }
}

/// Indirect blocks needed to map logical blocks `0..n` with `ptrs`
/// pointers per block (an upper bound at the triple level).
fn indirect_blocks(ptrs: u64, n: u64) -> u64 {
    let p = ptrs;
    let mut left = n.saturating_sub(crate::format::inode::N_DIRECT as u64);
    let mut total = 0;
    if left > 0 {
        total += 1; // single indirect
        left = left.saturating_sub(p);
    }
    if left > 0 {
        let here = left.min(p * p);
        total += 1 + here.div_ceil(p);
        left -= here;
    }
    if left > 0 {
        total += 1 + left.div_ceil(p * p) + left.div_ceil(p);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The indirect blocks `block_path` walks through for blocks `0..n`:
    /// one per distinct (slot, level, index above).
    fn walked(ptrs: u64, n: u64) -> u64 {
        let mut seen = HashSet::new();
        for lblk in 0..n {
            let path = block_path(lblk, ptrs).expect("in range");
            for level in 0..path.depth {
                let above: Vec<usize> = path.idx[..level].to_vec();
                seen.insert((path.slot, level, above));
            }
        }
        seen.len() as u64
    }

    #[test]
    fn indirect_counts_cover_the_block_map() {
        // Small pointer counts reach every level with few blocks.
        for ptrs in [4u64, 8, 256] {
            let levels = [12, 12 + ptrs, 12 + ptrs + ptrs * ptrs];
            let mut ns: Vec<u64> = (0..40).collect();
            for l in levels {
                ns.extend([l - 1, l, l + 1, l + ptrs, l + ptrs * 3 + 1]);
            }
            for n in ns {
                let max = 12 + ptrs + ptrs * ptrs + ptrs * ptrs * ptrs;
                if n > max || (ptrs == 256 && n > 12 + ptrs + 3 * ptrs * ptrs) {
                    continue; // (keep the walk short at 256 pointers)
                }
                let (counted, real) = (indirect_blocks(ptrs, n), walked(ptrs, n));
                assert!(counted >= real, "ptrs {ptrs}, n {n}: {counted} < {real}");
                // Exact below the triple level, where the count is a bound.
                if n <= 12 + ptrs + ptrs * ptrs {
                    assert_eq!(counted, real, "ptrs {ptrs}, n {n}");
                }
            }
        }
    }
}
