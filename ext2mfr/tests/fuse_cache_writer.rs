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
//! A miss on an inode-table block reads the 32 blocks around it ahead, as
//! the kernel's driver does: they are in the host's page cache of the
//! image right after one cold stat.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()` and ends with
//! clean unmounts and `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
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

/// Which of the image's 4 KiB pages `pages` are in the host's page cache
/// (mincore over a read-only mapping that is never touched).
fn resident(image: &std::path::Path, pages: std::ops::Range<u64>) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let f = File::open(image).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let mut vec = vec![0u8; len.div_ceil(4096)];
    // SAFETY: a fresh read-only shared mapping of the whole file, only
    // passed to mincore (never read through) and unmapped before return.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(at, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        let r = libc::mincore(at, len, vec.as_mut_ptr());
        let e = std::io::Error::last_os_error();
        libc::munmap(at, len);
        assert_eq!(r, 0, "mincore: {e}");
    }
    pages.map(|p| vec[p as usize] & 1 == 1).collect()
}

/// A cold stat of one file reads its inode's table block and the rest of
/// its 32-block window ahead (blocks aligned to 32, inside the table),
/// none of which was in the page cache before.
#[test]
fn a_cold_inode_miss_reads_the_inode_table_ahead() {
    let _serial = setup();
    // One group of 16384 inodes: a table of 512 blocks or more.
    let img = mkfs_ext2(65536, 4096, &["-N", "16384"]);
    let m = mount(&img.path, "");
    for i in 0..1200 {
        File::create(m.p(&format!("f{i}"))).unwrap();
    }
    // Where an inode lies: "located at block B, offset 0x...".
    let inode_block = |ino: u64| -> u64 {
        let imap = debugfs(&img.path, &format!("imap <{ino}>"));
        imap.split("located at block ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|b| b.trim().parse().ok())
            .unwrap_or_else(|| panic!("debugfs imap: {imap}"))
    };
    let table = inode_block(1);
    let ino = std::fs::metadata(m.p("f1100")).unwrap().ino();
    let blk = inode_block(ino);
    let window = (blk & !31)..(blk & !31) + 32;
    let table_blocks: u64 = dumpe2fs_field(&img.path, "Inode blocks per group")
        .parse()
        .unwrap();
    assert!(
        table <= window.start && window.end <= table + table_blocks && blk % 32 != 0,
        "inode block {blk}: window {window:?} not inside the table at {table} (+{table_blocks})"
    );

    control(m.path(), "ext2mfr.drop_caches", "1");
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    let before = resident(&img.path, window.clone());
    assert!(
        before.iter().filter(|&&r| r).count() <= 1,
        "blocks {window:?} still cached after the drop: {before:?}"
    );
    std::fs::symlink_metadata(m.p("f1100")).unwrap();
    let start = Instant::now();
    let after = loop {
        let after = resident(&img.path, window.clone());
        if after.iter().all(|&r| r) || start.elapsed() > Duration::from_secs(2) {
            break after;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        after.iter().all(|&r| r),
        "a miss on block {blk} did not read blocks {window:?} ahead: {after:?}"
    );
    m.unmount_and_check();
    fsck_strict(&img.path);
}
