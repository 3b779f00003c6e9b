//! The operations the differential tester applies, as plain data: every
//! argument is concrete (paths relative to the mount root, descriptor slots,
//! data as a seed and a length), so a sequence replays exactly on fresh
//! images, which is what shrinking needs. `Display` prints an op the way a
//! reproducer is read.

use std::fmt;

/// A timestamp argument of utimensat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    Omit,
    Now,
    At(i64, i64),
}

/// What mknod makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Reg,
    Chr,
    Blk,
    Fifo,
    Sock,
}

impl NodeKind {
    pub fn mode_bits(self) -> u32 {
        match self {
            NodeKind::Reg => libc::S_IFREG,
            NodeKind::Chr => libc::S_IFCHR,
            NodeKind::Blk => libc::S_IFBLK,
            NodeKind::Fifo => libc::S_IFIFO,
            NodeKind::Sock => libc::S_IFSOCK,
        }
    }
    fn name(self) -> &'static str {
        match self {
            NodeKind::Reg => "S_IFREG",
            NodeKind::Chr => "S_IFCHR",
            NodeKind::Blk => "S_IFBLK",
            NodeKind::Fifo => "S_IFIFO",
            NodeKind::Sock => "S_IFSOCK",
        }
    }
}

/// renameat2's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameFlags {
    Plain,
    NoReplace,
    Exchange,
}

impl RenameFlags {
    pub fn bits(self) -> u32 {
        match self {
            RenameFlags::Plain => 0,
            RenameFlags::NoReplace => libc::RENAME_NOREPLACE,
            RenameFlags::Exchange => libc::RENAME_EXCHANGE,
        }
    }
}

/// Descriptor slots (each side keeps its own table of open files).
pub const SLOTS: u8 = 4;

/// The names of the two POSIX ACLs.
pub const ACL_ACCESS: &str = "system.posix_acl_access";
pub const ACL_DEFAULT: &str = "system.posix_acl_default";

/// One ACL entry in the xattr form: (tag, perm, id). Tags as
/// <linux/posix_acl.h>: 1 user::, 2 user:id, 4 group::, 8 group:id,
/// 0x10 mask, 0x20 other.
pub type AclEntry = (u16, u16, u32);

pub const ACL_USER_OBJ: u16 = 0x01;
pub const ACL_USER: u16 = 0x02;
pub const ACL_GROUP_OBJ: u16 = 0x04;
pub const ACL_GROUP: u16 = 0x08;
pub const ACL_MASK: u16 = 0x10;
pub const ACL_OTHER: u16 = 0x20;

/// An extended attribute's value, as data (so a sequence replays exactly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XValue {
    /// `len` bytes of [`data`]`(seed, len)`.
    Data { seed: u32, len: u32 },
    /// A POSIX ACL in the xattr form setfacl(1) passes (version 2, then the
    /// entries as given: the generator makes invalid ones too).
    Acl(Vec<AclEntry>),
    /// Literal bytes (a security.capability structure, a malformed ACL).
    Raw(Vec<u8>),
}

impl XValue {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            XValue::Data { seed, len } => data(*seed, *len),
            XValue::Acl(entries) => acl_xattr(2, entries),
            XValue::Raw(b) => b.clone(),
        }
    }
}

/// An ACL in the kernel's xattr form with this version (2 is the only
/// valid one).
pub fn acl_xattr(version: u32, entries: &[AclEntry]) -> Vec<u8> {
    let mut v = version.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// An ACL as getfacl's short form: "u::rw-,u:1000:r--,g::r--,m::r--,o::---".
pub fn acl_text(entries: &[AclEntry]) -> String {
    entries
        .iter()
        .map(|&(tag, perm, id)| {
            let rwx: String = [(4, 'r'), (2, 'w'), (1, 'x')]
                .iter()
                .map(|&(b, c)| if perm & b != 0 { c } else { '-' })
                .collect();
            // Bits beyond rwx (invalid) are shown too.
            let rwx = if perm & !7 != 0 {
                format!("{rwx}+{perm:#x}")
            } else {
                rwx
            };
            match tag {
                ACL_USER_OBJ => format!("u::{rwx}"),
                ACL_USER => format!("u:{id}:{rwx}"),
                ACL_GROUP_OBJ => format!("g::{rwx}"),
                ACL_GROUP => format!("g:{id}:{rwx}"),
                ACL_MASK => format!("m::{rwx}"),
                ACL_OTHER => format!("o::{rwx}"),
                t => format!("tag{t:#x}:{id}:{rwx}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Decode an ACL in the xattr form (None: not one, e.g. a wrong length).
pub fn acl_parse(b: &[u8]) -> Option<(u32, Vec<AclEntry>)> {
    if b.len() < 4 || !(b.len() - 4).is_multiple_of(8) {
        return None;
    }
    let version = u32::from_le_bytes(b[..4].try_into().ok()?);
    let entries = b[4..]
        .chunks(8)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                u16::from_le_bytes([c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    Some((version, entries))
}

impl fmt::Display for XValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XValue::Data { seed, len } => write!(f, "{len} bytes (seed {seed})"),
            XValue::Acl(e) => write!(f, "acl[{}]", acl_text(e)),
            XValue::Raw(b) => write!(f, "raw[{}]", hex(b)),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// setxattr's flags, by name.
fn xattr_flags(flags: i32) -> &'static str {
    match flags {
        0 => "0",
        libc::XATTR_CREATE => "XATTR_CREATE",
        libc::XATTR_REPLACE => "XATTR_REPLACE",
        _ => "XATTR_CREATE|XATTR_REPLACE",
    }
}

/// The namespace part of an attribute name, for op kinds (an ACL by its
/// whole name: it takes another path in both drivers).
fn namespace(name: &str) -> &str {
    if name.starts_with("system.posix_acl_") {
        return name;
    }
    match name.find('.') {
        Some(i) => &name[..=i],
        None => name,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// open(path, O_WRONLY|O_CREAT[|O_EXCL|O_TRUNC|O_APPEND], mode), write
    /// `len` bytes of `data(seed)` (at the file position, or pwrite at `at`),
    /// close. The result is the number of bytes written.
    WriteFile {
        path: String,
        excl: bool,
        trunc: bool,
        append: bool,
        at: Option<u64>,
        len: u32,
        seed: u32,
        mode: u32,
    },
    Mknod {
        path: String,
        kind: NodeKind,
        perm: u32,
        major: u32,
        minor: u32,
    },
    Mkdir {
        path: String,
        perm: u32,
    },
    Rmdir {
        path: String,
    },
    Unlink {
        path: String,
    },
    Link {
        from: String,
        to: String,
    },
    Symlink {
        target: String,
        path: String,
    },
    Rename {
        from: String,
        to: String,
        flags: RenameFlags,
    },
    Truncate {
        path: String,
        size: u64,
    },
    /// open(O_WRONLY), fallocate(fd, mode, off, len), close.
    Fallocate {
        path: String,
        mode: i32,
        off: u64,
        len: u64,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    /// fchownat; None is -1 (leave as is).
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
        nofollow: bool,
    },
    Utimens {
        path: String,
        atime: Time,
        mtime: Time,
        nofollow: bool,
    },
    /// lstat.
    Stat {
        path: String,
    },
    /// open(O_RDONLY), pread, close.
    Read {
        path: String,
        off: u64,
        len: u32,
    },
    Readlink {
        path: String,
    },
    /// The sorted names of a directory.
    Readdir {
        path: String,
    },
    Statfs,
    /// open(path, O_RDWR[|O_CREAT|O_TRUNC|O_APPEND], 0644) into a slot
    /// (closing what the slot held); kept open across later ops, so unlink
    /// and rename of open files happen.
    FdOpen {
        slot: u8,
        path: String,
        creat: bool,
        trunc: bool,
        append: bool,
    },
    FdWrite {
        slot: u8,
        at: Option<u64>,
        len: u32,
        seed: u32,
    },
    FdRead {
        slot: u8,
        off: u64,
        len: u32,
    },
    FdStat {
        slot: u8,
    },
    FdTruncate {
        slot: u8,
        size: u64,
    },
    FdClose {
        slot: u8,
    },
    /// setxattr (lsetxattr with `nofollow`); `flags` 0, XATTR_CREATE or
    /// XATTR_REPLACE.
    SetXattr {
        path: String,
        nofollow: bool,
        name: String,
        value: XValue,
        flags: i32,
    },
    /// getxattr with a buffer of `size` bytes (0: the size query).
    GetXattr {
        path: String,
        nofollow: bool,
        name: String,
        size: u32,
    },
    /// listxattr with a buffer of `size` bytes (0: the size query); the
    /// names in the order the driver lists them.
    ListXattr {
        path: String,
        nofollow: bool,
        size: u32,
    },
    RemoveXattr {
        path: String,
        nofollow: bool,
        name: String,
    },
    /// fsetxattr on the descriptor in `slot`.
    FdSetXattr {
        slot: u8,
        name: String,
        value: XValue,
        flags: i32,
    },
    /// fgetxattr on the descriptor in `slot`.
    FdGetXattr {
        slot: u8,
        name: String,
        size: u32,
    },
    /// Not a system call: syncfs both, walk both trees and compare them
    /// (the runner does it). In the sequence so a replay walks at the same
    /// points: a walk reads every file, which changes what is cached.
    CheckTrees,
    /// `op` by another user: the calling thread's file-system uid and gid
    /// (setfsuid, setfsgid: which also drop root's capabilities) and its
    /// supplementary groups, for the call only. Permission checks, and
    /// what writes, truncates and changes of owner do to set-user-ID and
    /// set-group-ID, depend on them.
    AsUser {
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
        op: Box<Op>,
    },
}

impl Op {
    /// The op's kind, as mismatch signatures name it (with the flags that
    /// select a different code path in a driver).
    pub fn kind(&self) -> String {
        match self {
            Op::WriteFile {
                excl,
                trunc,
                append,
                ..
            } => {
                let mut s = String::from("open+write");
                if *excl {
                    s.push_str("(O_EXCL)");
                }
                if *trunc {
                    s.push_str("(O_TRUNC)");
                }
                if *append {
                    s.push_str("(O_APPEND)");
                }
                s
            }
            Op::Mknod { kind, .. } => format!("mknod({})", kind.name()),
            Op::Mkdir { .. } => "mkdir".into(),
            Op::Rmdir { .. } => "rmdir".into(),
            Op::Unlink { .. } => "unlink".into(),
            Op::Link { .. } => "link".into(),
            Op::Symlink { .. } => "symlink".into(),
            Op::Rename { flags, .. } => match flags {
                RenameFlags::Plain => "rename".into(),
                RenameFlags::NoReplace => "rename(NOREPLACE)".into(),
                RenameFlags::Exchange => "rename(EXCHANGE)".into(),
            },
            Op::Truncate { .. } => "truncate".into(),
            Op::Fallocate { .. } => "fallocate".into(),
            Op::Chmod { .. } => "chmod".into(),
            Op::Chown { .. } => "chown".into(),
            Op::Utimens { .. } => "utimensat".into(),
            Op::Stat { .. } => "lstat".into(),
            Op::Read { .. } => "read".into(),
            Op::Readlink { .. } => "readlink".into(),
            Op::Readdir { .. } => "readdir".into(),
            Op::Statfs => "statfs".into(),
            Op::FdOpen { .. } => "fd-open".into(),
            Op::FdWrite { .. } => "fd-write".into(),
            Op::FdRead { .. } => "fd-read".into(),
            Op::FdStat { .. } => "fstat".into(),
            Op::FdTruncate { .. } => "ftruncate".into(),
            Op::FdClose { .. } => "close".into(),
            Op::SetXattr {
                name,
                nofollow,
                flags,
                ..
            } => format!(
                "{}setxattr({}, {})",
                if *nofollow { "l" } else { "" },
                namespace(name),
                xattr_flags(*flags)
            ),
            Op::GetXattr { name, size, .. } | Op::FdGetXattr { name, size, .. } => {
                let f = if matches!(self, Op::FdGetXattr { .. }) {
                    "f"
                } else {
                    ""
                };
                let q = if *size == 0 { ", size query" } else { "" };
                format!("{f}getxattr({}{q})", namespace(name))
            }
            Op::ListXattr { size, .. } => {
                if *size == 0 {
                    "listxattr(size query)".into()
                } else {
                    "listxattr".into()
                }
            }
            Op::RemoveXattr { name, .. } => format!("removexattr({})", namespace(name)),
            Op::FdSetXattr { name, flags, .. } => {
                format!("fsetxattr({}, {})", namespace(name), xattr_flags(*flags))
            }
            Op::CheckTrees => "tree check".into(),
            // (As root's: the same code paths; the call's line shows the
            // user.)
            Op::AsUser { op, .. } => op.kind(),
        }
    }

    /// The op itself, the same as another user.
    pub fn inner(&self) -> &Op {
        match self {
            Op::AsUser { op, .. } => op,
            op => op,
        }
    }

    /// Whether a success of this op may change the set of names (the
    /// generator then re-reads its model of the tree).
    pub fn changes_names(&self) -> bool {
        matches!(
            self.inner(),
            Op::WriteFile { .. }
                | Op::Mknod { .. }
                | Op::Mkdir { .. }
                | Op::Rmdir { .. }
                | Op::Unlink { .. }
                | Op::Link { .. }
                | Op::Symlink { .. }
                | Op::Rename { .. }
                | Op::FdOpen { creat: true, .. }
        )
    }

    /// File offsets this op makes interesting for content comparison of
    /// large sparse files (see tree.rs): where it writes or cuts.
    pub fn offsets(&self) -> Vec<u64> {
        match self.inner() {
            Op::WriteFile { at: Some(o), .. } | Op::FdWrite { at: Some(o), .. } => vec![*o],
            Op::Truncate { size, .. } | Op::FdTruncate { size, .. } => vec![*size],
            Op::Fallocate { off, len, .. } => vec![*off, off.saturating_add(*len)],
            _ => Vec::new(),
        }
    }
}

/// The bytes a write with this seed and length writes: a cheap
/// deterministic stream (xorshift), never all zeros, so holes show.
pub fn data(seed: u32, len: u32) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(seed).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect()
}

/// A path or name for printing: components longer than 24 bytes are shown
/// as their first bytes and their length (names of 255/256 bytes are made
/// of one repeated letter after a short prefix, see gen.rs).
pub fn show(p: &str) -> String {
    p.split('/')
        .map(|c| {
            if c.len() > 24 {
                format!(
                    "{}…[{} bytes]",
                    &c[..c.floor_char_boundary_compat(6)],
                    c.len()
                )
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}
impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

fn time(t: &Time) -> String {
    match t {
        Time::Omit => "OMIT".into(),
        Time::Now => "NOW".into(),
        Time::At(s, ns) => format!("{s}.{ns:09}"),
    }
}

fn opt_off(at: &Option<u64>) -> String {
    match at {
        Some(o) => format!("at {o}"),
        None => "at file position".into(),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
                let mut flags = String::from("O_WRONLY|O_CREAT");
                for (on, n) in [
                    (excl, "|O_EXCL"),
                    (trunc, "|O_TRUNC"),
                    (append, "|O_APPEND"),
                ] {
                    if *on {
                        flags.push_str(n);
                    }
                }
                write!(
                    f,
                    "open({}, {flags}, {mode:o}); write {len} bytes (seed {seed}) {}; close",
                    show(path),
                    opt_off(at)
                )
            }
            Op::Mknod {
                path,
                kind,
                perm,
                major,
                minor,
            } => write!(
                f,
                "mknod({}, {}|{perm:o}, makedev({major}, {minor}))",
                show(path),
                kind.name()
            ),
            Op::Mkdir { path, perm } => write!(f, "mkdir({}, {perm:o})", show(path)),
            Op::Rmdir { path } => write!(f, "rmdir({})", show(path)),
            Op::Unlink { path } => write!(f, "unlink({})", show(path)),
            Op::Link { from, to } => write!(f, "link({}, {})", show(from), show(to)),
            Op::Symlink { target, path } => {
                let t = if target.len() > 24 {
                    format!("<{} bytes>", target.len())
                } else {
                    format!("{target:?}")
                };
                write!(f, "symlink({t}, {})", show(path))
            }
            Op::Rename { from, to, flags } => {
                let fl = match flags {
                    RenameFlags::Plain => "0",
                    RenameFlags::NoReplace => "RENAME_NOREPLACE",
                    RenameFlags::Exchange => "RENAME_EXCHANGE",
                };
                write!(f, "renameat2({}, {}, {fl})", show(from), show(to))
            }
            Op::Truncate { path, size } => write!(f, "truncate({}, {size})", show(path)),
            Op::Fallocate {
                path,
                mode,
                off,
                len,
            } => write!(f, "fallocate({}, {mode:#x}, {off}, {len})", show(path)),
            Op::Chmod { path, mode } => write!(f, "chmod({}, {mode:o})", show(path)),
            Op::Chown {
                path,
                uid,
                gid,
                nofollow,
            } => write!(
                f,
                "{}({}, {}, {})",
                if *nofollow { "lchown" } else { "chown" },
                show(path),
                uid.map_or(-1, i64::from),
                gid.map_or(-1, i64::from)
            ),
            Op::Utimens {
                path,
                atime,
                mtime,
                nofollow,
            } => write!(
                f,
                "utimensat({}, atime {}, mtime {}{})",
                show(path),
                time(atime),
                time(mtime),
                if *nofollow {
                    ", AT_SYMLINK_NOFOLLOW"
                } else {
                    ""
                }
            ),
            Op::Stat { path } => write!(f, "lstat({})", show(path)),
            Op::Read { path, off, len } => write!(f, "read({}, {len} bytes at {off})", show(path)),
            Op::Readlink { path } => write!(f, "readlink({})", show(path)),
            Op::Readdir { path } => write!(f, "readdir({})", show(path)),
            Op::Statfs => write!(f, "statfs(/)"),
            Op::FdOpen {
                slot,
                path,
                creat,
                trunc,
                append,
            } => {
                let mut flags = String::from("O_RDWR");
                for (on, n) in [
                    (creat, "|O_CREAT"),
                    (trunc, "|O_TRUNC"),
                    (append, "|O_APPEND"),
                ] {
                    if *on {
                        flags.push_str(n);
                    }
                }
                write!(f, "fd{slot} = open({}, {flags}, 644)", show(path))
            }
            Op::FdWrite {
                slot,
                at,
                len,
                seed,
            } => write!(
                f,
                "write(fd{slot}, {len} bytes (seed {seed}) {})",
                opt_off(at)
            ),
            Op::FdRead { slot, off, len } => write!(f, "pread(fd{slot}, {len} bytes at {off})"),
            Op::FdStat { slot } => write!(f, "fstat(fd{slot})"),
            Op::FdTruncate { slot, size } => write!(f, "ftruncate(fd{slot}, {size})"),
            Op::FdClose { slot } => write!(f, "close(fd{slot})"),
            Op::SetXattr {
                path,
                nofollow,
                name,
                value,
                flags,
            } => write!(
                f,
                "{}setxattr({}, {}, {value}, {})",
                if *nofollow { "l" } else { "" },
                show(path),
                show(name),
                xattr_flags(*flags)
            ),
            Op::GetXattr {
                path,
                nofollow,
                name,
                size,
            } => write!(
                f,
                "{}getxattr({}, {}, size {size})",
                if *nofollow { "l" } else { "" },
                show(path),
                show(name)
            ),
            Op::ListXattr {
                path,
                nofollow,
                size,
            } => write!(
                f,
                "{}listxattr({}, size {size})",
                if *nofollow { "l" } else { "" },
                show(path)
            ),
            Op::RemoveXattr {
                path,
                nofollow,
                name,
            } => write!(
                f,
                "{}removexattr({}, {})",
                if *nofollow { "l" } else { "" },
                show(path),
                show(name)
            ),
            Op::FdSetXattr {
                slot,
                name,
                value,
                flags,
            } => write!(
                f,
                "fsetxattr(fd{slot}, {}, {value}, {})",
                show(name),
                xattr_flags(*flags)
            ),
            Op::FdGetXattr { slot, name, size } => {
                write!(f, "fgetxattr(fd{slot}, {}, size {size})", show(name))
            }
            Op::CheckTrees => write!(f, "(syncfs, walk and compare both trees)"),
            Op::AsUser {
                uid,
                gid,
                groups,
                op,
            } => write!(f, "as uid {uid} gid {gid} groups {groups:?}: {op}"),
        }
    }
}
