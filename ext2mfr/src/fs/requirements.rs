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
//! of directory `d` plus the indirect blocks mapping them (`Ind(n)`), plus
//! `slack` blocks it may grow by before we hold its lock (one per other
//! worker thread); `Range(o,n)` = the data blocks of a byte range and the
//! indirect blocks on their paths; `Bitmaps(k)` = min(groups, k) bitmap
//! blocks; `Tree(i)` = the indirect blocks of inode `i`; `W(..)` =
//! before-images (recovery on only).
//!
//! | request | frames | before-images |
//! |---|---|---|
//! | getattr, access, opendir, statfs, getxattr, listxattr, readlink | Inode + 2 (xattr block, symlink block) | 1 (atime) |
//! | lookup | 2 Inode + Dir(parent) | 0 |
//! | readdir | Inode + Dir(dir) | 1 |
//! | read(o, n) | Inode + Range(o,n) | 1 (atime) |
//! | write(o, n) | Inode + Range(o,n) + Bitmaps(k), k = blocks that may be allocated | Inode + Range + k |
//! | setattr (size) | Inode + tail block + Tree(i) + Bitmaps(freed) | Inode + tail + 3 |
//! | create, mknod, mkdir, symlink | 2 Inode + Dir(parent) + inode bitmap + 4 new blocks + Bitmaps(4) | 3 + 4 + 5 allocations |
//! | link | 2 Inode + Dir(parent) + 4 new blocks + Bitmaps(4) | 2 + 4 + 4 |
//! | unlink, rmdir | 2 Inode + Dir(parent) + Dir(child) + Tree(child) + Bitmaps | 3 + 3 |
//! | rename | 4 Inode + Dir(old) + Dir(new) + unlink's + link's | sum |
//! | forget (release) | Inode + Tree(i) + Bitmaps(freed) + inode bitmap | 2 |
//!
//! **Cache peeking** (`peek=on`): blocks whose numbers are known on entry
//! (inode-table blocks, directory and data blocks mapped through cached
//! indirect blocks, the goal group's bitmap) and that are cached are pinned
//! in the reserve instead of reserved. **Page recycling** (`recycle=on`):
//! truncation reads the indirect tree, and scans of directories larger than
//! [`RECYCLE_DIR_BLOCKS`] read uncached blocks, through one scratch page, so
//! `Tree(i)` and `Dir(d)` shrink to the depth of the tree. The alternate
//! requirement (`policy=retry-alternate` after a failed reservation)
//! recycles every scan and read.

use super::Ext2;
use crate::format::block_ptr::block_path;
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
    /// Reads one inode (and maybe its xattr or symlink block).
    Inode(u32),
    Lookup { parent: u32 },
    Readdir { dir: u32 },
    Read { ino: u32, offset: u64, size: u64 },
    Write { ino: u32, offset: u64, size: u64 },
    SetAttr { ino: u32, size: Option<u64> },
    Create { parent: u32 },
    Link { ino: u32, parent: u32 },
    Remove { parent: u32, name: &'a [u8] },
    Rename { old_parent: u32, old_name: &'a [u8], new_parent: u32, new_name: &'a [u8] },
    Release { ino: u32 },
    /// Allocates nothing from the pool (fsync, flush).
    Nothing,
}

/// Accumulates one requirement, pinning what it peeks at.
struct Builder<'a> {
    fs: &'a Ext2,
    r: &'a mut Reserve,
    peek: bool,
    recycle: bool,
    /// Blocks pinned so far (not counted twice).
    pinned: Vec<u64>,
    frames: u32,
    images: u32,
    scratch: bool,
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

    /// The inode as it is now: from the cache, or read straight from the
    /// image (an inode not in the cache has no uncommitted version). `None`
    /// for a bad number or an I/O error: the request will find out itself.
    fn inode(&self, ino: u32) -> Option<Inode> {
        let (blk, off) = self.fs.inode_pos(ino).ok()?;
        if let Some(b) = self.fs.cache.peek(blk) {
            let d = b.peek_bytes();
            return Some(Inode::from_bytes(&d[off..off + INODE_STRUCT_SIZE]));
        }
        let mut raw = [0u8; INODE_STRUCT_SIZE];
        let pos = blk * self.fs.geo.block_size as u64 + off as u64;
        self.fs.cache.device().read_at(pos, &mut raw).ok()?;
        Some(Inode::from_bytes(&raw))
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
        let mut p = i.block(path.slot) as u64;
        for level in 0..path.depth {
            if p == 0 || p >= self.fs.geo.blocks_count as u64 {
                return None;
            }
            let b = self.fs.cache.peek(p)?;
            let v = {
                let d = b.peek_bytes();
                crate::format::block_ptr::read_ptr(&d, path.idx[level]) as u64
            };
            if !self.pinned.contains(&p) {
                self.r.pin_peeked(b);
                self.pinned.push(p);
            }
            p = v;
        }
        (p != 0 && p < self.fs.geo.blocks_count as u64).then_some(p)
    }

    /// Blocks `first..first+count` of `i` (data or directory blocks) and the
    /// indirect blocks mapping them.
    fn range(&mut self, i: Option<&Inode>, first: u64, count: u64) {
        match i {
            Some(i) if self.peek && count <= 64 => {
                for lblk in first..first + count {
                    match self.peek_map(i, lblk) {
                        Some(blk) => self.block(blk),
                        None => self.unknown(1),
                    }
                }
                // Indirect blocks not found cached on the way.
                let ind = self.range_ind(first, count);
                self.unknown(ind);
            }
            _ => {
                let ind = self.range_ind(first, count);
                self.unknown(count + ind);
            }
        }
    }

    /// A scan of directory `dir`: all its blocks, or (recycling) one scratch
    /// page plus the cached ones it will use in place.
    fn dir_scan(&mut self, dir: u32, alternate: bool) {
        let i = self.inode(dir);
        let slack = self.fs.config.threads as u64;
        let n = i.as_ref().map_or(RECYCLE_DIR_BLOCKS, |i| self.blocks_of(i.size())) + slack;
        if (self.recycle && n > RECYCLE_DIR_BLOCKS) || alternate {
            self.scratch = true;
        } else {
            self.range(i.as_ref(), 0, n);
        }
    }

    /// Freeing the blocks of `i` from logical block `keep` on: the indirect
    /// tree (or, recycling, the scratch page and the boundary path), the
    /// bitmaps of the freed blocks at commit, and the partial tail block.
    fn truncate(&mut self, i: Option<&Inode>, keep: u64) {
        let spb = self.fs.geo.sectors_per_block() as u64;
        let (tree, nblocks) = match i {
            Some(i) => {
                let by_size = self.ind_blocks(self.blocks_of(i.size()));
                let by_count = i.i_blocks.get() as u64 / spb;
                (by_size.min(by_count) + 3, by_count + 1)
            }
            // Unknown: the largest tree.
            None => (self.ind_blocks(u32::MAX as u64), u32::MAX as u64),
        };
        if self.recycle {
            self.scratch = true;
            self.unknown(3); // the boundary path, written through the cache
        } else {
            self.unknown(tree);
        }
        self.bitmaps(nblocks);
        self.unknown(2); // the partial tail block and its xattr block
        self.written(5);
        let _ = keep;
    }

    /// Bitmap blocks for `k` allocations or frees.
    fn bitmaps(&mut self, k: u64) {
        let n = k.min(self.fs.geo.groups as u64);
        self.unknown(n);
    }

    fn aad(&self) -> Aad {
        let mut a = Aad::pages(self.frames.saturating_add(self.images))
            .with_objects(BUFFER, self.frames);
        if self.scratch {
            a = a.with_scratch();
        }
        a
    }
}

impl Ext2 {
    /// The worst-case [`Aad`] of a request, pinning in `r` what peeking
    /// finds cached. `alternate`: the smaller, recycling-heavy requirement.
    pub(crate) fn requirements(&self, need: &Need, r: &mut Reserve, alternate: bool) -> Aad {
        let ama = &self.config.ama;
        let mut b = Builder {
            fs: self,
            r,
            peek: ama.peek,
            recycle: ama.recycle || alternate,
            pinned: Vec::new(),
            frames: 0,
            images: 0,
            scratch: false,
        };
        match *need {
            Need::Nothing => {}
            Need::Inode(ino) => {
                b.inode_block(ino);
                b.unknown(2);
                b.written(1);
            }
            Need::Lookup { parent } => {
                b.inode_block(parent);
                b.dir_scan(parent, alternate);
                b.unknown(1); // the child's inode
            }
            Need::Readdir { dir } => {
                b.inode_block(dir);
                b.dir_scan(dir, alternate);
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
                    b.range(i.as_ref(), first, count);
                }
                b.written(1);
            }
            Need::Write { ino, offset, size } => {
                b.inode_block(ino);
                let bs = self.geo.block_size as u64;
                let first = offset / bs;
                let count = (offset + size).div_ceil(bs).saturating_sub(first);
                let i = b.inode(ino);
                b.range(i.as_ref(), first, count);
                let allocs = count + b.range_ind(first, count);
                // The goal group's bitmap is the likely one.
                if let Some(i) = &i {
                    let g = (ino - 1) / self.geo.inodes_per_group;
                    let _ = i;
                    b.block(self.geo.block_bitmap[g as usize] as u64);
                }
                b.bitmaps(allocs);
                b.written(1 + count + allocs + allocs);
            }
            Need::SetAttr { ino, size } => {
                b.inode_block(ino);
                b.unknown(1); // xattr block (mode changes read nothing else)
                b.written(1);
                if let Some(size) = size {
                    let i = b.inode(ino);
                    let keep = b.blocks_of(size);
                    b.truncate(i.as_ref(), keep);
                }
            }
            Need::Create { parent } => {
                b.inode_block(parent);
                b.dir_scan(parent, alternate);
                b.unknown(1 + 1 + 4); // new inode's block, inode bitmap, new blocks
                b.bitmaps(4);
                b.written(3 + 4 + 5);
            }
            Need::Link { ino, parent } => {
                b.inode_block(ino);
                b.inode_block(parent);
                b.dir_scan(parent, alternate);
                b.unknown(4);
                b.bitmaps(4);
                b.written(2 + 4 + 4);
            }
            Need::Remove { parent, name } => {
                b.inode_block(parent);
                b.dir_scan(parent, alternate);
                b.unknown(1);
                let child = self.peek_child(parent, name).and_then(|c| b.inode(c));
                if let Some(c) = &child {
                    if c.is_dir() {
                        b.dir_scan_inode(c, alternate);
                    }
                } else {
                    // An unknown child directory: scanned through scratch.
                    b.scratch = true;
                }
                b.truncate(child.as_ref(), 0);
                b.unknown(1); // inode bitmap
                b.written(3 + 2);
            }
            Need::Rename { old_parent, old_name, new_parent, new_name } => {
                b.inode_block(old_parent);
                b.inode_block(new_parent);
                b.dir_scan(old_parent, alternate);
                if new_parent != old_parent {
                    b.dir_scan(new_parent, alternate);
                }
                b.unknown(2 + 2); // the two children's inodes, the moved dir's ".."
                // The target, when replaced, goes as unlink would.
                let target = self.peek_child(new_parent, new_name).and_then(|c| b.inode(c));
                if let Some(t) = &target {
                    if t.is_dir() {
                        b.dir_scan_inode(t, alternate);
                    }
                } else {
                    b.scratch = true;
                }
                b.truncate(target.as_ref(), 0);
                let _ = old_name;
                b.unknown(4);
                b.bitmaps(4);
                b.written(6 + 4 + 4);
            }
            Need::Release { ino } => {
                b.inode_block(ino);
                let i = b.inode(ino);
                b.truncate(i.as_ref(), 0);
                b.unknown(1); // inode bitmap
                b.written(2);
            }
        }
        b.aad()
    }

    /// The inode `name` names in `parent`, if the cache alone can tell:
    /// peeking for the child of an unlink or rename.
    fn peek_child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let (blk, off) = self.inode_pos(parent).ok()?;
        let pb = self.cache.peek(blk)?;
        let dir = Inode::from_bytes(&pb.peek_bytes()[off..off + INODE_STRUCT_SIZE]);
        let n = dir.size() / self.geo.block_size as u64;
        for lblk in 0..n.min(N_DIRECT_PEEK) {
            let blk = dir.block(lblk as usize) as u64;
            let b = self.cache.peek(blk)?;
            let d = b.peek_bytes();
            if let Ok(entries) = crate::format::dirent::parse_block(&d, self.geo.inodes_count) {
                if let Some(e) = entries.iter().find(|e| e.inode != 0 && e.name == name) {
                    return Some(e.inode);
                }
            }
        }
        None
    }
}

/// Peeking for a child looks at the direct blocks only.
const N_DIRECT_PEEK: u64 = 12;

impl Builder<'_> {
    fn dir_scan_inode(&mut self, i: &Inode, alternate: bool) {
        let n = self.blocks_of(i.size());
        if (self.recycle && n > RECYCLE_DIR_BLOCKS) || alternate {
            self.scratch = true;
        } else {
            self.range(Some(i), 0, n);
        }
    }
}
