//! Inode flags (lsattr/chattr, FS_IOC_GETFLAGS/FS_IOC_SETFLAGS) through a
//! real FUSE mount, side by side with the kernel's own ext2 driver on
//! identical images: which flags can be set on what, what immutable,
//! append-only, noatime and sync/dirsync do, inheritance, who may set
//! them, and the same flags read by the other driver afterwards.
//!
//! Every scenario runs the same calls on both mounts and compares each
//! call's result (value or errno). The one difference kept on purpose
//! (DIFFERENCES.md, `open-time-eperm`): FUSE sends no OPEN here, so an
//! open for writing of an immutable or append-only file succeeds, and
//! the first write fails with the EPERM the kernel's driver gives at the
//! open. Steps labelled `[open]` are where that shows; the step after
//! them (the write) must agree again.

mod common;
use common::*;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;

const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;

const SYNC: u32 = 0x8;
const IMMUTABLE: u32 = 0x10;
const APPEND: u32 = 0x20;
const NODUMP: u32 = 0x40;
const NOATIME: u32 = 0x80;
const JOURNAL_DATA: u32 = 0x4000;
const DIRSYNC: u32 = 0x1_0000;
const EXTENTS: u32 = 0x8_0000;

/// A call's result as the two sides are compared: a value, or an errno.
type Res = Result<String, i32>;

fn res<T>(r: io::Result<T>, f: impl FnOnce(T) -> String) -> Res {
    r.map(f).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn ok(r: io::Result<()>) -> Res {
    res(r, |()| "ok".into())
}

fn get_flags_fd(f: &File) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: an open descriptor and a 4-byte int, as the ioctl takes.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut v) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v as u32)
}

fn set_flags_fd(f: &File, flags: u32) -> io::Result<()> {
    let v = flags as libc::c_int;
    // SAFETY: an open descriptor and a 4-byte int, as the ioctl takes.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS, &v) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Open for the ioctls (read-only, as chattr does; directories too).
fn open_ro(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
}

fn get_flags(p: &Path) -> io::Result<u32> {
    get_flags_fd(&open_ro(p)?)
}

fn set_flags(p: &Path, flags: u32) -> io::Result<()> {
    set_flags_fd(&open_ro(p)?, flags)
}

/// Flags by path, panicking on failure (setting up a scenario).
fn must_set(p: &Path, flags: u32) {
    set_flags(p, flags).unwrap_or_else(|e| panic!("set flags {flags:#x} on {}: {e}", p.display()));
}

/// `chattr ARGS PATH`: ok, or chattr's complaint.
fn chattr(args: &str, p: &Path) -> Res {
    let out = Command::new("chattr")
        .arg(args)
        .arg(p)
        .output()
        .expect("run chattr");
    if out.status.success() {
        Ok("ok".into())
    } else {
        Err(errno_in(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// The attribute column of `lsattr -d PATH`.
fn lsattr(p: &Path) -> String {
    let out = Command::new("lsattr")
        .arg("-d")
        .arg(p)
        .output()
        .expect("run lsattr");
    assert!(
        out.status.success(),
        "lsattr {}: {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The errno an e2fsprogs or coreutils message names (they print
/// strerror), -1 if none: the two sides' messages differ in their paths.
fn errno_in(msg: &str) -> i32 {
    [
        libc::EPERM,
        libc::EACCES,
        libc::EOPNOTSUPP,
        libc::EINVAL,
        libc::ENOTTY,
        libc::ENOENT,
    ]
    .into_iter()
    .find(|&e| {
        // "Operation not permitted (os error 1)": the strerror part.
        let text = io::Error::from_raw_os_error(e).to_string();
        msg.contains(text.split(" (os error").next().unwrap())
    })
    .unwrap_or(-1)
}

/// A shell script as nobody: its exit status and the errno its error
/// output names (sh_as_nobody of `common`, with the output kept).
fn as_nobody(script: &str) -> Res {
    use std::os::unix::process::CommandExt;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run sh");
    if out.status.success() {
        Ok("ok".into())
    } else {
        Err(errno_in(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// The steps of one scenario: (label, result), compared side by side.
#[derive(Default)]
struct Steps(Vec<(String, Res)>);

impl Steps {
    fn add(&mut self, label: impl Into<String>, r: Res) {
        self.0.push((label.into(), r));
    }
}

/// Which side a scenario runs on (some calls differ by design).
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Kernel,
}

/// Run `f` on a fresh mkfs.ext2 image mounted by ext2mfr (with `opts`)
/// and on an identical one mounted by the kernel; e2fsck must find both
/// images clean. Returns the steps of each side.
fn on_both(opts: &str, f: impl Fn(&Path, Side) -> Steps) -> (Steps, Steps) {
    let img = mkfs_ext2(16 * 1024, 1024, &["-I", "256"]);
    let kimg = copy_image(&img, "kernel.img");
    let m = mount(&img.path, opts);
    let ours = f(m.path(), Side::Ours);
    m.unmount_and_check();
    fsck_strict(&img.path);
    let k = KernelMount::new(&kimg);
    let theirs = f(k.path(), Side::Kernel);
    k.unmount();
    fsck_strict(&kimg);
    (ours, theirs)
}

/// Every step the same on both sides, but the open of a file for writing
/// (`[open]`), which only the kernel's driver refuses (see the module's
/// comment); those must be ok here and EPERM there.
fn assert_parity((ours, theirs): (Steps, Steps)) -> Vec<(String, Res)> {
    assert_eq!(ours.0.len(), theirs.0.len(), "the same steps on both sides");
    let mut diffs = Vec::new();
    for ((label, a), (_, b)) in ours.0.iter().zip(&theirs.0) {
        if label.starts_with("[open]") {
            if a != b && !(a.is_ok() && *b == Err(libc::EPERM)) {
                diffs.push(format!("{label}: ext2mfr {a:?}, kernel {b:?}"));
            }
        } else if a != b {
            diffs.push(format!("{label}: ext2mfr {a:?}, kernel {b:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "ext2mfr differs from the kernel's ext2:\n{}",
        diffs.join("\n")
    );
    ours.0
}

/// The result a step must have had (on both sides, after parity).
fn expect(steps: &[(String, Res)], label: &str, want: Res) {
    let got = &steps
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no step '{label}'"))
        .1;
    assert_eq!(*got, want, "step '{label}'");
}

/// Open with `opts` and write `data`, in two steps: the open (`[open]`,
/// see `assert_parity`) and the write.
fn open_and_write(s: &mut Steps, what: &str, p: &Path, opts: &mut OpenOptions, data: &[u8]) {
    match opts.open(p) {
        Ok(mut f) => {
            s.add(format!("[open] {what}"), Ok("ok".into()));
            s.add(
                format!("write {what}"),
                res(f.write(data), |n| n.to_string()),
            );
        }
        Err(e) => {
            let r = Err(e.raw_os_error().unwrap_or(-1));
            s.add(format!("[open] {what}"), r.clone());
            // The kernel's driver stopped at the open; the write is
            // refused with the same errno on our side.
            s.add(format!("write {what}"), r);
        }
    }
}

fn contents(p: &Path) -> Res {
    res(std::fs::read(p), |v| {
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Each flag bit alone, on a file and on a directory: set from none, then
/// read back; and combinations whose order of checks matters.
#[test]
fn which_flags_can_be_set() {
    let _serial = setup();
    let steps = assert_parity(on_both("", |root, side| {
        let mut s = Steps::default();
        std::fs::write(root.join("f"), "x").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        for name in ["f", "d"] {
            let p = root.join(name);
            for bit in 0..32 {
                let flag = 1u32 << bit;
                if flag == JOURNAL_DATA {
                    continue; // below: needs CAP_SYS_RESOURCE
                }
                let r = ok(set_flags(&p, flag));
                s.add(format!("{name} set {flag:#x}"), r);
                s.add(
                    format!("{name} then {flag:#x}"),
                    res(get_flags(&p), |f| format!("{f:#x}")),
                );
                must_set(&p, 0);
            }
        }
        let f = root.join("f");
        // Immutable and staying so: nothing else may change.
        must_set(&f, IMMUTABLE);
        s.add("+d on +i", ok(set_flags(&f, IMMUTABLE | NODUMP)));
        s.add("+i again", ok(set_flags(&f, IMMUTABLE)));
        s.add("-i +a at once", ok(set_flags(&f, APPEND)));
        s.add("after", res(get_flags(&f), |f| format!("{f:#x}")));
        must_set(&f, 0);
        // The extents flag (no extents on ext2): EINVAL, but the other
        // flags of the call are stored.
        s.add("+e +d", ok(set_flags(&f, EXTENTS | NODUMP)));
        s.add("after +e +d", res(get_flags(&f), |f| format!("{f:#x}")));
        must_set(&f, 0);
        // Data journalling: the kernel asks for CAP_SYS_RESOURCE, which
        // root may lack (this machine's root does); the daemon only sees
        // uid 0. Not compared (DIFFERENCES.md); nothing is stored either way.
        let j = set_flags(&f, JOURNAL_DATA);
        match side {
            Side::Ours => assert!(j.is_ok(), "+j as root: {j:?}"),
            Side::Kernel => {}
        }
        s.add(
            "after +j: not stored",
            res(get_flags(&f), |f| format!("{f:#x}")),
        );
        // chattr and lsattr, as users use them.
        s.add("chattr +dASu", chattr("+dASu", &f));
        s.add("lsattr", Ok(lsattr(&f)));
        s.add("chattr -dASu", chattr("-dASu", &f));
        s.add("chattr +D on a file", chattr("+D", &f));
        s.add("chattr +DT on a dir", chattr("+DT", &root.join("d")));
        s.add("lsattr dir", Ok(lsattr(&root.join("d"))));
        s.add("chattr -DT", chattr("-DT", &root.join("d")));
        // FUSE asks only about regular files and directories; the
        // kernel's driver refuses a FIFO as well.
        let fifo = root.join("p");
        mknod(&fifo, libc::S_IFIFO | 0o644, 0).unwrap();
        s.add(
            "fifo getflags",
            res(get_flags(&fifo), |f| format!("{f:#x}")),
        );
        s
    }));
    // What the bits are on both sides (the kernel's driver is the
    // reference; these pin down that the comparison compared something).
    expect(&steps, "f set 0x10", Ok("ok".into()));
    expect(&steps, "f then 0x10", Ok("0x10".into()));
    expect(&steps, "f set 0x10000", Err(libc::EOPNOTSUPP));
    expect(&steps, "d then 0x10000", Ok("0x10000".into()));
    expect(&steps, "f then 0x100", Ok("0x0".into()));
    expect(&steps, "f set 0x2000", Err(libc::EOPNOTSUPP));
    expect(&steps, "+d on +i", Err(libc::EPERM));
    expect(&steps, "-i +a at once", Ok("ok".into()));
    expect(&steps, "+e +d", Err(libc::EINVAL));
    expect(&steps, "after +e +d", Ok(format!("{NODUMP:#x}")));
    let shown = steps.iter().find(|(l, _)| l == "lsattr").unwrap().1.clone();
    let shown = shown.expect("lsattr");
    for c in ['d', 'A', 'S', 'u'] {
        assert!(shown.contains(c), "lsattr shows '{shown}', no {c}");
    }
    expect(&steps, "fifo getflags", Err(libc::ENOTTY));
}

/// An immutable file: read, yes; write, truncate, any attribute change,
/// unlink, rename, link, xattr change: EPERM. After chattr -i all works.
#[test]
fn immutable_file() {
    let _serial = setup();
    let steps = assert_parity(on_both("", |root, _| {
        let mut s = Steps::default();
        let f = root.join("f");
        std::fs::write(&f, "data").unwrap();
        let early = OpenOptions::new().write(true).open(&f).unwrap();
        s.add("chattr +i", chattr("+i", &f));
        s.add("lsattr", Ok(lsattr(&f)));
        s.add("read", contents(&f));
        open_and_write(&mut s, "O_WRONLY", &f, OpenOptions::new().write(true), b"x");
        open_and_write(
            &mut s,
            "O_APPEND",
            &f,
            OpenOptions::new().append(true),
            b"x",
        );
        // A truncating open reaches the daemon (a setattr): EPERM there too.
        s.add(
            "open O_TRUNC",
            ok(OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&f)
                .map(drop)),
        );
        s.add(
            "write through a descriptor opened before +i",
            res((&early).write(b"x"), |n| n.to_string()),
        );
        s.add("truncate", ok(truncate(&f, 1)));
        s.add(
            "chmod",
            ok(std::fs::set_permissions(
                &f,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )),
        );
        s.add("chown", ok(chown(&f, 1, 1)));
        s.add("chown -1 -1", ok(chown(&f, u32::MAX, u32::MAX)));
        s.add("utimes given", ok(utimens(&f, (1, 0), (2, 0))));
        s.add(
            "utimes now",
            ok(utimens(&f, (0, libc::UTIME_NOW), (0, libc::UTIME_NOW))),
        );
        s.add("unlink", ok(std::fs::remove_file(&f)));
        s.add("rename", ok(std::fs::rename(&f, root.join("g"))));
        std::fs::write(root.join("other"), "o").unwrap();
        s.add(
            "rename over it",
            ok(std::fs::rename(root.join("other"), &f)),
        );
        s.add("link", ok(std::fs::hard_link(&f, root.join("l"))));
        s.add("setxattr", ok(setxattr(&f, "user.x", b"1")));
        s.add("removexattr", ok(removexattr(&f, "user.x")));
        s.add("read after all that", contents(&f));
        s.add("chattr -i", chattr("-i", &f));
        open_and_write(
            &mut s,
            "O_APPEND after -i",
            &f,
            OpenOptions::new().append(true),
            b"!",
        );
        s.add("read after -i", contents(&f));
        s.add("unlink after -i", ok(std::fs::remove_file(&f)));
        s
    }));
    expect(&steps, "write O_WRONLY", Err(libc::EPERM));
    expect(&steps, "open O_TRUNC", Err(libc::EPERM));
    expect(&steps, "utimes now", Err(libc::EPERM));
    expect(&steps, "unlink", Err(libc::EPERM));
    expect(&steps, "read after all that", Ok("data".into()));
    expect(&steps, "read after -i", Ok("data!".into()));
}

/// An append-only file: writes through O_APPEND only, no truncate, no
/// chmod, chown or explicit times (a touch is fine), no unlink, rename or
/// link.
#[test]
fn append_only_file() {
    let _serial = setup();
    let steps = assert_parity(on_both("", |root, _| {
        let mut s = Steps::default();
        let f = root.join("f");
        std::fs::write(&f, "log:").unwrap();
        s.add("chattr +a", chattr("+a", &f));
        open_and_write(
            &mut s,
            "O_APPEND",
            &f,
            OpenOptions::new().append(true),
            b"one;",
        );
        open_and_write(&mut s, "O_WRONLY", &f, OpenOptions::new().write(true), b"X");
        open_and_write(
            &mut s,
            "O_RDWR",
            &f,
            OpenOptions::new().read(true).write(true),
            b"X",
        );
        // pwrite through O_APPEND appends on Linux, wherever it points.
        let a = OpenOptions::new().append(true).open(&f).unwrap();
        s.add(
            "pwrite at 0 with O_APPEND",
            res(a.write_at(b"two;", 0), |n| n.to_string()),
        );
        s.add("ftruncate with O_APPEND", ok(a.set_len(0)));
        drop(a);
        s.add(
            "open O_APPEND|O_TRUNC",
            // (O_TRUNC by hand: std refuses append with truncate.)
            ok(OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_TRUNC)
                .open(&f)
                .map(drop)),
        );
        s.add("truncate", ok(truncate(&f, 0)));
        s.add(
            "chmod",
            ok(std::fs::set_permissions(
                &f,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )),
        );
        s.add("chown", ok(chown(&f, 1, 1)));
        s.add("chown -1 -1", ok(chown(&f, u32::MAX, u32::MAX)));
        s.add("utimes given", ok(utimens(&f, (1, 0), (2, 0))));
        s.add(
            "utimes now",
            ok(utimens(&f, (0, libc::UTIME_NOW), (0, libc::UTIME_NOW))),
        );
        s.add("unlink", ok(std::fs::remove_file(&f)));
        s.add("rename", ok(std::fs::rename(&f, root.join("g"))));
        s.add("link", ok(std::fs::hard_link(&f, root.join("l"))));
        s.add("setxattr", ok(setxattr(&f, "user.x", b"1")));
        s.add("read", contents(&f));
        s.add("chattr -a", chattr("-a", &f));
        s.add("truncate after -a", ok(truncate(&f, 3)));
        s.add("read after -a", contents(&f));
        s
    }));
    expect(&steps, "write O_APPEND", Ok("4".into()));
    expect(&steps, "write O_WRONLY", Err(libc::EPERM));
    expect(&steps, "truncate", Err(libc::EPERM));
    expect(&steps, "utimes now", Ok("ok".into()));
    expect(&steps, "read", Ok("log:one;two;".into()));
    expect(&steps, "read after -a", Ok("log".into()));
}

/// Directories: immutable takes no new entries and loses none; append-only
/// takes new entries but loses none. The files inside stay writable.
#[test]
fn immutable_and_append_only_directories() {
    let _serial = setup();
    let steps = assert_parity(on_both("", |root, _| {
        let mut s = Steps::default();
        let p = |r: &str| root.join(r);
        for d in ["i", "a"] {
            std::fs::create_dir(p(d)).unwrap();
            std::fs::create_dir(p(&format!("{d}/sub"))).unwrap();
            std::fs::write(p(&format!("{d}/x")), "x").unwrap();
            std::fs::write(p(&format!("{d}/y")), "y").unwrap();
            std::fs::write(p(&format!("out-{d}")), "o").unwrap();
        }
        s.add("chattr +i i", chattr("+i", &p("i")));
        s.add("chattr +a a", chattr("+a", &p("a")));
        for d in ["i", "a"] {
            let q = |r: &str| p(&format!("{d}/{r}"));
            s.add(format!("{d}: create"), ok(File::create(q("new")).map(drop)));
            s.add(format!("{d}: mkdir"), ok(std::fs::create_dir(q("newdir"))));
            s.add(
                format!("{d}: symlink"),
                ok(std::os::unix::fs::symlink("x", q("sl"))),
            );
            s.add(
                format!("{d}: mknod"),
                ok(mknod(&q("fifo"), libc::S_IFIFO | 0o644, 0)),
            );
            s.add(
                format!("{d}: link into"),
                ok(std::fs::hard_link(p(&format!("out-{d}")), q("linked"))),
            );
            s.add(format!("{d}: unlink"), ok(std::fs::remove_file(q("x"))));
            s.add(format!("{d}: rmdir"), ok(std::fs::remove_dir(q("sub"))));
            s.add(
                format!("{d}: rmdir non-empty self"),
                ok(std::fs::remove_dir(p(d))),
            );
            s.add(
                format!("{d}: rename within"),
                ok(std::fs::rename(q("x"), q("x2"))),
            );
            s.add(
                format!("{d}: rename out"),
                ok(std::fs::rename(q("y"), p(&format!("moved-{d}")))),
            );
            std::fs::write(p(&format!("in-{d}")), "i").unwrap();
            s.add(
                format!("{d}: rename in"),
                ok(std::fs::rename(p(&format!("in-{d}")), q("came"))),
            );
            std::fs::write(p(&format!("over-{d}")), "v").unwrap();
            s.add(
                format!("{d}: rename over an entry"),
                ok(std::fs::rename(p(&format!("over-{d}")), q("y"))),
            );
            s.add(
                format!("{d}: exchange"),
                ok(rename2(
                    &p(&format!("out-{d}")),
                    &q("y"),
                    libc::RENAME_EXCHANGE,
                )),
            );
            s.add(
                format!("{d}: write a file inside"),
                ok(OpenOptions::new()
                    .append(true)
                    .open(q("y"))
                    .and_then(|mut f| f.write_all(b"+"))),
            );
            s.add(
                format!("{d}: chmod"),
                ok(std::fs::set_permissions(
                    p(d),
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )),
            );
            s.add(format!("{d}: names"), Ok(names_of(&p(d)).join(",")));
        }
        s.add("chattr -i i", chattr("-i", &p("i")));
        s.add("chattr -a a", chattr("-a", &p("a")));
        s.add("unlink after -i", ok(std::fs::remove_file(p("i/x"))));
        s.add("unlink after -a", ok(std::fs::remove_file(p("a/x"))));
        s
    }));
    expect(&steps, "i: create", Err(libc::EPERM));
    expect(&steps, "a: create", Ok("ok".into()));
    expect(&steps, "a: unlink", Err(libc::EPERM));
    expect(&steps, "a: rename in", Ok("ok".into()));
    expect(&steps, "i: names", Ok("sub,x,y".into()));
}

/// New inodes take their directory's inheritable flags (EXT4_FL_INHERITED)
/// masked by their type; files get neither dirsync nor the directory-only
/// flags, symlinks and FIFOs only nodump and noatime.
#[test]
fn new_inodes_inherit_flags() {
    let _serial = setup();
    let inherit = |root: &Path| {
        let mut s = Steps::default();
        let d = root.join("d");
        std::fs::create_dir(&d).unwrap();
        // s u S d A D T, and notail (t).
        s.add("chattr", chattr("+suSdADTt", &d));
        s.add("dir", res(get_flags(&d), |f| format!("{f:#x}")));
        std::fs::write(d.join("f"), "x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("f", d.join("sl")).unwrap();
        mknod(&d.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        s.add("file", res(get_flags(&d.join("f")), |f| format!("{f:#x}")));
        s.add(
            "subdir",
            res(get_flags(&d.join("sub")), |f| format!("{f:#x}")),
        );
        s
    };
    let img = mkfs_ext2(16 * 1024, 1024, &["-I", "256"]);
    let kimg = copy_image(&img, "kernel.img");
    let m = mount(&img.path, "");
    let ours = inherit(m.path());
    m.unmount_and_check();
    let k = KernelMount::new(&kimg);
    let theirs = inherit(k.path());
    k.unmount();
    let steps = assert_parity((ours, theirs));
    expect(
        &steps,
        "file",
        Ok(format!(
            "{:#x}",
            0x1 | 0x2 | SYNC | NODUMP | NOATIME | 0x8000
        )),
    );
    // Symlinks and FIFOs cannot be opened for the ioctl: their flags as
    // e2fsprogs reads them from the two images.
    for name in ["d/sl", "d/fifo", "d/f", "d/sub"] {
        let flags = |img: &Path| {
            debugfs(img, &format!("stat {name}"))
                .split_whitespace()
                .skip_while(|w| *w != "Flags:")
                .nth(1)
                .unwrap_or("?")
                .to_string()
        };
        assert_eq!(flags(&img.path), flags(&kimg), "flags of {name} on disk");
    }
    assert!(debugfs(&img.path, "stat d/fifo").contains("Flags: 0xc0"));
    fsck_strict(&img.path);
    fsck_strict(&kimg);
}

/// Only the owner (or root) sets flags, and only root sets or clears
/// immutable and append-only (CAP_LINUX_IMMUTABLE).
#[test]
fn who_may_set_flags() {
    let _serial = setup();
    let steps = assert_parity(on_both("allow_other", |root, _| {
        let mut s = Steps::default();
        let mine = root.join("nobodys");
        let roots = root.join("roots");
        std::fs::write(&mine, "n").unwrap();
        std::fs::write(&roots, "r").unwrap();
        chown(&mine, 65534, 65534).unwrap();
        let q = |p: &Path| format!("'{}'", p.display());
        s.add("own file +d", as_nobody(&format!("chattr +d {}", q(&mine))));
        s.add("own file +i", as_nobody(&format!("chattr +i {}", q(&mine))));
        s.add("own file +a", as_nobody(&format!("chattr +a {}", q(&mine))));
        s.add(
            "root's file +d",
            as_nobody(&format!("chattr +d {}", q(&roots))),
        );
        s.add(
            "lsattr as nobody",
            as_nobody(&format!("lsattr {}", q(&roots))),
        );
        s.add("root +i", chattr("+i", &mine));
        s.add("own file -i", as_nobody(&format!("chattr -i {}", q(&mine))));
        s.add(
            "own file -d on +i",
            as_nobody(&format!("chattr -d {}", q(&mine))),
        );
        s.add("root -i", chattr("-i", &mine));
        s.add("flags", Ok(lsattr(&mine)));
        s
    }));
    expect(&steps, "own file +d", Ok("ok".into()));
    expect(&steps, "own file +i", Err(libc::EPERM));
    expect(&steps, "root's file +d", Err(libc::EPERM));
    expect(&steps, "own file -i", Err(libc::EPERM));
}

/// noatime: a read leaves atime alone. (Without it both drivers update
/// atime at moments that differ over FUSE, see DIFFERENCES.md `atime`.)
#[test]
fn noatime_flag_keeps_atime() {
    let _serial = setup();
    assert_parity(on_both("", |root, _| {
        let mut s = Steps::default();
        let f = root.join("f");
        std::fs::write(&f, "data").unwrap();
        s.add("chattr +A", chattr("+A", &f));
        // An atime older than mtime: relatime would update it on a read.
        utimens(&f, (1000, 0), (0, libc::UTIME_OMIT)).unwrap();
        let mut file = File::open(&f).unwrap();
        drop_cache(&file);
        let mut buf = String::new();
        file.read_to_string(&mut buf).unwrap();
        s.add("read", Ok(buf));
        s.add(
            "atime",
            Ok(std::fs::metadata(&f).unwrap().atime().to_string()),
        );
        s
    }));
    // And the same file without +A does get a new atime from the daemon
    // (the flag, not a mount without atime, kept it).
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let m = mount(&img.path, "");
    let f = m.p("f");
    std::fs::write(&f, "data").unwrap();
    utimens(&f, (1000, 0), (0, libc::UTIME_OMIT)).unwrap();
    let mut file = File::open(&f).unwrap();
    drop_cache(&file);
    let mut buf = String::new();
    file.read_to_string(&mut buf).unwrap();
    drop(file);
    wait_until("atime updated without +A", || {
        std::fs::metadata(&f).unwrap().atime() > 1000
    });
    m.unmount_and_check();
}

/// sync (and dirsync on a directory): the change is on the image when the
/// call returns. The daemon mounts with a long commit interval, so nothing
/// else would have written it back yet; e2fsprogs reads the image file.
#[test]
fn sync_and_dirsync_write_through() {
    let _serial = setup();
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let m = mount(&img.path, "commit=600");
    std::fs::create_dir(m.p("plain")).unwrap();
    std::fs::create_dir(m.p("ds")).unwrap();
    std::fs::write(m.p("s"), "").unwrap();
    std::fs::write(m.p("p"), "").unwrap();
    must_set(&m.p("s"), SYNC);
    must_set(&m.p("ds"), DIRSYNC);
    // Everything so far on the image (then only what follows is new).
    File::open(m.path()).unwrap().sync_all().unwrap();
    // (debugfs reads the image under the running daemon: fine for what
    // was written back, which is all it looks at.)
    std::fs::write(m.p("s"), "synced data").unwrap();
    assert_eq!(debugfs_cat(&img.path, "/s"), b"synced data");
    File::create(m.p("ds/new")).unwrap();
    assert!(debugfs(&img.path, "ls -l /ds").contains("new"));
    // Without the flags, not yet: the flags did the writing back. (After
    // the synced calls: their write-back takes all that is dirty.)
    std::fs::write(m.p("p"), "plain data").unwrap();
    File::create(m.p("plain/new")).unwrap();
    assert_ne!(debugfs_cat(&img.path, "/p"), b"plain data");
    assert!(!debugfs(&img.path, "ls -l /plain").contains("new"));
    // A file made in a sync directory inherits sync.
    must_set(&m.p("plain"), SYNC);
    std::fs::write(m.p("plain/child"), "child data").unwrap();
    assert_eq!(get_flags(&m.p("plain/child")).unwrap() & SYNC, SYNC);
    assert_eq!(debugfs_cat(&img.path, "/plain/child"), b"child data");
    m.unmount_and_check();
    fsck_strict(&img.path);
}

/// Flags set by one driver are read by the other, and e2fsck agrees.
#[test]
fn flags_cross_between_drivers() {
    let _serial = setup();
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    // The kernel's driver sets, ext2mfr reads.
    let k = KernelMount::new(&img.path);
    std::fs::write(k.path().join("k"), "k").unwrap();
    std::fs::create_dir(k.path().join("kd")).unwrap();
    assert_eq!(chattr("+iAd", &k.path().join("k")), Ok("ok".into()));
    assert_eq!(chattr("+aSD", &k.path().join("kd")), Ok("ok".into()));
    let kernel_view = (lsattr(&k.path().join("k")), lsattr(&k.path().join("kd")));
    k.unmount();
    fsck_strict(&img.path);
    let m = mount(&img.path, "");
    assert_eq!(
        (lsattr(&m.p("k")), lsattr(&m.p("kd"))),
        kernel_view,
        "ext2mfr reads what the kernel's driver set"
    );
    // ... and enforces it.
    assert_errno!(std::fs::remove_file(m.p("k")), libc::EPERM);
    File::create(m.p("kd/new")).unwrap();
    assert_errno!(std::fs::remove_file(m.p("kd/new")), libc::EPERM);
    // ext2mfr sets, the kernel's driver reads and enforces.
    assert_eq!(chattr("-i", &m.p("k")), Ok("ok".into()));
    assert_eq!(chattr("-a", &m.p("kd")), Ok("ok".into()));
    std::fs::write(m.p("m"), "m").unwrap();
    assert_eq!(chattr("+ad", &m.p("m")), Ok("ok".into()));
    let our_view = (lsattr(&m.p("k")), lsattr(&m.p("kd")), lsattr(&m.p("m")));
    m.unmount_and_check();
    fsck_strict(&img.path);
    let k = KernelMount::new(&img.path);
    assert_eq!(
        (
            lsattr(&k.path().join("k")),
            lsattr(&k.path().join("kd")),
            lsattr(&k.path().join("m"))
        ),
        our_view,
        "the kernel's driver reads what ext2mfr set"
    );
    assert_errno!(std::fs::remove_file(k.path().join("m")), libc::EPERM);
    assert_eq!(chattr("-a", &k.path().join("m")), Ok("ok".into()));
    k.unmount();
    fsck_strict(&img.path);
}
