//! Our own FUSE session: /dev/fuse opened, the mount made with mount(2)
//! (as fuser does as root: `fd=,rootmode=,user_id=,group_id=`), INIT
//! answered with the capabilities this daemon wants, and the unmount.

use super::abi::{self, init, InHeader, Reader};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What the mount shows and allows.
#[derive(Clone, Debug)]
pub struct MountParams {
    /// The source column of /proc/mounts (the image's absolute path).
    pub fsname: String,
    /// The type is `fuse.SUBTYPE`.
    pub subtype: String,
    pub allow_other: bool,
    pub read_only: bool,
    pub dev: bool,
    pub suid: bool,
    pub exec: bool,
    pub atime: bool,
}

/// What INIT settled.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// The kernel's protocol minor version.
    pub kernel_minor: u32,
    pub flags: u64,
    pub max_write: u32,
    /// The payload a request or reply may carry: what a ring entry's
    /// payload buffer must hold (the kernel refuses smaller ones).
    pub max_payload: usize,
    /// The kernel accepted FUSE over io_uring: requests now go to ring
    /// entries (and wait until every queue has one).
    pub uring: bool,
}

/// The largest write we take (as with fuser: `set_max_write(1 << 20)`).
pub const MAX_WRITE: u32 = 1 << 20;

/// A /dev/fuse buffer big enough for any request: a write of `MAX_WRITE`
/// with its headers.
pub const DEV_BUFFER: usize = MAX_WRITE as usize + 4096;

/// Open /dev/fuse and mount it on `mountpoint`.
pub fn mount(mountpoint: &Path, p: &MountParams) -> io::Result<File> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let rootmode = std::fs::metadata(mountpoint)?.permissions().mode();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={:o},user_id={uid},group_id={gid},default_permissions,subtype={}",
        dev.as_raw_fd(),
        rootmode,
        p.subtype
    );
    if p.allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = 0;
    for (on, f) in [
        (p.read_only, libc::MS_RDONLY),
        (!p.dev, libc::MS_NODEV),
        (!p.suid, libc::MS_NOSUID),
        (!p.exec, libc::MS_NOEXEC),
        (!p.atime, libc::MS_NOATIME),
    ] {
        if on {
            flags |= f;
        }
    }
    let c = |s: &[u8]| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let source = c(p.fsname.as_bytes())?;
    let target = c(mountpoint.as_os_str().as_bytes())?;
    let data = c(data.as_bytes())?;
    // SAFETY: valid C strings; the kernel copies them.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"fuse".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(dev)
}

/// Unmount (lazily if busy, so that the session ends either way).
pub fn unmount(mountpoint: &Path) -> io::Result<()> {
    let target = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        // SAFETY: as above.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
    }
    Err(e)
}

/// The capabilities asked for, as the fuser adapter asks for them (see
/// `FuseFs::init` in fuse.rs for why each one), with fuser's own defaults
/// (async reads, big writes, max_pages).
const WANTED: u64 = init::ASYNC_READ
    | init::BIG_WRITES
    | init::MAX_PAGES
    | init::PARALLEL_DIROPS
    | init::NO_OPEN_SUPPORT
    | init::CACHE_SYMLINKS
    | init::POSIX_ACL
    | init::DONT_MASK
    | init::EXPORT_SUPPORT
    | init::HANDLE_KILLPRIV_V2;

/// Read the kernel's INIT from `dev` and answer it; with `uring`, offer to
/// take requests over io_uring when the kernel does; with
/// `writeback_cache`, ask for FUSE_WRITEBACK_CACHE (see `FuseFs::init`).
pub fn negotiate(dev: &File, uring: bool, writeback_cache: bool) -> io::Result<Conn> {
    let mut buf = vec![0u8; DEV_BUFFER];
    let n = loop {
        // SAFETY: reads into our buffer of its length.
        let n = unsafe { libc::read(dev.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed INIT from the kernel");
    let mut r = Reader::new(&buf[..n]);
    let h: InHeader = r.take().map_err(|_| bad())?;
    if h.opcode != abi::opcode::INIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected INIT, got opcode {}", h.opcode),
        ));
    }
    let i: abi::InitIn = r.take().map_err(|_| bad())?;
    let mut offered = i.flags as u64;
    if offered & init::INIT_EXT != 0 {
        let x: abi::InitInExt = r.take().map_err(|_| bad())?;
        offered |= (x.flags2 as u64) << 32;
    }
    let out = |error: i32, body: &[u8]| -> io::Result<()> {
        let oh = abi::OutHeader {
            len: (16 + body.len()) as u32,
            error,
            unique: h.unique,
        };
        let mut msg = bytemuck::bytes_of(&oh).to_vec();
        msg.extend_from_slice(body);
        // SAFETY: writes our buffer of its length.
        let w = unsafe { libc::write(dev.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        if w < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    if i.major != abi::KERNEL_VERSION || i.minor < 31 {
        // (7.31 brought HANDLE_KILLPRIV_V2's era; older kernels are not
        // ours to serve.)
        out(-libc::EPROTO, &[])?;
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("FUSE protocol {}.{} is too old", i.major, i.minor),
        ));
    }
    let mut wanted = WANTED;
    if uring {
        wanted |= init::OVER_IO_URING;
    }
    if writeback_cache {
        wanted |= init::WRITEBACK_CACHE;
    }
    for (flag, name) in [
        (init::PARALLEL_DIROPS, "PARALLEL_DIROPS"),
        (init::NO_OPEN_SUPPORT, "NO_OPEN_SUPPORT"),
        (init::CACHE_SYMLINKS, "CACHE_SYMLINKS"),
        (init::POSIX_ACL, "POSIX_ACL"),
        (init::DONT_MASK, "DONT_MASK"),
        (init::EXPORT_SUPPORT, "EXPORT_SUPPORT"),
        (init::OVER_IO_URING, "OVER_IO_URING"),
        (init::WRITEBACK_CACHE, "WRITEBACK_CACHE"),
    ] {
        if wanted & flag != 0 && offered & flag == 0 {
            log::warn!("the kernel does not offer FUSE_{name}");
        }
    }
    let flags = (wanted & offered) | (offered & init::INIT_EXT);
    let page = 4096u32;
    let max_pages = MAX_WRITE.max(i.max_readahead).div_ceil(page);
    let reply = abi::InitOut {
        major: abi::KERNEL_VERSION,
        minor: abi::KERNEL_MINOR_VERSION,
        max_readahead: i.max_readahead,
        flags: flags as u32,
        max_background: 16,
        congestion_threshold: 12,
        max_write: MAX_WRITE,
        time_gran: 1,
        max_pages: max_pages as u16,
        flags2: (flags >> 32) as u32,
        ..Default::default()
    };
    out(0, bytemuck::bytes_of(&reply))?;
    Ok(Conn {
        kernel_minor: i.minor,
        flags,
        max_write: MAX_WRITE,
        // The kernel's ring payload: max(8 KiB, max_write, max_pages pages).
        max_payload: (abi::MIN_READ_BUFFER)
            .max(MAX_WRITE as usize)
            .max(max_pages as usize * page as usize),
        uring: flags & init::OVER_IO_URING != 0,
    })
}
