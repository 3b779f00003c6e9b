//! Inodes: reading and writing them in the inode tables (through the block
//! cache), and their attributes (getattr, setattr, access).

use super::attr::{Attr, Ctx, SetAttr};
use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::inode::{
    FileKind, Inode, Timestamp, INODE_KNOWN_SIZE, S_IFMT, S_ISGID, S_ISUID, S_IXGRP,
    WANT_EXTRA_ISIZE,
};

/// Inode-table blocks read ahead at once (see [`read_ahead_window`]); a
/// power of two.
const INODE_READ_AHEAD: u64 = 32;

/// The blocks of an inode table (`table`) that a miss on its block `blk`
/// reads ahead, as the kernel's driver does (`inode_readahead_blks`, 32 by
/// default): `INODE_READ_AHEAD` blocks from `blk` rounded down to a
/// multiple of that, or from the table's start if later, cut to the table.
/// Inodes made together lie together, so a cold `ls -l` or `find` costs
/// one read per window rather than one per block.
fn read_ahead_window(table: std::ops::Range<u64>, blk: u64) -> std::ops::Range<u64> {
    let start = (blk & !(INODE_READ_AHEAD - 1)).max(table.start);
    start..(start + INODE_READ_AHEAD).min(table.end).max(blk + 1)
}

impl Ext2 {
    /// Block and byte offset of inode `ino`.
    pub(crate) fn inode_pos(&self, ino: u32) -> Result<(u64, usize)> {
        if ino == 0 || ino > self.geo.inodes_count {
            return Err(corrupt(format!("inode number {ino} out of range")));
        }
        let g = (ino - 1) / self.geo.inodes_per_group;
        let byte = ((ino - 1) % self.geo.inodes_per_group) as u64 * self.geo.inode_size as u64;
        let bs = self.geo.block_size as u64;
        Ok((
            self.geo.inode_table[g as usize] as u64 + byte / bs,
            (byte % bs) as usize,
        ))
    }

    /// The blocks a miss on block `blk` of inode `ino`'s table reads ahead
    /// (see [`read_ahead_window`]).
    pub(crate) fn inode_window(&self, ino: u32, blk: u64) -> std::ops::Range<u64> {
        let g = ((ino.max(1) - 1) / self.geo.inodes_per_group) as usize;
        let bytes = self.geo.inodes_per_group as u64 * self.geo.inode_size as u64;
        let table = self.geo.inode_table[g] as u64;
        read_ahead_window(
            table..table + bytes.div_ceil(self.geo.block_size as u64),
            blk,
        )
    }

    /// The cached block holding inode `ino`, and the inode's offset in it.
    pub(crate) fn inode_buf(&self, ino: u32) -> Result<(crate::cache::BufRef, usize)> {
        let (blk, off) = self.inode_pos(ino)?;
        let ahead = || self.inode_window(ino, blk);
        Ok((self.cache.get_ahead(blk, &ahead)?, off))
    }

    pub fn read_inode(&self, ino: u32) -> Result<Inode> {
        let (b, off) = self.inode_buf(ino)?;
        let d = b.read();
        Ok(Inode::from_slot(
            &d[off..off + self.geo.inode_size as usize],
        ))
    }

    /// The whole on-disk slot of inode `ino` (`inode_size` bytes, so with the
    /// extra space of large inodes, where in-inode xattrs live).
    pub(crate) fn read_inode_slot(&self, ino: u32) -> Result<Vec<u8>> {
        let (b, off) = self.inode_buf(ino)?;
        let d = b.read();
        Ok(d[off..off + self.geo.inode_size as usize].to_vec())
    }

    /// Write the inode: its core and the extra fields it has; in-inode
    /// attributes after them stay as they are.
    pub(crate) fn write_inode(&self, ino: u32, inode: &Inode) -> Result<()> {
        let (b, off) = self.inode_buf(ino)?;
        let slot = off..off + self.geo.inode_size as usize;
        inode.to_slot(&mut b.write_range(slot.clone())[slot]);
        Ok(())
    }

    /// A new in-memory inode: with every extra field (times in
    /// nanoseconds, past 2038, creation time) where the inodes are large
    /// enough, as the kernel's driver makes one (`s_want_extra_isize`).
    pub(crate) fn blank_inode(&self) -> Inode {
        let mut i = Inode::default();
        if self.geo.inode_size as usize >= INODE_KNOWN_SIZE {
            i.i_extra_isize.set(WANT_EXTRA_ISIZE);
        }
        i
    }

    /// Write a freshly allocated inode: the whole on-disk slot is zeroed
    /// first, so no stale extra fields from a previous owner survive.
    pub(crate) fn write_new_inode(&self, ino: u32, inode: &Inode) -> Result<()> {
        let (b, off) = self.inode_buf(ino)?;
        let slot = off..off + self.geo.inode_size as usize;
        let mut d = b.write_range(slot.clone());
        let slot = &mut d[slot];
        slot.fill(0);
        inode.to_slot(slot);
        Ok(())
    }
}

/// Why set-user-ID and set-group-ID may go (the kernel's VFS kills them at
/// these, for its own ext2; with FUSE_HANDLE_KILLPRIV_V2 its FUSE client
/// leaves every kill to the daemon).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kill {
    /// A write, truncate, fallocate or copy_file_range by a caller without
    /// CAP_FSETID (the kernel's FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID,
    /// or the empty setattr before the last two).
    Modify,
    /// A change of owner (chown(2), also with -1 for both): for any
    /// caller, of anything but a directory.
    Chown,
}

/// Kill set-user-ID and set-group-ID of `i` as the kernel's VFS decides
/// it (setattr_should_drop_suidgid, ATTR_KILL_SUID and
/// setattr_should_drop_sgid): set-user-ID goes; set-group-ID goes with
/// group-execute, and without it (no set-group-ID program) only for a
/// caller outside the file's group, by its primary or a supplementary
/// group, without CAP_FSETID (root stands for the capability, as in
/// [`Ctx::privileged`]). Judged on the file as it was. Whether anything
/// went.
pub(super) fn kill_suidgid(i: &mut Inode, ctx: &Ctx, why: Kill) -> bool {
    let m = i.mode();
    if why == Kill::Chown && i.is_dir() {
        return false;
    }
    let mut kill = m & S_ISUID;
    if m & S_ISGID != 0 && (m & S_IXGRP != 0 || (!ctx.privileged() && !ctx.in_group(i.gid()))) {
        kill |= S_ISGID;
    }
    i.i_mode.set(m & !kill);
    kill != 0
}

/// What a setattr kills (see [`kill_suidgid`]). FUSE sends a change of
/// owner with the new owner, a truncate with the size (a caller without
/// CAP_FSETID: root stands for it), and a setattr with nothing in it for
/// chown(f, -1, -1) and for the kernel's kill before a write, a fallocate
/// or a copy_file_range (its file_remove_privs: the kernel takes the mode
/// it caches from the reply, so the kill happens here, not only in the
/// write after it) or before one that removes a capability: the system
/// call the caller is in tells them apart. A kill by chown is a
/// change of mode, which only the owner may make (the kernel's ext2
/// answers EPERM; FUSE's own check never sees the mode).
fn setattr_kills(i: &mut Inode, ctx: &Ctx, s: &SetAttr) -> Result<()> {
    if s.uid.is_some() || s.gid.is_some() {
        kill_suidgid(i, ctx, Kill::Chown);
    } else if s.is_empty() && !i.is_dir() {
        const CHOWN: [i64; 4] = [
            libc::SYS_chown,
            libc::SYS_lchown,
            libc::SYS_fchown,
            libc::SYS_fchownat,
        ];
        // The kernel's file_remove_privs before a change of data: its
        // reply must carry the killed bits, as the kernel caches the mode
        // from it (a write kills again by its own flag, finding nothing).
        const MODIFY: [i64; 7] = [
            libc::SYS_write,
            libc::SYS_pwrite64,
            libc::SYS_writev,
            libc::SYS_pwritev,
            libc::SYS_pwritev2,
            libc::SYS_fallocate,
            libc::SYS_copy_file_range,
        ];
        match ctx.syscall() {
            Some(nr) if CHOWN.contains(&nr) => {
                let before = i.mode();
                if kill_suidgid(i, ctx, Kill::Chown) && !ctx.privileged() && ctx.uid != i.uid() {
                    i.i_mode.set(before);
                    return Err(FsError::Perm);
                }
            }
            Some(nr) if MODIFY.contains(&nr) && i.is_reg() && !ctx.privileged() => {
                kill_suidgid(i, ctx, Kill::Modify);
            }
            _ => {}
        }
    }
    if s.size.is_some() && i.is_reg() && !ctx.privileged() {
        kill_suidgid(i, ctx, Kill::Modify);
    }
    Ok(())
}

// ---- an inode's attributes ----

impl Ext2 {
    /// Read an inode that the kernel refers to: it must be in use.
    pub(super) fn live_inode(&self, ino: u32) -> Result<Inode> {
        let i = self.read_inode(ino)?;
        if i.mode() == 0 || (i.links() == 0 && !self.refs.lock().orphans.contains(&ino)) {
            return Err(FsError::NotFound);
        }
        Ok(i)
    }

    pub(super) fn dir_inode(&self, ino: u32) -> Result<Inode> {
        let i = self.live_inode(ino)?;
        if !i.is_dir() {
            return Err(FsError::NotDir);
        }
        Ok(i)
    }

    pub fn getattr(&self, ino: u32) -> Result<Attr> {
        let _g = self.locks.read(ino);
        Ok(Attr::from_inode(ino, &self.live_inode(ino)?))
    }

    pub fn setattr(&self, ctx: &Ctx, ino: u32, s: &SetAttr) -> Result<Attr> {
        self.check_writable()?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        super::flags::check_setattr(&i, s)?;
        let t = Timestamp::now();
        if let Some(mode) = s.mode {
            let m = (i.mode() & S_IFMT) | (mode as u16 & 0o7777);
            i.i_mode.set(m);
            self.acl_chmod(ctx, ino, &mut i)?;
        }
        // (A capability the kernel removes itself, by a removexattr before
        // a write, truncate or change of owner, as for its own ext2.)
        setattr_kills(&mut i, ctx, s)?;
        if let Some(uid) = s.uid {
            i.set_uid(uid);
        }
        if let Some(gid) = s.gid {
            i.set_gid(gid);
        }
        if let Some(size) = s.size {
            if i.is_dir() {
                return Err(FsError::IsDir);
            }
            if !i.is_reg() {
                return Err(FsError::Invalid);
            }
            self.set_size(&mut i, size)?;
            i.set_mtime(t);
        }
        if let Some(a) = s.atime {
            i.set_atime(a);
        }
        if let Some(m) = s.mtime {
            i.set_mtime(m);
        }
        i.set_ctime(s.ctime.unwrap_or(t));
        self.write_inode(ino, &i)?;
        Ok(Attr::from_inode(ino, &i))
    }

    /// Check `mask` (R=4, W=2, X=1) against the mode bits for the caller.
    pub fn access(&self, ctx: &Ctx, ino: u32, mask: u32) -> Result<()> {
        let i = self.getattr(ino)?;
        if mask & 2 != 0 && self.read_only() {
            return Err(FsError::ReadOnly);
        }
        if ctx.uid == 0 {
            // Root may do anything but execute a file no one can execute.
            if mask & 1 != 0 && i.kind != FileKind::Directory && i.perm & 0o111 == 0 {
                return Err(FsError::Access);
            }
            return Ok(());
        }
        let bits = if ctx.uid == i.uid {
            (i.perm >> 6) & 7
        } else if ctx.gid == i.gid {
            (i.perm >> 3) & 7
        } else {
            i.perm & 7
        } as u32;
        if mask & !bits != 0 {
            return Err(FsError::Access);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::read_ahead_window;

    #[test]
    fn read_ahead_windows_are_aligned_and_stay_in_the_table() {
        // A table of 100 blocks from block 40: windows from multiples of
        // 32, or from the table's start.
        assert_eq!(read_ahead_window(40..140, 70), 64..96);
        assert_eq!(read_ahead_window(40..140, 40), 40..72);
        assert_eq!(read_ahead_window(40..140, 63), 40..72);
        assert_eq!(read_ahead_window(40..140, 139), 128..140);
        // A table of one block.
        assert_eq!(read_ahead_window(7..8, 7), 7..8);
    }
}
