//! Block and inode allocation over the group bitmaps. Each group's mutex
//! guards its bitmaps and descriptor counts; only one is held at a time.
//!
//! Under recovery, an allocation is a Reversible domain: it commits on its
//! own (so concurrent creates do not become dependent through bitmaps and
//! counters) and leaves its inverse, a free, with the request. Frees are
//! deferred to the request's commit, so nothing a request may still need
//! can be handed to another request before it is final.
//!
//! The domain runs, commits or rolls back under the group's lock, which
//! guards the bitmap it writes (frees write bitmaps unlogged, under the same
//! lock; everything else only peeks): an exclusive domain, which needs no
//! node in the dependence graph (`Runtime::exclusive_domain`), nor a
//! version of the bitmap block: the old byte stays with the thread. The counts
//! change after it succeeds, still under the lock, so a rolled-back
//! allocator leaves nothing to undo but its bitmap bit; the unit a request
//! takes from the global free count first goes back by [`Claim`]'s drop.

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::bitmap;
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

thread_local! {
    /// The inode an AMA estimate found `alloc_inode` would get, for the
    /// request that follows it on this thread: (file system, parent,
    /// is_dir, inode). The allocation starts there instead of scanning the
    /// bitmap again, and checks under the group's lock that it is still
    /// free.
    static INODE_HINT: Cell<Option<(usize, u32, bool, u32)>> = const { Cell::new(None) };
}

/// A free of a committed request not done yet (see
/// `Ext2::free_now_or_later`).
#[derive(Debug)]
pub(crate) enum PendingFree {
    Blocks(Vec<u32>),
    Inode { ino: u32, is_dir: bool },
}

impl Ext2 {
    /// Allocate one block, preferably at or after `goal`. Unprivileged callers
    /// may not use the reserved blocks.
    pub(crate) fn alloc_block(&self, goal: u32, privileged: bool) -> Result<u32> {
        self.check_writable()?;
        let floor = if privileged {
            0
        } else {
            self.geo.r_blocks as i64
        };
        // Claim one free block from the global count first, so concurrent
        // allocators never overdraw it.
        let claim = Claim::take(&self.free_blocks, floor)?;
        let goal = goal.clamp(self.geo.first_data_block, self.geo.blocks_count - 1);
        let g0 = self.geo.group_of_block(goal);
        for k in 0..self.geo.groups {
            let g = (g0 + k) % self.geo.groups;
            let start = if k == 0 {
                goal - self.geo.group_first_block(g)
            } else {
                0
            };
            if let Some(b) = self.alloc_in_group(g, start as usize)? {
                claim.keep();
                return Ok(b);
            }
        }
        Err(corrupt(
            "free block count says space is left, but every bitmap is full",
        ))
    }

    /// Run `f`, an allocator's change of a bitmap whose group lock the
    /// caller holds across this call, as an exclusive Reversible domain
    /// whose inverse is `inverse`.
    fn exclusive<T>(
        &self,
        f: impl FnOnce() -> Result<T>,
        inverse: impl FnOnce(&T) -> Box<dyn FnOnce() + Send>,
    ) -> Result<T> {
        // (Its first change is a block write, which tells AMA: until then
        // a failed allocator has put back what it took.)
        let r = self
            .rt
            .exclusive_domain(f, |r: &Result<T>| r.as_ref().ok().map(inverse));
        match r {
            Ok(r) => r,
            // The allocator itself faulted and was rolled back: the request
            // faults too (its policy decides what happens next).
            Err(fault) => recovery_rt::resume(fault),
        }
    }

    /// A free block of group `g` at or after `start` (or before it), or
    /// `None` when the group has none.
    fn alloc_in_group(&self, g: u32, start: usize) -> Result<Option<u32>> {
        let mut desc = self.groups[g as usize].lock();
        if desc.bg_free_blocks_count.get() == 0 {
            return Ok(None);
        }
        let n = self.geo.blocks_in_group(g) as usize;
        let first = self.geo.group_first_block(g);
        let i = self.exclusive(
            || {
                let bm = self.cache.get(self.geo.block_bitmap[g as usize] as u64)?;
                let found = bitmap::find_clear(&bm.read(), start.min(n), n);
                let Some(i) = found else {
                    return Err(corrupt(format!(
                        "group {g} counts free blocks but its bitmap is full"
                    )));
                };
                bitmap::set(&mut bm.write_range(i / 8..i / 8 + 1), i);
                Ok(i)
            },
            |&i| {
                let (fs, b) = (self.arc(), first + i as u32);
                Box::new(move || fs.free_now_or_later(PendingFree::Blocks(vec![b])))
            },
        )?;
        let c = desc.bg_free_blocks_count.get();
        desc.bg_free_blocks_count.set(c - 1);
        Ok(Some(first + i as u32))
    }

    /// Free blocks when the request commits (at once without recovery).
    pub(crate) fn release_blocks(&self, blocks: &[u32]) {
        if blocks.is_empty() {
            return;
        }
        let fs = self.arc();
        let blocks = blocks.to_vec();
        self.rt
            .defer(move || fs.free_now_or_later(PendingFree::Blocks(blocks)));
    }

    /// Do a free of a committed (or an undone) request, or keep it for
    /// later. With recovery on it runs outside any AMA reserve: the commit
    /// or rollback that runs it may be another request's (whose commit
    /// unblocked this one, or whose rollback cascaded), estimated without
    /// it. Reading a bitmap block may then need a frame the pool refuses;
    /// the free then waits in `pending_frees` for the next write-back or
    /// the unmount instead of being lost (bits and counts stay "in use"
    /// until then, which is safe). Without recovery a free runs inside its
    /// own request, whose reserve counts it.
    fn free_now_or_later(&self, free: PendingFree) {
        let run = || match free {
            PendingFree::Blocks(mut blocks) => self
                .release_blocks_now(&mut blocks)
                .map_err(|(e, rest)| (e, PendingFree::Blocks(rest))),
            PendingFree::Inode { ino, is_dir } => self
                .free_inode_bit_now(ino, is_dir)
                .map_err(|e| (e, PendingFree::Inode { ino, is_dir })),
        };
        let left = if self.rt.enabled() {
            ama::outside_reserve(run)
        } else {
            run()
        };
        if let Err((e, rest)) = left {
            log::warn!("{rest:?} not freed yet ({e}); retried at the next write-back");
            self.pending_frees.lock().push(rest);
        }
    }

    /// Retry the frees kept by `free_now_or_later` (write-back, unmount).
    pub(crate) fn retry_pending_frees(&self) {
        let pending = std::mem::take(&mut *self.pending_frees.lock());
        for free in pending {
            self.free_now_or_later(free);
        }
    }

    /// Free blocks (any order). A block already free is logged as corruption
    /// and skipped, so a damaged file cannot inflate the free counts. On an
    /// error, the blocks not freed yet come back with it.
    fn release_blocks_now(
        &self,
        blocks: &mut [u32],
    ) -> std::result::Result<(), (FsError, Vec<u32>)> {
        blocks.sort_unstable();
        // Their cached copies go first, while the bitmap still says used.
        for &b in blocks.iter() {
            if b >= self.geo.first_data_block && b < self.geo.blocks_count {
                self.cache.discard(b as u64);
            }
        }
        let mut i = 0;
        while i < blocks.len() {
            let b = blocks[i];
            if b < self.geo.first_data_block || b >= self.geo.blocks_count {
                log::error!("freeing block {b} out of range; skipped");
                i += 1;
                continue;
            }
            let g = self.geo.group_of_block(b);
            let first = self.geo.group_first_block(g);
            let mut desc = self.groups[g as usize].lock();
            let bm = match self.cache.get(self.geo.block_bitmap[g as usize] as u64) {
                Ok(bm) => bm,
                Err(e) => return Err((e, blocks[i..].to_vec())),
            };
            let mut bits = bm.write();
            let mut freed = 0u16;
            while i < blocks.len() && self.geo.group_of_block(blocks[i]) == g {
                let idx = (blocks[i] - first) as usize;
                if bitmap::test(&bits, idx) {
                    bitmap::clear(&mut bits, idx);
                    freed += 1;
                } else {
                    log::error!("freeing block {} which is already free", blocks[i]);
                }
                i += 1;
            }
            let c = desc.bg_free_blocks_count.get();
            desc.bg_free_blocks_count.set(c + freed);
            self.free_blocks.fetch_add(freed as i64, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Allocate an inode. Directories go to a group with above-average free
    /// inodes and the most free blocks (spreading the tree, as Orlov does);
    /// files stay in their parent's group when it has room.
    ///
    /// The inode-table block of the inode it is going to get is read
    /// first, before anything changes: with AMA, an estimate overtaken by a
    /// concurrent request (the block is not the one peeked at) can then
    /// still restart the request. If that inode is taken meanwhile, the
    /// next one is picked the same way, a few times, then any.
    pub(crate) fn alloc_inode(&self, parent: u32, is_dir: bool) -> Result<u32> {
        self.check_writable()?;
        let key = (self as *const Ext2 as usize, parent, is_dir);
        let mut hint = INODE_HINT
            .take()
            .filter(|&(fs, p, d, _)| (fs, p, d) == key)
            .map(|(.., ino)| ino)
            // (An address can come back as another mount's.)
            .filter(|&ino| (1..=self.geo.inodes_count).contains(&ino));
        for _ in 0..4 {
            let want = match hint.take() {
                Some(ino) => ino,
                None => match self.next_free_inode(parent, is_dir, false)? {
                    Some(ino) => ino,
                    None => break,
                },
            };
            self.inode_buf(want)?;
            if let Some(ino) = self.alloc_inode_reversibly(parent, is_dir, Some(want))? {
                return Ok(ino);
            }
        }
        Ok(self
            .alloc_inode_reversibly(parent, is_dir, None)?
            .expect("any inode"))
    }

    /// The inode `alloc_inode` would get now, if any: the first free one of
    /// the first group in its order. Read past the recovery runtime (only a
    /// guess, it must not make the request depend on the bitmap's last
    /// writer); `cached_only`: `None` rather than read a bitmap not cached.
    pub(crate) fn next_free_inode(
        &self,
        parent: u32,
        is_dir: bool,
        cached_only: bool,
    ) -> Result<Option<u32>> {
        let ipg = self.geo.inodes_per_group as usize;
        for g in self.inode_group_order(parent, is_dir) {
            if self.groups[g as usize].lock().bg_free_inodes_count.get() == 0 {
                continue;
            }
            let blk = self.geo.inode_bitmap[g as usize] as u64;
            let bm = match self.cache.peek(blk) {
                Some(b) => b,
                None if cached_only => return Ok(None),
                None => self.cache.get(blk)?,
            };
            let first = if g == 0 {
                self.geo.first_ino as usize - 1
            } else {
                0
            };
            let found = bitmap::find_clear(&bm.peek_bytes(), first, ipg).filter(|&i| i >= first);
            if let Some(i) = found {
                return Ok(Some(g * self.geo.inodes_per_group + i as u32 + 1));
            }
        }
        Ok(None)
    }

    /// [`Ext2::next_free_inode`] for an estimate, which hands what it found
    /// to this thread's next `alloc_inode` for the same parent and kind.
    pub(crate) fn estimate_free_inode(&self, parent: u32, is_dir: bool) -> Option<u32> {
        let ino = self.next_free_inode(parent, is_dir, true).ok().flatten();
        let fs = self as *const Ext2 as usize;
        INODE_HINT.set(ino.map(|ino| (fs, parent, is_dir, ino)));
        ino
    }

    /// `want`: that inode or none (`Ok(None)`, nothing changed).
    fn alloc_inode_reversibly(
        &self,
        parent: u32,
        is_dir: bool,
        want: Option<u32>,
    ) -> Result<Option<u32>> {
        let claim = Claim::take(&self.free_inodes, 0)?;
        let ipg = self.geo.inodes_per_group;
        let order = match want {
            Some(w) => vec![(w - 1) / ipg],
            None => self.inode_group_order(parent, is_dir),
        };
        let want = want.map(|w| ((w - 1) % ipg) as usize);
        for g in order {
            match self.alloc_inode_in_group(g, is_dir, want)? {
                Some(ino) => {
                    claim.keep();
                    return Ok(Some(ino));
                }
                None if want.is_some() => break,
                None => continue,
            }
        }
        if want.is_some() {
            return Ok(None);
        }
        Err(corrupt(
            "free inode count says inodes are left, but every bitmap is full",
        ))
    }

    /// Groups in the order an inode is looked for. Directories go first to
    /// a group with above-average free inodes and the most free blocks;
    /// files start in their parent's group.
    fn inode_group_order(&self, parent: u32, is_dir: bool) -> Vec<u32> {
        let groups = self.geo.groups;
        let parent_group = (parent.max(1) - 1) / self.geo.inodes_per_group;
        let mut order: Vec<u32> = (0..groups).map(|k| (parent_group + k) % groups).collect();
        if is_dir && groups > 1 {
            let avg = self.free_inodes() / groups as u64;
            let mut best: Option<(u16, u32)> = None;
            for &g in &order {
                let d = self.groups[g as usize].lock();
                let (fi, fb) = (d.bg_free_inodes_count.get(), d.bg_free_blocks_count.get());
                if fi as u64 >= avg && fi > 0 && best.is_none_or(|(b, _)| fb > b) {
                    best = Some((fb, g));
                }
            }
            if let Some((_, g)) = best {
                order.retain(|&x| x != g);
                order.insert(0, g);
            }
        }
        order
    }

    /// `want`: only that inode of the group (`None` if it is taken).
    fn alloc_inode_in_group(
        &self,
        g: u32,
        is_dir: bool,
        want: Option<usize>,
    ) -> Result<Option<u32>> {
        let mut desc = self.groups[g as usize].lock();
        if desc.bg_free_inodes_count.get() == 0 {
            return Ok(None);
        }
        let ipg = self.geo.inodes_per_group as usize;
        // Never hand out a reserved inode (below s_first_ino), even if its bit is clear.
        let first = if g == 0 {
            self.geo.first_ino as usize - 1
        } else {
            0
        };
        let base = g * self.geo.inodes_per_group + 1;
        let i = self.exclusive(
            || {
                let bm = self.cache.get(self.geo.inode_bitmap[g as usize] as u64)?;
                let found = match want {
                    Some(w) if w < first || w >= ipg || bitmap::test(&bm.read(), w) => {
                        return Ok(None)
                    }
                    Some(w) => Some(w),
                    None => bitmap::find_clear(&bm.read(), first, ipg).filter(|&i| i >= first),
                };
                let Some(i) = found else {
                    return Err(corrupt(format!(
                        "group {g} counts free inodes but its bitmap is full"
                    )));
                };
                bitmap::set(&mut bm.write_range(i / 8..i / 8 + 1), i);
                Ok(Some(i))
            },
            |&i| {
                let fs = self.arc();
                let ino = i.map(|i| base + i as u32);
                Box::new(move || {
                    if let Some(ino) = ino {
                        fs.free_now_or_later(PendingFree::Inode { ino, is_dir });
                    }
                })
            },
        )?;
        let Some(i) = i else {
            return Ok(None);
        };
        let c = desc.bg_free_inodes_count.get();
        desc.bg_free_inodes_count.set(c - 1);
        if is_dir {
            let d = desc.bg_used_dirs_count.get();
            desc.bg_used_dirs_count.set(d + 1);
        }
        Ok(Some(base + i as u32))
    }

    /// Free an inode's bitmap bit when the request commits.
    pub(crate) fn free_inode_bit(&self, ino: u32, is_dir: bool) {
        let fs = self.arc();
        self.rt
            .defer(move || fs.free_now_or_later(PendingFree::Inode { ino, is_dir }));
    }

    fn free_inode_bit_now(&self, ino: u32, is_dir: bool) -> Result<()> {
        let g = (ino - 1) / self.geo.inodes_per_group;
        let i = ((ino - 1) % self.geo.inodes_per_group) as usize;
        let mut desc = self.groups[g as usize].lock();
        let bm = self.cache.get(self.geo.inode_bitmap[g as usize] as u64)?;
        let mut bits = bm.write_range(i / 8..i / 8 + 1);
        if !bitmap::test(&bits, i) {
            log::error!("freeing inode {ino} which is already free");
            return Ok(());
        }
        bitmap::clear(&mut bits, i);
        let c = desc.bg_free_inodes_count.get();
        desc.bg_free_inodes_count.set(c + 1);
        if is_dir {
            let d = desc.bg_used_dirs_count.get();
            desc.bg_used_dirs_count.set(d.saturating_sub(1));
        }
        self.free_inodes.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// One unit taken from a free count (`Ext2::free_blocks`, `free_inodes`)
/// for an allocation: it goes back when the claim is dropped (the
/// allocation failed, or faulted and unwinds) unless it is kept.
struct Claim<'a> {
    count: &'a AtomicI64,
    kept: bool,
}

impl<'a> Claim<'a> {
    /// Take one unit, if that leaves more than `floor`.
    fn take(count: &'a AtomicI64, floor: i64) -> Result<Claim<'a>> {
        let prev = count.fetch_sub(1, Ordering::AcqRel);
        if prev <= floor {
            count.fetch_add(1, Ordering::AcqRel);
            return Err(FsError::NoSpace);
        }
        Ok(Claim { count, kept: false })
    }

    /// The allocation succeeded: the unit stays taken (a free gives it back).
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
    }
}
