//! AMA requirements: the worst-case memory of each request, computed on
//! entry (before any lock is taken) from what the request's arguments and a
//! look at the cache tell, after the AMA paper's Table 3.
//!
//! What a request really allocates from the page pool is (a) a frame (and a
//! buffer object) for every block it reads or creates that is not cached, and
//! (b) with recovery on, a page for the before-image of every block it writes
//! first in a domain (its own root domain, and the Reversible domain of every
//! allocation, which writes a bitmap). Each block needs one frame at most: the
//! cache pins every block a request reads for the rest of the request, so it
//! cannot be evicted and read again.
//!
//! Terms: `Inode` = the inode-table block of an inode; `Dir(d)` = the blocks
//! of directory `d` plus the indirect blocks mapping them;
//! `Range(o,n)` = the data blocks of a byte range and the indirect blocks on
//! their paths (with peeking: those not cached, and for a write the holes
//! and missing indirect blocks, which are new); `Bitmaps(k)` = min(groups, k) bitmap blocks;
//! `Tree(i)` = the indirect blocks of inode `i`; `Grow` = the blocks a
//! directory needs to take one more entry (0 when peeking finds room, 1 in
//! the direct blocks, else 1 + 3 indirect); `W(..)` =
//! before-images (recovery on only). An allocation is a Reversible domain of
//! its own: one bitmap image each (its inverse, run on rollback, is
//! unlogged).
//!
//! | request | frames | before-images |
//! |---|---|---|
//! | getattr, access, opendir | Inode | 0 |
//! | getxattr, listxattr | Inode + xattr block | 0 |
//! | readlink | Inode + target block | 0 |
//! | lookup | 2 Inode + Dir(parent) | 0 |
//! | readdir | Inode + Dir(dir) | 1 (atime) |
//! | read(o, n) | Inode + Range(o,n) | 1 (atime) |
//! | write(o, n) | Inode + Range(o,n) + Bitmaps(k), k = holes + their indirect blocks | 1 + n + ind + k |
//! | setattr (size) | Inode + Tree(i) + tail block + xattr + Bitmaps(i_blocks) | 1 + boundary path (3) + tail + xattr |
//! | create, mknod, mkdir, symlink | 2 Inode + Dir(parent) + inode bitmap + Grow + data blocks + Bitmaps | 4 + 2 per new block (+3 for an indirect path) |
//! | link | 2 Inode + Dir(parent) + Grow + Bitmaps | 3 + 2 per new block (+3) |
//! | unlink, rmdir | 2 Inode + Dir(parent) + Dir(child) + truncate(child) + inode bitmap | 3 + truncate's |
//! | rename | 3 Inode + Dir(old) + Dir(new) + ".." block + unlink's for the target + Grow | 7 + 2 per new block (+3) + truncate's |
//! | forget (release) | Inode + truncate(i) + inode bitmap | 1 + truncate's |
//! | fsync | 0 (write-back allocates nothing) | 0 |
//!
//! **Concurrent requests** can overtake an estimate between its computation
//! and the request taking its locks: a directory grows, a slot found free is
//! taken, a name appears. Without margins for that, such a request finds its
//! reserve spent and is restarted on a fresh estimate (`gate.rs`,
//! `ama::Reserve::allow_restart`): with recovery on at any point (after a
//! rollback), without only before its first change (all scans of a
//! directory for a name come before it). So margins are kept only where a
//! change comes first without recovery (the room found in a directory must
//! then leave a slot per worker thread) and after `gate::MAX_RESTARTS`
//! restarts (then also `threads - 1` blocks a directory may have grown by,
//! and the inode block of a name a lookup did not find).
//!
//! **First estimates assume** what the request checks cheaply under its
//! own locks, instead of scanning directories here as well (the scan was
//! half of AMA's cost): on the first try, with a restart allowed and
//! peeking on, lookup takes the child's inode block to be cached and
//! create, mknod, mkdir, symlink and link take the directory to have room
//! (`Grow` = 0). A lookup whose child block is not cached finds its reserve
//! spent and restarts; a create whose own scan finds no room calls
//! `ama::assumption_failed` before it changes anything and restarts. The
//! next try scans (the table above).
//!
//! **Cache peeking** (`peek=on`): blocks whose numbers are known on entry
//! (inode-table blocks, directory and data blocks mapped through cached
//! indirect blocks, the goal group's bitmap) and that are cached are pinned
//! in the reserve instead of reserved. Bitmaps are usually resident (see
//! `Ext2::resident_bitmaps`) and then cost nothing. **Page recycling** (`recycle=on`):
//! truncation reads the indirect tree, and scans of directories larger than
//! [`RECYCLE_DIR_BLOCKS`] read uncached blocks, through one scratch page, so
//! `Tree(i)` and `Dir(d)` shrink to the depth of the tree. The alternate
//! requirement (`policy=retry-alternate` after a failed reservation)
//! recycles every scan and read.

use super::Ext2;
use crate::format::block_ptr::{block_path, BlockPath};
use crate::format::inode::{Inode, INODE_STRUCT_SIZE};
use ama::{Aad, Reserve};

/// Directories up to this many blocks are scanned through the cache;
/// larger ones through the scratch page (with recycling on).
pub const RECYCLE_DIR_BLOCKS: u64 = 16;

/// The object kinds ext2mfr allocates per request, for the AMA pool.
pub const BUFFER: usize = 0;
pub fn object_kinds() -> [ama::ObjectKind; 1] {
    [ama::ObjectKind {
        name: "buffer",
        size: std::mem::size_of::<crate::cache::Buf>(),
    }]
}

/// What a request is about to do, as far as its memory is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Need<'a> {
    /// Reads one inode (getattr, access, opendir).
    Attr(u32),
    /// Reads an inode and its xattr block.
    Xattr(u32),
    /// Reads a symlink's inode and target block.
    Readlink(u32),
    Lookup {
        parent: u32,
        name: &'a [u8],
    },
    Readdir {
        dir: u32,
    },
    Read {
        ino: u32,
        offset: u64,
        size: u64,
    },
    Write {
        ino: u32,
        offset: u64,
        size: u64,
    },
    SetAttr {
        ino: u32,
        size: Option<u64>,
    },
    /// `blocks`: data blocks the new inode gets (a directory's first
    /// block, a slow symlink's target); `dir`: a directory.
    Create {
        parent: u32,
        name: &'a [u8],
        blocks: u32,
        dir: bool,
    },
    Link {
        ino: u32,
        parent: u32,
        name: &'a [u8],
    },
    Remove {
        parent: u32,
        name: &'a [u8],
    },
    Rename {
        old_parent: u32,
        old_name: &'a [u8],
        new_parent: u32,
        new_name: &'a [u8],
        /// RENAME_EXCHANGE: the target stays, under the old name.
        exchange: bool,
    },
    Release {
        ino: u32,
    },
    /// Allocates nothing from the pool (fsync, flush).
    Nothing,
}

/// What peeking at a directory found.
#[derive(Default)]
struct DirPeek {
    child: Child,
    /// Room for this entry and one per other worker in cached blocks: the
    /// directory need not grow.
    room: bool,
}

#[derive(Default, Clone, Copy)]
enum Child {
    Found(u32),
    /// Every block was looked at: the name is not there.
    Absent,
    #[default]
    Unknown,
}

/// Accumulates one requirement, pinning what it peeks at.
struct Builder<'a> {
    fs: &'a Ext2,
    r: &'a mut Reserve,
    peek: bool,
    recycle: bool,
    /// Keep margins for what concurrent requests may change before this one
    /// holds its locks (no restart on a stale estimate).
    margins: bool,
    /// A stale estimate restarts the request even after it changed state
    /// (recovery rolls it back): no margin for a directory's room either.
    rollback: bool,
    /// First try with a restart allowed: what only the request can check
    /// cheaply under its locks is assumed (see `ama::Reserve::assume`), not
    /// found out by scanning directories here as well.
    optimistic: bool,
    /// Blocks pinned so far (not counted twice).
    pinned: Vec<u64>,
    frames: u32,
    images: u32,
    scratch: bool,
    /// Blocks a write surely allocates (under a hole): written without a
    /// before-image.
    sure_new: u64,
}

impl Builder<'_> {
    /// A block whose number is known: pinned if cached (with peeking), else
    /// one frame.
    fn block(&mut self, blk: u64) {
        if self.pinned.contains(&blk) {
            return;
        }
        if self.peek {
            if let Some(b) = self.fs.cache.peek(blk) {
                self.r.pin_peeked(b);
                self.pinned.push(blk);
                return;
            }
        }
        self.frames += 1;
    }

    /// `n` blocks whose numbers are not known on entry.
    fn unknown(&mut self, n: u64) {
        self.frames = self.frames.saturating_add(n.min(u32::MAX as u64) as u32);
    }

    /// `n` blocks written (before-images, with recovery on).
    fn written(&mut self, n: u64) {
        if self.fs.rt.enabled() {
            self.images = self.images.saturating_add(n.min(u32::MAX as u64) as u32);
        }
    }

    fn inode_block(&mut self, ino: u32) {
        match self.fs.inode_pos(ino) {
            Ok((blk, _)) => self.block(blk),
            Err(_) => self.unknown(1),
        }
    }

    fn inode(&self, ino: u32) -> Option<Inode> {
        self.fs.estimate_inode(ino)
    }

    fn blocks_of(&self, size: u64) -> u64 {
        size.div_ceil(self.fs.geo.block_size as u64)
    }

    /// Indirect blocks needed to map logical blocks `0..n`.
    fn ind_blocks(&self, n: u64) -> u64 {
        let p = self.fs.geo.ptrs();
        let mut left = n.saturating_sub(12);
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

    /// Indirect blocks on the paths of `count` consecutive logical blocks:
    /// per level, the blocks the range spans plus one for a boundary, on at
    /// most two indirect trees.
    fn range_ind(&self, first: u64, count: u64) -> u64 {
        if first + count <= 12 {
            return 0;
        }
        let p = self.fs.geo.ptrs();
        let per_tree = 3 + count / p + count / (p * p) + 2;
        (2 * per_tree).min(self.ind_blocks(first + count))
    }

    /// Logical block `lblk` of `i`, through cached indirect blocks only
    /// (pinning them); `None` if a hole or an indirect block is not cached.
    fn peek_map(&mut self, i: &Inode, lblk: u64) -> Option<u64> {
        let path = block_path(lblk, self.fs.geo.ptrs())?;
        let p = self.walk(i, &path).ok()?;
        (p != 0 && p < self.fs.geo.blocks_count as u64).then_some(p)
    }

    /// Walk `path` of `i` through cached indirect blocks, pinning them: the
    /// block number it ends at (0 for a hole), or where it left the cache
    /// (the level, and whether at a hole, below which nothing exists, or at
    /// a block not cached).
    fn walk(&mut self, i: &Inode, path: &BlockPath) -> Result<u64, (usize, bool)> {
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
                self.r.pin_peeked(b);
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
    fn range(&mut self, i: Option<&Inode>, first: u64, count: u64, write: bool) -> u64 {
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
    fn dir_scan(&mut self, dir: u32, name: Option<&[u8]>, alternate: bool) -> DirPeek {
        let i = self.inode(dir);
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
                let data = b.peek_bytes();
                let seen =
                    crate::format::dirent::visit_block(&data, self.fs.geo.inodes_count, |e| {
                        if e.is(name) {
                            found = Some(e.inode);
                        }
                        // (No division for the many entries without room.)
                        let free = e.slack();
                        if free >= need {
                            slots += free / need;
                        }
                    });
                if seen.is_err() {
                    complete = false;
                }
            }
            if !self.pinned.contains(&blk) {
                self.r.pin_peeked(b);
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
    fn truncate(&mut self, i: Option<&Inode>, size: u64) {
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
        if size % self.fs.geo.block_size as u64 != 0 {
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
    fn bitmaps(&mut self, k: u64) {
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

    fn inode_bitmap(&mut self, near: u32) {
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
    fn dir_room(&mut self, dir: u32, name: &[u8], alternate: bool) -> bool {
        if self.optimistic {
            self.dir_scan(dir, None, alternate);
            self.r.assume();
            return true;
        }
        self.dir_scan(dir, Some(name), alternate).room
    }

    /// Blocks a directory may need to grow by one block (`None`: it has
    /// room enough, as `dir_scan` found).
    fn dir_growth(&self, dir: Option<&Inode>) -> u64 {
        match dir {
            None => 0,
            Some(d) if self.blocks_of(d.size()) + (self.fs.config.threads as u64) < 12 => 1,
            Some(_) => 1 + 3,
        }
    }

    fn aad(&self) -> Aad {
        let mut a =
            Aad::pages(self.frames.saturating_add(self.images)).with_objects(BUFFER, self.frames);
        if self.scratch {
            a = a.with_scratch();
        }
        a
    }
}

impl Ext2 {
    /// The worst-case [`Aad`] of a request, pinning in `r` what peeking
    /// finds cached. `alternate`: the smaller, recycling-heavy requirement.
    pub(crate) fn requirements(
        &self,
        need: &Need,
        r: &mut Reserve,
        alternate: bool,
        restart: ama::Restart,
        first: bool,
    ) -> Aad {
        let ama = &self.config.ama;
        let mut b = Builder {
            fs: self,
            r,
            peek: ama.peek,
            recycle: ama.recycle || alternate,
            margins: restart == ama::Restart::Never,
            rollback: restart == ama::Restart::Anywhere,
            optimistic: first && ama.peek && !alternate && restart != ama::Restart::Never,
            pinned: Vec::with_capacity(8),
            frames: 0,
            images: 0,
            scratch: false,
            sure_new: 0,
        };
        match *need {
            Need::Nothing => {}
            Need::Attr(ino) => b.inode_block(ino),
            Need::Xattr(ino) => {
                b.inode_block(ino);
                match b.inode(ino).map(|i| i.i_file_acl.get()) {
                    Some(0) => {}
                    Some(acl) => b.block(acl as u64),
                    None => b.unknown(1),
                }
            }
            Need::Readlink(ino) => {
                b.inode_block(ino);
                match b.inode(ino) {
                    Some(i) => {
                        b.range(Some(&i), 0, 1, false);
                    }
                    None => b.unknown(1),
                }
            }
            Need::Lookup { parent, name } => {
                b.inode_block(parent);
                if b.optimistic {
                    // The lookup finds the name itself; its inode's block
                    // is taken to be cached, as it mostly is. If not, its
                    // frame is refused as stale and the lookup, which
                    // changes nothing, runs again on a full estimate.
                    b.dir_scan(parent, None, alternate);
                    b.r.assume();
                    return b.aad();
                }
                match b.dir_scan(parent, Some(name), alternate).child {
                    Child::Found(c) => b.inode_block(c),
                    // (A name added meanwhile: its inode block was just
                    // written, but may have been evicted since. Without
                    // margins, a restart covers that.)
                    Child::Absent if !b.margins => {}
                    Child::Absent | Child::Unknown => b.unknown(1),
                }
            }
            Need::Readdir { dir } => {
                b.inode_block(dir);
                b.dir_scan(dir, None, alternate);
                b.written(1);
            }
            Need::Read { ino, offset, size } => {
                b.inode_block(ino);
                let bs = self.geo.block_size as u64;
                let first = offset / bs;
                let count = (offset + size).div_ceil(bs).saturating_sub(first);
                if alternate {
                    // Data read block by block through the scratch page.
                    b.scratch = true;
                    let ind = b.range_ind(first, count);
                    b.unknown(ind);
                } else {
                    let i = b.inode(ino);
                    b.range(i.as_ref(), first, count, false);
                }
                b.written(1);
            }
            Need::Write { ino, offset, size } => {
                b.inode_block(ino);
                let bs = self.geo.block_size as u64;
                let first = offset / bs;
                let count = (offset + size).div_ceil(bs).saturating_sub(first);
                let i = b.inode(ino);
                let allocs = b.range(i.as_ref(), first, count, true);
                // The indirect blocks that take a new pointer.
                let ind = if allocs == 0 {
                    0
                } else {
                    b.range_ind(first, count)
                };
                b.bitmaps(allocs);
                // Images: the inode, every block written but those surely
                // new (a new block needs none), the indirect blocks on the
                // path, and the bitmap once per allocation (each its own
                // domain). (An allocation's inverse runs unlogged: no image.)
                b.written((1 + count + ind + allocs).saturating_sub(b.sure_new));
            }
            Need::SetAttr { ino, size } => {
                b.inode_block(ino);
                b.written(1);
                if let Some(size) = size {
                    let i = b.inode(ino);
                    b.truncate(i.as_ref(), size);
                }
            }
            Need::Create {
                parent,
                name,
                blocks,
                dir: is_dir,
            } => {
                b.inode_block(parent);
                let room = b.dir_room(parent, name, alternate);
                let dir = b.inode(parent).filter(|_| !room);
                // The new inode's table block: `alloc_inode` reads the one
                // of the inode it is going to get before it changes
                // anything, so peeking looks at the same one. (A concurrent
                // create can take that inode first: a restart, or with
                // margins one more frame.)
                match self.next_free_inode(parent, is_dir, true).ok().flatten() {
                    Some(ino) => b.inode_block(ino),
                    None => b.unknown(1),
                }
                if b.margins {
                    b.unknown(1);
                }
                b.inode_bitmap(parent);
                let new = b.dir_growth(dir.as_ref()) + blocks as u64;
                b.unknown(new);
                b.bitmaps(new);
                // Directory block, parent, new inode, the inode bitmap; per
                // new block its zeroing and its bitmap; a grown indirect
                // path.
                b.written(4 + 2 * new + if new > 1 + blocks as u64 { 3 } else { 0 });
            }
            Need::Link { ino, parent, name } => {
                b.inode_block(ino);
                b.inode_block(parent);
                let room = b.dir_room(parent, name, alternate);
                let dir = b.inode(parent).filter(|_| !room);
                let new = b.dir_growth(dir.as_ref());
                b.unknown(new);
                b.bitmaps(new);
                b.written(3 + 2 * new + if new > 1 { 3 } else { 0 });
            }
            Need::Remove { parent, name } => {
                b.inode_block(parent);
                let child = match b.dir_scan(parent, Some(name), alternate).child {
                    Child::Found(c) => Some(c),
                    Child::Absent => None,
                    Child::Unknown => self.peek_child(parent, name),
                };
                match child {
                    Some(c) => b.inode_block(c),
                    None => b.unknown(1),
                }
                let ci = child.and_then(|c| b.inode(c));
                if let Some(c) = &ci {
                    if c.is_dir() {
                        b.dir_scan_inode(c, alternate);
                    }
                } else {
                    // An unknown child directory: scanned through scratch.
                    b.scratch = true;
                }
                // Freed now when the kernel holds no reference (else at
                // forget). Cheap to cover either way: a small file has no
                // tree, a large one is recycled through the scratch page.
                b.truncate(ci.as_ref(), 0);
                b.inode_bitmap(parent);
                // Directory block, parent, child (bitmaps change at commit).
                b.written(3);
            }
            Need::Rename {
                old_parent,
                old_name,
                new_parent,
                new_name,
                exchange,
            } => {
                b.inode_block(old_parent);
                b.inode_block(new_parent);
                let source = match b.dir_scan(old_parent, Some(old_name), alternate).child {
                    Child::Found(c) => {
                        b.inode_block(c);
                        Some(c)
                    }
                    _ => {
                        b.unknown(1);
                        None
                    }
                };
                let new_peek = b.dir_scan(new_parent, Some(new_name), alternate);
                b.unknown(2); // a moved directory's ".." block and its path
                let target = match new_peek.child {
                    Child::Found(t) => Some(t),
                    Child::Absent => None,
                    Child::Unknown => self.peek_child(new_parent, new_name),
                };
                let is_dir = |b: &Builder, ino: Option<u32>| {
                    ino.and_then(|i| b.inode(i)).is_none_or(|i| i.is_dir())
                };
                // A directory that changes parent: the walk up from its new
                // parent that refuses to move it into itself.
                if old_parent != new_parent {
                    if is_dir(&b, source) {
                        b.ancestors(new_parent);
                    }
                    if exchange && is_dir(&b, target) {
                        b.ancestors(old_parent);
                    }
                }
                if exchange {
                    // Both stay: the target's inode and its ".." block
                    // (and its path) change too; no directory grows.
                    b.unknown(1 + 2);
                    b.written(8);
                    return b.aad();
                }
                // The target, when replaced, goes as unlink would.
                if let Some(t) = target {
                    b.inode_block(t);
                    let ti = b.inode(t);
                    if let Some(ti) = &ti {
                        if ti.is_dir() {
                            b.dir_scan_inode(ti, alternate);
                        }
                        b.truncate(Some(ti), 0);
                        b.inode_bitmap(new_parent);
                    }
                }
                let dir = b.inode(new_parent).filter(|_| !new_peek.room);
                let new = b.dir_growth(dir.as_ref());
                b.unknown(new);
                b.bitmaps(new);
                b.written(7 + 2 * new + if new > 1 { 3 } else { 0 });
            }
            Need::Release { ino } => {
                b.inode_block(ino);
                let i = b.inode(ino);
                b.truncate(i.as_ref(), 0);
                b.inode_bitmap(ino);
                b.written(1);
            }
        }
        b.aad()
    }

    /// The inode `name` names in `parent` (for the child of an unlink or
    /// rename, whose size decides what freeing it costs). Blocks come from
    /// the cache or, when not cached, straight from the image into one
    /// buffer of the requirement phase (the paper: what peeking itself
    /// needs is allocated as part of pre-allocation). An estimate only: the
    /// request itself looks again under its locks.
    fn peek_child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let dir = self.estimate_inode(parent)?;
        let bs = self.geo.block_size as usize;
        let n = dir.size() / bs as u64;
        let mut buf = vec![0u8; bs];
        for lblk in 0..n {
            let path = block_path(lblk, self.geo.ptrs())?;
            let mut p = dir.block(path.slot) as u64;
            for level in 0..path.depth {
                self.estimate_block(p, &mut buf)?;
                p = crate::format::block_ptr::read_ptr(&buf, path.idx[level]) as u64;
            }
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

    /// The inode `name` names in directory block `data`; `None` (outer)
    /// for a corrupt block.
    fn find_in(&self, data: &[u8], name: &[u8]) -> Option<Option<u32>> {
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
    fn estimate_block(&self, blk: u64, buf: &mut [u8]) -> Option<()> {
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
    fn estimate_inode(&self, ino: u32) -> Option<Inode> {
        let (blk, off) = self.inode_pos(ino).ok()?;
        if let Some(b) = self.cache.peek(blk) {
            let d = b.peek_bytes();
            return Some(Inode::from_slot(&d[off..off + INODE_STRUCT_SIZE]));
        }
        let mut raw = [0u8; INODE_STRUCT_SIZE];
        let pos = blk * self.geo.block_size as u64 + off as u64;
        self.cache.device().read_at(pos, &mut raw).ok()?;
        Some(Inode::from_slot(&raw))
    }
}

/// Deepest directory tree an estimate walks up through; deeper, the rest
/// is counted as unknown blocks.
const MAX_WALK_DEPTH: u32 = 1 << 12;

impl Builder<'_> {
    /// The walk from `dir` up to the root that `Ext2::is_within` makes:
    /// each directory's inode block and the first block, which holds "..".
    /// Cached blocks are pinned; the others cost a frame each, and are
    /// read here (as `peek_child` reads) to find the next parent.
    fn ancestors(&mut self, dir: u32) {
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

    fn dir_scan_inode(&mut self, i: &Inode, alternate: bool) {
        let n = self.blocks_of(i.size());
        if (self.recycle && n > RECYCLE_DIR_BLOCKS) || alternate {
            self.scratch = true;
        } else {
            self.range(Some(i), 0, n, false);
        }
    }
}
