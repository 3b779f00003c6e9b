//! ext2mfr against the kernel's own ext2 driver, on identical images: the
//! same calls give the same results and errnos, and what one side writes
//! the other reads. Regressions of issue 13 (device nodes freeing blocks,
//! nanosecond and post-2038 times, chown(-1, -1), the largest file size,
//! RENAME_EXCHANGE).

mod common;
use common::*;

use std::fmt::Debug;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// A call's result: its value, or the errno it failed with (the form the
/// two sides' results are compared in).
type Res = Result<i64, i32>;

fn res(r: std::io::Result<()>) -> Res {
    r.map(|()| 0).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// (atime, mtime, ctime) in (seconds, nanoseconds).
fn times(p: &Path) -> [(i64, i64); 3] {
    let m = std::fs::symlink_metadata(p).unwrap();
    [
        (m.atime(), m.atime_nsec()),
        (m.mtime(), m.mtime_nsec()),
        (m.ctime(), m.ctime_nsec()),
    ]
}

/// Birth time (statx), where the file system reports one.
fn btime(p: &Path) -> Option<(i64, u32)> {
    // SAFETY: statx fills the zeroed struct; a valid C string.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BTIME,
            &mut sx,
        )
    };
    assert_eq!(r, 0, "statx {}", p.display());
    (sx.stx_mask & libc::STATX_BTIME != 0).then_some((sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec))
}

/// Run `f` on an ext2mfr mount and on a kernel mount of two identical
/// fresh mkfs.ext2 images; check both images with e2fsck; return what `f`
/// returned on each side (ext2mfr's first).
fn on_both<T>(bs: u32, mkfs_extra: &[&str], f: impl Fn(&Path) -> T) -> (T, T) {
    let ours = mkfs_ext2(64 * 1024, bs, mkfs_extra);
    let theirs = tempfile::tempdir().unwrap();
    let theirs_img = theirs.path().join("k.img");
    std::fs::copy(&ours.path, &theirs_img).unwrap();

    let m = Mount::new(&ours.path, "");
    let a = f(m.path());
    m.unmount_and_check();

    let k = KernelMount::new(&theirs_img);
    let b = f(k.path());
    k.unmount();
    fsck_clean(&theirs_img);
    (a, b)
}

fn assert_same<T: PartialEq + Debug>(what: &str, (ours, kernel): (T, T)) {
    assert_eq!(
        ours, kernel,
        "{what}: ext2mfr (left) differs from the kernel's ext2 (right)"
    );
}

// ---------------------------------------------------------------------------
// Device nodes, FIFOs and sockets own no blocks.
// ---------------------------------------------------------------------------

/// Device numbers whose old 16-bit encoding (major << 8 | minor), taken as
/// a block number, names blocks in use at every block size: the block
/// bitmap, inode bitmap and inode table of group 0 sit just past the
/// descriptors, i.e. around blocks 2..600 at 1 KiB, 1..300 at 4 KiB.
/// And large numbers in the new encoding, which are not block numbers at all.
const DEVICES: &[(u32, u32)] = &[
    (1, 2),
    (1, 3),
    (1, 5),
    (2, 2),
    (0, 3),
    (1, 0),
    (0, 0),
    (4095, 1_048_575),
    (259, 7),
    (8, 300),
    (1000, 100_000),
];

#[test]
fn special_files_own_no_blocks_and_are_freed_cleanly() {
    for bs in [1024u32, 2048, 4096] {
        let img = mkfs_ext2(16 * 1024, bs, &[]);
        let m = Mount::new(&img.path, "");
        for (k, &(major, minor)) in DEVICES.iter().enumerate() {
            for (tag, fmt) in [
                ("b", libc::S_IFBLK),
                ("c", libc::S_IFCHR),
                ("p", libc::S_IFIFO),
                ("s", libc::S_IFSOCK),
            ] {
                let p = m.p(&format!("{tag}{k}"));
                assert_eq!(
                    res(mknod(&p, fmt | 0o644, libc::makedev(major, minor))),
                    Ok(0),
                    "mknod {}",
                    p.display()
                );
                let md = std::fs::symlink_metadata(&p).unwrap();
                assert_eq!(md.blocks(), 0);
                if fmt == libc::S_IFBLK || fmt == libc::S_IFCHR {
                    assert_eq!(
                        md.rdev(),
                        libc::makedev(major, minor),
                        "rdev of {}",
                        p.display()
                    );
                }
            }
        }
        // Deleting them, and renaming a file over one, frees nothing else.
        std::fs::write(m.p("over"), b"x").unwrap();
        std::fs::rename(m.p("over"), m.p("b0")).unwrap();
        for k in 0..DEVICES.len() {
            for tag in ["b", "c", "p", "s"] {
                let p = m.p(&format!("{tag}{k}"));
                std::fs::remove_file(&p).unwrap();
            }
        }
        // A FIFO unlinked while open goes at its last close (the forget
        // path); one left open at unmount at the unmount.
        let fifo = m.p("fifo");
        assert_eq!(res(mknod(&fifo, libc::S_IFIFO | 0o600, 0)), Ok(0));
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        std::fs::remove_file(&fifo).unwrap();
        drop(held);
        // Had a device number been freed as a block, these writes would be
        // handed metadata blocks and e2fsck would see them twice.
        for i in 0..64 {
            std::fs::write(m.p(&format!("f{i}")), vec![i as u8; 3 * bs as usize]).unwrap();
        }
        m.unmount_and_check();
    }
}

#[test]
fn device_numbers_read_the_same_on_both_sides() {
    // ext2mfr writes, the kernel reads; then the kernel writes and ext2mfr reads.
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let m = Mount::new(&img.path, "");
    for (k, &(ma, mi)) in DEVICES.iter().enumerate() {
        assert_eq!(
            res(mknod(
                &m.p(&format!("ours{k}")),
                libc::S_IFCHR | 0o600,
                libc::makedev(ma, mi)
            )),
            Ok(0)
        );
    }
    m.unmount_and_check();
    let k = KernelMount::new(&img.path);
    for (n, &(ma, mi)) in DEVICES.iter().enumerate() {
        let md = std::fs::symlink_metadata(k.path().join(format!("ours{n}"))).unwrap();
        assert_eq!(md.rdev(), libc::makedev(ma, mi), "kernel reads ours{n}");
        assert_eq!(
            res(mknod(
                &k.path().join(format!("theirs{n}")),
                libc::S_IFBLK | 0o600,
                libc::makedev(ma, mi)
            )),
            Ok(0)
        );
    }
    k.unmount();
    fsck_clean(&img.path);
    let m = Mount::new(&img.path, "");
    for (n, &(ma, mi)) in DEVICES.iter().enumerate() {
        let md = std::fs::symlink_metadata(m.p(&format!("theirs{n}"))).unwrap();
        assert_eq!(md.rdev(), libc::makedev(ma, mi), "ext2mfr reads theirs{n}");
        std::fs::remove_file(m.p(&format!("theirs{n}"))).unwrap();
        std::fs::remove_file(m.p(&format!("ours{n}"))).unwrap();
    }
    m.unmount_and_check();
}

// ---------------------------------------------------------------------------
// Times: nanoseconds, before 1970, after 2038, creation time.
// ---------------------------------------------------------------------------

/// (atime, mtime) pairs to set, in (seconds, nanoseconds).
const TIMES: &[((i64, i64), (i64, i64))] = &[
    ((981_173_106, 123_456_789), (981_173_106, 987_654_321)), // 2001-02-03
    ((4_102_444_800, 0), (4_102_444_800, 1)),                 // 2100-01-01
    ((-1, 999_999_999), (-86_400, 5)),                        // before 1970
    ((2_147_483_648, 0), (17_179_869_183, 0)),                // 2038 + 1 s, beyond 2446
    ((-2_147_483_649, 0), (-2_147_483_648, 7)),               // before 1901
];

fn set_and_read_times(root: &Path) -> Vec<[(i64, i64); 2]> {
    TIMES
        .iter()
        .enumerate()
        .map(|(k, &(a, m))| {
            let p = root.join(format!("t{k}"));
            std::fs::write(&p, b"t").unwrap();
            assert_eq!(res(utimens(&p, a, m)), Ok(0));
            let t = times(&p);
            [t[0], t[1]]
        })
        .collect()
}

#[test]
fn times_with_nanoseconds_and_past_2038_match_the_kernel() {
    // 256-byte inodes (the default) keep nanoseconds and epoch bits; 128-byte
    // inodes seconds, clamped to 1901..2038. Both as the kernel does.
    for extra in [&[][..], &["-I", "128"][..]] {
        assert_same(
            &format!("times set and read back (mkfs {extra:?})"),
            on_both(1024, extra, set_and_read_times),
        );
    }
}

#[test]
fn times_survive_a_remount_and_cross_to_the_kernel_and_back() {
    let img = mkfs_ext2(16 * 1024, 4096, &[]);
    let m = Mount::new(&img.path, "");
    let start = now();
    let set = set_and_read_times(m.path());
    let born = btime(&m.p("t0"));
    m.unmount_and_check();

    let k = KernelMount::new(&img.path);
    for (k_, want) in set.iter().enumerate() {
        let p = k.path().join(format!("t{k_}"));
        assert_eq!(&times(&p)[..2], &want[..], "the kernel reads t{k_}");
    }
    // The creation time ext2mfr wrote at create (the kernel reports it).
    let b = btime(&k.path().join("t0")).expect("kernel's ext2 reports a birth time");
    assert!(
        b.0 >= start - 1 && b.0 <= start + 60,
        "birth time {b:?}, start {start}"
    );
    // Through FUSE no birth time reaches statx (DIFFERENCES.md): the day
    // one does, it must be the kernel's.
    assert_eq!(
        born, None,
        "ext2mfr reports a birth time now: compare it with {b:?}"
    );
    // The kernel writes nanoseconds and a post-2038 time.
    let p = k.path().join("kernel");
    std::fs::write(&p, b"k").unwrap();
    assert_eq!(
        res(utimens(
            &p,
            (1_000_000_000, 111),
            (4_200_000_000, 222_333_444)
        )),
        Ok(0)
    );
    let kernel_times = times(&p);
    k.unmount();
    fsck_clean(&img.path);

    let m = Mount::new(&img.path, "");
    assert_eq!(
        times(&m.p("kernel")),
        kernel_times,
        "ext2mfr reads the kernel's times"
    );
    for (k_, want) in set.iter().enumerate() {
        assert_eq!(
            &times(&m.p(&format!("t{k_}")))[..2],
            &want[..],
            "after a remount"
        );
    }
    // Changing the times later does not change the creation time.
    assert_eq!(res(utimens(&m.p("t0"), (5, 5), (6, 6))), Ok(0));
    m.unmount_and_check();
    let k = KernelMount::new(&img.path);
    assert_eq!(
        btime(&k.path().join("t0")),
        Some(b),
        "creation time unchanged"
    );
    k.unmount();
}

// ---------------------------------------------------------------------------
// Set-id bits, the largest file size, RENAME_EXCHANGE.
// ---------------------------------------------------------------------------

#[test]
fn chown_to_nobody_change_clears_set_id_bits_as_the_kernel_does() {
    assert_same(
        "mode after chown(f, -1, -1)",
        on_both(1024, &[], |root| {
            [0o4755, 0o2755, 0o2745, 0o6711, 0o755]
                .iter()
                .enumerate()
                .map(|(k, &mode)| {
                    let p = root.join(format!("s{k}"));
                    std::fs::write(&p, b"#!/bin/sh\n").unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                    assert_eq!(res(chown(&p, u32::MAX, u32::MAX)), Ok(0));
                    std::fs::metadata(&p).unwrap().mode() & 0o7777
                })
                .collect::<Vec<_>>()
        }),
    );
}

#[test]
fn largest_file_size_and_writes_across_it_match_the_kernel() {
    for bs in [1024u32, 2048, 4096] {
        assert_same(
            &format!("the largest file size at {bs}-byte blocks"),
            on_both(bs, &[], |root| {
                let p = root.join("big");
                std::fs::write(&p, b"").unwrap();
                // Find the limit: the largest size truncate accepts.
                let (mut lo, mut hi) = (0u64, 1u64 << 50);
                while lo + 1 < hi {
                    let mid = lo + (hi - lo) / 2;
                    if truncate(&p, mid).is_ok() {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let max = lo;
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                let across = f
                    .write_at(&[7u8; 100], max - 10)
                    .map_err(|e| e.raw_os_error());
                let at = f.write_at(&[7u8; 1], max).map_err(|e| e.raw_os_error());
                let past = f
                    .write_at(&[7u8; 1], max + 4096)
                    .map_err(|e| e.raw_os_error());
                drop(f);
                let size = std::fs::metadata(&p).unwrap().len();
                // Give the space back before the image is checked.
                assert_eq!(res(truncate(&p, 0)), Ok(0));
                (max, res(truncate(&p, max + 1)), across, at, past, size)
            }),
        );
    }
}

#[test]
fn rename_exchange_matches_the_kernel() {
    const EXCHANGE: libc::c_uint = libc::RENAME_EXCHANGE;
    assert_same(
        "RENAME_EXCHANGE",
        on_both(1024, &[], |root| {
            let p = |s: &str| root.join(s);
            std::fs::create_dir_all(p("a/sub")).unwrap();
            std::fs::create_dir_all(p("b")).unwrap();
            std::fs::write(p("f"), b"file f").unwrap();
            std::fs::write(p("a/g"), b"file g").unwrap();
            let out = vec![
                // Two files, across directories.
                res(rename2(&p("f"), &p("a/g"), EXCHANGE)),
                // A directory and a file: "f" becomes the directory.
                res(rename2(&p("a/sub"), &p("f"), EXCHANGE)),
                // Two directories.
                res(rename2(&p("a"), &p("b"), EXCHANGE)),
                // A directory with a name below itself.
                res(rename2(&p("b"), &p("b/sub"), EXCHANGE)),
                // No target; onto itself; with RENAME_NOREPLACE.
                res(rename2(&p("f"), &p("missing"), EXCHANGE)),
                res(rename2(&p("f"), &p("f"), EXCHANGE)),
                res(rename2(&p("f"), &p("b"), EXCHANGE | libc::RENAME_NOREPLACE)),
                // A directory into another directory's place, deeper.
                res(rename2(&p("f"), &p("b/g"), EXCHANGE)),
            ];
            // The tree and link counts after the swaps.
            let mut seen = Vec::new();
            for name in ["a", "b", "f", "a/g", "b/g", "a/sub", "b/sub"] {
                let q = p(name);
                seen.push(match std::fs::symlink_metadata(&q) {
                    Ok(m) if m.is_dir() => format!("{name}: dir, {} links", m.nlink()),
                    Ok(m) => format!(
                        "{name}: {:?}, {} links",
                        std::fs::read(&q).unwrap(),
                        m.nlink()
                    ),
                    Err(e) => format!("{name}: {e}"),
                });
            }
            seen.push(format!(
                "root: {} links",
                std::fs::metadata(root).unwrap().nlink()
            ));
            (out, seen)
        }),
    );
}
