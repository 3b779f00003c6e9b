//! Attributes of an inode as the FUSE adapter reports them, and the request
//! context (caller's uid/gid).

use crate::format::inode::{FileKind, Inode, Timestamp};

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
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Creation time, where the inode has room for it.
    pub crtime: Option<Timestamp>,
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
            atime: i.atime(),
            mtime: i.mtime(),
            ctime: i.ctime(),
            crtime: i.crtime(),
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
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
    pub ctime: Option<Timestamp>,
    /// An atime or mtime given explicitly, not "now" (ATTR_TIMES_SET:
    /// refused on append-only files, where a touch is not).
    pub times_given: bool,
}

impl SetAttr {
    /// Nothing to change: what chown(2) with -1 for both owner and group
    /// sends through FUSE (the kernel asks for nothing but its side effects).
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
            && self.ctime.is_none()
    }
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
