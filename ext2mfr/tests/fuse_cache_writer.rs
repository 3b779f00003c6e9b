//! The block cache seen from a mount: its background writer and its
//! `ext2mfr.drop_caches` control.
//!
//! The writer: once a quarter of the cache is dirty, it writes the dirty
//! blocks back in runs of consecutive blocks, one write per run, before
//! anyone syncs. What that must give:
//!
//! - it runs: blocks reach the image with no sync asked, in writes of
//!   many blocks each;
//! - it writes only what is final, and never older bytes over newer ones:
//!   blocks rewritten while it runs, and requests rolled back by injected
//!   faults meanwhile, leave the image with the last bytes written, which
//!   the kernel's own ext2 reads back, and e2fsck is clean.
//!
//! The control writes everything back and empties the cache, so that the
//! next reads go to the image (as a benchmark starting cold needs), and
//! nothing written is lost by it.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()` and ends with
//! clean unmounts and `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// A 4 MiB cache: 1024 frames of 4 KiB, the writer wakes at 256 dirty.
const SMALL_CACHE: &str = "cache=4M";

fn cache_counter(m: &Mount, key: &str) -> u64 {
    counters(m.path())["cache"][key].as_u64().unwrap()
}

/// 16 MiB written in 4 KiB writes, without a sync: the writer puts blocks
/// on the image in runs (at least 16 blocks per write on average), and what
/// the kernel reads back after the unmount is what was written.
#[test]
fn dirty_blocks_go_back_in_runs_before_any_sync() {
    let _serial = setup();
    let img = mkfs_ext2(65536, 4096, &[]);
    let m = mount(&img.path, SMALL_CACHE);
    let mut f = File::create(m.p("big")).unwrap();
    for i in 0..4096u64 {
        f.write_all(&pat(i * 4096, 4096, 5)).unwrap();
    }
    // (No fsync: only the writer and evictions write back so far.)
    let (writes, blocks) = (
        cache_counter(&m, "writebacks"),
        cache_counter(&m, "written_blocks"),
    );
    assert!(
        blocks >= 2048,
        "{blocks} blocks written back of 4096 dirtied in a 1024-frame cache"
    );
    assert!(
        blocks >= 16 * writes,
        "{blocks} blocks in {writes} writes: not written in runs"
    );
    drop(f);
    let f = File::open(m.p("big")).unwrap();
    check_pattern(&f, 0, 16 << 20, 5);
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);
    let k = KernelMount::new(&img.path);
    let f = File::open(k.path().join("big")).unwrap();
    check_pattern(&f, 0, 16 << 20, 5);
    drop(f);
    k.unmount();
}

/// One thread rewrites a 1 MiB region over and over (generation g writes
/// pattern seed g) while another streams 24 MiB elsewhere, so the writer
/// runs again and again over blocks that change under it; with injected
/// faults, some of those rewrites are rolled back and retried. After the
/// last generation and an unmount, the image holds it: the kernel's ext2
/// reads the last generation's bytes, and e2fsck is clean.
#[test]
fn rewritten_blocks_reach_the_image_newest_last() {
    let _serial = setup();
    for faults in ["", ",policy=retry,inject_alloc=0.1,inject_seed=7"] {
        let img = mkfs_ext2(65536, 4096, &[]);
        let opts = format!("{SMALL_CACHE}{faults}");
        let m = mount(&img.path, &opts);
        let hot = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(m.p("hot"))
            .unwrap();
        let stream_path = m.p("stream");
        let start = Instant::now();
        let last = std::thread::scope(|s| {
            let streamer = s.spawn(|| {
                let mut f = File::create(&stream_path).unwrap();
                for i in 0..6144u64 {
                    f.write_all(&pat(i * 4096, 4096, 99)).unwrap();
                }
            });
            let mut g = 0u64;
            while !streamer.is_finished() || g < 8 {
                g += 1;
                for k in 0..256u64 {
                    hot.write_all_at(&pat(k * 4096, 4096, 1000 + g), k * 4096)
                        .unwrap_or_else(|e| panic!("{opts}: generation {g} block {k}: {e}"));
                }
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "{opts}: too slow"
                );
            }
            streamer.join().unwrap();
            g
        });
        check_pattern(&hot, 0, 1 << 20, 1000 + last);
        drop(hot);
        let blocks = cache_counter(&m, "written_blocks");
        assert!(blocks >= 2048, "{opts}: the writer wrote {blocks} blocks");
        if !faults.is_empty() {
            let c = counters(m.path());
            assert_eq!(c["ama"]["under_allocations"], 0, "{opts}: {c}");
            assert!(
                c["faults_injected"]["alloc_faults"].as_u64().unwrap() > 0,
                "{opts}: nothing was injected"
            );
        }
        m.unmount_and_check();
        fsck_strict(&img.path);
        let k = KernelMount::new(&img.path);
        for (name, len, seed) in [("hot", 1 << 20, 1000 + last), ("stream", 24 << 20, 99)] {
            let f = File::open(k.path().join(name)).unwrap();
            check_pattern(&f, 0, len, seed);
        }
        k.unmount();
    }
}

/// `ext2mfr.drop_caches` = 1: dirty blocks reach the image (the kernel's
/// ext2 reads them from a copy taken while still mounted), the cache
/// empties (re-reading misses again), the bytes read after it are the
/// bytes written; another value is EINVAL.
#[test]
fn dropping_the_cache_writes_back_and_loses_nothing() {
    let _serial = setup();
    let img = mkfs_ext2(16384, 4096, &[]);
    let m = mount(&img.path, "");
    let mut f = File::create(m.p("f")).unwrap();
    for i in 0..64u64 {
        f.write_all(&pat(i * 4096, 4096, 17)).unwrap();
    }
    drop(f);
    let evicted = cache_counter(&m, "evictions");
    control(m.path(), "ext2mfr.drop_caches", "1");
    assert!(
        cache_counter(&m, "evictions") >= evicted + 64,
        "the file's blocks were not dropped"
    );
    let copy = copy_image(&img, "dropped");
    let k = KernelMount::new(&copy);
    let kf = File::open(k.path().join("f")).unwrap();
    check_pattern(&kf, 0, 64 * 4096, 17);
    drop(kf);
    k.unmount();
    let misses = cache_counter(&m, "misses");
    // (The kernel's page cache holds the file too.)
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    let f = File::open(m.p("f")).unwrap();
    check_pattern(&f, 0, 64 * 4096, 17);
    drop(f);
    assert!(
        cache_counter(&m, "misses") >= misses + 64,
        "reading after the drop did not go to the image"
    );
    let e = setxattr(m.path(), "ext2mfr.drop_caches", b"2").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    m.unmount_and_check();
    fsck_strict(&img.path);
}
