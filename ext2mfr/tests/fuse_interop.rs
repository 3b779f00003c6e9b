//! Interoperability through real mounts: trees written by ext2mfr read back
//! by e2fsprogs (e2fsck, debugfs) and by the kernel's ext2 driver, and trees
//! written by the kernel's ext2 (then htree-indexed by `e2fsck -fyD`) read
//! back and changed by ext2mfr.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------
// A tree specification: what to create, and what to expect when reading back.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Kind {
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A regular file of `size` bytes: data at the given offsets, holes elsewhere.
    Sparse {
        size: u64,
        chunks: Vec<(u64, Vec<u8>)>,
    },
    Symlink(String),
    /// Another name for the regular file at this (earlier) path.
    HardLink(String),
    /// A device node, fifo or socket: `fmt` is S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK.
    Node {
        fmt: u32,
        rdev: u64,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    path: String,
    kind: Kind,
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: Option<i64>,
}

fn e(path: &str, kind: Kind, mode: u32) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode,
        owner: None,
        mtime: None,
    }
}

fn sparse_bytes(size: u64, chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    for (off, d) in chunks {
        v[*off as usize..*off as usize + d.len()].copy_from_slice(d);
    }
    v
}

fn many_name(i: usize) -> String {
    format!("entry_with_a_rather_long_name_{i:04}")
}

/// The standard tree: directories (also nested and empty), files of many
/// sizes (empty, partial block, direct, indirect, double indirect, a few
/// MiB), sparse files reaching triple-indirect blocks on 1 KiB file systems,
/// fast, slow and dangling symlinks, hard links, device nodes, a fifo and a
/// socket, odd modes and owners (also above 16 bits), fixed mtimes, and a
/// directory `many` with `many` entries.
fn standard_spec(many: usize, big: bool) -> Vec<Entry> {
    let long_target = format!("{}/target", "a_long_directory_name".repeat(9)); // slow symlink
    let mut s = vec![
        e("d1", Kind::Dir, 0o755),
        e("d1/sub", Kind::Dir, 0o700),
        e("d1/sub/deep", Kind::Dir, 0o751),
        e("empty_dir", Kind::Dir, 0o1777),
        e("f_empty", Kind::File(Vec::new()), 0o644),
        e(
            "f_small",
            Kind::File(b"hello, ext2 interop\n".to_vec()),
            0o640,
        ),
        e("d1/f_4k", Kind::File(pattern(1, 4096)), 0o600),
        e("d1/f_odd", Kind::File(pattern(2, 12_345)), 0o644),
        e("d1/sub/f_ind", Kind::File(pattern(3, 300_000)), 0o644),
        e(
            "d1/sub/deep/f_big",
            Kind::File(pattern(4, (3 << 20) + 777)),
            0o644,
        ),
        e("f_suid", Kind::File(pattern(6, 100)), 0o4755),
        e(
            "sparse",
            Kind::Sparse {
                size: (66 << 20) + 9000,
                chunks: vec![
                    (0, pattern(7, 5000)),
                    ((1 << 20) + 5, pattern(8, 5000)),
                    (66 << 20, pattern(9, 9000)),
                ],
            },
            0o644,
        ),
        e(
            "sparse_tail",
            Kind::Sparse {
                size: 10 << 20,
                chunks: vec![(3, pattern(10, 10))],
            },
            0o644,
        ),
        e("l_fast", Kind::Symlink("d1/f_odd".into()), 0o777),
        e("l_fast_max", Kind::Symlink("x".repeat(59)), 0o777),
        e("l_slow_min", Kind::Symlink("y".repeat(60)), 0o777),
        e("l_slow", Kind::Symlink(long_target), 0o777),
        e(
            "d1/l_dangling",
            Kind::Symlink("nonexistent/nowhere".into()),
            0o777,
        ),
        e("l_dir", Kind::Symlink("d1/sub".into()), 0o777),
        e("d1/sub/hl", Kind::HardLink("f_small".into()), 0),
        e("hl2", Kind::HardLink("f_small".into()), 0),
        e("d1/hl_big", Kind::HardLink("d1/sub/deep/f_big".into()), 0),
        e(
            "dev_c",
            Kind::Node {
                fmt: libc::S_IFCHR,
                rdev: libc::makedev(1, 3),
            },
            0o666,
        ),
        e(
            "dev_b",
            Kind::Node {
                fmt: libc::S_IFBLK,
                rdev: libc::makedev(8, 300),
            },
            0o660,
        ),
        e(
            "dev_big",
            Kind::Node {
                fmt: libc::S_IFCHR,
                rdev: libc::makedev(1000, 100_000),
            },
            0o600,
        ),
        e(
            "fifo",
            Kind::Node {
                fmt: libc::S_IFIFO,
                rdev: 0,
            },
            0o644,
        ),
        e(
            "sock",
            Kind::Node {
                fmt: libc::S_IFSOCK,
                rdev: 0,
            },
            0o755,
        ),
    ];
    if big {
        // Past 4 MiB: double indirect blocks even with 4 KiB blocks.
        s.push(e("f_5m", Kind::File(pattern(5, 5 << 20)), 0o755));
    }
    // Owners, also ones that need the high 16 bits of uid/gid.
    for (p, o) in [
        ("f_small", (1234, 5678)),
        ("d1/sub", (1000, 1000)),
        ("d1/f_odd", (70_000, 80_000)),
        ("l_fast", (42, 43)),
        ("dev_c", (7, 8)),
    ] {
        s.iter_mut().find(|x| x.path == p).unwrap().owner = Some(o);
    }
    if many > 0 {
        s.push(e("many", Kind::Dir, 0o755));
        for i in 0..many {
            let mut d = many_name(i).into_bytes();
            d.extend(pattern(100 + i as u64, i % 300));
            s.push(e(&format!("many/{}", many_name(i)), Kind::File(d), 0o644));
        }
    }
    // Fixed mtimes on everything but symlinks and extra hard-link names.
    for (k, x) in s.iter_mut().enumerate() {
        if !matches!(x.kind, Kind::Symlink(_) | Kind::HardLink(_)) {
            x.mtime = Some(1_500_000_000 + 7 * k as i64);
        }
    }
    s
}

fn set_times(p: &Path, mtime: i64) {
    utimensat(p, (mtime, 0), (mtime, 0), libc::AT_SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// Create the tree under `root` with ordinary system calls.
fn build_tree(root: &Path, spec: &[Entry]) {
    for x in spec {
        let p = root.join(&x.path);
        match &x.kind {
            Kind::Dir => {
                std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()))
            }
            Kind::File(d) => {
                std::fs::write(&p, d).unwrap_or_else(|e| panic!("write {}: {e}", p.display()))
            }
            Kind::Sparse { size, chunks } => {
                let f = std::fs::File::create(&p).unwrap();
                for (off, d) in chunks {
                    f.write_all_at(d, *off).unwrap();
                }
                f.set_len(*size).unwrap();
            }
            Kind::Symlink(t) => {
                symlink(t, &p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()))
            }
            Kind::HardLink(src) => std::fs::hard_link(root.join(src), &p).unwrap(),
            Kind::Node { fmt, rdev } => {
                mknod(&p, fmt | 0o600, *rdev)
                    .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
            }
        }
        if !matches!(x.kind, Kind::Symlink(_) | Kind::HardLink(_)) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(x.mode)).unwrap();
        }
        if let Some((u, g)) = x.owner {
            std::os::unix::fs::lchown(&p, Some(u), Some(g)).unwrap();
            if !matches!(x.kind, Kind::Symlink(_)) {
                // chown clears set-id bits: set the mode again.
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(x.mode)).unwrap();
            }
        }
    }
    // Last, so that adding entries does not move directory mtimes again.
    for x in spec {
        if let Some(t) = x.mtime {
            set_times(&root.join(&x.path), t);
        }
    }
}

fn expected_bytes(k: &Kind) -> Option<Vec<u8>> {
    match k {
        Kind::File(d) => Some(d.clone()),
        Kind::Sparse { size, chunks } => Some(sparse_bytes(*size, chunks)),
        _ => None,
    }
}

fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: contents differ: got {} bytes, want {}; first difference at {:?}",
            got.len(),
            want.len(),
            first
        );
    }
}

/// The path a hard-link name resolves to, and how many names each file has.
fn link_counts(spec: &[Entry]) -> BTreeMap<String, u64> {
    let mut n = BTreeMap::new();
    for x in spec {
        match &x.kind {
            Kind::File(_) | Kind::Sparse { .. } => {
                n.entry(x.path.clone()).or_insert(1);
            }
            Kind::HardLink(src) => *n.get_mut(src).expect("link source first") += 1,
            _ => {}
        }
    }
    n
}

fn entry_of<'a>(spec: &'a [Entry], path: &str) -> &'a Entry {
    spec.iter().find(|x| x.path == path).unwrap()
}

/// Read the tree back through the mounted file system at `root` with
/// ordinary system calls and compare names, types, modes, owners, sizes,
/// link counts, mtimes, device numbers, symlink targets and contents.
fn verify_tree(root: &Path, spec: &[Entry], label: &str) {
    let links = link_counts(spec);
    // Directory listings: exactly the expected names.
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    children.insert(String::new(), BTreeSet::new());
    for x in spec {
        let (parent, name) = match x.path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), x.path.clone()),
        };
        children.entry(parent).or_default().insert(name);
        if matches!(x.kind, Kind::Dir) {
            children.entry(x.path.clone()).or_default();
        }
    }
    for (dir, want) in &children {
        let p = root.join(dir);
        let got: BTreeSet<String> = std::fs::read_dir(&p)
            .unwrap_or_else(|e| panic!("{label}: readdir {}: {e}", p.display()))
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !(dir.is_empty() && n == "lost+found"))
            .collect();
        if &got != want {
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(want).collect();
            panic!("{label}: listing of '/{dir}': missing {missing:?}, unexpected {extra:?}");
        }
        // A directory's link count: itself, its '.', and each subdirectory's '..'.
        let subdirs = spec
            .iter()
            .filter(|x| {
                matches!(x.kind, Kind::Dir) && Path::new(&x.path).parent() == Some(Path::new(dir))
            })
            .count() as u64;
        let extra = if dir.is_empty() { 1 } else { 0 }; // lost+found
        assert_eq!(
            std::fs::metadata(&p).unwrap().nlink(),
            2 + subdirs + extra,
            "{label}: nlink of dir '/{dir}'"
        );
    }
    for x in spec {
        let p = root.join(&x.path);
        let md = std::fs::symlink_metadata(&p)
            .unwrap_or_else(|e| panic!("{label}: lstat {}: {e}", p.display()));
        let fmt = md.mode() & libc::S_IFMT;
        let what = format!("{label}: {}", x.path);
        let (want_fmt, want_mode) = match &x.kind {
            Kind::Dir => (libc::S_IFDIR, x.mode),
            Kind::File(_) | Kind::Sparse { .. } => (libc::S_IFREG, x.mode),
            Kind::Symlink(_) => (libc::S_IFLNK, 0o777),
            Kind::HardLink(src) => (libc::S_IFREG, entry_of(spec, src).mode),
            Kind::Node { fmt, .. } => (*fmt, x.mode),
        };
        assert_eq!(fmt, want_fmt, "{what}: file type");
        assert_eq!(md.mode() & 0o7777, want_mode, "{what}: mode");
        let owner = match &x.kind {
            Kind::HardLink(src) => entry_of(spec, src).owner,
            _ => x.owner,
        };
        assert_eq!(
            (md.uid(), md.gid()),
            owner.unwrap_or((0, 0)),
            "{what}: owner"
        );
        if let Some(t) = x.mtime {
            assert_eq!(md.mtime(), t, "{what}: mtime");
        }
        match &x.kind {
            Kind::File(_) | Kind::Sparse { .. } => {
                let want = expected_bytes(&x.kind).unwrap();
                assert_eq!(md.len(), want.len() as u64, "{what}: size");
                assert_eq!(md.nlink(), links[&x.path], "{what}: nlink");
                let got = std::fs::read(&p).unwrap_or_else(|e| panic!("{what}: read: {e}"));
                assert_bytes(&what, &got, &want);
                if let Kind::Sparse { chunks, .. } = &x.kind {
                    // Holes stay holes: only the chunks (and a few indirect blocks) are allocated.
                    let data: u64 = chunks.iter().map(|c| c.1.len() as u64).sum();
                    assert!(
                        md.blocks() * 512 <= data + (64 << 10),
                        "{what}: {} sectors allocated for a sparse file",
                        md.blocks()
                    );
                }
            }
            Kind::HardLink(src) => {
                let smd = std::fs::metadata(root.join(src)).unwrap();
                assert_eq!(
                    md.ino(),
                    smd.ino(),
                    "{what}: hard link to {src} has another inode"
                );
                assert_eq!(md.nlink(), links[src], "{what}: nlink");
            }
            Kind::Symlink(t) => {
                let got =
                    std::fs::read_link(&p).unwrap_or_else(|e| panic!("{what}: readlink: {e}"));
                assert_eq!(got, PathBuf::from(t), "{what}: symlink target");
                assert_eq!(md.len(), t.len() as u64, "{what}: symlink size");
            }
            Kind::Node { fmt, rdev } => {
                if *fmt == libc::S_IFCHR || *fmt == libc::S_IFBLK {
                    assert_eq!(md.rdev(), *rdev, "{what}: device number");
                }
                assert_eq!(md.len(), 0, "{what}: size");
            }
            Kind::Dir => {}
        }
    }
}

/// e2fsprogs' view of the unmounted image: every file's bytes through
/// `debugfs cat`, link counts, symlink targets and owners through `debugfs stat`.
fn verify_debugfs(image: &Path, spec: &[Entry]) {
    let links = link_counts(spec);
    for x in spec {
        let abs = format!("/{}", x.path);
        match &x.kind {
            Kind::File(_) | Kind::Sparse { .. } => {
                let want = expected_bytes(&x.kind).unwrap();
                assert_bytes(
                    &format!("debugfs cat {abs}"),
                    &debugfs_cat(image, &abs),
                    &want,
                );
                let st = debugfs_stat(image, &abs);
                assert_eq!(
                    stat_field(&st, "Links:"),
                    links[&x.path].to_string(),
                    "debugfs links of {abs}"
                );
                assert_eq!(
                    stat_field(&st, "Size:"),
                    want.len().to_string(),
                    "debugfs size of {abs}"
                );
                let (u, g) = x.owner.unwrap_or((0, 0));
                assert_eq!(
                    stat_field(&st, "User:"),
                    u.to_string(),
                    "debugfs uid of {abs}"
                );
                assert_eq!(
                    stat_field(&st, "Group:"),
                    g.to_string(),
                    "debugfs gid of {abs}"
                );
            }
            Kind::HardLink(src) => {
                let st = debugfs_stat(image, &abs);
                assert_eq!(
                    stat_field(&st, "Links:"),
                    links[src].to_string(),
                    "debugfs links of {abs}"
                );
                // Same inode as the source name.
                let a = stat_field(&st, "Inode:");
                let b = stat_field(&debugfs_stat(image, &format!("/{src}")), "Inode:");
                assert_eq!(a, b, "debugfs: {abs} and /{src} are different inodes");
            }
            Kind::Symlink(t) if t.len() < 60 => {
                let st = debugfs_stat(image, &abs);
                assert!(
                    st.contains(&format!("Fast link dest: \"{t}\"")),
                    "debugfs stat {abs}:\n{st}"
                );
            }
            Kind::Symlink(t) => {
                // A slow symlink's block holds the target.
                assert_eq!(
                    debugfs_cat(image, &abs),
                    t.as_bytes(),
                    "debugfs cat of slow symlink {abs}"
                );
            }
            _ => {}
        }
    }
}

fn mount_ext2mfr_build_and_check(img: &Image, label: &str, big: bool) {
    let spec = standard_spec(120, big);
    let m = Mount::new(&img.path, "");
    build_tree(m.path(), &spec);
    verify_tree(m.path(), &spec, &format!("{label}, just written"));
    m.unmount_and_check();
    verify_debugfs(&img.path, &spec);
    // Read it all again from a fresh mount (nothing cached).
    let m = Mount::new(&img.path, "ro");
    verify_tree(m.path(), &spec, &format!("{label}, remounted"));
    m.unmount_and_check();
}

#[test]
fn mkfs_ext2_1k_8m() {
    let img = mkfs_ext2(8 << 10, 1024, &[]);
    mount_ext2mfr_build_and_check(&img, "mkfs.ext2 1K/8M", false);
}

#[test]
fn mkfs_ext2_2k_64m() {
    let img = mkfs_ext2(64 << 10, 2048, &[]);
    mount_ext2mfr_build_and_check(&img, "mkfs.ext2 2K/64M", true);
}

#[test]
fn mkfs_ext2_4k_256m() {
    let img = mkfs_ext2(256 << 10, 4096, &[]);
    mount_ext2mfr_build_and_check(&img, "mkfs.ext2 4K/256M", true);
}

#[test]
fn mkfs_ext2mfr_1k_16m() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    mount_ext2mfr_build_and_check(&img, "mkfs.ext2mfr 1K/16M", true);
}

#[test]
fn mkfs_ext2mfr_4k_64m() {
    let img = mkfs_ext2mfr(64 << 20, 4096);
    mount_ext2mfr_build_and_check(&img, "mkfs.ext2mfr 4K/64M", true);
}

// ---------------------------------------------------------------------------
// The kernel's ext2 driver.
// ---------------------------------------------------------------------------

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    setxattr(p, name, value).unwrap_or_else(|e| panic!("setxattr {}: {e}", p.display()));
}

fn dir_names(p: &Path) -> BTreeSet<String> {
    names_of(p).into_iter().collect()
}

fn is_indexed(image: &Path, path: &str) -> bool {
    let flags = stat_field(&debugfs_stat(image, path), "Flags:");
    let v = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    v & 0x1000 != 0
}

/// Files the kernel's ext2 wrote (then htree-indexed by `e2fsck -fyD`) read
/// back by ext2mfr; changing an indexed directory keeps its index and
/// leaves e2fsck clean; and the kernel reads the changed directory back.
#[test]
fn kernel_written_read_by_ext2mfr() {
    const MANY: usize = 600;
    let img = mkfs_ext2(32 << 10, 1024, &[]);
    let spec = standard_spec(MANY, true);
    let k = KernelMount::new(&img.path);
    build_tree(k.path(), &spec);
    set_xattr(&k.path().join("f_small"), "user.color", b"blue");
    set_xattr(&k.path().join("d1"), "user.note", &pattern(11, 300));
    // A small value (kept in the inode's extra space by ext4) and a large
    // one (in an xattr block) on one inode.
    set_xattr(&k.path().join("d1/f_odd"), "user.s", b"x");
    set_xattr(&k.path().join("d1/f_odd"), "user.big", &pattern(12, 400));
    verify_tree(k.path(), &spec, "kernel, as written"); // sanity check of the spec itself
    k.unmount();
    fsck_clean(&img.path);

    // Build htree indexes on the large directories.
    fsck_index_directories(&img.path);
    fsck_clean(&img.path);
    assert!(
        is_indexed(&img.path, "/many"),
        "e2fsck -fyD did not index /many; the test would prove nothing"
    );

    let m = Mount::new(&img.path, "");
    verify_tree(m.path(), &spec, "ext2mfr reading the kernel's tree");
    assert_eq!(
        getxattr(&m.p("f_small"), "user.color", 4096).unwrap(),
        b"blue"
    );
    assert_eq!(
        getxattr(&m.p("d1"), "user.note", 4096).unwrap(),
        pattern(11, 300)
    );
    assert_eq!(xattr_names(&m.p("f_small")), ["user.color"]);
    assert_eq!(getxattr(&m.p("d1/f_odd"), "user.s", 4096).unwrap(), b"x");
    assert_eq!(
        getxattr(&m.p("d1/f_odd"), "user.big", 4096).unwrap(),
        pattern(12, 400)
    );
    let mut names = xattr_names(&m.p("d1/f_odd"));
    names.sort();
    assert_eq!(names, ["user.big", "user.s"]);
    assert_eq!(
        getxattr(&m.p("f_empty"), "user.color", 4096)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENODATA)
    );

    // Change the indexed directory: add, remove, rename inside it.
    let many = m.p("many");
    std::fs::write(many.join("added_by_ext2mfr"), b"new").unwrap();
    std::fs::remove_file(many.join(many_name(300))).unwrap();
    std::fs::rename(many.join(many_name(301)), many.join("renamed_by_ext2mfr")).unwrap();
    // Enough new entries to need new directory blocks past the indexed ones.
    for i in 0..200 {
        std::fs::write(
            many.join(format!("added_{i:03}_by_ext2mfr_with_a_long_name")),
            i.to_string(),
        )
        .unwrap();
    }
    for i in (3..MANY).step_by(7) {
        std::fs::remove_file(many.join(many_name(i))).unwrap();
    }
    let mut want: BTreeSet<String> = (0..MANY).filter(|i| i % 7 != 3).map(many_name).collect();
    want.extend((0..200).map(|i| format!("added_{i:03}_by_ext2mfr_with_a_long_name")));
    want.remove(&many_name(300));
    want.remove(&many_name(301));
    want.insert("added_by_ext2mfr".into());
    want.insert("renamed_by_ext2mfr".into());
    assert_eq!(
        dir_names(&many),
        want,
        "ext2mfr listing of /many after changes"
    );
    // Move another indexed directory to a new parent: its '..' lives in the
    // htree root block.
    let out = Command::new("mkdir").arg(m.p("many2")).status().unwrap();
    assert!(out.success());
    for i in 0..300 {
        std::fs::write(m.p(&format!("many2/{}", many_name(i))), b"2").unwrap();
    }
    m.unmount_and_check();
    // The index is kept through ext2mfr's changes (and e2fsck -fn, run
    // at the unmount, checked it); what ext2mfr grew past a block is
    // indexed too, as the kernel indexes it.
    assert!(
        is_indexed(&img.path, "/many"),
        "ext2mfr keeps the index of a directory it changes"
    );
    assert!(
        is_indexed(&img.path, "/many2"),
        "ext2mfr indexes what it grows"
    );
    fsck_index_directories(&img.path);
    assert!(
        is_indexed(&img.path, "/many2"),
        "e2fsck -fyD did not index /many2"
    );
    let m = Mount::new(&img.path, "");
    std::fs::rename(m.p("many2"), m.p("d1/sub/many2")).unwrap();
    assert_eq!(
        std::fs::metadata(m.p("d1/sub/many2/..")).unwrap().ino(),
        std::fs::metadata(m.p("d1/sub")).unwrap().ino()
    );
    assert_eq!(dir_names(&m.p("d1/sub/many2")).len(), 300);
    m.unmount_and_check();
    assert_eq!(debugfs_cat(&img.path, "/many/added_by_ext2mfr"), b"new");
    assert!(
        debugfs(&img.path, "ls -l /d1/sub/many2/..").contains("many2"),
        "debugfs: '..' of the moved directory"
    );

    // And the kernel reads the directories ext2mfr changed.
    let k = KernelMount::new(&img.path);
    assert_eq!(dir_names(&k.path().join("d1/sub/many2")).len(), 300);
    assert_eq!(
        dir_names(&k.path().join("many")),
        want,
        "kernel listing of /many after ext2mfr's changes"
    );
    let mut renamed = many_name(301).into_bytes();
    renamed.extend(pattern(100 + 301, 301 % 300));
    assert_eq!(
        std::fs::read(k.path().join("many/renamed_by_ext2mfr")).unwrap(),
        renamed
    );
    assert_eq!(
        std::fs::read(k.path().join("many/added_by_ext2mfr")).unwrap(),
        b"new"
    );
    // The kernel can go on changing it.
    std::fs::write(k.path().join("many/added_by_kernel"), b"k").unwrap();
    std::fs::remove_file(k.path().join("many/added_000_by_ext2mfr_with_a_long_name")).unwrap();
    k.unmount();
    fsck_clean(&img.path);
}

/// The other way round: ext2mfr writes, the kernel's ext2 reads everything
/// back, then deletes most of it (walking and freeing ext2mfr's block maps
/// and directories), and e2fsck stays clean.
fn ext2mfr_written_kernel_reads(img: &Image, label: &str) {
    let spec = standard_spec(600, true);
    let m = Mount::new(&img.path, "");
    build_tree(m.path(), &spec);
    m.unmount_and_check();

    let k = KernelMount::new(&img.path);
    verify_tree(
        k.path(),
        &spec,
        &format!("{label}: kernel reading ext2mfr's tree"),
    );
    std::fs::remove_dir_all(k.path().join("many")).unwrap();
    std::fs::remove_dir_all(k.path().join("d1")).unwrap();
    for f in ["f_5m", "sparse", "sparse_tail", "l_slow"] {
        std::fs::remove_file(k.path().join(f)).unwrap();
    }
    k.unmount();
    fsck_clean(&img.path);

    // ext2mfr sees the kernel's deletions.
    let m = Mount::new(&img.path, "");
    let names = dir_names(m.path());
    for gone in ["many", "d1", "f_5m", "sparse", "l_slow"] {
        assert!(
            !names.contains(gone),
            "{label}: {gone} still listed after the kernel deleted it"
        );
    }
    assert_eq!(std::fs::read(m.p("hl2")).unwrap(), b"hello, ext2 interop\n");
    assert_eq!(
        std::fs::metadata(m.p("hl2")).unwrap().nlink(),
        2,
        "{label}: f_small lost a name with d1"
    );
    m.unmount_and_check();
}

#[test]
fn ext2mfr_written_kernel_reads_mkfs_ext2_4k() {
    let img = mkfs_ext2(64 << 10, 4096, &[]);
    ext2mfr_written_kernel_reads(&img, "mkfs.ext2 4K/64M");
}

#[test]
fn ext2mfr_written_kernel_reads_mkfs_ext2mfr_1k() {
    let img = mkfs_ext2mfr(32 << 20, 1024);
    ext2mfr_written_kernel_reads(&img, "mkfs.ext2mfr 1K/32M");
}

/// Files past 2 GiB (large_file), through triple-indirect blocks, on images
/// made without large_file: ext2mfr must set the feature; e2fsck, debugfs
/// and the kernel read the data back; truncating back frees every level.
fn huge_sparse(bs: u32) {
    let img = mkfs_ext2(64 << 10, bs, &["-O", "^large_file"]);
    let chunks: Vec<(u64, Vec<u8>)> = vec![
        (0, pattern(21, 3000)),
        ((2 << 30) - 10, pattern(22, 5000)), // across the 2 GiB line
        (5 << 30, pattern(23, 4096)),        // triple indirect with 4 KiB blocks
        (10 << 30, pattern(24, 777)),        // triple indirect with 1 KiB blocks
    ];
    let size = (10u64 << 30) + 777;
    let read_back = |root: &Path, label: &str| {
        let f = std::fs::File::open(root.join("huge")).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), size, "{label}: size");
        assert!(
            md.blocks() * 512 < (1 << 20),
            "{label}: {} sectors allocated for a sparse file",
            md.blocks()
        );
        for (off, d) in &chunks {
            let mut got = vec![0u8; d.len() + 200];
            let at = off.saturating_sub(100);
            let n = f.read_at(&mut got, at).unwrap();
            got.truncate(n);
            let mut want = vec![0u8; (off - at) as usize];
            want.extend_from_slice(d);
            want.extend(std::iter::repeat_n(0, got.len().saturating_sub(want.len())));
            assert_bytes(&format!("{label}: huge at {off}"), &got, &want);
        }
        let mut hole = vec![1u8; 4096];
        f.read_exact_at(&mut hole, 7 << 30).unwrap();
        assert!(
            hole.iter().all(|&b| b == 0),
            "{label}: a hole reads as zeros"
        );
    };
    let m = Mount::new(&img.path, "");
    {
        let f = std::fs::File::create(m.p("huge")).unwrap();
        for (off, d) in &chunks {
            f.write_all_at(d, *off).unwrap();
        }
        if bs == 1024 {
            // Past the largest file a 1 KiB block map can address (about 16 GiB).
            let e = f.write_all_at(b"x", 17 << 30).unwrap_err();
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EFBIG),
                "write past the maximum file size: {e}"
            );
        }
    }
    read_back(m.path(), "ext2mfr");
    m.unmount_and_check();
    let features = dumpe2fs_h(&img.path);
    assert!(
        dump_field(&features, "Filesystem features").contains("large_file"),
        "large_file not set:\n{features}"
    );
    assert_eq!(
        stat_field(&debugfs_stat(&img.path, "/huge"), "Size:"),
        size.to_string()
    );

    let k = KernelMount::new(&img.path);
    read_back(k.path(), "kernel");
    k.unmount();
    fsck_clean(&img.path);

    // Truncate through the triple, double and single indirect levels.
    let m = Mount::new(&img.path, "");
    let before = statvfs(m.path()).f_bfree;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.p("huge"))
        .unwrap();
    f.set_len((4 << 30) + 123).unwrap();
    f.set_len(100_000).unwrap();
    f.set_len(150_000).unwrap(); // extend again: a hole, not old data
    drop(f);
    let mut want = sparse_bytes(150_000, &chunks[..1]);
    want.truncate(150_000);
    assert_bytes(
        "after truncating",
        &std::fs::read(m.p("huge")).unwrap(),
        &want,
    );
    assert!(
        statvfs(m.path()).f_bfree > before,
        "truncating freed no blocks"
    );
    m.unmount_and_check();
    assert_bytes(
        "debugfs cat after truncating",
        &debugfs_cat(&img.path, "/huge"),
        &want,
    );
}

#[test]
fn huge_sparse_file_1k() {
    huge_sparse(1024);
}

#[test]
fn huge_sparse_file_4k() {
    huge_sparse(4096);
}
