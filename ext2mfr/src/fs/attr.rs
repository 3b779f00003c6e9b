//! Attributes of an inode as the FUSE adapter reports them, and the request
//! context (caller's uid/gid).

use crate::format::inode::{FileKind, Inode};

/// Who is asking: reserved blocks and new inodes' owners depend on it.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
}

impl Ctx {
    pub const ROOT: Ctx = Ctx { uid: 0, gid: 0 };
    pub fn privileged(&self) -> bool {
        self.uid == 0
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: u32,
    pub kind: FileKind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte sectors, as `i_blocks` counts them.
    pub blocks: u64,
    pub atime: u32,
    pub mtime: u32,
    pub ctime: u32,
    pub rdev: u32,
    pub generation: u32,
}

impl Attr {
    pub fn from_inode(ino: u32, i: &Inode) -> Attr {
        let kind = i.kind().unwrap_or(FileKind::Regular);
        let rdev = match kind {
            FileKind::CharDevice | FileKind::BlockDevice => {
                let (ma, mi) = i.device();
                libc::makedev(ma, mi) as u32
            }
            _ => 0,
        };
        Attr {
            ino,
            kind,
            perm: i.mode() & 0o7777,
            nlink: i.links() as u32,
            uid: i.uid(),
            gid: i.gid(),
            size: i.size(),
            blocks: i.i_blocks.get() as u64,
            atime: i.i_atime.get(),
            mtime: i.i_mtime.get(),
            ctime: i.i_ctime.get(),
            rdev,
            generation: i.i_generation.get(),
        }
    }
}

/// The changes of a setattr; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<u32>,
    pub mtime: Option<u32>,
    pub ctime: Option<u32>,
}

/// What statfs reports.
#[derive(Clone, Copy, Debug)]
pub struct Statfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}
