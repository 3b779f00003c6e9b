//! The FUSE adapter over fuser: each callback becomes a [`Request`], served
//! by [`Ext2::serve`], whose [`Reply`] becomes fuser's reply (errors to
//! errno). Nothing but translation lives here: FUSE's inode numbers, times
//! and file types to ext2's and back, and what FUSE negotiates at INIT.

use crate::error::FsError;
use crate::format::inode::{FileKind, Timestamp};
use crate::fs::attr::{Attr, Ctx, SetAttr};
use crate::fs::Ext2;
use crate::request::{Reply, Request as Op};
use crate::translate::{self, XattrAnswer, TTL};
use crate::transport::abi::opcode as op;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct FuseFs {
    fs: Arc<Ext2>,
    /// For invalidating the kernel's cached data (see `Reply::CacheStale`);
    /// set once the session exists.
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
}

impl FuseFs {
    pub fn new(fs: Arc<Ext2>) -> FuseFs {
        FuseFs {
            fs,
            notifier: Arc::default(),
        }
    }

    /// Where the session's notifier goes once the session is made.
    pub fn notifier_cell(&self) -> Arc<std::sync::OnceLock<fuser::Notifier>> {
        self.notifier.clone()
    }
}

fn to_ext2(ino: INodeNo) -> u32 {
    translate::ino_to_ext2(ino.0)
}

fn to_fuse(ino: u32) -> INodeNo {
    INodeNo(translate::ino_to_fuse(ino))
}

fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
    }
}

/// A time as the kernel gets it (before 1970 too).
fn system_time(t: Timestamp) -> SystemTime {
    let base = if t.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs())
    };
    base + Duration::from_nanos(t.nsec as u64)
}

/// A time to store, in nanoseconds. What the inode cannot hold (before
/// 1901; after 2038 without extra inode fields, after 2446 with them) the
/// inode clamps as the kernel's driver does.
fn timestamp(t: TimeOrNow) -> Timestamp {
    let t = match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => return Timestamp::now(),
    };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: d.as_secs().min(i64::MAX as u64) as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            // Before 1970 the kernel sends (seconds < 0, nanoseconds >= 0),
            // and fuser 0.18 turns that into 1970 - (|seconds| + nanoseconds)
            // (system_time_from_time, a TODO there), not into 1970 -
            // |seconds| + nanoseconds. Undo that to get what was sent.
            let d = e.duration();
            Timestamp {
                secs: -(d.as_secs().min(i64::MAX as u64) as i64),
                nsec: d.subsec_nanos(),
            }
        }
    }
}

impl FuseFs {
    fn attr(&self, a: &Attr) -> FileAttr {
        FileAttr {
            ino: to_fuse(a.ino),
            size: a.size,
            blocks: a.blocks,
            atime: system_time(a.atime),
            mtime: system_time(a.mtime),
            ctime: system_time(a.ctime),
            // (Not passed to Linux: fuser 0.18 answers no FUSE_STATX, the
            // only way FUSE reports a birth time.)
            crtime: system_time(a.crtime.unwrap_or_default()),
            kind: kind(a.kind),
            perm: a.perm,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev,
            blksize: self.fs.geo.block_size,
            flags: 0,
        }
    }

    fn serve(&self, req: &Request, r: &Op) -> Result<Reply, FsError> {
        self.fs.serve(&ctx(req), r)
    }

    fn entry(&self, r: Result<Reply, FsError>, reply: ReplyEntry) {
        match r {
            Ok(Reply::Entry(a)) => {
                reply.entry(&TTL, &self.attr(&a), Generation(a.generation as u64))
            }
            other => reply.error(failure(other)),
        }
    }

    fn attr_reply(&self, r: Result<Reply, FsError>, reply: ReplyAttr) {
        match r {
            Ok(Reply::Attr(a)) => reply.attr(&TTL, &self.attr(&a)),
            other => reply.error(failure(other)),
        }
    }

    fn data(r: Result<Reply, FsError>, reply: ReplyData) {
        match r {
            Ok(Reply::Data(d)) => reply.data(&d),
            other => reply.error(failure(other)),
        }
    }

    fn empty(r: Result<Reply, FsError>, reply: ReplyEmpty) {
        match r {
            Ok(Reply::Done) => reply.ok(),
            other => reply.error(failure(other)),
        }
    }
}

fn failure(r: Result<Reply, FsError>) -> Errno {
    Errno::from_i32(translate::failure(r))
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        self.fs.fuse_requests.count(op::INIT);
        let _ = config.set_max_write(1 << 20);
        // No OPEN/RELEASE round trips for files: ext2 keeps no per-open
        // state (the kernel then keeps its page cache across opens).
        // Directories are opened (OPENDIR, answered without FOPEN_CACHE_DIR):
        // a zero-message opendir turns on the kernel's cache of listings,
        // which it does not drop for a directory moved to another parent,
        // whose ".." then reads stale (see ARCHITECTURE.md).
        // CACHE_SYMLINKS: the kernel keeps a symlink's target in its page
        // cache (no READLINK per walk): a target never changes, and an
        // inode number is not reused while the kernel holds the inode.
        // HANDLE_KILLPRIV_V2: set-user-ID and set-group-ID are killed here
        // at a write, truncate or change of owner, as the kernel's VFS
        // decides for its own ext2 (see `kill_suidgid`); the kernel still
        // removes a capability itself. With it the kernel marks an inode
        // found without a capability (S_NOSEC) and does not ask again
        // before each write: without it, a GETXATTR of
        // security.capability came before most writes.
        // POSIX_ACL: the kernel enforces the ACLs stored here (it turns on
        // default permissions and reads them through getxattr); DONT_MASK:
        // it leaves the umask to us, since a directory's default ACL
        // replaces it (`Ext2::inherit_acl`).
        // EXPORT_SUPPORT: file handles (name_to_handle_at, NFS exports)
        // that outlive the kernel's inode cache: the kernel decodes one by
        // a LOOKUP of "." in the handle's inode (and ".." for a
        // directory's parent), and checks the generation of the answer
        // (see `Ext2::lookup`).
        // WRITEBACK_CACHE, only when the mount asks for it
        // (`writeback_cache`): the kernel keeps written data in its page
        // cache and sends it later in large writes; errors then surface at
        // fsync and close, not at the write (see the README).
        if self.fs.config.writeback_cache {
            let took = config
                .add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
                .is_ok();
            if !took {
                log::warn!("the kernel does not offer FUSE_WRITEBACK_CACHE");
            }
            self.fs
                .writeback_cache
                .store(took, std::sync::atomic::Ordering::Relaxed);
        }
        // (One at a time: fuser refuses a whole set for one flag the
        // kernel does not offer.)
        for flag in [
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
            fuser::InitFlags::FUSE_NO_OPEN_SUPPORT,
            fuser::InitFlags::FUSE_CACHE_SYMLINKS,
            fuser::InitFlags::FUSE_POSIX_ACL,
            fuser::InitFlags::FUSE_DONT_MASK,
            fuser::InitFlags::FUSE_EXPORT_SUPPORT,
            fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if config.add_capabilities(flag).is_err() {
                log::warn!("the kernel does not offer {flag:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.fs.fuse_requests.count(op::LOOKUP);
        let r = Op::Lookup {
            parent: to_ext2(parent),
            name: name.as_bytes(),
        };
        let r = self.serve(req, &r);
        if translate::negative_entry(&r, name.as_bytes()) {
            // Node id 0: a negative entry the kernel keeps for TTL.
            let none = FileAttr {
                ino: INodeNo(0),
                size: 0,
                blocks: 0,
                atime: UNIX_EPOCH,
                mtime: UNIX_EPOCH,
                ctime: UNIX_EPOCH,
                crtime: UNIX_EPOCH,
                kind: FileType::RegularFile,
                perm: 0,
                nlink: 0,
                uid: 0,
                gid: 0,
                rdev: 0,
                blksize: 0,
                flags: 0,
            };
            return reply.entry(&TTL, &none, Generation(0));
        }
        self.entry(r, reply)
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.fuse_requests.count(op::FORGET);
        self.fs.forget(to_ext2(ino), nlookup)
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.fs.fuse_requests.count_getattr(fh.is_some());
        let r = Op::Getattr { ino: to_ext2(ino) };
        self.attr_reply(self.serve(req, &r), reply)
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.fs.fuse_requests.count(op::SETATTR);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(timestamp),
            times_given: [atime, mtime]
                .iter()
                .any(|t| matches!(t, Some(TimeOrNow::SpecificTime(_)))),
            mtime: mtime.map(timestamp),
            ctime: ctime.map(|t| timestamp(TimeOrNow::SpecificTime(t))),
        };
        let r = Op::Setattr {
            ino: to_ext2(ino),
            set,
        };
        self.attr_reply(self.serve(req, &r), reply)
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.fs.fuse_requests.count(op::READLINK);
        let r = Op::Readlink { ino: to_ext2(ino) };
        Self::data(self.serve(req, &r), reply)
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.fs.fuse_requests.count(op::MKNOD);
        let r = Op::Mknod {
            parent: to_ext2(parent),
            name: name.as_bytes(),
            mode,
            umask,
            rdev,
        };
        self.entry(self.serve(req, &r), reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.fs.fuse_requests.count(op::MKDIR);
        let r = Op::Mkdir {
            parent: to_ext2(parent),
            name: name.as_bytes(),
            mode,
            umask,
        };
        self.entry(self.serve(req, &r), reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.fuse_requests.count(op::UNLINK);
        let r = Op::Unlink {
            parent: to_ext2(parent),
            name: name.as_bytes(),
        };
        Self::empty(self.serve(req, &r), reply)
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.fuse_requests.count(op::RMDIR);
        let r = Op::Rmdir {
            parent: to_ext2(parent),
            name: name.as_bytes(),
        };
        Self::empty(self.serve(req, &r), reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.fs.fuse_requests.count(op::SYMLINK);
        let r = Op::Symlink {
            parent: to_ext2(parent),
            name: link_name.as_bytes(),
            target: target.as_os_str().as_bytes(),
        };
        self.entry(self.serve(req, &r), reply)
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // (fuser hands both here; the kernel sends RENAME2 only with flags.)
        self.fs.fuse_requests.count(if flags.is_empty() {
            op::RENAME
        } else {
            op::RENAME2
        });
        let r = Op::Rename {
            old_parent: to_ext2(parent),
            old_name: name.as_bytes(),
            new_parent: to_ext2(newparent),
            new_name: newname.as_bytes(),
            flags: flags.bits(),
        };
        Self::empty(self.serve(req, &r), reply)
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.fs.fuse_requests.count(op::LINK);
        let r = Op::Link {
            ino: to_ext2(ino),
            parent: to_ext2(newparent),
            name: newname.as_bytes(),
        };
        self.entry(self.serve(req, &r), reply)
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.fs.fuse_requests.count(op::OPEN);
        // With FUSE_NO_OPEN_SUPPORT, ENOSYS tells the kernel to stop sending
        // OPEN (and RELEASE) for files: there is no per-open state here.
        reply.error(Errno::ENOSYS)
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.fs.fuse_requests.count(op::READ);
        let r = Op::Read {
            ino: to_ext2(ino),
            offset,
            size,
        };
        Self::data(self.serve(req, &r), reply)
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.fs.fuse_requests.count(op::WRITE);
        let r = Op::Write {
            ino: to_ext2(ino),
            offset,
            data,
            kill_suidgid: write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID),
            // (The descriptor's open flags: FUSE sends them with each write.)
            append: flags.0 & libc::O_APPEND != 0,
        };
        match self.serve(req, &r) {
            Ok(Reply::Written(n)) => reply.written(n as u32),
            other => reply.error(failure(other)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::FLUSH);
        // Every write is in the file system by the time it is answered:
        // ENOSYS makes the kernel stop sending FLUSH on every close.
        reply.error(Errno::ENOSYS)
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::FSYNC);
        Self::empty(self.serve(req, &Op::Fsync), reply)
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.fs.fuse_requests.count(op::OPENDIR);
        match self.serve(req, &Op::Opendir { ino: to_ext2(ino) }) {
            Ok(Reply::Done) => reply.opened(FileHandle(0), FopenFlags::empty()),
            other => reply.error(failure(other)),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.fs.fuse_requests.count(op::READDIR);
        let r = Op::Readdir {
            ino: to_ext2(ino),
            offset,
        };
        match self.serve(req, &r) {
            Ok(Reply::Entries(entries)) => {
                for e in entries {
                    let name = OsStr::from_bytes(&e.name);
                    if reply.add(to_fuse(e.ino), e.next, kind(e.kind), name) {
                        break; // the reply is full; the kernel asks again
                    }
                }
                reply.ok()
            }
            other => reply.error(failure(other)),
        }
    }

    fn fsyncdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::FSYNCDIR);
        Self::empty(self.serve(req, &Op::Fsync), reply)
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.fs.fuse_requests.count(op::STATFS);
        match self.serve(req, &Op::Statfs) {
            Ok(Reply::Statfs(s)) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            other => reply.error(failure(other)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::SETXATTR);
        let r = Op::Setxattr {
            ino: to_ext2(ino),
            name: name.as_bytes(),
            value,
            flags: flags as u32,
        };
        Self::empty(self.serve(req, &r), reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.fs.fuse_requests.count(op::GETXATTR);
        let r = Op::Getxattr {
            ino: to_ext2(ino),
            name: name.as_bytes(),
        };
        xattr_reply(self.serve(req, &r), size, reply)
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.fs.fuse_requests.count(op::LISTXATTR);
        let r = Op::Listxattr { ino: to_ext2(ino) };
        xattr_reply(self.serve(req, &r), size, reply)
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.fuse_requests.count(op::REMOVEXATTR);
        let r = Op::Removexattr {
            ino: to_ext2(ino),
            name: name.as_bytes(),
        };
        Self::empty(self.serve(req, &r), reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.fs.fuse_requests.count(op::ACCESS);
        let r = Op::Access {
            ino: to_ext2(ino),
            mask: mask.bits() as u32,
        };
        Self::empty(self.serve(req, &r), reply)
    }

    /// ENOSYS: the kernel then creates a file with MKNOD (the same
    /// `create_node` here, with the same mode, umask and default ACL) and
    /// opens it as any other, without OPEN once it has learned
    /// FUSE_NO_OPEN_SUPPORT. A created file needs no RELEASE then; a
    /// CREATE's does until the first OPEN of the mount is refused, which a
    /// load that only creates (untar, cp, one directory filled) never
    /// does: each create cost it four requests (LOOKUP, the directory's
    /// GETATTR, CREATE, RELEASE), now three. O_CREAT's semantics are the
    /// kernel's either way (it marks the file created before MKNOD, so
    /// O_TRUNC and the open's permission check are skipped as for CREATE).
    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.fs.fuse_requests.count(op::CREATE);
        reply.error(Errno::ENOSYS)
    }

    /// The flag ioctls (see `translate::ioctl_request`).
    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.fs.fuse_requests.count(op::IOCTL);
        let r = match translate::ioctl_request(to_ext2(ino), cmd, in_data) {
            Ok(r) => r,
            Err(e) => return reply.error(Errno::from_i32(e)),
        };
        match translate::ioctl_reply(cmd, self.serve(req, &r), out_size) {
            Ok(b) => reply.ioctl(0, &b),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // (Nothing is kept per open file.)
        self.fs.fuse_requests.count(op::RELEASE);
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::RELEASEDIR);
        reply.ok()
    }

    fn destroy(&mut self) {
        self.fs.fuse_requests.count(op::DESTROY);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        // ENOSYS: the kernel seeks itself from then on (as our own
        // transport answers every opcode it does not serve).
        self.fs.fuse_requests.count(op::LSEEK);
        reply.error(Errno::ENOSYS)
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // ENOSYS: the kernel copies through read and write from then on.
        self.fs.fuse_requests.count(op::COPY_FILE_RANGE);
        reply.error(Errno::ENOSYS)
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.fs.fuse_requests.count(op::FALLOCATE);
        let r = Op::Fallocate {
            ino: to_ext2(ino),
            offset,
            length,
            mode,
        };
        match self.serve(req, &r) {
            Ok(Reply::CacheStale { ino, offset, len }) => {
                // Before the reply, after which the kernel drops what it
                // thinks was punched: the page is then read again.
                if let Some(n) = self.notifier.get() {
                    let _ = n.inval_inode(to_fuse(ino), offset as i64, len as i64);
                }
                reply.ok()
            }
            other => Self::empty(other, reply),
        }
    }
}

/// A value, or its size (see `translate::xattr_answer`).
fn xattr_reply(r: Result<Reply, FsError>, size: u32, reply: ReplyXattr) {
    match translate::xattr_answer(r, size) {
        Ok(XattrAnswer::Size(n)) => reply.size(n),
        Ok(XattrAnswer::Data(v)) => reply.data(&v),
        Err(e) => reply.error(Errno::from_i32(e)),
    }
}
