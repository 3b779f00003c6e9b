//! fallocate(2) through a real FUSE mount, with the kernel's own driver as
//! the oracle: the same calls on two copies of one image, one mounted by
//! ext2mfr and one by the kernel (`mount -t ext2`, ext4's driver in 6.18),
//! must give the same errnos, sizes, `st_blocks` and bytes; both images
//! must pass `e2fsck -fn`; a file punched on one side reads right on the
//! other; and a punch across double and triple indirect trees on a cold
//! cache stays within its AMA reserve.
//!
//! What the kernel's driver does on these block-mapped files (measured):
//! only PUNCH_HOLE|KEEP_SIZE works. Whole blocks in the range are freed,
//! and the indirect blocks whose whole span lies in it; partial blocks at
//! the edges are zeroed where allocated; a range past the end stops at the
//! end of the page holding it; the size stays. Everything else is
//! EOPNOTSUPP (preallocation and ZERO_RANGE need extents).
//!
//! Like every `fuse_*.rs` file: each test takes `setup()` and ends with
//! clean unmounts and `e2fsck -fn`.

mod common;
use common::*;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
const SEED: u64 = 41;

/// fallocate(2) on an open file: Ok, or the errno.
fn fallocate(f: &File, mode: i32, offset: i64, len: i64) -> Result<(), i32> {
    // SAFETY: an open descriptor; fallocate takes plain integers.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

/// What one step of a case does to its file.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// fallocate(mode, offset, length).
    Call(i32, i64, i64),
    /// Write logical block `n` whole with the pattern (then fsync).
    Write(u64),
}

/// A file made of pattern blocks at `blocks` (and then sized to `size`,
/// if given), and the steps done to it.
struct Case {
    name: &'static str,
    blocks: Vec<u64>,
    size: Option<u64>,
    steps: Vec<Step>,
}

/// The logical blocks where a `bs`-byte block map changes level: first of
/// the single, double and triple indirect trees, and pointers per block.
fn levels(bs: u64) -> (u64, u64, u64, u64) {
    let p = bs / 4;
    let ind = 12;
    let dind = ind + p;
    let tind = dind + p * p;
    (ind, dind, tind, p)
}

/// The table of cases, for block size `bs`: every clipping rule, edges
/// inside and across blocks, each indirect level, the modes that fail.
fn cases(bs: u64) -> Vec<Case> {
    let (ind, dind, tind, p) = levels(bs);
    let b = |n: u64| (n * bs) as i64;
    let dense = |n: u64| (0..n).collect::<Vec<u64>>();
    let c = |name, blocks: Vec<u64>, steps: Vec<Step>| Case {
        name,
        blocks,
        size: None,
        steps,
    };
    use Step::*;
    vec![
        c("aligned", dense(40), vec![Call(PUNCH, b(2), b(3))]),
        c("unaligned", dense(40), vec![Call(PUNCH, b(2) + 100, b(3))]),
        c(
            "inside one block",
            dense(40),
            vec![Call(PUNCH, b(2) + 100, 50)],
        ),
        c(
            "both edges partial, one whole block",
            dense(40),
            vec![Call(PUNCH, b(2) - 10, b(1) + 20)],
        ),
        c("past the end", dense(40), vec![Call(PUNCH, b(41), b(3))]),
        c("at the end", dense(40), vec![Call(PUNCH, b(40), b(3))]),
        c(
            "straddling the end",
            dense(40),
            vec![Call(PUNCH, b(38) + 5, b(10))],
        ),
        Case {
            // The last block ends past the size: the punch goes on to the
            // end of the page, so that block goes whole.
            name: "straddling an unaligned end",
            blocks: dense(40),
            size: Some(40 * bs - 100),
            steps: vec![Call(PUNCH, b(38) + 5, b(10))],
        },
        c(
            "over holes",
            vec![0, 10],
            vec![Call(PUNCH, b(2) + 3, b(5)), Call(PUNCH, b(9) + 1, b(1))],
        ),
        c(
            "everything, huge length",
            dense(40),
            vec![Call(PUNCH, 0, 1 << 40)],
        ),
        c(
            "the single indirect tree exactly",
            dense(dind + 2),
            vec![Call(PUNCH, b(ind), b(p))],
        ),
        c(
            "the single indirect tree but its last block",
            dense(dind + 2),
            vec![Call(PUNCH, b(ind), b(p - 1))],
        ),
        c(
            "from direct blocks into the single indirect tree",
            dense(dind + 2),
            vec![Call(PUNCH, b(5) + 7, b(20))],
        ),
        c(
            "the double indirect tree's first child exactly",
            (dind..dind + p + 5).collect(),
            vec![Call(PUNCH, b(dind), b(p))],
        ),
        c(
            "all data of the double indirect tree",
            (dind..dind + p + 5).collect(),
            vec![Call(PUNCH, b(dind), b(p + 5))],
        ),
        c(
            // Both children stay, one all zeros until the write fills it.
            "across two double indirect children, refilled",
            (dind..dind + p + 5).collect(),
            vec![
                Call(PUNCH, b(dind + 3), b(p)),
                Write(dind + 4),
                Write(dind + p + 1),
                Call(PUNCH, b(dind + 1), b(p + 1) - 1),
            ],
        ),
        c(
            "the triple indirect tree",
            vec![tind, tind + 1, tind + p, tind + p * p],
            vec![
                Call(PUNCH, b(tind + 1), b(p)),
                Call(PUNCH, b(tind), b(p * p + 1)),
            ],
        ),
        c(
            "from 0 across every tree",
            vec![0, 13, dind + 1, tind, tind + 1, tind + p, tind + p * p],
            vec![Call(PUNCH, 100, b(tind + p * p + 1))],
        ),
        c(
            "modes the kernel refuses on block-mapped files",
            dense(40),
            vec![
                Call(0, 0, b(4)),
                Call(0, b(40), b(4)),
                Call(KEEP, 0, b(4)),
                Call(libc::FALLOC_FL_ZERO_RANGE, b(2), b(3)),
                Call(libc::FALLOC_FL_ZERO_RANGE | KEEP, b(2), b(3)),
                Call(libc::FALLOC_FL_COLLAPSE_RANGE, b(2), b(3)),
                Call(libc::FALLOC_FL_INSERT_RANGE, b(2), b(3)),
                Call(libc::FALLOC_FL_PUNCH_HOLE, b(2), b(3)),
                Call(0x80, b(2), b(3)), // FALLOC_FL_WRITE_ZEROES (6.17)
            ],
        ),
        c(
            "lengths and offsets the VFS judges",
            dense(40),
            vec![
                Call(PUNCH, b(2), 0),
                Call(PUNCH, -1, 10),
                Call(PUNCH, 1 << 40, 10),
                // Past the kernel driver's s_maxbytes (2 TiB): EFBIG, which
                // over FUSE only the daemon can say.
                Call(PUNCH, 1 << 44, 10),
                Call(PUNCH, i64::MAX - 5, 10),
            ],
        ),
    ]
}

/// What a case observed: per step the result, size and `st_blocks`, and
/// whether mtime moved; at the end the bytes of every block it wrote, with
/// a neighbour on each side.
#[derive(Debug, PartialEq)]
struct Seen {
    steps: Vec<(Result<(), i32>, u64, u64, bool)>,
    bytes: Vec<(u64, Vec<u8>)>,
}

fn write_block(f: &File, bs: u64, n: u64) {
    f.write_all_at(&pat(n * bs, bs as usize, SEED), n * bs)
        .unwrap();
}

/// Sleep until CLOCK_REALTIME_COARSE, the clock the kernel's driver stamps
/// times from, is past `sec.nsec`.
fn wait_for_coarse_clock_past(sec: i64, nsec: i64) {
    loop {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
        if (now.tv_sec, now.tv_nsec) > (sec, nsec) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Run `case` as file `name` under `dir`.
fn run(dir: &Path, bs: u64, name: &str, case: &Case) -> Seen {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(name))
        .unwrap();
    for &n in &case.blocks {
        write_block(&f, bs, n);
    }
    if let Some(s) = case.size {
        f.set_len(s).unwrap();
    }
    f.sync_all().unwrap();
    let mut steps = Vec::new();
    let mut touched: Vec<u64> = case.blocks.clone();
    for &step in &case.steps {
        let before = f.metadata().unwrap();
        // mtime has nanoseconds on both sides (256-byte inodes), but the
        // kernel's driver stamps it from the coarse clock, which moves once
        // a tick and, on an idle tickless CPU, can lag a 5 ms pause (seen
        // in CI): wait until that clock has passed the time we compare.
        wait_for_coarse_clock_past(before.mtime(), before.mtime_nsec());
        let r = match step {
            Step::Call(mode, off, len) => fallocate(&f, mode, off, len),
            Step::Write(n) => {
                write_block(&f, bs, n);
                f.sync_all().unwrap();
                touched.push(n);
                Ok(())
            }
        };
        let st = f.metadata().unwrap();
        let moved = (st.mtime(), st.mtime_nsec()) != (before.mtime(), before.mtime_nsec());
        steps.push((r, st.size(), st.blocks(), moved));
    }
    touched.sort_unstable();
    touched.dedup();
    drop_cache(&f);
    let size = f.metadata().unwrap().size();
    let mut bytes = Vec::new();
    for n in touched {
        let from = (n * bs).saturating_sub(bs);
        let to = ((n + 2) * bs).min(size);
        if from < to {
            bytes.push((from, read_at(&f, from, (to - from) as usize)));
        }
    }
    Seen { steps, bytes }
}

/// The bytes a case must leave, worked out without either driver: the
/// pattern where blocks were written, zeros where a successful punch went
/// (up to the size: past it nothing is seen).
fn model(bs: u64, case: &Case, seen: &Seen) -> Vec<(u64, Vec<u8>)> {
    let size = seen.steps.last().map_or(0, |s| s.1);
    let mut out = Vec::new();
    for (from, got) in &seen.bytes {
        let mut want = vec![0u8; got.len()];
        // Replay the case on these bytes.
        let apply_write = |want: &mut Vec<u8>, n: u64| {
            let (lo, hi) = (n * bs, (n + 1) * bs);
            for (k, w) in want.iter_mut().enumerate() {
                let pos = from + k as u64;
                if pos >= lo && pos < hi && pos < size {
                    *w = pat_byte(pos, SEED);
                }
            }
        };
        for &n in &case.blocks {
            apply_write(&mut want, n);
        }
        for (k, &step) in case.steps.iter().enumerate() {
            match step {
                Step::Write(n) => apply_write(&mut want, n),
                Step::Call(_, off, len) if seen.steps[k].0.is_ok() => {
                    let end = (off as u64).saturating_add(len as u64).min(size);
                    for (j, w) in want.iter_mut().enumerate() {
                        let pos = from + j as u64;
                        if pos >= off as u64 && pos < end {
                            *w = 0;
                        }
                    }
                }
                Step::Call(..) => {}
            }
        }
        out.push((*from, want));
    }
    out
}

/// Every case of the table on both drivers, at 1 KiB and 4 KiB blocks.
#[test]
fn punch_matches_the_kernel_case_by_case() {
    let _serial = setup();
    for bs in [1024u64, 4096] {
        let img = mkfs_ext2(64 * 1024, bs as u32, &[]);
        let theirs = copy_image(&img, "kernel.img");
        let m = mount(&img.path, "");
        let k = KernelMount::new(&theirs);
        for (n, case) in cases(bs).iter().enumerate() {
            let name = format!("case{n}");
            let ours = run(m.path(), bs, &name, case);
            let kernel = run(k.path(), bs, &name, case);
            let what = format!("{} (bs {bs})", case.name);
            for (s, (o, t)) in ours.steps.iter().zip(&kernel.steps).enumerate() {
                assert_eq!(
                    (o.0, o.1, o.2),
                    (t.0, t.1, t.2),
                    "{what}, step {s} {:?}: (result, size, st_blocks) ours vs kernel",
                    case.steps[s]
                );
                if o.0.is_ok() {
                    assert!(
                        o.3 && t.3,
                        "{what}, step {s}: mtime moved on both (ours {}, kernel {})",
                        o.3,
                        t.3
                    );
                } else {
                    // A failed call changes nothing here (DIFFERENCES.md,
                    // mtime-after-failed-fallocate: the kernel's moves).
                    assert!(!o.3, "{what}, step {s}: our mtime moved on a failure");
                }
            }
            assert!(ours.bytes == kernel.bytes, "{what}: bytes differ");
            assert!(
                ours.bytes == model(bs, case, &ours),
                "{what}: bytes differ from the model"
            );
        }
        // The table does punch: blocks went on both sides alike (checked
        // above), and here they went at all: 40 data blocks and the single
        // indirect block, less 3.
        let st = std::fs::metadata(m.p("case0")).unwrap();
        assert_eq!(st.blocks(), 38 * bs / 512);
        m.unmount_and_check();
        k.unmount();
        fsck_strict(&img.path);
        fsck_strict(&theirs);
    }
}

/// The errnos of the VFS (identical on both, the kernel's FUSE client
/// answers them before the daemon is asked), for descriptors of every kind.
#[test]
fn errnos_for_other_kinds_of_descriptors_match_the_kernel() {
    let _serial = setup();
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let theirs = copy_image(&img, "kernel.img");
    let m = mount(&img.path, "");
    let k = KernelMount::new(&theirs);
    let probe = |dir: &Path| -> Vec<Result<(), i32>> {
        std::fs::create_dir(dir.join("d")).unwrap();
        std::fs::write(dir.join("f"), vec![1u8; 5000]).unwrap();
        mknod(&dir.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        mknod(
            &dir.join("null"),
            libc::S_IFCHR | 0o644,
            libc::makedev(1, 3),
        )
        .unwrap();
        let d = File::open(dir.join("d")).unwrap();
        let ro = File::open(dir.join("f")).unwrap();
        let fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("fifo"))
            .unwrap();
        let null = OpenOptions::new()
            .write(true)
            .open(dir.join("null"))
            .unwrap();
        let app = OpenOptions::new().append(true).open(dir.join("f")).unwrap();
        vec![
            fallocate(&d, PUNCH, 0, 10),
            fallocate(&d, 0, 0, 10),
            fallocate(&ro, PUNCH, 0, 10),
            fallocate(&fifo, PUNCH, 0, 10),
            fallocate(&null, PUNCH, 0, 10),
            // O_APPEND is no bar (only the append-only inode flag is).
            fallocate(&app, PUNCH, 0, 2048),
        ]
    };
    let ours = probe(m.path());
    let kernel = probe(k.path());
    assert_eq!(ours, kernel);
    use libc::{EBADF, ENODEV, ESPIPE};
    assert_eq!(
        ours,
        vec![
            Err(EBADF),
            Err(EBADF),
            Err(EBADF),
            Err(ESPIPE),
            Err(ENODEV),
            Ok(())
        ]
    );
    assert_eq!(std::fs::metadata(m.p("f")).unwrap().blocks(), 6);
    m.unmount_and_check();
    k.unmount();
    fsck_strict(&img.path);
    fsck_strict(&theirs);
}

/// The blocks a file of this test holds: dense through the single and into
/// the double indirect tree, and a run in the triple indirect tree.
fn interop_blocks(bs: u64) -> Vec<u64> {
    let (_, dind, tind, p) = levels(bs);
    (0..dind + p + 20)
        .chain(tind..tind + p + 20)
        .chain([tind + p * p + 3])
        .collect()
}

/// Check `blocks` of `f` read as the pattern, except inside `holes`
/// (byte ranges), which read as zeros.
fn check_file(f: &File, bs: u64, blocks: &[u64], holes: &[(u64, u64)]) {
    drop_cache(f);
    for &n in blocks {
        let got = read_at(f, n * bs, bs as usize);
        for (k, &g) in got.iter().enumerate() {
            let pos = n * bs + k as u64;
            let want = if holes.iter().any(|&(a, b)| pos >= a && pos < b) {
                0
            } else {
                pat_byte(pos, SEED)
            };
            assert_eq!(g, want, "byte {pos} (block {n})");
        }
    }
}

/// A file punched by ext2mfr reads right under the kernel's driver, and
/// one punched there reads right here; writes fill the punched holes again
/// on either side (also under the indirect blocks left all zeros).
#[test]
fn punched_files_cross_between_the_drivers() {
    let _serial = setup();
    let bs = 1024u64;
    let (ind, dind, tind, p) = levels(bs);
    let img = mkfs_ext2(32 * 1024, bs as u32, &[]);
    let blocks = interop_blocks(bs);
    let mut holes = vec![
        (ind * bs + 300, (dind + 3) * bs + 17),
        ((dind + p - 1) * bs + 5, (dind + p + 2) * bs),
        ((tind + 2) * bs - 1, (tind + p + 1) * bs + 1),
    ];

    // Punched here.
    let m = mount(&img.path, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(m.p("f"))
        .unwrap();
    for &n in &blocks {
        write_block(&f, bs, n);
    }
    for &(a, b) in &holes {
        fallocate(&f, PUNCH, a as i64, (b - a) as i64).unwrap();
    }
    check_file(&f, bs, &blocks, &holes);
    let ours_blocks = f.metadata().unwrap().blocks();
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);

    // Read, filled in part and punched again under the kernel's driver.
    let k = KernelMount::new(&img.path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(k.path().join("f"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().blocks(), ours_blocks);
    check_file(&f, bs, &blocks, &holes);
    write_block(&f, bs, dind + 1); // under the kept, emptied child
    write_block(&f, bs, tind + 5);
    holes = vec![
        (ind * bs + 300, (dind + 1) * bs),
        ((dind + 2) * bs, (dind + 3) * bs + 17),
        ((dind + p - 1) * bs + 5, (dind + p + 2) * bs),
        ((tind + 2) * bs - 1, (tind + 5) * bs),
        ((tind + 6) * bs, (tind + p + 1) * bs + 1),
        (5 * bs + 1, 6 * bs - 1),
    ];
    fallocate(&f, PUNCH, 5 * bs as i64 + 1, bs as i64 - 2).unwrap();
    f.sync_all().unwrap();
    let kernel_blocks = f.metadata().unwrap().blocks();
    drop(f);
    k.unmount();
    fsck_strict(&img.path);

    // And here again: what the kernel wrote and punched.
    let m = mount(&img.path, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("f"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().blocks(), kernel_blocks);
    check_file(&f, bs, &blocks, &holes);
    // Punching everything leaves only the indirect blocks the range does
    // not wholly cover, as the kernel does: the triple indirect block, its
    // second child and that child's first (the file ends inside them).
    let size = f.metadata().unwrap().size();
    fallocate(&f, PUNCH, 0, size as i64).unwrap();
    check_file(&f, bs, &blocks, &[(0, u64::MAX)]);
    assert_eq!(f.metadata().unwrap().blocks(), 3 * bs / 512);
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);
    let k = KernelMount::new(&img.path);
    let f = File::open(k.path().join("f")).unwrap();
    check_file(&f, bs, &blocks, &[(0, u64::MAX)]);
    drop(f);
    k.unmount();
    fsck_strict(&img.path);
}

/// Punches across double and triple indirect trees on a cold, small cache
/// (nothing the walk reads is conveniently cached), under the default
/// estimate, without page recycling and without peeking: no request may
/// go beyond its reserve or fault (debug builds make the pool strict).
#[test]
fn punch_on_a_cold_cache_stays_within_its_reserve() {
    let _serial = setup();
    let bs = 1024u64;
    let (ind, dind, tind, p) = levels(bs);
    let img = mkfs_ext2(32 * 1024, bs as u32, &[]);
    let blocks = interop_blocks(bs);
    let holes = [
        // Single into double indirect, both edges partial.
        (ind * bs + 5, (dind + p + 3) * bs + 9),
        // The rest of the double indirect tree into the triple's.
        ((dind + p + 10) * bs + 1, (tind + 10) * bs - 1),
        // The triple indirect tree's blocks, on past the end.
        ((tind + p) * bs + 77, (tind + p * p + 9) * bs),
    ];
    for opts in ["cache=1M", "cache=1M,recycle=off", "cache=1M,peek=off"] {
        // A fresh file each time, written and then evicted by a remount.
        let m = mount(&img.path, "");
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.p("f"))
            .unwrap();
        for &n in &blocks {
            write_block(&f, bs, n);
        }
        drop(f);
        m.unmount();
        let m = mount(&img.path, opts);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.p("f"))
            .unwrap();
        for &(a, b) in &holes {
            fallocate(&f, PUNCH, a as i64, (b - a) as i64).unwrap();
        }
        let c = counters(m.path());
        assert_eq!(
            (
                c["ama"]["under_allocations"].as_u64(),
                c["requests"]["faulted"].as_u64()
            ),
            (Some(0), Some(0)),
            "{opts}: under-allocations or faults: {}",
            c["ama"]["by_op"]
        );
        // The punches were served as fallocate requests, and read blocks
        // the cache did not hold (else this proves nothing).
        let fa = &c["ama"]["by_op"]["fallocate"];
        assert!(
            fa["requests"].as_u64() >= Some(3) && fa["used_pages"].as_u64() > Some(0),
            "{opts}: fallocate counters: {fa}"
        );
        check_file(&f, bs, &blocks, &holes);
        drop(f);
        m.unmount_and_check();
    }
    fsck_strict(&img.path);
}

/// ext4 never punches the last block a block map holds, and answers
/// success; the kernel's FUSE client then zeroes the whole asked range in
/// its page cache. The daemon invalidates what it kept, so a read after
/// the punch sees the data the kernel's driver keeps too, over every
/// transport (found by fs-diff, seed 7 at 1 KiB blocks).
#[test]
fn punch_past_the_last_mappable_block_keeps_reads_right() {
    let _serial = setup();
    // ext2's largest file at 1 KiB blocks, and the block map's reach.
    const MAX: u64 = 17_247_252_480;
    const MAX_END: u64 = MAX - 1024;
    let img = mkfs_ext2(65536, 1024, &[]);
    let theirs = copy_image(&img, "kernel.img");
    let script = |dir: &Path| -> (Result<(), i32>, usize, usize) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("big"))
            .unwrap();
        f.write_all_at(&[b'X'; 675], MAX - 675).unwrap();
        let mut before = vec![0u8; 1024];
        f.read_exact_at(&mut before, MAX_END).unwrap(); // now cached
        let r = fallocate(&f, PUNCH, (MAX_END - 1000) as i64, 57_716);
        let mut after = vec![0u8; 1024];
        f.read_exact_at(&mut after, MAX_END).unwrap();
        let xs = |b: &[u8]| b.iter().filter(|&&c| c == b'X').count();
        (r, xs(&before), xs(&after))
    };
    let k = KernelMount::new(&theirs);
    let kernel = script(k.path());
    k.unmount();
    assert_eq!(
        kernel,
        (Ok(()), 675, 675),
        "the kernel keeps the last block"
    );
    let mut transports = vec!["", "transport=dev-own"];
    if std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring")
        .is_ok_and(|v| v.trim() == "Y")
    {
        transports.push("transport=uring");
    }
    for transport in transports {
        let img = mkfs_ext2(65536, 1024, &[]);
        let m = mount(&img.path, transport);
        assert_eq!(script(m.path()), kernel, "{transport:?}");
        m.unmount_and_check();
        fsck_strict(&img.path);
    }
}
