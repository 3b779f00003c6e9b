//! What every FUSE transport translates the same way (the fuser adapter in
//! `fuse.rs` and our own message layer in `transport/`): inode numbers,
//! errors, cache lifetimes, file-type bits, ioctls and the size protocol of
//! xattr replies. Kept here so that neither transport has its own copy.

use crate::error::FsError;
use crate::format::inode::{FileKind, ROOT_INO};
use crate::request::{Reply, Request as Op};
use std::time::Duration;

/// How long the kernel may cache attributes and names. Every change goes
/// through this daemon and the kernel (the image is locked against a second
/// mount; a reply leaves only after its domain commits), and the kernel
/// drops what each change makes stale, so its caches stay right however
/// long it keeps them. A long time spares a LOOKUP per path component
/// whose entry would otherwise have expired.
pub const TTL: Duration = Duration::from_secs(3600);

/// Whether a LOOKUP's answer becomes a negative entry (node id 0, valid
/// for [`TTL`]) rather than ENOENT: the kernel then keeps the name's
/// negative dentry and asks no more until something creates the name,
/// which only the kernel itself can do here (every change goes through it,
/// and it instantiates the dentry it created, links or renames onto).
/// With ENOENT it keeps the negative dentry without a lifetime, so every
/// later walk of a missing name (a `stat` of a file not there, a search
/// along a path list) was a LOOKUP. "." and ".." keep ENOENT: those are the
/// kernel decoding a file handle, where an answer without an inode and an
/// ENOENT both mean ESTALE, so nothing is saved and nothing changes.
pub fn negative_entry(r: &Result<Reply, FsError>, name: &[u8]) -> bool {
    matches!(r, Err(e) if e.errno() == libc::ENOENT) && name != b"." && name != b".."
}

/// FUSE calls the root 1; ext2 calls it 2 (ext2's inode 1, the bad-blocks
/// inode, is never exposed). FUSE's 2 is then no inode: the kernel never
/// gets it from us, and a file handle naming it (made up) must not reach
/// the root under a second number, so it becomes 0, which no request
/// finds. A number beyond 32 bits is no ext2 inode either.
pub fn ino_to_ext2(ino: u64) -> u32 {
    match ino {
        1 => ROOT_INO,
        n if n == ROOT_INO as u64 || n > u32::MAX as u64 => 0,
        n => n as u32,
    }
}

pub fn ino_to_fuse(ino: u32) -> u64 {
    if ino == ROOT_INO {
        1
    } else {
        ino as u64
    }
}

/// The errno of a failed request (or of a reply of the wrong kind, which
/// would be a bug in the request layer).
pub fn failure(r: Result<Reply, FsError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(other) => {
            log::error!("unexpected reply {other:?}");
            libc::EIO
        }
    }
}

/// The `S_IFMT` bits of a file kind.
pub fn type_bits(k: FileKind) -> u32 {
    match k {
        FileKind::Regular => libc::S_IFREG,
        FileKind::Directory => libc::S_IFDIR,
        FileKind::Symlink => libc::S_IFLNK,
        FileKind::CharDevice => libc::S_IFCHR,
        FileKind::BlockDevice => libc::S_IFBLK,
        FileKind::Fifo => libc::S_IFIFO,
        FileKind::Socket => libc::S_IFSOCK,
    }
}

/// A directory entry's `d_type`.
pub fn dirent_type(k: FileKind) -> u32 {
    type_bits(k) >> 12
}

/// The ioctls the kernel's FUSE sends a file system: only FS_IOC_GETFLAGS
/// and FS_IOC_SETFLAGS (lsattr, chattr) for regular files and directories,
/// with a 4-byte int, or FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR with a
/// `struct fsxattr` (fuse_fileattr_get/set); the 32-bit numbers are those
/// of a 32-bit caller. Anything else is ENOTTY.
pub mod ioctl {
    pub const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
    pub const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
    pub const FS_IOC32_GETFLAGS: u32 = 0x8004_6601;
    pub const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
    pub const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
    pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
    /// `struct fsxattr`: xflags, extsize, nextents, projid, cowextsize
    /// (u32 each), 8 bytes of padding.
    pub const FSXATTR_SIZE: usize = 28;
}

/// The request an ioctl asks for (`Err`: its errno).
pub fn ioctl_request(ino: u32, cmd: u32, in_data: &[u8]) -> Result<Op<'static>, i32> {
    use ioctl::*;
    let word = |at: usize| {
        in_data
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    Ok(match cmd {
        FS_IOC_FSGETXATTR => Op::GetXflags { ino },
        FS_IOC_FSSETXATTR if in_data.len() >= FSXATTR_SIZE => Op::SetXflags {
            ino,
            xflags: word(0).ok_or(libc::EINVAL)?,
            projid: word(12).ok_or(libc::EINVAL)?,
        },
        FS_IOC_GETFLAGS | FS_IOC32_GETFLAGS => Op::GetFlags { ino },
        FS_IOC_SETFLAGS | FS_IOC32_SETFLAGS => Op::SetFlags {
            ino,
            flags: word(0).ok_or(libc::EINVAL)?,
        },
        _ => return Err(libc::ENOTTY),
    })
}

/// The bytes an ioctl answers (at most `out_size`), or its errno.
pub fn ioctl_reply(cmd: u32, r: Result<Reply, FsError>, out_size: u32) -> Result<Vec<u8>, i32> {
    let mut b = match r {
        Ok(Reply::Flags(f)) if cmd == ioctl::FS_IOC_FSGETXATTR => {
            let mut b = vec![0u8; ioctl::FSXATTR_SIZE];
            b[..4].copy_from_slice(&f.to_ne_bytes());
            b
        }
        Ok(Reply::Flags(f)) => f.to_ne_bytes().to_vec(),
        Ok(Reply::Done) => Vec::new(),
        other => return Err(failure(other)),
    };
    b.truncate(out_size as usize);
    Ok(b)
}

/// What a getxattr or listxattr answers.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrAnswer {
    /// The caller asked with size 0: the value's size only.
    Size(u32),
    Data(Vec<u8>),
}

/// A value, or its size when the caller asked with size 0 (ERANGE when it
/// does not fit the caller's buffer).
pub fn xattr_answer(r: Result<Reply, FsError>, size: u32) -> Result<XattrAnswer, i32> {
    match r {
        Ok(Reply::Data(v)) if size == 0 => Ok(XattrAnswer::Size(v.len() as u32)),
        Ok(Reply::Data(v)) if v.len() > size as usize => Err(libc::ERANGE),
        Ok(Reply::Data(v)) => Ok(XattrAnswer::Data(v)),
        other => Err(failure(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_both_ways_and_fuse_two_is_nothing() {
        assert_eq!(ino_to_ext2(1), ROOT_INO);
        assert_eq!(ino_to_fuse(ROOT_INO), 1);
        assert_eq!(ino_to_ext2(2), 0);
        assert_eq!(ino_to_ext2(1 << 33), 0);
        assert_eq!(ino_to_ext2(12), 12);
    }

    #[test]
    fn ioctls_checked() {
        assert!(matches!(
            ioctl_request(5, ioctl::FS_IOC_SETFLAGS, &[1, 0, 0, 0]),
            Ok(Op::SetFlags { ino: 5, flags: 1 })
        ));
        assert_eq!(
            ioctl_request(5, ioctl::FS_IOC_SETFLAGS, &[1]).unwrap_err(),
            libc::EINVAL
        );
        // (A short fsxattr is no ioctl we know, as before.)
        assert_eq!(
            ioctl_request(5, ioctl::FS_IOC_FSSETXATTR, &[0; 8]).unwrap_err(),
            libc::ENOTTY
        );
        assert_eq!(ioctl_request(5, 0x1234, &[]).unwrap_err(), libc::ENOTTY);
        let b = ioctl_reply(ioctl::FS_IOC_FSGETXATTR, Ok(Reply::Flags(7)), 100).unwrap();
        assert_eq!(b.len(), ioctl::FSXATTR_SIZE);
        assert_eq!(&b[..4], &7u32.to_ne_bytes());
    }

    #[test]
    fn only_a_missing_name_is_a_negative_entry() {
        assert!(negative_entry(&Err(FsError::NotFound), b"x"));
        assert!(!negative_entry(&Err(FsError::NotFound), b"."));
        assert!(!negative_entry(&Err(FsError::NotFound), b".."));
        assert!(!negative_entry(&Err(FsError::Access), b"x"));
        assert!(!negative_entry(&Ok(Reply::Done), b"x"));
    }

    #[test]
    fn xattr_size_protocol() {
        let v = || Ok(Reply::Data(b"abc".to_vec()));
        assert_eq!(xattr_answer(v(), 0), Ok(XattrAnswer::Size(3)));
        assert_eq!(xattr_answer(v(), 2), Err(libc::ERANGE));
        assert_eq!(xattr_answer(v(), 3), Ok(XattrAnswer::Data(b"abc".to_vec())));
    }
}
