//! Mounting through a real FUSE mount: refusals (bad options, an image in
//! use, not ext2, truncated, unknown INCOMPAT and RO_COMPAT features),
//! read-only mounts that write nothing, the super block's bookkeeping
//! (state, mount count, times), an unchecked image staying unchecked, and
//! statfs against dumpe2fs.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};

#[test]
fn mount_refusals() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let sb0 = sb_bytes(&img.path);

    // Bad options name the option.
    let e = try_mount(&img.path, "bogus_option")
        .err()
        .expect("mounted with a bogus option");
    assert!(e.contains("bogus_option"), "{e}");
    let e = try_mount(&img.path, "ro,cache=lots")
        .err()
        .expect("mounted with cache=lots");
    assert!(e.contains("cache=lots"), "{e}");

    // The same image twice at once: the second is refused, the first goes on.
    let m = mount(&img.path, "");
    let e = try_mount(&img.path, "")
        .err()
        .expect("mounted the image twice");
    assert!(e.contains("in use"), "{e}");
    let e = try_mount(&img.path, "ro")
        .err()
        .expect("mounted the image twice (ro)");
    assert!(e.contains("in use"), "{e}");
    fs::write(m.p("still"), b"works").unwrap();
    m.unmount_and_check();
    fsck_strict(&img.path);

    // Not ext2 at all, and too small to tell.
    let zeros = img.dir.path().join("zeros.img");
    fs::write(&zeros, vec![0u8; 4 << 20]).unwrap();
    let e = try_mount(&zeros, "").err().expect("mounted zeros");
    assert!(e.contains("not an ext2 file system"), "{e}");
    let tiny = img.dir.path().join("tiny.img");
    fs::write(&tiny, b"tiny").unwrap();
    let e = try_mount(&tiny, "").err().expect("mounted a 4-byte file");
    assert!(e.contains("too small"), "{e}");
    let e = try_mount(&img.dir.path().join("absent.img"), "")
        .err()
        .expect("mounted a missing file");
    assert!(e.contains("absent.img"), "{e}");
    // A truncated image.
    let cut = copy_image(&img, "cut.img");
    OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let e = try_mount(&cut, "")
        .err()
        .expect("mounted a truncated image");
    assert!(e.contains("bytes"), "{e}");

    // Unknown INCOMPAT features refuse any mount and are named.
    let inc = copy_image(&img, "incompat.img");
    or_u32_at(&inc, 1024 + 96, 0x40);
    let inc_bytes = fs::read(&inc).unwrap();
    for opts in ["", "ro"] {
        let e = try_mount(&inc, opts)
            .err()
            .expect("mounted with INCOMPAT extent");
        assert!(e.contains("extent") && e.contains("INCOMPAT"), "{e}");
    }
    let inc2 = copy_image(&img, "incompat2.img");
    or_u32_at(&inc2, 1024 + 96, 0x0800);
    let inc2_bytes = fs::read(&inc2).unwrap();
    let e = try_mount(&inc2, "")
        .err()
        .expect("mounted with an unnamed INCOMPAT bit");
    assert!(e.contains("0x800"), "{e}");

    // Unknown RO_COMPAT features: read-only only.
    let roc = copy_image(&img, "rocompat.img");
    or_u32_at(&roc, 1024 + 100, 0x20);
    let roc_bytes = fs::read(&roc).unwrap();
    let e = try_mount(&roc, "")
        .err()
        .expect("mounted RO_COMPAT dir_nlink read-write");
    assert!(e.contains("dir_nlink") && e.contains("-o ro"), "{e}");
    let m = try_mount(&roc, "ro").expect("read-only mount with an unknown RO_COMPAT feature");
    assert_eq!(fs::read(m.p("still")).unwrap(), b"works");
    assert_errno!(File::create(m.p("x")), libc::EROFS);
    m.unmount_and_check();
    fsck_strict(&roc);
    assert!(
        fs::read(&roc).unwrap() == roc_bytes,
        "read-only mount wrote to the image"
    );

    // Refused mounts leave the image alone.
    assert!(fs::read(&inc).unwrap() == inc_bytes && fs::read(&inc2).unwrap() == inc2_bytes);
    assert_eq!(
        le16(&sb_bytes(&inc), 52),
        le16(&sb0, 52) + 1,
        "one successful mount before the copy"
    );
    // The original is still fine and mountable.
    let m = mount(&img.path, "");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn read_only_mount() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    fs::write(m.p("f"), b"data").unwrap();
    fs::create_dir(m.p("d")).unwrap();
    m.unmount_and_check();
    fsck_strict(&img.path);
    let before = fs::read(&img.path).unwrap();

    let m = mount(&img.path, "ro");
    assert_eq!(fs::read(m.p("f")).unwrap(), b"data");
    assert_eq!(names_of(m.path()), vec!["d", "f", "lost+found"]);
    let vfs = statvfs(m.path());
    assert_ne!(vfs.f_flag & libc::ST_RDONLY, 0);
    assert_errno!(OpenOptions::new().write(true).open(m.p("f")), libc::EROFS);
    assert_errno!(File::create(m.p("new")), libc::EROFS);
    assert_errno!(fs::create_dir(m.p("nd")), libc::EROFS);
    assert_errno!(fs::remove_file(m.p("f")), libc::EROFS);
    assert_errno!(fs::remove_dir(m.p("d")), libc::EROFS);
    assert_errno!(fs::rename(m.p("f"), m.p("g")), libc::EROFS);
    assert_errno!(fs::hard_link(m.p("f"), m.p("g")), libc::EROFS);
    assert_errno!(symlink("f", m.p("s")), libc::EROFS);
    assert_errno!(mknod(&m.p("n"), libc::S_IFIFO | 0o600, 0), libc::EROFS);
    assert_errno!(
        fs::set_permissions(m.p("f"), fs::Permissions::from_mode(0o600)),
        libc::EROFS
    );
    assert_errno!(truncate(&m.p("f"), 0), libc::EROFS);
    assert_errno!(
        utimens(&m.p("f"), (0, libc::UTIME_NOW), (0, libc::UTIME_NOW)),
        libc::EROFS
    );
    assert_errno!(access(&m.p("f"), libc::W_OK), libc::EROFS);
    access(&m.p("f"), libc::R_OK).unwrap();
    m.unmount();
    // A read-only mount writes nothing: not the mount count, not atime.
    assert!(
        fs::read(&img.path).unwrap() == before,
        "a read-only mount changed the image"
    );
    let m = mount(&img.path, "");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn superblock_bookkeeping() {
    let _serial = setup();
    for (label, img) in [
        ("mkfs.ext2mfr", mkfs_ext2mfr(16 << 20, 1024)),
        ("mke2fs", mkfs_ext2(16384, 1024, &[])),
    ] {
        let before = dumpe2fs_h(&img.path);
        assert_eq!(dump_field(&before, "Filesystem state"), "clean", "{label}");
        let count0: u16 = dump_field(&before, "Mount count").parse().unwrap();
        let sb0 = sb_bytes(&img.path);
        let t0 = now() as u32;

        let m = mount(&img.path, "");
        // While mounted the image is marked in use (not clean).
        assert_eq!(
            dump_field(&dumpe2fs_h(&img.path), "Filesystem state"),
            "not clean",
            "{label}"
        );
        fs::write(m.p("f"), b"x").unwrap();
        m.unmount_and_check();
        fsck_strict(&img.path);

        let after = dumpe2fs_h(&img.path);
        assert_eq!(dump_field(&after, "Filesystem state"), "clean", "{label}");
        let count1: u16 = dump_field(&after, "Mount count").parse().unwrap();
        assert_eq!(count1, count0 + 1, "{label}");
        assert_ne!(dump_field(&after, "Last mount time"), "n/a", "{label}");
        assert_ne!(
            dump_field(&after, "Last mount time"),
            dump_field(&before, "Last mount time"),
            "{label}"
        );
        let sb1 = sb_bytes(&img.path);
        let (mtime, wtime) = (le32(&sb1, 44), le32(&sb1, 48));
        assert!(
            mtime >= t0 && mtime <= now() as u32,
            "{label}: s_mtime {mtime} not in [{t0}, now]"
        );
        assert!(wtime >= mtime, "{label}: s_wtime");
        assert_eq!(le16(&sb1, 58), 1, "{label}: s_state");
        // Fields the mount must not touch.
        assert_eq!(sb1[104..120], sb0[104..120], "{label}: uuid");
        assert_eq!(le16(&sb1, 54), le16(&sb0, 54), "{label}: max mount count");

        // Once more: the count keeps going up.
        let m = mount(&img.path, "");
        m.unmount_and_check();
        fsck_strict(&img.path);
        assert_eq!(
            dump_field(&dumpe2fs_h(&img.path), "Mount count")
                .parse::<u16>()
                .unwrap(),
            count0 + 2
        );
    }
}

/// An image that was not cleanly unmounted (or has errors recorded) mounts,
/// with the state kept as it was: a clean unmount must not mark a file
/// system clean that was never checked (the kernel's ext2 does the same:
/// it writes back the state it found at mount time).
#[test]
fn unchecked_image_stays_unchecked() {
    let _serial = setup();
    for (state, want) in [(0u16, "not clean"), (3, "clean with errors"), (1, "clean")] {
        let img = mkfs_ext2mfr(16 << 20, 1024);
        {
            let f = OpenOptions::new().write(true).open(&img.path).unwrap();
            f.write_all_at(&state.to_le_bytes(), 1024 + 58).unwrap();
        }
        let m = mount(&img.path, "");
        fs::write(m.p("f"), b"data").unwrap();
        m.unmount_and_check();
        fsck_strict(&img.path);
        let dump = dumpe2fs_h(&img.path);
        assert_eq!(
            dump_field(&dump, "Filesystem state"),
            want,
            "state {state} at mount"
        );
        assert_eq!(
            le16(&sb_bytes(&img.path), 58),
            state,
            "s_state after unmount"
        );
        assert_eq!(dump_field(&dump, "Mount count"), "1");
    }
}

#[test]
fn statfs_counts() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let dump = dumpe2fs_h(&img.path);
    let num = |k: &str| dump_field(&dump, k).parse::<u64>().unwrap();
    let m = mount(&img.path, "");
    let s = statfs(m.path());
    assert_eq!(s.f_bsize, 1024);
    assert_eq!(s.f_frsize, 1024);
    assert_eq!(s.f_namelen, 255);
    assert_eq!(s.f_bfree, num("Free blocks"));
    assert_eq!(s.f_bavail, num("Free blocks") - num("Reserved block count"));
    assert_eq!(s.f_files, num("Inode count"));
    assert_eq!(s.f_ffree, num("Free inodes"));
    // f_blocks leaves out the metadata: what is used is exactly the files' blocks.
    let used_by_files = (fs::metadata(m.path()).unwrap().blocks()
        + fs::metadata(m.p("lost+found")).unwrap().blocks())
        / 2;
    assert_eq!(s.f_blocks - s.f_bfree, used_by_files);
    assert!(s.f_blocks < num("Block count"));

    // A 1 MiB file: 1024 data blocks and 5 indirect blocks.
    fs::write(m.p("mib"), vec![1u8; 1 << 20]).unwrap();
    let s2 = statfs(m.path());
    assert_eq!(s.f_bfree - s2.f_bfree, 1024 + 5);
    assert_eq!(s.f_bavail - s2.f_bavail, 1024 + 5);
    assert_eq!(s.f_ffree - s2.f_ffree, 1);
    assert_eq!(s2.f_blocks, s.f_blocks);
    fs::remove_file(m.p("mib")).unwrap();
    wait_until("the removed file's blocks and inode to be free", || {
        let s3 = statfs(m.path());
        (s3.f_bfree, s3.f_ffree) == (s.f_bfree, s.f_ffree)
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}
