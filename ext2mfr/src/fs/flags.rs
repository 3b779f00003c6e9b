//! Inode flags (`lsattr`/`chattr`, FS_IOC_GETFLAGS/FS_IOC_SETFLAGS), with
//! the rules of the kernel's driver serving `-t ext2` (fs/ext4/ioctl.c:
//! ext4_fileattr_get/set), and what the flags forbid.
//!
//! The kernel's own driver marks an inode S_IMMUTABLE or S_APPEND and the
//! VFS refuses what they forbid. A FUSE inode carries no such marks, so
//! the daemon refuses it itself, here, with the VFS's errno (EPERM). The
//! VFS still checks, before a request reaches us, that the caller owns the
//! file (or has CAP_FOWNER) and has CAP_LINUX_IMMUTABLE to change
//! immutable or append-only (vfs_fileattr_set); the same checks here, with
//! root standing for the capabilities, only guard against other callers.
//!
//! - immutable: no write, no truncate, no attribute change of any kind, no
//!   unlink, rename or link of it, no xattr change; an immutable directory
//!   takes no new entries and loses none.
//! - append-only: writes only through a descriptor opened with O_APPEND,
//!   no truncate, no chmod, chown or explicit times, no unlink or rename
//!   of it; an append-only directory takes new entries but loses none.
//! - noatime: reads leave atime alone (`file.rs`).
//! - sync (dirsync for directory changes): the change is on the image when
//!   the call returns (`request.rs` writes back after the request).
//! - nodump and the rest: stored and shown only.

use super::attr::{Ctx, SetAttr};
use super::Ext2;
use crate::error::{FsError, Result};
use crate::format::inode::{
    mask_flags, Inode, Timestamp, APPEND_FL, CASEFOLD_FL, DAX_FL, DIRSYNC_FL, ENCRYPT_FL,
    EXTENTS_FL, FL_INHERITED, FL_USER_MODIFIABLE, FL_USER_VISIBLE, IMMUTABLE_FL, INLINE_DATA_FL,
    JOURNAL_DATA_FL, PROJINHERIT_FL, SYNC_FL, VERITY_FL,
};

/// Flags that may not be set together with DAX (EXT4_DAX_MUT_EXCL).
const DAX_MUT_EXCL: u32 = VERITY_FL | ENCRYPT_FL | JOURNAL_DATA_FL | INLINE_DATA_FL;

/// The flags that FS_IOC_FSGETXATTR/FSSETXATTR carry too, as `xflags`
/// (the kernel's FS_COMMON_FL), each with its FS_XFLAG_* bit (as
/// fileattr_fill_flags and fileattr_fill_xflags translate them).
const XFLAGS: [(u32, u32); 8] = [
    (SYNC_FL, 0x0000_0020),
    (IMMUTABLE_FL, 0x0000_0008),
    (APPEND_FL, 0x0000_0010),
    (crate::format::inode::NODUMP_FL, 0x0000_0080),
    (crate::format::inode::NOATIME_FL, 0x0000_0040),
    (DAX_FL, 0x0000_8000),
    (PROJINHERIT_FL, 0x0000_0200),
    // (Read-only: shown, never set.)
    (VERITY_FL, 0x0002_0000),
];
const COMMON_FL: u32 = SYNC_FL
    | IMMUTABLE_FL
    | APPEND_FL
    | crate::format::inode::NODUMP_FL
    | crate::format::inode::NOATIME_FL
    | DAX_FL
    | PROJINHERIT_FL;

/// An inode's flags as FS_IOC_FSGETXATTR's `fsx_xflags`.
pub fn to_xflags(flags: u32) -> u32 {
    XFLAGS
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .fold(0, |x, (_, xf)| x | xf)
}

fn from_xflags(xflags: u32) -> u32 {
    XFLAGS
        .iter()
        .filter(|(_, xf)| xflags & xf != 0)
        .fold(0, |f, (fl, _)| f | fl)
}

fn flags(i: &Inode) -> u32 {
    i.i_flags.get()
}

/// Immutable: nothing about the inode may change.
pub(super) fn refuse_if_immutable(i: &Inode) -> Result<()> {
    if flags(i) & IMMUTABLE_FL != 0 {
        return Err(FsError::Perm);
    }
    Ok(())
}

/// Immutable or append-only: the inode's names may not go, nor may its
/// extended attributes change (may_delete, xattr_permission).
pub(super) fn refuse_if_pinned(i: &Inode) -> Result<()> {
    if flags(i) & (IMMUTABLE_FL | APPEND_FL) != 0 {
        return Err(FsError::Perm);
    }
    Ok(())
}

/// A write: none to an immutable file, and to an append-only one only
/// through a descriptor opened with O_APPEND.
pub(super) fn check_write(i: &Inode, append: bool) -> Result<()> {
    refuse_if_immutable(i)?;
    if flags(i) & APPEND_FL != 0 && !append {
        return Err(FsError::Perm);
    }
    Ok(())
}

/// A setattr: none at all on an immutable inode (ext4_setattr, also a
/// touch to the current time); on an append-only one no mode, owner, size
/// or explicitly given times (notify_change, do_truncate).
pub(super) fn check_setattr(i: &Inode, s: &SetAttr) -> Result<()> {
    refuse_if_immutable(i)?;
    if flags(i) & APPEND_FL != 0
        && (s.mode.is_some()
            || s.uid.is_some()
            || s.gid.is_some()
            || s.size.is_some()
            || s.times_given)
    {
        return Err(FsError::Perm);
    }
    Ok(())
}

/// A new entry in directory `dir` (create, link, rename into it).
pub(super) fn check_dir_add(dir: &Inode) -> Result<()> {
    refuse_if_immutable(dir)
}

/// An entry of `dir` goes (unlink, rmdir, rename from it, a replaced
/// rename target): not from an immutable or append-only directory.
pub(super) fn check_dir_remove(dir: &Inode) -> Result<()> {
    refuse_if_pinned(dir)
}

/// Does a change to `i` have to be on the image before the call returns?
/// A file with the sync flag; a directory with sync or dirsync.
pub(super) fn wants_sync(i: &Inode) -> bool {
    let f = flags(i);
    f & SYNC_FL != 0 || (i.is_dir() && f & DIRSYNC_FL != 0)
}

/// Does a read leave atime alone (noatime)?
pub(super) fn no_atime(i: &Inode) -> bool {
    flags(i) & crate::format::inode::NOATIME_FL != 0
}

/// The flags a new inode of `mode` takes from its directory.
pub(super) fn inherited(dir: &Inode, mode: u16) -> u32 {
    mask_flags(mode, flags(dir) & FL_INHERITED)
}

/// What FS_IOC_GETFLAGS shows of an inode's flags.
fn visible(i: &Inode) -> u32 {
    let v = flags(i) & FL_USER_VISIBLE;
    if i.is_reg() {
        v & !PROJINHERIT_FL
    } else {
        v
    }
}

impl Ext2 {
    /// FS_IOC_GETFLAGS.
    pub fn get_flags(&self, ino: u32) -> Result<u32> {
        let _g = self.locks.read(ino);
        Ok(visible(&self.live_inode(ino)?))
    }

    /// FS_IOC_SETFLAGS, in the order of the kernel's checks. Visible
    /// flags that may not be changed are ignored (chattr sets what
    /// GETFLAGS showed plus its change); unknown flags and flags that do
    /// not fit the file's type are EOPNOTSUPP. Setting the extents flag
    /// (no extents on ext2) stores the other flags and then fails with
    /// EINVAL, as the kernel's driver does: `Ok(Some(error))`, a change
    /// that stays although the call fails.
    pub fn set_flags(&self, ctx: &Ctx, ino: u32, new: u32) -> Result<Option<FsError>> {
        self.check_writable()?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        let old = flags(&i);
        // The VFS's own checks (the kernel makes them before asking us).
        if !ctx.privileged()
            && (ctx.uid != i.uid() || (new ^ visible(&i)) & (IMMUTABLE_FL | APPEND_FL) != 0)
        {
            return Err(FsError::Perm);
        }
        if new & !FL_USER_VISIBLE != 0 {
            return Err(FsError::NotSupported);
        }
        let new = new & FL_USER_MODIFIABLE;
        if mask_flags(i.mode(), new) != new {
            return Err(FsError::NotSupported);
        }
        // Immutable and staying so: nothing else may change either.
        if old & IMMUTABLE_FL != 0
            && new & IMMUTABLE_FL != 0
            && old & !IMMUTABLE_FL != new & !IMMUTABLE_FL
        {
            return Err(FsError::Perm);
        }
        // (CAP_SYS_RESOURCE in the kernel; root stands for it.)
        if (new ^ old) & JOURNAL_DATA_FL != 0 && !ctx.privileged() {
            return Err(FsError::Perm);
        }
        if (new & DAX_FL != 0 && old & DAX_MUT_EXCL != 0)
            || (new & DAX_MUT_EXCL != 0 && old & DAX_FL != 0)
        {
            return Err(FsError::NotSupported);
        }
        // No casefold feature on ext2.
        if (new ^ old) & CASEFOLD_FL != 0 {
            return Err(FsError::NotSupported);
        }
        // Data journalling (no journal here) and extents are not flags
        // the driver stores this way; the rest it takes as given.
        let settable = FL_USER_MODIFIABLE & !(JOURNAL_DATA_FL | EXTENTS_FL);
        i.i_flags.set((old & !settable) | (new & settable));
        i.set_ctime(Timestamp::now());
        self.write_inode(ino, &i)?;
        // Switching to extents (or back) needs the extents feature.
        if (new ^ old) & EXTENTS_FL != 0 {
            return Ok(Some(FsError::Invalid));
        }
        Ok(None)
    }

    /// FS_IOC_FSSETXATTR: the flags `xflags` name replace those of the
    /// FS_COMMON_FL kind, the others stay; then as FS_IOC_SETFLAGS. A
    /// project id other than 0 needs the project feature, which ext2 has
    /// not: EOPNOTSUPP after the flags are stored, as the kernel's
    /// driver (ext4_fileattr_set sets the flags, then the project).
    pub fn set_fsxattr(
        &self,
        ctx: &Ctx,
        ino: u32,
        xflags: u32,
        projid: u32,
    ) -> Result<Option<FsError>> {
        let old = {
            let _g = self.locks.read(ino);
            visible(&self.live_inode(ino)?)
        };
        let refused = self.set_flags(ctx, ino, (old & !COMMON_FL) | from_xflags(xflags))?;
        if refused.is_none() && projid != 0 {
            return Ok(Some(FsError::NotSupported));
        }
        Ok(refused)
    }

    /// An extended attribute of `ino` is about to change.
    pub(crate) fn check_xattr_change(&self, ino: u32) -> Result<()> {
        let _g = self.locks.read(ino);
        refuse_if_pinned(&self.live_inode(ino)?)
    }

    /// Must what just changed `ino` be written back before the reply?
    pub(crate) fn sync_wanted(&self, ino: u32) -> bool {
        self.read_inode(ino).is_ok_and(|i| wants_sync(&i))
    }
}
