//! Extended attributes and POSIX ACLs through a real FUSE mount: those
//! e2fsprogs and the kernel's driver wrote read back and changed here, the
//! same system calls answered as the kernel's ext2 answers them on an
//! identical image (placement in the inode or the block, errnos, block
//! counts), shared blocks copied on write, ACLs enforced and inherited.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// A file without attributes: ENODATA for a name it lacks (also to a size
/// query and a removal), empty lists, EOPNOTSUPP for a namespace ext2 has
/// no index for.
#[test]
fn missing_attributes_and_unknown_namespaces() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("f");
    fs::write(&p, b"abc").unwrap();

    assert_errno!(getxattr(&p, "user.k", 64), libc::ENODATA);
    assert_errno!(getxattr(&p, "user.k", 0), libc::ENODATA);
    assert!(listxattr(&p).unwrap().is_empty());
    assert!(listxattr(m.path()).unwrap().is_empty());
    assert_errno!(setxattr(&p, "os2.k", b"v"), libc::EOPNOTSUPP);
    assert_errno!(removexattr(&p, "user.k"), libc::ENODATA);
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
    // A value e2fsprogs wrote, changed here, in the same block.
    setxattr(&p, "user.k", b"changed").unwrap();
    assert_eq!(getxattr(&p, "user.k", 64).unwrap(), b"changed");
    // The xattr block counts in st_blocks (1 data block + 1 xattr block).
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 4);
    let m = remount(m, &img.path, "");
    assert_eq!(getxattr(&m.p("f"), "user.k", 64).unwrap(), b"changed");
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

/// One line per call: its name and what it answered (a value by length
/// and hash-free bytes, an errno by name).
fn answer<T: std::fmt::Debug>(what: &str, r: io::Result<T>) -> String {
    match r {
        Ok(v) => format!("{what}: ok {v:?}"),
        Err(e) => format!("{what}: errno {}", e.raw_os_error().unwrap_or(-1)),
    }
}

/// The calls a user makes on attributes, with every answer, st_blocks
/// after each step and each file's attributes at the end: the transcript
/// both drivers must write alike on identical images.
fn xattr_transcript(root: &Path) -> Vec<String> {
    let f = root.join("f");
    let d = root.join("d");
    let p = root.join("p");
    fs::write(&f, b"data").unwrap();
    fs::create_dir(&d).unwrap();
    mknod(&p, libc::S_IFIFO | 0o644, 0).unwrap();
    let mut t = Vec::new();
    let blocks = |p: &Path| fs::symlink_metadata(p).unwrap().blocks();
    let step = |t: &mut Vec<String>, what: &str, r: io::Result<()>| {
        t.push(answer(what, r));
        t.push(format!("  blocks f={} d={}", blocks(&f), blocks(&d)));
    };
    let v = |n: usize, c: u8| vec![c; n];
    step(&mut t, "small", setxattr(&f, "user.a", b"1"));
    step(&mut t, "60 bytes", setxattr(&f, "user.b", &v(60, b'b')));
    step(&mut t, "500 bytes", setxattr(&f, "user.c", &v(500, b'c')));
    step(
        &mut t,
        "create existing",
        setxattr_flags(&f, "user.a", b"2", libc::XATTR_CREATE),
    );
    step(
        &mut t,
        "replace missing",
        setxattr_flags(&f, "user.zz", b"2", libc::XATTR_REPLACE),
    );
    step(
        &mut t,
        "replace",
        setxattr_flags(&f, "user.a", b"22", libc::XATTR_REPLACE),
    );
    step(&mut t, "remove missing", removexattr(&f, "user.zz"));
    step(&mut t, "empty name", setxattr(&f, "user.", b"x"));
    step(
        &mut t,
        "name of 250",
        setxattr(&f, &format!("user.{}", "n".repeat(250)), b"x"),
    );
    step(
        &mut t,
        "name of 251",
        setxattr(&f, &format!("user.{}", "n".repeat(251)), b"x"),
    );
    step(&mut t, "no room", setxattr(&f, "user.huge", &v(2000, b'h')));
    step(
        &mut t,
        "over 64 KiB",
        setxattr(&f, "user.e2big", &v(70_000, b'e')),
    );
    step(&mut t, "unknown namespace", setxattr(&f, "foo.bar", b"x"));
    step(&mut t, "system.other", setxattr(&f, "system.other", b"x"));
    step(&mut t, "empty value", setxattr(&f, "user.empty", b""));
    step(
        &mut t,
        "grow in block",
        setxattr(&f, "user.c", &v(700, b'C')),
    );
    step(
        &mut t,
        "inode to block",
        setxattr(&f, "user.b", &v(200, b'B')),
    );
    step(
        &mut t,
        "block to inode",
        setxattr(&f, "user.c", b"small again"),
    );
    step(&mut t, "same value", setxattr(&f, "user.a", b"22"));
    step(&mut t, "trusted", setxattr(&f, "trusted.t", b"tv"));
    step(&mut t, "security", setxattr(&f, "security.s", b"sv"));
    step(&mut t, "user on a fifo", setxattr(&p, "user.x", b"1"));
    step(&mut t, "trusted on a fifo", setxattr(&p, "trusted.x", b"1"));
    step(
        &mut t,
        "on a directory",
        setxattr(&d, "user.dir", &v(400, b'd')),
    );
    // An inode whose attributes equal another's block shares it (the
    // kernel's mbcache): the free block count tells.
    let h = root.join("h");
    fs::write(&h, b"").unwrap();
    let before = statfs(root).f_bfree;
    step(
        &mut t,
        "same as d's block",
        setxattr(&h, "user.dir", &v(400, b'd')),
    );
    t.push(format!(
        "  blocks used by it {}",
        before - statfs(root).f_bfree
    ));
    step(
        &mut t,
        "h differs again",
        setxattr(&h, "user.dir", &v(400, b'e')),
    );
    step(
        &mut t,
        "h equal again",
        setxattr(&h, "user.dir", &v(400, b'd')),
    );
    step(&mut t, "h gone", fs::remove_file(&h));
    t.push(answer(
        "small buffer",
        getxattr(&f, "user.b", 10).map(|v| v.len()),
    ));
    t.push(answer(
        "size query",
        getxattr(&f, "user.b", 0).map(|v| v.len()),
    ));
    t.push(answer(
        "get missing",
        getxattr(&f, "user.zz", 64).map(|v| v.len()),
    ));
    for p in [&f, &d, &p] {
        let mut names = xattr_names(p);
        names.sort();
        for n in names {
            let v = getxattr(p, &n, 1 << 16).unwrap();
            t.push(format!(
                "{} {n} = {} bytes {:?}",
                p.display(),
                v.len(),
                &v[..v.len().min(12)]
            ));
        }
    }
    for n in xattr_names(&f) {
        step(&mut t, &format!("remove {n}"), removexattr(&f, &n));
    }
    step(&mut t, "remove from directory", removexattr(&d, "user.dir"));
    // ext2mfr frees the removed file's inode and block when the kernel
    // forgets it; over io_uring that FORGET comes through /dev/fuse, beside
    // the ring, and can still be on its way: read until two reads 100 ms
    // apart agree (at once on the kernel's ext2).
    let mut fsid = statfs(root);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let again = statfs(root);
        let same = (again.f_bfree, again.f_ffree) == (fsid.f_bfree, fsid.f_ffree);
        fsid = again;
        if same {
            break;
        }
    }
    t.push(format!(
        "free blocks {} free inodes {}",
        fsid.f_bfree, fsid.f_ffree
    ));
    t.iter_mut()
        .for_each(|l| *l = l.replace(&root.display().to_string(), "."));
    t
}

/// The same attribute calls on ext2mfr and on the kernel's ext2, on
/// identical images (256-byte inodes with 1 KiB blocks; 128-byte inodes
/// with 4 KiB blocks, where everything lives in a block): the same
/// answers, errnos and block counts, both images clean, and each driver
/// reads what the other wrote.
#[test]
fn xattr_calls_answer_as_the_kernels() {
    let _serial = setup();
    for (bs, isize) in [(1024, "256"), (4096, "128")] {
        let img = mkfs_ext2(16384, bs, &["-I", isize]);
        let theirs = copy_image(&img, "kernel.img");
        let m = mount(&img.path, "");
        let ours = xattr_transcript(m.path());
        // Leave attributes behind for the other driver to read.
        setxattr(&m.p("d"), "user.left", b"by ext2mfr").unwrap();
        m.unmount_and_check();
        let k = KernelMount::new(&theirs);
        let kernel = xattr_transcript(k.path());
        setxattr(&k.path().join("d"), "user.left", b"by the kernel").unwrap();
        k.unmount();
        for (n, (a, b)) in ours.iter().zip(&kernel).enumerate() {
            assert_eq!(a, b, "{bs}-byte blocks, {isize}-byte inodes, line {n}");
        }
        assert_eq!(ours.len(), kernel.len());
        assert!(
            ours.iter().any(|l| l == "  blocks used by it 0"),
            "equal blocks shared: {ours:#?}"
        );
        fsck_strict(&img.path);
        fsck_strict(&theirs);
        let k = KernelMount::new(&img.path);
        assert_eq!(
            getxattr(&k.path().join("d"), "user.left", 64).unwrap(),
            b"by ext2mfr"
        );
        k.unmount();
        let m = mount(&theirs, "");
        assert_eq!(
            getxattr(&m.p("d"), "user.left", 64).unwrap(),
            b"by the kernel"
        );
        m.unmount_and_check();
    }
}

/// Two files with equal attributes, set by the kernel, share one block
/// (refcount 2); changing one here copies the block, the other keeps its
/// value and the old block with refcount 1; deleting it frees that block.
#[test]
fn shared_xattr_block_copied_on_write() {
    let _serial = setup();
    let img = mkfs_ext2(16384, 1024, &["-I", "128"]);
    let big = vec![b'v'; 300];
    let k = KernelMount::new(&img.path);
    for f in ["a", "b"] {
        let p = k.path().join(f);
        fs::write(&p, b"").unwrap();
        setxattr(&p, "user.big", &big).unwrap();
    }
    k.unmount();
    let (shared, refs) = xattr_block(&img.path, "/a");
    assert_eq!(
        xattr_block(&img.path, "/b").0,
        shared,
        "the kernel shares equal blocks"
    );
    assert_eq!(refs, 2);

    let m = mount(&img.path, "");
    setxattr(&m.p("a"), "user.big", b"changed").unwrap();
    assert_eq!(getxattr(&m.p("a"), "user.big", 64).unwrap(), b"changed");
    assert_eq!(getxattr(&m.p("b"), "user.big", 1024).unwrap(), big);
    for f in ["a", "b"] {
        assert_eq!(
            fs::metadata(m.p(f)).unwrap().blocks(),
            2,
            "{f}: one xattr block each"
        );
    }
    let m = remount(m, &img.path, "");
    let (a_blk, a_refs) = xattr_block(&img.path, "/a");
    assert_ne!(a_blk, shared);
    assert_eq!(a_refs, 1);
    assert_eq!(xattr_block(&img.path, "/b"), (shared, 1));
    let before = statfs(m.path()).f_bfree;
    fs::remove_file(m.p("b")).unwrap();
    wait_until("the shared block to be free", || {
        statfs(m.path()).f_bfree == before + 1
    });
    // Equal attributes set here share a block too.
    for f in ["c", "d"] {
        fs::write(m.p(f), b"").unwrap();
        setxattr(&m.p(f), "user.big", &big).unwrap();
    }
    m.unmount_and_check();
    fsck_strict(&img.path);
    let (c_blk, c_refs) = xattr_block(&img.path, "/c");
    assert_eq!(xattr_block(&img.path, "/d"), (c_blk, 2));
    assert_eq!(c_refs, 2);
    let k = KernelMount::new(&img.path);
    assert_eq!(
        getxattr(&k.path().join("a"), "user.big", 64).unwrap(),
        b"changed"
    );
    assert_eq!(
        getxattr(&k.path().join("d"), "user.big", 1024).unwrap(),
        big
    );
    fs::remove_file(k.path().join("c")).unwrap();
    k.unmount();
    assert_eq!(xattr_block(&img.path, "/d"), (c_blk, 1));
    fsck_strict(&img.path);
}

/// Attribute and ACL changes under injected allocation failures and
/// memory-safety faults (policy=retry): every call succeeds, the result is
/// what the calls asked for, no block is orphaned (e2fsck) and AMA never
/// under-allocated.
#[test]
fn xattrs_survive_injected_faults() {
    let _serial = setup();
    // With 128-byte inodes everything is in blocks, and the equal ACLs
    // share theirs.
    for (opts, isize) in [
        ("policy=retry,inject_alloc=0.3,inject_seed=7", "256"),
        ("policy=retry,inject_safety=0.02,inject_seed=11", "256"),
        ("policy=retry,inject_alloc=0.3,inject_seed=13", "128"),
        ("policy=retry,inject_safety=0.02,inject_seed=17", "128"),
    ] {
        let img = mkfs_ext2(16384, 1024, &["-I", isize]);
        let m = mount(&img.path, opts);
        let mut want = std::collections::BTreeMap::new();
        for i in 0..40 {
            let p = m.p(&format!("f{i}"));
            fs::write(&p, b"x").unwrap();
            // Small (in the inode), large (a block), then some removed or
            // changed again, and an ACL that sets the mode.
            let small = format!("s{i}").into_bytes();
            let large = vec![i as u8; 100 + 10 * i];
            setxattr(&p, "user.small", &small).unwrap();
            setxattr(&p, "user.large", &large).unwrap();
            if i % 3 == 0 {
                removexattr(&p, "user.large").unwrap();
            }
            if i % 4 == 0 {
                setxattr(&p, "user.small", &large).unwrap();
            }
            let acl = acl_xattr(&[
                (1, 6, 0),
                (2, 4, 65534),
                (4, 4, 0),
                (0x10, 4, 0),
                (0x20, 0, 0),
            ]);
            setxattr(&p, "system.posix_acl_access", &acl).unwrap();
            want.insert(
                format!("f{i}"),
                (
                    if i % 4 == 0 { large.clone() } else { small },
                    (i % 3 != 0).then_some(large),
                ),
            );
        }
        // Equal attributes on many files: shared blocks, taken and dropped.
        let same = vec![7u8; 200];
        for i in 0..20 {
            let p = m.p(&format!("same{i}"));
            fs::write(&p, b"").unwrap();
            setxattr(&p, "user.same", &same).unwrap();
            if i % 2 == 1 {
                setxattr(&p, "user.same", b"apart").unwrap();
            }
            if i % 4 == 0 {
                fs::remove_file(&p).unwrap();
            }
        }
        let c = counters(m.path());
        assert_eq!(c["ama"]["under_allocations"], 0, "{opts}: {c}");
        let f = &c["faults_injected"];
        let injected = f["alloc_faults"].as_u64().unwrap() + f["safety_faults"].as_u64().unwrap();
        assert!(injected > 0, "{opts}: nothing was injected: {f}");
        assert!(
            c["ama"]["by_op"]["setxattr"]["requests"].as_u64().unwrap() >= 130,
            "{opts}: setxattr went through the gate"
        );
        let m = remount(m, &img.path, "");
        for i in (0..20).filter(|i| i % 4 != 0) {
            let want: &[u8] = if i % 2 == 1 { b"apart" } else { &same };
            assert_eq!(
                getxattr(&m.p(&format!("same{i}")), "user.same", 4096).unwrap(),
                want
            );
        }
        for (name, (small, large)) in &want {
            let p = m.p(name);
            assert_eq!(
                &getxattr(&p, "user.small", 4096).unwrap(),
                small,
                "{opts}: {name}"
            );
            match large {
                Some(v) => assert_eq!(&getxattr(&p, "user.large", 4096).unwrap(), v),
                None => assert_errno!(getxattr(&p, "user.large", 4096), libc::ENODATA),
            }
            assert_eq!(
                fs::metadata(&p).unwrap().mode() & 0o777,
                0o640,
                "{opts}: {name}"
            );
        }
        m.unmount_and_check();
        fsck_strict(&img.path);
    }
}

/// Threads taking and dropping references to shared blocks at once (each
/// its own files, all with one of two values): every file ends with the
/// value it was last given, and e2fsck finds the reference counts right.
#[test]
fn concurrent_sharing_keeps_counts_right() {
    let _serial = setup();
    let img = mkfs_ext2(16384, 1024, &["-I", "128"]);
    let m = mount(&img.path, "");
    let values = [vec![1u8; 300], vec![2u8; 300]];
    std::thread::scope(|s| {
        for t in 0..4 {
            let (m, values) = (&m, &values);
            s.spawn(move || {
                for round in 0..6 {
                    for i in 0..30 {
                        let p = m.p(&format!("t{t}-{i}"));
                        if round == 0 {
                            fs::write(&p, b"").unwrap();
                        }
                        setxattr(&p, "user.v", &values[(i + round + t) % 2]).unwrap();
                    }
                }
            });
        }
    });
    let m = remount(m, &img.path, "");
    for t in 0..4 {
        for i in 0..30 {
            let p = m.p(&format!("t{t}-{i}"));
            assert_eq!(
                getxattr(&p, "user.v", 1024).unwrap(),
                values[(i + 5 + t) % 2]
            );
        }
    }
    m.unmount_and_check();
    fsck_strict(&img.path);
    // Shared, not one block each: files with one value hold few blocks.
    let blocks: std::collections::BTreeSet<u64> = (0..30)
        .map(|i| xattr_block(&img.path, &format!("/t0-{i}")).0)
        .collect();
    assert!(
        blocks.len() <= 8,
        "{} blocks for 30 files of two values",
        blocks.len()
    );
}
