//! The FUSE wire format (`include/uapi/linux/fuse.h`) for the messages this
//! daemon reads and writes: `#[repr(C)]` structs that are plain bytes
//! (bytemuck `Pod`), read out of a message with [`Reader`], which checks
//! every length, so a short or malformed message is an error, never a panic.
//!
//! Only what ext2mfr serves is here; every other opcode is answered ENOSYS
//! by the dispatcher.

use bytemuck::{Pod, Zeroable};

/// The protocol this layer speaks: 7.42 is the first with FUSE over
/// io_uring (`FUSE_OVER_IO_URING`, the ring header structs).
pub const KERNEL_VERSION: u32 = 7;
pub const KERNEL_MINOR_VERSION: u32 = 42;

/// The kernel refuses a read of /dev/fuse into less than this (and a ring
/// payload buffer must be at least as big).
pub const MIN_READ_BUFFER: usize = 8192;

pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const RENAME2: u32 = 45;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
}

/// INIT flags (the upper 32 bits travel in `flags2` with `INIT_EXT`).
pub mod init {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const EXPORT_SUPPORT: u64 = 1 << 4;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DONT_MASK: u64 = 1 << 6;
    pub const WRITEBACK_CACHE: u64 = 1 << 16;
    pub const NO_OPEN_SUPPORT: u64 = 1 << 17;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const POSIX_ACL: u64 = 1 << 20;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const CACHE_SYMLINKS: u64 = 1 << 23;
    pub const HANDLE_KILLPRIV_V2: u64 = 1 << 28;
    pub const INIT_EXT: u64 = 1 << 30;
    pub const OVER_IO_URING: u64 = 1 << 41;
}

/// `fuse_setattr_in.valid` bits.
pub mod fattr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const CTIME: u32 = 1 << 10;
}

/// `fuse_write_in.write_flags`: the writer lacks CAP_FSETID.
pub const WRITE_KILL_SUIDGID: u32 = 1 << 2;

/// `fuse_getattr_in.getattr_flags`: `fh` is valid (the kernel asks through
/// an open file).
pub const GETATTR_FH: u32 = 1 << 0;

macro_rules! pod {
    ($(#[$m:meta])* $name:ident { $($f:ident: $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
        pub struct $name { $(pub $f: $t),* }
    };
}

pod!(InHeader {
    len: u32,
    opcode: u32,
    unique: u64,
    nodeid: u64,
    uid: u32,
    gid: u32,
    pid: u32,
    total_extlen: u16,
    padding: u16
});
pod!(OutHeader {
    len: u32,
    error: i32,
    unique: u64
});
pod!(InitIn {
    major: u32,
    minor: u32,
    max_readahead: u32,
    flags: u32
});
pod!(
    /// The part of `fuse_init_in` after the first 16 bytes (7.36+).
    InitInExt { flags2: u32, unused: [u32; 11] }
);
pod!(InitOut {
    major: u32,
    minor: u32,
    max_readahead: u32,
    flags: u32,
    max_background: u16,
    congestion_threshold: u16,
    max_write: u32,
    time_gran: u32,
    max_pages: u16,
    map_alignment: u16,
    flags2: u32,
    max_stack_depth: u32,
    request_timeout: u16,
    unused: [u16; 11],
});
pod!(Attr {
    ino: u64,
    size: u64,
    blocks: u64,
    atime: u64,
    mtime: u64,
    ctime: u64,
    atimensec: u32,
    mtimensec: u32,
    ctimensec: u32,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    rdev: u32,
    blksize: u32,
    flags: u32,
});
pod!(EntryOut {
    nodeid: u64,
    generation: u64,
    entry_valid: u64,
    attr_valid: u64,
    entry_valid_nsec: u32,
    attr_valid_nsec: u32,
    attr: Attr
});
pod!(AttrOut {
    attr_valid: u64,
    attr_valid_nsec: u32,
    dummy: u32,
    attr: Attr
});
pod!(OpenOut {
    fh: u64,
    open_flags: u32,
    backing_id: i32
});
pod!(WriteOut {
    size: u32,
    padding: u32
});
pod!(GetxattrOut {
    size: u32,
    padding: u32
});
pod!(Kstatfs {
    blocks: u64,
    bfree: u64,
    bavail: u64,
    files: u64,
    ffree: u64,
    bsize: u32,
    namelen: u32,
    frsize: u32,
    padding: u32,
    spare: [u32; 6]
});
pod!(IoctlOut {
    result: i32,
    flags: u32,
    in_iovs: u32,
    out_iovs: u32
});
pod!(Dirent {
    ino: u64,
    off: u64,
    namelen: u32,
    typ: u32
});

pod!(ForgetIn { nlookup: u64 });
pod!(BatchForgetIn {
    count: u32,
    dummy: u32
});
pod!(ForgetOne {
    nodeid: u64,
    nlookup: u64
});
pod!(GetattrIn {
    getattr_flags: u32,
    dummy: u32,
    fh: u64
});
pod!(SetattrIn {
    valid: u32,
    padding: u32,
    fh: u64,
    size: u64,
    lock_owner: u64,
    atime: u64,
    mtime: u64,
    ctime: u64,
    atimensec: u32,
    mtimensec: u32,
    ctimensec: u32,
    mode: u32,
    unused4: u32,
    uid: u32,
    gid: u32,
    unused5: u32,
});
pod!(MknodIn {
    mode: u32,
    rdev: u32,
    umask: u32,
    padding: u32
});
pod!(MkdirIn {
    mode: u32,
    umask: u32
});
pod!(RenameIn { newdir: u64 });
pod!(Rename2In {
    newdir: u64,
    flags: u32,
    padding: u32
});
pod!(LinkIn { oldnodeid: u64 });
pod!(OpenIn {
    flags: u32,
    open_flags: u32
});
pod!(CreateIn {
    flags: u32,
    mode: u32,
    umask: u32,
    open_flags: u32
});
pod!(ReadIn {
    fh: u64,
    offset: u64,
    size: u32,
    read_flags: u32,
    lock_owner: u64,
    flags: u32,
    padding: u32
});
pod!(WriteIn {
    fh: u64,
    offset: u64,
    size: u32,
    write_flags: u32,
    lock_owner: u64,
    flags: u32,
    padding: u32
});
pod!(ReleaseIn {
    fh: u64,
    flags: u32,
    release_flags: u32,
    lock_owner: u64
});
pod!(FlushIn {
    fh: u64,
    unused: u32,
    padding: u32,
    lock_owner: u64
});
pod!(FsyncIn {
    fh: u64,
    fsync_flags: u32,
    padding: u32
});
pod!(SetxattrIn {
    size: u32,
    flags: u32
});
pod!(GetxattrIn {
    size: u32,
    padding: u32
});
pod!(AccessIn {
    mask: u32,
    padding: u32
});
pod!(InterruptIn { unique: u64 });
pod!(IoctlIn {
    fh: u64,
    flags: u32,
    cmd: u32,
    arg: u64,
    in_size: u32,
    out_size: u32
});
pod!(FallocateIn {
    fh: u64,
    offset: u64,
    length: u64,
    mode: u32,
    padding: u32
});

/// Sizes of the ring entry's header buffer areas (`fuse_uring_req_header`).
pub const URING_IN_OUT_HEADER_SZ: usize = 128;
pub const URING_OP_IN_OUT_SZ: usize = 128;

pod!(
    /// `fuse_uring_ent_in_out`: what the kernel says of a request it put
    /// in the entry (the commit id, the payload's length), and the reply's
    /// payload length on commit.
    UringEntInOut { flags: u64, commit_id: u64, payload_sz: u32, padding: u32, reserved: u64 }
);

/// `fuse_uring_req_header`: the first buffer of a ring entry.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct UringReqHeader {
    /// `fuse_in_header` from the kernel, `fuse_out_header` to it.
    pub in_out: [u8; URING_IN_OUT_HEADER_SZ],
    /// The opcode's own header (the request's first argument).
    pub op_in: [u8; URING_OP_IN_OUT_SZ],
    pub ring_ent_in_out: UringEntInOut,
}

pub const URING_CMD_REGISTER: u32 = 1;
pub const URING_CMD_COMMIT_AND_FETCH: u32 = 2;

pod!(
    /// `fuse_uring_cmd_req`, in the 80-byte command area of a 128-byte SQE.
    UringCmdReq { flags: u64, commit_id: u64, qid: u16, padding: [u8; 6] }
);

/// A message being read: each `take` checks there are enough bytes left.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

/// A message too short for what its opcode carries, or a name without its
/// terminating NUL.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// The next struct (copied out: the buffer need not be aligned).
    pub fn take<T: Pod>(&mut self) -> Result<T, Malformed> {
        let n = std::mem::size_of::<T>();
        let b = self.bytes.get(..n).ok_or(Malformed)?;
        self.bytes = &self.bytes[n..];
        Ok(bytemuck::pod_read_unaligned(b))
    }

    /// The next NUL-terminated name (without its NUL).
    pub fn name(&mut self) -> Result<&'a [u8], Malformed> {
        let end = self.bytes.iter().position(|&b| b == 0).ok_or(Malformed)?;
        let name = &self.bytes[..end];
        self.bytes = &self.bytes[end + 1..];
        Ok(name)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let b = self.bytes.get(..n).ok_or(Malformed)?;
        self.bytes = &self.bytes[n..];
        Ok(b)
    }

    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// The size of an opcode's own header, its first argument: what a ring
/// entry carries in `op_in` and /dev/fuse carries before the rest (names,
/// data). Opcodes whose first argument is empty (LOOKUP: a name only) have
/// 0; those this daemon does not serve too.
pub fn op_header_size(opcode: u32) -> usize {
    use std::mem::size_of;
    match opcode {
        opcode::FORGET => size_of::<ForgetIn>(),
        opcode::GETATTR => size_of::<GetattrIn>(),
        opcode::SETATTR => size_of::<SetattrIn>(),
        opcode::MKNOD => size_of::<MknodIn>(),
        opcode::MKDIR => size_of::<MkdirIn>(),
        opcode::RENAME => size_of::<RenameIn>(),
        opcode::RENAME2 => size_of::<Rename2In>(),
        opcode::LINK => size_of::<LinkIn>(),
        opcode::OPEN | opcode::OPENDIR => size_of::<OpenIn>(),
        opcode::READ | opcode::READDIR => size_of::<ReadIn>(),
        opcode::WRITE => size_of::<WriteIn>(),
        opcode::RELEASE | opcode::RELEASEDIR => size_of::<ReleaseIn>(),
        opcode::FSYNC | opcode::FSYNCDIR => size_of::<FsyncIn>(),
        opcode::SETXATTR => size_of::<SetxattrIn>(),
        opcode::GETXATTR | opcode::LISTXATTR => size_of::<GetxattrIn>(),
        opcode::FLUSH => size_of::<FlushIn>(),
        opcode::ACCESS => size_of::<AccessIn>(),
        opcode::CREATE => size_of::<CreateIn>(),
        opcode::INTERRUPT => size_of::<InterruptIn>(),
        opcode::IOCTL => size_of::<IoctlIn>(),
        opcode::FALLOCATE => size_of::<FallocateIn>(),
        opcode::BATCH_FORGET => size_of::<BatchForgetIn>(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// The sizes fuse.h gives these structs (a wrong field would shift
    /// every reply after it).
    #[test]
    fn sizes_match_the_kernel() {
        assert_eq!(size_of::<InHeader>(), 40);
        assert_eq!(size_of::<OutHeader>(), 16);
        assert_eq!(size_of::<InitOut>(), 64);
        assert_eq!(size_of::<InitIn>() + size_of::<InitInExt>(), 64);
        assert_eq!(size_of::<Attr>(), 88);
        assert_eq!(size_of::<EntryOut>(), 128);
        assert_eq!(size_of::<AttrOut>(), 104);
        assert_eq!(size_of::<SetattrIn>(), 88);
        assert_eq!(size_of::<ReadIn>(), 40);
        assert_eq!(size_of::<WriteIn>(), 40);
        assert_eq!(size_of::<Kstatfs>(), 80);
        assert_eq!(size_of::<IoctlIn>(), 32);
        assert_eq!(size_of::<Dirent>(), 24);
        assert_eq!(size_of::<UringEntInOut>(), 32);
        assert_eq!(size_of::<UringReqHeader>(), 288);
        assert_eq!(size_of::<UringCmdReq>(), 24);
    }

    #[test]
    fn reader_refuses_short_messages() {
        let b = [1u8, 0, 0, 0, b'a', b'b', 0, b'c'];
        let mut r = Reader::new(&b);
        assert_eq!(r.take::<u32>(), Ok(1));
        assert_eq!(r.name(), Ok(&b"ab"[..]));
        assert_eq!(r.name(), Err(Malformed));
        let mut r = Reader::new(&b[..3]);
        assert!(r.take::<u32>().is_err());
        assert!(Reader::new(&b).bytes(9).is_err());
    }
}
