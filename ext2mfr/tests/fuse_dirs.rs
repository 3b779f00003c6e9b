//! Directories through a real FUSE mount: mkdir, rmdir (also of an open
//! directory), unlink, hard links and link counts, readdir of thousands of
//! entries, name lengths and names as bytes, set-group-ID inheritance, and
//! ENOSPC while a directory grows. Renames: `fuse_rename.rs`.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

#[test]
fn mkdir_rmdir_unlink_and_nlink() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let root_links = || fs::metadata(m.path()).unwrap().nlink();
    assert_eq!(root_links(), 3);
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    let st = fs::metadata(&d).unwrap();
    assert!(st.is_dir());
    assert_eq!(
        (st.nlink(), st.size(), st.blocks(), st.mode() & 0o7777),
        (2, 1024, 2, 0o755)
    );
    assert_eq!(root_links(), 4);
    let dots = raw_readdir(&d);
    assert_eq!(dots.len(), 2);
    assert!(dots.iter().any(|(n, ino, _)| n == b"." && *ino == st.ino()));
    assert!(dots
        .iter()
        .any(|(n, ino, _)| n == b".." && *ino == fs::metadata(m.path()).unwrap().ino()));

    fs::create_dir(d.join("e")).unwrap();
    fs::create_dir(d.join("e2")).unwrap();
    fs::write(d.join("file"), b"x").unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 4);
    assert_errno!(fs::create_dir(&d), libc::EEXIST);
    assert_errno!(fs::create_dir(d.join("file")), libc::EEXIST);
    assert_errno!(fs::create_dir(d.join("nope/x")), libc::ENOENT);
    assert_errno!(fs::create_dir(d.join("file/x")), libc::ENOTDIR);

    assert_errno!(fs::remove_dir(&d), libc::ENOTEMPTY);
    assert_errno!(fs::remove_dir(d.join("file")), libc::ENOTDIR);
    assert_errno!(fs::remove_dir(d.join("missing")), libc::ENOENT);
    assert_errno!(fs::remove_file(d.join("e")), libc::EISDIR);
    assert_errno!(fs::remove_dir(d.join("e/.")), libc::EINVAL);
    assert_errno!(fs::remove_dir(d.join("e/..")), libc::ENOTEMPTY);

    fs::remove_dir(d.join("e")).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 3);
    assert_errno!(fs::metadata(d.join("e")), libc::ENOENT);
    fs::remove_file(d.join("file")).unwrap();
    fs::remove_dir(d.join("e2")).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 2);
    assert_eq!(names_of(&d), Vec::<String>::new());
    fs::remove_dir(&d).unwrap();
    assert_eq!(root_links(), 3);

    // A set-group-ID directory passes its group (and the bit, to directories) on.
    let sg = m.p("sgid");
    fs::create_dir(&sg).unwrap();
    std::os::unix::fs::chown(&sg, None, Some(777)).unwrap();
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2775)).unwrap();
    fs::create_dir(sg.join("sub")).unwrap();
    fs::write(sg.join("f"), b"").unwrap();
    let sub = fs::metadata(sg.join("sub")).unwrap();
    assert_eq!((sub.gid(), sub.mode() & 0o2000), (777, 0o2000));
    let f = fs::metadata(sg.join("f")).unwrap();
    assert_eq!((f.gid(), f.mode() & 0o2000), (777, 0));

    // Many subdirectories: the parent's link count follows, on disk too.
    for i in 0..50 {
        fs::create_dir(m.p(&format!("many{i}"))).unwrap();
    }
    assert_eq!(root_links(), 3 + 1 + 50);
    let m = remount(m, &img.path, "");
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3 + 1 + 50);
    for i in (0..50).step_by(2) {
        fs::remove_dir(m.p(&format!("many{i}"))).unwrap();
    }
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3 + 1 + 25);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn link_and_unlink() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let ffree0 = statfs(m.path()).f_ffree;
    fs::write(m.p("f"), b"shared").unwrap();
    fs::create_dir(m.p("d")).unwrap();
    fs::hard_link(m.p("f"), m.p("g")).unwrap();
    fs::hard_link(m.p("f"), m.p("d/h")).unwrap();
    let (f, g, h) = (
        fs::metadata(m.p("f")).unwrap(),
        fs::metadata(m.p("g")).unwrap(),
        fs::metadata(m.p("d/h")).unwrap(),
    );
    assert_eq!((f.nlink(), g.nlink(), h.nlink()), (3, 3, 3));
    assert_eq!((f.ino(), f.ino()), (g.ino(), h.ino()));
    assert_errno!(fs::hard_link(m.p("f"), m.p("g")), libc::EEXIST);
    assert_errno!(fs::hard_link(m.p("d"), m.p("dlink")), libc::EPERM);
    assert_errno!(fs::hard_link(m.p("missing"), m.p("x")), libc::ENOENT);
    assert_errno!(fs::hard_link(m.p("f"), m.p("nodir/x")), libc::ENOENT);
    // Symlinks, devices and FIFOs can be linked too.
    symlink("f", m.p("s")).unwrap();
    fs::hard_link(m.p("s"), m.p("s2")).unwrap();
    assert_eq!(fs::symlink_metadata(m.p("s2")).unwrap().nlink(), 2);
    assert_eq!(fs::read_link(m.p("s2")).unwrap(), Path::new("f"));

    fs::remove_file(m.p("f")).unwrap();
    assert_errno!(fs::metadata(m.p("f")), libc::ENOENT);
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 2);
    assert_eq!(fs::read(m.p("d/h")).unwrap(), b"shared");
    assert_errno!(fs::remove_file(m.p("f")), libc::ENOENT);
    assert_errno!(fs::remove_file(m.p("d")), libc::EISDIR);
    fs::remove_file(m.p("d/h")).unwrap();
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 1);
    let m = remount(m, &img.path, "");
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.p("g")).unwrap(), b"shared");
    fs::remove_file(m.p("g")).unwrap();
    fs::remove_file(m.p("s")).unwrap();
    fs::remove_file(m.p("s2")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    // An unlinked inode is freed when the kernel forgets it (right after the unlink).
    wait_until("every inode to come back", || {
        statfs(m.path()).f_ffree == ffree0
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn readdir_2000_entries_and_name_lengths() {
    let _serial = setup();
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let m = mount(&img.path, "");
    let d = m.p("many");
    fs::create_dir(&d).unwrap();
    let names: Vec<String> = (0..2000)
        .map(|i| format!("entry-{i:04}-{}", "x".repeat(i % 37)))
        .collect();
    for n in &names {
        File::create(d.join(n)).unwrap();
    }
    let check = |d: &Path, want: &[&String]| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_file());
            *seen
                .entry(e.file_name().into_string().unwrap())
                .or_default() += 1;
        }
        let dups: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
        assert!(dups.is_empty(), "listed more than once: {dups:?}");
        let want_set: HashSet<&str> = want.iter().map(|s| s.as_str()).collect();
        let seen_set: HashSet<&str> = seen.keys().map(|s| s.as_str()).collect();
        assert_eq!(seen_set.len(), want.len());
        assert!(
            seen_set == want_set,
            "listing differs from the names created"
        );
    };
    check(&d, &names.iter().collect::<Vec<_>>());
    // The directory grew past the direct blocks; st_blocks counts its indirect block.
    let st = fs::metadata(&d).unwrap();
    assert!(st.size() > 12 * 1024);
    assert_eq!(st.blocks(), dense_sectors(st.size(), 1024));
    // Inode numbers from readdir match lookups (a sample).
    for (n, ino, t) in raw_readdir(&d).into_iter().step_by(97) {
        if n != b"." && n != b".." {
            let p = d.join(std::ffi::OsStr::from_bytes(&n));
            assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
            assert_eq!(t, libc::DT_REG);
        }
    }
    // Remove every other entry and list again.
    for n in names.iter().step_by(2) {
        fs::remove_file(d.join(n)).unwrap();
    }
    let left: Vec<&String> = names.iter().skip(1).step_by(2).collect();
    check(&d, &left);

    // Name lengths: 255 works everywhere, 256 is ENAMETOOLONG everywhere.
    let n255 = "L".repeat(255);
    let n256 = "L".repeat(256);
    fs::write(m.p(&n255), b"long").unwrap();
    assert_eq!(fs::read(m.p(&n255)).unwrap(), b"long");
    fs::create_dir(d.join(&n255)).unwrap();
    symlink("x", m.p(&format!("{}s", "L".repeat(254)))).unwrap();
    assert!(names_of(m.path()).contains(&n255));
    assert_errno!(File::create(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::metadata(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::create_dir(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(symlink("x", m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::hard_link(m.p(&n255), m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(
        mknod(&m.p(&n256), libc::S_IFIFO | 0o600, 0),
        libc::ENAMETOOLONG
    );
    assert_errno!(fs::remove_file(m.p(&n256)), libc::ENAMETOOLONG);

    let m = remount(m, &img.path, "");
    let d = m.p("many");
    let mut left_and_dir = left.clone();
    left_and_dir.push(&n255);
    let mut seen = names_of(&d);
    seen.sort();
    let mut want: Vec<String> = left_and_dir.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Names are bytes: anything but '/' and NUL, kept exactly.
#[test]
fn names_are_bytes() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let names: Vec<Vec<u8>> = vec![
        (0x80u8..=0xff).collect(),
        b"with\nnewline".to_vec(),
        b" leading and trailing ".to_vec(),
        b"...".to_vec(),
        b"-".to_vec(),
        "ünïcödé ✓".as_bytes().to_vec(),
        (1u8..=0x2e).chain(0x30..=0x7f).collect(), // every byte but NUL and '/'
    ];
    for n in &names {
        fs::write(m.path().join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    let check = |m: &Mount| {
        let listed: HashSet<Vec<u8>> = fs::read_dir(m.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        for n in &names {
            assert!(
                listed.contains(n),
                "{:?} not listed",
                String::from_utf8_lossy(n)
            );
            assert_eq!(
                &fs::read(m.path().join(std::ffi::OsStr::from_bytes(n))).unwrap(),
                n
            );
        }
        assert_eq!(listed.len(), names.len() + 1); // and lost+found
    };
    check(&m);
    let m = remount(m, &img.path, "");
    check(&m);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// A directory removed while open: the kernel reports it gone, and the
/// daemon frees it once the kernel lets go.
#[test]
fn rmdir_of_an_open_directory() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let s0 = statfs(m.path());
    fs::create_dir(m.p("gone")).unwrap();
    let dir = File::open(m.p("gone")).unwrap();
    fs::remove_dir(m.p("gone")).unwrap();
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3);
    assert_eq!(dir.metadata().unwrap().nlink(), 0);
    // Nothing can be created in it any more.
    let fd = dir.as_raw_fd();
    let name = CString::new("x").unwrap();
    let r = unsafe { libc::openat(fd, name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    assert_eq!(r, -1);
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOENT)
    );
    drop(dir);
    wait_until("the removed directory to be freed", || {
        let s = statfs(m.path());
        (s.f_bfree, s.f_ffree) == (s0.f_bfree, s0.f_ffree)
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// With exactly one free block, a directory whose twelve direct blocks are
/// full needs two (its first indirect block and a data block): create,
/// mknod, symlink, link, rename and mkdir into it must fail with ENOSPC and
/// leave the image consistent (no half-allocated indirect block).
#[test]
fn enospc_while_a_directory_grows() {
    let _serial = setup();
    // With recovery on, a failed request is rolled back as a whole; in the
    // baseline the operation itself must clean up.
    for mode in ["commit=0", "commit=0,baseline"] {
        enospc_while_a_directory_grows_in(mode);
    }
}

fn enospc_while_a_directory_grows_in(mode: &str) {
    let img = mkfs_ext2mfr(4 << 20, 1024);
    let m = mount(&img.path, mode);
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    // 255-byte names take 264 bytes: three per block, 36 fill 12 blocks.
    let long = |i: usize| format!("{i:03}{}", "n".repeat(252));
    for i in 0..36 {
        File::create(d.join(long(i))).unwrap();
    }
    assert_eq!(fs::metadata(&d).unwrap().size(), 12 * 1024);
    fs::write(m.p("src"), b"").unwrap();
    symlink("t", m.p("srclink")).unwrap();
    // Fill the disk, then give back blocks until exactly one is free.
    {
        let mut f = File::create(m.p("fill")).unwrap();
        let chunk = vec![0xabu8; 64 << 10];
        while f.write(&chunk).is_ok() {}
        assert_eq!(statfs(m.path()).f_bfree, 0);
    }
    let set_one_free = || {
        // Shrink "fill" block by block until something is free; then use
        // one-block files to come down to exactly one free block.
        while statfs(m.path()).f_bfree == 0 {
            let size = fs::metadata(m.p("fill")).unwrap().size();
            truncate(&m.p("fill"), size.saturating_sub(1024)).unwrap();
        }
        let mut k = 0;
        while statfs(m.path()).f_bfree > 1 {
            let p = m.p(&format!("pad-{}-{k}", now()));
            k += 1;
            if p.exists() {
                continue;
            }
            fs::write(&p, b"p").unwrap();
        }
    };
    let sync_and_fsck = |what: &str| {
        File::open(m.p("src")).unwrap().sync_all().unwrap();
        let out = e2fsck_fn(&img.path);
        assert!(
            out.status.success(),
            "{mode}: after a failed {what}: e2fsck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    type Op<'a> = (&'a str, Box<dyn Fn() -> io::Result<()> + 'a>);
    let ops: Vec<Op> = vec![
        (
            "create",
            Box::new(|| File::create(d.join(long(100))).map(|_| ())),
        ),
        (
            "mknod",
            Box::new(|| mknod(&d.join(long(101)), libc::S_IFIFO | 0o600, 0)),
        ),
        ("symlink", Box::new(|| symlink("t", d.join(long(102))))),
        (
            "link",
            Box::new(|| fs::hard_link(m.p("src"), d.join(long(103)))),
        ),
        (
            "rename",
            Box::new(|| fs::rename(m.p("srclink"), d.join(long(104)))),
        ),
        ("mkdir", Box::new(|| fs::create_dir(d.join(long(105))))),
    ];
    for (what, op) in &ops {
        set_one_free();
        assert_eq!(statfs(m.path()).f_bfree, 1);
        assert_errno!(op(), libc::ENOSPC);
        assert_eq!(fs::metadata(&d).unwrap().size(), 12 * 1024, "{what}");
        assert_eq!(
            fs::metadata(&d).unwrap().blocks(),
            24,
            "{mode}: {what} left a block on the directory"
        );
        assert_eq!(statfs(m.path()).f_bfree, 1, "{mode}: {what} kept a block");
        sync_and_fsck(what);
    }
    drop(ops);
    assert_eq!(names_of(&d).len(), 36);
    assert!(fs::symlink_metadata(m.p("srclink")).is_ok());
    m.unmount_and_check();
    fsck_strict(&img.path);
}
