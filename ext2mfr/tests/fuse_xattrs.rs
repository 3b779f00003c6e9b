//! Extended attributes through a real FUSE mount: read-only support
//! (attributes e2fsprogs wrote, in an xattr block or inside a large inode,
//! read back; the block freed with the file), and what is refused
//! (setxattr, removexattr). (fallocate: `fuse_fallocate.rs`.)
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

#[test]
fn xattr_writes_unsupported() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("f");
    fs::write(&p, b"abc").unwrap();

    assert_errno!(getxattr(&p, "user.k", 64), libc::ENODATA);
    assert_errno!(getxattr(&p, "user.k", 0), libc::ENODATA);
    assert!(listxattr(&p).unwrap().is_empty());
    assert!(listxattr(m.path()).unwrap().is_empty());
    assert_errno!(setxattr(&p, "user.k", b"v"), libc::EOPNOTSUPP);
    assert_errno!(removexattr(&p, "user.k"), libc::EOPNOTSUPP);
    assert_errno!(getxattr(&p, "user.k", 64), libc::ENODATA);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Attributes e2fsprogs wrote (in an xattr block: 128-byte inodes leave no
/// room inside the inode) are read back through getxattr/listxattr, and the
/// block is freed with the file.
#[test]
fn xattrs_written_by_debugfs() {
    let _serial = setup();
    let img = mkfs_ext2(8192, 1024, &["-I", "128"]);
    let src = img.dir.path().join("src");
    fs::write(&src, b"contents").unwrap();
    let long = img.dir.path().join("long");
    let long_value: Vec<u8> = (0..300).map(|i| b'a' + (i % 26) as u8).collect();
    fs::write(&long, &long_value).unwrap();
    debugfs_w(&img.path, &format!("write {} f", src.display()));
    debugfs_w(&img.path, "ea_set /f user.k v");
    debugfs_w(
        &img.path,
        &format!("ea_set -f {} /f user.long", long.display()),
    );
    debugfs_w(&img.path, "ea_set /f trusted.t tv");
    assert!(
        debugfs(&img.path, "stat /f").contains("File ACL: "),
        "no xattr block"
    );
    fsck_clean(&img.path);

    let m = mount(&img.path, "");
    let p = m.p("f");
    assert_eq!(fs::read(&p).unwrap(), b"contents");
    assert_eq!(getxattr(&p, "user.k", 64).unwrap(), b"v");
    assert_eq!(getxattr(&p, "user.long", 1000).unwrap(), long_value);
    assert_eq!(
        getxattr(&p, "user.long", 0).unwrap().len(),
        300,
        "size query"
    );
    assert_errno!(getxattr(&p, "user.long", 10), libc::ERANGE);
    assert_eq!(getxattr(&p, "trusted.t", 64).unwrap(), b"tv");
    assert_errno!(getxattr(&p, "user.other", 64), libc::ENODATA);
    let list = listxattr(&p).unwrap();
    let mut names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    names.sort();
    assert_eq!(names, vec![&b"trusted.t"[..], b"user.k", b"user.long"]);
    assert_errno!(setxattr(&p, "user.k", b"changed"), libc::EOPNOTSUPP);
    assert_eq!(getxattr(&p, "user.k", 64).unwrap(), b"v");
    // The xattr block counts in st_blocks (1 data block + 1 xattr block).
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 4);
    let m = remount(m, &img.path, "");
    assert_eq!(getxattr(&m.p("f"), "user.k", 64).unwrap(), b"v");
    // Deleting the file frees its xattr block too (e2fsck checks the bitmaps).
    let before = statfs(m.path()).f_bfree;
    fs::remove_file(m.p("f")).unwrap();
    wait_until("the data and xattr blocks to be free", || {
        statfs(m.path()).f_bfree == before + 2
    });
    m.unmount_and_check();
    fsck_strict(&img.path);

    // 256-byte inodes: small attributes live inside the inode, and survive
    // the daemon rewriting the inode (chmod, write).
    let img = mkfs_ext2(8192, 1024, &["-I", "256"]);
    let src = img.dir.path().join("src");
    fs::write(&src, b"x").unwrap();
    debugfs_w(&img.path, &format!("write {} g", src.display()));
    debugfs_w(&img.path, "ea_set /g user.in inside");
    assert!(
        debugfs(&img.path, "stat /g").contains("File ACL: 0"),
        "not stored in the inode"
    );
    let m = mount(&img.path, "");
    let p = m.p("g");
    assert_eq!(getxattr(&p, "user.in", 64).unwrap(), b"inside");
    assert_eq!(listxattr(&p).unwrap(), b"user.in\0");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(b"more", 1)
        .unwrap();
    let m = remount(m, &img.path, "");
    assert_eq!(getxattr(&m.p("g"), "user.in", 64).unwrap(), b"inside");
    assert_eq!(fs::read(m.p("g")).unwrap(), b"xmore");
    m.unmount_and_check();
    fsck_strict(&img.path);
    assert!(debugfs(&img.path, "ea_list /g").contains("user.in"));
}
