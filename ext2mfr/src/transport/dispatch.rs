//! One FUSE request (its header, the opcode's own header and the rest:
//! names, data) to a typed [`Request`], served by [`Ext2::serve`], and the
//! answer to the bytes of a FUSE reply. Both of our transports (/dev/fuse
//! and io_uring) call [`Dispatcher::dispatch`]; what each opcode means is
//! the same as in the fuser adapter (`fuse.rs`), with the shared parts in
//! `translate.rs`.
//!
//! A request too short for its opcode gets EINVAL, an opcode not served
//! here ENOSYS: never a panic.

use super::abi::{self, opcode as op, Malformed, Reader};
use crate::format::inode::Timestamp;
use crate::fs::attr::{Attr, Ctx, SetAttr};
use crate::fs::Ext2;
use crate::request::{Reply, Request};
use crate::translate::{self, ino_to_ext2, ino_to_fuse, XattrAnswer, TTL};
use bytemuck::bytes_of;
use std::sync::Arc;

/// What a request answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// No reply at all (FORGET, BATCH_FORGET, INTERRUPT).
    Nothing,
    /// An error reply with this errno.
    Error(i32),
    /// A success reply with these bytes after the out header.
    Ok(Vec<u8>),
}

pub struct Dispatcher {
    fs: Arc<Ext2>,
    /// /dev/fuse, for notifications (`Reply::CacheStale`).
    dev: Option<Arc<std::fs::File>>,
    /// `allow_root` without `allow_other`: only root and the mount's owner
    /// (the kernel lets everyone through, as for allow_other).
    only_uid: Option<u32>,
}

impl Dispatcher {
    pub fn new(fs: Arc<Ext2>, only_uid: Option<u32>) -> Dispatcher {
        Dispatcher {
            fs,
            dev: None,
            only_uid,
        }
    }

    /// Notifications go to `dev`.
    pub fn with_device(mut self, dev: Arc<std::fs::File>) -> Dispatcher {
        self.dev = Some(dev);
        self
    }

    /// Serve one request: `h` its header, `op_header` the opcode's own
    /// header (at least [`abi::op_header_size`] bytes, more is ignored),
    /// `rest` what follows it.
    pub fn dispatch(&self, h: &abi::InHeader, op_header: &[u8], rest: &[u8]) -> Answer {
        if h.opcode == op::GETATTR {
            let fh = op_header.len() >= abi::op_header_size(op::GETATTR)
                && bytemuck::pod_read_unaligned::<abi::GetattrIn>(
                    &op_header[..abi::op_header_size(op::GETATTR)],
                )
                .getattr_flags
                    & abi::GETATTR_FH
                    != 0;
            self.fs.fuse_requests.count_getattr(fh);
        } else {
            self.fs.fuse_requests.count(h.opcode);
        }
        if let Some(owner) = self.only_uid {
            let exempt = matches!(
                h.opcode,
                op::FORGET
                    | op::BATCH_FORGET
                    | op::INTERRUPT
                    | op::DESTROY
                    | op::RELEASE
                    | op::RELEASEDIR
            );
            if !exempt && h.uid != 0 && h.uid != owner {
                return Answer::Error(libc::EACCES);
            }
        }
        // Every opcode's own header whole, read or not, before anything
        // runs.
        let served = if op_header.len() >= abi::op_header_size(h.opcode) {
            self.serve(h, op_header, rest)
        } else {
            Err(Malformed)
        };
        match served {
            Ok(a) => a,
            Err(Malformed) => {
                log::warn!(
                    "malformed FUSE request: opcode {} of {} bytes",
                    h.opcode,
                    h.len
                );
                if unanswered(h.opcode) {
                    Answer::Nothing
                } else {
                    Answer::Error(libc::EINVAL)
                }
            }
        }
    }

    fn fuse_attr(&self, a: &Attr) -> abi::Attr {
        abi::Attr {
            ino: ino_to_fuse(a.ino),
            size: a.size,
            blocks: a.blocks,
            // Seconds before 1970 are negative: the kernel reads these as
            // signed.
            atime: a.atime.secs as u64,
            mtime: a.mtime.secs as u64,
            ctime: a.ctime.secs as u64,
            atimensec: a.atime.nsec,
            mtimensec: a.mtime.nsec,
            ctimensec: a.ctime.nsec,
            mode: translate::type_bits(a.kind) | a.perm as u32,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev,
            blksize: self.fs.geo.block_size,
            flags: 0,
        }
    }

    fn entry_out(&self, a: &Attr) -> abi::EntryOut {
        abi::EntryOut {
            nodeid: ino_to_fuse(a.ino),
            generation: a.generation as u64,
            entry_valid: TTL.as_secs(),
            attr_valid: TTL.as_secs(),
            entry_valid_nsec: 0,
            attr_valid_nsec: 0,
            attr: self.fuse_attr(a),
        }
    }

    fn entry(&self, r: crate::error::Result<Reply>) -> Answer {
        match r {
            Ok(Reply::Entry(a)) => Answer::Ok(bytes_of(&self.entry_out(&a)).to_vec()),
            other => Answer::Error(translate::failure(other)),
        }
    }

    fn attr(&self, r: crate::error::Result<Reply>) -> Answer {
        match r {
            Ok(Reply::Attr(a)) => Answer::Ok(
                bytes_of(&abi::AttrOut {
                    attr_valid: TTL.as_secs(),
                    attr_valid_nsec: 0,
                    dummy: 0,
                    attr: self.fuse_attr(&a),
                })
                .to_vec(),
            ),
            other => Answer::Error(translate::failure(other)),
        }
    }

    fn serve(&self, h: &abi::InHeader, op_header: &[u8], rest: &[u8]) -> Result<Answer, Malformed> {
        let fs = &*self.fs;
        let ino = ino_to_ext2(h.nodeid);
        let ctx = Ctx {
            uid: h.uid,
            gid: h.gid,
            pid: h.pid,
        };
        let mut o = Reader::new(op_header);
        let mut r = Reader::new(rest);
        let run = |req: &Request| fs.serve(&ctx, req);
        let empty = |res: crate::error::Result<Reply>| match res {
            Ok(Reply::Done) => Answer::Ok(Vec::new()),
            other => Answer::Error(translate::failure(other)),
        };
        let data = |res: crate::error::Result<Reply>| match res {
            Ok(Reply::Data(d)) => Answer::Ok(d),
            other => Answer::Error(translate::failure(other)),
        };
        Ok(match h.opcode {
            op::LOOKUP => {
                let name = r.name()?;
                let res = run(&Request::Lookup { parent: ino, name });
                if translate::negative_entry(&res, name) {
                    // Node id 0: a negative entry the kernel keeps for TTL.
                    Answer::Ok(
                        bytes_of(&abi::EntryOut {
                            entry_valid: TTL.as_secs(),
                            ..Default::default()
                        })
                        .to_vec(),
                    )
                } else {
                    self.entry(res)
                }
            }
            op::FORGET => {
                let f: abi::ForgetIn = o.take()?;
                fs.forget(ino, f.nlookup);
                Answer::Nothing
            }
            op::BATCH_FORGET => {
                let b: abi::BatchForgetIn = o.take()?;
                for _ in 0..b.count {
                    // A batch cut short: what came is forgotten, no reply
                    // either way (the kernel waits for none).
                    let Ok(one) = r.take::<abi::ForgetOne>() else {
                        log::warn!("BATCH_FORGET shorter than its count {}", b.count);
                        break;
                    };
                    fs.forget(ino_to_ext2(one.nodeid), one.nlookup);
                }
                Answer::Nothing
            }
            op::GETATTR => self.attr(run(&Request::Getattr { ino })),
            op::SETATTR => {
                let s: abi::SetattrIn = o.take()?;
                let v = s.valid;
                let time = |set: u32, now: u32, secs: u64, nsec: u32| {
                    if v & now != 0 {
                        Some(Timestamp::now())
                    } else if v & set != 0 {
                        Some(Timestamp {
                            secs: secs as i64,
                            nsec,
                        })
                    } else {
                        None
                    }
                };
                let given = |set: u32, now: u32| v & set != 0 && v & now == 0;
                let set = SetAttr {
                    mode: (v & abi::fattr::MODE != 0).then_some(s.mode),
                    uid: (v & abi::fattr::UID != 0).then_some(s.uid),
                    gid: (v & abi::fattr::GID != 0).then_some(s.gid),
                    size: (v & abi::fattr::SIZE != 0).then_some(s.size),
                    atime: time(
                        abi::fattr::ATIME,
                        abi::fattr::ATIME_NOW,
                        s.atime,
                        s.atimensec,
                    ),
                    times_given: given(abi::fattr::ATIME, abi::fattr::ATIME_NOW)
                        || given(abi::fattr::MTIME, abi::fattr::MTIME_NOW),
                    mtime: time(
                        abi::fattr::MTIME,
                        abi::fattr::MTIME_NOW,
                        s.mtime,
                        s.mtimensec,
                    ),
                    ctime: (v & abi::fattr::CTIME != 0).then_some(Timestamp {
                        secs: s.ctime as i64,
                        nsec: s.ctimensec,
                    }),
                };
                self.attr(run(&Request::Setattr { ino, set }))
            }
            op::READLINK => data(run(&Request::Readlink { ino })),
            op::SYMLINK => {
                let name = r.name()?;
                let target = r.name()?;
                self.entry(run(&Request::Symlink {
                    parent: ino,
                    name,
                    target,
                }))
            }
            op::MKNOD => {
                let m: abi::MknodIn = o.take()?;
                self.entry(run(&Request::Mknod {
                    parent: ino,
                    name: r.name()?,
                    mode: m.mode,
                    umask: m.umask,
                    rdev: m.rdev,
                }))
            }
            op::MKDIR => {
                let m: abi::MkdirIn = o.take()?;
                self.entry(run(&Request::Mkdir {
                    parent: ino,
                    name: r.name()?,
                    mode: m.mode,
                    umask: m.umask,
                }))
            }
            op::UNLINK => empty(run(&Request::Unlink {
                parent: ino,
                name: r.name()?,
            })),
            op::RMDIR => empty(run(&Request::Rmdir {
                parent: ino,
                name: r.name()?,
            })),
            op::RENAME | op::RENAME2 => {
                let (newdir, flags) = if h.opcode == op::RENAME {
                    (o.take::<abi::RenameIn>()?.newdir, 0)
                } else {
                    let x: abi::Rename2In = o.take()?;
                    (x.newdir, x.flags)
                };
                let old_name = r.name()?;
                let new_name = r.name()?;
                empty(run(&Request::Rename {
                    old_parent: ino,
                    old_name,
                    new_parent: ino_to_ext2(newdir),
                    new_name,
                    flags,
                }))
            }
            op::LINK => {
                let l: abi::LinkIn = o.take()?;
                self.entry(run(&Request::Link {
                    ino: ino_to_ext2(l.oldnodeid),
                    parent: ino,
                    name: r.name()?,
                }))
            }
            // With FUSE_NO_OPEN_SUPPORT, ENOSYS tells the kernel to stop
            // sending OPEN (and RELEASE) for files: no per-open state here.
            // FLUSH likewise: every write is in the file system when
            // answered, so the kernel may stop sending one per close.
            // CREATE too: the kernel then creates with MKNOD (see
            // `create` in fuse.rs).
            op::OPEN | op::FLUSH | op::CREATE => Answer::Error(libc::ENOSYS),
            op::READ => {
                let x: abi::ReadIn = o.take()?;
                data(run(&Request::Read {
                    ino,
                    offset: x.offset,
                    size: x.size,
                }))
            }
            op::WRITE => {
                let w: abi::WriteIn = o.take()?;
                let bytes = r.bytes(w.size as usize)?;
                match run(&Request::Write {
                    ino,
                    offset: w.offset,
                    data: bytes,
                    kill_suidgid: w.write_flags & abi::WRITE_KILL_SUIDGID != 0,
                    // (The descriptor's open flags come with each write.)
                    append: w.flags & libc::O_APPEND as u32 != 0,
                }) {
                    Ok(Reply::Written(n)) => Answer::Ok(
                        bytes_of(&abi::WriteOut {
                            size: n as u32,
                            padding: 0,
                        })
                        .to_vec(),
                    ),
                    other => Answer::Error(translate::failure(other)),
                }
            }
            op::STATFS => match run(&Request::Statfs) {
                Ok(Reply::Statfs(s)) => Answer::Ok(
                    bytes_of(&abi::Kstatfs {
                        blocks: s.blocks,
                        bfree: s.bfree,
                        bavail: s.bavail,
                        files: s.files,
                        ffree: s.ffree,
                        bsize: s.bsize,
                        namelen: s.namelen,
                        frsize: s.bsize,
                        ..Default::default()
                    })
                    .to_vec(),
                ),
                other => Answer::Error(translate::failure(other)),
            },
            // Nothing is kept per open file or directory.
            op::RELEASE | op::RELEASEDIR => Answer::Ok(Vec::new()),
            op::FSYNC | op::FSYNCDIR => empty(run(&Request::Fsync)),
            op::SETXATTR => {
                let s: abi::SetxattrIn = o.take()?;
                let name = r.name()?;
                let value = r.bytes(s.size as usize)?;
                empty(run(&Request::Setxattr {
                    ino,
                    name,
                    value,
                    flags: s.flags,
                }))
            }
            op::GETXATTR | op::LISTXATTR => {
                let g: abi::GetxattrIn = o.take()?;
                let res = if h.opcode == op::GETXATTR {
                    run(&Request::Getxattr {
                        ino,
                        name: r.name()?,
                    })
                } else {
                    run(&Request::Listxattr { ino })
                };
                match translate::xattr_answer(res, g.size) {
                    Ok(XattrAnswer::Size(n)) => Answer::Ok(
                        bytes_of(&abi::GetxattrOut {
                            size: n,
                            padding: 0,
                        })
                        .to_vec(),
                    ),
                    Ok(XattrAnswer::Data(v)) => Answer::Ok(v),
                    Err(e) => Answer::Error(e),
                }
            }
            op::REMOVEXATTR => empty(run(&Request::Removexattr {
                ino,
                name: r.name()?,
            })),
            // Served, not ENOSYS: see `FuseFs::init` on the kernel's cache
            // of listings.
            op::OPENDIR => match run(&Request::Opendir { ino }) {
                Ok(Reply::Done) => Answer::Ok(bytes_of(&abi::OpenOut::default()).to_vec()),
                other => Answer::Error(translate::failure(other)),
            },
            op::READDIR => {
                let x: abi::ReadIn = o.take()?;
                match run(&Request::Readdir {
                    ino,
                    offset: x.offset,
                }) {
                    Ok(Reply::Entries(entries)) => Answer::Ok(dirents(&entries, x.size as usize)),
                    other => Answer::Error(translate::failure(other)),
                }
            }
            op::ACCESS => {
                let a: abi::AccessIn = o.take()?;
                empty(run(&Request::Access { ino, mask: a.mask }))
            }
            // Requests run to their end (each one short, inside its
            // domain): an interrupt is not answered, as the protocol allows.
            op::INTERRUPT => Answer::Nothing,
            op::DESTROY => Answer::Ok(Vec::new()),
            op::IOCTL => {
                let x: abi::IoctlIn = o.take()?;
                let in_data = r.bytes(x.in_size as usize)?;
                let req = match translate::ioctl_request(ino, x.cmd, in_data) {
                    Ok(req) => req,
                    Err(e) => return Ok(Answer::Error(e)),
                };
                match translate::ioctl_reply(x.cmd, run(&req), x.out_size) {
                    Ok(out) => {
                        let mut b = bytes_of(&abi::IoctlOut::default()).to_vec();
                        b.extend_from_slice(&out);
                        Answer::Ok(b)
                    }
                    Err(e) => Answer::Error(e),
                }
            }
            op::FALLOCATE => {
                let f: abi::FallocateIn = o.take()?;
                match run(&Request::Fallocate {
                    ino,
                    offset: f.offset,
                    length: f.length,
                    mode: f.mode as i32,
                }) {
                    Ok(Reply::CacheStale { ino, offset, len }) => {
                        // Before the reply, after which the kernel drops
                        // what it thinks was punched (see fuse.rs).
                        if let Some(dev) = &self.dev {
                            super::devloop::notify_inval_inode(
                                dev,
                                ino_to_fuse(ino),
                                offset as i64,
                                len as i64,
                            );
                        }
                        Answer::Ok(Vec::new())
                    }
                    other => empty(other),
                }
            }
            _ => Answer::Error(libc::ENOSYS),
        })
    }
}

/// Requests the kernel waits for no answer to, malformed or not.
pub fn unanswered(opcode: u32) -> bool {
    matches!(opcode, op::FORGET | op::BATCH_FORGET | op::INTERRUPT)
}

/// Directory entries as `fuse_dirent`s (each padded to 8 bytes), as many
/// as fit in `size` bytes: the kernel asks again from the last cookie.
fn dirents(entries: &[crate::request::DirEntry], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.min(64 << 10));
    for e in entries {
        let len = std::mem::size_of::<abi::Dirent>() + e.name.len();
        let padded = (len + 7) & !7;
        if out.len() + padded > size {
            break;
        }
        out.extend_from_slice(bytes_of(&abi::Dirent {
            ino: ino_to_fuse(e.ino),
            off: e.next,
            namelen: e.name.len() as u32,
            typ: translate::dirent_type(e.kind),
        }));
        out.extend_from_slice(&e.name);
        out.resize(out.len() + padded - len, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inode::FileKind;
    use crate::request::DirEntry;

    #[test]
    fn dirents_padded_and_cut_to_the_buffer() {
        let e = |n: &[u8]| DirEntry {
            ino: 2,
            next: 1,
            kind: FileKind::Directory,
            name: n.to_vec(),
        };
        let b = dirents(&[e(b"."), e(b"abcdefghi")], 4096);
        assert_eq!(b.len(), 32 + 40);
        let d: abi::Dirent = bytemuck::pod_read_unaligned(&b[..24]);
        assert_eq!((d.ino, d.namelen, d.typ), (1, 1, libc::DT_DIR as u32));
        assert_eq!(dirents(&[e(b"."), e(b"abcdefghi")], 40).len(), 32);
        assert!(dirents(&[e(b".")], 10).is_empty());
    }
}
