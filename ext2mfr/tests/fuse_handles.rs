//! File handles through the mount: name_to_handle_at / open_by_handle_at
//! (what an NFS export uses) must keep working after the kernel has
//! forgotten the inode. The kernel's FUSE then decodes a handle (node id
//! and generation) by asking the daemon for "." of that node id, and for
//! ".." to reconnect a directory to the tree; a handle whose inode was
//! deleted, or deleted and reused (another generation), is ESTALE.
//!
//! Every scenario runs on ext2mfr and on the kernel's own ext2 driver on
//! identical images, and the two must agree (errnos, contents, paths).
//! Inode numbers are compared within a side only: the two allocators may
//! number new files differently (DIFFERENCES.md, `st_ino`).

mod common;
use common::*;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `MAX_HANDLE_SZ` of <fcntl.h>.
const MAX_HANDLE_SZ: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
#[derive(Clone)]
struct Handle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

impl Handle {
    /// Where the handle keeps the inode's generation: FUSE's handles
    /// (types 0x81, 0x82) are node id (8 bytes) then generation; ext4's
    /// (FILEID_INO32_GEN 1, with the parent 2) inode (4 bytes) then
    /// generation.
    fn generation_at(&self) -> usize {
        match self.handle_type {
            0x81 | 0x82 => 8,
            1 | 2 => 4,
            t => panic!("a handle of unknown type {t:#x}"),
        }
    }

    /// The same handle naming another generation of its inode.
    fn with_other_generation(&self) -> Handle {
        let mut h = self.clone();
        let at = h.generation_at();
        let g = u32::from_ne_bytes(h.f_handle[at..at + 4].try_into().unwrap());
        h.f_handle[at..at + 4].copy_from_slice(&g.wrapping_add(1).to_ne_bytes());
        h
    }
}

fn name_to_handle(p: &Path) -> io::Result<Handle> {
    let mut h = Handle {
        handle_bytes: MAX_HANDLE_SZ as u32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: a valid C string; `h` is a file_handle with handle_bytes of room.
    cvt(unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            (&mut h as *mut Handle).cast(),
            &mut mount_id,
            0,
        )
    })?;
    Ok(h)
}

/// open_by_handle_at on the file system of `mnt` (an open descriptor of
/// the mount's root; needs CAP_DAC_READ_SEARCH, which root has).
fn open_by_handle(mnt: &File, h: &Handle, flags: libc::c_int) -> io::Result<File> {
    let mut h = h.clone();
    // SAFETY: a valid descriptor and file_handle.
    let fd = unsafe {
        libc::open_by_handle_at(
            mnt.as_raw_fd(),
            (&mut h as *mut Handle).cast(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Write back, then make the kernel drop every unused dentry and inode:
/// FUSE sends FORGET for each, and a handle can only be decoded by asking
/// the daemon again.
fn drop_caches() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (as root)");
}

/// The daemon's count of lookups (AMA prices every request, so its
/// per-operation counters count them); `None` when AMA is off
/// (`FUSE_OPS_OPTS=baseline`) or on the kernel's side.
fn lookups(root: &Path) -> Option<u64> {
    let c = getxattr(root, "ext2mfr.stats", 1 << 16).ok()?;
    let c: serde_json::Value = serde_json::from_slice(&c).ok()?;
    c["ama"]["by_op"]["lookup"]["requests"].as_u64()
}

/// A readable summary of what an opened handle refers to: a file's
/// contents, or a directory's names and the path the kernel reconnected
/// it to (relative to the mount).
fn describe(f: &mut File, root: &Path) -> String {
    if f.metadata().unwrap().is_dir() {
        let fdpath = format!("/proc/self/fd/{}", f.as_raw_fd());
        let names = names_of(Path::new(&fdpath)).join(",");
        let at = std::fs::read_link(&fdpath).unwrap();
        let rel = at.strip_prefix(root).unwrap_or(&at).display().to_string();
        format!("dir /{rel} [{names}]")
    } else {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        format!("file {s:?}")
    }
}

/// Result of a call, as the two sides are compared: a value or an errno.
fn outcome<T>(r: io::Result<T>, f: impl FnOnce(T) -> String) -> Result<String, i32> {
    r.map(f).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Run `f` on a fresh mkfs.ext2 image mounted by ext2mfr and on an
/// identical one mounted by the kernel; both images must be clean after.
/// Returns (ours, kernel's).
fn on_both<T>(f: impl Fn(&Path) -> T) -> (T, T) {
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let kimg = copy_image(&img, "kernel.img");
    let m = mount(&img.path, "");
    let ours = f(m.path());
    m.unmount_and_check();
    fsck_strict(&img.path);
    let k = KernelMount::new(&kimg);
    let theirs = f(k.path());
    k.unmount();
    fsck_strict(&kimg);
    (ours, theirs)
}

/// Files, directories, a hard link, in subdirectories: handles taken,
/// caches dropped, and every handle opens the right inode with the right
/// contents; a directory comes back connected at its path (through "..").
#[test]
fn handles_open_the_right_files_after_the_kernel_forgot_them() {
    let _serial = setup();
    let (ours, theirs) = on_both(|root| {
        let p = |r: &str| root.join(r);
        std::fs::create_dir_all(p("d/e/f")).unwrap();
        std::fs::write(p("top"), "top file").unwrap();
        std::fs::write(p("d/one"), "in d").unwrap();
        std::fs::write(p("d/e/two"), "in d/e").unwrap();
        std::fs::write(p("d/e/f/three"), "in d/e/f").unwrap();
        // A hard link in another directory: both names, one inode.
        std::fs::hard_link(p("d/e/two"), p("d/f-link")).unwrap();
        let paths = [
            "",
            "top",
            "d",
            "d/one",
            "d/e",
            "d/e/two",
            "d/e/f",
            "d/e/f/three",
            "d/f-link",
        ];
        // (What each is, known now: a stat after the caches are dropped
        // would bring the inode back into them.)
        let taken: Vec<(&str, Handle, u64, bool)> = paths
            .iter()
            .map(|r| {
                let h = name_to_handle(&p(r)).unwrap_or_else(|e| panic!("handle of /{r}: {e}"));
                let md = std::fs::metadata(p(r)).unwrap();
                (*r, h, md.ino(), md.is_dir())
            })
            .collect();
        // The two names of the hard link make the same handle.
        let (_, a, _, _) = &taken[5];
        let (_, b, _, _) = &taken[8];
        assert_eq!(
            a.f_handle[..a.handle_bytes as usize],
            b.f_handle[..b.handle_bytes as usize]
        );
        let mnt = File::open(root).unwrap();
        drop_caches();
        let before = lookups(root);
        let mut seen = Vec::new();
        for (r, h, ino, is_dir) in &taken {
            let flags = if *is_dir {
                libc::O_RDONLY | libc::O_DIRECTORY
            } else {
                libc::O_RDONLY
            };
            let mut f = open_by_handle(&mnt, h, flags)
                .unwrap_or_else(|e| panic!("open_by_handle_at of /{r}: {e}"));
            assert_eq!(f.metadata().unwrap().ino(), *ino, "the inode of /{r}");
            seen.push(format!("/{r}: {}", describe(&mut f, root)));
        }
        // The handles were decoded by the daemon (the kernel had dropped
        // the inodes), not from the kernel's cache.
        if let (Some(b), Some(a)) = (before, lookups(root)) {
            assert!(a > b, "no LOOKUP reached the daemon ({b} -> {a})");
        }
        seen
    });
    assert_eq!(ours, theirs, "ext2mfr (left) and the kernel's ext2 (right)");
    assert_eq!(ours.len(), 9);
}

/// A deleted file's handle is ESTALE, whether or not its inode number
/// has been given to a new file since; the new file's own handle works.
/// A handle naming another generation of a live inode is ESTALE too.
#[test]
fn handles_of_deleted_and_reused_inodes_are_stale() {
    let _serial = setup();
    let (ours, theirs) = on_both(|root| {
        let p = |r: &str| root.join(r);
        std::fs::create_dir(p("d")).unwrap();
        std::fs::write(p("d/kept"), "kept").unwrap();
        std::fs::write(p("d/gone"), "gone").unwrap();
        let gone = name_to_handle(&p("d/gone")).unwrap();
        let kept = name_to_handle(&p("d/kept")).unwrap();
        let mnt = File::open(root).unwrap();
        let mut out = Vec::new();

        // Deleted, its number not (knowingly) reused.
        std::fs::remove_file(p("d/gone")).unwrap();
        drop_caches();
        out.push(outcome(open_by_handle(&mnt, &gone, libc::O_RDONLY), |_| {
            "opened".into()
        }));

        // Deleted and reused: a victim's number goes to a new file. The
        // kernel's allocator skips numbers freed in an earlier second for
        // a minute (ext4's recently_deleted, without a journal), so the
        // new file must come in the same second as the delete; a try that
        // straddles a second boundary is tried again with a new victim.
        let mut reused = None;
        'tries: for t in 0..10 {
            let victim = p(&format!("d/victim{t}"));
            std::fs::write(&victim, "old").unwrap();
            let ino = std::fs::metadata(&victim).unwrap().ino();
            let h = name_to_handle(&victim).unwrap();
            std::fs::remove_file(&victim).unwrap();
            // ext2mfr frees the number when the kernel forgets the inode (a
            // FORGET shortly after the unlink): create until it comes back.
            for n in 0..200 {
                let new = p(&format!("d/new{t}-{n}"));
                std::fs::write(&new, format!("new {n}")).unwrap();
                if std::fs::metadata(&new).unwrap().ino() == ino {
                    reused = Some((h, new, ino));
                    break 'tries;
                }
            }
        }
        let (old, new, ino) = reused.expect("an inode number reused within 10 tries");
        let new_handle = name_to_handle(&new).unwrap();
        assert_ne!(
            old.f_handle[..old.handle_bytes as usize],
            new_handle.f_handle[..new_handle.handle_bytes as usize],
            "a reused inode got the handle (the generation) of its old file"
        );
        drop_caches();
        out.push(outcome(open_by_handle(&mnt, &old, libc::O_RDONLY), |_| {
            "opened".into()
        }));
        let f = open_by_handle(&mnt, &new_handle, libc::O_RDONLY).expect("the new file's handle");
        assert_eq!(f.metadata().unwrap().ino(), ino);

        // Another generation of a live inode (as a reused number's old
        // handle is, while the new file is cached by the kernel).
        out.push(outcome(
            open_by_handle(&mnt, &kept.with_other_generation(), libc::O_RDONLY),
            |_| "opened".into(),
        ));
        drop_caches();
        out.push(outcome(
            open_by_handle(&mnt, &kept.with_other_generation(), libc::O_RDONLY),
            |_| "opened".into(),
        ));
        // And the right one still opens.
        out.push(outcome(
            open_by_handle(&mnt, &kept, libc::O_RDONLY),
            |mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                s
            },
        ));
        out
    });
    assert_eq!(ours, theirs, "ext2mfr (left) and the kernel's ext2 (right)");
    let stale = Err(libc::ESTALE);
    assert_eq!(
        ours,
        vec![
            stale.clone(),
            stale.clone(),
            stale.clone(),
            stale,
            Ok("kept".into())
        ]
    );
}

/// A deleted directory's handle is ESTALE; so is a handle of an open
/// file that was deleted once it is closed and forgotten. While it is
/// open the kernel holds the inode, and the handle opens it (both sides).
#[test]
fn handles_of_removed_directories_and_open_unlinked_files() {
    let _serial = setup();
    let (ours, theirs) = on_both(|root| {
        let p = |r: &str| root.join(r);
        std::fs::create_dir_all(p("a/b")).unwrap();
        std::fs::write(p("a/open"), "still open").unwrap();
        let dir = name_to_handle(&p("a/b")).unwrap();
        let file = name_to_handle(&p("a/open")).unwrap();
        let parent = name_to_handle(&p("a")).unwrap();
        let mnt = File::open(root).unwrap();
        let mut out = Vec::new();
        std::fs::remove_dir(p("a/b")).unwrap();
        drop_caches();
        out.push(outcome(
            open_by_handle(&mnt, &dir, libc::O_RDONLY | libc::O_DIRECTORY),
            |_| "opened".into(),
        ));
        // Its parent's handle still opens (decoded, not refused wholesale).
        out.push(outcome(
            open_by_handle(&mnt, &parent, libc::O_RDONLY | libc::O_DIRECTORY),
            |mut f| describe(&mut f, root),
        ));
        let held = File::open(p("a/open")).unwrap();
        std::fs::remove_file(p("a/open")).unwrap();
        drop_caches();
        out.push(outcome(
            open_by_handle(&mnt, &file, libc::O_RDONLY),
            |mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                s
            },
        ));
        drop(held);
        drop_caches();
        out.push(outcome(open_by_handle(&mnt, &file, libc::O_RDONLY), |_| {
            "opened".into()
        }));
        out
    });
    assert_eq!(ours, theirs, "ext2mfr (left) and the kernel's ext2 (right)");
    assert_eq!(
        ours,
        vec![
            Err(libc::ESTALE),
            Ok("dir /a [open]".into()),
            Ok("still open".into()),
            Err(libc::ESTALE)
        ]
    );
}

/// Made-up handles never reach a wrong inode: node ids of no inode (free,
/// reserved, beyond the last, FUSE's unused 2) are ESTALE, not EIO.
#[test]
fn made_up_handles_are_stale() {
    let _serial = setup();
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let m = mount(&img.path, "");
    std::fs::write(m.p("f"), "x").unwrap();
    let real = name_to_handle(&m.p("f")).unwrap();
    assert_eq!(
        real.handle_type, 0x81,
        "FUSE's handle type (node id, generation)"
    );
    let mnt = File::open(m.path()).unwrap();
    drop_caches();
    // Node id 2 (ext2's root is FUSE's 1), 7 (the reserved resize
    // inode), 100 (free), and one past the last inode.
    let inodes = statvfs(m.path()).f_files;
    for nodeid in [2u64, 7, 100, inodes + 1, 1 << 40] {
        let mut h = real.clone();
        h.f_handle[..8].copy_from_slice(
            &[
                ((nodeid >> 32) as u32).to_ne_bytes(),
                (nodeid as u32).to_ne_bytes(),
            ]
            .concat(),
        );
        assert_errno!(open_by_handle(&mnt, &h, libc::O_RDONLY), libc::ESTALE);
    }
    // While the real one is decoded (ESTALE above is not just a mount
    // without export support, where every forgotten handle is ESTALE).
    drop_caches();
    let mut f = open_by_handle(&mnt, &real, libc::O_RDONLY).expect("the real handle");
    assert_eq!(describe(&mut f, m.path()), "file \"x\"");
    drop((f, mnt));
    m.unmount_and_check();
}

/// One side's mount: ext2mfr's or the kernel's.
enum Either {
    Ours(Mount),
    Kernel(KernelMount),
}

impl Either {
    fn new(ours: bool, img: &Path, kimg: &Path) -> Either {
        if ours {
            Either::Ours(mount(img, ""))
        } else {
            Either::Kernel(KernelMount::new(kimg))
        }
    }
    fn path(&self) -> &Path {
        match self {
            Either::Ours(m) => m.path(),
            Either::Kernel(k) => k.path(),
        }
    }
    fn unmount(self) {
        match self {
            Either::Ours(m) => m.unmount_and_check(),
            Either::Kernel(k) => k.unmount(),
        }
    }
}

/// A handle outlives the mount: node id and generation are the inode's
/// number and its i_generation on disk, so after an unmount and a new
/// daemon (nothing cached anywhere) it opens the same file, as the
/// kernel's ext2 handles do across mounts.
#[test]
fn handles_survive_a_remount() {
    let _serial = setup();
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    let kimg = copy_image(&img, "kernel.img");
    let mut results = Vec::new();
    for ours in [true, false] {
        let m = Either::new(ours, &img.path, &kimg);
        std::fs::create_dir(m.path().join("d")).unwrap();
        std::fs::write(m.path().join("d/f"), "before the remount").unwrap();
        let h = name_to_handle(&m.path().join("d/f")).unwrap();
        let ino = std::fs::metadata(m.path().join("d/f")).unwrap().ino();
        m.unmount();

        let m = Either::new(ours, &img.path, &kimg);
        let mnt = File::open(m.path()).unwrap();
        let mut f = open_by_handle(&mnt, &h, libc::O_RDONLY).expect("a handle of the last mount");
        assert_eq!(f.metadata().unwrap().ino(), ino);
        results.push(describe(&mut f, m.path()));
        drop((f, mnt));
        m.unmount();
    }
    fsck_strict(&img.path);
    fsck_strict(&kimg);
    assert_eq!(
        results[0], results[1],
        "ext2mfr (left), the kernel's ext2 (right)"
    );
    assert_eq!(results[0], "file \"before the remount\"");
}
