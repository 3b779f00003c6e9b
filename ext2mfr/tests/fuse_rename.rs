//! rename(2) and renameat2(2) through a real FUSE mount: files and
//! directories, over existing targets, across parents ('..' and link
//! counts on disk), the refusals, RENAME_NOREPLACE / RENAME_EXCHANGE /
//! RENAME_WHITEOUT, and renames that make a directory grow.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn rename_files_and_directories() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let ino = |p: &str| fs::metadata(m.p(p)).unwrap().ino();
    let links = |p: &str| fs::metadata(m.p(p)).unwrap().nlink();
    let dotdot = |p: &str| {
        raw_readdir(&m.p(p))
            .into_iter()
            .find(|(n, _, _)| n == b"..")
            .map(|(_, i, _)| i)
            .unwrap()
    };
    let ffree0 = statfs(m.path()).f_ffree;

    // Over an existing file: the old target loses a link (here: its only one).
    fs::write(m.p("a"), b"A").unwrap();
    fs::write(m.p("b"), b"B").unwrap();
    fs::hard_link(m.p("b"), m.p("b2")).unwrap();
    let a_ino = ino("a");
    fs::rename(m.p("a"), m.p("b")).unwrap();
    assert_errno!(fs::metadata(m.p("a")), libc::ENOENT);
    assert_eq!(fs::read(m.p("b")).unwrap(), b"A");
    assert_eq!(ino("b"), a_ino);
    assert_eq!(links("b2"), 1);
    assert_eq!(fs::read(m.p("b2")).unwrap(), b"B");
    fs::write(m.p("c"), b"C").unwrap();
    fs::rename(m.p("c"), m.p("b2")).unwrap(); // b2's inode is freed
    assert_eq!(fs::read(m.p("b2")).unwrap(), b"C");

    // Renaming one link onto another link of the same inode changes nothing.
    fs::hard_link(m.p("b"), m.p("b3")).unwrap();
    fs::rename(m.p("b"), m.p("b3")).unwrap();
    assert!(m.p("b").exists() && m.p("b3").exists());
    assert_eq!(links("b"), 2);
    fs::remove_file(m.p("b3")).unwrap();

    // Across directories.
    fs::create_dir(m.p("d1")).unwrap();
    fs::create_dir(m.p("d2")).unwrap();
    fs::write(m.p("d1/x"), b"X").unwrap();
    fs::rename(m.p("d1/x"), m.p("d2/y")).unwrap();
    assert_eq!(fs::read(m.p("d2/y")).unwrap(), b"X");
    assert_eq!(names_of(&m.p("d1")), Vec::<String>::new());

    // A directory to another parent: ".." and both parents' link counts follow.
    fs::create_dir(m.p("d1/sub")).unwrap();
    fs::write(m.p("d1/sub/inside"), b"I").unwrap();
    fs::create_dir(m.p("d1/sub/inner")).unwrap();
    assert_eq!((links("d1"), links("d2")), (3, 2));
    let sub = ino("d1/sub");
    fs::rename(m.p("d1/sub"), m.p("d2/sub")).unwrap();
    assert_eq!((links("d1"), links("d2")), (2, 3));
    assert_eq!(ino("d2/sub"), sub);
    assert_eq!(fs::metadata(m.p("d2/sub/..")).unwrap().ino(), ino("d2"));
    assert_eq!(dotdot("d2/sub"), ino("d2"), "'..' as readdir reports it");
    assert_eq!(links("d2/sub"), 3);
    assert_eq!(fs::read(m.p("d2/sub/inside")).unwrap(), b"I");
    // Within one directory: no link count changes.
    fs::rename(m.p("d2/sub"), m.p("d2/sub_renamed")).unwrap();
    fs::rename(m.p("d2/sub_renamed"), m.p("d2/sub")).unwrap();
    assert_eq!(links("d2"), 3);

    // Over an empty directory in another parent.
    fs::create_dir(m.p("d1/empty")).unwrap();
    assert_eq!(links("d1"), 3);
    fs::rename(m.p("d2/sub"), m.p("d1/empty")).unwrap();
    assert_eq!(ino("d1/empty"), sub);
    assert_eq!((links("d1"), links("d2")), (3, 2));
    assert_eq!(dotdot("d1/empty"), ino("d1"));
    // Over an empty directory in the same parent.
    fs::create_dir(m.p("d1/empty2")).unwrap();
    assert_eq!(links("d1"), 4);
    fs::rename(m.p("d1/empty"), m.p("d1/empty2")).unwrap();
    assert_eq!(links("d1"), 3);
    assert_eq!(ino("d1/empty2"), sub);

    // Refusals.
    fs::create_dir(m.p("full")).unwrap();
    fs::write(m.p("full/f"), b"").unwrap();
    fs::write(m.p("file"), b"F").unwrap();
    assert_errno!(fs::rename(m.p("d1/empty2"), m.p("full")), libc::ENOTEMPTY);
    assert_errno!(fs::rename(m.p("file"), m.p("full")), libc::EISDIR);
    assert_errno!(fs::rename(m.p("full"), m.p("file")), libc::ENOTDIR);
    assert_errno!(
        fs::rename(m.p("d1"), m.p("d1/empty2/inner/x")),
        libc::EINVAL
    );
    assert_errno!(
        fs::rename(m.p("d1/empty2"), m.p("d1/empty2/inner")),
        libc::EINVAL
    );
    assert_errno!(fs::rename(m.p("nothing"), m.p("x")), libc::ENOENT);
    assert_errno!(fs::rename(m.p("file"), m.p("nodir/x")), libc::ENOENT);
    assert_errno!(
        fs::rename(m.p("file"), m.p(&"n".repeat(256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(fs::read(m.p("file")).unwrap(), b"F");
    assert_eq!(names_of(&m.p("full")), vec!["f"]);

    // Deep move up the tree (the source directory is an ancestor of nothing).
    fs::create_dir_all(m.p("p/q/r")).unwrap();
    fs::rename(m.p("p/q/r"), m.p("r")).unwrap();
    assert_eq!((links("p/q"), dotdot("r")), (2, 1));

    m.unmount_and_check();
    fsck_strict(&img.path);
    // '..' on disk, as e2fsprogs follows it.
    assert_eq!(
        debugfs_ino(&img.path, "/d1/empty2/.."),
        debugfs_ino(&img.path, "/d1")
    );
    assert_eq!(
        debugfs_ino(&img.path, "/d1/empty2/inner/.."),
        debugfs_ino(&img.path, "/d1/empty2")
    );
    assert_eq!(debugfs_ino(&img.path, "/r/.."), 2);
    let m = mount(&img.path, "");
    assert_eq!(fs::read(m.p("d1/empty2/inside")).unwrap(), b"I");
    assert_eq!(fs::metadata(m.p("d1")).unwrap().nlink(), 3);
    assert_eq!(fs::metadata(m.p("d2")).unwrap().nlink(), 2);
    for p in ["b", "b2", "file", "full/f", "d2/y", "d1/empty2/inside"] {
        fs::remove_file(m.p(p)).unwrap();
    }
    for p in [
        "d1/empty2/inner",
        "d1/empty2",
        "d1",
        "d2",
        "full",
        "p/q",
        "p",
        "r",
    ] {
        fs::remove_dir(m.p(p)).unwrap();
    }
    assert_eq!(names_of(m.path()), vec!["lost+found"]);
    wait_until("every replaced or removed inode to be freed", || {
        statfs(m.path()).f_ffree == ffree0
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
    // '..' on disk, as e2fsprogs follows it.
    assert_eq!(debugfs_ino(&img.path, "/lost+found/.."), 2);
}

#[test]
fn rename_flags() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    fs::write(m.p("a"), b"A").unwrap();
    fs::write(m.p("b"), b"B").unwrap();
    assert_errno!(
        rename2(&m.p("a"), &m.p("b"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );
    assert_eq!(fs::read(m.p("b")).unwrap(), b"B");
    rename2(&m.p("a"), &m.p("c"), libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(fs::read(m.p("c")).unwrap(), b"A");
    assert!(!m.p("a").exists());
    // RENAME_EXCHANGE swaps the two names, as the kernel's driver serving
    // `-t ext2` does (kernel_parity.rs compares the two side by side).
    rename2(&m.p("b"), &m.p("c"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(
        (fs::read(m.p("b")).unwrap(), fs::read(m.p("c")).unwrap()),
        (b"A".to_vec(), b"B".to_vec())
    );
    fs::create_dir(m.p("d")).unwrap();
    rename2(&m.p("d"), &m.p("c"), libc::RENAME_EXCHANGE).unwrap();
    assert!(fs::metadata(m.p("c")).unwrap().is_dir());
    assert_eq!(fs::read(m.p("d")).unwrap(), b"B");
    assert_errno!(
        rename2(&m.p("b"), &m.p("nothing"), libc::RENAME_EXCHANGE),
        libc::ENOENT
    );
    // RENAME_WHITEOUT (for overlayfs) is not built: see DIFFERENCES.md.
    assert_errno!(
        rename2(&m.p("b"), &m.p("e"), libc::RENAME_WHITEOUT),
        libc::EINVAL
    );
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Renames within one directory that force the directory to grow (the new
/// name does not fit where the old one was), then a recursive removal that
/// deletes entries while reading the directory.
#[test]
fn renames_that_grow_a_directory_and_remove_dir_all() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    for i in 0..200 {
        fs::write(d.join(format!("s{i}")), i.to_string()).unwrap();
    }
    let size0 = fs::metadata(&d).unwrap().size();
    for i in 0..200 {
        fs::rename(
            d.join(format!("s{i}")),
            d.join(format!("{i}-{}", "long".repeat(50))),
        )
        .unwrap();
    }
    assert!(fs::metadata(&d).unwrap().size() > size0);
    let names = names_of(&d);
    assert_eq!(names.len(), 200);
    assert!(names.iter().all(|n| n.ends_with(&"long".repeat(50))));
    for i in (0..200).step_by(17) {
        assert_eq!(
            fs::read(d.join(format!("{i}-{}", "long".repeat(50)))).unwrap(),
            i.to_string().as_bytes()
        );
    }
    let m = remount(m, &img.path, "");
    let d = m.p("d");
    assert_eq!(names_of(&d).len(), 200);
    fs::create_dir_all(d.join("x/y/z")).unwrap();
    fs::remove_dir_all(&d).unwrap();
    assert_errno!(fs::metadata(&d), libc::ENOENT);
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3);
    m.unmount_and_check();
    fsck_strict(&img.path);
}
