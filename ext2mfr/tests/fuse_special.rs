//! Symbolic links (fast ones in the inode, slow ones in a block, too long)
//! and special files (mknod of every kind: FIFOs, sockets, character and
//! block devices with large numbers) through a real FUSE mount.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};

#[test]
fn symlinks_fast_slow_and_too_long() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let targets: Vec<(String, String)> = [1usize, 10, 59, 60, 61, 500, 1023]
        .iter()
        .map(|&n| {
            let t: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            (format!("l{n}"), t)
        })
        .collect();
    for (name, t) in &targets {
        symlink(t, m.p(name)).unwrap();
    }
    let check = |m: &Mount| {
        for (name, t) in &targets {
            assert_eq!(
                fs::read_link(m.p(name)).unwrap().as_os_str().as_bytes(),
                t.as_bytes()
            );
            let st = fs::symlink_metadata(m.p(name)).unwrap();
            assert!(st.file_type().is_symlink());
            assert_eq!(st.mode() & 0o777, 0o777);
            assert_eq!(st.size(), t.len() as u64);
            // Up to 59 bytes live in the inode; longer targets take a block.
            let want = if t.len() < 60 { 0 } else { 2 };
            assert_eq!(st.blocks(), want, "st_blocks of a {}-byte symlink", t.len());
        }
    };
    check(&m);
    // Following a link works through the kernel.
    fs::write(m.p("target"), b"T").unwrap();
    symlink("target", m.p("to_target")).unwrap();
    assert_eq!(fs::read(m.p("to_target")).unwrap(), b"T");
    symlink("/nonexistent/xyz", m.p("dangling")).unwrap();
    assert_errno!(fs::read(m.p("dangling")), libc::ENOENT);

    // A target must fit in one block (1023 bytes + NUL on 1 KiB blocks).
    let free = statfs(m.path());
    for n in [1024usize, 2000, 4095] {
        assert_errno!(symlink("x".repeat(n), m.p("toolong")), libc::ENAMETOOLONG);
    }
    assert_errno!(fs::symlink_metadata(m.p("toolong")), libc::ENOENT);
    let after = statfs(m.path());
    assert_eq!(
        (free.f_bfree, free.f_ffree),
        (after.f_bfree, after.f_ffree),
        "failed symlink leaked"
    );
    assert_errno!(symlink("x", m.p("l10")), libc::EEXIST);
    // readlink on something that is not a link.
    assert_errno!(fs::read_link(m.p("target")), libc::EINVAL);

    // Unlinking symlinks of both kinds frees them.
    fs::remove_file(m.p("l1")).unwrap();
    fs::remove_file(m.p("l500")).unwrap();
    let m = remount(m, &img.path, "");
    let targets: Vec<_> = targets
        .into_iter()
        .filter(|(n, _)| n != "l1" && n != "l500")
        .collect();
    for (name, t) in &targets {
        assert_eq!(
            fs::read_link(m.p(name)).unwrap().as_os_str().as_bytes(),
            t.as_bytes()
        );
    }
    m.unmount_and_check();
    fsck_strict(&img.path);
    for (name, t) in &targets {
        let s = debugfs(&img.path, &format!("stat /{name}"));
        assert!(s.contains(&format!("Size: {}", t.len())), "{s}");
    }
}

#[test]
fn mknod_every_kind() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let devs: [(&str, u32, u32, u32); 5] = [
        ("chr", libc::S_IFCHR, 1, 3),
        ("blk", libc::S_IFBLK, 8, 1),
        ("chr_big_major", libc::S_IFCHR, 259, 7),
        ("blk_big_minor", libc::S_IFBLK, 4, 300),
        ("chr_huge", libc::S_IFCHR, 4000, 1_000_000),
    ];
    mknod(&m.p("reg"), libc::S_IFREG | 0o600, 0).unwrap();
    mknod(&m.p("fifo"), libc::S_IFIFO | 0o640, 0).unwrap();
    mknod(&m.p("sock"), libc::S_IFSOCK | 0o644, 0).unwrap();
    for (name, kind, ma, mi) in devs {
        mknod(&m.p(name), kind | 0o600, libc::makedev(ma, mi)).unwrap();
    }
    fs::create_dir(m.p("dir")).unwrap();
    symlink("reg", m.p("sym")).unwrap();

    let check = |m: &Mount| {
        let st = fs::metadata(m.p("reg")).unwrap();
        assert!(st.file_type().is_file());
        assert_eq!((st.mode() & 0o7777, st.size(), st.blocks()), (0o600, 0, 0));
        let st = fs::metadata(m.p("fifo")).unwrap();
        assert!(st.file_type().is_fifo());
        assert_eq!(st.mode() & 0o7777, 0o640);
        assert!(fs::metadata(m.p("sock")).unwrap().file_type().is_socket());
        for (name, kind, ma, mi) in devs {
            let st = fs::metadata(m.p(name)).unwrap();
            assert_eq!(st.mode() & libc::S_IFMT, kind, "{name}");
            let rdev = st.rdev();
            assert_eq!((libc::major(rdev), libc::minor(rdev)), (ma, mi), "{name}");
            assert_eq!(st.size(), 0);
        }
        // readdir reports each entry's type.
        let types: HashMap<String, u8> = raw_readdir(m.path())
            .into_iter()
            .map(|(n, _, t)| (String::from_utf8(n).unwrap(), t))
            .collect();
        for (name, t) in [
            ("reg", libc::DT_REG),
            ("fifo", libc::DT_FIFO),
            ("sock", libc::DT_SOCK),
            ("chr", libc::DT_CHR),
            ("blk", libc::DT_BLK),
            ("dir", libc::DT_DIR),
            ("sym", libc::DT_LNK),
            ("lost+found", libc::DT_DIR),
        ] {
            assert_eq!(types[name], t, "d_type of {name}");
        }
    };
    check(&m);
    assert_errno!(mknod(&m.p("fifo"), libc::S_IFIFO | 0o600, 0), libc::EEXIST);
    // A FIFO on the mount works as a FIFO (the kernel handles the data).
    let p = m.p("fifo");
    let writer = std::thread::spawn(move || fs::write(p, b"through the pipe").unwrap());
    assert_eq!(fs::read(m.p("fifo")).unwrap(), b"through the pipe");
    writer.join().unwrap();

    let m = remount(m, &img.path, "");
    check(&m);
    m.unmount_and_check();
    fsck_strict(&img.path);
    // e2fsprogs decodes the same device numbers from the inodes.
    for (name, _, ma, mi) in devs {
        let s = debugfs(&img.path, &format!("stat /{name}"));
        assert!(
            s.contains(&format!("Device major/minor number: {ma:02}:{mi:02}")),
            "{name}: {s}"
        );
    }
}
