//! POSIX ACLs as the kernel's ext2/ext4 keep them (fs/posix_acl.c and
//! ext4's acl.c): an access ACL sets the mode it stands for and is not
//! stored when the mode says all of it; a new inode inherits its
//! directory's default ACL, masked by the mode it was created with (the
//! umask then does not apply); chmod carries the new mode into the ACL.
//! The kernel checks permissions against them itself (FUSE_POSIX_ACL with
//! default permissions); here they are stored and kept in step.

use super::attr::Ctx;
use super::xattr::XATTR_REPLACE;
use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::acl::Acl;
use crate::format::inode::{Inode, S_ISGID};
use crate::format::xattr::{INDEX_POSIX_ACL_ACCESS as ACCESS, INDEX_POSIX_ACL_DEFAULT as DEFAULT};

impl Ext2 {
    /// A stored ACL in the xattr form the kernel reads.
    pub(super) fn acl_to_xattr(ino: u32, disk: &[u8]) -> Result<Vec<u8>> {
        Acl::from_disk(disk)
            .map(|a| a.to_xattr())
            .ok_or_else(|| corrupt(format!("inode {ino}: malformed ACL")))
    }

    /// setxattr / removexattr of `system.posix_acl_access` or `_default`
    /// (`value` in the xattr form; `None` removes). Flags are ignored, as
    /// the kernel's set_acl ignores them. Returns whether the inode changed.
    pub(super) fn set_acl(
        &self,
        ctx: &Ctx,
        ino: u32,
        i: &mut Inode,
        index: u8,
        value: Option<&[u8]>,
        _flags: u32,
    ) -> Result<bool> {
        let acl = match value {
            Some(v) => {
                let a = Acl::from_xattr(v).ok_or(FsError::Invalid)?;
                if !a.is_valid() {
                    return Err(FsError::Invalid);
                }
                Some(a)
            }
            None => None,
        };
        if index == DEFAULT {
            if !i.is_dir() {
                // vfs_set_acl: only directories have a default ACL.
                return if acl.is_some() {
                    Err(FsError::Access)
                } else {
                    Ok(false)
                };
            }
            let disk = acl.map(|a| a.to_disk());
            return self.store_acl(ctx, ino, i, DEFAULT, disk.as_deref());
        }
        let Some(acl) = acl else {
            return self.store_acl(ctx, ino, i, ACCESS, None);
        };
        // posix_acl_update_mode: the mode follows the ACL; an ACL the mode
        // says all of is not kept; set-group-ID goes for a caller outside
        // the file's group, by its primary and supplementary groups.
        let (perm, equiv) = acl.equiv_mode();
        let mut mode = (i.mode() & !0o777) | perm;
        if !ctx.privileged() && !ctx.in_group(i.gid()) {
            mode &= !S_ISGID;
        }
        let mode_changed = mode != i.mode();
        i.i_mode.set(mode);
        let disk = (!equiv).then(|| acl.to_disk());
        let stored = self.store_acl(ctx, ino, i, ACCESS, disk.as_deref())?;
        Ok(mode_changed || stored)
    }

    /// Store (or with `None` remove, absent or not) one ACL entry.
    fn store_acl(
        &self,
        ctx: &Ctx,
        ino: u32,
        i: &mut Inode,
        index: u8,
        disk: Option<&[u8]>,
    ) -> Result<bool> {
        match self.xattr_set(ctx, ino, i, index, b"", disk, 0) {
            Err(FsError::NoData) => Ok(false),
            r => r,
        }
    }

    /// The ACL of a new inode from its directory's default ACL, if the
    /// directory has one: returns the permission bits to create it with
    /// (`mode` masked by the ACL, the umask not applied) and the access and
    /// default ACLs to store once it exists. Without a default ACL: the
    /// mode with the umask applied, nothing to store.
    pub(super) fn inherit_acl(
        &self,
        parent: u32,
        dir: &Inode,
        mode: u16,
        umask: u16,
        is_dir: bool,
    ) -> Result<(u16, Inherited)> {
        let none = Inherited::default();
        let Some(default) = self.xattr_value(parent, dir, DEFAULT, b"")? else {
            return Ok((mode & !umask, none));
        };
        let mut acl = Acl::from_disk(&default)
            .ok_or_else(|| corrupt(format!("inode {parent}: malformed default ACL")))?;
        let Some((masked, not_equiv)) = acl.create_masq(mode) else {
            return Err(corrupt(format!(
                "inode {parent}: default ACL without a group entry"
            )));
        };
        Ok((
            masked,
            Inherited {
                access: not_equiv.then(|| acl.to_disk()),
                default: is_dir.then_some(default),
            },
        ))
    }

    /// Store what a new inode inherited (it is written, not yet linked).
    pub(super) fn store_inherited(
        &self,
        ctx: &Ctx,
        ino: u32,
        i: &mut Inode,
        acls: &Inherited,
    ) -> Result<()> {
        // The default ACL first, as ext4_init_acl stores them: the order
        // is listxattr's, and which of the two still fits in the inode.
        for (index, v) in [(DEFAULT, &acls.default), (ACCESS, &acls.access)] {
            if let Some(v) = v {
                self.xattr_set(ctx, ino, i, index, b"", Some(v), 0)?;
            }
        }
        Ok(())
    }

    /// chmod: the access ACL, if any, takes the new mode (posix_acl_chmod).
    pub(super) fn acl_chmod(&self, ctx: &Ctx, ino: u32, i: &mut Inode) -> Result<()> {
        let Some(disk) = self.xattr_value(ino, i, ACCESS, b"")? else {
            return Ok(());
        };
        let mut acl =
            Acl::from_disk(&disk).ok_or_else(|| corrupt(format!("inode {ino}: malformed ACL")))?;
        if !acl.chmod(i.mode()) {
            return Err(corrupt(format!("inode {ino}: ACL without a group entry")));
        }
        self.xattr_set(
            ctx,
            ino,
            i,
            ACCESS,
            b"",
            Some(&acl.to_disk()),
            XATTR_REPLACE,
        )?;
        Ok(())
    }
}

/// ACLs a new inode takes from its directory, in ext2's on-disk form.
#[derive(Default)]
pub(super) struct Inherited {
    pub access: Option<Vec<u8>>,
    pub default: Option<Vec<u8>>,
}

impl Inherited {
    pub fn is_empty(&self) -> bool {
        self.access.is_none() && self.default.is_none()
    }
}
