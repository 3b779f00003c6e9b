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
//! `Tree(i)` = the indirect blocks of inode `i`; `Tree(o,n)` = those
//! mapping a byte range (recycling: the scratch page and the two boundary
//! paths, the only ones written); `XattrChange` = the inode's xattr block
//! and a new one (its first, or the copy of a shared one) + Bitmaps(1),
//! images: the old block and 2 for the new; `Grow` = the blocks a
//! directory needs to take one more entry (0 when peeking finds room, 1 in
//! the direct blocks, else 1 + 3 indirect); `W(..)` =
//! before-images (recovery on only). An allocation is a Reversible domain of
//! its own: one bitmap image each (its inverse, run on rollback, is
//! unlogged).
//!
//! | request | frames | before-images |
//! |---|---|---|
//! | getattr, access, opendir, getflags (lsattr), lookup of "." (a file handle) | Inode | 0 |
//! | getxattr, listxattr | Inode + xattr block | 0 |
//! | setxattr, removexattr | Inode + XattrChange | 1 + XattrChange's |
//! | readlink | Inode + target block | 0 |
//! | lookup | 2 Inode + Dir(parent) | 0 |
//! | readdir | Inode + Dir(dir) | 1 (atime) |
//! | read(o, n) | Inode + Range(o,n) | 1 (atime) |
//! `Tree(i)` = the indirect blocks of inode `i`; `Tree(o,n)` = those
//! mapping a byte range (recycling: the scratch page and the two boundary
//! paths, the only ones written); `XattrChange` = the inode's xattr block
//! and a new one (its first, or the copy of a shared one) + Bitmaps(1),
//! images: the old block and 2 for the new; `Grow` = the blocks a
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

mod builder;
mod peek;

use super::Ext2;
use crate::format::inode::Inode;
use ama::{Aad, Reserve};
use builder::{Builder, Child};

/// Directories up to this many blocks are scanned through the cache;
/// larger ones through the scratch page (with recycling on).
pub const RECYCLE_DIR_BLOCKS: u64 = 16;

/// What a request is about to do, as far as its memory is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Need<'a> {
    /// Reads one inode (getattr, access, opendir).
    Attr(u32),
    /// Reads an inode and its xattr block.
    Xattr(u32),
    /// Changes an inode's extended attributes (setxattr, removexattr).
    SetXattr(u32),
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
    /// Punches a hole in bytes `offset..offset + length` (fallocate).
    Punch {
        ino: u32,
        offset: u64,
        length: u64,
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

/// Before-images of the blocks each kind of request writes besides the
/// blocks it allocates (recovery on). Create: the directory block, the
/// parent's and the new inode's table blocks. (A bitmap bit an allocator
/// sets needs none: its exclusive domain keeps the byte's old value
/// without a page, `Runtime::exclusive_domain`.) Link: the
/// directory block, both inodes. Remove: the directory block, parent and
/// child (bitmaps change at commit). Rename: both directory blocks, three
/// inodes, the moved directory's ".." block and the replaced target's
/// inode. Exchange: one more inode and ".." block.
const CREATE_IMAGES: u64 = 3;
const LINK_IMAGES: u64 = 3;
const REMOVE_IMAGES: u64 = 3;
const RENAME_IMAGES: u64 = 7;
const EXCHANGE_IMAGES: u64 = 8;
/// A new block is written in its first domain: zeroed (or filled). (Its
/// bit in the bitmap needs no image: see [`CREATE_IMAGES`].)
const IMAGES_PER_NEW_BLOCK: u64 = 1;
/// The indirect blocks a directory's path may gain when it grows past its
/// direct blocks (single, double, triple), each written.
const GROWN_PATH: u64 = 3;
/// A directory that changes parent: its ".." block, and the indirect block
/// that may map it.
const DOTDOT_BLOCKS: u64 = 2;
/// A split in an indexed directory writes the root, an index node and the
/// old leaf besides its new blocks.
const DX_SPLIT_IMAGES: u64 = 3;
/// A change of extended attributes writes the inode's xattr block
/// (rewritten, or its reference count dropped).
const XATTR_BLOCK_IMAGES: u64 = 1;
/// A punched range's partial blocks, zeroed in place: its first and last.
const PUNCH_EDGES: u64 = 2;
/// Indirect levels on one block's path (single, double, triple): a
/// punch's boundary paths, the indirect blocks it only partly covers,
/// are the ones it writes; so many per edge of the range.
const PATH_LEVELS: u64 = 3;

/// One method per [`Need`], each a row of the table above.
impl Builder<'_, '_> {
    /// Inode + xattr block.
    fn xattr(&mut self, ino: u32) {
        self.inode_block(ino);
        match self.inode(ino).map(|i| i.i_file_acl.get()) {
            Some(0) => {}
            Some(acl) => self.block(acl as u64),
            None => self.unknown(1),
        }
    }

    /// Inode + XattrChange; 1 image (the inode).
    fn set_xattr(&mut self, ino: u32) {
        self.inode_block(ino);
        self.written(1);
        match self.inode(ino) {
            Some(i) => self.xattr_change(&i),
            None => {
                self.unknown(1);
                self.new_xattr_block();
            }
        }
    }

    /// XattrChange: the inode's xattr block, if it has one, and a new one.
    fn xattr_change(&mut self, i: &Inode) {
        if i.i_file_acl.get() != 0 {
            self.block(i.i_file_acl.get() as u64);
            self.written(XATTR_BLOCK_IMAGES);
        }
        self.new_xattr_block();
    }

    /// A new xattr block: its frame, its bitmap, its images.
    fn new_xattr_block(&mut self) {
        self.unknown(1);
        self.bitmaps(1);
        self.written(IMAGES_PER_NEW_BLOCK);
    }

    /// What a setattr may do to the attributes besides (carry a chmod into
    /// the ACL): only an inode with an xattr block may need a block (a
    /// shared one is copied).
    fn incidental_xattr_change(&mut self, i: Option<&Inode>) {
        match i {
            Some(i) if i.i_file_acl.get() == 0 => {}
            Some(i) => self.xattr_change(i),
            None => {
                self.unknown(1);
                self.new_xattr_block();
            }
        }
    }

    /// Inode + target block.
    fn readlink(&mut self, ino: u32) {
        self.inode_block(ino);
        match self.inode(ino) {
            Some(i) => {
                self.range(Some(&i), 0, 1, false);
            }
            None => self.unknown(1),
        }
    }

    /// 2 Inode + Dir(parent).
    fn lookup(&mut self, parent: u32, name: &[u8]) {
        self.inode_block(parent);
        if self.optimistic {
            // The lookup finds the name itself; its inode's block
            // is taken to be cached, as it mostly is. If not, its
            // frame is refused as stale and the lookup, which
            // changes nothing, runs again on a full estimate.
            self.dir_scan(parent, None, self.alternate);
            self.r.assume();
            return;
        }
        match self.dir_scan(parent, Some(name), self.alternate).child {
            Child::Found(c) => self.inode_block(c),
            // (A name added meanwhile: its inode block was just
            // written, but may have been evicted since. Without
            // margins, a restart covers that.)
            Child::Absent if !self.margins => {}
            Child::Absent | Child::Unknown => self.unknown(1),
        }
    }

    /// Inode + Dir(dir); 1 image (atime). An indexed directory's batch
    /// walks leaves in hash order: through the scratch page, and the path.
    fn readdir(&mut self, dir: u32) {
        self.inode_block(dir);
        if self.inode(dir).is_some_and(|i| self.fs.maybe_indexed(&i)) {
            self.scratch = true;
        }
        self.dir_scan(dir, None, self.alternate);
        self.written(1);
    }

    /// Inode + Range(o,n); 1 image (atime).
    fn read(&mut self, ino: u32, offset: u64, size: u64) {
        self.inode_block(ino);
        let (first, count) = self.blocks_spanned(offset, size);
        if self.alternate {
            // Data read block by block through the scratch page.
            self.scratch = true;
            let ind = self.range_ind(first, count);
            self.unknown(ind);
        } else {
            let i = self.inode(ino);
            self.range(i.as_ref(), first, count, false);
        }
        self.written(1);
    }

    /// Inode + Range(o,n) + Bitmaps(k); 1 + n + ind + k images.
    fn write(&mut self, ino: u32, offset: u64, size: u64) {
        self.inode_block(ino);
        let (first, count) = self.blocks_spanned(offset, size);
        let i = self.inode(ino);
        let allocs = self.range(i.as_ref(), first, count, true);
        // The indirect blocks that take a new pointer.
        let ind = if allocs == 0 {
            0
        } else {
            self.range_ind(first, count)
        };
        self.bitmaps(allocs);
        // Images: the inode, every block written but those surely
        // new (a new block needs none), the indirect blocks on the
        // path. (An allocation's bitmap bit needs none: see
        // CREATE_IMAGES; its inverse runs unlogged.)
        self.written((1 + count + ind).saturating_sub(self.sure_new));
    }

    /// Inode, and with a size Tree(i) + tail block + xattr + Bitmaps(i_blocks).
    fn setattr(&mut self, ino: u32, size: Option<u64>) {
        self.inode_block(ino);
        self.written(1);
        let i = self.inode(ino);
        if let Some(size) = size {
            self.truncate(i.as_ref(), size);
        }
        self.incidental_xattr_change(i.as_ref());
    }

    /// Inode + Tree(o,n) + 2 edge blocks and their paths + Bitmaps(freed);
    /// 1 + 2 boundary paths + 2 edges images. Priced on the range the
    /// punch itself will clip to (`Ext2::punch_range`).
    fn punch(&mut self, ino: u32, offset: u64, length: u64) {
        self.inode_block(ino);
        self.written(1);
        let Some(i) = self.inode(ino) else {
            // Unknown: the largest tree, both edges with their paths.
            if self.recycle {
                self.scratch = true;
                self.unknown(PUNCH_EDGES * (1 + PATH_LEVELS));
            } else {
                let tree = self.ind_blocks(u32::MAX as u64);
                self.unknown(tree + PUNCH_EDGES * (1 + PATH_LEVELS));
            }
            self.bitmaps(u32::MAX as u64);
            self.written(PUNCH_EDGES * (1 + PATH_LEVELS));
            return;
        };
        let Some((start, end)) = self.fs.punch_range(&i, offset, length) else {
            return; // nothing but the times
        };
        let bs = self.fs.geo.block_size as u64;
        // The partial blocks at either edge: read (with their paths) and
        // zeroed where allocated. (Counted even when the range covers them
        // whole; an over-estimate by two blocks at most.)
        let (head, tail) = (start / bs, (end - 1) / bs);
        self.range(Some(&i), head, 1, false);
        if tail != head {
            self.range(Some(&i), tail, 1, false);
        }
        self.written(PUNCH_EDGES);
        if !i.has_block_map(self.fs.geo.block_size) {
            return;
        }
        let (first, last) = (start.div_ceil(bs), end / bs);
        if last <= first {
            return;
        }
        // The indirect blocks meeting blocks first..last: those meeting
        // 0..last but for those wholly before `first`, which are all that
        // meet 0..first but for at most one per level that straddles it.
        let spb = self.fs.geo.sectors_per_block() as u64;
        let nblocks = i.i_blocks.get() as u64 / spb;
        let tree = (self.ind_blocks(last) - self.ind_blocks(first) + PATH_LEVELS).min(nblocks);
        let boundary = tree.min(PUNCH_EDGES * PATH_LEVELS);
        if self.recycle {
            // The walk reads through the scratch page; only the indirect
            // blocks that stay and lose pointers come through the cache.
            self.scratch = true;
            self.unknown(boundary);
        } else {
            self.unknown(tree);
        }
        self.written(boundary);
        self.bitmaps((last - first + tree).min(nblocks));
    }

    /// 2 Inode + Dir(parent) + inode bitmap + Grow + data blocks + Bitmaps.
    fn create(&mut self, parent: u32, name: &[u8], blocks: u32, is_dir: bool) {
        self.inode_block(parent);
        let room = self.dir_room(parent, name, self.alternate);
        let dir = self.inode(parent).filter(|_| !room);
        // The new inode's table block: `alloc_inode` reads the one
        // of the inode it is going to get before it changes
        // anything, so peeking looks at the same one. (A concurrent
        // create can take that inode first: a restart, or with
        // margins one more frame.)
        match self.fs.estimate_free_inode(parent, is_dir) {
            Some(ino) => self.inode_block(ino),
            None => self.unknown(1),
        }
        if self.margins {
            self.unknown(1);
        }
        // A default ACL the new inode inherits: the parent's xattr block,
        // and a block for the new inode's ACLs when its inode has no room.
        if self.fs.estimate_has_xattrs(parent) != Some(false) {
            match self.inode(parent).map(|d| d.i_file_acl.get()) {
                Some(0) => {}
                Some(b) => self.block(b as u64),
                None => self.unknown(1),
            }
            self.new_xattr_block();
        }
        self.inode_bitmap(parent);
        let new = self.dir_growth(dir.as_ref()) + blocks as u64;
        self.unknown(new);
        self.bitmaps(new);
        // Directory block, parent, new inode, the inode bitmap; per
        // new block its zeroing and its bitmap; a grown indirect
        // path (or an index split: root, node and old leaf written).
        let grown = if new > 1 + blocks as u64 {
            GROWN_PATH + DX_SPLIT_IMAGES
        } else {
            0
        };
        self.written(CREATE_IMAGES + IMAGES_PER_NEW_BLOCK * new + grown);
    }

    /// 2 Inode + Dir(parent) + Grow + Bitmaps.
    fn link(&mut self, ino: u32, parent: u32, name: &[u8]) {
        self.inode_block(ino);
        self.inode_block(parent);
        let room = self.dir_room(parent, name, self.alternate);
        let dir = self.inode(parent).filter(|_| !room);
        let new = self.dir_growth(dir.as_ref());
        self.unknown(new);
        self.bitmaps(new);
        let grown = if new > 1 {
            GROWN_PATH + DX_SPLIT_IMAGES
        } else {
            0
        };
        self.written(LINK_IMAGES + IMAGES_PER_NEW_BLOCK * new + grown);
    }

    /// 2 Inode + Dir(parent) + Dir(child) + truncate(child) + inode bitmap.
    fn remove(&mut self, parent: u32, name: &[u8]) {
        self.inode_block(parent);
        if self.optimistic {
            // As a lookup: the request finds the name with its own scan
            // (scanning here too was half of AMA's cost on postmark), and
            // the victim's inode block is taken to be cached (if not, its
            // frame is refused as stale before anything changed, and the
            // request runs again on a full estimate). Nothing is freed
            // now: the kernel holds a reference to what it unlinks, so the
            // inode is freed at forget; a request that would free it now
            // restarts the same way (`Ext2::remove`).
            self.dir_scan(parent, None, self.alternate);
            self.r.assume();
            self.inode_bitmap(parent);
            self.written(REMOVE_IMAGES);
            return;
        }
        let child = match self.dir_scan(parent, Some(name), self.alternate).child {
            Child::Found(c) => Some(c),
            Child::Absent => None,
            Child::Unknown => self.fs.peek_child(parent, name),
        };
        match child {
            Some(c) => self.inode_block(c),
            None => self.unknown(1),
        }
        let ci = child.and_then(|c| self.inode(c));
        if let Some(c) = &ci {
            if c.is_dir() {
                self.dir_scan_inode(c, self.alternate);
            }
        } else {
            // An unknown child directory: scanned through scratch.
            self.scratch = true;
        }
        // Freed now when the kernel holds no reference (else at
        // forget). Cheap to cover either way: a small file has no
        // tree, a large one is recycled through the scratch page.
        self.truncate(ci.as_ref(), 0);
        self.inode_bitmap(parent);
        self.written(REMOVE_IMAGES);
    }

    /// 3 Inode + Dir(old) + Dir(new) + ".." block + the walk up the new parent's ancestors + unlink's for the target + Grow.
    fn rename(
        &mut self,
        old_parent: u32,
        old_name: &[u8],
        new_parent: u32,
        new_name: &[u8],
        exchange: bool,
    ) {
        self.inode_block(old_parent);
        self.inode_block(new_parent);
        let source = match self
            .dir_scan(old_parent, Some(old_name), self.alternate)
            .child
        {
            Child::Found(c) => {
                self.inode_block(c);
                Some(c)
            }
            _ => {
                self.unknown(1);
                None
            }
        };
        let new_peek = self.dir_scan(new_parent, Some(new_name), self.alternate);
        self.unknown(DOTDOT_BLOCKS);
        let target = match new_peek.child {
            Child::Found(t) => Some(t),
            Child::Absent => None,
            Child::Unknown => self.fs.peek_child(new_parent, new_name),
        };
        // A directory that changes parent: the walk up from its new
        // parent that refuses to move it into itself.
        if old_parent != new_parent {
            if self.maybe_dir(source) {
                self.ancestors(new_parent);
            }
            if exchange && self.maybe_dir(target) {
                self.ancestors(old_parent);
            }
        }
        if exchange {
            // Both stay: the target's inode and its ".." block
            // (and its path) change too; no directory grows.
            self.unknown(1 + DOTDOT_BLOCKS);
            self.written(EXCHANGE_IMAGES);
            return;
        }
        // The target, when replaced, goes as unlink would.
        if let Some(t) = target {
            self.inode_block(t);
            let ti = self.inode(t);
            if let Some(ti) = &ti {
                if ti.is_dir() {
                    self.dir_scan_inode(ti, self.alternate);
                }
                self.truncate(Some(ti), 0);
                self.inode_bitmap(new_parent);
            }
        }
        let dir = self.inode(new_parent).filter(|_| !new_peek.room);
        let new = self.dir_growth(dir.as_ref());
        self.unknown(new);
        self.bitmaps(new);
        let grown = if new > 1 {
            GROWN_PATH + DX_SPLIT_IMAGES
        } else {
            0
        };
        self.written(RENAME_IMAGES + IMAGES_PER_NEW_BLOCK * new + grown);
    }

    /// Is `ino` a directory, or not known?
    fn maybe_dir(&self, ino: Option<u32>) -> bool {
        ino.and_then(|i| self.inode(i)).is_none_or(|i| i.is_dir())
    }

    /// Inode + truncate(i) + inode bitmap.
    fn release(&mut self, ino: u32) {
        self.inode_block(ino);
        let i = self.inode(ino);
        self.truncate(i.as_ref(), 0);
        self.inode_bitmap(ino);
        self.written(1);
    }
}

impl Ext2 {
    /// The worst-case [`Aad`] of a request, pinning in `r` what peeking
    /// finds cached. `alternate`: the smaller, recycling-heavy requirement.
    pub(crate) fn requirements(
        &self,
        need: &Need,
        r: &mut Reserve<'_>,
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
            pinned: smallvec::SmallVec::new(),
            frames: 0,
            images: 0,
            scratch: false,
            sure_new: 0,
            alternate,
            inode_buf: None,
        };
        match *need {
            Need::Nothing => {}
            Need::Attr(ino) => b.inode_block(ino),
            Need::Xattr(ino) => b.xattr(ino),
            Need::SetXattr(ino) => b.set_xattr(ino),
            Need::Readlink(ino) => b.readlink(ino),
            Need::Lookup { parent, name } => b.lookup(parent, name),
            Need::Readdir { dir } => b.readdir(dir),
            Need::Read { ino, offset, size } => b.read(ino, offset, size),
            Need::Write { ino, offset, size } => b.write(ino, offset, size),
            Need::SetAttr { ino, size } => b.setattr(ino, size),
            Need::Punch {
                ino,
                offset,
                length,
            } => b.punch(ino, offset, length),
            Need::Create {
                parent,
                name,
                blocks,
                dir,
            } => b.create(parent, name, blocks, dir),
            Need::Link { ino, parent, name } => b.link(ino, parent, name),
            Need::Remove { parent, name } => b.remove(parent, name),
            Need::Rename {
                old_parent,
                old_name,
                new_parent,
                new_name,
                exchange,
            } => b.rename(old_parent, old_name, new_parent, new_name, exchange),
            Need::Release { ino } => b.release(ino),
        }
        b.aad()
    }
}
