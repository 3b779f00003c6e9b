//! Extended attributes through system calls: the xattr ops applied to one
//! mount (by path, following symlinks or not, and by descriptor), and one
//! node's whole set of attributes for the tree walk. Both sides run these
//! same functions, as with apply.rs.

use super::apply::{cpath, fnv, Outcome, Value};
use super::ops::{acl_parse, acl_text, hex, ACL_ACCESS, ACL_DEFAULT};
use std::ffi::CString;
use std::path::Path;

/// The largest value or list the kernel passes (XATTR_SIZE_MAX): a buffer
/// of this size never answers ERANGE.
pub const SIZE_MAX: u32 = 65536;

/// Where a call goes: a path (lxxx with `nofollow`) or a descriptor.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Path(&'a Path, bool),
    Fd(i32),
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn cname(name: &str) -> CString {
    CString::new(name).expect("xattr names have no NUL")
}

pub fn set(t: Target, name: &str, value: &[u8], flags: i32) -> Outcome {
    let n = cname(name);
    let (v, len) = (value.as_ptr().cast(), value.len());
    // SAFETY: NUL-terminated strings and a value valid for `len` bytes.
    let r = unsafe {
        match t {
            Target::Path(p, false) => libc::setxattr(cpath(p).as_ptr(), n.as_ptr(), v, len, flags),
            Target::Path(p, true) => libc::lsetxattr(cpath(p).as_ptr(), n.as_ptr(), v, len, flags),
            Target::Fd(fd) => libc::fsetxattr(fd, n.as_ptr(), v, len, flags),
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(Value::Done)
    }
}

/// getxattr into a buffer of `size` bytes: the value's length for the size
/// query (0), else the bytes as a Value::Data.
pub fn get(t: Target, name: &str, size: u32) -> Outcome {
    let n = cname(name);
    let mut buf = vec![0u8; size as usize];
    let (b, len) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: NUL-terminated strings and a buffer valid for `len` bytes.
    let r = unsafe {
        match t {
            Target::Path(p, false) => libc::getxattr(cpath(p).as_ptr(), n.as_ptr(), b, len),
            Target::Path(p, true) => libc::lgetxattr(cpath(p).as_ptr(), n.as_ptr(), b, len),
            Target::Fd(fd) => libc::fgetxattr(fd, n.as_ptr(), b, len),
        }
    };
    if r < 0 {
        return Err(errno());
    }
    if size == 0 {
        return Ok(Value::Count(r as u64));
    }
    buf.truncate(r as usize);
    Ok(Value::Data {
        len: buf.len(),
        hash: fnv(&buf),
    })
}

/// listxattr into a buffer of `size` bytes: the list's length for the
/// size query, else the names in the driver's order.
pub fn list(t: Target, size: u32) -> Outcome {
    let mut buf = vec![0u8; size as usize];
    let (b, len) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: a NUL-terminated path and a buffer valid for `len` bytes.
    let r = unsafe {
        match t {
            Target::Path(p, false) => libc::listxattr(cpath(p).as_ptr(), b, len),
            Target::Path(p, true) => libc::llistxattr(cpath(p).as_ptr(), b, len),
            Target::Fd(fd) => libc::flistxattr(fd, b, len),
        }
    };
    if r < 0 {
        return Err(errno());
    }
    if size == 0 {
        return Ok(Value::Count(r as u64));
    }
    buf.truncate(r as usize);
    Ok(Value::Names(names(&buf)))
}

fn names(buf: &[u8]) -> Vec<String> {
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn remove(t: Target, name: &str) -> Outcome {
    let n = cname(name);
    // SAFETY: NUL-terminated strings.
    let r = unsafe {
        match t {
            Target::Path(p, false) => libc::removexattr(cpath(p).as_ptr(), n.as_ptr()),
            Target::Path(p, true) => libc::lremovexattr(cpath(p).as_ptr(), n.as_ptr()),
            Target::Fd(fd) => libc::fremovexattr(fd, n.as_ptr()),
        }
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(Value::Done)
    }
}

/// Every attribute of the node at `p` (not following a symlink): names
/// sorted (listing order is compared by the listxattr op, not here), each
/// with its value or the errno reading it failed with.
pub type Xattrs = Result<Vec<(String, Result<Vec<u8>, i32>)>, i32>;

pub fn read_all(p: &Path) -> Xattrs {
    let t = Target::Path(p, true);
    let Value::Names(mut names) = list(t, SIZE_MAX)? else {
        unreachable!("a list with a buffer answers names");
    };
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| {
            let v = value(p, &n);
            (n, v)
        })
        .collect())
}

fn value(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let n = cname(name);
    let mut buf = vec![0u8; SIZE_MAX as usize];
    // SAFETY: NUL-terminated strings and a buffer of SIZE_MAX bytes.
    let r = unsafe {
        libc::lgetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        return Err(errno());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// A value for a report: an ACL as getfacl's short form, short text as
/// text, anything else as its length and hash (short binary: hex).
pub fn describe(name: &str, v: &Result<Vec<u8>, i32>) -> String {
    let v = match v {
        Ok(v) => v,
        Err(e) => return format!("Err({})", super::apply::errno_name(*e)),
    };
    if name == ACL_ACCESS || name == ACL_DEFAULT {
        if let Some((2, e)) = acl_parse(v) {
            return format!("acl[{}]", acl_text(&e));
        }
    }
    if v.len() <= 32 && v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return format!("{:?}", String::from_utf8_lossy(v));
    }
    if v.len() <= 24 {
        return format!("raw[{}]", hex(v));
    }
    format!("{} bytes (hash {:016x})", v.len(), fnv(v))
}
