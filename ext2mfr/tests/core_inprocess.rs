//! The core without FUSE: mount an image made by mkfs in a temporary
//! directory, serve typed requests (`Ext2::serve`, as any transport does),
//! unmount, and let the real e2fsck judge. Block-map edges, directory
//! inserts and removals, frees, and the gate's retry and restart paths.

mod common;
use common::*;

use ext2mfr::fs::attr::{Attr, Ctx, SetAttr};
use ext2mfr::fs::{Ext2, FsConfig};
use ext2mfr::request::{Reply, Request};
use std::collections::BTreeSet;
use std::sync::Arc;

const ROOT: u32 = 2;

fn mount(img: &Image) -> Arc<Ext2> {
    Ext2::mount(&img.path, FsConfig::default()).expect("mount")
}

fn unmount_and_check(fs: Arc<Ext2>, img: &Image) {
    fs.unmount().expect("unmount");
    drop(fs);
    fsck_clean(&img.path);
}

fn serve(fs: &Ext2, r: Request) -> Result<Reply, i32> {
    fs.serve(&Ctx::ROOT, &r).map_err(|e| e.errno())
}

fn entry(fs: &Ext2, r: Request) -> Attr {
    match serve(fs, r) {
        Ok(Reply::Entry(a)) => a,
        other => panic!("expected an entry, got {other:?}"),
    }
}

fn create(fs: &Ext2, parent: u32, name: &str) -> u32 {
    entry(
        fs,
        Request::Mknod {
            parent,
            name: name.as_bytes(),
            mode: libc::S_IFREG | 0o644,
            umask: 0,
            rdev: 0,
        },
    )
    .ino
}

fn write(fs: &Ext2, ino: u32, offset: u64, data: &[u8]) {
    let r = Request::Write {
        ino,
        offset,
        data,
        kill_suidgid: false,
        append: false,
    };
    assert!(matches!(serve(fs, r), Ok(Reply::Written(n)) if n == data.len()));
}

fn read(fs: &Ext2, ino: u32, offset: u64, size: u32) -> Vec<u8> {
    match serve(fs, Request::Read { ino, offset, size }) {
        Ok(Reply::Data(d)) => d,
        other => panic!("read: {other:?}"),
    }
}

fn truncate(fs: &Ext2, ino: u32, size: u64) {
    let set = SetAttr {
        size: Some(size),
        ..Default::default()
    };
    assert!(
        matches!(serve(fs, Request::Setattr { ino, set }), Ok(Reply::Attr(a)) if a.size == size)
    );
}

/// The daemon's counters (`ext2mfr.stats`).
fn stats(fs: &Ext2) -> serde_json::Value {
    let r = Request::Getxattr {
        ino: ROOT,
        name: b"ext2mfr.stats",
    };
    match serve(fs, r) {
        Ok(Reply::Data(d)) => serde_json::from_slice(&d).unwrap(),
        other => panic!("stats: {other:?}"),
    }
}

fn names(fs: &Ext2, dir: u32) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut offset = 0;
    loop {
        let Ok(Reply::Entries(batch)) = serve(fs, Request::Readdir { ino: dir, offset }) else {
            panic!("readdir");
        };
        let Some(last) = batch.last() else {
            return out;
        };
        offset = last.next;
        out.extend(
            batch
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned()),
        );
    }
}

/// Writes at the first and last block of each level of the block map
/// (direct, single, double, triple indirect) read back; truncates to each
/// boundary free exactly what lies past it.
#[test]
fn block_map_edges_write_read_truncate() {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let fs = mount(&img);
    let free0 = fs.free_blocks();
    let ino = create(&fs, ROOT, "edges");
    let p = 256u64; // pointers per 1 KiB block
    let edges = [
        0,
        11,
        12,
        12 + p - 1,
        12 + p,
        12 + p + p * p - 1,
        12 + p + p * p,
    ];
    for (k, &lblk) in edges.iter().enumerate() {
        write(&fs, ino, lblk * 1024 + 7, &[k as u8 + 1; 100]);
    }
    for (k, &lblk) in edges.iter().enumerate() {
        assert_eq!(read(&fs, ino, lblk * 1024 + 7, 100), vec![k as u8 + 1; 100]);
        // Around it: a hole reads as zeros.
        assert_eq!(read(&fs, ino, lblk * 1024, 7), vec![0; 7]);
    }
    for (k, &lblk) in edges.iter().enumerate().rev() {
        let end = lblk * 1024 + 50;
        truncate(&fs, ino, end);
        assert_eq!(read(&fs, ino, lblk * 1024 + 7, 100), vec![k as u8 + 1; 43]);
        // Extended again, what the truncate cut reads as zeros.
        truncate(&fs, ino, end + 57);
        assert_eq!(read(&fs, ino, end, 57), vec![0; 57]);
        truncate(&fs, ino, end);
    }
    truncate(&fs, ino, 0);
    serve(
        &fs,
        Request::Unlink {
            parent: ROOT,
            name: b"edges",
        },
    )
    .unwrap();
    // Everything the file and its indirect blocks took came back.
    assert_eq!(fs.free_blocks(), free0);
    unmount_and_check(fs, &img);
}

/// fallocate as a request: the kinds of inode the VFS turns away before
/// FUSE asks the daemon (here asked directly) get the VFS's errnos; modes
/// other than a punch are EOPNOTSUPP and change nothing; a punch across
/// every level frees exactly the blocks of the range and the indirect
/// blocks it covers whole, and the free count follows at commit.
#[test]
fn fallocate_requests() {
    const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let fs = mount(&img);
    let fa = |ino, offset, length, mode| {
        serve(
            &fs,
            Request::Fallocate {
                ino,
                offset,
                length,
                mode,
            },
        )
        .map(|_| ())
    };
    let node = |name: &str, mode: u32, rdev: u32| {
        entry(
            &fs,
            Request::Mknod {
                parent: ROOT,
                name: name.as_bytes(),
                mode,
                umask: 0,
                rdev,
            },
        )
        .ino
    };
    let fifo = node("fifo", libc::S_IFIFO | 0o644, 0);
    let chr = node("null", libc::S_IFCHR | 0o644, libc::makedev(1, 3) as u32);
    assert_eq!(fa(fifo, 0, 10, PUNCH), Err(libc::ESPIPE));
    assert_eq!(fa(chr, 0, 10, PUNCH), Err(libc::ENODEV));
    assert_eq!(fa(ROOT, 0, 10, PUNCH), Err(libc::EISDIR));

    let ino = create(&fs, ROOT, "f");
    let p = 256u64;
    // Blocks 0..(12 + p + 2p): direct, single and two double indirect children.
    let n = 12 + 3 * p;
    write(&fs, ino, 0, &vec![7u8; (n * 1024) as usize]);
    let blocks = |fs: &Ext2| match serve(fs, Request::Getattr { ino }) {
        Ok(Reply::Attr(a)) => a.blocks,
        other => panic!("getattr: {other:?}"),
    };
    let full = blocks(&fs);
    assert_eq!(full, (n + 1 + 1 + 2) * 2);
    assert_eq!(fa(ino, 0, 10, 0), Err(libc::EOPNOTSUPP));
    assert_eq!(
        fa(ino, 0, 10, libc::FALLOC_FL_ZERO_RANGE),
        Err(libc::EOPNOTSUPP)
    );
    assert_eq!(fa(ino, 0, 0, PUNCH), Err(libc::EINVAL));
    assert_eq!(fa(ino, 1 << 44, 10, PUNCH), Err(libc::EFBIG));
    assert_eq!(blocks(&fs), full);

    // From byte 100 of block 1 to 10 bytes into block 12 + 2p: blocks 2..12+2p
    // go, the single indirect block and the first double indirect child
    // with them (wholly covered); the double indirect block and its second
    // child stay.
    let free0 = fs.free_blocks();
    let (from, to) = (1024 + 100, (12 + 2 * p) * 1024 + 10);
    fa(ino, from, to - from, PUNCH).unwrap();
    let gone = (12 + 2 * p - 2) + 2;
    assert_eq!(blocks(&fs), full - gone * 2);
    assert_eq!(fs.free_blocks(), free0 + gone);
    let data = read(&fs, ino, 0, (n * 1024) as u32);
    for (pos, &b) in data.iter().enumerate() {
        let want = if (from..to).contains(&(pos as u64)) {
            0
        } else {
            7
        };
        assert_eq!(b, want, "byte {pos}");
    }
    unmount_and_check(fs, &img);
}

/// Names added to and removed from one directory over several blocks:
/// the listing is what was added and not removed, slots of removed names
/// are reused, and removing a name twice is ENOENT the second time.
#[test]
fn directory_insert_remove_reuse() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let fs = mount(&img);
    let dir = entry(
        &fs,
        Request::Mkdir {
            parent: ROOT,
            name: b"d",
            mode: 0o755,
            umask: 0,
        },
    )
    .ino;
    let mut want = BTreeSet::from([".".to_string(), "..".to_string()]);
    for i in 0..400 {
        let name = format!("entry-with-a-longer-name-{i:04}");
        create(&fs, dir, &name);
        want.insert(name);
    }
    for i in (0..400).step_by(2) {
        let name = format!("entry-with-a-longer-name-{i:04}");
        serve(
            &fs,
            Request::Unlink {
                parent: dir,
                name: name.as_bytes(),
            },
        )
        .unwrap();
        assert_eq!(
            serve(
                &fs,
                Request::Unlink {
                    parent: dir,
                    name: name.as_bytes()
                }
            )
            .err(),
            Some(libc::ENOENT)
        );
        want.remove(&name);
    }
    let size_before = serve(&fs, Request::Getattr { ino: dir });
    for i in 0..100 {
        let name = format!("new-{i}");
        create(&fs, dir, &name);
        want.insert(name);
    }
    // The new names went into the freed slots: the directory did not grow.
    let size_after = serve(&fs, Request::Getattr { ino: dir });
    match (size_before, size_after) {
        (Ok(Reply::Attr(a)), Ok(Reply::Attr(b))) => assert_eq!(a.size, b.size),
        other => panic!("getattr: {other:?}"),
    }
    assert_eq!(names(&fs, dir), want);
    unmount_and_check(fs, &img);
}

/// A directory block's name index (kept with the cached block, see
/// `dirent_index.rs`) answers as the block's bytes do through adds,
/// removals and their rollbacks: each change below faults at its n-th
/// fault site (n from 1 to 10: some before the entry is written, some
/// after) and is rolled back and retried. Every name is then found, and
/// every removed or never made one is not, here and after a remount (no
/// index); the tree matches.
#[test]
fn name_lookups_follow_changes_and_their_rollbacks() {
    faultinject::install(faultinject::Injector::new(faultinject::Config::default()));
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let fs = mount(&img);
    let mkdir = Request::Mkdir {
        parent: ROOT,
        name: b"d",
        mode: 0o755,
        umask: 0,
    };
    let dir = entry(&fs, mkdir).ino;
    let control = |fs: &Ext2, name: &str, value: &str| {
        let r = Request::Setxattr {
            ino: ROOT,
            name: name.as_bytes(),
            value: value.as_bytes(),
            flags: 0,
        };
        assert!(matches!(serve(fs, r), Ok(Reply::Done)), "{name}={value}");
    };
    let lookup = |fs: &Ext2, name: &str| {
        let r = Request::Lookup {
            parent: dir,
            name: name.as_bytes(),
        };
        match serve(fs, r) {
            Ok(Reply::Entry(a)) => Ok(a.ino),
            Err(e) => Err(e),
            other => panic!("lookup: {other:?}"),
        }
    };
    // Every name made is found with its inode; every one removed is not.
    let all_as_made =
        |fs: &Ext2, inos: &std::collections::BTreeMap<String, u32>, gone: &[String], when: &str| {
            for (name, ino) in inos {
                assert_eq!(lookup(fs, name), Ok(*ino), "{when}: {name}");
            }
            for name in gone {
                assert_eq!(lookup(fs, name), Err(libc::ENOENT), "{when}: {name}");
            }
        };
    let mut inos = std::collections::BTreeMap::new();
    for i in 0..60 {
        let name = format!("a-name-of-some-length-{i}");
        inos.insert(name.clone(), create(&fs, dir, &name));
    }
    let mut gone = Vec::new();
    for round in 0..40 {
        // (The lookups of the round before made the blocks' indexes.)
        control(&fs, "ext2mfr.fault_after", &(1 + round % 10).to_string());
        if round % 2 == 0 {
            let name = format!("late-{round}");
            inos.insert(name.clone(), create(&fs, dir, &name));
        } else {
            let name = format!("a-name-of-some-length-{round}");
            let r = Request::Unlink {
                parent: dir,
                name: name.as_bytes(),
            };
            assert!(matches!(serve(&fs, r), Ok(Reply::Done)), "unlink {name}");
            inos.remove(&name);
            gone.push(name);
        }
        all_as_made(&fs, &inos, &gone, &format!("round {round}"));
    }
    let want: BTreeSet<String> = inos
        .keys()
        .cloned()
        .chain([".".into(), "..".into()])
        .collect();
    assert_eq!(names(&fs, dir), want);
    // (The faults struck: most of the 40 changes were rolled back and
    // retried; one with fewer fault sites than its n ran through.)
    let retries = stats(&fs)["requests"]["retries"].as_u64().unwrap();
    assert!(retries >= 20, "{retries} retries");
    fs.unmount().expect("unmount");
    drop(fs);
    let fs = mount(&img);
    all_as_made(&fs, &inos, &gone, "after remount");
    unmount_and_check(fs, &img);
}

/// The gate's paths with the daemon's controls: every AMA reservation one
/// page short (restarts on a fresh estimate), and a fault at the N-th fault
/// site (rolled back and retried). Requests still succeed, nothing is
/// allocated beyond a reserve, and the image is clean.
#[test]
fn gate_restarts_and_retries() {
    faultinject::install(faultinject::Injector::new(faultinject::Config::default()));
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let fs = mount(&img);
    let control = |name: &str, value: &str| {
        let r = Request::Setxattr {
            ino: ROOT,
            name: name.as_bytes(),
            value: value.as_bytes(),
            flags: 0,
        };
        assert!(matches!(serve(&fs, r), Ok(Reply::Done)), "{name}={value}");
    };
    control("ext2mfr.short_estimates", "1");
    for i in 0..20 {
        let ino = create(&fs, ROOT, &format!("short-{i}"));
        write(&fs, ino, 0, &[i as u8; 5000]);
    }
    control("ext2mfr.short_estimates", "0");
    for i in 0..20 {
        control("ext2mfr.fault_after", "3");
        let ino = create(&fs, ROOT, &format!("fault-{i}"));
        write(&fs, ino, 0, &[i as u8; 3000]);
        assert_eq!(read(&fs, ino, 0, 3000), vec![i as u8; 3000]);
    }
    let stats = stats(&fs);
    assert!(stats["ama"]["restarts"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["requests"]["retries"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["requests"]["failed_after_fault"], 0, "{stats}");
    assert_eq!(stats["ama"]["under_allocations"], 0, "{stats}");
    assert_eq!(names(&fs, ROOT).len(), 2 + 1 + 40); // ., .., lost+found
    unmount_and_check(fs, &img);
}

/// A request that read a shared xattr block remembers it for sharing when
/// it commits. If, before that, other requests drop the block's last
/// reference and free it, the late note must not bring it back: the
/// block may be a file's data by then, and a setxattr taking a reference
/// to it would write a reference count into the file. (Found as a rare
/// e2fsck failure: a freed xattr block with one reference too many.)
#[test]
fn a_freed_xattr_block_is_not_remembered_by_a_late_reader() {
    use std::os::unix::fs::FileExt;
    let img = mkfs_ext2(16384, 1024, &["-I", "128"]);
    let fs = mount(&img);
    let value = [7u8; 200];
    let set = |fs: &Ext2, ino: u32| {
        let r = Request::Setxattr {
            ino,
            name: b"user.same",
            value: &value,
            flags: 0,
        };
        assert!(matches!(serve(fs, r), Ok(Reply::Done)));
    };
    let (a, b) = (create(&fs, ROOT, "a"), create(&fs, ROOT, "b"));
    set(&fs, a);
    set(&fs, b);
    unmount_and_check(fs, &img);
    // `a` and `b` share one block; its image, with one reference.
    let (blk, refs) = xattr_block(&img.path, "/a");
    assert_eq!((xattr_block(&img.path, "/b"), refs), ((blk, 2), 2));
    let mut image = vec![0u8; 1024];
    std::fs::File::open(&img.path)
        .unwrap()
        .read_exact_at(&mut image, blk * 1024)
        .unwrap();
    ext2mfr::format::xattr::set_block_refcount(&mut image, 1);

    // Mounted again, the mount remembers no block yet. The kernel holds
    // `a` (as after a lookup): unlinked, it stays until forgotten.
    let fs = mount(&img);
    fs.add_ref(a);
    assert!(serve(
        &fs,
        Request::Unlink {
            parent: ROOT,
            name: b"a"
        }
    )
    .is_ok());

    // A reader of `b`'s block that commits only after the block is freed.
    let (read_done, go_on) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            fs.rt
                .root(|| {
                    assert_eq!(fs.getxattr(b, b"user.same").unwrap(), value);
                    read_done.wait();
                    go_on.wait();
                })
                .unwrap();
        });
        read_done.wait();
        let r = Request::Removexattr {
            ino: b,
            name: b"user.same",
        };
        assert!(matches!(serve(&fs, r), Ok(Reply::Done)));
        fs.forget(a, 1); // the last reference: the block is freed
        go_on.wait();
    });

    // A file whose data is the block's old image, in the freed block.
    let data = create(&fs, ROOT, "data");
    write(&fs, data, 0, &image);
    fs.sync().unwrap();
    assert_eq!(
        debugfs(&img.path, "bmap /data 0").trim(),
        blk.to_string(),
        "the file's data went elsewhere: the test proves nothing"
    );
    // Equal attributes again: a new block, not a reference to the file.
    let c = create(&fs, ROOT, "c");
    set(&fs, c);
    assert!(
        read(&fs, data, 0, 1024) == image,
        "a setxattr wrote into a file"
    );
    unmount_and_check(fs, &img);
}
