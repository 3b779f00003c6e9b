//! Attributes through a real FUSE mount: lookup and getattr, chmod, chown,
//! utimensat and the times (atime on read, noatime, before 1970 and after
//! 2038, directory times), access(2) and permissions for another user,
//! and set-user-ID and set-group-ID bits killed by write, truncate and
//! chown. Extended attributes: `fuse_xattrs.rs`.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

#[test]
fn lookup_getattr_and_setattr() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let t0 = now();

    // The root: a directory with ".", ".." and lost+found's "..".
    let root = fs::metadata(m.path()).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.nlink(), 3);
    assert_eq!(root.mode() & 0o7777, 0o755);
    assert_eq!(root.size(), 1024);
    let lf = fs::metadata(m.p("lost+found")).unwrap();
    assert!(lf.is_dir());
    assert_eq!(lf.nlink(), 2);

    let p = m.p("f");
    fs::write(&p, vec![7u8; 5000]).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert!(st.is_file());
    assert_eq!(st.mode(), libc::S_IFREG | 0o640);
    assert_eq!((st.nlink(), st.uid(), st.gid()), (1, 0, 0));
    assert_eq!(st.size(), 5000);
    assert_eq!(st.blocks(), 10, "5 KiB blocks = 10 sectors");
    assert_eq!(st.blksize(), 1024);
    for t in [st.atime(), st.mtime(), st.ctime()] {
        assert!((t0 - 2..=now() + 1).contains(&t), "time {t} not near {t0}");
    }
    // The inode number readdir reports is the one stat reports.
    let listed: HashMap<Vec<u8>, u64> = raw_readdir(m.path())
        .into_iter()
        .map(|(n, ino, _)| (n, ino))
        .collect();
    assert_eq!(listed[&b"f".to_vec()], st.ino());
    assert_eq!(listed[&b".".to_vec()], root.ino());

    // Lookups that fail.
    assert_errno!(fs::metadata(m.p("missing")), libc::ENOENT);
    assert_errno!(fs::metadata(m.p("f/x")), libc::ENOTDIR);

    // chmod (with set-id bits), chown to another uid/gid (also past 16 bits).
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4751)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode(), libc::S_IFREG | 0o4751);
    std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.uid(), st.gid()), (1234, 5678));
    // Linux clears set-user-ID on chown (the kernel sends the new mode with it).
    assert_eq!(st.mode(), libc::S_IFREG | 0o751);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4751)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode(), libc::S_IFREG | 0o4751);
    let q = m.p("g");
    fs::write(&q, b"g").unwrap();
    std::os::unix::fs::chown(&q, Some(100_000), Some(70_000)).unwrap();
    std::os::unix::fs::chown(&q, None, Some(4242)).unwrap(); // gid only
    let st = fs::metadata(&q).unwrap();
    assert_eq!((st.uid(), st.gid()), (100_000, 4242));
    // lchown on a symlink changes the link, not its target.
    symlink("g", m.p("lnk")).unwrap();
    std::os::unix::fs::lchown(m.p("lnk"), Some(9), Some(10)).unwrap();
    let l = fs::symlink_metadata(m.p("lnk")).unwrap();
    assert_eq!((l.uid(), l.gid()), (9, 10));
    assert_eq!(fs::metadata(&q).unwrap().uid(), 100_000);

    // utimensat: explicit times, then UTIME_OMIT / UTIME_NOW.
    utimens(&p, (1_000_000_000, 0), (1_200_000_000, 500)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.atime(), st.mtime()), (1_000_000_000, 1_200_000_000));
    utimens(&p, (0, libc::UTIME_OMIT), (1_300_000_000, 0)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.atime(), st.mtime()), (1_000_000_000, 1_300_000_000));
    let ctime_before = st.ctime();
    assert!(ctime_before >= t0 - 1);
    utimens(&p, (0, libc::UTIME_NOW), (0, libc::UTIME_OMIT)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert!(st.atime() >= t0 - 1 && st.mtime() == 1_300_000_000);

    // A write moves mtime and ctime to now.
    utimens(&p, (1_000_000_000, 0), (1_000_000_000, 0)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(b"x", 10)
        .unwrap();
    let st = fs::metadata(&p).unwrap();
    assert!(st.mtime() >= t0 - 1, "write did not update mtime");
    assert!(st.ctime() >= t0 - 1);

    // A read through the daemon updates an atime older than mtime (relatime).
    utimens(&p, (1_000_000_000, 0), (0, libc::UTIME_OMIT)).unwrap();
    {
        let f = File::open(&p).unwrap();
        drop_cache(&f);
        read_at(&f, 0, 100);
    }
    wait_until("atime update after read", || {
        fs::metadata(&p).unwrap().atime() >= t0 - 1
    });

    // Everything above is on disk: remount and compare.
    utimens(&p, (1_000_000_000, 0), (1_200_000_000, 0)).unwrap();
    let m = remount(m, &img.path, "");
    let st = fs::metadata(m.p("f")).unwrap();
    assert_eq!(st.mode(), libc::S_IFREG | 0o4751);
    assert_eq!(
        (st.uid(), st.gid(), st.size(), st.blocks()),
        (1234, 5678, 5000, 10)
    );
    assert_eq!(
        (st.atime(), st.mtime(), st.atime_nsec(), st.mtime_nsec()),
        (1_000_000_000, 1_200_000_000, 0, 0)
    );
    let st = fs::metadata(m.p("g")).unwrap();
    assert_eq!((st.uid(), st.gid()), (100_000, 4242));
    let l = fs::symlink_metadata(m.p("lnk")).unwrap();
    assert_eq!((l.uid(), l.gid()), (9, 10));
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn access_checks() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("f");
    fs::write(&p, b"data").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    access(&p, libc::F_OK).unwrap();
    access(&p, libc::R_OK | libc::W_OK).unwrap();
    // Even root may not execute a file no one may execute.
    assert_errno!(access(&p, libc::X_OK), libc::EACCES);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o744)).unwrap();
    access(&p, libc::X_OK).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    access(&p, libc::R_OK | libc::W_OK).unwrap(); // root
    access(m.path(), libc::X_OK | libc::W_OK).unwrap();
    assert_errno!(access(&m.p("missing"), libc::F_OK), libc::ENOENT);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Permission checks for an ordinary user (the mount allows other users).
#[test]
fn permissions_for_another_user() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "allow_other");
    let p = m.p("secret");
    fs::write(&p, b"data").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let sh = sh_as_nobody;
    let ps = p.display().to_string();
    assert!(
        sh(&format!("test -e '{ps}'")),
        "another user cannot see the file at all"
    );
    assert!(
        !sh(&format!("cat '{ps}' >/dev/null 2>&1")),
        "mode 600 file readable by others"
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(sh(&format!("cat '{ps}' >/dev/null")));
    assert!(
        !sh(&format!("{{ echo x >> '{ps}'; }} 2>/dev/null")),
        "others could write a 644 file"
    );
    assert!(
        !sh(&format!("touch '{}/new' 2>/dev/null", m.path().display())),
        "others could create in a 755 dir"
    );
    // Give the file to that user: now it may write, and its new files are its own.
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    assert!(sh(&format!("echo more >> '{ps}'")));
    fs::create_dir(m.p("pub")).unwrap();
    fs::set_permissions(m.p("pub"), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(sh(&format!("echo hi > '{}/pub/mine'", m.path().display())));
    let st = fs::metadata(m.p("pub/mine")).unwrap();
    assert_eq!((st.uid(), st.gid()), (65534, 65534));
    assert_eq!(fs::read(&p).unwrap(), b"datamore\n");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Set-user-ID and set-group-ID are killed as the kernel's ext2 kills them
/// (the kernel's VFS decides, the daemon kills set-group-ID without
/// group-execute): a write or truncate by a caller without CAP_FSETID
/// clears both (set-group-ID without group-execute only for a caller
/// outside the file's group, by its primary and supplementary groups);
/// root's own writes and truncates keep them, also of a file with a
/// capability (which goes); a change of owner, also chown(f, -1, -1),
/// clears set-user-ID for everyone, on anything but a directory.
#[test]
fn set_id_bits_killed_by_write_truncate_and_chown() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "allow_other");
    let as_nobody = |script: &str| assert!(sh_as_nobody(script), "as nobody: {script}");
    let make = |name: &str, mode: u32| {
        let p = m.p(name);
        fs::write(&p, b"data").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, mode, "{name}");
        p.display().to_string()
    };
    let mode = |name: &str| fs::metadata(m.p(name)).unwrap().mode() & 0o7777;

    let w = make("written", 0o6777);
    as_nobody(&format!("echo x >> '{w}'"));
    assert_eq!(mode("written"), 0o0777, "a write by nobody");
    // The kill reaches the mode the kernel caches, not only the inode: a
    // hard link by someone else (protected_hardlinks) checks the cached
    // set-user-ID bit without asking (found by fs-diff, seed 4337).
    fs::create_dir(m.p("shared")).unwrap();
    fs::set_permissions(m.p("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    let l = make("shared/linked", 0o4666);
    as_nobody(&format!("echo x >> '{l}'"));
    let sysctl = "/proc/sys/fs/protected_hardlinks";
    let protected = fs::read_to_string(sysctl).unwrap();
    fs::write(sysctl, "1").unwrap();
    let linked = sh_as_nobody(&format!("ln '{l}' '{l}.2'"));
    fs::write(sysctl, protected.trim()).unwrap();
    assert!(
        linked,
        "a hard link by nobody after its write killed set-user-ID"
    );
    assert_eq!(mode("shared/linked"), 0o0666);
    // Set-group-ID without group-execute goes only for a writer outside
    // the file's group (the kernel's ext2 does the same).
    let o = make("outside", 0o6766);
    as_nobody(&format!("echo x >> '{o}'"));
    assert_eq!(mode("outside"), 0o0766, "no group-execute, writer outside");
    let g = make("in_group", 0o0766);
    std::os::unix::fs::chown(&g, None, Some(65534)).unwrap();
    fs::set_permissions(&g, fs::Permissions::from_mode(0o6766)).unwrap();
    as_nobody(&format!("echo x >> '{g}'"));
    assert_eq!(
        mode("in_group"),
        0o2766,
        "no group-execute, writer in the group"
    );
    // A member through a supplementary group keeps it.
    let sg = make("supplementary", 0o0760);
    std::os::unix::fs::chown(&sg, None, Some(4321)).unwrap();
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2760)).unwrap();
    let by_member = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--groups=4321",
            "sh",
            "-c",
        ])
        .arg(format!("echo x >> '{sg}'"))
        .status()
        .expect("run setpriv");
    assert!(
        by_member.success(),
        "a write by a member of the file's group"
    );
    assert_eq!(
        mode("supplementary"),
        0o2760,
        "writer in a supplementary group"
    );
    // Root (CAP_FSETID) writing a file with a capability: the capability
    // goes, both bits stay.
    let c = make("root_written_cap", 0o6777);
    let cap = [1u8, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    setxattr(Path::new(&c), "security.capability", &cap).unwrap();
    OpenOptions::new()
        .append(true)
        .open(&c)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    assert_eq!(
        mode("root_written_cap"),
        0o6777,
        "root's write, with a capability"
    );
    assert_errno!(
        getxattr(Path::new(&c), "security.capability", 64),
        libc::ENODATA
    );
    let r = make("root_written", 0o6777);
    OpenOptions::new()
        .append(true)
        .open(&r)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    assert_eq!(mode("root_written"), 0o6777, "root's write");
    assert_eq!(fs::read(&r).unwrap(), b"datax");

    let t = make("truncated", 0o6777);
    as_nobody(&format!("truncate -s 2 '{t}'"));
    assert_eq!(mode("truncated"), 0o0777, "a truncate by nobody");
    assert_eq!(fs::read(&t).unwrap(), b"da");
    make("root_truncated", 0o6777);
    truncate(&m.p("root_truncated"), 1).unwrap();
    assert_eq!(mode("root_truncated"), 0o6777, "root's truncate");

    // A hole punched: the kernel kills before a fallocate (FUSE then sends
    // an empty setattr, told from chown(f, -1, -1) by the system call).
    let p = make("punched", 0o6766);
    as_nobody(&format!("fallocate -p -o 0 -l 2 '{p}'"));
    assert_eq!(mode("punched"), 0o0766, "a hole punched by nobody");
    let p = make("root_punched", 0o6766);
    let punched = std::process::Command::new("fallocate")
        .args(["-p", "-o", "0", "-l", "2", &p])
        .status()
        .expect("run fallocate");
    assert!(punched.success(), "fallocate -p as root");
    assert_eq!(mode("root_punched"), 0o6766, "a hole punched by root");

    // chown(f, -1, -1) by someone else: a kill of set-group-ID would be
    // a change of mode, which only the owner may make: EPERM, as the
    // kernel's ext2 (where a write by the same user kills it, above).
    let n = make("not_owner_chown", 0o2766);
    assert!(
        !sh_as_nobody(&format!(
            "perl -e 'chown(-1, -1, $ARGV[0]) or exit 1' '{n}'"
        )),
        "chown(f, -1, -1) by someone else"
    );
    assert_eq!(
        mode("not_owner_chown"),
        0o2766,
        "chown(f, -1, -1) by someone else"
    );
    make("chowned_to_same", 0o6755);
    std::os::unix::fs::chown(m.p("chowned_to_same"), None, None).unwrap();
    assert_eq!(mode("chowned_to_same"), 0o0755, "chown(f, -1, -1) by root");
    make("chowned", 0o6755);
    std::os::unix::fs::chown(m.p("chowned"), Some(1234), Some(1234)).unwrap();
    assert_eq!(mode("chowned"), 0o0755, "chown, even by root");
    fs::create_dir(m.p("dir")).unwrap();
    fs::set_permissions(m.p("dir"), fs::Permissions::from_mode(0o3775)).unwrap();
    std::os::unix::fs::chown(m.p("dir"), Some(1234), Some(1234)).unwrap();
    assert_eq!(mode("dir"), 0o3775, "chown of a directory");
    make("chmodded", 0o0755);
    fs::set_permissions(m.p("chmodded"), fs::Permissions::from_mode(0o6755)).unwrap();
    assert_eq!(mode("chmodded"), 0o6755, "chmod sets them");

    // What the daemon answered is what it stored.
    let m = remount(m, &img.path, "allow_other");
    for (name, want) in [
        ("written", 0o0777),
        ("outside", 0o0766),
        ("in_group", 0o2766),
        ("supplementary", 0o2760),
        ("root_written_cap", 0o6777),
        ("root_written", 0o6777),
        ("chowned_to_same", 0o0755),
        ("not_owner_chown", 0o2766),
        ("truncated", 0o0777),
        ("punched", 0o0766),
        ("root_punched", 0o6766),
        ("chowned", 0o0755),
        ("dir", 0o3775),
    ] {
        assert_eq!(
            fs::metadata(m.p(name)).unwrap().mode() & 0o7777,
            want,
            "{name} after remount"
        );
    }
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// ext2 keeps times as signed 32-bit seconds (as the kernel's ext2 reads
/// them), and in large inodes two more epoch bits: times before 1970
/// round-trip, later ones than 2038 too, and those past 2446 are clamped to
/// the largest it holds. (128-byte inodes: kernel_parity.rs.)
#[test]
fn times_before_1970_and_after_2038() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("old");
    fs::write(&p, b"x").unwrap();
    let y1960 = -315_619_200i64; // 1960-01-01
    utimens(&p, (-1000, 0), (y1960, 0)).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.atime(), st.mtime()), (-1000, y1960));
    let q = m.p("future");
    fs::write(&q, b"y").unwrap();
    let y2446_max = (1i64 << 34) - 1 - (1 << 31);
    utimens(&q, ((1 << 31) + 1000, 0), (1 << 40, 0)).unwrap();
    let st = fs::metadata(&q).unwrap();
    assert_eq!((st.atime(), st.mtime()), ((1 << 31) + 1000, y2446_max));
    let m = remount(m, &img.path, "");
    let st = fs::metadata(m.p("old")).unwrap();
    assert_eq!((st.atime(), st.mtime()), (-1000, y1960));
    let st = fs::metadata(m.p("future")).unwrap();
    assert_eq!((st.atime(), st.mtime()), ((1 << 31) + 1000, y2446_max));
    m.unmount_and_check();
    fsck_strict(&img.path);
    // e2fsprogs reads the same time.
    let s = debugfs(&img.path, "stat /old");
    assert!(s.contains("mtime: 0xed300880") && s.contains("1960"), "{s}");
}

/// Directory times: every change of a directory's entries moves its mtime
/// and ctime to now.
#[test]
fn directory_times_follow_changes() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    fs::write(m.p("outside"), b"o").unwrap();
    fs::write(d.join("victim"), b"v").unwrap();
    fs::create_dir(d.join("victim_dir")).unwrap();
    let t0 = now();
    type Step<'a> = (&'a str, Box<dyn Fn() -> io::Result<()> + 'a>);
    let steps: Vec<Step> = vec![
        ("create", Box::new(|| fs::write(d.join("new"), b"n"))),
        ("mkdir", Box::new(|| fs::create_dir(d.join("newdir")))),
        ("symlink", Box::new(|| symlink("x", d.join("sl")))),
        (
            "mknod",
            Box::new(|| mknod(&d.join("fifo"), libc::S_IFIFO | 0o600, 0)),
        ),
        (
            "link",
            Box::new(|| fs::hard_link(m.p("outside"), d.join("hl"))),
        ),
        ("unlink", Box::new(|| fs::remove_file(d.join("victim")))),
        ("rmdir", Box::new(|| fs::remove_dir(d.join("victim_dir")))),
        (
            "rename within",
            Box::new(|| fs::rename(d.join("new"), d.join("new2"))),
        ),
        (
            "rename in",
            Box::new(|| fs::rename(m.p("outside"), d.join("moved_in"))),
        ),
        (
            "rename out",
            Box::new(|| fs::rename(d.join("moved_in"), m.p("moved_out"))),
        ),
    ];
    for (what, step) in &steps {
        utimens(&d, (1_000_000_000, 0), (1_000_000_000, 0)).unwrap();
        step().unwrap();
        let st = fs::metadata(&d).unwrap();
        assert!(
            st.mtime() >= t0 - 1,
            "{what}: directory mtime {} not updated",
            st.mtime()
        );
        assert!(st.ctime() >= t0 - 1, "{what}: directory ctime not updated");
    }
    drop(steps);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn noatime_and_truncating_open() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "noatime");
    let p = m.p("f");
    fs::write(&p, pat(0, 50_000, 1)).unwrap();
    utimens(&p, (1_000_000_000, 0), (0, libc::UTIME_OMIT)).unwrap();
    let f = File::open(&p).unwrap();
    drop_cache(&f);
    check_pattern(&f, 0, 50_000, 1);
    drop(f);
    std::thread::sleep(Duration::from_millis(1100)); // past the attribute cache time
    assert_eq!(
        fs::metadata(&p).unwrap().atime(),
        1_000_000_000,
        "noatime updated atime"
    );
    // O_TRUNC on an existing larger file frees its blocks.
    fs::write(&p, b"short").unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.size(), st.blocks()), (5, 2));
    let m = remount(m, &img.path, "");
    assert_eq!(fs::read(m.p("f")).unwrap(), b"short");
    m.unmount_and_check();
    fsck_strict(&img.path);
}
