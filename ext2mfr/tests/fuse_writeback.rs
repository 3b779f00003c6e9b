//! The opt-in `writeback_cache` mount option (FUSE_WRITEBACK_CACHE): the
//! kernel keeps written data in its page cache and sends it later, in
//! large writes, with the times it kept (SETATTR). What a user must be
//! able to count on, checked over both transports:
//!
//! - it is off unless asked for, and `ext2mfr.stats` says when it is on;
//! - it does what it is for: many small writes reach the daemon as few;
//! - nothing is lost or changed: the same calls on a copy of the image
//!   mounted by the kernel's own ext2 give the same tree, bytes and sizes,
//!   each driver reads what the other wrote, and e2fsck is clean;
//! - a write's errors come at fsync or close, as the README says: a disk
//!   that fills up answers ENOSPC at fsync, and the image stays consistent;
//! - injected allocation and memory-safety faults (policy=retry) lose
//!   nothing, and AMA never under-allocates.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()` and ends with
//! clean unmounts and `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// The transports to run over: /dev/fuse, and io_uring where the kernel
/// has it.
fn transports() -> Vec<&'static str> {
    let mut t = vec!["transport=dev"];
    if enable_fuse_uring() {
        t.push("transport=uring");
    }
    t
}

/// Whether a mount with `opts` (and `FUSE_OPS_OPTS`) asks for the option:
/// the last of `writeback_cache` and `no_writeback_cache` wins.
fn asks_for_writeback(opts: &str) -> bool {
    with_extra(opts)
        .split(',')
        .rfind(|o| *o == "writeback_cache" || *o == "no_writeback_cache")
        == Some("writeback_cache")
}

fn requests(mnt: &Path, op: &str) -> u64 {
    counters(mnt)["fuse_requests"]["by_opcode"][op]
        .as_u64()
        .unwrap_or(0)
}

/// Calls that a page cache in front of the daemon must get right: small
/// unaligned writes, partial pages rewritten through a write-only
/// descriptor (the kernel reads the rest of the page first), O_APPEND,
/// holes, truncation of cached data, a shared mapping, a file written
/// after its last name is gone, a rename with data not yet sent.
fn workload(root: &Path) {
    let d = root.join("wb");
    fs::create_dir(&d).unwrap();

    // 1. 3 MiB in 4 KiB writes, then 1000 unaligned 37-byte writes.
    let mut f = File::create(d.join("seq")).unwrap();
    for i in 0..768u64 {
        f.write_all(&pat(i * 4096, 4096, 1)).unwrap();
    }
    drop(f);
    let mut f = File::create(d.join("small")).unwrap();
    for i in 0..1000u64 {
        f.write_all(&pat(i * 37, 37, 2)).unwrap();
    }
    drop(f);

    // 2. The middle of an existing file rewritten through O_WRONLY, across
    // page boundaries, after its pages left the cache.
    fs::write(d.join("rmw"), pat(0, 20000, 3)).unwrap();
    let f = OpenOptions::new().write(true).open(d.join("rmw")).unwrap();
    drop_cache(&f);
    f.write_all_at(&pat(0, 5000, 4), 3000).unwrap();
    f.write_all_at(b"edge", 4094).unwrap();
    drop(f);

    // 3. Appends through O_APPEND, interleaved with a positioned write by
    // another descriptor.
    fs::write(d.join("log"), b"start\n").unwrap();
    let mut a = OpenOptions::new().append(true).open(d.join("log")).unwrap();
    let b = OpenOptions::new().write(true).open(d.join("log")).unwrap();
    for i in 0..50 {
        writeln!(a, "line {i}").unwrap();
        if i == 25 {
            b.write_all_at(b"START", 0).unwrap();
        }
    }
    drop((a, b));

    // 4. A write far past the end (a hole), cached data truncated away,
    // then the file extended again (zeros, not the old bytes).
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.join("holes"))
        .unwrap();
    f.write_all_at(&pat(0, 10000, 5), 0).unwrap();
    f.write_all_at(&pat(0, 3000, 6), 5 << 20).unwrap();
    f.set_len(6000).unwrap();
    f.write_all_at(b"tail", 9000).unwrap();
    drop(f);

    // 5. A shared mapping written and synced.
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.join("mapped"))
        .unwrap();
    f.set_len(3 * 4096 + 100).unwrap();
    let len = 3 * 4096 + 100;
    // SAFETY: a fresh shared mapping of an open file of `len` bytes, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        let s = std::slice::from_raw_parts_mut(p.cast::<u8>(), len);
        s[100..4196].copy_from_slice(&pat(0, 4096, 7));
        s[len - 10..].copy_from_slice(b"0123456789");
        assert_eq!(libc::msync(p, len, libc::MS_SYNC), 0, "msync");
        assert_eq!(libc::munmap(p, len), 0, "munmap");
    }
    drop(f);

    // 6. Written after its last name is gone: read back through the
    // descriptor, then gone with it.
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.join("ghost"))
        .unwrap();
    f.write_all(&pat(0, 9000, 8)).unwrap();
    fs::remove_file(d.join("ghost")).unwrap();
    f.write_all(&pat(9000, 9000, 8)).unwrap();
    f.sync_all().unwrap();
    assert_eq!(read_at(&f, 0, 18000), pat(0, 18000, 8), "the unlinked file");
    drop(f);

    // 7. Renamed with data not yet sent, then more written under the new
    // name.
    let mut f = File::create(d.join("before")).unwrap();
    f.write_all(&pat(0, 7000, 9)).unwrap();
    fs::rename(d.join("before"), d.join("after")).unwrap();
    f.write_all(&pat(7000, 100, 9)).unwrap();
    drop(f);
}

/// The same calls on ext2mfr with `writeback_cache` and on the kernel's
/// ext2, on copies of one image: the same tree, bytes and sizes (read on
/// the mount, then after a remount without the option), and each image
/// read right by the other driver.
#[test]
fn cached_writes_give_the_kernels_tree() {
    let _serial = setup();
    for t in transports() {
        let img = mkfs_ext2(32768, 1024, &[]);
        let kimg = copy_image(&img, "kernel.img");

        let k = KernelMount::new(&kimg);
        workload(k.path());
        let want = snapshot(k.path());
        k.unmount();
        fsck_strict(&kimg);

        let opts = format!("{t},writeback_cache");
        let m = mount(&img.path, &opts);
        assert_eq!(counters(m.path())["writeback_cache"], true, "{t}");
        workload(m.path());
        assert_eq!(snapshot(m.path()), want, "{t}: on the mount");
        // Data not sent yet, and what was sent: st_blocks after fsync is
        // what the image holds.
        let m = remount(m, &img.path, t);
        assert_eq!(
            counters(m.path())["writeback_cache"],
            asks_for_writeback(t),
            "{t}"
        );
        assert_eq!(snapshot(m.path()), want, "{t}: after a remount");
        for (name, len) in [("seq", 768 * 4096), ("rmw", 20000)] {
            let md = fs::metadata(m.p(&format!("wb/{name}"))).unwrap();
            let k_md = {
                let k = KernelMount::new(&kimg);
                let md = fs::metadata(k.path().join(format!("wb/{name}"))).unwrap();
                k.unmount();
                md
            };
            assert_eq!(md.len(), len, "{t}: {name}");
            assert_eq!(md.blocks(), k_md.blocks(), "{t}: st_blocks of {name}");
        }
        m.unmount_and_check();
        fsck_strict(&img.path);

        // The kernel reads what ext2mfr wrote.
        let k = KernelMount::new(&img.path);
        assert_eq!(
            snapshot(k.path()),
            want,
            "{t}: ext2mfr's image read by the kernel"
        );
        k.unmount();
        fsck_strict(&img.path);
    }
}

/// Small writes reach the daemon as few large ones: 1 MiB in 256 writes of
/// 4 KiB is at most a few WRITE requests, against 256 without the option.
#[test]
fn small_writes_reach_the_daemon_as_few() {
    let _serial = setup();
    for t in transports() {
        let img = mkfs_ext2(16384, 4096, &[]);
        for opts in [format!("{t},writeback_cache"), t.to_string()] {
            let cached = asks_for_writeback(&opts);
            let m = mount(&img.path, &opts);
            let before = requests(m.path(), "WRITE");
            let mut f = File::create(m.p(&format!("f{cached}"))).unwrap();
            for i in 0..256u64 {
                f.write_all(&pat(i * 4096, 4096, 11)).unwrap();
            }
            f.sync_all().unwrap();
            drop(f);
            let writes = requests(m.path(), "WRITE") - before;
            if cached {
                assert!(
                    writes <= 16,
                    "{opts}: {writes} WRITE requests for 256 writes"
                );
            } else {
                assert!(
                    writes >= 256,
                    "{opts}: {writes} WRITE requests for 256 writes"
                );
            }
            let f = File::open(m.p(&format!("f{cached}"))).unwrap();
            check_pattern(&f, 0, 1 << 20, 11);
            drop(f);
            m.unmount_and_check();
            fsck_strict(&img.path);
        }
    }
}

/// A disk that fills up under cached writes: write(2) takes the data, the
/// error comes at fsync (ENOSPC, as the kernel's page cache reports a
/// write-back that ran out of space), the file keeps what fitted, and the
/// image is consistent. What was written and synced before stays intact.
#[test]
fn a_full_disk_answers_at_fsync() {
    let _serial = setup();
    for t in transports() {
        let img = mkfs_ext2(4096, 1024, &[]);
        let m = mount(&img.path, &format!("{t},writeback_cache"));
        fs::write(m.p("keep"), pat(0, 100_000, 12)).unwrap();
        File::open(m.p("keep")).unwrap().sync_all().unwrap();
        // (Root writes into the reserved blocks too.)
        let free = statvfs(m.path()).f_bfree * statvfs(m.path()).f_frsize;
        let mut f = File::create(m.p("big")).unwrap();
        // Twice the free space, in writes the page cache takes.
        let mut accepted = 0u64;
        let mut write_error = None;
        while accepted < 2 * free {
            match f.write(&pat(accepted, 65536, 13)) {
                Ok(n) => accepted += n as u64,
                Err(e) => {
                    write_error = e.raw_os_error();
                    break;
                }
            }
        }
        let synced = f.sync_all();
        // Either the kernel saw the space run out while writing (it asks
        // the daemon when it cannot tell), or fsync reports it.
        let errno = write_error.or_else(|| synced.err().and_then(|e| e.raw_os_error()));
        assert_eq!(
            errno,
            Some(libc::ENOSPC),
            "{t}: accepted {accepted} of {free} free"
        );
        drop(f);
        // What was sent before the space ran out (not always the start of
        // the file: the kernel's write-back starts where it last stopped)
        // is the pattern; the rest reads as holes, block by block, once the
        // kernel's pages are dropped.
        let f = File::open(m.p("big")).unwrap();
        let size = f.metadata().unwrap().len();
        assert!(
            size > 0 && size <= accepted,
            "{t}: size {size}, accepted {accepted}"
        );
        drop_cache(&f);
        let data = read_at(&f, 0, size as usize);
        let mut kept = 0;
        for (k, block) in data.chunks(1024).enumerate() {
            let off = k as u64 * 1024;
            if block == pat(off, block.len(), 13).as_slice() {
                kept += block.len() as u64;
            } else {
                assert!(
                    block.iter().all(|&b| b == 0),
                    "{t}: block at {off} is neither the data nor a hole"
                );
            }
        }
        assert!(
            kept >= free / 2 && kept <= free,
            "{t}: {kept} bytes kept of {free} free"
        );
        drop(f);
        let f = File::open(m.p("keep")).unwrap();
        check_pattern(&f, 0, 100_000, 12);
        drop(f);
        fs::remove_file(m.p("big")).unwrap();
        let m = remount(m, &img.path, t);
        let f = File::open(m.p("keep")).unwrap();
        check_pattern(&f, 0, 100_000, 12);
        drop(f);
        m.unmount_and_check();
        fsck_strict(&img.path);
    }
}

/// Cached writes under injected allocation failures and memory-safety
/// faults (policy=retry): every call succeeds, the bytes are the ones
/// written, e2fsck is clean, faults really were injected and AMA never
/// under-allocated.
#[test]
fn cached_writes_survive_injected_faults() {
    let _serial = setup();
    for t in transports() {
        // Memory-safety faults by interval, not by probability: a cached
        // write is a request of up to 1 MiB with a fault point per block,
        // which a per-point probability of a few percent would fault at
        // every one of its retries.
        for faults in [
            "inject_alloc=0.2,inject_seed=21",
            "inject_interval=2000,inject_seed=23",
        ] {
            let img = mkfs_ext2(32768, 1024, &[]);
            let opts = format!("{t},writeback_cache,policy=retry,{faults}");
            let m = mount(&img.path, &opts);
            for i in 0..30u64 {
                let mut f = File::create(m.p(&format!("f{i}"))).unwrap();
                let len = 1000 + i * 7919;
                for (k, chunk) in pat(0, len as usize, 30 + i).chunks(1500).enumerate() {
                    f.write_all(chunk)
                        .unwrap_or_else(|e| panic!("{opts}: f{i} write {k}: {e}"));
                }
                if i % 3 == 0 {
                    f.sync_all()
                        .unwrap_or_else(|e| panic!("{opts}: fsync f{i}: {e}"));
                }
            }
            let c = counters(m.path());
            assert_eq!(c["ama"]["under_allocations"], 0, "{opts}: {c}");
            let f = &c["faults_injected"];
            let injected =
                f["alloc_faults"].as_u64().unwrap() + f["safety_faults"].as_u64().unwrap();
            assert!(injected > 0, "{opts}: nothing was injected: {f}");
            let m = remount(m, &img.path, t);
            for i in 0..30u64 {
                let f = File::open(m.p(&format!("f{i}"))).unwrap();
                let len = 1000 + i * 7919;
                assert_eq!(f.metadata().unwrap().len(), len, "{opts}: size of f{i}");
                check_pattern(&f, 0, len, 30 + i);
            }
            m.unmount_and_check();
            fsck_strict(&img.path);
        }
    }
}
