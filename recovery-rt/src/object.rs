//! Logged objects and their version chains.
//!
//! A client registers an object by implementing [`LoggedObject`]: it can
//! snapshot its bytes and restore a snapshot. The first write of an object
//! inside a domain pushes a [`Version`] holding the before-image; the chain
//! (oldest first) is the object's history of uncommitted writes. Because every
//! writer after a version depends on that version's domain, rolling back any
//! subset that is closed under dependence, in any order, ends at the same
//! state: each rollback restores its own before-image and drops every later
//! version (all of them belong to doomed dependents).
//!
//! A write may name the bytes it changes ([`crate::Runtime::write_range`]):
//! an object that offers a [blank](LoggedObject::blank) image then keeps
//! only those bytes, in [chunks](CHUNKS) of 1/64 of it, at their own places
//! in the image. A 128-byte inode in a 4 KiB block costs a 128-byte copy
//! instead of a 4 KiB one. Where the chunks fit in [`INLINE_BYTES`] and the
//! object lends its bytes ([`LoggedObject::read_bytes`]), they are kept one
//! after another in a small buffer that threads recycle (a bitmap byte, an
//! inode, a block pointer, a directory entry: most writes), so that such a
//! write allocates nothing in the steady state; otherwise in an image of
//! the object's size (one page), so that an allocator reserving a page per
//! written block stays an upper bound.

use crate::runtime::DomainCell;
use crate::DomainId;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A before-image: any owner of bytes (a `Vec<u8>`, or a page of the
/// client's allocator, so that logging can draw on a memory reserve).
pub type Image = Box<dyn ImageBytes>;

/// What an image is: bytes that can be read and, for partial images, filled.
pub trait ImageBytes: AsRef<[u8]> + AsMut<[u8]> + Send + Sync {}
impl<T: AsRef<[u8]> + AsMut<[u8]> + Send + Sync> ImageBytes for T {}

/// An object's bytes divide into this many chunks for partial images; a
/// [`Version`]'s mask has a bit per chunk it holds.
pub const CHUNKS: usize = 64;
/// The mask of a whole image.
pub(crate) const FULL: u64 = u64::MAX;

/// Before-bytes up to this many, and up to a quarter of the object, are
/// kept compact, without an image.
pub const INLINE_BYTES: usize = 512;

/// Do `bytes` of an object of `len` bytes fit compact?
fn fits_compact(bytes: usize, len: usize) -> bool {
    bytes <= INLINE_BYTES.min(len / 4)
}

/// Chunks kept compact: those of the version's mask, in chunk order, in a
/// buffer that goes back to its thread's spares when dropped.
pub(crate) struct ChunkBytes(Vec<u8>);

thread_local! {
    /// Emptied chunk buffers, for the next versions of this thread.
    static SPARE_CHUNKS: std::cell::RefCell<Vec<Vec<u8>>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

impl ChunkBytes {
    fn new() -> ChunkBytes {
        let v = SPARE_CHUNKS
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(INLINE_BYTES));
        ChunkBytes(v)
    }
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ChunkBytes {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.0);
        if v.capacity() == 0 {
            return;
        }
        v.clear();
        // (At thread exit the spares are gone: then it is simply freed.)
        let _ = SPARE_CHUNKS.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 64 {
                s.push(v);
            }
        });
    }
}

/// What a version keeps of the object as it was before the domain's writes.
pub(crate) enum Before {
    /// Nothing: the object was new to the domain (see
    /// `Runtime::write_new`); what it held before does not matter.
    New,
    /// An image of the object's size; the version's mask says which of
    /// its chunks hold before-bytes.
    Image(Image),
    /// The chunks of the version's mask, one after another.
    Chunks(ChunkBytes),
}

/// The chunks in `mask` of `full`, appended to `out` in chunk order (a
/// run of chunks at once: a range's chunks are one run).
fn gather(full: &[u8], mask: u64, out: &mut ChunkBytes) {
    let c = full.len() / CHUNKS;
    for (first, n) in runs(mask) {
        out.extend_from_slice(&full[first * c..(first + n) * c]);
    }
}

/// The runs of set bits of `mask`, lowest first: (first bit, length).
fn runs(mut mask: u64) -> impl Iterator<Item = (usize, usize)> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let first = mask.trailing_zeros() as usize;
            let n = (mask >> first).trailing_ones() as usize;
            mask = if first + n >= 64 {
                0
            } else {
                mask & !(((1u64 << n) - 1) << first)
            };
            (first, n)
        })
    })
}

/// Of the chunks `compact` holds (those of `held`, in chunk order), copy
/// those in `which` to their places in `full`.
fn scatter(compact: &[u8], held: u64, which: u64, full: &mut [u8]) {
    let c = full.len() / CHUNKS;
    if which == held {
        // All of them: run by run.
        let mut at = 0;
        for (first, n) in runs(held) {
            full[first * c..(first + n) * c].copy_from_slice(&compact[at..at + n * c]);
            at += n * c;
        }
        return;
    }
    for (i, k) in bits(held).enumerate() {
        if which >> k & 1 == 1 {
            full[k * c..(k + 1) * c].copy_from_slice(&compact[i * c..(i + 1) * c]);
        }
    }
}

/// The chunks of two compact sets together, in chunk order; `a`'s bytes
/// win where both hold a chunk. `c` is the chunk size.
fn merge(a: &[u8], a_mask: u64, b: &[u8], b_mask: u64, c: usize) -> ChunkBytes {
    let mut out = ChunkBytes::new();
    for k in bits(a_mask | b_mask) {
        let (src, held) = if a_mask >> k & 1 == 1 {
            (a, a_mask)
        } else {
            (b, b_mask)
        };
        let i = (held & ((1u64 << k) - 1)).count_ones() as usize;
        out.extend_from_slice(&src[i * c..(i + 1) * c]);
    }
    out
}

/// The indices of the set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            k
        })
    })
}

/// The chunk size of a compact set (0 when it holds none).
fn chunk_size(compact: &[u8], mask: u64) -> usize {
    compact
        .len()
        .checked_div(mask.count_ones() as usize)
        .unwrap_or(0)
}

/// Copy the chunks in `mask` from `src` to `dst` (both of one object's
/// size, a multiple of [`CHUNKS`]): how partial images are saved and
/// restored.
pub fn copy_chunks(src: &[u8], dst: &mut [u8], mask: u64) {
    debug_assert_eq!(src.len(), dst.len());
    let c = src.len() / CHUNKS;
    let mut m = mask;
    while m != 0 {
        // Runs of set bits are copied at once.
        let first = m.trailing_zeros() as usize;
        let run = (m >> first).trailing_ones() as usize;
        let (a, b) = (first * c, (first + run) * c);
        dst[a..b].copy_from_slice(&src[a..b]);
        m = if first + run >= 64 {
            0
        } else {
            m & !(((1u64 << run) - 1) << first)
        };
    }
}

/// The chunks bytes `range` of an object of `len` bytes fall in (all of
/// them when `len` does not divide into [`CHUNKS`]).
pub(crate) fn chunk_mask(range: std::ops::Range<usize>, len: usize) -> u64 {
    if len == 0 || !len.is_multiple_of(CHUNKS) || range.end > len {
        return FULL;
    }
    if range.start >= range.end {
        return 0;
    }
    let c = len / CHUNKS;
    let (first, last) = (range.start / c, (range.end - 1) / c);
    let bits = last - first + 1;
    if bits == 64 {
        FULL
    } else {
        ((1u64 << bits) - 1) << first
    }
}

pub trait LoggedObject: Send + Sync {
    fn chain(&self) -> &VersionChain;
    /// The object's current bytes. It may raise a fault (e.g. when memory
    /// for the image cannot be had), which fails the writing domain.
    fn snapshot(&self) -> Image;
    /// Put back bytes from an earlier snapshot.
    fn restore(&self, image: &[u8]);
    /// An image of the object's size to save chunks into, or `None` if the
    /// object keeps whole snapshots only. It may raise a fault, as
    /// [`LoggedObject::snapshot`] may.
    fn blank(&self) -> Option<Image> {
        None
    }
    /// Copy the chunks in `mask` of the current bytes into `image`
    /// (see [`copy_chunks`]); only called with an image from `blank`.
    fn save_chunks(&self, _image: &mut [u8], _mask: u64) {}
    /// Put back the chunks in `mask` from `image`.
    fn restore_chunks(&self, _image: &[u8], _mask: u64) {}
    /// Run `f` on the object's current bytes, for before-bytes kept inline
    /// in their version; false (without calling `f`) if the object does
    /// not lend its bytes.
    fn read_bytes(&self, _f: &mut dyn FnMut(&[u8])) -> bool {
        false
    }
    /// Run `f` on the object's bytes to change them (putting compact
    /// before-bytes back); only called on an object that lends its bytes.
    fn write_bytes(&self, _f: &mut dyn FnMut(&mut [u8])) {}
    /// A version keeps this object's before-bytes compact, without an
    /// image: account for them as for an image (against a memory reserve,
    /// say), once per version. It may raise a fault, as
    /// [`LoggedObject::snapshot`] may.
    fn charge_compact(&self) {}
}

pub(crate) struct Version {
    pub(crate) domain: DomainId,
    /// Its domain as other threads see it (to give it a node when one
    /// comes to depend on it).
    pub(crate) owner: Arc<DomainCell>,
    pub(crate) before: Before,
    /// The chunks `before` holds ([`FULL`]: all).
    pub(crate) mask: u64,
}

impl Version {
    /// The version of a write of `range` of `obj` (all of it if `None`)
    /// by a domain new to the object: the before-bytes of what it touches,
    /// inline where they fit. (A whole image may raise a fault, as
    /// [`LoggedObject::snapshot`] may.)
    pub(crate) fn first(
        domain: DomainId,
        owner: Arc<DomainCell>,
        obj: &dyn LoggedObject,
        range: Option<std::ops::Range<usize>>,
    ) -> Version {
        let Some(r) = range else {
            return Version {
                domain,
                owner,
                before: Before::Image(obj.snapshot()),
                mask: FULL,
            };
        };
        let mut inline = None;
        obj.read_bytes(&mut |b| {
            let mask = chunk_mask(r.clone(), b.len());
            if mask != FULL
                && fits_compact(mask.count_ones() as usize * (b.len() / CHUNKS), b.len())
            {
                let mut out = ChunkBytes::new();
                gather(b, mask, &mut out);
                inline = Some((out, mask));
            }
        });
        if let Some((bytes, mask)) = inline {
            obj.charge_compact();
            return Version {
                domain,
                owner,
                before: Before::Chunks(bytes),
                mask,
            };
        }
        match obj.blank() {
            Some(mut blank) => {
                let mask = chunk_mask(r, (*blank).as_ref().len());
                obj.save_chunks((*blank).as_mut(), mask);
                Version {
                    domain,
                    owner,
                    before: Before::Image(blank),
                    mask,
                }
            }
            None => Version {
                domain,
                owner,
                before: Before::Image(obj.snapshot()),
                mask: FULL,
            },
        }
    }

    /// Put the object back as it was before this version's writes.
    pub(crate) fn restore(&self, obj: &dyn LoggedObject) {
        match &self.before {
            Before::Image(image) if self.mask == FULL => obj.restore((**image).as_ref()),
            Before::Image(image) => obj.restore_chunks((**image).as_ref(), self.mask),
            Before::Chunks(bytes) => {
                obj.write_bytes(&mut |b| scatter(bytes, self.mask, self.mask, b))
            }
            Before::New => {}
        }
    }

    /// Copy this version's before-bytes of the chunks in `which` (a subset
    /// of its mask) to their places in `full`, an image of the object's size.
    fn put(&self, which: u64, full: &mut [u8]) {
        match &self.before {
            Before::Image(image) => copy_chunks((**image).as_ref(), full, which),
            Before::Chunks(bytes) => scatter(bytes, self.mask, which, full),
            Before::New => {}
        }
    }

    /// This version's domain writes `range` of `obj` again (all of it if
    /// `None`): keep the before-bytes of the chunks not yet kept, inline
    /// while they fit, else in an image (which may raise a fault).
    pub(crate) fn extend(&mut self, obj: &dyn LoggedObject, range: Option<std::ops::Range<usize>>) {
        if self.mask == FULL || matches!(self.before, Before::New) {
            return;
        }
        let held = self.mask;
        if let Before::Chunks(bytes) = &mut self.before {
            let mut missing = 0;
            let mut grown = false;
            obj.read_bytes(&mut |b| {
                let mask = range.clone().map_or(FULL, |r| chunk_mask(r, b.len()));
                missing = mask & !held;
                let c = b.len() / CHUNKS;
                if missing != 0 && fits_compact((held | missing).count_ones() as usize * c, b.len())
                {
                    let mut theirs = ChunkBytes::new();
                    gather(b, missing, &mut theirs);
                    *bytes = merge(bytes, held, &theirs, missing, c);
                    grown = true;
                }
            });
            if missing == 0 {
                return;
            }
            if grown {
                self.mask |= missing;
                return;
            }
            // Too many to keep compact: into an image of the object's
            // size, on the heap (the version has had its charge: see
            // `charge_compact`), with the current bytes of what this write
            // adds.
            let mut image = Vec::new();
            obj.read_bytes(&mut |b| {
                image = vec![0u8; b.len()];
                copy_chunks(b, &mut image, missing);
            });
            scatter(bytes, held, held, &mut image);
            self.before = Before::Image(Box::new(image));
            self.mask |= missing;
            return;
        }
        let Before::Image(image) = &mut self.before else {
            return;
        };
        let mask = range.map_or(FULL, |r| chunk_mask(r, (**image).as_ref().len()));
        let missing = mask & !held;
        if missing != 0 {
            obj.save_chunks((**image).as_mut(), missing);
            self.mask |= missing;
        }
    }

    /// `older`, the version just before this one, is gone (rolled back or
    /// merged): this one takes over its before-bytes, which are older than
    /// its own wherever both have them, so that undoing this version puts
    /// the object back as it was before `older` too. (Allocates nothing
    /// beyond a merge of two inline sets: it runs in rollbacks.)
    pub(crate) fn absorb(&mut self, older: Version) {
        match (&mut self.before, older.before) {
            (_, Before::New) => {
                // `older` found the object new: nothing before it matters.
                self.before = Before::New;
                self.mask = FULL;
            }
            (Before::New, theirs) => {
                self.before = theirs;
                self.mask = older.mask;
            }
            (_, Before::Image(theirs)) if older.mask == FULL => {
                self.before = Before::Image(theirs);
                self.mask = FULL;
            }
            (Before::Image(mine), theirs) => {
                let older = Version {
                    before: theirs,
                    ..older
                };
                older.put(older.mask, (**mine).as_mut());
                self.mask |= older.mask;
            }
            (Before::Chunks(mine), Before::Image(mut theirs)) => {
                // Their image, with my chunks where it has none.
                scatter(mine, self.mask, self.mask & !older.mask, (*theirs).as_mut());
                self.before = Before::Image(theirs);
                self.mask |= older.mask;
            }
            (Before::Chunks(mine), Before::Chunks(theirs)) => {
                let c = chunk_size(mine, self.mask).max(chunk_size(&theirs, older.mask));
                *mine = merge(&theirs, older.mask, mine, self.mask, c);
                self.mask |= older.mask;
            }
        }
    }

    /// `newer`, the version just after this one and of the same domain now
    /// (a merged child's), goes: its before-bytes of chunks this one does
    /// not hold yet are this domain's before-bytes there too.
    pub(crate) fn fill_gaps(&mut self, newer: Version) {
        let missing = newer.mask & !self.mask;
        match (&mut self.before, newer.before) {
            // This one found the object new: it covers everything.
            (Before::New, _) | (_, Before::New) => {}
            _ if missing == 0 => {}
            (Before::Image(mine), theirs) => {
                let newer = Version {
                    before: theirs,
                    ..newer
                };
                newer.put(missing, (**mine).as_mut());
                self.mask |= missing;
            }
            (Before::Chunks(mine), Before::Image(mut theirs)) => {
                // Their image, with all my chunks (mine are older).
                scatter(mine, self.mask, self.mask, (*theirs).as_mut());
                self.before = Before::Image(theirs);
                self.mask |= newer.mask;
            }
            (Before::Chunks(mine), Before::Chunks(theirs)) => {
                let c = chunk_size(mine, self.mask).max(chunk_size(&theirs, newer.mask));
                *mine = merge(mine, self.mask, &theirs, newer.mask, c);
                self.mask |= newer.mask;
            }
        }
    }
}

/// An object's versions, oldest first. Most objects written have one
/// version at a time, kept inline: a block new to the cache costs no heap
/// allocation at its first write.
pub(crate) type Versions = smallvec::SmallVec<[Version; 1]>;

/// Uncommitted versions of one object, oldest first.
#[derive(Default)]
pub struct VersionChain {
    versions: Mutex<Versions>,
    /// The newest version's domain (0: none), published whenever the chain
    /// is let go (see [`ChainGuard`]): a read hook, run on every cached
    /// block a domain reads, needs the chain's lock only when another
    /// domain has an uncommitted version.
    newest: AtomicU64,
}

/// The held chain; letting go of it publishes its newest version's domain.
pub(crate) struct ChainGuard<'a> {
    versions: parking_lot::MutexGuard<'a, Versions>,
    newest: &'a AtomicU64,
}

impl std::ops::Deref for ChainGuard<'_> {
    type Target = Versions;
    fn deref(&self) -> &Versions {
        &self.versions
    }
}

impl std::ops::DerefMut for ChainGuard<'_> {
    fn deref_mut(&mut self) -> &mut Versions {
        &mut self.versions
    }
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        let newest = self.versions.last().map_or(0, |v| v.domain);
        self.newest.store(newest, Ordering::Release);
    }
}

impl VersionChain {
    pub fn new() -> VersionChain {
        VersionChain::default()
    }

    pub(crate) fn lock(&self) -> ChainGuard<'_> {
        ChainGuard {
            versions: self.versions.lock(),
            newest: &self.newest,
        }
    }

    /// The domain of the newest version as last published (0: none), read
    /// without the lock: what the chain held when it was last let go.
    pub(crate) fn newest(&self) -> DomainId {
        self.newest.load(Ordering::Acquire)
    }

    /// Does any uncommitted domain have a version of this object?
    pub fn is_speculative(&self) -> bool {
        !self.versions.lock().is_empty()
    }

    /// Hold the chain for a write-back: while held, no domain can start
    /// writing the object, and [`Locked::committed`] tells what is final.
    pub fn versions_for_writeback(&self) -> Locked<'_> {
        Locked(self.versions.lock())
    }
}

/// A held version chain (see [`VersionChain::versions_for_writeback`]).
pub struct Locked<'a>(parking_lot::MutexGuard<'a, Versions>);

/// What of an object is committed (see [`Locked::committed`]).
pub enum Committed<'a> {
    /// Its current bytes.
    Current,
    /// These bytes; the current ones are not final.
    Image(std::borrow::Cow<'a, [u8]>),
    /// Nothing: it is new to an uncommitted domain.
    Nothing,
}

impl Locked<'_> {
    /// What of the object is final now, given its `current` bytes: the
    /// oldest version's before-image where it is whole, else the current
    /// bytes with every version's kept chunks put back, newest first.
    pub fn committed<'a>(&'a self, current: &[u8]) -> Committed<'a> {
        match self.0.first() {
            None => Committed::Current,
            Some(Version {
                before: Before::New,
                ..
            }) => Committed::Nothing,
            Some(Version {
                before: Before::Image(image),
                mask: FULL,
                ..
            }) => Committed::Image(std::borrow::Cow::Borrowed((**image).as_ref())),
            Some(_) => {
                let mut bytes = current.to_vec();
                for v in self.0.iter().rev() {
                    v.put(v.mask, &mut bytes);
                }
                Committed::Image(std::borrow::Cow::Owned(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_masks_cover_the_range_and_no_more() {
        assert_eq!(chunk_mask(0..64, 4096), 1);
        assert_eq!(chunk_mask(64..128, 4096), 2);
        assert_eq!(chunk_mask(63..65, 4096), 3);
        assert_eq!(chunk_mask(4032..4096, 4096), 1 << 63);
        assert_eq!(chunk_mask(0..4096, 4096), FULL);
        assert_eq!(chunk_mask(5..5, 4096), 0);
        assert_eq!(chunk_mask(0..8, 100), FULL, "not divisible: whole");
        assert_eq!(chunk_mask(16..32, 1024), 2);
    }

    #[test]
    fn copy_chunks_copies_exactly_the_masked_chunks() {
        let src: Vec<u8> = (0..128).map(|i| i as u8 + 1).collect();
        for mask in [0u64, 1, 0b1011, 1 << 63, FULL, 0xF0F0_0000_0000_0001] {
            let mut dst = vec![0u8; 128];
            copy_chunks(&src, &mut dst, mask);
            for (i, b) in dst.iter().enumerate() {
                let want = if mask >> (i / 2) & 1 == 1 { src[i] } else { 0 };
                assert_eq!(*b, want, "mask {mask:#x} byte {i}");
            }
        }
    }
}
