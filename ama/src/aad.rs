//! Anticipatory allocation descriptions: what one request may allocate.

/// Object kinds a client declares per pool (at most this many).
pub const MAX_OBJECT_KINDS: usize = 4;

/// A kind of per-request object: its name (for reports) and its size in
/// bytes (for space accounting).
#[derive(Clone, Copy, Debug)]
pub struct ObjectKind {
    pub name: &'static str,
    pub size: usize,
}

/// The worst-case allocations of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aad {
    /// Pages, scratch page included.
    pub pages: u32,
    /// Objects by the pool's kind index.
    pub objects: [u32; MAX_OBJECT_KINDS],
    /// One of `pages` is kept apart as a scratch page for recycling scans.
    pub scratch: bool,
}

impl Aad {
    pub fn pages(n: u32) -> Aad {
        Aad {
            pages: n,
            ..Aad::default()
        }
    }

    /// Add `n` objects of kind `kind`.
    pub fn with_objects(mut self, kind: usize, n: u32) -> Aad {
        self.objects[kind] += n;
        self
    }

    /// Reserve a scratch page (counted in `pages`).
    pub fn with_scratch(mut self) -> Aad {
        if !self.scratch {
            self.scratch = true;
            self.pages += 1;
        }
        self
    }

    pub fn add(mut self, o: Aad) -> Aad {
        self.pages += o.pages;
        for (a, b) in self.objects.iter_mut().zip(o.objects) {
            *a += b;
        }
        if o.scratch && self.scratch {
            self.pages -= 1;
        }
        self.scratch |= o.scratch;
        self
    }
}
