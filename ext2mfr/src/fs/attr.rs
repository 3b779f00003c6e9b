//! Attributes of an inode as the FUSE adapter reports them, and the request
//! context (caller's uid, gid and process).

use crate::format::inode::{FileKind, Inode, Timestamp};

/// Who is asking: reserved blocks and new inodes' owners depend on it.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    /// The calling process (0: none, a request made in-process).
    pub pid: u32,
}

impl Ctx {
    pub const ROOT: Ctx = Ctx {
        uid: 0,
        gid: 0,
        pid: 0,
    };
    pub fn privileged(&self) -> bool {
        self.uid == 0
    }

    /// Is the caller in group `gid`, by its primary group or a
    /// supplementary one (the kernel's in_group_p)? FUSE passes on the
    /// primary group only: the others are read from /proc, so call it only
    /// where the answer matters. (Unreadable: the primary group decides.)
    pub fn in_group(&self, gid: u32) -> bool {
        if self.gid == gid {
            return true;
        }
        let Some(status) = self.proc_file("status") else {
            return false;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .is_some_and(|groups| groups.split_whitespace().any(|g| g.parse() == Ok(gid)))
    }

    /// The system call the caller is blocked in, by /proc/PID/syscall
    /// (for the one request FUSE makes alike for a chown, a fallocate and
    /// a write: see `setattr_kills`); `None` when it cannot be read.
    pub fn syscall(&self) -> Option<i64> {
        self.proc_file("syscall")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// /proc/PID/`name` of the caller, if FUSE named it and it is readable.
    fn proc_file(&self, name: &str) -> Option<String> {
        if self.pid == 0 {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{}/{name}", self.pid)).ok()
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
