//! The kernel's references to inodes (FUSE lookup counts), and inodes whose
//! last link is gone while the kernel still holds them: freed at the last
//! forget, or at unmount.

use super::requirements::Need;
use super::{now, Ext2};
use crate::error::Result;
use rustc_hash::{FxHashMap, FxHashSet};

#[derive(Default)]
pub(super) struct Refs {
    /// (Inode numbers hash well enough for FxHash, which costs a fraction
    /// of SipHash on every entry reply and forget.)
    pub(super) lookups: FxHashMap<u32, u64>,
    pub(super) orphans: FxHashSet<u32>,
}

impl Ext2 {
    /// The kernel now holds one more reference to `ino` (an entry reply was
    /// sent). Called by the request layer after the request committed, so a
    /// rolled-back request leaves no reference behind.
    pub fn add_ref(&self, ino: u32) {
        *self.refs.lock().lookups.entry(ino).or_insert(0) += 1;
    }

    /// The kernel dropped `n` references; free the inode if it was unlinked.
    pub fn forget(&self, ino: u32, n: u64) {
        let release = {
            let mut r = self.refs.lock();
            let gone = match r.lookups.get_mut(&ino) {
                Some(c) if *c > n => {
                    *c -= n;
                    false
                }
                Some(_) => {
                    r.lookups.remove(&ino);
                    true
                }
                None => false,
            };
            gone && r.orphans.remove(&ino)
        };
        if release {
            let r = self.request("forget", Need::Release { ino }, || {
                let _g = self.locks.write_all(&[ino]);
                self.release_inode(ino)
            });
            if let Err(e) = r {
                // Nobody can be told, and nothing may leak: keep it as an
                // orphan, released at unmount.
                log::warn!("releasing unlinked inode {ino} failed ({e}); retried at unmount");
                self.refs.lock().orphans.insert(ino);
            }
        }
    }

    /// Does the kernel hold a reference to `ino` (so that losing its last
    /// link frees it only when the kernel forgets it)?
    pub(super) fn kernel_holds(&self, ino: u32) -> bool {
        self.refs.lock().lookups.contains_key(&ino)
    }

    /// `ino` lost its last link: free it now, or when the kernel forgets it.
    /// The caller holds its lock and has written the inode.
    pub(super) fn unlinked(&self, ino: u32) -> Result<()> {
        {
            let mut r = self.refs.lock();
            if r.lookups.contains_key(&ino) {
                r.orphans.insert(ino);
                let fs = self.arc();
                self.rt.log_undo(move || {
                    fs.refs.lock().orphans.remove(&ino);
                });
                return Ok(());
            }
        }
        self.release_inode(ino)
    }

    /// Free an inode with no links: its blocks, its xattr block, its bitmap bit.
    pub(crate) fn release_inode(&self, ino: u32) -> Result<()> {
        let mut i = self.read_inode(ino)?;
        if i.links() != 0 || i.mode() == 0 {
            return Ok(());
        }
        let is_dir = i.is_dir();
        self.truncate_blocks(&mut i, 0)?;
        self.xattr_release(&mut i)?;
        i.set_size(0);
        i.i_dtime.set(now());
        self.write_inode(ino, &i)?;
        self.free_inode_bit(ino, is_dir);
        Ok(())
    }
}
