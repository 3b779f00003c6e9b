//! The block cache: a bounded, sharded map from block number to a frame,
//! with dirty tracking and write-back (on fsync, when a shard is over its
//! share of the capacity, at unmount, and by a background writer whenever
//! a quarter of the cache is dirty: see [`BlockCache::writer_loop`]).
//! Frames are pages of the AMA pool
//! (`ama::Pool`): from the request's reserve when AMA is on, else straight
//! from the pool, where an allocation can fail (`NoMem`, never a panic).
//!
//! Locking: a shard mutex is held only for the map operation itself and for
//! the I/O of a miss or an eviction in that shard; a buffer's data lock is
//! taken after (never while waiting for) a shard lock by the same thread.

use crate::device::Device;
use crate::error::{corrupt, FsError, Result};
use ama::{Page, Pool};
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use recovery_rt::{Committed, LoggedObject, Runtime, VersionChain};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The object kinds the cache allocates per request from the AMA pool (a
/// buffer per block it reads), by index.
pub const BUFFER: usize = 0;
pub fn object_kinds() -> [ama::ObjectKind; 1] {
    [ama::ObjectKind {
        name: "buffer",
        size: std::mem::size_of::<Buf>(),
    }]
}

const SHARDS: usize = 64;

/// A block-sized page of the pool.
pub type Frame = Page;

/// A cached block. It is a logged object of the recovery runtime: reading
/// and writing it go through the runtime's hooks, which track dependences
/// and keep before-images of uncommitted writes in `chain`.
pub struct Buf {
    blk: u64,
    data: RwLock<Frame>,
    dirty: AtomicBool,
    /// Second-chance bit for the clock eviction.
    referenced: AtomicBool,
    /// The newest request (AMA's sequence number) that read it: it stays
    /// until that request and all older ones have ended (see `pinned`).
    read_by: AtomicU64,
    chain: VersionChain,
    rt: Arc<Runtime>,
    pool: Arc<Pool>,
    dirt: Arc<Dirt>,
    /// Something computed from the bytes and kept with them (a directory
    /// block's name index: see [`BlockCache::read_derived_with`]), dropped
    /// at any change of the bytes, under their write lock; `has_derived`
    /// spares that lock at each write of a block that has none.
    derived: Mutex<Option<Derived>>,
    has_derived: AtomicBool,
}

/// What a buffer keeps computed from its bytes (see [`Buf::derived`]).
pub type Derived = Box<dyn std::any::Any + Send + Sync>;

pub type BufRef = Arc<Buf>;

/// How many of the cache's buffers are dirty, and the background writer
/// to wake when that reaches a quarter of the cache (see
/// [`BlockCache::writer_loop`]).
#[derive(Default)]
struct Dirt {
    count: AtomicUsize,
    /// The count that wakes the writer (0 until one runs).
    high: AtomicUsize,
    writer: Mutex<Option<std::thread::Thread>>,
}

/// What a write keeps a before-image of.
enum Logged {
    Whole,
    Range(std::ops::Range<usize>),
    /// Nothing: the block is new to the request.
    New,
}

impl Buf {
    pub fn blk(&self) -> u64 {
        self.blk
    }
    pub fn read(&self) -> RwLockReadGuard<'_, Frame> {
        crate::faults::site(&self.rt, "block read");
        self.rt.read(self);
        self.data.read()
    }
    /// Write access; the block is dirty from now on. The runtime records the
    /// before-image at the first write inside a domain.
    pub fn write(self: &Arc<Self>) -> RwLockWriteGuard<'_, Frame> {
        self.write_as(Logged::Whole)
    }

    /// Write access for changing only the bytes in `range` (an inode, a
    /// bitmap byte, a block pointer, a directory entry): the runtime keeps
    /// the before-image of those bytes only, not of the whole block.
    /// Changing bytes outside the range through the guard is a bug.
    pub fn write_range(
        self: &Arc<Self>,
        range: std::ops::Range<usize>,
    ) -> RwLockWriteGuard<'_, Frame> {
        self.write_as(Logged::Range(range))
    }

    /// Write access to a block the request has just allocated: like
    /// [`Buf::write`], but without a before-image (if the request rolls
    /// back, so does the allocation, and the old bytes do not matter).
    fn write_new(self: &Arc<Self>) -> RwLockWriteGuard<'_, Frame> {
        self.write_as(Logged::New)
    }

    /// [`Buf::write_range`] for a change `f` makes to the bytes and brings
    /// the derived value (see [`BlockCache::read_derived_with`]) up to date
    /// with: `f` gets it taken out of the buffer, and hands back what is
    /// to be kept (`None`: it could not follow the change). A fault in `f`
    /// leaves the buffer without one.
    pub fn write_range_derived(
        self: &Arc<Self>,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&mut [u8], Option<Derived>) -> Option<Derived>,
    ) {
        let mut g = self.write_keeping(Logged::Range(range));
        let taken = if self.has_derived.load(Ordering::Relaxed) {
            self.has_derived.store(false, Ordering::Relaxed);
            self.derived.lock().take()
        } else {
            None
        };
        let kept = f(&mut g, taken);
        if kept.is_some() {
            *self.derived.lock() = kept;
            self.has_derived.store(true, Ordering::Relaxed);
        }
    }

    fn write_as(self: &Arc<Self>, how: Logged) -> RwLockWriteGuard<'_, Frame> {
        let g = self.write_keeping(how);
        self.drop_derived();
        g
    }

    /// Write access through the runtime's hook, the derived value left to
    /// the caller (see [`Buf::write_as`]).
    fn write_keeping(self: &Arc<Self>, how: Logged) -> RwLockWriteGuard<'_, Frame> {
        crate::faults::site(&self.rt, "block write");
        ama::note_change();
        let obj: Arc<dyn LoggedObject> = self.clone();
        match how {
            Logged::Whole => self.rt.write(&obj),
            Logged::Range(r) => self.rt.write_range(&obj, r),
            Logged::New => self.rt.write_new(&obj),
        }
        let g = self.data.write();
        self.mark_dirty();
        g
    }

    /// Run `f` on the bytes for reading and on the derived slot (see
    /// [`BlockCache::read_derived_with`]).
    fn read_derived<R>(
        &self,
        f: impl FnOnce(&[u8], Option<&mut Option<Derived>>) -> Result<R>,
    ) -> Result<R> {
        let d = self.read();
        let mut slot = self.derived.lock();
        let r = f(&d, Some(&mut slot));
        // (Set before the bytes' read lock goes: a writer, which takes the
        // write lock next, sees it and drops what was derived.)
        self.has_derived.store(slot.is_some(), Ordering::Relaxed);
        r
    }

    /// [`Buf::read_derived`] for AMA's requirement phase, without the
    /// runtime's hook (see [`Buf::peek_bytes`]).
    pub(crate) fn peek_derived<R>(&self, f: impl FnOnce(&[u8], &mut Option<Derived>) -> R) -> R {
        let d = self.data.read();
        let mut slot = self.derived.lock();
        let r = f(&d, &mut slot);
        self.has_derived.store(slot.is_some(), Ordering::Relaxed);
        r
    }

    /// The bytes are about to change (their write lock is held): what was
    /// computed from them goes.
    fn drop_derived(&self) {
        if self.has_derived.load(Ordering::Relaxed) {
            *self.derived.lock() = None;
            self.has_derived.store(false, Ordering::Relaxed);
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Dirty from now on (under the data's write lock, or before it is
    /// shared); a buffer that turns dirty is counted, and the one that
    /// makes a quarter of the cache dirty wakes the background writer.
    fn mark_dirty(&self) {
        if self.dirty.load(Ordering::Relaxed) || self.dirty.swap(true, Ordering::AcqRel) {
            return;
        }
        let n = self.dirt.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.dirt.high.load(Ordering::Relaxed) {
            if let Some(w) = &*self.dirt.writer.lock() {
                w.unpark();
            }
        }
    }

    /// Clean (under at least the data's read lock, before writing it back).
    fn mark_clean(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            self.dirt.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
    /// The bytes, bypassing the runtime's hooks: only for AMA's requirement
    /// computation, which runs before the request and decides nothing but
    /// how much memory to reserve.
    pub(crate) fn peek_bytes(&self) -> RwLockReadGuard<'_, Frame> {
        self.data.read()
    }
}

impl Drop for Buf {
    /// A dirty buffer dropped unwritten (a freed block's) is not counted.
    fn drop(&mut self) {
        if *self.dirty.get_mut() {
            self.dirt.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Block numbers are already well spread: FxHash is enough, and much
/// cheaper than SipHash on this hot path.
type BlockMap = rustc_hash::FxHashMap<u64, BufRef>;

impl LoggedObject for Buf {
    fn chain(&self) -> &VersionChain {
        &self.chain
    }
    /// The before-image takes a page of the pool (from the reserve with
    /// AMA on); when none can be had the writing domain faults with ENOMEM.
    fn snapshot(&self) -> recovery_rt::Image {
        match self.pool.alloc_page("undo image") {
            Ok(mut page) => {
                page.copy_from_slice(&self.data.read());
                Box::new(page)
            }
            Err(_) => recovery_rt::fault(libc::ENOMEM),
        }
    }
    fn restore(&self, image: &[u8]) {
        let mut d = self.data.write();
        self.drop_derived();
        d.copy_from_slice(image);
        self.mark_dirty();
    }
    /// Partial images take a page too (so AMA's page per written block
    /// stays exact), but only the written chunks are copied into it.
    fn blank(&self) -> Option<recovery_rt::Image> {
        match self.pool.alloc_page("undo image") {
            Ok(page) => Some(Box::new(page)),
            Err(_) => recovery_rt::fault(libc::ENOMEM),
        }
    }
    fn save_chunks(&self, image: &mut [u8], mask: u64) {
        recovery_rt::copy_chunks(&self.data.read(), image, mask);
    }
    fn restore_chunks(&self, image: &[u8], mask: u64) {
        let mut d = self.data.write();
        self.drop_derived();
        recovery_rt::copy_chunks(image, &mut d, mask);
        self.mark_dirty();
    }
    /// Before-bytes kept compact (an inode, a bitmap byte, a directory
    /// entry, a block pointer) are copied straight from the block.
    fn read_bytes(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        f(&self.data.read());
        true
    }
    fn write_bytes(&self, f: &mut dyn FnMut(&mut [u8])) {
        let mut d = self.data.write();
        self.drop_derived();
        f(&mut d);
        self.mark_dirty();
    }
    /// Compact before-bytes are charged a page of the reserve, as an image
    /// would take one (AMA's estimate of a page per written block stays
    /// exact), though none moves; without a reserve, an injection point.
    fn charge_compact(&self) {
        if self.pool.charge_page("undo image").is_err() {
            recovery_rt::fault(libc::ENOMEM)
        }
    }
}

#[derive(Default)]
struct Shard {
    map: BlockMap,
    clock: VecDeque<u64>,
    /// Lookups that found the block, and those that did not, counted
    /// under the shard's lock (a counter of the whole cache would be a
    /// line every lookup of every thread writes).
    hits: u64,
    misses: u64,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Writes to the image (a run of blocks is one).
    pub writebacks: u64,
    /// Blocks those writes carried.
    pub written_blocks: u64,
    /// Freed blocks dropped without write-back.
    pub forgotten: u64,
}

pub struct BlockCache {
    dev: Arc<Device>,
    rt: Arc<Runtime>,
    pool: Arc<Pool>,
    /// Each in a cache line of its own: neighbouring blocks (an inode
    /// table's, a group's bitmaps) lie in neighbouring shards, which
    /// concurrent requests lock at once.
    shards: Vec<CachePadded<Mutex<Shard>>>,
    shard_capacity: usize,
    blocks_count: u64,
    /// Where the next reclaim starts (so that shards take turns).
    next_reclaim: AtomicUsize,
    evictions: AtomicU64,
    writebacks: AtomicU64,
    written_blocks: AtomicU64,
    forgotten: AtomicU64,
    dirt: Arc<Dirt>,
    /// Held by whoever writes back runs of blocks, from the first copy to
    /// the end of the write: so a block's older bytes, copied by one run,
    /// cannot reach the image after newer ones another run copied later.
    /// It keeps the run's bytes and buffers between runs (see
    /// [`BlockCache::write_back_runs`]).
    runs: Mutex<Run>,
}

/// A run of consecutive blocks being written back with one write.
#[derive(Default)]
struct Run {
    bytes: Vec<u8>,
    /// Its buffers (held, so that no eviction writes one back meanwhile),
    /// and whether their copy cleared their dirty mark.
    bufs: Vec<(BufRef, bool)>,
}

/// The longest run written back with one write, in bytes.
const RUN_BYTES: usize = 1 << 20;

/// Mark `b` read by the request running on this thread, if AMA gave it a
/// sequence number (under its shard's lock: see `ama::pin_seq`).
fn mark_read(b: &Buf) {
    let seq = ama::pin_seq();
    if seq != 0 && b.read_by.load(Ordering::Relaxed) < seq {
        b.read_by.fetch_max(seq, Ordering::Relaxed);
    }
}

/// Did a request that is still running read `b` (`oldest`: the oldest
/// running request's sequence number)?
fn pinned(b: &Buf, oldest: u64) -> bool {
    let r = b.read_by.load(Ordering::Relaxed);
    r != 0 && r >= oldest
}

impl BlockCache {
    pub fn new(
        dev: Arc<Device>,
        pool: Arc<Pool>,
        capacity: usize,
        rt: Arc<Runtime>,
        blocks_count: u64,
    ) -> BlockCache {
        let shard_capacity = (capacity / SHARDS).max(4);
        BlockCache {
            dev,
            rt,
            pool,
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Shard::default())))
                .collect(),
            shard_capacity,
            blocks_count,
            next_reclaim: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            writebacks: AtomicU64::new(0),
            written_blocks: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            dirt: Arc::new(Dirt::default()),
            runs: Mutex::new(Run::default()),
        }
    }

    fn shard(&self, blk: u64) -> &Mutex<Shard> {
        &self.shards[(blk as usize) % SHARDS]
    }

    fn check(&self, blk: u64) -> Result<()> {
        if blk == 0 || blk >= self.blocks_count {
            return Err(corrupt(format!("block number {blk} out of range")));
        }
        Ok(())
    }

    /// The cached block, read from the image on a miss.
    pub fn get(&self, blk: u64) -> Result<BufRef> {
        self.lookup(blk, false, None)
    }

    /// [`BlockCache::get`], where a miss first asks the image for the
    /// blocks `ahead()` gives (which should hold `blk`) as read-ahead: see
    /// [`Device::will_need`]. (Worked out only on a miss.)
    pub fn get_ahead(&self, blk: u64, ahead: &dyn Fn() -> std::ops::Range<u64>) -> Result<BufRef> {
        self.lookup(blk, false, Some(ahead))
    }

    /// A block this request has just allocated: its old contents do not
    /// matter, so it is not read nor kept as a before-image; it starts
    /// zeroed and dirty. (A block that was already there: [`BlockCache::get_cleared`].)
    pub fn get_zeroed(&self, blk: u64) -> Result<BufRef> {
        let b = self.lookup(blk, true, None)?;
        b.write_new().fill(0);
        Ok(b)
    }

    /// [`BlockCache::get_zeroed`] for a block about to get `src` at byte
    /// `at`: only the rest is zeroed (a whole-block write zeroes nothing).
    pub fn get_new_with(&self, blk: u64, at: usize, src: &[u8]) -> Result<BufRef> {
        let b = self.lookup(blk, true, None)?;
        {
            let mut d = b.write_new();
            let end = at + src.len();
            d[..at].fill(0);
            d[at..end].copy_from_slice(src);
            d[end..].fill(0);
        }
        Ok(b)
    }

    /// Drop block `blk` from the cache without writing it back: it was
    /// freed, its contents are garbage (the kernel's `bforget`). Its frame
    /// goes back to the pool now instead of holding cache space until it is
    /// evicted, and a dirty one costs no write. Kept if anyone holds it or
    /// it has uncommitted versions. The caller frees the block only after
    /// this, so nobody can have allocated it again yet.
    pub fn discard(&self, blk: u64) {
        let mut shard = self.shard(blk).lock();
        let Some(b) = shard.map.get(&blk) else {
            return;
        };
        if Arc::strong_count(b) > 1
            || b.chain.is_speculative()
            // (The scan for the oldest request only for a marked buffer.)
            || (b.read_by.load(Ordering::Relaxed) != 0 && pinned(b, self.pool.oldest_active()))
        {
            return;
        }
        shard.map.remove(&blk);
        self.forgotten.fetch_add(1, Ordering::Relaxed);
        // Its place in the clock goes when the hand passes; keep the clock
        // from filling up with such places when nothing is evicted.
        if shard.clock.len() > 2 * shard.map.len() + 64 {
            let Shard { map, clock, .. } = &mut *shard;
            let mut seen = std::collections::HashSet::with_capacity(map.len());
            clock.retain(|b| map.contains_key(b) && seen.insert(*b));
        }
    }

    /// Block `blk` zeroed: new (see [`BlockCache::get_zeroed`]) or, when
    /// `new` is false, an existing block whose contents are logged first.
    pub fn get_cleared(&self, blk: u64, new: bool) -> Result<BufRef> {
        if new {
            return self.get_zeroed(blk);
        }
        let b = self.get(blk)?;
        b.write().fill(0);
        Ok(b)
    }

    /// The block if it is cached, without reading or allocating.
    pub fn peek(&self, blk: u64) -> Option<BufRef> {
        let shard = self.shard(blk).lock();
        let b = shard.map.get(&blk)?;
        // A request's estimate counts on what it peeks at staying.
        mark_read(b);
        Some(b.clone())
    }

    fn lookup(
        &self,
        blk: u64,
        fresh: bool,
        ahead: Option<&dyn Fn() -> std::ops::Range<u64>>,
    ) -> Result<BufRef> {
        self.check(blk)?;
        let mut shard = self.shard(blk).lock();
        let shard = &mut *shard;
        if let Some(b) = shard.map.get(&blk) {
            b.referenced.store(true, Ordering::Relaxed);
            shard.hits += 1;
            // Pinned for the request (see below), also when it was cached
            // but not peeked at (a block a concurrent request added).
            mark_read(b);
            return Ok(b.clone());
        }
        shard.misses += 1;
        if shard.map.len() >= self.shard_capacity {
            self.evict_some(shard)?;
        }
        // (The pool asks the cache's reclaimer for pages when it is spent.)
        self.pool
            .take_object(BUFFER, "buffer")
            .map_err(|_| FsError::NoMem)?;
        let mut frame = self
            .pool
            .alloc_page("block frame")
            .map_err(|_| FsError::NoMem)?;
        if !fresh {
            if let Some(ahead) = ahead {
                self.dev.will_need(ahead());
            }
            self.dev.read_block(blk, &mut frame)?;
        }
        let b = Arc::new(Buf {
            blk,
            data: RwLock::new(frame),
            dirty: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            read_by: AtomicU64::new(0),
            chain: VersionChain::new(),
            rt: self.rt.clone(),
            pool: self.pool.clone(),
            dirt: self.dirt.clone(),
            derived: Mutex::new(None),
            has_derived: AtomicBool::new(false),
        });
        shard.map.insert(blk, b.clone());
        shard.clock.push_back(blk);
        // With AMA, a block read for a request stays pinned until the
        // request ends: evicted and read again it would need a second frame.
        mark_read(&b);
        Ok(b)
    }

    /// Clock eviction inside one shard: skip buffers in use elsewhere and
    /// recently referenced ones; write back a dirty victim first.
    fn evict_some(&self, shard: &mut Shard) -> Result<()> {
        self.evict_to(shard, self.shard_capacity.saturating_sub(1))
    }

    /// Evict until the shard holds at most `target` buffers (or nothing more
    /// can go).
    fn evict_to(&self, shard: &mut Shard, target: usize) -> Result<()> {
        // (Under the shard's lock, as every mark in it is made.)
        let oldest = self.pool.oldest_active();
        let mut budget = shard.clock.len() * 2;
        while shard.map.len() > target && budget > 0 {
            budget -= 1;
            let Some(blk) = shard.clock.pop_front() else {
                break;
            };
            let Some(b) = shard.map.get(&blk) else {
                continue;
            };
            // In use, read by a request still running, recently used, or
            // holding uncommitted versions (whose data exists nowhere
            // else): not a victim.
            if Arc::strong_count(b) > 1
                || pinned(b, oldest)
                || b.referenced.swap(false, Ordering::Relaxed)
                || b.chain.is_speculative()
            {
                shard.clock.push_back(blk);
                continue;
            }
            if b.is_dirty() {
                if let Err(e) = self.write_back(b) {
                    shard.clock.push_back(blk);
                    return Err(e);
                }
            }
            // Dropping the last reference gives the frame back to the pool.
            shard.map.remove(&blk).expect("present");
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        // Every buffer in use: let the shard run over its share for now.
        Ok(())
    }

    /// Give about `want` frames back to the pool, from shards that are not
    /// busy (try_lock: the allocating thread may hold a shard lock, so never
    /// wait for one). The pool's reclaimer.
    pub fn reclaim(&self, want: usize) -> usize {
        let mut freed = 0;
        let start = self.next_reclaim.fetch_add(1, Ordering::Relaxed);
        for k in 0..SHARDS {
            if freed >= want {
                break;
            }
            let i = (start + k) % SHARDS;
            if let Some(mut s) = self.shards[i].try_lock() {
                let before = s.map.len();
                if before == 0 {
                    continue;
                }
                let target = before.saturating_sub(want - freed);
                let _ = self.evict_to(&mut s, target);
                freed += before - s.map.len();
            }
        }
        freed
    }

    /// Evict every buffer that can go (written back first if dirty); how
    /// many went.
    pub fn drop_unused(&self) -> Result<usize> {
        let mut dropped = 0;
        for s in &self.shards {
            let mut s = s.lock();
            let before = s.map.len();
            self.evict_to(&mut s, 0)?;
            dropped += before - s.map.len();
        }
        Ok(dropped)
    }

    /// Run `f` on the bytes of block `blk` for reading: the cached buffer
    /// if there is one; else, when the request's AMA reserve holds a scratch
    /// page, the block read into it without entering the cache (page
    /// recycling: a long scan reuses one page); else a cached read. Reading
    /// past the cache is safe for the blocks this is used on (directory and
    /// indirect blocks under their inode's lock, data under its inode's
    /// lock): a block that is not cached has no uncommitted version.
    pub fn read_with<R>(&self, blk: u64, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        if let Some(b) = self.peek(blk) {
            return f(&b.read());
        }
        self.read_past(blk, |d, _| f(d))
    }

    /// [`BlockCache::read_with`], with the cached buffer's derived slot
    /// for `f` to use, or fill: something computed from the bytes (a
    /// directory block's name index), kept until they change. A block read
    /// past the cache has none (`None`). (The slot's lock is held while `f`
    /// runs.)
    pub fn read_derived_with<R>(
        &self,
        blk: u64,
        f: impl FnOnce(&[u8], Option<&mut Option<Derived>>) -> Result<R>,
    ) -> Result<R> {
        match self.peek(blk) {
            Some(b) => b.read_derived(f),
            None => self.read_past(blk, f),
        }
    }

    /// The rest of [`BlockCache::read_with`] for a block not cached: read
    /// into the request's scratch page if it has one, else into the cache.
    fn read_past<R>(
        &self,
        blk: u64,
        f: impl FnOnce(&[u8], Option<&mut Option<Derived>>) -> Result<R>,
    ) -> Result<R> {
        self.check(blk)?;
        let mut f = Some(f);
        let scratch = ama::with_scratch(|page| -> Result<R> {
            crate::faults::site(&self.rt, "block read");
            self.dev.read_block(blk, page)?;
            (f.take().expect("called once"))(page, None)
        });
        match scratch {
            Some(r) => r,
            None => self
                .get(blk)?
                .read_derived(f.take().expect("not called yet")),
        }
    }

    /// Write a block's committed version to the image. While a domain that
    /// has not committed holds a version, its before-image is what is
    /// committed; the block stays dirty until the current data is final.
    /// (The chain lock is held across, so no writer can slip in between.)
    fn write_back(&self, b: &Buf) -> Result<()> {
        let chain = b.chain.versions_for_writeback();
        let current = b.data.read();
        let r = match chain.committed(&current) {
            Committed::Image(image) => {
                drop(current);
                self.dev.write_block(b.blk, &image)
            }
            // A block new to an uncommitted request: nothing final to write
            // yet (it stays dirty).
            Committed::Nothing => return Ok(()),
            Committed::Current => {
                let data = current;
                b.mark_clean();
                let r = self.dev.write_block(b.blk, &data);
                if r.is_err() {
                    b.mark_dirty();
                }
                r
            }
        };
        r?;
        self.writebacks.fetch_add(1, Ordering::Relaxed);
        self.written_blocks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write every dirty block to the image (in block order), then sync it.
    /// Only block numbers are collected: holding references to every dirty
    /// buffer would pin them all and starve concurrent misses of frames.
    pub fn flush_all(&self) -> Result<()> {
        // (Also when nothing is dirty: a run the background writer has
        // taken is on its way, and the sync must come after it.)
        self.write_back_runs(&self.dirty_blocks())?;
        self.dev.sync()
    }

    /// The dirty blocks, in block order. Only block numbers are collected:
    /// holding references to every dirty buffer would pin them all and
    /// starve concurrent misses of frames.
    fn dirty_blocks(&self) -> Vec<u64> {
        let mut dirty: Vec<u64> = Vec::new();
        for s in &self.shards {
            let s = s.lock();
            dirty.extend(s.map.values().filter(|b| b.is_dirty()).map(|b| b.blk));
        }
        dirty.sort_unstable();
        dirty
    }

    /// Write back the blocks of `blks` (ascending) that are cached and
    /// dirty: each run of consecutive ones, up to [`RUN_BYTES`], with one
    /// write (the image's file system, and the disk under it, take a 1 MiB
    /// write for far less than 256 writes of 4 KiB). Each block's
    /// committed bytes (see [`BlockCache::write_back`]) are copied under
    /// its locks, one block at a time, so no lock of one block is held
    /// while another's is taken.
    fn write_back_runs(&self, blks: &[u64]) -> Result<()> {
        let mut run = self.runs.lock();
        let bs = self.dev.block_size() as usize;
        let max = (RUN_BYTES / bs).max(1);
        for &blk in blks {
            let next = run.bufs.first().map(|(b, _)| b.blk + run.bufs.len() as u64);
            if next != Some(blk) || run.bufs.len() == max {
                self.write_run(&mut run)?;
            }
            let Some(b) = self.peek(blk) else {
                continue;
            };
            if !b.is_dirty() {
                continue;
            }
            let chain = b.chain.versions_for_writeback();
            let current = b.data.read();
            let cleared = match chain.committed(&current) {
                // New to an uncommitted request: nothing final yet.
                Committed::Nothing => None,
                Committed::Image(image) => {
                    run.bytes.extend_from_slice(&image);
                    Some(false)
                }
                Committed::Current => {
                    b.mark_clean();
                    run.bytes.extend_from_slice(&current);
                    Some(true)
                }
            };
            drop((current, chain));
            match cleared {
                Some(cleared) => run.bufs.push((b, cleared)),
                None => self.write_run(&mut run)?,
            }
        }
        self.write_run(&mut run)
    }

    /// Write the run gathered so far, and empty it; on an error its blocks
    /// are dirty again.
    fn write_run(&self, run: &mut Run) -> Result<()> {
        let Some((first, _)) = run.bufs.first() else {
            return Ok(());
        };
        let r = self
            .dev
            .write_at(first.blk * self.dev.block_size(), &run.bytes);
        if r.is_ok() {
            self.writebacks.fetch_add(1, Ordering::Relaxed);
            let n = run.bufs.len() as u64;
            self.written_blocks.fetch_add(n, Ordering::Relaxed);
        }
        for (b, cleared) in run.bufs.drain(..) {
            if r.is_err() && cleared {
                b.mark_dirty();
            }
        }
        run.bytes.clear();
        r
    }

    /// The background writer (a thread of its own runs it, for good):
    /// whenever a quarter of the cache is dirty, it writes back every dirty
    /// block in runs, without a sync. Evictions then find clean victims
    /// instead of writing back one block at a time on the way of a
    /// request, and the image gets large writes, as the kernel's flusher
    /// threads give a disk. (It also looks every ten seconds: a pass that
    /// left a quarter dirty, its blocks held by requests still running, is
    /// not woken again until the count comes back up to the mark.)
    pub fn writer_loop(&self) -> ! {
        let capacity = self.shard_capacity * SHARDS;
        let high = (capacity / 4).max(1);
        *self.dirt.writer.lock() = Some(std::thread::current());
        self.dirt.high.store(high, Ordering::Relaxed);
        loop {
            std::thread::park_timeout(std::time::Duration::from_secs(10));
            if self.dirt.count.load(Ordering::Relaxed) < high {
                continue;
            }
            if let Err(e) = self.write_back_runs(&self.dirty_blocks()) {
                log::error!("background write-back: {e}");
            }
        }
    }

    /// How many buffers are dirty (counted as they turn dirty and clean).
    pub fn dirty_count(&self) -> usize {
        self.dirt.count.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> CacheStats {
        let (hits, misses) = self.shards.iter().fold((0, 0), |(h, m), s| {
            let s = s.lock();
            (h + s.hits, m + s.misses)
        });
        CacheStats {
            hits,
            misses,
            evictions: self.evictions.load(Ordering::Relaxed),
            writebacks: self.writebacks.load(Ordering::Relaxed),
            written_blocks: self.written_blocks.load(Ordering::Relaxed),
            forgotten: self.forgotten.load(Ordering::Relaxed),
        }
    }

    pub fn device(&self) -> &Device {
        &self.dev
    }
}
