//! Sharing equal xattr blocks between inodes, as the kernel's ext2/ext4
//! drivers do with their mbcache: blocks this mount has read or written are
//! remembered by their hash (`h_hash`); an inode whose new attribute list
//! equals a remembered block's takes a reference to it (`h_refcount`)
//! instead of a block of its own. Best effort, as in the kernel: only
//! blocks in the block cache are candidates (looking costs no frame and
//! no I/O), and the memory is bounded.
//!
//! Safety against sharing a block that is not (or no longer) a live xattr
//! block: blocks are remembered only when the request that read or wrote
//! them commits (a rolled-back allocation is never remembered), and only
//! if no block was forgotten since it read them (the block may have been
//! freed meanwhile, and be a file's data by then); the last reference
//! writes the count 0 and forgets the block before it is freed; a
//! candidate is taken only under its write lock with a count of at least
//! one and the very bytes wanted.

use super::Ext2;
use crate::format::xattr;
use std::collections::HashMap;

/// The kernel's EXT4_XATTR_REFCOUNT_MAX: a block shared this often is not
/// shared further.
const REFCOUNT_MAX: u32 = 1024;
/// Blocks remembered per hash, and in all (then the memory starts over).
const PER_HASH: usize = 8;
const IN_ALL: usize = 4096;

/// Remembered xattr blocks by block hash.
#[derive(Default)]
pub struct SharedBlocks {
    by_hash: HashMap<u32, Vec<u32>>,
    count: usize,
    /// Blocks forgotten so far: a note made at a commit is dropped if
    /// this moved since its request read the block.
    forgets: u64,
}

impl SharedBlocks {
    fn note(&mut self, hash: u32, blk: u32) {
        let list = self.by_hash.entry(hash).or_default();
        if list.contains(&blk) {
            return;
        }
        if list.len() >= PER_HASH {
            list.remove(0);
            self.count -= 1;
        }
        list.push(blk);
        self.count += 1;
        if self.count > IN_ALL {
            self.by_hash.clear();
            self.count = 0;
        }
    }

    fn forget(&mut self, blk: u32) {
        self.forgets += 1;
        for list in self.by_hash.values_mut() {
            if let Some(k) = list.iter().position(|&b| b == blk) {
                list.remove(k);
                self.count -= 1;
                return;
            }
        }
    }

    fn candidates(&self, hash: u32) -> Vec<u32> {
        self.by_hash.get(&hash).cloned().unwrap_or_default()
    }

    fn knows(&self, hash: u32, blk: u32) -> bool {
        self.by_hash.get(&hash).is_some_and(|l| l.contains(&blk))
    }
}

impl Ext2 {
    /// Remember xattr block `blk` (contents `d`, just read or written)
    /// once this request commits, unless a block is forgotten before that:
    /// its last reference may have gone meanwhile (dropped by concurrent
    /// requests that commit first), and a freed block remembered could be
    /// a file's data by the time a setxattr takes a reference to it.
    /// (A note so dropped costs at most a block not shared: sharing is
    /// best effort.)
    pub(super) fn xattr_share_note(&self, blk: u32, d: &[u8]) {
        let hash = xattr::block_hash_of(d);
        if hash == 0 {
            return;
        }
        let since = {
            let shared = self.xattr_shared.lock();
            if shared.knows(hash, blk) {
                return;
            }
            shared.forgets
        };
        let fs = self.arc();
        self.rt.defer(move || {
            let mut shared = fs.xattr_shared.lock();
            if shared.forgets == since {
                shared.note(hash, blk);
            }
        });
    }

    /// Forget block `blk` (its last reference is going).
    pub(super) fn xattr_share_forget(&self, blk: u32) {
        self.xattr_shared.lock().forget(blk);
    }

    /// A remembered block (other than `old`) whose bytes are `data` but
    /// for the reference count, with a reference taken for the caller.
    pub(super) fn xattr_share_take(&self, data: &[u8], old: Option<u32>) -> Option<u32> {
        let hash = xattr::block_hash_of(data);
        if hash == 0 {
            return None;
        }
        let candidates = self.xattr_shared.lock().candidates(hash);
        for blk in candidates.into_iter().filter(|&b| Some(b) != old) {
            let Some(buf) = self.cache.peek(blk as u64) else {
                continue;
            };
            if !xattr::same_block_but_refcount(&buf.read(), data, REFCOUNT_MAX) {
                continue;
            }
            // Again under the write lock: a concurrent last reference may
            // have dropped it meanwhile.
            let mut d = buf.write();
            if !xattr::same_block_but_refcount(&d, data, REFCOUNT_MAX) {
                continue;
            }
            let refs = xattr::block_refcount(&d).expect("checked");
            xattr::set_block_refcount(&mut d, refs + 1);
            return Some(blk);
        }
        None
    }
}
