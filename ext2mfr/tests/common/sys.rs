//! System calls std does not offer, by path, as `io::Result`s; the errno of
//! a failure (`errno_of`, `assert_errno!`); waiting for the daemon to catch
//! up; running a shell command as another user.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A path as a C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A libc return value (0 or -1) as an `io::Result`.
pub fn cvt(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The errno of an error that must be there.
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("error without errno: {e}")),
    }
}

/// `assert_errno!(fs::metadata(p), libc::ENOENT)`: the call fails with
/// exactly that errno (the message names the call and both errnos).
#[allow(unused_macros)]
macro_rules! assert_errno {
    ($e:expr, $errno:expr) => {{
        let got = $crate::common::sys::errno_of($e);
        assert_eq!(
            got,
            $errno,
            "{}: expected '{}', got '{}'",
            stringify!($e),
            ::std::io::Error::from_raw_os_error($errno),
            ::std::io::Error::from_raw_os_error(got)
        );
    }};
}
pub(crate) use assert_errno;

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn mknod(p: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: a valid C string.
    cvt(unsafe { libc::mknod(cpath(p).as_ptr(), mode as libc::mode_t, dev) })
}

/// renameat2 with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE, ...).
pub fn rename2(a: &Path, b: &Path, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: valid C strings.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cpath(a).as_ptr(),
            libc::AT_FDCWD,
            cpath(b).as_ptr(),
            flags,
        )
    })
}

/// chown(2) (follows symlinks; `u32::MAX` is -1, "no change").
pub fn chown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid C string.
    cvt(unsafe { libc::chown(cpath(p).as_ptr(), uid, gid) })
}

pub fn truncate(p: &Path, len: u64) -> io::Result<()> {
    // SAFETY: a valid C string.
    cvt(unsafe { libc::truncate(cpath(p).as_ptr(), len as libc::off_t) })
}

pub fn access(p: &Path, mode: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid C string.
    cvt(unsafe { libc::access(cpath(p).as_ptr(), mode) })
}

/// utimensat with (seconds, nanoseconds), or UTIME_NOW / UTIME_OMIT in the
/// nanoseconds field; `flags` 0 or AT_SYMLINK_NOFOLLOW.
pub fn utimensat(
    p: &Path,
    atime: (i64, i64),
    mtime: (i64, i64),
    flags: libc::c_int,
) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as _,
        },
    ];
    // SAFETY: a valid C string and two timespecs.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), ts.as_ptr(), flags) })
}

/// utimensat following symlinks (see [`utimensat`]).
pub fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    utimensat(p, atime, mtime, 0)
}

pub fn statfs(p: &Path) -> libc::statfs {
    // SAFETY: a valid C string and an out-parameter of the right type.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statfs(cpath(p).as_ptr(), &mut s) }).expect("statfs");
    s
}

pub fn statvfs(p: &Path) -> libc::statvfs {
    // SAFETY: a valid C string and an out-parameter of the right type.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if let Err(e) = cvt(unsafe { libc::statvfs(cpath(p).as_ptr(), &mut s) }) {
        panic!("statvfs: {e}");
    }
    s
}

/// Drop the file's pages from the kernel page cache, so the next read asks
/// the daemon (FUSE pages are clean: writes go through to the daemon).
pub fn drop_cache(f: &File) {
    // SAFETY: an open descriptor.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise");
}

/// (name, d_ino, d_type) of every entry, "." and ".." included, as getdents reports them.
pub fn raw_readdir(p: &Path) -> Vec<(Vec<u8>, u64, u8)> {
    let mut out = Vec::new();
    // SAFETY: a valid C string; the stream is used until closedir only.
    unsafe {
        let d = libc::opendir(cpath(p).as_ptr());
        assert!(
            !d.is_null(),
            "opendir {}: {}",
            p.display(),
            io::Error::last_os_error()
        );
        loop {
            let e = libc::readdir64(d);
            if e.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_bytes()
                .to_vec();
            out.push((name, (*e).d_ino, (*e).d_type));
        }
        libc::closedir(d);
    }
    out
}

/// The names in a directory (without "." and ".."), sorted.
pub fn names_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Poll `cond` until it holds; fail after 5 s. For what the daemon does a
/// moment after the call returns (freeing an inode once the kernel forgets
/// it, an atime update after a read).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a shell script as nobody (uid and gid 65534; std drops root's
/// supplementary groups with them); whether it succeeded.
pub fn sh_as_nobody(script: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .status()
        .expect("run sh")
        .success()
}

/// The tests mount, run mount(8), change owners and act as other users:
/// they run as root (the CI does). Fail, rather than pass without testing.
pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests must run as root (euid {euid})");
}

/// Run `f` on a thread of its own as another user: its file-system uid
/// and gid (which also drop root's file capabilities: CAP_FSETID,
/// CAP_FOWNER, CAP_DAC_OVERRIDE...) and supplementary groups. Raw system
/// calls: they change that thread only (glibc's setgroups changes every
/// thread of the process).
pub fn on_thread_as<T: Send>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain values and a slice that lives across the call.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
                    0
                );
                libc::syscall(libc::SYS_setfsgid, gid);
                libc::syscall(libc::SYS_setfsuid, uid);
            }
            f()
        })
        .join()
        .expect("thread as another user")
    })
}
