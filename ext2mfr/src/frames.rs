//! The page allocator block-cache frames come from. Allocation can fail: a
//! failure is `Err(FsError::NoMem)`, never a panic. The capacity is the mount
//! option `cache=` (frames); AMA's pool and the fault injector plug in here.

use crate::error::{FsError, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct FrameAllocator {
    frame_size: usize,
    limit: usize,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

/// One block-sized frame; returned to the allocator's count on drop via
/// [`FrameAllocator::release`].
pub type Frame = Box<[u8]>;

impl FrameAllocator {
    pub fn new(frame_size: usize, limit: usize) -> FrameAllocator {
        FrameAllocator {
            frame_size,
            limit,
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// A zeroed frame, or `NoMem` when the limit is reached or the fault
    /// injector fails this allocation (inside requests only).
    pub fn alloc(&self) -> Result<Frame> {
        if let Some(inj) = faultinject::global() {
            if crate::fs::gate::in_request() && inj.alloc_fails("block frame") {
                return Err(FsError::NoMem);
            }
        }
        let mut cur = self.in_use.load(Ordering::Relaxed);
        loop {
            if cur >= self.limit {
                return Err(FsError::NoMem);
            }
            match self.in_use.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        self.peak.fetch_max(cur + 1, Ordering::Relaxed);
        Ok(vec![0u8; self.frame_size].into_boxed_slice())
    }

    pub fn release(&self, _frame: Frame) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}
