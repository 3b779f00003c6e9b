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

use crate::DomainId;
use parking_lot::Mutex;

/// A before-image: any owner of bytes (a `Vec<u8>`, or a page of the
/// client's allocator, so that logging can draw on a memory reserve).
pub type Image = Box<dyn AsRef<[u8]> + Send + Sync>;

pub trait LoggedObject: Send + Sync {
    fn chain(&self) -> &VersionChain;
    /// The object's current bytes. It may raise a fault (e.g. when memory
    /// for the image cannot be had), which fails the writing domain.
    fn snapshot(&self) -> Image;
    /// Put back bytes from an earlier snapshot.
    fn restore(&self, image: &[u8]);
}

pub(crate) struct Version {
    pub(crate) domain: DomainId,
    /// `None`: the object was new to the domain (see `Runtime::write_new`);
    /// what it held before does not matter.
    pub(crate) before: Option<Image>,
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
    /// These bytes (the oldest before-image); the current ones are not.
    Image(&'a [u8]),
    /// Nothing: it is new to an uncommitted domain.
    Nothing,
}

impl Locked<'_> {
    /// What of the object is final now.
    pub fn committed(&self) -> Committed<'_> {
        match self.0.first() {
            None => Committed::Current,
            Some(Version {
                before: Some(image),
                ..
            }) => Committed::Image((**image).as_ref()),
            Some(Version { before: None, .. }) => Committed::Nothing,
        }
    }
}
