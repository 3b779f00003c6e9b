//! File data through a real FUSE mount: random writes and reads against a
//! model, appends, sparse files and holes, files past 4 GiB, fsync and
//! close, a file unlinked (or replaced) while open, mmap and O_DIRECT,
//! and the limits: the largest file (EFBIG) and a full disk or inode table
//! (ENOSPC). Truncation: `fuse_truncate.rs`; fallocate: `fuse_xattrs.rs`.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, OpenOptionsExt};

#[test]
fn random_writes_and_sparse_reads_match_a_model() {
    let _serial = setup();
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let m = mount(&img.path, "");
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let p = m.p("rand");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let mut model: Vec<u8> = Vec::new();
    for round in 0..400u64 {
        let off = rng.gen_range(0..(6u64 << 20));
        let len = rng.gen_range(1..20_000usize);
        let data = pat(off, len, round);
        f.write_all_at(&data, off).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
        if round % 50 == 0 {
            drop_cache(&f);
            for _ in 0..20 {
                let o = rng.gen_range(0..model.len());
                let n = rng.gen_range(1..30_000usize).min(model.len() - o);
                assert_eq!(read_at(&f, o as u64, n), model[o..o + n], "read {n} at {o}");
            }
        }
    }
    assert_eq!(f.metadata().unwrap().size(), model.len() as u64);
    // Short read at the end, and reads past it.
    let mut buf = vec![0u8; 100];
    let n = f.read_at(&mut buf, model.len() as u64 - 10).unwrap();
    assert_eq!(n, 10);
    assert_eq!(f.read_at(&mut buf, model.len() as u64 + 1000).unwrap(), 0);
    drop(f);
    // Sequential writes through the cursor and appends.
    let q = m.p("append");
    {
        let mut a = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&q)
            .unwrap();
        for i in 0..100u64 {
            a.write_all(&pat(i * 777, 777, 3)).unwrap();
        }
    }
    assert_eq!(fs::read(&q).unwrap(), pat(0, 77_700, 3));
    // A sparse file: one byte far out, holes read as zeros and take no blocks.
    let s = m.p("sparse");
    let sf = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&s)
        .unwrap();
    sf.write_all_at(b"Z", 10 << 20).unwrap();
    let st = sf.metadata().unwrap();
    assert_eq!(st.size(), (10 << 20) + 1);
    assert_eq!(
        st.blocks(),
        (1 + 2) * 2,
        "one data block and its double indirect path"
    );
    drop_cache(&sf);
    check_zeros(&sf, 0, 10 << 20);
    assert_eq!(read_at(&sf, 10 << 20, 1), b"Z");
    drop(sf);

    let m = remount(m, &img.path, "");
    assert!(
        fs::read(m.p("rand")).unwrap() == model,
        "file differs from the model after remount"
    );
    m.unmount_and_check();
    fsck_strict(&img.path);
    assert!(
        debugfs_cat(&img.path, "/rand") == model,
        "e2fsprogs reads other data"
    );
    assert_eq!(debugfs_cat(&img.path, "/append"), pat(0, 77_700, 3));
}

#[test]
fn file_larger_than_4gib() {
    let _serial = setup();
    let img = mkfs_ext2mfr(8 << 30, 4096);
    let m = mount(&img.path, "");
    let p = m.p("huge");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let far = 5u64 << 30;
    f.write_all_at(b"far away", far).unwrap();
    let edge = (4u64 << 30) - 5; // straddles 4 GiB (and a block boundary)
    f.write_all_at(b"0123456789", edge).unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.size(), far + 8);
    let data_blocks = [far / 4096, edge / 4096, (edge + 9) / 4096];
    let want = (3 + meta_blocks(data_blocks, 1024)) * 8;
    assert_eq!(st.blocks(), want);
    drop_cache(&f);
    assert_eq!(read_at(&f, far, 8), b"far away");
    assert_eq!(read_at(&f, edge, 10), b"0123456789");
    check_zeros(&f, far - 4096, 4096);
    check_zeros(&f, (1 << 32) + 8192, 1 << 16);
    drop(f);

    let m = remount(m, &img.path, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("huge"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().size(), far + 8);
    assert_eq!(read_at(&f, far, 8), b"far away");
    assert_eq!(read_at(&f, edge, 10), b"0123456789");
    // Shrink to just past 4 GiB: the triple indirect tree goes away.
    f.set_len((4 << 30) + 2).unwrap();
    assert_eq!(
        f.metadata().unwrap().blocks(),
        (2 + meta_blocks(data_blocks[1..].iter().copied(), 1024)) * 8
    );
    assert_eq!(read_at(&f, edge, 7), b"0123456");
    drop(f);
    assert!(dumpe2fs_h(&img.path).contains("large_file"));
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn fsync_flush_and_release() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    // No background write-back: only fsync may put the data in the image.
    let m = mount(&img.path, "commit=0");
    let mut f = File::create(m.p("synced")).unwrap();
    f.write_all(b"first part,").unwrap();
    // flush on close of a duplicate does not end the open file.
    let dup = f.try_clone().unwrap();
    drop(dup);
    f.write_all(b" second part").unwrap();
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    File::open(m.path()).unwrap().sync_all().unwrap(); // fsyncdir
                                                       // After fsync the image alone is complete and consistent.
    assert_eq!(
        debugfs_cat(&img.path, "/synced"),
        b"first part, second part"
    );
    fsck_clean(&img.path);
    drop(f);
    // Closing (flush + release) keeps the data.
    assert_eq!(fs::read(m.p("synced")).unwrap(), b"first part, second part");
    m.unmount_and_check();
    fsck_strict(&img.path);
    assert_eq!(
        debugfs_cat(&img.path, "/synced"),
        b"first part, second part"
    );
}

#[test]
fn unlinked_but_open_file() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let s0 = statfs(m.path());
    let p = m.p("ghost");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all(&pat(0, 100_000, 9)).unwrap();
    fs::remove_file(&p).unwrap();
    assert_errno!(fs::metadata(&p), libc::ENOENT);
    assert!(!names_of(m.path()).contains(&"ghost".to_string()));
    // The open file lives on: read, write, grow, truncate through the descriptor.
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    drop_cache(&f);
    check_pattern(&f, 0, 100_000, 9);
    f.write_all_at(&pat(200_000, 50_000, 9), 200_000).unwrap();
    drop_cache(&f);
    check_zeros(&f, 100_000, 100_000);
    check_pattern(&f, 200_000, 50_000, 9);
    assert_eq!(f.metadata().unwrap().size(), 250_000);
    f.set_len(120_000).unwrap();
    assert_eq!(f.metadata().unwrap().size(), 120_000);
    assert!(statfs(m.path()).f_bfree < s0.f_bfree);
    // A new file may take the same name meanwhile.
    fs::write(&p, b"new").unwrap();
    assert_eq!(read_at(&f, 0, 10), pat(0, 10, 9));
    fs::remove_file(&p).unwrap();
    drop(f);
    // Closing the last reference frees the inode and its blocks.
    wait_until("the unlinked inode to be freed", || {
        let s = statfs(m.path());
        (s.f_bfree, s.f_ffree) == (s0.f_bfree, s0.f_ffree)
    });

    // The same for a file replaced by rename while open.
    fs::write(m.p("old"), b"old contents").unwrap();
    fs::write(m.p("new"), b"new contents").unwrap();
    let o = File::open(m.p("old")).unwrap();
    fs::rename(m.p("new"), m.p("old")).unwrap();
    drop_cache(&o);
    assert_eq!(read_at(&o, 0, 12), b"old contents");
    assert_eq!(fs::read(m.p("old")).unwrap(), b"new contents");
    // Still open at unmount time? Not possible (EBUSY); close first.
    drop(o);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Writes that reach the daemon other ways than write(2): pages of a shared
/// mapping written back on msync, and O_DIRECT I/O that bypasses the page
/// cache.
#[test]
fn mmap_and_direct_io() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("mapped");
    let len = 3 * 4096 + 100;
    fs::write(&p, vec![0u8; len]).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        let s = std::slice::from_raw_parts_mut(addr as *mut u8, len);
        s.copy_from_slice(&pat(0, len, 11));
        assert_eq!(
            libc::msync(addr, len, libc::MS_SYNC),
            0,
            "msync: {}",
            io::Error::last_os_error()
        );
        libc::munmap(addr, len);
    }
    drop_cache(&f);
    check_pattern(&f, 0, len as u64, 11);
    assert_eq!(
        f.metadata().unwrap().size(),
        len as u64,
        "writeback changed the size"
    );
    drop(f);

    // O_DIRECT: aligned buffers, straight to and from the daemon.
    let d = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(m.p("direct"));
    let d = d.unwrap();
    let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    unsafe {
        let buf = std::alloc::alloc(layout);
        let s = std::slice::from_raw_parts_mut(buf, 8192);
        s.copy_from_slice(&pat(4096, 8192, 12));
        assert_eq!(d.write_at(s, 4096).unwrap(), 8192);
        s.fill(0);
        assert_eq!(d.read_at(s, 4096).unwrap(), 8192);
        assert!(
            s == pat(4096, 8192, 12).as_slice(),
            "O_DIRECT read back other data"
        );
        std::alloc::dealloc(buf, layout);
    }
    assert_eq!(d.metadata().unwrap().size(), 4096 + 8192);
    drop(d);
    let m = remount(m, &img.path, "");
    assert_eq!(fs::read(m.p("mapped")).unwrap(), pat(0, len, 11));
    let direct = fs::read(m.p("direct")).unwrap();
    assert!(direct[..4096].iter().all(|&b| b == 0) && direct[4096..] == pat(4096, 8192, 12)[..]);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// The largest file the block map holds on 1 KiB blocks, EFBIG past it,
/// and ENOSPC for blocks and for inodes, with a clean image afterwards.
#[test]
fn limits_efbig_and_enospc() {
    let _serial = setup();
    let img = mkfs_ext2mfr(4 << 20, 1024);
    let m = mount(&img.path, "");
    let s0 = statfs(m.path());

    // Last addressable byte: block 12 + 256 + 256^2 + 256^3 - 1.
    let max = (12u64 + 256 + 65_536 + 16_777_216) * 1024;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.p("edge"))
        .unwrap();
    f.write_all_at(b"END", max - 3).unwrap();
    assert_eq!(f.metadata().unwrap().size(), max);
    assert_eq!(f.metadata().unwrap().blocks(), (1 + 3) * 2);
    assert_errno!(f.write_at(b"x", max), libc::EFBIG);
    assert_errno!(f.set_len(max + 1), libc::EFBIG);
    f.set_len(max).unwrap();
    drop_cache(&f);
    assert_eq!(read_at(&f, max - 3, 3), b"END");
    f.set_len(0).unwrap();
    drop(f);

    // Fill the disk: the write stops with ENOSPC (maybe after a short write).
    let mut big = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.p("fill"))
        .unwrap();
    let chunk = pat(0, 64 << 10, 5);
    let mut written = 0u64;
    let err = loop {
        match big.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(statfs(m.path()).f_bfree, 0);
    assert_eq!(big.metadata().unwrap().size(), written);
    // Everything that was written reads back.
    drop_cache(&big);
    let mut pos = 0;
    while pos < written {
        let n = (written - pos).min(chunk.len() as u64) as usize;
        assert!(read_at(&big, pos, n) == chunk[..n], "data at {pos}");
        pos += n as u64;
    }
    assert_errno!(fs::create_dir(m.p("nodir")), libc::ENOSPC);
    assert_errno!(symlink("y".repeat(100), m.p("noslow")), libc::ENOSPC);
    symlink("short", m.p("fast_ok")).unwrap(); // needs no block
    drop(big);
    let m = remount(m, &img.path, "");
    fs::remove_file(m.p("fill")).unwrap();
    fs::remove_file(m.p("fast_ok")).unwrap();
    wait_until("the space to come back", || {
        statfs(m.path()).f_bfree == s0.f_bfree
    });

    // Use up the inodes.
    let mut n = 0;
    let err = loop {
        match File::create(m.p(&format!("i{n}"))) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(n as u64, s0.f_ffree - 1, "one inode is taken by 'edge'");
    assert_eq!(statfs(m.path()).f_ffree, 0);
    assert_errno!(fs::create_dir(m.p("nodir")), libc::ENOSPC);
    let m = remount(m, &img.path, "");
    for k in 0..n {
        fs::remove_file(m.p(&format!("i{k}"))).unwrap();
    }
    fs::remove_file(m.p("edge")).unwrap();
    wait_until("the inodes to come back", || {
        statfs(m.path()).f_ffree == s0.f_ffree
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// What `open(O_CREAT)` promises whoever creates a file, now that the
/// kernel creates with MKNOD and opens afterwards (the daemon refuses
/// CREATE): a file made read-only by the umask is still written through
/// the descriptor that made it, a second open for writing is refused, an
/// O_EXCL create of an existing name fails, and the new file is the
/// creator's. Run as nobody on both drivers (on copies of one image), the
/// same transcript.
#[test]
fn a_creator_writes_the_read_only_file_it_made_as_the_kernel() {
    let _serial = setup();
    let img = mkfs_ext2(16384, 1024, &[]);
    let theirs = copy_image(&img, "kernel.img");
    let transcript = |root: &std::path::Path| -> Vec<String> {
        let d = root.join("open");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let p = d.display();
        let mut t = Vec::new();
        for (what, script) in [
            (
                "create 0444 and write",
                format!("umask 0333; echo first > {p}/f"),
            ),
            ("write again", format!("echo again > {p}/f")),
            ("append", format!("echo more >> {p}/f")),
            ("noclobber", format!("set -C; echo x > {p}/f")),
            (
                "create beside",
                format!("umask 0; set -C; echo new > {p}/g"),
            ),
        ] {
            t.push(format!("{what}: {}", sh_as_nobody(&script)));
        }
        for n in ["f", "g"] {
            let st = fs::metadata(d.join(n)).unwrap();
            let body = String::from_utf8(fs::read(d.join(n)).unwrap()).unwrap();
            t.push(format!(
                "{n}: mode {:o} owner {}:{} {body:?}",
                st.mode(),
                st.uid(),
                st.gid()
            ));
        }
        t
    };
    let m = mount(&img.path, "allow_other");
    let ours = transcript(m.path());
    m.unmount_and_check();
    let k = KernelMount::new(&theirs);
    let kernel = transcript(k.path());
    k.unmount();
    assert_eq!(ours, kernel);
    // What the transcript shows, so that agreeing means something.
    for line in [
        "create 0444 and write: true",
        "write again: false",
        "noclobber: false",
        "f: mode 100444 owner 65534:65534 \"first\\n\"",
    ] {
        assert!(ours.iter().any(|l| l == line), "{line}: {ours:#?}");
    }
    fsck_strict(&img.path);
    fsck_strict(&theirs);
}
