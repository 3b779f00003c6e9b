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
//! instead of a 4 KiB one; the image's memory is the same (one page), so
//! that an allocator reserving a page per written block stays exact.

use crate::DomainId;
use parking_lot::Mutex;

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
    if len == 0 || len % CHUNKS != 0 || range.end > len {
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
}

pub(crate) struct Version {
    pub(crate) domain: DomainId,
    /// `None`: the object was new to the domain (see `Runtime::write_new`);
    /// what it held before does not matter.
    pub(crate) before: Option<Image>,
    /// The chunks of `before` that hold before-bytes ([`FULL`]: all).
    pub(crate) mask: u64,
}

impl Version {
    /// Put the object back as it was before this version's writes.
    pub(crate) fn restore(&self, obj: &dyn LoggedObject) {
        match &self.before {
            Some(image) if self.mask == FULL => obj.restore((**image).as_ref()),
            Some(image) => obj.restore_chunks((**image).as_ref(), self.mask),
            None => {}
        }
    }

    /// This version's domain writes `mask` of `obj` (it already has the
    /// version): keep the before-bytes of the chunks not yet kept.
    pub(crate) fn extend(&mut self, obj: &dyn LoggedObject, mask: u64) {
        let missing = mask & !self.mask;
        if missing == 0 {
            return;
        }
        if let Some(image) = &mut self.before {
            obj.save_chunks((**image).as_mut(), missing);
        }
        self.mask |= missing;
    }

    /// `older`, the version just before this one, is gone (rolled back or
    /// merged): this one takes over its before-bytes, which are older than
    /// its own wherever both have them, so that undoing this version puts
    /// the object back as it was before `older` too.
    pub(crate) fn absorb(&mut self, older: Version) {
        match (&mut self.before, older.before) {
            (_, None) => {
                // `older` found the object new: nothing before it matters.
                self.before = None;
                self.mask = FULL;
            }
            (None, Some(image)) => {
                self.before = Some(image);
                self.mask = older.mask;
            }
            (Some(mine), Some(theirs)) => {
                if older.mask == FULL {
                    self.before = Some(theirs);
                } else {
                    copy_chunks((*theirs).as_ref(), (**mine).as_mut(), older.mask);
                }
                self.mask |= older.mask;
            }
        }
    }

    /// `newer`, the version just after this one and of the same domain now
    /// (a merged child's), goes: its before-bytes of chunks this one does
    /// not hold yet are this domain's before-bytes there too.
    pub(crate) fn fill_gaps(&mut self, newer: Version) {
        let (Some(mine), Some(theirs)) = (&mut self.before, newer.before) else {
            return; // this one found the object new: it covers everything
        };
        let missing = newer.mask & !self.mask;
        copy_chunks((*theirs).as_ref(), (**mine).as_mut(), missing);
        self.mask |= missing;
    }
}

/// Uncommitted versions of one object, oldest first.
#[derive(Default)]
pub struct VersionChain {
    pub(crate) versions: Mutex<Vec<Version>>,
}

impl VersionChain {
    pub fn new() -> VersionChain {
        VersionChain::default()
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
pub struct Locked<'a>(parking_lot::MutexGuard<'a, Vec<Version>>);

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
            Some(Version { before: None, .. }) => Committed::Nothing,
            Some(Version {
                before: Some(image),
                mask: FULL,
                ..
            }) => Committed::Image(std::borrow::Cow::Borrowed((**image).as_ref())),
            Some(_) => {
                let mut bytes = current.to_vec();
                for v in self.0.iter().rev() {
                    if let Some(image) = &v.before {
                        copy_chunks((**image).as_ref(), &mut bytes, v.mask);
                    }
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
