//! Extended attributes by path (following symlinks), and the daemon's own
//! attributes on the mount's root (`ext2mfr.*`: control and counters).

use super::sys::{cpath, cvt};
use std::ffi::CString;
use std::io;
use std::path::Path;

/// getxattr with a buffer of `size` bytes; `size` 0 is the size query,
/// whose answer comes back as that many zeros.
pub fn getxattr(p: &Path, name: &str, size: usize) -> io::Result<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; size];
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe { libc::getxattr(cpath(p).as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(if size == 0 { 0 } else { r as usize });
    if size == 0 {
        buf = vec![0; r as usize]; // the size query: report the length as zeros
    }
    Ok(buf)
}

/// The raw listxattr answer: names, each ended by a NUL.
pub fn listxattr(p: &Path) -> io::Result<Vec<u8>> {
    // SAFETY: a valid C string; a null buffer of length 0 asks for the size.
    let r = unsafe { libc::listxattr(cpath(p).as_ptr(), std::ptr::null_mut(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; r as usize];
    // SAFETY: a valid C string and a buffer of the given length.
    let r = unsafe { libc::listxattr(cpath(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// The attribute names listxattr reports, in its order; panics on an error.
pub fn xattr_names(p: &Path) -> Vec<String> {
    let buf = listxattr(p).unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display()));
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn setxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    setxattr_flags(p, name, value, 0)
}

/// setxattr with `flags` (XATTR_CREATE, XATTR_REPLACE).
pub fn setxattr_flags(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a value buffer of the given length.
    cvt(unsafe {
        libc::setxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// A POSIX ACL in the xattr form setfacl(1) passes to setxattr: version 2,
/// then (tag, perm, id) per entry. Tags: 1 user::, 2 user:id, 4 group::,
/// 8 group:id, 0x10 mask, 0x20 other.
pub fn acl_xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

pub fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings.
    cvt(unsafe { libc::removexattr(cpath(p).as_ptr(), n.as_ptr()) })
}

/// Write one of the daemon's control attributes on the mount's root
/// (`ext2mfr.inject`, `ext2mfr.fault_after`).
pub fn control(mnt: &Path, name: &str, value: &str) {
    if let Err(e) = setxattr(mnt, name, value.as_bytes()) {
        panic!("setting {name}: {e}");
    }
}

/// The daemon's counters (the `ext2mfr.stats` attribute of the root).
pub fn counters(mnt: &Path) -> serde_json::Value {
    let buf =
        getxattr(mnt, "ext2mfr.stats", 1 << 16).unwrap_or_else(|e| panic!("reading counters: {e}"));
    assert!(!buf.is_empty(), "reading counters: an empty answer");
    serde_json::from_slice(&buf).unwrap()
}
