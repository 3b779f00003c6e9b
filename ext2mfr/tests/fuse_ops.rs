//! Every operation of the daemon, driven through a real FUSE mount with
//! ordinary system calls. Each test ends with a clean unmount and a clean
//! `e2fsck -fn`.

mod common;
use common::*;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    symlink, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------- helpers

/// Tests in this file run one at a time. Running them in parallel threads
/// makes `umount` fail now and then with EBUSY: another test's fork (for
/// e2fsck, debugfs, the daemon) copies this process's descriptors, and until
/// that child calls exec it holds the files a finishing test just closed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take the test lock, and set a fixed umask so created modes are predictable.
fn setup() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    unsafe { libc::umask(0o022) };
    g
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn cs(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn cvt(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("error without errno: {e}")),
    }
}

macro_rules! assert_errno {
    ($e:expr, $errno:expr) => {{
        let got = errno_of($e);
        assert_eq!(
            got,
            $errno,
            "{}: expected '{}', got '{}'",
            stringify!($e),
            io::Error::from_raw_os_error($errno),
            io::Error::from_raw_os_error(got)
        );
    }};
}

fn mknod(p: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    cvt(unsafe { libc::mknod(cs(p).as_ptr(), mode as libc::mode_t, dev) })
}

fn rename2(a: &Path, b: &Path, flags: libc::c_uint) -> io::Result<()> {
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cs(a).as_ptr(),
            libc::AT_FDCWD,
            cs(b).as_ptr(),
            flags,
        )
    })
}

fn statfs(p: &Path) -> libc::statfs {
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statfs(cs(p).as_ptr(), &mut s) }).expect("statfs");
    s
}

/// utimensat with (seconds, nanoseconds) or UTIME_NOW / UTIME_OMIT in the nsec field.
fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as _,
        },
    ];
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, cs(p).as_ptr(), ts.as_ptr(), 0) })
}

fn truncate(p: &Path, len: u64) -> io::Result<()> {
    cvt(unsafe { libc::truncate(cs(p).as_ptr(), len as libc::off_t) })
}

fn access(p: &Path, mode: libc::c_int) -> io::Result<()> {
    cvt(unsafe { libc::access(cs(p).as_ptr(), mode) })
}

fn getxattr(p: &Path, name: &str, size: usize) -> io::Result<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; size];
    let r = unsafe { libc::getxattr(cs(p).as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(if size == 0 { 0 } else { r as usize });
    if size == 0 {
        buf = vec![0; r as usize]; // the size query: report the length as zeros
    }
    Ok(buf)
}

fn listxattr(p: &Path) -> io::Result<Vec<u8>> {
    let r = unsafe { libc::listxattr(cs(p).as_ptr(), std::ptr::null_mut(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; r as usize];
    let r = unsafe { libc::listxattr(cs(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn setxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    cvt(unsafe {
        libc::setxattr(
            cs(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    cvt(unsafe { libc::removexattr(cs(p).as_ptr(), n.as_ptr()) })
}

/// Drop the file's pages from the kernel page cache, so the next read asks
/// the daemon (FUSE pages are clean: writes go through to the daemon).
fn drop_cache(f: &File) {
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise");
}

/// (name, d_ino, d_type) of every entry, "." and ".." included, as getdents reports them.
fn raw_readdir(p: &Path) -> Vec<(Vec<u8>, u64, u8)> {
    let mut out = Vec::new();
    unsafe {
        let d = libc::opendir(cs(p).as_ptr());
        assert!(
            !d.is_null(),
            "opendir {}: {}",
            p.display(),
            io::Error::last_os_error()
        );
        loop {
            let e = libc::readdir64(d);
            if e.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_bytes()
                .to_vec();
            out.push((name, (*e).d_ino, (*e).d_type));
        }
        libc::closedir(d);
    }
    out
}

/// A position-dependent byte pattern (differs for every `seed`).
fn pat_byte(i: u64, seed: u64) -> u8 {
    let x = (i ^ seed.wrapping_mul(0x51_7CC1_B727_220A)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

fn pat(off: u64, len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|k| pat_byte(off + k, seed)).collect()
}

fn read_at(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off)
        .unwrap_or_else(|e| panic!("read {len} at {off}: {e}"));
    v
}

fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Check `len` bytes at `off` hold the pattern (in 1 MiB pieces).
fn check_pattern(f: &File, off: u64, len: u64, seed: u64) {
    let mut pos = off;
    while pos < off + len {
        let n = (off + len - pos).min(1 << 20) as usize;
        let got = read_at(f, pos, n);
        let want = pat(pos, n, seed);
        if got != want {
            let d = first_diff(&got, &want);
            panic!(
                "pattern mismatch at byte {} (got {:#x}, want {:#x})",
                pos + d as u64,
                got[d],
                want[d]
            );
        }
        pos += n as u64;
    }
}

fn check_zeros(f: &File, off: u64, len: usize) {
    let got = read_at(f, off, len);
    if let Some(i) = got.iter().position(|&b| b != 0) {
        panic!(
            "expected zeros at {off}..{}, byte {} is {:#x}",
            off + len as u64,
            off + i as u64,
            got[i]
        );
    }
}

/// Indirect blocks an ext2 block map needs for these data blocks (`p`
/// pointers per block): one per distinct indirect node on their paths.
fn meta_blocks(lblks: impl IntoIterator<Item = u64>, p: u64) -> u64 {
    let mut nodes = HashSet::new();
    for l in lblks {
        if l < 12 {
            continue;
        }
        let l1 = l - 12;
        if l1 < p {
            nodes.insert((1, 0, 0));
            continue;
        }
        let l2 = l1 - p;
        if l2 < p * p {
            nodes.insert((2, 0, 0));
            nodes.insert((2, 1, l2 / p));
            continue;
        }
        let l3 = l2 - p * p;
        nodes.insert((3, 0, 0));
        nodes.insert((3, 1, l3 / (p * p)));
        nodes.insert((3, 2, l3 / p));
    }
    nodes.len() as u64
}

/// `st_blocks` (512-byte sectors) of a file with no holes of `size` bytes.
fn dense_sectors(size: u64, bs: u64) -> u64 {
    let n = size.div_ceil(bs);
    (n + meta_blocks(0..n, bs / 4)) * (bs / 512)
}

fn debugfs(img: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(cmd)
        .arg(img)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn debugfs_w(img: &Path, cmd: &str) {
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(cmd)
        .arg(img)
        .output()
        .expect("run debugfs");
    let err = String::from_utf8_lossy(&out.stderr);
    // debugfs prints its banner on stderr and exits 0 even when a command fails.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "debugfs -w {cmd}: {err}"
    );
}

/// The inode number debugfs finds at `path` (following ".." entries on disk).
fn debugfs_ino(img: &Path, path: &str) -> u32 {
    let s = debugfs(img, &format!("stat {path}"));
    let rest = s
        .strip_prefix("Inode: ")
        .unwrap_or_else(|| panic!("debugfs stat {path}: {s}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// `e2fsck -fn` must not even ask a question: some findings (feature flags
/// on a revision 0 super block, for one) leave its exit status at 0.
fn fsck_strict(img: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .expect("run e2fsck");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.lines().any(|l| l.trim_end().ends_with("? no")),
        "e2fsck -fn has findings:\n{text}"
    );
}

fn dumpe2fs_h(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("run dumpe2fs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no '{name}' in dumpe2fs output"))
        .trim()
}

fn sb_bytes(img: &Path) -> Vec<u8> {
    let f = File::open(img).unwrap();
    read_at(&f, 1024, 1024)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// OR `bits` into the little-endian u32 at byte `off` of the image.
fn or_u32_at(img: &Path, off: u64, bits: u32) {
    let f = OpenOptions::new().read(true).write(true).open(img).unwrap();
    let v = u32::from_le_bytes(read_at(&f, off, 4).try_into().unwrap()) | bits;
    f.write_all_at(&v.to_le_bytes(), off).unwrap();
}

fn copy_image(img: &Image, name: &str) -> std::path::PathBuf {
    let p = img.dir.path().join(name);
    fs::copy(&img.path, &p).unwrap();
    p
}

/// Extra mount options for every mount in this file, from the environment:
/// `FUSE_OPS_OPTS=baseline cargo test -p ext2mfr --test fuse_ops` runs the
/// whole suite with recovery off.
fn with_extra(opts: &str) -> String {
    match std::env::var("FUSE_OPS_OPTS") {
        Ok(x) if !x.is_empty() && opts.is_empty() => x,
        Ok(x) if !x.is_empty() => format!("{opts},{x}"),
        _ => opts.to_string(),
    }
}

fn mount(img: &Path, opts: &str) -> Mount {
    Mount::new(img, &with_extra(opts))
}

fn try_mount(img: &Path, opts: &str) -> Result<Mount, String> {
    Mount::try_new(img, &with_extra(opts))
}

fn remount(m: Mount, img: &Path, opts: &str) -> Mount {
    m.unmount_and_check();
    fsck_strict(img);
    mount(img, opts)
}

fn names_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- attributes

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

// ---------------------------------------------------------------- truncate

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

// ---------------------------------------------------------------- symlinks, nodes

#[test]
fn symlinks_fast_slow_and_too_long() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let targets: Vec<(String, String)> = [1usize, 10, 59, 60, 61, 500, 1023]
        .iter()
        .map(|&n| {
            let t: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            (format!("l{n}"), t)
        })
        .collect();
    for (name, t) in &targets {
        symlink(t, m.p(name)).unwrap();
    }
    let check = |m: &Mount| {
        for (name, t) in &targets {
            assert_eq!(
                fs::read_link(m.p(name)).unwrap().as_os_str().as_bytes(),
                t.as_bytes()
            );
            let st = fs::symlink_metadata(m.p(name)).unwrap();
            assert!(st.file_type().is_symlink());
            assert_eq!(st.mode() & 0o777, 0o777);
            assert_eq!(st.size(), t.len() as u64);
            // Up to 59 bytes live in the inode; longer targets take a block.
            let want = if t.len() < 60 { 0 } else { 2 };
            assert_eq!(st.blocks(), want, "st_blocks of a {}-byte symlink", t.len());
        }
    };
    check(&m);
    // Following a link works through the kernel.
    fs::write(m.p("target"), b"T").unwrap();
    symlink("target", m.p("to_target")).unwrap();
    assert_eq!(fs::read(m.p("to_target")).unwrap(), b"T");
    symlink("/nonexistent/xyz", m.p("dangling")).unwrap();
    assert_errno!(fs::read(m.p("dangling")), libc::ENOENT);

    // A target must fit in one block (1023 bytes + NUL on 1 KiB blocks).
    let free = statfs(m.path());
    for n in [1024usize, 2000, 4095] {
        assert_errno!(symlink("x".repeat(n), m.p("toolong")), libc::ENAMETOOLONG);
    }
    assert_errno!(fs::symlink_metadata(m.p("toolong")), libc::ENOENT);
    let after = statfs(m.path());
    assert_eq!(
        (free.f_bfree, free.f_ffree),
        (after.f_bfree, after.f_ffree),
        "failed symlink leaked"
    );
    assert_errno!(symlink("x", m.p("l10")), libc::EEXIST);
    // readlink on something that is not a link.
    assert_errno!(fs::read_link(m.p("target")), libc::EINVAL);

    // Unlinking symlinks of both kinds frees them.
    fs::remove_file(m.p("l1")).unwrap();
    fs::remove_file(m.p("l500")).unwrap();
    let m = remount(m, &img.path, "");
    let targets: Vec<_> = targets
        .into_iter()
        .filter(|(n, _)| n != "l1" && n != "l500")
        .collect();
    for (name, t) in &targets {
        assert_eq!(
            fs::read_link(m.p(name)).unwrap().as_os_str().as_bytes(),
            t.as_bytes()
        );
    }
    m.unmount_and_check();
    fsck_strict(&img.path);
    for (name, t) in &targets {
        let s = debugfs(&img.path, &format!("stat /{name}"));
        assert!(s.contains(&format!("Size: {}", t.len())), "{s}");
    }
}

#[test]
fn mknod_every_kind() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let devs: [(&str, u32, u32, u32); 5] = [
        ("chr", libc::S_IFCHR, 1, 3),
        ("blk", libc::S_IFBLK, 8, 1),
        ("chr_big_major", libc::S_IFCHR, 259, 7),
        ("blk_big_minor", libc::S_IFBLK, 4, 300),
        ("chr_huge", libc::S_IFCHR, 4000, 1_000_000),
    ];
    mknod(&m.p("reg"), libc::S_IFREG | 0o600, 0).unwrap();
    mknod(&m.p("fifo"), libc::S_IFIFO | 0o640, 0).unwrap();
    mknod(&m.p("sock"), libc::S_IFSOCK | 0o644, 0).unwrap();
    for (name, kind, ma, mi) in devs {
        mknod(&m.p(name), kind | 0o600, libc::makedev(ma, mi)).unwrap();
    }
    fs::create_dir(m.p("dir")).unwrap();
    symlink("reg", m.p("sym")).unwrap();

    let check = |m: &Mount| {
        let st = fs::metadata(m.p("reg")).unwrap();
        assert!(st.file_type().is_file());
        assert_eq!((st.mode() & 0o7777, st.size(), st.blocks()), (0o600, 0, 0));
        let st = fs::metadata(m.p("fifo")).unwrap();
        assert!(st.file_type().is_fifo());
        assert_eq!(st.mode() & 0o7777, 0o640);
        assert!(fs::metadata(m.p("sock")).unwrap().file_type().is_socket());
        for (name, kind, ma, mi) in devs {
            let st = fs::metadata(m.p(name)).unwrap();
            assert_eq!(st.mode() & libc::S_IFMT, kind, "{name}");
            let rdev = st.rdev();
            assert_eq!((libc::major(rdev), libc::minor(rdev)), (ma, mi), "{name}");
            assert_eq!(st.size(), 0);
        }
        // readdir reports each entry's type.
        let types: HashMap<String, u8> = raw_readdir(m.path())
            .into_iter()
            .map(|(n, _, t)| (String::from_utf8(n).unwrap(), t))
            .collect();
        for (name, t) in [
            ("reg", libc::DT_REG),
            ("fifo", libc::DT_FIFO),
            ("sock", libc::DT_SOCK),
            ("chr", libc::DT_CHR),
            ("blk", libc::DT_BLK),
            ("dir", libc::DT_DIR),
            ("sym", libc::DT_LNK),
            ("lost+found", libc::DT_DIR),
        ] {
            assert_eq!(types[name], t, "d_type of {name}");
        }
    };
    check(&m);
    assert_errno!(mknod(&m.p("fifo"), libc::S_IFIFO | 0o600, 0), libc::EEXIST);
    // A FIFO on the mount works as a FIFO (the kernel handles the data).
    let p = m.p("fifo");
    let writer = std::thread::spawn(move || fs::write(p, b"through the pipe").unwrap());
    assert_eq!(fs::read(m.p("fifo")).unwrap(), b"through the pipe");
    writer.join().unwrap();

    let m = remount(m, &img.path, "");
    check(&m);
    m.unmount_and_check();
    fsck_strict(&img.path);
    // e2fsprogs decodes the same device numbers from the inodes.
    for (name, _, ma, mi) in devs {
        let s = debugfs(&img.path, &format!("stat /{name}"));
        assert!(
            s.contains(&format!("Device major/minor number: {ma:02}:{mi:02}")),
            "{name}: {s}"
        );
    }
}

// ---------------------------------------------------------------- directories

#[test]
fn mkdir_rmdir_unlink_and_nlink() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let root_links = || fs::metadata(m.path()).unwrap().nlink();
    assert_eq!(root_links(), 3);
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    let st = fs::metadata(&d).unwrap();
    assert!(st.is_dir());
    assert_eq!(
        (st.nlink(), st.size(), st.blocks(), st.mode() & 0o7777),
        (2, 1024, 2, 0o755)
    );
    assert_eq!(root_links(), 4);
    let dots = raw_readdir(&d);
    assert_eq!(dots.len(), 2);
    assert!(dots.iter().any(|(n, ino, _)| n == b"." && *ino == st.ino()));
    assert!(dots
        .iter()
        .any(|(n, ino, _)| n == b".." && *ino == fs::metadata(m.path()).unwrap().ino()));

    fs::create_dir(d.join("e")).unwrap();
    fs::create_dir(d.join("e2")).unwrap();
    fs::write(d.join("file"), b"x").unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 4);
    assert_errno!(fs::create_dir(&d), libc::EEXIST);
    assert_errno!(fs::create_dir(d.join("file")), libc::EEXIST);
    assert_errno!(fs::create_dir(d.join("nope/x")), libc::ENOENT);
    assert_errno!(fs::create_dir(d.join("file/x")), libc::ENOTDIR);

    assert_errno!(fs::remove_dir(&d), libc::ENOTEMPTY);
    assert_errno!(fs::remove_dir(d.join("file")), libc::ENOTDIR);
    assert_errno!(fs::remove_dir(d.join("missing")), libc::ENOENT);
    assert_errno!(fs::remove_file(d.join("e")), libc::EISDIR);
    assert_errno!(fs::remove_dir(d.join("e/.")), libc::EINVAL);
    assert_errno!(fs::remove_dir(d.join("e/..")), libc::ENOTEMPTY);

    fs::remove_dir(d.join("e")).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 3);
    assert_errno!(fs::metadata(d.join("e")), libc::ENOENT);
    fs::remove_file(d.join("file")).unwrap();
    fs::remove_dir(d.join("e2")).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 2);
    assert_eq!(names_of(&d), Vec::<String>::new());
    fs::remove_dir(&d).unwrap();
    assert_eq!(root_links(), 3);

    // A set-group-ID directory passes its group (and the bit, to directories) on.
    let sg = m.p("sgid");
    fs::create_dir(&sg).unwrap();
    std::os::unix::fs::chown(&sg, None, Some(777)).unwrap();
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2775)).unwrap();
    fs::create_dir(sg.join("sub")).unwrap();
    fs::write(sg.join("f"), b"").unwrap();
    let sub = fs::metadata(sg.join("sub")).unwrap();
    assert_eq!((sub.gid(), sub.mode() & 0o2000), (777, 0o2000));
    let f = fs::metadata(sg.join("f")).unwrap();
    assert_eq!((f.gid(), f.mode() & 0o2000), (777, 0));

    // Many subdirectories: the parent's link count follows, on disk too.
    for i in 0..50 {
        fs::create_dir(m.p(&format!("many{i}"))).unwrap();
    }
    assert_eq!(root_links(), 3 + 1 + 50);
    let m = remount(m, &img.path, "");
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3 + 1 + 50);
    for i in (0..50).step_by(2) {
        fs::remove_dir(m.p(&format!("many{i}"))).unwrap();
    }
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3 + 1 + 25);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn link_and_unlink() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let ffree0 = statfs(m.path()).f_ffree;
    fs::write(m.p("f"), b"shared").unwrap();
    fs::create_dir(m.p("d")).unwrap();
    fs::hard_link(m.p("f"), m.p("g")).unwrap();
    fs::hard_link(m.p("f"), m.p("d/h")).unwrap();
    let (f, g, h) = (
        fs::metadata(m.p("f")).unwrap(),
        fs::metadata(m.p("g")).unwrap(),
        fs::metadata(m.p("d/h")).unwrap(),
    );
    assert_eq!((f.nlink(), g.nlink(), h.nlink()), (3, 3, 3));
    assert_eq!((f.ino(), f.ino()), (g.ino(), h.ino()));
    assert_errno!(fs::hard_link(m.p("f"), m.p("g")), libc::EEXIST);
    assert_errno!(fs::hard_link(m.p("d"), m.p("dlink")), libc::EPERM);
    assert_errno!(fs::hard_link(m.p("missing"), m.p("x")), libc::ENOENT);
    assert_errno!(fs::hard_link(m.p("f"), m.p("nodir/x")), libc::ENOENT);
    // Symlinks, devices and FIFOs can be linked too.
    symlink("f", m.p("s")).unwrap();
    fs::hard_link(m.p("s"), m.p("s2")).unwrap();
    assert_eq!(fs::symlink_metadata(m.p("s2")).unwrap().nlink(), 2);
    assert_eq!(fs::read_link(m.p("s2")).unwrap(), Path::new("f"));

    fs::remove_file(m.p("f")).unwrap();
    assert_errno!(fs::metadata(m.p("f")), libc::ENOENT);
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 2);
    assert_eq!(fs::read(m.p("d/h")).unwrap(), b"shared");
    assert_errno!(fs::remove_file(m.p("f")), libc::ENOENT);
    assert_errno!(fs::remove_file(m.p("d")), libc::EISDIR);
    fs::remove_file(m.p("d/h")).unwrap();
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 1);
    let m = remount(m, &img.path, "");
    assert_eq!(fs::metadata(m.p("g")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.p("g")).unwrap(), b"shared");
    fs::remove_file(m.p("g")).unwrap();
    fs::remove_file(m.p("s")).unwrap();
    fs::remove_file(m.p("s2")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    // An unlinked inode is freed when the kernel forgets it (right after the unlink).
    wait_until("every inode to come back", || {
        statfs(m.path()).f_ffree == ffree0
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn rename_files_and_directories() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let ino = |p: &str| fs::metadata(m.p(p)).unwrap().ino();
    let links = |p: &str| fs::metadata(m.p(p)).unwrap().nlink();
    let dotdot = |p: &str| {
        raw_readdir(&m.p(p))
            .into_iter()
            .find(|(n, _, _)| n == b"..")
            .map(|(_, i, _)| i)
            .unwrap()
    };
    let ffree0 = statfs(m.path()).f_ffree;

    // Over an existing file: the old target loses a link (here: its only one).
    fs::write(m.p("a"), b"A").unwrap();
    fs::write(m.p("b"), b"B").unwrap();
    fs::hard_link(m.p("b"), m.p("b2")).unwrap();
    let a_ino = ino("a");
    fs::rename(m.p("a"), m.p("b")).unwrap();
    assert_errno!(fs::metadata(m.p("a")), libc::ENOENT);
    assert_eq!(fs::read(m.p("b")).unwrap(), b"A");
    assert_eq!(ino("b"), a_ino);
    assert_eq!(links("b2"), 1);
    assert_eq!(fs::read(m.p("b2")).unwrap(), b"B");
    fs::write(m.p("c"), b"C").unwrap();
    fs::rename(m.p("c"), m.p("b2")).unwrap(); // b2's inode is freed
    assert_eq!(fs::read(m.p("b2")).unwrap(), b"C");

    // Renaming one link onto another link of the same inode changes nothing.
    fs::hard_link(m.p("b"), m.p("b3")).unwrap();
    fs::rename(m.p("b"), m.p("b3")).unwrap();
    assert!(m.p("b").exists() && m.p("b3").exists());
    assert_eq!(links("b"), 2);
    fs::remove_file(m.p("b3")).unwrap();

    // Across directories.
    fs::create_dir(m.p("d1")).unwrap();
    fs::create_dir(m.p("d2")).unwrap();
    fs::write(m.p("d1/x"), b"X").unwrap();
    fs::rename(m.p("d1/x"), m.p("d2/y")).unwrap();
    assert_eq!(fs::read(m.p("d2/y")).unwrap(), b"X");
    assert_eq!(names_of(&m.p("d1")), Vec::<String>::new());

    // A directory to another parent: ".." and both parents' link counts follow.
    fs::create_dir(m.p("d1/sub")).unwrap();
    fs::write(m.p("d1/sub/inside"), b"I").unwrap();
    fs::create_dir(m.p("d1/sub/inner")).unwrap();
    assert_eq!((links("d1"), links("d2")), (3, 2));
    let sub = ino("d1/sub");
    fs::rename(m.p("d1/sub"), m.p("d2/sub")).unwrap();
    assert_eq!((links("d1"), links("d2")), (2, 3));
    assert_eq!(ino("d2/sub"), sub);
    assert_eq!(fs::metadata(m.p("d2/sub/..")).unwrap().ino(), ino("d2"));
    assert_eq!(dotdot("d2/sub"), ino("d2"), "'..' as readdir reports it");
    assert_eq!(links("d2/sub"), 3);
    assert_eq!(fs::read(m.p("d2/sub/inside")).unwrap(), b"I");
    // Within one directory: no link count changes.
    fs::rename(m.p("d2/sub"), m.p("d2/sub_renamed")).unwrap();
    fs::rename(m.p("d2/sub_renamed"), m.p("d2/sub")).unwrap();
    assert_eq!(links("d2"), 3);

    // Over an empty directory in another parent.
    fs::create_dir(m.p("d1/empty")).unwrap();
    assert_eq!(links("d1"), 3);
    fs::rename(m.p("d2/sub"), m.p("d1/empty")).unwrap();
    assert_eq!(ino("d1/empty"), sub);
    assert_eq!((links("d1"), links("d2")), (3, 2));
    assert_eq!(dotdot("d1/empty"), ino("d1"));
    // Over an empty directory in the same parent.
    fs::create_dir(m.p("d1/empty2")).unwrap();
    assert_eq!(links("d1"), 4);
    fs::rename(m.p("d1/empty"), m.p("d1/empty2")).unwrap();
    assert_eq!(links("d1"), 3);
    assert_eq!(ino("d1/empty2"), sub);

    // Refusals.
    fs::create_dir(m.p("full")).unwrap();
    fs::write(m.p("full/f"), b"").unwrap();
    fs::write(m.p("file"), b"F").unwrap();
    assert_errno!(fs::rename(m.p("d1/empty2"), m.p("full")), libc::ENOTEMPTY);
    assert_errno!(fs::rename(m.p("file"), m.p("full")), libc::EISDIR);
    assert_errno!(fs::rename(m.p("full"), m.p("file")), libc::ENOTDIR);
    assert_errno!(
        fs::rename(m.p("d1"), m.p("d1/empty2/inner/x")),
        libc::EINVAL
    );
    assert_errno!(
        fs::rename(m.p("d1/empty2"), m.p("d1/empty2/inner")),
        libc::EINVAL
    );
    assert_errno!(fs::rename(m.p("nothing"), m.p("x")), libc::ENOENT);
    assert_errno!(fs::rename(m.p("file"), m.p("nodir/x")), libc::ENOENT);
    assert_errno!(
        fs::rename(m.p("file"), m.p(&"n".repeat(256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(fs::read(m.p("file")).unwrap(), b"F");
    assert_eq!(names_of(&m.p("full")), vec!["f"]);

    // Deep move up the tree (the source directory is an ancestor of nothing).
    fs::create_dir_all(m.p("p/q/r")).unwrap();
    fs::rename(m.p("p/q/r"), m.p("r")).unwrap();
    assert_eq!((links("p/q"), dotdot("r")), (2, 1));

    m.unmount_and_check();
    fsck_strict(&img.path);
    // '..' on disk, as e2fsprogs follows it.
    assert_eq!(
        debugfs_ino(&img.path, "/d1/empty2/.."),
        debugfs_ino(&img.path, "/d1")
    );
    assert_eq!(
        debugfs_ino(&img.path, "/d1/empty2/inner/.."),
        debugfs_ino(&img.path, "/d1/empty2")
    );
    assert_eq!(debugfs_ino(&img.path, "/r/.."), 2);
    let m = mount(&img.path, "");
    assert_eq!(fs::read(m.p("d1/empty2/inside")).unwrap(), b"I");
    assert_eq!(fs::metadata(m.p("d1")).unwrap().nlink(), 3);
    assert_eq!(fs::metadata(m.p("d2")).unwrap().nlink(), 2);
    for p in ["b", "b2", "file", "full/f", "d2/y", "d1/empty2/inside"] {
        fs::remove_file(m.p(p)).unwrap();
    }
    for p in [
        "d1/empty2/inner",
        "d1/empty2",
        "d1",
        "d2",
        "full",
        "p/q",
        "p",
        "r",
    ] {
        fs::remove_dir(m.p(p)).unwrap();
    }
    assert_eq!(names_of(m.path()), vec!["lost+found"]);
    wait_until("every replaced or removed inode to be freed", || {
        statfs(m.path()).f_ffree == ffree0
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
    // '..' on disk, as e2fsprogs follows it.
    assert_eq!(debugfs_ino(&img.path, "/lost+found/.."), 2);
}

#[test]
fn rename_flags() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    fs::write(m.p("a"), b"A").unwrap();
    fs::write(m.p("b"), b"B").unwrap();
    assert_errno!(
        rename2(&m.p("a"), &m.p("b"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );
    assert_eq!(fs::read(m.p("b")).unwrap(), b"B");
    rename2(&m.p("a"), &m.p("c"), libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(fs::read(m.p("c")).unwrap(), b"A");
    assert!(!m.p("a").exists());
    // RENAME_EXCHANGE swaps the two names, as the kernel's driver serving
    // `-t ext2` does (kernel_parity.rs compares the two side by side).
    rename2(&m.p("b"), &m.p("c"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(
        (fs::read(m.p("b")).unwrap(), fs::read(m.p("c")).unwrap()),
        (b"A".to_vec(), b"B".to_vec())
    );
    fs::create_dir(m.p("d")).unwrap();
    rename2(&m.p("d"), &m.p("c"), libc::RENAME_EXCHANGE).unwrap();
    assert!(fs::metadata(m.p("c")).unwrap().is_dir());
    assert_eq!(fs::read(m.p("d")).unwrap(), b"B");
    assert_errno!(
        rename2(&m.p("b"), &m.p("nothing"), libc::RENAME_EXCHANGE),
        libc::ENOENT
    );
    // RENAME_WHITEOUT (for overlayfs) is not built: see DIFFERENCES.md.
    assert_errno!(
        rename2(&m.p("b"), &m.p("e"), libc::RENAME_WHITEOUT),
        libc::EINVAL
    );
    m.unmount_and_check();
    fsck_strict(&img.path);
}

// ---------------------------------------------------------------- data

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
fn readdir_2000_entries_and_name_lengths() {
    let _serial = setup();
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let m = mount(&img.path, "");
    let d = m.p("many");
    fs::create_dir(&d).unwrap();
    let names: Vec<String> = (0..2000)
        .map(|i| format!("entry-{i:04}-{}", "x".repeat(i % 37)))
        .collect();
    for n in &names {
        File::create(d.join(n)).unwrap();
    }
    let check = |d: &Path, want: &[&String]| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_file());
            *seen
                .entry(e.file_name().into_string().unwrap())
                .or_default() += 1;
        }
        let dups: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
        assert!(dups.is_empty(), "listed more than once: {dups:?}");
        let want_set: HashSet<&str> = want.iter().map(|s| s.as_str()).collect();
        let seen_set: HashSet<&str> = seen.keys().map(|s| s.as_str()).collect();
        assert_eq!(seen_set.len(), want.len());
        assert!(
            seen_set == want_set,
            "listing differs from the names created"
        );
    };
    check(&d, &names.iter().collect::<Vec<_>>());
    // The directory grew past the direct blocks; st_blocks counts its indirect block.
    let st = fs::metadata(&d).unwrap();
    assert!(st.size() > 12 * 1024);
    assert_eq!(st.blocks(), dense_sectors(st.size(), 1024));
    // Inode numbers from readdir match lookups (a sample).
    for (n, ino, t) in raw_readdir(&d).into_iter().step_by(97) {
        if n != b"." && n != b".." {
            let p = d.join(std::ffi::OsStr::from_bytes(&n));
            assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
            assert_eq!(t, libc::DT_REG);
        }
    }
    // Remove every other entry and list again.
    for n in names.iter().step_by(2) {
        fs::remove_file(d.join(n)).unwrap();
    }
    let left: Vec<&String> = names.iter().skip(1).step_by(2).collect();
    check(&d, &left);

    // Name lengths: 255 works everywhere, 256 is ENAMETOOLONG everywhere.
    let n255 = "L".repeat(255);
    let n256 = "L".repeat(256);
    fs::write(m.p(&n255), b"long").unwrap();
    assert_eq!(fs::read(m.p(&n255)).unwrap(), b"long");
    fs::create_dir(d.join(&n255)).unwrap();
    symlink("x", m.p(&format!("{}s", "L".repeat(254)))).unwrap();
    assert!(names_of(m.path()).contains(&n255));
    assert_errno!(File::create(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::metadata(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::create_dir(m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(symlink("x", m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(fs::hard_link(m.p(&n255), m.p(&n256)), libc::ENAMETOOLONG);
    assert_errno!(
        mknod(&m.p(&n256), libc::S_IFIFO | 0o600, 0),
        libc::ENAMETOOLONG
    );
    assert_errno!(fs::remove_file(m.p(&n256)), libc::ENAMETOOLONG);

    let m = remount(m, &img.path, "");
    let d = m.p("many");
    let mut left_and_dir = left.clone();
    left_and_dir.push(&n255);
    let mut seen = names_of(&d);
    seen.sort();
    let mut want: Vec<String> = left_and_dir.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

// ---------------------------------------------------------------- statfs, access, misc

#[test]
fn statfs_counts() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let dump = dumpe2fs_h(&img.path);
    let num = |k: &str| field(&dump, k).parse::<u64>().unwrap();
    let m = mount(&img.path, "");
    let s = statfs(m.path());
    assert_eq!(s.f_bsize, 1024);
    assert_eq!(s.f_frsize, 1024);
    assert_eq!(s.f_namelen, 255);
    assert_eq!(s.f_bfree, num("Free blocks"));
    assert_eq!(s.f_bavail, num("Free blocks") - num("Reserved block count"));
    assert_eq!(s.f_files, num("Inode count"));
    assert_eq!(s.f_ffree, num("Free inodes"));
    // f_blocks leaves out the metadata: what is used is exactly the files' blocks.
    let used_by_files = (fs::metadata(m.path()).unwrap().blocks()
        + fs::metadata(m.p("lost+found")).unwrap().blocks())
        / 2;
    assert_eq!(s.f_blocks - s.f_bfree, used_by_files);
    assert!(s.f_blocks < num("Block count"));

    // A 1 MiB file: 1024 data blocks and 5 indirect blocks.
    fs::write(m.p("mib"), vec![1u8; 1 << 20]).unwrap();
    let s2 = statfs(m.path());
    assert_eq!(s.f_bfree - s2.f_bfree, 1024 + 5);
    assert_eq!(s.f_bavail - s2.f_bavail, 1024 + 5);
    assert_eq!(s.f_ffree - s2.f_ffree, 1);
    assert_eq!(s2.f_blocks, s.f_blocks);
    fs::remove_file(m.p("mib")).unwrap();
    wait_until("the removed file's blocks and inode to be free", || {
        let s3 = statfs(m.path());
        (s3.f_bfree, s3.f_ffree) == (s.f_bfree, s.f_ffree)
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn statfs_on_real_mke2fs_image_4k() {
    let _serial = setup();
    // mke2fs's defaults for ext2: resize_inode, dir_index, ext_attr, 256-byte inodes.
    let img = mkfs_ext2(64 << 10, 4096, &[]);
    let dump = dumpe2fs_h(&img.path);
    assert!(field(&dump, "Filesystem features").contains("resize_inode"));
    let num = |k: &str| field(&dump, k).parse::<u64>().unwrap();
    let m = mount(&img.path, "");
    let s = statfs(m.path());
    assert_eq!(
        (s.f_bsize, s.f_bfree, s.f_files, s.f_ffree),
        (
            4096,
            num("Free blocks"),
            num("Inode count"),
            num("Free inodes")
        )
    );
    // Mixed work in a directory mke2fs made (with dir_index set).
    for i in 0..300 {
        fs::write(m.p(&format!("lost+found/f{i}")), pat(0, i * 37, i as u64)).unwrap();
    }
    for i in (0..300).step_by(3) {
        fs::remove_file(m.p(&format!("lost+found/f{i}"))).unwrap();
    }
    fs::create_dir_all(m.p("a/b/c")).unwrap();
    fs::rename(m.p("lost+found/f1"), m.p("a/b/c/f1")).unwrap();
    let m = remount(m, &img.path, "");
    assert_eq!(fs::read(m.p("a/b/c/f1")).unwrap(), pat(0, 37, 1));
    assert_eq!(
        fs::read(m.p("lost+found/f299")).unwrap(),
        pat(0, 299 * 37, 299)
    );
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

/// Run a shell script as nobody (uid and gid 65534; std drops root's
/// supplementary groups with them); whether it succeeded.
fn sh_as_nobody(script: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .status()
        .expect("run sh")
        .success()
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

#[test]
fn fallocate_and_xattrs_unsupported() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let p = m.p("f");
    fs::write(&p, b"abc").unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 4096) };
    assert_eq!(r, -1);
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            1,
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().size(), 3);

    assert_errno!(getxattr(&p, "user.k", 64), libc::ENODATA);
    assert_errno!(getxattr(&p, "user.k", 0), libc::ENODATA);
    assert!(listxattr(&p).unwrap().is_empty());
    assert!(listxattr(m.path()).unwrap().is_empty());
    assert_errno!(setxattr(&p, "user.k", b"v"), libc::EOPNOTSUPP);
    assert_errno!(removexattr(&p, "user.k"), libc::EOPNOTSUPP);
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
    assert_errno!(setxattr(&p, "user.k", b"changed"), libc::EOPNOTSUPP);
    assert_eq!(getxattr(&p, "user.k", 64).unwrap(), b"v");
    // The xattr block counts in st_blocks (1 data block + 1 xattr block).
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 4);
    let m = remount(m, &img.path, "");
    assert_eq!(getxattr(&m.p("f"), "user.k", 64).unwrap(), b"v");
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

#[test]
fn read_only_mount() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    fs::write(m.p("f"), b"data").unwrap();
    fs::create_dir(m.p("d")).unwrap();
    m.unmount_and_check();
    fsck_strict(&img.path);
    let before = fs::read(&img.path).unwrap();

    let m = mount(&img.path, "ro");
    assert_eq!(fs::read(m.p("f")).unwrap(), b"data");
    assert_eq!(names_of(m.path()), vec!["d", "f", "lost+found"]);
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(cs(m.path()).as_ptr(), &mut vfs) }).unwrap();
    assert_ne!(vfs.f_flag & libc::ST_RDONLY, 0);
    assert_errno!(OpenOptions::new().write(true).open(m.p("f")), libc::EROFS);
    assert_errno!(File::create(m.p("new")), libc::EROFS);
    assert_errno!(fs::create_dir(m.p("nd")), libc::EROFS);
    assert_errno!(fs::remove_file(m.p("f")), libc::EROFS);
    assert_errno!(fs::remove_dir(m.p("d")), libc::EROFS);
    assert_errno!(fs::rename(m.p("f"), m.p("g")), libc::EROFS);
    assert_errno!(fs::hard_link(m.p("f"), m.p("g")), libc::EROFS);
    assert_errno!(symlink("f", m.p("s")), libc::EROFS);
    assert_errno!(mknod(&m.p("n"), libc::S_IFIFO | 0o600, 0), libc::EROFS);
    assert_errno!(
        fs::set_permissions(m.p("f"), fs::Permissions::from_mode(0o600)),
        libc::EROFS
    );
    assert_errno!(truncate(&m.p("f"), 0), libc::EROFS);
    assert_errno!(
        utimens(&m.p("f"), (0, libc::UTIME_NOW), (0, libc::UTIME_NOW)),
        libc::EROFS
    );
    assert_errno!(access(&m.p("f"), libc::W_OK), libc::EROFS);
    access(&m.p("f"), libc::R_OK).unwrap();
    m.unmount();
    // A read-only mount writes nothing: not the mount count, not atime.
    assert!(
        fs::read(&img.path).unwrap() == before,
        "a read-only mount changed the image"
    );
    let m = mount(&img.path, "");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

// ---------------------------------------------------------------- mounting

#[test]
fn mount_refusals() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let sb0 = sb_bytes(&img.path);

    // Bad options name the option.
    let e = try_mount(&img.path, "bogus_option")
        .err()
        .expect("mounted with a bogus option");
    assert!(e.contains("bogus_option"), "{e}");
    let e = try_mount(&img.path, "ro,cache=lots")
        .err()
        .expect("mounted with cache=lots");
    assert!(e.contains("cache=lots"), "{e}");

    // The same image twice at once: the second is refused, the first goes on.
    let m = mount(&img.path, "");
    let e = try_mount(&img.path, "")
        .err()
        .expect("mounted the image twice");
    assert!(e.contains("in use"), "{e}");
    let e = try_mount(&img.path, "ro")
        .err()
        .expect("mounted the image twice (ro)");
    assert!(e.contains("in use"), "{e}");
    fs::write(m.p("still"), b"works").unwrap();
    m.unmount_and_check();
    fsck_strict(&img.path);

    // Not ext2 at all, and too small to tell.
    let zeros = img.dir.path().join("zeros.img");
    fs::write(&zeros, vec![0u8; 4 << 20]).unwrap();
    let e = try_mount(&zeros, "").err().expect("mounted zeros");
    assert!(e.contains("not an ext2 file system"), "{e}");
    let tiny = img.dir.path().join("tiny.img");
    fs::write(&tiny, b"tiny").unwrap();
    let e = try_mount(&tiny, "").err().expect("mounted a 4-byte file");
    assert!(e.contains("too small"), "{e}");
    let e = try_mount(&img.dir.path().join("absent.img"), "")
        .err()
        .expect("mounted a missing file");
    assert!(e.contains("absent.img"), "{e}");
    // A truncated image.
    let cut = copy_image(&img, "cut.img");
    OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let e = try_mount(&cut, "")
        .err()
        .expect("mounted a truncated image");
    assert!(e.contains("bytes"), "{e}");

    // Unknown INCOMPAT features refuse any mount and are named.
    let inc = copy_image(&img, "incompat.img");
    or_u32_at(&inc, 1024 + 96, 0x40);
    let inc_bytes = fs::read(&inc).unwrap();
    for opts in ["", "ro"] {
        let e = try_mount(&inc, opts)
            .err()
            .expect("mounted with INCOMPAT extent");
        assert!(e.contains("extent") && e.contains("INCOMPAT"), "{e}");
    }
    let inc2 = copy_image(&img, "incompat2.img");
    or_u32_at(&inc2, 1024 + 96, 0x0800);
    let inc2_bytes = fs::read(&inc2).unwrap();
    let e = try_mount(&inc2, "")
        .err()
        .expect("mounted with an unnamed INCOMPAT bit");
    assert!(e.contains("0x800"), "{e}");

    // Unknown RO_COMPAT features: read-only only.
    let roc = copy_image(&img, "rocompat.img");
    or_u32_at(&roc, 1024 + 100, 0x20);
    let roc_bytes = fs::read(&roc).unwrap();
    let e = try_mount(&roc, "")
        .err()
        .expect("mounted RO_COMPAT dir_nlink read-write");
    assert!(e.contains("dir_nlink") && e.contains("-o ro"), "{e}");
    let m = try_mount(&roc, "ro").expect("read-only mount with an unknown RO_COMPAT feature");
    assert_eq!(fs::read(m.p("still")).unwrap(), b"works");
    assert_errno!(File::create(m.p("x")), libc::EROFS);
    m.unmount_and_check();
    fsck_strict(&roc);
    assert!(
        fs::read(&roc).unwrap() == roc_bytes,
        "read-only mount wrote to the image"
    );

    // Refused mounts leave the image alone.
    assert!(fs::read(&inc).unwrap() == inc_bytes && fs::read(&inc2).unwrap() == inc2_bytes);
    assert_eq!(
        le16(&sb_bytes(&inc), 52),
        le16(&sb0, 52) + 1,
        "one successful mount before the copy"
    );
    // The original is still fine and mountable.
    let m = mount(&img.path, "");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

#[test]
fn superblock_bookkeeping() {
    let _serial = setup();
    for (label, img) in [
        ("mkfs.ext2mfr", mkfs_ext2mfr(16 << 20, 1024)),
        ("mke2fs", mkfs_ext2(16384, 1024, &[])),
    ] {
        let before = dumpe2fs_h(&img.path);
        assert_eq!(field(&before, "Filesystem state"), "clean", "{label}");
        let count0: u16 = field(&before, "Mount count").parse().unwrap();
        let sb0 = sb_bytes(&img.path);
        let t0 = now() as u32;

        let m = mount(&img.path, "");
        // While mounted the image is marked in use (not clean).
        assert_eq!(
            field(&dumpe2fs_h(&img.path), "Filesystem state"),
            "not clean",
            "{label}"
        );
        fs::write(m.p("f"), b"x").unwrap();
        m.unmount_and_check();
        fsck_strict(&img.path);

        let after = dumpe2fs_h(&img.path);
        assert_eq!(field(&after, "Filesystem state"), "clean", "{label}");
        let count1: u16 = field(&after, "Mount count").parse().unwrap();
        assert_eq!(count1, count0 + 1, "{label}");
        assert_ne!(field(&after, "Last mount time"), "n/a", "{label}");
        assert_ne!(
            field(&after, "Last mount time"),
            field(&before, "Last mount time"),
            "{label}"
        );
        let sb1 = sb_bytes(&img.path);
        let (mtime, wtime) = (le32(&sb1, 44), le32(&sb1, 48));
        assert!(
            mtime >= t0 && mtime <= now() as u32,
            "{label}: s_mtime {mtime} not in [{t0}, now]"
        );
        assert!(wtime >= mtime, "{label}: s_wtime");
        assert_eq!(le16(&sb1, 58), 1, "{label}: s_state");
        // Fields the mount must not touch.
        assert_eq!(sb1[104..120], sb0[104..120], "{label}: uuid");
        assert_eq!(le16(&sb1, 54), le16(&sb0, 54), "{label}: max mount count");

        // Once more: the count keeps going up.
        let m = mount(&img.path, "");
        m.unmount_and_check();
        fsck_strict(&img.path);
        assert_eq!(
            field(&dumpe2fs_h(&img.path), "Mount count")
                .parse::<u16>()
                .unwrap(),
            count0 + 2
        );
    }
}

// ---------------------------------------------------------------- limits, other geometries

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

/// 2 KiB and 4 KiB blocks: block maps with 512 and 1024 pointers, symlink
/// limits of one block, directories, all checked by e2fsck.
#[test]
fn other_block_sizes() {
    let _serial = setup();
    for bs in [2048u64, 4096] {
        let img = mkfs_ext2mfr(64 << 20, bs as u32);
        let m = mount(&img.path, "");
        assert_eq!(statfs(m.path()).f_bsize as u64, bs);
        let ptrs = bs / 4;
        // Past the single indirect range into double indirect.
        let size = (12 + ptrs + 3 * ptrs + 7) * bs + 123;
        {
            let mut f = File::create(m.p("f")).unwrap();
            for off in (0..size).step_by(1 << 20) {
                f.write_all(&pat(off, (size - off).min(1 << 20) as usize, bs))
                    .unwrap();
            }
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.p("f"))
            .unwrap();
        assert_eq!(
            f.metadata().unwrap().blocks(),
            dense_sectors(size, bs),
            "bs {bs}"
        );
        for s in [(12 + ptrs + ptrs + 1) * bs + 5, (12 + 40) * bs, 11 * bs + 1] {
            f.set_len(s).unwrap();
            assert_eq!(
                f.metadata().unwrap().blocks(),
                dense_sectors(s, bs),
                "bs {bs} size {s}"
            );
            drop_cache(&f);
            check_pattern(&f, s.saturating_sub(3 * bs), 3 * bs.min(s), bs);
            f.set_len(s + 100).unwrap();
            drop_cache(&f);
            check_zeros(&f, s, 100);
            f.set_len(s).unwrap();
        }
        drop(f);
        let ok = "t".repeat(bs as usize - 1);
        symlink(&ok, m.p("slow")).unwrap();
        assert_eq!(
            fs::symlink_metadata(m.p("slow")).unwrap().blocks(),
            bs / 512
        );
        assert_errno!(
            symlink("t".repeat(bs as usize), m.p("too_long")),
            libc::ENAMETOOLONG
        );
        fs::create_dir(m.p("d")).unwrap();
        for i in 0..300 {
            fs::write(
                m.p(&format!("d/{i}-{}", "n".repeat(i % 200))),
                i.to_string(),
            )
            .unwrap();
        }
        let m = remount(m, &img.path, "");
        assert_eq!(
            fs::read_link(m.p("slow")).unwrap().as_os_str().len(),
            bs as usize - 1
        );
        assert_eq!(fs::read_dir(m.p("d")).unwrap().count(), 300);
        assert_eq!(
            fs::read(m.p(&format!("d/77-{}", "n".repeat(77)))).unwrap(),
            b"77"
        );
        let f = File::open(m.p("f")).unwrap();
        check_pattern(&f, 0, 11 * bs + 1, bs);
        drop(f);
        m.unmount_and_check();
        fsck_strict(&img.path);
    }
}

/// A directory removed while open: the kernel reports it gone, and the
/// daemon frees it once the kernel lets go.
#[test]
fn rmdir_of_an_open_directory() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let s0 = statfs(m.path());
    fs::create_dir(m.p("gone")).unwrap();
    let dir = File::open(m.p("gone")).unwrap();
    fs::remove_dir(m.p("gone")).unwrap();
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3);
    assert_eq!(dir.metadata().unwrap().nlink(), 0);
    // Nothing can be created in it any more.
    let fd = dir.as_raw_fd();
    let name = CString::new("x").unwrap();
    let r = unsafe { libc::openat(fd, name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    assert_eq!(r, -1);
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOENT)
    );
    drop(dir);
    wait_until("the removed directory to be freed", || {
        let s = statfs(m.path());
        (s.f_bfree, s.f_ffree) == (s0.f_bfree, s0.f_ffree)
    });
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Renames within one directory that force the directory to grow (the new
/// name does not fit where the old one was), then a recursive removal that
/// deletes entries while reading the directory.
#[test]
fn renames_that_grow_a_directory_and_remove_dir_all() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    for i in 0..200 {
        fs::write(d.join(format!("s{i}")), i.to_string()).unwrap();
    }
    let size0 = fs::metadata(&d).unwrap().size();
    for i in 0..200 {
        fs::rename(
            d.join(format!("s{i}")),
            d.join(format!("{i}-{}", "long".repeat(50))),
        )
        .unwrap();
    }
    assert!(fs::metadata(&d).unwrap().size() > size0);
    let names = names_of(&d);
    assert_eq!(names.len(), 200);
    assert!(names.iter().all(|n| n.ends_with(&"long".repeat(50))));
    for i in (0..200).step_by(17) {
        assert_eq!(
            fs::read(d.join(format!("{i}-{}", "long".repeat(50)))).unwrap(),
            i.to_string().as_bytes()
        );
    }
    let m = remount(m, &img.path, "");
    let d = m.p("d");
    assert_eq!(names_of(&d).len(), 200);
    fs::create_dir_all(d.join("x/y/z")).unwrap();
    fs::remove_dir_all(&d).unwrap();
    assert_errno!(fs::metadata(&d), libc::ENOENT);
    assert_eq!(fs::metadata(m.path()).unwrap().nlink(), 3);
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

/// With exactly one free block, a directory whose twelve direct blocks are
/// full needs two (its first indirect block and a data block): create,
/// mknod, symlink, link, rename and mkdir into it must fail with ENOSPC and
/// leave the image consistent (no half-allocated indirect block).
#[test]
fn enospc_while_a_directory_grows() {
    let _serial = setup();
    // With recovery on, a failed request is rolled back as a whole; in the
    // baseline the operation itself must clean up.
    for mode in ["commit=0", "commit=0,baseline"] {
        enospc_while_a_directory_grows_in(mode);
    }
}

fn enospc_while_a_directory_grows_in(mode: &str) {
    let img = mkfs_ext2mfr(4 << 20, 1024);
    let m = mount(&img.path, mode);
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    // 255-byte names take 264 bytes: three per block, 36 fill 12 blocks.
    let long = |i: usize| format!("{i:03}{}", "n".repeat(252));
    for i in 0..36 {
        File::create(d.join(long(i))).unwrap();
    }
    assert_eq!(fs::metadata(&d).unwrap().size(), 12 * 1024);
    fs::write(m.p("src"), b"").unwrap();
    symlink("t", m.p("srclink")).unwrap();
    // Fill the disk, then give back blocks until exactly one is free.
    {
        let mut f = File::create(m.p("fill")).unwrap();
        let chunk = vec![0xabu8; 64 << 10];
        while f.write(&chunk).is_ok() {}
        assert_eq!(statfs(m.path()).f_bfree, 0);
    }
    let set_one_free = || {
        // Shrink "fill" block by block until something is free; then use
        // one-block files to come down to exactly one free block.
        while statfs(m.path()).f_bfree == 0 {
            let size = fs::metadata(m.p("fill")).unwrap().size();
            truncate(&m.p("fill"), size.saturating_sub(1024)).unwrap();
        }
        let mut k = 0;
        while statfs(m.path()).f_bfree > 1 {
            let p = m.p(&format!("pad-{}-{k}", now()));
            k += 1;
            if p.exists() {
                continue;
            }
            fs::write(&p, b"p").unwrap();
        }
    };
    let sync_and_fsck = |what: &str| {
        File::open(m.p("src")).unwrap().sync_all().unwrap();
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&img.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: after a failed {what}: e2fsck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    type Op<'a> = (&'a str, Box<dyn Fn() -> io::Result<()> + 'a>);
    let ops: Vec<Op> = vec![
        (
            "create",
            Box::new(|| File::create(d.join(long(100))).map(|_| ())),
        ),
        (
            "mknod",
            Box::new(|| mknod(&d.join(long(101)), libc::S_IFIFO | 0o600, 0)),
        ),
        ("symlink", Box::new(|| symlink("t", d.join(long(102))))),
        (
            "link",
            Box::new(|| fs::hard_link(m.p("src"), d.join(long(103)))),
        ),
        (
            "rename",
            Box::new(|| fs::rename(m.p("srclink"), d.join(long(104)))),
        ),
        ("mkdir", Box::new(|| fs::create_dir(d.join(long(105))))),
    ];
    for (what, op) in &ops {
        set_one_free();
        assert_eq!(statfs(m.path()).f_bfree, 1);
        assert_errno!(op(), libc::ENOSPC);
        assert_eq!(fs::metadata(&d).unwrap().size(), 12 * 1024, "{what}");
        assert_eq!(
            fs::metadata(&d).unwrap().blocks(),
            24,
            "{mode}: {what} left a block on the directory"
        );
        assert_eq!(statfs(m.path()).f_bfree, 1, "{mode}: {what} kept a block");
        sync_and_fsck(what);
    }
    drop(ops);
    assert_eq!(names_of(&d).len(), 36);
    assert!(fs::symlink_metadata(m.p("srclink")).is_ok());
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// An image that was not cleanly unmounted (or has errors recorded) mounts,
/// with the state kept as it was: a clean unmount must not mark a file
/// system clean that was never checked (the kernel's ext2 does the same:
/// it writes back the state it found at mount time).
#[test]
fn unchecked_image_stays_unchecked() {
    let _serial = setup();
    for (state, want) in [(0u16, "not clean"), (3, "clean with errors"), (1, "clean")] {
        let img = mkfs_ext2mfr(16 << 20, 1024);
        {
            let f = OpenOptions::new().write(true).open(&img.path).unwrap();
            f.write_all_at(&state.to_le_bytes(), 1024 + 58).unwrap();
        }
        let m = mount(&img.path, "");
        fs::write(m.p("f"), b"data").unwrap();
        m.unmount_and_check();
        fsck_strict(&img.path);
        let dump = dumpe2fs_h(&img.path);
        assert_eq!(
            field(&dump, "Filesystem state"),
            want,
            "state {state} at mount"
        );
        assert_eq!(
            le16(&sb_bytes(&img.path), 58),
            state,
            "s_state after unmount"
        );
        assert_eq!(field(&dump, "Mount count"), "1");
    }
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

/// Names are bytes: anything but '/' and NUL, kept exactly.
#[test]
fn names_are_bytes() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "");
    let names: Vec<Vec<u8>> = vec![
        (0x80u8..=0xff).collect(),
        b"with\nnewline".to_vec(),
        b" leading and trailing ".to_vec(),
        b"...".to_vec(),
        b"-".to_vec(),
        "ünïcödé ✓".as_bytes().to_vec(),
        (1u8..=0x2e).chain(0x30..=0x7f).collect(), // every byte but NUL and '/'
    ];
    for n in &names {
        fs::write(m.path().join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    let check = |m: &Mount| {
        let listed: HashSet<Vec<u8>> = fs::read_dir(m.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        for n in &names {
            assert!(
                listed.contains(n),
                "{:?} not listed",
                String::from_utf8_lossy(n)
            );
            assert_eq!(
                &fs::read(m.path().join(std::ffi::OsStr::from_bytes(n))).unwrap(),
                n
            );
        }
        assert_eq!(listed.len(), names.len() + 1); // and lost+found
    };
    check(&m);
    let m = remount(m, &img.path, "");
    check(&m);
    m.unmount_and_check();
    fsck_strict(&img.path);
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

/// Images made by mke2fs in forms mkfs.ext2mfr does not make: revision 0
/// (no features at all: no file types in directory entries, 128-byte
/// inodes), and revision 1 without large_file.
#[test]
fn revision0_image_and_missing_large_file_feature() {
    let _serial = setup();
    let img = mkfs_ext2(16384, 1024, &["-r", "0"]);
    assert!(field(&dumpe2fs_h(&img.path), "Filesystem revision #").starts_with('0'));
    let m = mount(&img.path, "");
    fs::create_dir(m.p("dir")).unwrap();
    fs::write(m.p("dir/file"), pat(0, 30_000, 1)).unwrap();
    symlink("file", m.p("dir/sym")).unwrap();
    symlink("s".repeat(200), m.p("dir/slowsym")).unwrap();
    mknod(&m.p("dir/fifo"), libc::S_IFIFO | 0o600, 0).unwrap();
    mknod(&m.p("dir/chr"), libc::S_IFCHR | 0o600, libc::makedev(1, 3)).unwrap();
    let check = |m: &Mount| {
        // Without file types on disk, readdir still reports each type.
        let types: HashMap<Vec<u8>, u8> = raw_readdir(&m.p("dir"))
            .into_iter()
            .map(|(n, _, t)| (n, t))
            .collect();
        assert_eq!(types[&b"file".to_vec()], libc::DT_REG);
        assert_eq!(types[&b"sym".to_vec()], libc::DT_LNK);
        assert_eq!(types[&b"slowsym".to_vec()], libc::DT_LNK);
        assert_eq!(types[&b"fifo".to_vec()], libc::DT_FIFO);
        assert_eq!(types[&b"chr".to_vec()], libc::DT_CHR);
        assert_eq!(types[&b"..".to_vec()], libc::DT_DIR);
        assert_eq!(fs::read(m.p("dir/sym")).unwrap(), pat(0, 30_000, 1));
    };
    check(&m);
    fs::rename(m.p("dir/file"), m.p("file2")).unwrap();
    fs::rename(m.p("file2"), m.p("dir/file")).unwrap();
    let m = remount(m, &img.path, "");
    check(&m);
    m.unmount_and_check();
    fsck_strict(&img.path);

    // A file of 2 GiB or more needs large_file: it is turned on.
    // (mke2fs always sets large_file now; clear it by hand, with no large file
    // yet -- without resize_inode, whose inode has a huge size.)
    let img = mkfs_ext2(65536, 4096, &["-O", "^resize_inode"]);
    {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img.path)
            .unwrap();
        let v = le32(&read_at(&f, 1024 + 100, 4), 0) & !0x2;
        f.write_all_at(&v.to_le_bytes(), 1024 + 100).unwrap();
    }
    assert!(!field(&dumpe2fs_h(&img.path), "Filesystem features").contains("large_file"));
    fsck_clean(&img.path);
    let m = mount(&img.path, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.p("big"))
        .unwrap();
    f.write_all_at(b"past 2 GiB", (5u64 << 29) + 7).unwrap();
    assert_eq!(read_at(&f, (5u64 << 29) + 7, 10), b"past 2 GiB");
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);
    assert!(field(&dumpe2fs_h(&img.path), "Filesystem features").contains("large_file"));
}

/// A file of 2 GiB or more on a revision 0 image: revision 0 has no feature
/// flags, so the super block must become revision 1 first (as the kernel's
/// ext2_update_dynamic_rev does) before large_file can be set.
#[test]
fn large_file_on_a_revision0_image() {
    let _serial = setup();
    let img = mkfs_ext2(65536, 4096, &["-r", "0"]);
    let m = mount(&img.path, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.p("big"))
        .unwrap();
    f.write_all_at(b"past 2 GiB", (5u64 << 29) + 7).unwrap();
    drop(f);
    fs::write(m.p("small"), b"s").unwrap();
    let m = remount(m, &img.path, "");
    let f = File::open(m.p("big")).unwrap();
    assert_eq!(f.metadata().unwrap().size(), (5u64 << 29) + 17);
    assert_eq!(read_at(&f, (5u64 << 29) + 7, 10), b"past 2 GiB");
    drop(f);
    m.unmount_and_check();
    fsck_strict(&img.path);
    let dump = dumpe2fs_h(&img.path);
    assert!(
        field(&dump, "Filesystem features").contains("large_file"),
        "{dump}"
    );
    assert!(
        field(&dump, "Filesystem revision #").starts_with("1 (dynamic)"),
        "{dump}"
    );
    assert_eq!(field(&dump, "Inode size"), "128");
    assert_eq!(field(&dump, "First inode"), "11");
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

/// Set-user-ID and set-group-ID are killed as the kernel's ext2 kills them
/// (the daemon does it, FUSE_HANDLE_KILLPRIV_V2): a write or truncate by a
/// caller without CAP_FSETID clears both (set-group-ID without
/// group-execute only for a caller outside the file's group); root's own
/// writes and truncates keep them; a change of owner clears set-user-ID for
/// everyone, on anything but a directory.
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
        ("root_written", 0o6777),
        ("truncated", 0o0777),
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
