//! Our FUSE message layer without a kernel: requests built byte by byte as
//! the kernel sends them, fed to the dispatcher over an in-process file
//! system, replies read back as the kernel reads them. Well-formed requests
//! get the answers the request layer gives; every truncation of every
//! opcode's message, names without their NUL, data shorter than announced
//! and opcodes nobody serves get an error reply, never a panic; e2fsck is
//! clean after.

mod common;
use common::*;

use bytemuck::{bytes_of, pod_read_unaligned, Pod};
use ext2mfr::fs::{Ext2, FsConfig};
use ext2mfr::transport::abi::{self, opcode as op, InHeader};
use ext2mfr::transport::dispatch::{self, Answer, Dispatcher};
use std::sync::Arc;

fn header(opcode: u32, nodeid: u64) -> InHeader {
    InHeader {
        opcode,
        nodeid,
        unique: 7,
        ..Default::default()
    }
}

/// The message body (after the in header) split as /dev/fuse delivers it.
fn send(d: &Dispatcher, opcode: u32, nodeid: u64, body: &[u8]) -> Answer {
    let split = abi::op_header_size(opcode).min(body.len());
    let (o, r) = body.split_at(split);
    d.dispatch(&header(opcode, nodeid), o, r)
}

fn ok(a: Answer) -> Vec<u8> {
    match a {
        Answer::Ok(b) => b,
        other => panic!("expected a success reply, got {other:?}"),
    }
}

fn read<T: Pod>(b: &[u8]) -> T {
    pod_read_unaligned(&b[..std::mem::size_of::<T>()])
}

fn body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn requests_answered_and_malformed_ones_refused() {
    let img = mkfs_ext2(8 * 1024, 1024, &[]);
    let fs: Arc<Ext2> = Ext2::mount(&img.path, FsConfig::default()).expect("mount");
    let d = Dispatcher::new(fs.clone(), None);

    // mkdir, mknod, write, read, getattr, lookup, readdir, xattrs: the
    // answers the request layer gives, in the kernel's layout.
    let mk = abi::MkdirIn {
        mode: 0o755,
        umask: 0o022,
    };
    let e: abi::EntryOut = read(&ok(send(
        &d,
        op::MKDIR,
        1,
        &body(&[bytes_of(&mk), b"dir\0"]),
    )));
    assert_eq!(e.attr.mode, libc::S_IFDIR | 0o755);
    assert_eq!(e.attr.nlink, 2);
    let cr = abi::CreateIn {
        mode: libc::S_IFREG | 0o644,
        umask: 0o022,
        ..Default::default()
    };
    // CREATE is refused (ENOSYS: the kernel then makes files with MKNOD
    // and opens them without OPEN), and makes nothing.
    assert_eq!(
        send(&d, op::CREATE, e.nodeid, &body(&[bytes_of(&cr), b"f\0"])),
        Answer::Error(libc::ENOSYS)
    );
    let mn = abi::MknodIn {
        mode: libc::S_IFREG | 0o644,
        umask: 0o022,
        ..Default::default()
    };
    let reply = ok(send(
        &d,
        op::MKNOD,
        e.nodeid,
        &body(&[bytes_of(&mn), b"f\0"]),
    ));
    assert_eq!(reply.len(), 128, "an entry reply");
    let f: abi::EntryOut = read(&reply);
    assert_eq!(f.attr.mode, libc::S_IFREG | 0o644);
    let w = abi::WriteIn {
        offset: 10,
        size: 5,
        ..Default::default()
    };
    let wo: abi::WriteOut = read(&ok(send(
        &d,
        op::WRITE,
        f.nodeid,
        &body(&[bytes_of(&w), b"hello"]),
    )));
    assert_eq!(wo.size, 5);
    let r = abi::ReadIn {
        offset: 8,
        size: 100,
        ..Default::default()
    };
    assert_eq!(ok(send(&d, op::READ, f.nodeid, bytes_of(&r))), b"\0\0hello");
    let a: abi::AttrOut = read(&ok(send(
        &d,
        op::GETATTR,
        f.nodeid,
        bytes_of(&abi::GetattrIn::default()),
    )));
    assert_eq!((a.attr.size, a.attr.ino), (15, f.nodeid));
    let l: abi::EntryOut = read(&ok(send(&d, op::LOOKUP, e.nodeid, b"f\0")));
    assert_eq!(l.nodeid, f.nodeid);
    // A missing name is a negative entry (node id 0, cached for its TTL),
    // not ENOENT, so that the kernel does not ask again.
    let missing: abi::EntryOut = read(&ok(send(&d, op::LOOKUP, e.nodeid, b"nothing\0")));
    assert_eq!(missing.nodeid, 0, "a negative entry");
    assert!(missing.entry_valid > 0 || missing.entry_valid_nsec > 0);
    let list = ok(send(
        &d,
        op::READDIR,
        e.nodeid,
        bytes_of(&abi::ReadIn {
            size: 4096,
            ..Default::default()
        }),
    ));
    let mut names = Vec::new();
    let mut at = 0;
    while at < list.len() {
        let de: abi::Dirent = read(&list[at..]);
        let start = at + std::mem::size_of::<abi::Dirent>();
        names.push(String::from_utf8(list[start..start + de.namelen as usize].to_vec()).unwrap());
        at = (start + de.namelen as usize + 7) & !7;
    }
    assert_eq!(names, [".", "..", "f"]);
    let sx = abi::SetxattrIn { size: 3, flags: 0 };
    assert_eq!(
        send(
            &d,
            op::SETXATTR,
            f.nodeid,
            &body(&[bytes_of(&sx), b"user.k\0", b"abc"])
        ),
        Answer::Ok(vec![])
    );
    let size_only: abi::GetxattrOut = read(&ok(send(
        &d,
        op::GETXATTR,
        f.nodeid,
        &body(&[bytes_of(&abi::GetxattrIn::default()), b"user.k\0"]),
    )));
    assert_eq!(size_only.size, 3);
    let g = abi::GetxattrIn {
        size: 2,
        padding: 0,
    };
    assert_eq!(
        send(
            &d,
            op::GETXATTR,
            f.nodeid,
            &body(&[bytes_of(&g), b"user.k\0"])
        ),
        Answer::Error(libc::ERANGE)
    );
    // Root is 1 for FUSE; FUSE's 2 is no inode.
    let root: abi::AttrOut = read(&ok(send(
        &d,
        op::GETATTR,
        1,
        bytes_of(&abi::GetattrIn::default()),
    )));
    assert_eq!(root.attr.ino, 1);
    assert!(matches!(
        send(&d, op::GETATTR, 2, bytes_of(&abi::GetattrIn::default())),
        Answer::Error(_)
    ));
    // Open and flush are declined so the kernel stops sending them.
    assert_eq!(
        send(&d, op::OPEN, f.nodeid, bytes_of(&abi::OpenIn::default())),
        Answer::Error(libc::ENOSYS)
    );
    // Forgets are not answered.
    assert_eq!(
        send(
            &d,
            op::FORGET,
            l.nodeid,
            bytes_of(&abi::ForgetIn { nlookup: 1 })
        ),
        Answer::Nothing
    );

    // Malformed: names without a NUL, data shorter than announced, and
    // every truncation of each opcode's own header.
    assert_eq!(send(&d, op::LOOKUP, 1, b"dir"), Answer::Error(libc::EINVAL));
    let w = abi::WriteIn {
        size: 100,
        ..Default::default()
    };
    assert_eq!(
        send(&d, op::WRITE, f.nodeid, &body(&[bytes_of(&w), b"short"])),
        Answer::Error(libc::EINVAL)
    );
    let sx = abi::SetxattrIn { size: 50, flags: 0 };
    assert_eq!(
        send(
            &d,
            op::SETXATTR,
            f.nodeid,
            &body(&[bytes_of(&sx), b"user.k\0", b"abc"])
        ),
        Answer::Error(libc::EINVAL)
    );
    for opcode in 0..64u32 {
        let need = abi::op_header_size(opcode);
        for len in 0..need {
            // A zeroed header cut short: refused before anything runs.
            let a = send(&d, opcode, f.nodeid, &vec![0u8; len]);
            let answered = match a {
                Answer::Error(_) => !dispatch::unanswered(opcode),
                Answer::Nothing => dispatch::unanswered(opcode),
                Answer::Ok(_) => false,
            };
            assert!(
                answered,
                "opcode {opcode} cut to {len} of {need} bytes: {a:?}"
            );
        }
    }
    // Opcodes not served here: ENOSYS (INIT is the session's, not ours).
    for opcode in [
        op::INIT,
        31,
        32,
        33,
        40,
        44,
        46,
        47,
        50,
        51,
        52,
        60,
        4096,
        u32::MAX,
    ] {
        assert_eq!(
            send(&d, opcode, 1, &[0u8; 64]),
            Answer::Error(libc::ENOSYS),
            "opcode {opcode}"
        );
    }
    drop(d);
    fs.unmount().expect("unmount");
    drop(fs);
    fsck_clean(&img.path);
}
