//! Regressions of AMA estimates that missed (issue 13 §4): each scenario
//! runs on a cold, small cache, so that what a request reads is not
//! conveniently cached, and must end with no under-allocation and no fault
//! (debug builds make the pool strict: an under-allocation panics inside
//! the request, which recovery then rolls back as a fault).

mod common;
use common::*;

use std::path::Path;

/// Under-allocations and faults so far, with the per-op counters for the
/// failure message.
fn check(mnt: &Path, what: &str) {
    let c = counters(mnt);
    assert_eq!(
        (
            c["ama"]["under_allocations"].as_u64(),
            c["requests"]["faulted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{what}: under-allocations or faults: {}",
        c["ama"]["by_op"]
    );
}

/// Truncating a file of whole blocks to a size inside a block zeroes the
/// new last block's tail: a written block, which the estimate counted
/// only when the *old* size ended inside a block.
#[test]
fn truncate_from_whole_blocks_into_a_block() {
    for bs in [1024u32, 4096] {
        let img = mkfs_ext2(16 * 1024, bs, &[]);
        let m = Mount::new(&img.path, "");
        for (k, blocks) in [1u64, 3, 12, 13, 300].iter().enumerate() {
            std::fs::write(
                m.p(&format!("f{k}")),
                vec![7u8; (blocks * bs as u64) as usize],
            )
            .unwrap();
        }
        m.unmount();
        let m = Mount::new(&img.path, "cache=1M");
        for (k, blocks) in [1u64, 3, 12, 13, 300].iter().enumerate() {
            let p = m.p(&format!("f{k}"));
            // Cached tail block (just read) and uncached (not read).
            if k % 2 == 0 {
                std::fs::read(&p).unwrap();
            }
            let size = (blocks - 1) * bs as u64 + 100;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(size)
                .unwrap();
            let data = std::fs::read(&p).unwrap();
            assert_eq!(data.len() as u64, size);
            assert!(data.iter().all(|&b| b == 7));
        }
        check(m.path(), &format!("truncate at {bs}-byte blocks"));
        m.unmount_and_check();
    }
}

/// Moving a directory to another parent walks up from the new parent to
/// the root (no moving a directory into itself), reading each ancestor's
/// inode and ".." block: on a cold cache, many frames the estimate must
/// count.
#[test]
fn rename_a_directory_deep_across_directories() {
    let img = mkfs_ext2(32 * 1024, 1024, &[]);
    let m = Mount::new(&img.path, "");
    let mut deep = m.path().to_path_buf();
    for level in 0..40 {
        deep.push(format!("level-{level}"));
        std::fs::create_dir(&deep).unwrap();
        // Spread the directories over many inode-table blocks.
        for k in 0..8 {
            std::fs::write(deep.join(format!("pad{k}")), b"").unwrap();
        }
    }
    std::fs::create_dir(m.p("moving")).unwrap();
    std::fs::create_dir(m.p("moving/child")).unwrap();
    std::fs::write(m.p("big"), vec![1u8; 3 << 20]).unwrap();
    let target = deep.strip_prefix(m.path()).unwrap().to_path_buf();
    m.unmount();
    let m = Mount::new(&img.path, "cache=1M");
    // The kernel looks the path up now and keeps it; reading a file larger
    // than the cache then evicts the blocks those lookups read.
    assert!(m.path().join(&target).is_dir());
    std::fs::read(m.p("big")).unwrap();
    std::fs::rename(m.p("moving"), m.path().join(&target).join("moved")).unwrap();
    // And back, across the same chain, exchanging with a file on the way.
    std::fs::write(m.p("file"), b"f").unwrap();
    let moved = m.path().join(&target).join("moved");
    if let Err(e) = rename2(&moved, &m.p("file"), libc::RENAME_EXCHANGE) {
        panic!("exchange: {e}");
    }
    assert!(m.p("file/child").is_dir());
    check(m.path(), "renames of a directory across a deep tree");
    m.unmount_and_check();
}

/// A write chooses where its new blocks go from the block before it; that
/// block's path (here the single indirect block, before the first block
/// of the double indirect tree) is no part of the write's estimate. Read
/// on a cold cache it took a frame the write's own blocks then lacked: a
/// restart each time, and under concurrency an under-allocation (the hunt,
/// seed 23). The goal now comes from cached blocks only.
#[test]
fn append_into_a_new_indirect_tree_on_a_cold_cache() {
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let ptrs = 256u64;
    let m = Mount::new(&img.path, "");
    for (k, last) in [12 + ptrs, 12 + ptrs + ptrs * ptrs].iter().enumerate() {
        // One byte in the last block the tree before covers.
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .open(m.p(&format!("f{k}")))
            .unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"x", last * 1024 - 1).unwrap();
    }
    m.unmount();
    let m = Mount::new(&img.path, "cache=1M");
    for k in 0..2 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(m.p(&format!("f{k}")))
            .unwrap();
        use std::io::Write;
        f.write_all(&[7u8; 3000]).unwrap();
    }
    let c = counters(m.path());
    let w = &c["ama"]["by_op"]["write"];
    assert_eq!(
        (w["restarts"].as_u64(), w["under_allocations"].as_u64()),
        (Some(0), Some(0)),
        "appends started over or went beyond their reserve: {w}"
    );
    check(m.path(), "appends into new indirect trees");
    m.unmount_and_check();
}
