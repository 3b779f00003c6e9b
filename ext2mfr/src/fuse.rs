//! The FUSE adapter: decode a request, call the file system, map the result
//! to a reply (errors to errno). No file-system logic lives here.

use crate::error::FsError;
use crate::format::dirent;
use crate::format::inode::{FileKind, Timestamp, ROOT_INO};
use crate::fs::attr::{Attr, Ctx, SetAttr};
use crate::fs::requirements::Need;
use crate::fs::Ext2;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache attributes and names. Every change goes
/// through this daemon and the kernel (the image is locked against a second
/// mount; a reply leaves only after its domain commits), and the kernel
/// drops what each change makes stale, so its caches stay right however
/// long it keeps them. A long time spares a LOOKUP per path component
/// whose entry would otherwise have expired (postmark: 66,735 lookups
/// became 30,097, those of new names).
const TTL: Duration = Duration::from_secs(3600);

/// Read on the root directory: every counter of the daemon as JSON
/// (`getfattr -n ext2mfr.stats --only-values MOUNTPOINT`).
pub const STATS_XATTR: &str = "ext2mfr.stats";
/// Written on the root directory: make the N-th fault site reached from now
/// on fault (tests that fault each step of an operation in turn).
pub const FAULT_AFTER_XATTR: &str = "ext2mfr.fault_after";
/// Written on the root directory: "0" pauses fault injection, "1" resumes it
/// (so a harness can inspect the tree without meeting faults).
pub const INJECT_XATTR: &str = "ext2mfr.inject";
/// Written on the root directory: N > 0 makes every N-th AMA reservation one
/// page short, as an estimate overtaken by a concurrent request would be
/// (tests of the restart path); 0 stops it.
pub const SHORT_ESTIMATES_XATTR: &str = "ext2mfr.short_estimates";

/// What creating a file without data blocks (create, mknod) needs.
fn new_file<'a>(parent: INodeNo, name: &'a OsStr) -> Need<'a> {
    Need::Create {
        parent: to_ext2(parent),
        name: name.as_bytes(),
        blocks: 0,
        dir: false,
    }
}

pub struct FuseFs {
    fs: Arc<Ext2>,
}

impl FuseFs {
    pub fn new(fs: Arc<Ext2>) -> FuseFs {
        FuseFs { fs }
    }
}

/// FUSE calls the root 1; ext2 calls it 2 (ext2's inode 1, the bad-blocks
/// inode, is never exposed).
fn to_ext2(ino: INodeNo) -> u32 {
    if ino.0 == 1 {
        ROOT_INO
    } else {
        ino.0 as u32
    }
}

fn to_fuse(ino: u32) -> INodeNo {
    INodeNo(if ino == ROOT_INO { 1 } else { ino as u64 })
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
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

    /// Reply with an entry; the kernel holds a reference from now on.
    fn entry(&self, r: Result<Attr, FsError>, reply: ReplyEntry) {
        match r {
            Ok(a) => {
                self.fs.add_ref(a.ino);
                reply.entry(&TTL, &self.attr(&a), Generation(a.generation as u64))
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn data(r: Result<Vec<u8>, FsError>, reply: ReplyData) {
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(r: Result<(), FsError>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        // No OPEN/RELEASE round trips for files: ext2 keeps no per-open
        // state (the kernel then keeps its page cache across opens).
        // HANDLE_KILLPRIV_V2: write, truncate and chown clear set-user-ID
        // and set-group-ID here (see `Ext2::write` and `Ext2::setattr`), so
        // the kernel need not ask for security.capability before every
        // write, one round trip per write otherwise. Capabilities stay as
        // before: xattrs are read-only here, and the kernel's own removal
        // ignored that EOPNOTSUPP too.
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_PARALLEL_DIROPS
                | fuser::InitFlags::FUSE_NO_OPEN_SUPPORT
                | fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(
            self.fs.request(
                "lookup",
                Need::Lookup {
                    parent: to_ext2(parent),
                    name: name.as_bytes(),
                },
                || self.fs.lookup(to_ext2(parent), name.as_bytes()),
            ),
            reply,
        )
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(to_ext2(ino), nlookup)
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.request("getattr", Need::Attr(to_ext2(ino)), || {
            self.fs.getattr(to_ext2(ino))
        }) {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
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
        let s = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(timestamp),
            mtime: mtime.map(timestamp),
            ctime: ctime.map(|t| timestamp(TimeOrNow::SpecificTime(t))),
        };
        match self.fs.request(
            "setattr",
            Need::SetAttr {
                ino: to_ext2(ino),
                size,
            },
            || self.fs.setattr(&ctx(req), to_ext2(ino), &s),
        ) {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        Self::data(
            self.fs
                .request("readlink", Need::Readlink(to_ext2(ino)), || {
                    self.fs.readlink(to_ext2(ino))
                }),
            reply,
        )
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
        let r = self.fs.request("mknod", new_file(parent, name), || {
            self.fs.mknod(
                &ctx(req),
                to_ext2(parent),
                name.as_bytes(),
                mode & !umask,
                rdev,
            )
        });
        self.entry(r, reply)
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
        let r = self.fs.request(
            "mkdir",
            Need::Create {
                parent: to_ext2(parent),
                name: name.as_bytes(),
                blocks: 1,
                dir: true,
            },
            || {
                self.fs
                    .mkdir(&ctx(req), to_ext2(parent), name.as_bytes(), mode & !umask)
            },
        );
        self.entry(r, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(
            self.fs.request(
                "unlink",
                Need::Remove {
                    parent: to_ext2(parent),
                    name: name.as_bytes(),
                },
                || self.fs.unlink(&ctx(req), to_ext2(parent), name.as_bytes()),
            ),
            reply,
        )
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(
            self.fs.request(
                "rmdir",
                Need::Remove {
                    parent: to_ext2(parent),
                    name: name.as_bytes(),
                },
                || self.fs.rmdir(&ctx(req), to_ext2(parent), name.as_bytes()),
            ),
            reply,
        )
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.fs.request(
            "symlink",
            Need::Create {
                parent: to_ext2(parent),
                name: link_name.as_bytes(),
                blocks: u32::from(
                    target.as_os_str().len() > crate::format::inode::FAST_SYMLINK_MAX,
                ),
                dir: false,
            },
            || {
                self.fs.symlink(
                    &ctx(req),
                    to_ext2(parent),
                    link_name.as_bytes(),
                    target.as_os_str().as_bytes(),
                )
            },
        );
        self.entry(r, reply)
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
        let r = self.fs.request(
            "rename",
            Need::Rename {
                old_parent: to_ext2(parent),
                old_name: name.as_bytes(),
                new_parent: to_ext2(newparent),
                new_name: newname.as_bytes(),
                exchange: flags.bits() & libc::RENAME_EXCHANGE != 0,
            },
            || {
                self.fs.rename(
                    &ctx(req),
                    to_ext2(parent),
                    name.as_bytes(),
                    to_ext2(newparent),
                    newname.as_bytes(),
                    flags.bits(),
                )
            },
        );
        Self::empty(r, reply)
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self.fs.request(
            "link",
            Need::Link {
                ino: to_ext2(ino),
                parent: to_ext2(newparent),
                name: newname.as_bytes(),
            },
            || {
                self.fs.link(
                    &ctx(req),
                    to_ext2(ino),
                    to_ext2(newparent),
                    newname.as_bytes(),
                )
            },
        );
        self.entry(r, reply)
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // With FUSE_NO_OPEN_SUPPORT, ENOSYS tells the kernel to stop sending
        // OPEN (and RELEASE) for files: there is no per-open state here.
        reply.error(Errno::ENOSYS)
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        Self::data(
            self.fs.request(
                "read",
                Need::Read {
                    ino: to_ext2(ino),
                    offset,
                    size: size as u64,
                },
                || self.fs.read(to_ext2(ino), offset, size),
            ),
            reply,
        )
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.request(
            "write",
            Need::Write {
                ino: to_ext2(ino),
                offset,
                size: data.len() as u64,
            },
            || {
                let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
                self.fs.write(&ctx(req), to_ext2(ino), offset, data, kill)
            },
        ) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
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
        // Every write is in the file system by the time it is answered:
        // ENOSYS makes the kernel stop sending FLUSH on every close.
        reply.error(Errno::ENOSYS)
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(
            self.fs.request("fsync", Need::Nothing, || self.fs.fsync()),
            reply,
        )
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.request("opendir", Need::Attr(to_ext2(ino)), || {
            self.fs.getattr(to_ext2(ino))
        }) {
            Ok(a) if a.kind == FileKind::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self
            .fs
            .request("readdir", Need::Readdir { dir: to_ext2(ino) }, || {
                self.fs.readdir(to_ext2(ino), offset, 256)
            }) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        for e in entries {
            let ft = match e.file_type {
                dirent::FT_REG_FILE => FileType::RegularFile,
                dirent::FT_DIR => FileType::Directory,
                dirent::FT_CHRDEV => FileType::CharDevice,
                dirent::FT_BLKDEV => FileType::BlockDevice,
                dirent::FT_FIFO => FileType::NamedPipe,
                dirent::FT_SOCK => FileType::Socket,
                dirent::FT_SYMLINK => FileType::Symlink,
                // No filetype feature: ask the inode.
                _ => match self
                    .fs
                    .request("getattr", Need::Attr(e.ino), || self.fs.getattr(e.ino))
                {
                    Ok(a) => kind(a.kind),
                    Err(_) => FileType::RegularFile,
                },
            };
            if reply.add(to_fuse(e.ino), e.next, ft, OsStr::from_bytes(&e.name)) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(
            self.fs.request("fsync", Need::Nothing, || self.fs.fsync()),
            reply,
        )
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        )
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        if ino.0 == 1 && name.as_bytes() == FAULT_AFTER_XATTR.as_bytes() {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            return match (n, faultinject::global()) {
                (Some(n), Some(inj)) => {
                    inj.arm_after(n);
                    reply.ok()
                }
                _ => reply.error(Errno::EINVAL),
            };
        }
        if ino.0 == 1 && name.as_bytes() == INJECT_XATTR.as_bytes() {
            return match (value, faultinject::global()) {
                (b"0" | b"1", Some(inj)) => {
                    inj.set_enabled(value == b"1");
                    reply.ok()
                }
                _ => reply.error(Errno::EINVAL),
            };
        }
        if ino.0 == 1 && name.as_bytes() == SHORT_ESTIMATES_XATTR.as_bytes() {
            return match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(k) => {
                    self.fs.pool.short_every(k);
                    reply.ok()
                }
                None => reply.error(Errno::EINVAL),
            };
        }
        reply.error(Errno::from_i32(libc::EOPNOTSUPP))
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if ino.0 == 1 && name.as_bytes() == STATS_XATTR.as_bytes() {
            return xattr_reply(Ok(self.fs.stats_json().into_bytes()), size, reply);
        }
        let r = self.fs.request("getxattr", Need::Xattr(to_ext2(ino)), || {
            self.fs.getxattr(to_ext2(ino), &name.to_string_lossy())
        });
        xattr_reply(r, size, reply)
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(
            self.fs.request("listxattr", Need::Xattr(to_ext2(ino)), || {
                self.fs.listxattr(to_ext2(ino))
            }),
            size,
            reply,
        )
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(libc::EOPNOTSUPP))
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        Self::empty(
            self.fs.request("access", Need::Attr(to_ext2(ino)), || {
                self.fs.access(&ctx(req), to_ext2(ino), mask.bits() as u32)
            }),
            reply,
        )
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.fs.request("create", new_file(parent, name), || {
            self.fs
                .create(&ctx(req), to_ext2(parent), name.as_bytes(), mode & !umask)
        }) {
            Ok(a) => {
                self.fs.add_ref(a.ino);
                reply.created(
                    &TTL,
                    &self.attr(&a),
                    Generation(a.generation as u64),
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // ext2 has no preallocation (the kernel's ext2 answers the same).
        reply.error(Errno::from_i32(libc::EOPNOTSUPP))
    }
}

fn xattr_reply(r: Result<Vec<u8>, FsError>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}
