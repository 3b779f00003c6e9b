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

/// One request, in ext2 inode numbers. Modes are final (the umask applied).
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
    Create {
        parent: u32,
        name: &'a [u8],
        mode: u32,
    },
    Mknod {
        parent: u32,
        name: &'a [u8],
        mode: u32,
        rdev: u32,
    },
    Mkdir {
        parent: u32,
        name: &'a [u8],
        mode: u32,
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
    /// `kill_suidgid`: the writer lacks CAP_FSETID (FUSE_WRITE_KILL_SUIDGID).
    Write {
        ino: u32,
        offset: u64,
        data: &'a [u8],
        kill_suidgid: bool,
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
    Setxattr {
        ino: u32,
        name: &'a [u8],
        value: &'a [u8],
    },
    Removexattr {
        ino: u32,
        name: &'a [u8],
    },
    Statfs,
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
    Done,
}

impl Request<'_> {
    /// The operation's name (counters, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Lookup { .. } => "lookup",
            Request::Getattr { .. } => "getattr",
            Request::Setattr { .. } => "setattr",
            Request::Readlink { .. } => "readlink",
            Request::Create { .. } => "create",
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
        }
    }

    /// What the request will touch, for AMA's estimate.
    pub fn need(&self) -> Need<'_> {
        match *self {
            Request::Lookup { parent, name } => Need::Lookup { parent, name },
            Request::Getattr { ino } | Request::Opendir { ino } | Request::Access { ino, .. } => {
                Need::Attr(ino)
            }
            Request::Setattr { ino, set } => Need::SetAttr {
                ino,
                size: set.size,
            },
            Request::Readlink { ino } => Need::Readlink(ino),
            Request::Create { parent, name, .. } | Request::Mknod { parent, name, .. } => {
                Need::Create {
                    parent,
                    name,
                    blocks: 0,
                    dir: false,
                }
            }
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
            Request::Setxattr { ino, .. } | Request::Removexattr { ino, .. } => Need::Xattr(ino),
            Request::Fsync | Request::Statfs => Need::Nothing,
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
            Request::Setxattr { ino, name, value } => {
                if let Some(r) = self.control_set(ino, name, value) {
                    return r.map(|()| Reply::Done);
                }
            }
            // Counters kept in memory: nothing to reserve or roll back.
            Request::Statfs => return Ok(Reply::Statfs(self.statfs())),
            Request::Readdir { ino, offset } => return self.readdir_with_kinds(ctx, ino, offset),
            _ => {}
        }
        let reply = self.request(req.name(), req.need(), || self.run(ctx, req))?;
        if let Reply::Entry(a) = &reply {
            // After the commit: a rolled-back request leaves no reference.
            self.add_ref(a.ino);
        }
        Ok(reply)
    }

    /// The operation itself, inside the gate.
    fn run(&self, ctx: &Ctx, req: &Request) -> Result<Reply> {
        Ok(match *req {
            Request::Lookup { parent, name } => Reply::Entry(self.lookup(parent, name)?),
            Request::Getattr { ino } => Reply::Attr(self.getattr(ino)?),
            Request::Setattr { ino, set } => Reply::Attr(self.setattr(ctx, ino, &set)?),
            Request::Readlink { ino } => Reply::Data(self.readlink(ino)?),
            Request::Create { parent, name, mode } => {
                Reply::Entry(self.create(ctx, parent, name, mode)?)
            }
            Request::Mknod {
                parent,
                name,
                mode,
                rdev,
            } => Reply::Entry(self.mknod(ctx, parent, name, mode, rdev)?),
            Request::Mkdir { parent, name, mode } => {
                Reply::Entry(self.mkdir(ctx, parent, name, mode)?)
            }
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
            } => Reply::Written(self.write(ctx, ino, offset, data, kill_suidgid)?),
            Request::Fallocate {
                ino,
                offset,
                length,
                mode,
            } => {
                self.fallocate(ino, offset, length, mode)?;
                Reply::Done
            }
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
            Request::Getxattr { ino, name } => {
                Reply::Data(self.getxattr(ino, &String::from_utf8_lossy(name))?)
            }
            Request::Listxattr { ino } => Reply::Data(self.listxattr(ino)?),
            // Extended attributes are read-only for now.
            Request::Setxattr { .. } | Request::Removexattr { .. } => {
                return Err(FsError::NotSupported)
            }
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
