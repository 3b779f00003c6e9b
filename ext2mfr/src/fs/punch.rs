//! fallocate(2) as the kernel's driver answers it on an ext2 image (the
//! ext4 driver of Linux 6.18 serving `-t ext2`, on block-mapped files):
//! hole punching (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`) only.
//!
//! Preallocation (mode 0, `KEEP_SIZE`) and `ZERO_RANGE` need unwritten
//! extents, which a block map cannot express: the kernel's driver answers
//! EOPNOTSUPP for them on these files, and so does this one. (Collapse,
//! insert and the rest never reach a FUSE daemon: the kernel's FUSE client
//! refuses them itself.)
//!
//! A punch, measured against the kernel's driver (`tests/fuse_fallocate.rs`):
//! - the range is clipped as `ext4_punch_hole` clips it: nothing to do from
//!   the end of the file on; a range past the end stops at the end of the
//!   page holding it; nothing at or past the last block a block map can
//!   reach;
//! - whole blocks in the range are freed, and so are the indirect blocks
//!   whose whole span lies in it; an indirect block the range only partly
//!   covers stays, even when left without pointers (`Emptied::Keep`);
//! - the partial blocks at either edge are zeroed in place, where allocated
//!   (a hole stays a hole);
//! - the size stays; mtime and ctime are the time of the call, also when
//!   there was nothing to punch (the kernel updates them on entry).

use super::bmap::Emptied;
use super::Ext2;
use crate::error::{FsError, Result};
use crate::format::inode::{max_file_size, FileKind, Inode, Timestamp};

/// The only mode served: punch a hole, keep the size. (The VFS refuses a
/// punch without KEEP_SIZE before any file system is asked.)
pub const PUNCH_HOLE_KEEP_SIZE: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;

/// The largest offset + length the VFS lets through to the kernel's driver
/// on these images (its `s_maxbytes`, `ext4_max_size` without huge_file,
/// which ext2mfr does not mount writable): `i_blocks` counts 2^32 - 1
/// sectors at most. FUSE's own limit is far larger, so the daemon says
/// EFBIG itself where the kernel's driver would.
fn kernel_max_bytes(block_size: u32) -> u64 {
    let bits = block_size.trailing_zeros();
    (((1u64 << 32) - 1) >> (bits - 9)) << bits
}

/// The kernel's page size: a punch past the end of the file stops at the
/// end of the page holding the last byte.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

impl Ext2 {
    /// fallocate(2) on inode `ino`: see the module's comment.
    /// Returns the part of the asked range, inside the file, that keeps its
    /// data although the call succeeds (ext4 never punches the last block a
    /// block map holds): the kernel's FUSE client zeroes the whole asked
    /// range in its page cache, so the transport must invalidate this part.
    pub fn fallocate(
        &self,
        ino: u32,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<Option<(u64, u64)>> {
        self.check_writable()?;
        if length == 0 {
            return Err(FsError::Invalid);
        }
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        // The VFS's checks, in its order, for a caller that is not the
        // kernel's FUSE client (which has made them already).
        match i.kind() {
            Some(FileKind::Regular) => {}
            Some(FileKind::Fifo) => return Err(FsError::IllegalSeek),
            Some(FileKind::Directory) => return Err(FsError::IsDir),
            _ => return Err(FsError::NoDevice),
        }
        match offset.checked_add(length) {
            Some(end) if end <= kernel_max_bytes(self.geo.block_size) => {}
            _ => return Err(FsError::TooBig),
        }
        if mode != PUNCH_HOLE_KEEP_SIZE {
            return Err(FsError::NotSupported);
        }
        let punched = self.punch_range(&i, offset, length);
        if let Some((start, end)) = punched {
            self.zero_edges(&i, start, end)?;
            let bs = self.geo.block_size as u64;
            self.free_range(&mut i, start.div_ceil(bs), end / bs, Emptied::Keep)?;
        }
        let t = Timestamp::now();
        i.set_mtime(t);
        i.set_ctime(t);
        self.write_inode(ino, &i)?;
        let asked_end = offset.saturating_add(length).min(i.size());
        let done_end = punched.map_or(offset, |(_, end)| end).max(offset);
        Ok((asked_end > done_end).then(|| (done_end, asked_end - done_end)))
    }

    /// The bytes a punch of `offset..offset + length` really touches, as
    /// `ext4_punch_hole` clips them, or `None` when it touches none. (AMA's
    /// estimate prices the same range.)
    pub(crate) fn punch_range(&self, i: &Inode, offset: u64, length: u64) -> Option<(u64, u64)> {
        let size = i.size();
        // The block map reaches one block less than the largest file.
        let max_end = max_file_size(self.geo.block_size) - self.geo.block_size as u64;
        if offset >= size || offset >= max_end {
            return None;
        }
        let mut end = offset.saturating_add(length);
        if end > size {
            end = size.next_multiple_of(page_size());
        }
        let end = end.min(max_end);
        // (Empty for a length of 0, which the call refuses, but which
        // AMA's estimate, made before that check, prices too.)
        (end > offset).then_some((offset, end))
    }

    /// Zero the parts of the range's first and last blocks that lie in it
    /// when the range does not cover them whole (as
    /// `ext4_zero_partial_blocks`); blocks in holes are left alone.
    fn zero_edges(&self, i: &Inode, start: u64, end: u64) -> Result<()> {
        let bs = self.geo.block_size as u64;
        let (head, tail) = (start / bs, (end - 1) / bs);
        if head == tail {
            if !start.is_multiple_of(bs) || !end.is_multiple_of(bs) {
                self.zero_in_block(i, head, start % bs, end - head * bs)?;
            }
            return Ok(());
        }
        if !start.is_multiple_of(bs) {
            self.zero_in_block(i, head, start % bs, bs)?;
        }
        if !end.is_multiple_of(bs) {
            self.zero_in_block(i, tail, 0, end % bs)?;
        }
        Ok(())
    }

    /// Zero bytes `from..to` of logical block `lblk`, if it is allocated.
    fn zero_in_block(&self, i: &Inode, lblk: u64, from: u64, to: u64) -> Result<()> {
        if let Some(b) = self.map(i, lblk)? {
            let buf = self.cache.get(b as u64)?;
            buf.write()[from as usize..to as usize].fill(0);
        }
        Ok(())
    }
}
