//! Applying one op to one mount: real system calls (libc) on paths under
//! the mount root, answering what the call returned or the errno it failed
//! with. Both sides run the very same function, so any difference in the
//! answers is the drivers'.

use super::ops::{data, Op, Time, SLOTS};
use super::xattr::{self, Target};
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a call returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Success with nothing to compare (0).
    Done,
    /// A count: bytes written.
    Count(u64),
    /// Bytes read: their length and hash (the bytes themselves are not kept).
    Data {
        len: usize,
        hash: u64,
    },
    Stat(StatInfo),
    Names(Vec<String>),
    Statfs(StatfsInfo),
    Target(String),
}

/// Ok(value) or Err(errno).
pub type Outcome = Result<Value, i32>;

/// The fields of struct stat the tester looks at (all of them but st_dev
/// and st_blksize, which name the mount rather than the file).
#[derive(Clone, Debug, PartialEq)]
pub struct StatInfo {
    /// ls -l's letter: - d l c b p s.
    pub ftype: char,
    /// Permission and set-id/sticky bits (mode & 07777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub rdev: (u32, u32),
    pub blocks: u64,
    pub ino: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl StatInfo {
    fn from(s: &libc::stat) -> StatInfo {
        let ftype = match s.st_mode & libc::S_IFMT {
            libc::S_IFREG => '-',
            libc::S_IFDIR => 'd',
            libc::S_IFLNK => 'l',
            libc::S_IFCHR => 'c',
            libc::S_IFBLK => 'b',
            libc::S_IFIFO => 'p',
            libc::S_IFSOCK => 's',
            _ => '?',
        };
        // nlink_t is u32 on some targets.
        #[allow(clippy::unnecessary_cast)]
        StatInfo {
            ftype,
            perm: s.st_mode & 0o7777,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size as u64,
            nlink: s.st_nlink as u64,
            rdev: (libc::major(s.st_rdev), libc::minor(s.st_rdev)),
            blocks: s.st_blocks as u64,
            ino: s.st_ino,
            atime: (s.st_atime, s.st_atime_nsec),
            mtime: (s.st_mtime, s.st_mtime_nsec),
            ctime: (s.st_ctime, s.st_ctime_nsec),
        }
    }

    pub fn lstat(p: &Path) -> Result<StatInfo, i32> {
        let c = cpath(p);
        // SAFETY: zeroed stat is a valid out-parameter; c is NUL-terminated.
        let mut s: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::lstat(c.as_ptr(), &mut s) } as i64)?;
        Ok(StatInfo::from(&s))
    }

    fn fstat(fd: i32) -> Result<StatInfo, i32> {
        // SAFETY: as above; fd is ours.
        let mut s: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(fd, &mut s) } as i64)?;
        Ok(StatInfo::from(&s))
    }
}

/// statvfs's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct StatfsInfo {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namemax: u64,
}

pub fn statfs(p: &Path) -> Result<StatfsInfo, i32> {
    let c = cpath(p);
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(c.as_ptr(), &mut s) } as i64)?;
    Ok(StatfsInfo {
        bsize: s.f_bsize,
        frsize: s.f_frsize,
        blocks: s.f_blocks,
        bfree: s.f_bfree,
        bavail: s.f_bavail,
        files: s.f_files,
        ffree: s.f_ffree,
        namemax: s.f_namemax,
    })
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Done => write!(f, "0"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Data { len, hash } => write!(f, "{len} bytes (hash {hash:016x})"),
            Value::Stat(s) => write!(f, "{s:?}"),
            Value::Names(n) => write!(f, "{n:?}"),
            Value::Statfs(s) => write!(f, "{s:?}"),
            Value::Target(t) => write!(f, "{t:?}"),
        }
    }
}

pub fn show_outcome(o: &Outcome) -> String {
    match o {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({})", errno_name(*e)),
    }
}

pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENXIO => "ENXIO",
        libc::ETXTBSY => "ETXTBSY",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENODATA => "ENODATA",
        libc::ERANGE => "ERANGE",
        libc::ENOTCONN => "ENOTCONN",
        libc::ECONNABORTED => "ECONNABORTED",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

fn check(r: i64) -> Result<i64, i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One side's open descriptors, by slot.
pub struct Fds {
    fds: [Option<i32>; SLOTS as usize],
}

impl Default for Fds {
    fn default() -> Fds {
        Fds {
            fds: [None; SLOTS as usize],
        }
    }
}

impl Fds {
    fn get(&self, slot: u8) -> Result<i32, i32> {
        // An empty slot (after shrinking removed its open) answers EBADF on
        // both sides without a system call.
        self.fds[slot as usize].ok_or(libc::EBADF)
    }

    fn close(&mut self, slot: u8) -> Result<i64, i32> {
        let fd = self.get(slot)?;
        self.fds[slot as usize] = None;
        // SAFETY: fd was opened by us and is closed once.
        check(unsafe { libc::close(fd) } as i64)
    }

    /// The inode number of the FIFO open in `slot`, if a FIFO is open there.
    pub fn fifo_ino(&self, slot: u8) -> Option<u64> {
        let st = self.fstat(slot)?;
        (st.st_mode & libc::S_IFMT == libc::S_IFIFO).then_some(st.st_ino)
    }

    /// The inode number of what is open in `slot`.
    pub fn ino(&self, slot: u8) -> Option<u64> {
        self.fstat(slot).map(|st| st.st_ino)
    }

    fn fstat(&self, slot: u8) -> Option<libc::stat> {
        let fd = self.get(slot).ok()?;
        // SAFETY: fstat fills the zeroed struct for an fd we opened.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return None;
        }
        Some(st)
    }

    /// Close every slot (at the end of a run, so unlinked files go).
    pub fn close_all(&mut self) {
        for s in 0..SLOTS {
            let _ = self.close(s);
        }
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// open(2) with O_NOFOLLOW and O_NONBLOCK always: a replayed (shrunk)
/// sequence may find a FIFO or a symlink where the generator saw a regular
/// file, and opening must neither block on a FIFO nor follow a link to a
/// device node (both mounts are nodev as well, see mounts.rs).
fn open(p: &Path, flags: i32, mode: u32) -> Result<i32, i32> {
    let c = cpath(p);
    let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    // SAFETY: c is NUL-terminated.
    check(unsafe { libc::open(c.as_ptr(), flags, mode) } as i64).map(|f| f as i32)
}

/// Close `fd`, keeping the first error: a write's answer, else close's.
fn with_fd(fd: i32, r: Result<Value, i32>) -> Outcome {
    // SAFETY: fd was opened by the caller and is closed once.
    let c = check(unsafe { libc::close(fd) } as i64);
    let v = r?;
    c?;
    Ok(v)
}

fn write_at(fd: i32, at: Option<u64>, len: u32, seed: u32) -> Result<Value, i32> {
    let buf = data(seed, len);
    // SAFETY: buf is valid for buf.len() bytes.
    let n = match at {
        Some(o) => unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), o as i64) },
        None => unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) },
    };
    check(n as i64).map(|n| Value::Count(n as u64))
}

fn read_at(fd: i32, off: u64, len: u32) -> Result<Value, i32> {
    let mut buf = vec![0u8; len as usize];
    // SAFETY: buf is valid for len bytes.
    let n =
        check(unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as i64) } as i64)?;
    buf.truncate(n as usize);
    Ok(Value::Data {
        len: buf.len(),
        hash: fnv(&buf),
    })
}

pub fn read_names(p: &Path) -> Result<Vec<String>, i32> {
    let rd = std::fs::read_dir(p).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

pub fn read_link(p: &Path) -> Result<String, i32> {
    std::fs::read_link(p)
        .map(|t| t.to_string_lossy().into_owned())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

fn timespec(t: &Time) -> libc::timespec {
    match t {
        Time::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Time::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Time::At(s, ns) => libc::timespec {
            tv_sec: *s,
            tv_nsec: *ns,
        },
    }
}

/// The capability sets of a thread (capget/capset, version 3).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// This thread's capabilities.
fn capabilities() -> [CapData; 2] {
    let mut h = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: a version-3 header and two data structs, as capget(2) wants.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    d
}

fn set_capabilities(d: &[CapData; 2]) {
    let mut h = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: as in `capabilities`.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

/// Run `f` as another user: this thread's file-system uid and gid (which
/// the kernel checks permissions with, and FUSE passes on), its
/// supplementary groups, and no effective capability (so no CAP_FSETID,
/// CAP_DAC_OVERRIDE, CAP_SYS_RESOURCE...), then back to what it was. Raw
/// system calls: they change the calling thread only (glibc's setgroups
/// changes every thread), and both sides run on this thread.
fn as_user<T>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> T) -> T {
    let caps = capabilities();
    let mut saved = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds 256 groups; raw calls with plain values.
    let n = unsafe {
        let n = libc::getgroups(256, saved.as_mut_ptr());
        assert!(n >= 0, "getgroups");
        assert_eq!(
            libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
            0
        );
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
        n as usize
    };
    set_capabilities(&[
        CapData {
            effective: 0,
            ..caps[0]
        },
        CapData {
            effective: 0,
            ..caps[1]
        },
    ]);
    let r = f();
    set_capabilities(&caps);
    // SAFETY: as above.
    unsafe {
        libc::syscall(libc::SYS_setfsuid, 0);
        libc::syscall(libc::SYS_setfsgid, 0);
        assert_eq!(libc::syscall(libc::SYS_setgroups, n, saved.as_ptr()), 0);
    }
    r
}

/// Apply `op` under `root`, with this side's descriptors.
pub fn apply(op: &Op, root: &Path, fds: &mut Fds) -> Outcome {
    if let Op::AsUser {
        uid,
        gid,
        groups,
        op,
    } = op
    {
        return as_user(*uid, *gid, groups, || apply(op, root, fds));
    }
    let p = |rel: &str| root.join(rel);
    let done = |r: i64| check(r).map(|_| Value::Done);
    // SAFETY (all calls below): paths are NUL-terminated CStrings that live
    // across the call; buffers are valid for the lengths passed; descriptors
    // are ours.
    unsafe {
        match op {
            Op::WriteFile {
                path,
                excl,
                trunc,
                append,
                at,
                len,
                seed,
                mode,
            } => {
                let mut flags = libc::O_WRONLY | libc::O_CREAT;
                if *excl {
                    flags |= libc::O_EXCL;
                }
                if *trunc {
                    flags |= libc::O_TRUNC;
                }
                if *append {
                    flags |= libc::O_APPEND;
                }
                let fd = open(&p(path), flags, *mode)?;
                with_fd(fd, write_at(fd, *at, *len, *seed))
            }
            Op::Mknod {
                path,
                kind,
                perm,
                major,
                minor,
            } => done(libc::mknod(
                cpath(&p(path)).as_ptr(),
                kind.mode_bits() | perm,
                libc::makedev(*major, *minor),
            ) as i64),
            Op::Mkdir { path, perm } => done(libc::mkdir(cpath(&p(path)).as_ptr(), *perm) as i64),
            Op::Rmdir { path } => done(libc::rmdir(cpath(&p(path)).as_ptr()) as i64),
            Op::Unlink { path } => done(libc::unlink(cpath(&p(path)).as_ptr()) as i64),
            Op::Link { from, to } => {
                done(libc::link(cpath(&p(from)).as_ptr(), cpath(&p(to)).as_ptr()) as i64)
            }
            Op::Symlink { target, path } => {
                let t = CString::new(target.as_bytes()).expect("no NUL");
                done(libc::symlink(t.as_ptr(), cpath(&p(path)).as_ptr()) as i64)
            }
            Op::Rename { from, to, flags } => done(libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                cpath(&p(from)).as_ptr(),
                libc::AT_FDCWD,
                cpath(&p(to)).as_ptr(),
                flags.bits(),
            )),
            Op::Truncate { path, size } => {
                done(libc::truncate(cpath(&p(path)).as_ptr(), *size as i64) as i64)
            }
            Op::Fallocate {
                path,
                mode,
                off,
                len,
            } => {
                let fd = open(&p(path), libc::O_WRONLY, 0)?;
                let r = check(libc::fallocate(fd, *mode, *off as i64, *len as i64) as i64)
                    .map(|_| Value::Done);
                with_fd(fd, r)
            }
            Op::Chmod { path, mode } => done(libc::chmod(cpath(&p(path)).as_ptr(), *mode) as i64),
            Op::Chown {
                path,
                uid,
                gid,
                nofollow,
            } => done(libc::fchownat(
                libc::AT_FDCWD,
                cpath(&p(path)).as_ptr(),
                uid.unwrap_or(u32::MAX),
                gid.unwrap_or(u32::MAX),
                if *nofollow {
                    libc::AT_SYMLINK_NOFOLLOW
                } else {
                    0
                },
            ) as i64),
            Op::Utimens {
                path,
                atime,
                mtime,
                nofollow,
            } => {
                let ts = [timespec(atime), timespec(mtime)];
                done(libc::utimensat(
                    libc::AT_FDCWD,
                    cpath(&p(path)).as_ptr(),
                    ts.as_ptr(),
                    if *nofollow {
                        libc::AT_SYMLINK_NOFOLLOW
                    } else {
                        0
                    },
                ) as i64)
            }
            Op::Stat { path } => StatInfo::lstat(&p(path)).map(Value::Stat),
            Op::Read { path, off, len } => {
                let fd = open(&p(path), libc::O_RDONLY, 0)?;
                with_fd(fd, read_at(fd, *off, *len))
            }
            Op::Readlink { path } => read_link(&p(path)).map(Value::Target),
            Op::Readdir { path } => read_names(&p(path)).map(Value::Names),
            Op::Statfs => statfs(root).map(Value::Statfs),
            Op::FdOpen {
                slot,
                path,
                creat,
                trunc,
                append,
            } => {
                let _ = fds.close(*slot);
                let mut flags = libc::O_RDWR;
                if *creat {
                    flags |= libc::O_CREAT;
                }
                if *trunc {
                    flags |= libc::O_TRUNC;
                }
                if *append {
                    flags |= libc::O_APPEND;
                }
                let fd = open(&p(path), flags, 0o644)?;
                fds.fds[*slot as usize] = Some(fd);
                Ok(Value::Done)
            }
            Op::FdWrite {
                slot,
                at,
                len,
                seed,
            } => write_at(fds.get(*slot)?, *at, *len, *seed),
            Op::FdRead { slot, off, len } => read_at(fds.get(*slot)?, *off, *len),
            Op::FdStat { slot } => StatInfo::fstat(fds.get(*slot)?).map(Value::Stat),
            Op::FdTruncate { slot, size } => {
                done(libc::ftruncate(fds.get(*slot)?, *size as i64) as i64)
            }
            Op::FdClose { slot } => fds.close(*slot).map(|_| Value::Done),
            Op::SetXattr {
                path,
                nofollow,
                name,
                value,
                flags,
            } => xattr::set(
                Target::Path(&p(path), *nofollow),
                name,
                &value.bytes(),
                *flags,
            ),
            Op::GetXattr {
                path,
                nofollow,
                name,
                size,
            } => xattr::get(Target::Path(&p(path), *nofollow), name, *size),
            Op::ListXattr {
                path,
                nofollow,
                size,
            } => xattr::list(Target::Path(&p(path), *nofollow), *size),
            Op::RemoveXattr {
                path,
                nofollow,
                name,
            } => xattr::remove(Target::Path(&p(path), *nofollow), name),
            Op::FdSetXattr {
                slot,
                name,
                value,
                flags,
            } => xattr::set(Target::Fd(fds.get(*slot)?), name, &value.bytes(), *flags),
            Op::FdGetXattr { slot, name, size } => {
                xattr::get(Target::Fd(fds.get(*slot)?), name, *size)
            }
            // The runner walks the trees itself.
            Op::CheckTrees | Op::AsUser { .. } => Ok(Value::Done),
        }
    }
}

/// syncfs on a mount, so block counts and free counts reflect allocation
/// (the kernel side allocates lazily at write-back).
pub fn sync_mount(root: &Path) {
    if let Ok(f) = std::fs::File::open(root) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}
