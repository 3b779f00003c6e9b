//! The request layer: every operation a transport can ask of the file
//! system, as a value (op and arguments) that knows its name and its AMA
//! [`Need`]; [`Ext2::serve`] runs it through the gate. A transport (the
//! fuser adapter in `fuse.rs`, or another) only translates its messages
//! into requests and replies into messages: no operation is written twice.
//!
//! Inode numbers here are ext2's (the root is 2); mapping FUSE's root (1)
//! is the transport's business.

use crate::error::{FsError, Result};
use crate::format::dirent;
use crate::format::inode::{FileKind, FAST_SYMLINK_MAX};
use crate::fs::attr::{Attr, Ctx, SetAttr, Statfs};
use crate::fs::punch::PUNCH_HOLE_KEEP_SIZE;
use crate::fs::requirements::Need;
use crate::fs::Ext2;

/// Entries a readdir answers at most (the transport's reply buffer takes
/// what fits and asks again from the last cookie).
pub const READDIR_BATCH: usize = 256;

/// One request, in ext2 inode numbers. A create's `umask` is applied by
/// the file system (a directory's default ACL takes its place).
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    Lookup {
        parent: u32,
        name: &'a [u8],
    },
    Getattr {
        ino: u32,
    },
    Setattr {
        ino: u32,
        set: SetAttr,
    },
    Readlink {
        ino: u32,
    },
    Mknod {
        parent: u32,
        name: &'a [u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    },
    Mkdir {
        parent: u32,
        name: &'a [u8],
        mode: u32,
        umask: u32,
    },
    Symlink {
        parent: u32,
        name: &'a [u8],
        target: &'a [u8],
    },
    Link {
        ino: u32,
        parent: u32,
        name: &'a [u8],
    },
    Unlink {
        parent: u32,
        name: &'a [u8],
    },
    Rmdir {
        parent: u32,
        name: &'a [u8],
    },
    Rename {
        old_parent: u32,
        old_name: &'a [u8],
        new_parent: u32,
        new_name: &'a [u8],
        flags: u32,
    },
    Read {
        ino: u32,
        offset: u64,
        size: u32,
    },
    /// `kill_suidgid`: the writer lacks CAP_FSETID (FUSE_WRITE_KILL_SUIDGID);
    /// `append`: through a descriptor opened with O_APPEND.
    Write {
        ino: u32,
        offset: u64,
        data: &'a [u8],
        kill_suidgid: bool,
        append: bool,
    },
    /// fallocate(2); `mode` as the call's (`FALLOC_FL_*`).
    Fallocate {
        ino: u32,
        offset: u64,
        length: u64,
        mode: i32,
    },
    Fsync,
    Opendir {
        ino: u32,
    },
    Readdir {
        ino: u32,
        offset: u64,
    },
    Access {
        ino: u32,
        mask: u32,
    },
    Getxattr {
        ino: u32,
        name: &'a [u8],
    },
    Listxattr {
        ino: u32,
    },
    /// `flags`: XATTR_CREATE, XATTR_REPLACE.
    Setxattr {
        ino: u32,
        name: &'a [u8],
        value: &'a [u8],
        flags: u32,
    },
    Removexattr {
        ino: u32,
        name: &'a [u8],
    },
    Statfs,
    /// The inode's flags as FS_IOC_GETFLAGS shows them (lsattr).
    GetFlags {
        ino: u32,
    },
    /// FS_IOC_SETFLAGS (chattr).
    SetFlags {
        ino: u32,
        flags: u32,
    },
    /// FS_IOC_FSGETXATTR: the flags as `fsx_xflags` (the other fields
    /// are 0 on ext2: no extent size hints, no project).
    GetXflags {
        ino: u32,
    },
    /// FS_IOC_FSSETXATTR (chattr of e2fsprogs 1.47 uses it too).
    SetXflags {
        ino: u32,
        xflags: u32,
        projid: u32,
    },
}

/// A directory entry as a readdir answers it: with its kind, looked up in
/// the inode on images without the filetype feature.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: u32,
    /// The cookie of the entry after this one.
    pub next: u64,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// What a request answers.
#[derive(Debug)]
pub enum Reply {
    /// A name now refers to this inode: the kernel holds one more reference.
    Entry(Attr),
    Attr(Attr),
    Data(Vec<u8>),
    Written(usize),
    Entries(Vec<DirEntry>),
    Statfs(Statfs),
    /// An inode's flags (FS_IOC_GETFLAGS).
    Flags(u32),
    Done,
    /// Done, but the kernel's cached copy of this byte range of `ino` is
    /// stale (it assumed more was changed than was): the transport
    /// invalidates it.
    CacheStale {
        ino: u32,
        offset: u64,
        len: u64,
    },
    /// Inside the request layer only: the request's change stays (it
    /// commits), yet the call fails with this error. `serve` answers the
    /// error.
    Refused(FsError),
}

impl Request<'_> {
    /// The operation's name (counters, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Lookup { .. } => "lookup",
            Request::Getattr { .. } => "getattr",
            Request::Setattr { .. } => "setattr",
            Request::Readlink { .. } => "readlink",
            Request::Mknod { .. } => "mknod",
            Request::Mkdir { .. } => "mkdir",
            Request::Symlink { .. } => "symlink",
            Request::Link { .. } => "link",
            Request::Unlink { .. } => "unlink",
            Request::Rmdir { .. } => "rmdir",
            Request::Rename { .. } => "rename",
            Request::Read { .. } => "read",
            Request::Write { .. } => "write",
            Request::Fallocate { .. } => "fallocate",
            Request::Fsync => "fsync",
            Request::Opendir { .. } => "opendir",
            Request::Readdir { .. } => "readdir",
            Request::Access { .. } => "access",
            Request::Getxattr { .. } => "getxattr",
            Request::Listxattr { .. } => "listxattr",
            Request::Setxattr { .. } => "setxattr",
            Request::Removexattr { .. } => "removexattr",
            Request::Statfs => "statfs",
            Request::GetFlags { .. } => "getflags",
            Request::SetFlags { .. } => "setflags",
            Request::GetXflags { .. } => "getflags",
            Request::SetXflags { .. } => "setflags",
        }
    }

    /// What the request will touch, for AMA's estimate.
    pub fn need(&self) -> Need<'_> {
        match *self {
            // "." (a file handle decoded) reads the inode only.
            Request::Lookup { parent, name: b"." } => Need::Attr(parent),
            Request::Lookup { parent, name } => Need::Lookup { parent, name },
            Request::Getattr { ino } | Request::Opendir { ino } | Request::Access { ino, .. } => {
                Need::Attr(ino)
            }
            Request::Setattr { ino, set } => Need::SetAttr {
                ino,
                size: set.size,
            },
            Request::Readlink { ino } => Need::Readlink(ino),
            Request::Mknod { parent, name, .. } => Need::Create {
                parent,
                name,
                blocks: 0,
                dir: false,
            },
            Request::Mkdir { parent, name, .. } => Need::Create {
                parent,
                name,
                blocks: 1,
                dir: true,
            },
            Request::Symlink {
                parent,
                name,
                target,
            } => Need::Create {
                parent,
                name,
                // A slow symlink's target takes a block.
                blocks: u32::from(target.len() > FAST_SYMLINK_MAX),
                dir: false,
            },
            Request::Link { ino, parent, name } => Need::Link { ino, parent, name },
            Request::Unlink { parent, name } | Request::Rmdir { parent, name } => {
                Need::Remove { parent, name }
            }
            Request::Rename {
                old_parent,
                old_name,
                new_parent,
                new_name,
                flags,
            } => Need::Rename {
                old_parent,
                old_name,
                new_parent,
                new_name,
                exchange: flags & libc::RENAME_EXCHANGE != 0,
            },
            Request::Read { ino, offset, size } => Need::Read {
                ino,
                offset,
                size: size as u64,
            },
            Request::Write {
                ino, offset, data, ..
            } => Need::Write {
                ino,
                offset,
                size: data.len() as u64,
            },
            Request::Fallocate {
                ino,
                offset,
                length,
                mode: PUNCH_HOLE_KEEP_SIZE,
            } => Need::Punch {
                ino,
                offset,
                length,
            },
            // Refused after a look at the inode (its kind decides the errno).
            Request::Fallocate { ino, .. } => Need::Attr(ino),
            Request::Readdir { ino, .. } => Need::Readdir { dir: ino },
            Request::Getxattr { ino, .. } | Request::Listxattr { ino } => Need::Xattr(ino),
            Request::Setxattr { ino, .. } | Request::Removexattr { ino, .. } => Need::SetXattr(ino),
            Request::Fsync | Request::Statfs => Need::Nothing,
            Request::GetFlags { ino } | Request::GetXflags { ino } => Need::Attr(ino),
            // The inode, written: what a setattr without a size costs.
            Request::SetFlags { ino, .. } | Request::SetXflags { ino, .. } => {
                Need::SetAttr { ino, size: None }
            }
        }
    }

    /// The inodes whose sync flag (dirsync for a directory) makes this
    /// request write back before it answers: the inode a request changes,
    /// or the directories whose entries it changes (ext4's IS_SYNC and
    /// IS_DIRSYNC). Read-only requests have none.
    fn sync_scope(&self) -> [Option<u32>; 2] {
        match *self {
            Request::Setattr { ino, .. }
            | Request::Write { ino, .. }
            | Request::SetFlags { ino, .. }
            | Request::SetXflags { ino, .. }
            | Request::Setxattr { ino, .. }
            | Request::Removexattr { ino, .. } => [Some(ino), None],
            Request::Mknod { parent, .. }
            | Request::Mkdir { parent, .. }
            | Request::Symlink { parent, .. }
            | Request::Link { parent, .. }
            | Request::Unlink { parent, .. }
            | Request::Rmdir { parent, .. } => [Some(parent), None],
            Request::Rename {
                old_parent,
                new_parent,
                ..
            } => [Some(old_parent), Some(new_parent)],
            _ => [None, None],
        }
    }
}

impl Ext2 {
    /// Serve one request: through the gate (AMA's reserve, a recovery
    /// domain, the policy), then what follows from the answer (a reference
    /// the kernel now holds).
    pub fn serve(&self, ctx: &Ctx, req: &Request) -> Result<Reply> {
        match *req {
            // The daemon's own controls on the root answer outside the
            // gate: they are not file-system state (see `control.rs`).
            Request::Getxattr { ino, name } => {
                if let Some(v) = self.control_get(ino, name) {
                    return Ok(Reply::Data(v));
                }
            }
            Request::Setxattr {
                ino, name, value, ..
            } => {
                if let Some(r) = self.control_set(ino, name, value) {
                    return r.map(|()| Reply::Done);
                }
            }
            // Counters kept in memory: nothing to reserve or roll back.
            Request::Statfs => return Ok(Reply::Statfs(self.statfs())),
            Request::Readdir { ino, offset } => return self.readdir_with_kinds(ctx, ino, offset),
            _ => {}
        }
        let (reply, sync) = self.request(req.name(), req.need(), || {
            let reply = self.run(ctx, req)?;
            // Looked at inside the request: its inodes are cached (pinned).
            let sync = req
                .sync_scope()
                .iter()
                .flatten()
                .any(|&i| self.sync_wanted(i));
            Ok((reply, sync))
        })?;
        if let Reply::Entry(a) = &reply {
            // After the commit: a rolled-back request leaves no reference.
            self.add_ref(a.ino);
        }
        if sync {
            // Committed: the write-back takes it to the image (as fsync).
            self.request("fsync", Need::Nothing, || self.fsync())?;
        }
        match reply {
            Reply::Refused(e) => Err(e),
            r => Ok(r),
        }
    }

    /// The operation itself, inside the gate.
    fn run(&self, ctx: &Ctx, req: &Request) -> Result<Reply> {
        Ok(match *req {
            Request::Lookup { parent, name } => Reply::Entry(self.lookup(parent, name)?),
            Request::Getattr { ino } => Reply::Attr(self.getattr(ino)?),
            Request::Setattr { ino, set } => Reply::Attr(self.setattr(ctx, ino, &set)?),
            Request::Readlink { ino } => Reply::Data(self.readlink(ino)?),
            Request::Mknod {
                parent,
                name,
                mode,
                umask,
                rdev,
            } => Reply::Entry(self.mknod(ctx, parent, name, mode, umask, rdev)?),
            Request::Mkdir {
                parent,
                name,
                mode,
                umask,
            } => Reply::Entry(self.mkdir(ctx, parent, name, mode, umask)?),
            Request::Symlink {
                parent,
                name,
                target,
            } => Reply::Entry(self.symlink(ctx, parent, name, target)?),
            Request::Link { ino, parent, name } => Reply::Entry(self.link(ctx, ino, parent, name)?),
            Request::Unlink { parent, name } => {
                self.unlink(parent, name)?;
                Reply::Done
            }
            Request::Rmdir { parent, name } => {
                self.rmdir(parent, name)?;
                Reply::Done
            }
            Request::Rename {
                old_parent,
                old_name,
                new_parent,
                new_name,
                flags,
            } => {
                self.rename(ctx, old_parent, old_name, new_parent, new_name, flags)?;
                Reply::Done
            }
            Request::Read { ino, offset, size } => Reply::Data(self.read(ino, offset, size)?),
            Request::Write {
                ino,
                offset,
                data,
                kill_suidgid,
                append,
            } => Reply::Written(self.write(ctx, ino, offset, data, kill_suidgid, append)?),
            Request::Fallocate {
                ino,
                offset,
                length,
                mode,
            } => match self.fallocate(ino, offset, length, mode)? {
                None => Reply::Done,
                Some((offset, len)) => Reply::CacheStale { ino, offset, len },
            },
            Request::Fsync => {
                self.fsync()?;
                Reply::Done
            }
            Request::Opendir { ino } => {
                if self.getattr(ino)?.kind != FileKind::Directory {
                    return Err(FsError::NotDir);
                }
                Reply::Done
            }
            Request::Access { ino, mask } => {
                self.access(ctx, ino, mask)?;
                Reply::Done
            }
            Request::Getxattr { ino, name } => Reply::Data(self.getxattr(ino, name)?),
            Request::Listxattr { ino } => Reply::Data(self.listxattr(ctx, ino)?),
            Request::Setxattr {
                ino,
                name,
                value,
                flags,
            } => {
                // An immutable or append-only inode refuses first, as the
                // VFS does.
                self.check_xattr_change(ino)?;
                self.setxattr(ctx, ino, name, value, flags)?;
                Reply::Done
            }
            Request::Removexattr { ino, name } => {
                self.check_xattr_change(ino)?;
                self.removexattr(ctx, ino, name)?;
                Reply::Done
            }
            Request::GetFlags { ino } => Reply::Flags(self.get_flags(ino)?),
            Request::SetFlags { ino, flags } => match self.set_flags(ctx, ino, flags)? {
                None => Reply::Done,
                Some(e) => Reply::Refused(e),
            },
            Request::GetXflags { ino } => {
                Reply::Flags(crate::fs::flags::to_xflags(self.get_flags(ino)?))
            }
            Request::SetXflags {
                ino,
                xflags,
                projid,
            } => match self.set_fsxattr(ctx, ino, xflags, projid)? {
                None => Reply::Done,
                Some(e) => Reply::Refused(e),
            },
            Request::Readdir { .. } | Request::Statfs => {
                unreachable!("served outside the gate by `serve`")
            }
        })
    }

    /// A batch of a directory's entries from cookie `offset` on, each with
    /// its kind. Without the filetype feature the kind is in the inode:
    /// each one a request of its own (a getattr), so that the listing's
    /// estimate need not cover every entry's inode block.
    fn readdir_with_kinds(&self, ctx: &Ctx, ino: u32, offset: u64) -> Result<Reply> {
        let listed = self.request("readdir", Need::Readdir { dir: ino }, || {
            self.readdir(ino, offset, READDIR_BATCH)
        })?;
        let mut out = Vec::with_capacity(listed.len());
        for e in listed {
            let kind = match dirent::kind_of_file_type(e.file_type) {
                Some(k) => k,
                None => match self.serve(ctx, &Request::Getattr { ino: e.ino }) {
                    Ok(Reply::Attr(a)) => a.kind,
                    // Listed but unreadable: the name is still shown (as ls
                    // shows a name it cannot stat).
                    _ => FileKind::Regular,
                },
            };
            out.push(DirEntry {
                ino: e.ino,
                next: e.next,
                kind,
                name: e.name,
            });
        }
        Ok(Reply::Entries(out))
    }
}
