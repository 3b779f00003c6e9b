//! truncate(2) and ftruncate(2) through a real FUSE mount: growing (holes,
//! no blocks), shrinking into a block (the stale tail never comes back),
//! and freeing the block map level by level, dense and sparse files up to
//! the triple indirect tree, with `st_blocks` and the free count checked
//! against the block-map arithmetic at every step.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

#[test]
fn truncate_small_file_grow_and_shrink() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("t");
    fs::write(&p, pat(0, 3000, 1)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 6);

    // Grow with truncate(2): a hole, no new blocks, zeros to read.
    truncate(&p, 100_000).unwrap();
    let st = fs::metadata(&p).unwrap();
    assert_eq!((st.size(), st.blocks()), (100_000, 6));
    let f = File::open(&p).unwrap();
    drop_cache(&f);
    check_pattern(&f, 0, 3000, 1);
    check_zeros(&f, 3000, 97_000);
    drop(f);

    // Shrink into the middle of a block, then grow again: the old tail must
    // not come back (the daemon zeroes the rest of the last block).
    truncate(&p, 1500).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 4);
    truncate(&p, 4000).unwrap();
    let f = File::open(&p).unwrap();
    drop_cache(&f);
    check_pattern(&f, 0, 1500, 1);
    check_zeros(&f, 1500, 2500);
    drop(f);

    // ftruncate through an open descriptor, and writes after it.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(20_000).unwrap();
    f.write_all_at(&pat(15_000, 100, 2), 15_000).unwrap(); // block 14: single indirect
    assert_eq!(f.metadata().unwrap().blocks(), (2 + 1 + 1) * 2);
    f.set_len(0).unwrap();
    assert_eq!(
        (f.metadata().unwrap().size(), f.metadata().unwrap().blocks()),
        (0, 0)
    );
    f.write_all_at(b"abc", 0).unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"abc");

    // Truncating a directory or a missing file fails.
    fs::create_dir(m.p("d")).unwrap();
    assert_errno!(truncate(&m.p("d"), 0), libc::EISDIR);
    assert_errno!(truncate(&m.p("nope"), 0), libc::ENOENT);

    let m = remount(m, &img.path, "");
    assert_eq!(fs::read(m.p("t")).unwrap(), b"abc");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// A dense 70 MiB file on 1 KiB blocks reaches the triple indirect tree;
/// truncate it down level by level, checking the block counts, the data
/// that remains and that nothing stale reappears past the end.
#[test]
fn truncate_dense_file_through_all_levels() {
    let _serial = setup();
    let img = mkfs_ext2mfr(100 << 20, 1024);
    let mut m = mount(&img.path, "");
    let free_start = statfs(m.path()).f_bfree;
    let total = 70u64 << 20;
    {
        let mut f = File::create(m.p("big")).unwrap();
        for off in (0..total).step_by(1 << 20) {
            f.write_all(&pat(off, 1 << 20, 7)).unwrap();
        }
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("big"))
        .unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.size(), total);
    // 71680 blocks: past 12 + 256 + 65536, so the triple indirect tree is in use.
    assert_eq!(st.blocks(), dense_sectors(total, 1024));
    let free_full = statfs(m.path()).f_bfree;
    assert_eq!(free_start - free_full, dense_sectors(total, 1024) / 2);
    drop_cache(&f);
    check_pattern(&f, 0, total, 7);

    let steps = [
        (66u64 << 20) + 123, // inside the triple indirect range
        (40 << 20) + 1000,   // inside double indirect
        200 * 1024 + 17,     // inside single indirect
        5000,                // inside the direct blocks
        0,
    ];
    let mut prev_blocks = st.blocks();
    for (k, &s) in steps.iter().enumerate() {
        f.set_len(s).unwrap();
        let st = f.metadata().unwrap();
        assert_eq!(st.size(), s);
        assert_eq!(
            st.blocks(),
            dense_sectors(s, 1024),
            "st_blocks after truncate to {s}"
        );
        assert!(st.blocks() < prev_blocks);
        prev_blocks = st.blocks();
        assert_eq!(
            free_full + (dense_sectors(total, 1024) - dense_sectors(s, 1024)) / 2,
            statfs(m.path()).f_bfree,
            "free blocks after truncate to {s}"
        );
        // What remains, read from the daemon.
        drop_cache(&f);
        let head = s.min(64 << 10);
        check_pattern(&f, 0, head, 7);
        let tail = s.min(256 << 10);
        check_pattern(&f, s - tail, tail, 7);
        // Past the end: EOF; after growing again, zeros and no new blocks.
        let mut buf = [0u8; 16];
        assert_eq!(f.read_at(&mut buf, s).unwrap(), 0, "read past EOF");
        f.set_len(s + 5000).unwrap();
        drop_cache(&f);
        check_zeros(&f, s, 5000);
        assert_eq!(
            f.metadata().unwrap().blocks(),
            st.blocks(),
            "growing allocated blocks"
        );
        f.set_len(s).unwrap();

        if k == 1 {
            // Check the partly freed trees on disk, then all the data left.
            drop(f);
            m = remount(m, &img.path, "");
            f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(m.p("big"))
                .unwrap();
            assert_eq!(f.metadata().unwrap().blocks(), dense_sectors(s, 1024));
            check_pattern(&f, 0, s, 7);
        }
    }
    drop(f);
    assert_eq!(statfs(m.path()).f_bfree, free_start);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// A sparse file with data in the direct, single, double and triple
/// indirect ranges (past 12+256+65536 blocks on 1 KiB blocks), truncated
/// step by step; each step frees exactly the blocks (and indirect blocks)
/// past the new end.
#[test]
fn truncate_sparse_file_past_triple_indirect() {
    let _serial = setup();
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let mut m = mount(&img.path, "");
    let p = 256u64;
    let t0 = 12 + p + p * p;
    let mut model: BTreeSet<u64> = [
        0,
        5,
        11,
        12,
        100,
        267,
        268,
        600,
        t0 - 1,
        t0,
        t0 + 300,
        t0 + 70_000,
    ]
    .into_iter()
    .collect();
    let free_start = statfs(m.path()).f_bfree;
    let path = m.p("sparse");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    for &l in &model {
        f.write_all_at(&pat(l * 1024, 1024, l), l * 1024).unwrap();
    }
    let sectors =
        |model: &BTreeSet<u64>| (model.len() as u64 + meta_blocks(model.iter().copied(), p)) * 2;
    let st = f.metadata().unwrap();
    assert_eq!(st.size(), (t0 + 70_001) * 1024);
    assert_eq!(st.blocks(), sectors(&model));
    assert_eq!(st.blocks(), (12 + 1 + 2 + 1 + 3 + 1 + 1) * 2 + 2 * 2); // 12 data, 9 indirect
    assert_eq!(free_start - statfs(m.path()).f_bfree, st.blocks() / 2);

    let verify = |f: &File, model: &BTreeSet<u64>, size: u64| {
        drop_cache(f);
        for &l in model {
            let n = (size - l * 1024).min(1024);
            check_pattern(f, l * 1024, n, l);
        }
        for hole in [1u64, 50, 269, 1000, 30_000, t0 + 1, t0 + 69_999] {
            if (hole + 1) * 1024 <= size && !model.contains(&hole) {
                check_zeros(f, hole * 1024, 1024);
            }
        }
    };
    verify(&f, &model, st.size());

    let steps = [
        (t0 + 70_000) * 1024 + 10,
        (t0 + 301) * 1024 - 5,
        (t0 + 100) * 1024,
        t0 * 1024,
        601 * 1024,
        300 * 1024,
        268 * 1024,
        100 * 1024 + 1,
        12 * 1024,
        7 * 1024,
        0,
    ];
    let mut prev = st.blocks();
    for (k, &s) in steps.iter().enumerate() {
        f.set_len(s).unwrap();
        model.retain(|&l| l * 1024 < s);
        let st = f.metadata().unwrap();
        assert_eq!(st.size(), s);
        assert_eq!(
            st.blocks(),
            sectors(&model),
            "st_blocks after truncate to {s}"
        );
        assert!(st.blocks() <= prev);
        prev = st.blocks();
        assert_eq!(
            free_start - statfs(m.path()).f_bfree,
            st.blocks() / 2,
            "free blocks at size {s}"
        );
        verify(&f, &model, s);
        f.set_len(s + 2048).unwrap();
        drop_cache(&f);
        check_zeros(&f, s, 2048);
        assert_eq!(f.metadata().unwrap().blocks(), st.blocks());
        f.set_len(s).unwrap();
        if k == 3 {
            drop(f);
            m = remount(m, &img.path, "");
            f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(m.p("sparse"))
                .unwrap();
            assert_eq!(f.metadata().unwrap().blocks(), sectors(&model));
            verify(&f, &model, s);
        }
    }
    assert_eq!(statfs(m.path()).f_bfree, free_start);
    // The file grows again from nothing through every level.
    f.write_all_at(b"again", (t0 + 5) * 1024).unwrap();
    assert_eq!(f.metadata().unwrap().blocks(), (1 + 3) * 2);
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);
}
