//! `ext2mfr::format` against `dumpe2fs` and `debugfs`: images made by the
//! real `mkfs.ext2` (with the features it enables by default: ext_attr,
//! resize_inode, dir_index, filetype, sparse_super, large_file) and by
//! mkfs.ext2mfr are read with `read_image_header` and compared field by field.
//!
//! Needs e2fsprogs (`mkfs.ext2`, `dumpe2fs`, `debugfs`, `e2fsck`).

use ext2mfr::format::{
    self, dirent, group_desc, inode, superblock::feature, GroupDesc, Inode, Superblock,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn run<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (is e2fsprogs installed?)"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------
// dumpe2fs output

#[derive(Debug, Default, Clone)]
struct DumpGroup {
    first: u32,
    last: u32,
    superblock: Option<u32>,
    gdt: Option<(u32, u32)>,
    block_bitmap: Option<u32>,
    inode_bitmap: Option<u32>,
    inode_table: Option<(u32, u32)>,
    counts: Option<(u32, u32, u32)>,
}

struct Dump {
    header: BTreeMap<String, String>,
    groups: Vec<DumpGroup>,
}

impl Dump {
    fn get(&self, key: &str) -> &str {
        self.header
            .get(key)
            .unwrap_or_else(|| panic!("dumpe2fs printed no '{key}'"))
    }
    fn num(&self, key: &str) -> i64 {
        let v = self.get(key);
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("dumpe2fs '{key}' is not a number: {v:?}"))
    }
}

fn lead_num(s: &str) -> u32 {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number at {s:?}"))
}

fn range(s: &str) -> (u32, u32) {
    let s = s.trim_start();
    let a = lead_num(s);
    let after = &s[s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())..];
    match after.strip_prefix('-') {
        Some(r) => (a, lead_num(r)),
        None => (a, a),
    }
}

fn after<'a>(line: &'a str, pat: &str) -> Option<&'a str> {
    line.find(pat).map(|i| &line[i + pat.len()..])
}

fn parse_dumpe2fs(out: &str) -> Dump {
    let mut header = BTreeMap::new();
    let mut groups: Vec<DumpGroup> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Group ") {
            let (idx, rest) = rest.split_once(':').expect("Group N:");
            assert_eq!(
                idx.trim().parse::<usize>().unwrap(),
                groups.len(),
                "group order"
            );
            let (first, last) = range(after(rest, "(Blocks ").expect("(Blocks a-b)"));
            groups.push(DumpGroup {
                first,
                last,
                ..Default::default()
            });
            continue;
        }
        if let Some(g) = groups.last_mut() {
            let l = line.trim();
            if let Some(r) = after(l, "superblock at ") {
                g.superblock = Some(lead_num(r));
            }
            if let Some(r) = after(l, "Group descriptors at ") {
                g.gdt = Some(range(r));
            }
            if let Some(r) = l.strip_prefix("Block bitmap at ") {
                g.block_bitmap = Some(lead_num(r));
            }
            if let Some(r) = l.strip_prefix("Inode bitmap at ") {
                g.inode_bitmap = Some(lead_num(r));
            }
            if let Some(r) = l.strip_prefix("Inode table at ") {
                g.inode_table = Some(range(r));
            }
            if l.contains(" free blocks, ") {
                let parts: Vec<&str> = l.split(", ").collect();
                g.counts = Some((lead_num(parts[0]), lead_num(parts[1]), lead_num(parts[2])));
            }
        } else if let Some((k, v)) = line.split_once(':') {
            header.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    Dump { header, groups }
}

fn dumpe2fs(img: &Path, header_only: bool) -> Dump {
    let mut args: Vec<&OsStr> = Vec::new();
    if header_only {
        args.push(OsStr::new("-h"));
    }
    args.push(img.as_os_str());
    let out = run("dumpe2fs", &args);
    assert!(
        out.status.success(),
        "dumpe2fs {}: {}",
        img.display(),
        text(&out.stderr)
    );
    parse_dumpe2fs(&text(&out.stdout))
}

/// `debugfs -R "ls -p DIR"`: (inode, mode, name) of the used entries.
fn debugfs_ls(img: &Path, dir: &str) -> BTreeSet<(u32, u16, Vec<u8>)> {
    let out = run(
        "debugfs",
        &[
            OsStr::new("-R"),
            OsStr::new(&format!("ls -p {dir}")),
            img.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "debugfs ls {dir}: {}",
        text(&out.stderr)
    );
    let mut set = BTreeSet::new();
    for line in text(&out.stdout).lines() {
        // /ino/mode/uid/gid/name/size/
        let f: Vec<&str> = line.split('/').collect();
        if f.len() < 7 {
            continue;
        }
        let ino: u32 = f[1].parse().unwrap();
        if ino == 0 {
            continue;
        }
        let mode = u16::from_str_radix(f[2], 8).unwrap();
        set.insert((ino, mode, f[5].as_bytes().to_vec()));
    }
    set
}

// ---------------------------------------------------------------------------
// What ext2mfr::format reads

const COMPAT_NAMES: &[(u32, &str)] = &[
    (feature::COMPAT_DIR_PREALLOC, "dir_prealloc"),
    (feature::COMPAT_IMAGIC_INODES, "imagic_inodes"),
    (feature::COMPAT_HAS_JOURNAL, "has_journal"),
    (feature::COMPAT_EXT_ATTR, "ext_attr"),
    (feature::COMPAT_RESIZE_INODE, "resize_inode"),
    (feature::COMPAT_DIR_INDEX, "dir_index"),
];

fn feature_set(sb: &Superblock) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    let compat = sb.s_feature_compat.get();
    for &(bit, name) in COMPAT_NAMES {
        if compat & bit != 0 {
            set.insert(name.to_string());
        }
    }
    let known: u32 = COMPAT_NAMES.iter().map(|(b, _)| b).sum();
    assert_eq!(compat & !known, 0, "unexpected COMPAT bits {compat:#x}");
    let split = |s: String| -> Vec<String> {
        s.split(", ")
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    };
    set.extend(split(feature::incompat_names(sb.s_feature_incompat.get())));
    set.extend(split(feature::ro_compat_names(
        sb.s_feature_ro_compat.get(),
    )));
    set
}

fn uuid_string(u: &[u8; 16]) -> String {
    if u.iter().all(|&b| b == 0) {
        return "<none>".into();
    }
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn read_inode(f: &std::fs::File, sb: &Superblock, descs: &[GroupDesc], ino: u32) -> Inode {
    let (g, off) = inode::inode_location(sb, ino);
    let table = descs[g as usize].bg_inode_table.get() as u64 * sb.block_size() as u64;
    let mut buf = vec![0u8; sb.inode_size() as usize];
    f.read_exact_at(&mut buf, table + off).unwrap();
    Inode::from_slot(&buf)
}

/// Entries of a directory read through ext2mfr::format (direct blocks only,
/// enough for root and lost+found of a fresh file system).
fn format_ls(
    f: &std::fs::File,
    sb: &Superblock,
    descs: &[GroupDesc],
    ino: u32,
) -> BTreeSet<(u32, u16, Vec<u8>)> {
    let dir = read_inode(f, sb, descs, ino);
    assert!(
        dir.is_dir(),
        "inode {ino} is not a directory: mode {:o}",
        dir.mode()
    );
    let bs = sb.block_size() as u64;
    let nblocks = dir.size().div_ceil(bs);
    assert!(
        nblocks >= 1 && nblocks <= inode::N_DIRECT as u64,
        "inode {ino}: {nblocks} blocks"
    );
    assert_eq!(
        dir.i_blocks.get() as u64,
        nblocks * bs / 512,
        "inode {ino}: i_blocks"
    );
    let mut set = BTreeSet::new();
    for i in 0..nblocks as usize {
        let mut blk = vec![0u8; bs as usize];
        f.read_exact_at(&mut blk, dir.block(i) as u64 * bs).unwrap();
        let entries = dirent::parse_block(&blk, sb.s_inodes_count.get())
            .unwrap_or_else(|e| panic!("inode {ino} block {i}: {e}"));
        assert_eq!(
            entries.iter().map(|e| e.rec_len).sum::<usize>(),
            bs as usize
        );
        for e in entries.iter().filter(|e| e.inode != 0) {
            let child = read_inode(f, sb, descs, e.inode);
            assert_eq!(
                e.file_type,
                dirent::file_type_of(child.kind().expect("child kind")),
                "file type of {:?}",
                String::from_utf8_lossy(e.name)
            );
            set.insert((e.inode, child.mode(), e.name.to_vec()));
        }
    }
    set
}

/// Compare everything `read_image_header` returns with dumpe2fs and debugfs.
fn compare(img: &Path, what: &str) {
    let f = std::fs::File::open(img).unwrap();
    let (sb, descs) = format::read_image_header(&f).unwrap_or_else(|e| panic!("{what}: {e}"));
    let h = dumpe2fs(img, true);
    let d = dumpe2fs(img, false);
    let n = |v: u32| v as i64;

    // Super block, field by field.
    assert_eq!(
        h.num("Inode count"),
        n(sb.s_inodes_count.get()),
        "{what}: inode count"
    );
    assert_eq!(
        h.num("Block count"),
        n(sb.s_blocks_count.get()),
        "{what}: block count"
    );
    assert_eq!(
        h.num("Reserved block count"),
        n(sb.s_r_blocks_count.get()),
        "{what}: reserved"
    );
    assert_eq!(
        h.num("Free blocks"),
        n(sb.s_free_blocks_count.get()),
        "{what}: free blocks"
    );
    assert_eq!(
        h.num("Free inodes"),
        n(sb.s_free_inodes_count.get()),
        "{what}: free inodes"
    );
    assert_eq!(
        h.num("First block"),
        n(sb.s_first_data_block.get()),
        "{what}: first block"
    );
    assert_eq!(
        h.num("Block size"),
        n(sb.block_size()),
        "{what}: block size"
    );
    assert_eq!(
        h.num("Fragment size"),
        n(1024 << sb.s_log_frag_size.get()),
        "{what}"
    );
    assert_eq!(
        h.num("Blocks per group"),
        n(sb.s_blocks_per_group.get()),
        "{what}: bpg"
    );
    assert_eq!(
        h.num("Fragments per group"),
        n(sb.s_frags_per_group.get()),
        "{what}"
    );
    assert_eq!(
        h.num("Inodes per group"),
        n(sb.s_inodes_per_group.get()),
        "{what}: ipg"
    );
    assert_eq!(
        h.num("Inode blocks per group"),
        n(group_desc::inode_table_blocks(&sb)),
        "{what}: inode table blocks"
    );
    assert_eq!(
        h.num("Inode size"),
        n(sb.inode_size()),
        "{what}: inode size"
    );
    assert_eq!(
        h.num("First inode"),
        n(sb.first_ino()),
        "{what}: first inode"
    );
    assert_eq!(
        h.get("Filesystem magic number"),
        format!("{:#06X}", sb.s_magic.get()).replace("0X", "0x")
    );
    assert_eq!(
        h.num("Filesystem revision #"),
        n(sb.s_rev_level.get()),
        "{what}: revision"
    );
    let state = sb.s_state.get();
    let expect_state = match (state & 1 != 0, state & 2 != 0) {
        (true, false) => "clean",
        (false, false) => "not clean",
        (true, true) => "clean with errors",
        (false, true) => "not clean with errors",
    };
    assert_eq!(
        h.get("Filesystem state"),
        expect_state,
        "{what}: state {state:#x}"
    );
    assert_eq!(
        h.get("Filesystem UUID"),
        uuid_string(&sb.s_uuid),
        "{what}: uuid"
    );
    let label = sb.volume_name();
    assert_eq!(
        h.get("Filesystem volume name"),
        if label.is_empty() {
            "<none>"
        } else {
            label.as_str()
        },
        "{what}: label"
    );
    let dump_features: BTreeSet<String> = h
        .get("Filesystem features")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(feature_set(&sb), dump_features, "{what}: features");
    assert_eq!(
        h.num("Mount count"),
        n(sb.s_mnt_count.get() as u32),
        "{what}"
    );
    assert_eq!(
        h.num("Maximum mount count"),
        sb.s_max_mnt_count.get() as i16 as i64,
        "{what}"
    );
    assert_eq!(
        h.num("Reserved blocks uid"),
        n(sb.s_def_resuid.get() as u32),
        "{what}"
    );
    assert_eq!(
        h.num("Reserved blocks gid"),
        n(sb.s_def_resgid.get() as u32),
        "{what}"
    );
    let rgdt = h
        .header
        .get("Reserved GDT blocks")
        .map(|v| v.parse::<i64>().unwrap())
        .unwrap_or(0);
    assert_eq!(
        rgdt,
        n(sb.s_reserved_gdt_blocks.get() as u32),
        "{what}: reserved gdt"
    );

    // Every group as dumpe2fs shows it.
    assert_eq!(
        d.groups.len(),
        sb.group_count() as usize,
        "{what}: group count"
    );
    assert_eq!(descs.len(), d.groups.len(), "{what}: descriptors");
    let itb = group_desc::inode_table_blocks(&sb);
    let (mut free_b, mut free_i) = (0u64, 0u64);
    for (g, (desc, dg)) in descs.iter().zip(&d.groups).enumerate() {
        let ctx = format!("{what}: group {g}");
        assert_eq!(
            group_desc::group_range(&sb, g as u32),
            (dg.first, dg.last),
            "{ctx}: range"
        );
        assert_eq!(
            sb.group_has_super(g as u32),
            dg.superblock.is_some(),
            "{ctx}: has super"
        );
        if let Some(at) = dg.superblock {
            assert_eq!(at, dg.first, "{ctx}");
            let gdt_first = dg.first + 1;
            if g == 0 {
                assert_eq!(gdt_first, group_desc::gdt_start(&sb), "{ctx}: gdt start");
            }
            let gdt_last = gdt_first + group_desc::gdt_blocks(&sb) - 1;
            assert_eq!(dg.gdt, Some((gdt_first, gdt_last)), "{ctx}: gdt blocks");
        }
        assert_eq!(
            Some(desc.bg_block_bitmap.get()),
            dg.block_bitmap,
            "{ctx}: block bitmap"
        );
        assert_eq!(
            Some(desc.bg_inode_bitmap.get()),
            dg.inode_bitmap,
            "{ctx}: inode bitmap"
        );
        let it = desc.bg_inode_table.get();
        assert_eq!(
            Some((it, it + itb - 1)),
            dg.inode_table,
            "{ctx}: inode table"
        );
        let counts = (
            desc.bg_free_blocks_count.get() as u32,
            desc.bg_free_inodes_count.get() as u32,
            desc.bg_used_dirs_count.get() as u32,
        );
        assert_eq!(
            Some(counts),
            dg.counts,
            "{ctx}: free blocks, free inodes, dirs"
        );
        free_b += counts.0 as u64;
        free_i += counts.1 as u64;
    }
    assert_eq!(
        free_b,
        sb.s_free_blocks_count.get() as u64,
        "{what}: sum of group free blocks"
    );
    assert_eq!(
        free_i,
        sb.s_free_inodes_count.get() as u64,
        "{what}: sum of group free inodes"
    );

    // A fresh file system's root and lost+found, through inode and dirent.
    let root = read_inode(&f, &sb, &descs, inode::ROOT_INO);
    assert_eq!(root.links(), 3, "{what}: root links");
    assert_eq!(
        format_ls(&f, &sb, &descs, inode::ROOT_INO),
        debugfs_ls(img, "/"),
        "{what}: /"
    );
    let lf = format_ls(&f, &sb, &descs, sb.first_ino());
    assert_eq!(lf, debugfs_ls(img, "/lost+found"), "{what}: /lost+found");
    assert_eq!(lf.len(), 2, "{what}: lost+found holds . and ..");

    // Features and state the way a mount sees them.
    let mc = sb.mount_check().unwrap();
    assert_eq!(mc.read_only_reason, None, "{what}");
    assert_eq!(
        mc.warnings.is_empty(),
        state == 1,
        "{what}: {:?}",
        mc.warnings
    );
}

/// An image from the real mkfs.ext2; must be clean by e2fsck first.
fn real_mkfs(dir: &Path, name: &str, size: u64, args: &[&str]) -> std::path::PathBuf {
    let img = dir.join(name);
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    let mut a = vec!["-q", "-F"];
    a.extend_from_slice(args);
    a.push(img.to_str().unwrap());
    let out = run("mkfs.ext2", &a);
    assert!(
        out.status.success(),
        "mkfs.ext2 {a:?}: {}",
        text(&out.stderr)
    );
    let out = run("e2fsck", &[OsStr::new("-fn"), img.as_os_str()]);
    assert!(
        out.status.success(),
        "{name} not clean: {}",
        text(&out.stdout)
    );
    img
}

#[test]
fn real_mkfs_images_match_dumpe2fs() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, u64, &[&str])] = &[
        ("1k-8m", 8 * MIB, &["-b", "1024"]),
        ("2k-64m", 64 * MIB, &["-b", "2048"]),
        ("4k-256m", 256 * MIB, &["-b", "4096"]),
        ("4k-1g", GIB, &["-b", "4096"]),
        (
            "1k-64m-noresize",
            64 * MIB,
            &["-b", "1024", "-O", "^resize_inode"],
        ),
        ("4k-256m-i128", 256 * MIB, &["-b", "4096", "-I", "128"]),
        (
            "1k-300m-nosparse",
            300 * MIB,
            &["-b", "1024", "-O", "^sparse_super,^resize_inode"],
        ),
        (
            "2k-100m-label",
            100 * MIB,
            &[
                "-b",
                "2048",
                "-L",
                "vol-label",
                "-U",
                "6b1e5e5a-3c1d-4e8f-9a7b-2c3d4e5f6a7b",
                "-m",
                "1",
                "-N",
                "3000",
            ],
        ),
        ("1k-1g", GIB, &["-b", "1024", "-i", "65536"]),
    ];
    for (name, size, args) in cases {
        let img = real_mkfs(dir.path(), &format!("{name}.img"), *size, args);
        compare(&img, &format!("mkfs.ext2 {name}"));
        let h = dumpe2fs(&img, true);
        let feats = h.get("Filesystem features");
        for f in ["ext_attr", "dir_index", "filetype", "large_file"] {
            assert!(
                feats.contains(f),
                "{name}: real mkfs.ext2 should enable {f}: {feats}"
            );
        }
        std::fs::remove_file(&img).unwrap();
    }
}

#[test]
fn state_and_counters_changed_by_debugfs() {
    // Values debugfs writes into the super block show up through the parser.
    let dir = tempfile::tempdir().unwrap();
    let img = real_mkfs(dir.path(), "ssv.img", 16 * MIB, &["-b", "1024"]);
    for (field, value) in [
        ("state", "0"),
        ("mnt_count", "7"),
        ("max_mnt_count", "20"),
        ("state", "3"),
        ("def_resuid", "1234"),
    ] {
        let out = run(
            "debugfs",
            &[
                OsStr::new("-w"),
                OsStr::new("-R"),
                OsStr::new(&format!("ssv {field} {value}")),
                img.as_os_str(),
            ],
        );
        assert!(
            out.status.success(),
            "debugfs ssv {field}: {}",
            text(&out.stderr)
        );
        let f = std::fs::File::open(&img).unwrap();
        let (sb, _) = format::read_image_header(&f).unwrap();
        let h = dumpe2fs(&img, true);
        match field {
            "state" => {
                assert_eq!(sb.s_state.get(), value.parse::<u16>().unwrap());
                let mc = sb.mount_check().unwrap();
                assert!(
                    mc.warnings
                        .iter()
                        .any(|w| w.contains("not cleanly unmounted"))
                        == (value == "0"),
                    "{:?}",
                    mc.warnings
                );
                if value == "3" {
                    assert!(
                        mc.warnings.iter().any(|w| w.contains("errors")),
                        "{:?}",
                        mc.warnings
                    );
                    assert_eq!(h.get("Filesystem state"), "clean with errors");
                } else {
                    assert_eq!(h.get("Filesystem state"), "not clean");
                }
            }
            "mnt_count" => assert_eq!(h.num("Mount count"), sb.s_mnt_count.get() as i64),
            "max_mnt_count" => {
                assert_eq!(
                    h.num("Maximum mount count"),
                    sb.s_max_mnt_count.get() as i64
                );
                // 7 of 20 mounts: no warning about the mount count yet.
                let mc = sb.mount_check().unwrap();
                assert!(
                    !mc.warnings.iter().any(|w| w.contains("mount count")),
                    "{:?}",
                    mc.warnings
                );
            }
            _ => assert_eq!(h.num("Reserved blocks uid"), sb.s_def_resuid.get() as i64),
        }
    }
}

#[test]
fn mkfs_ext2mfr_images_match_dumpe2fs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (8 * MIB, Some(1024u32), None, None, "", None),
        (64 * MIB, Some(2048), None, Some(16384u64), "two-k", None),
        (
            7 * MIB,
            Some(4096),
            Some(128u32),
            None,
            "",
            Some([0x42u8; 16]),
        ),
        (GIB, Some(4096), None, None, "one-gig", None),
        (GIB, Some(1024), Some(128), Some(65536), "", None),
        (
            300 * MIB,
            None,
            None,
            None,
            "sixteen-chars-ok",
            Some([0u8; 16]),
        ),
    ];
    for (i, (size, bs, isz, ratio, label, uuid)) in cases.into_iter().enumerate() {
        let img = dir.path().join(format!("ours{i}.img"));
        let o = mkfs_ext2mfr::MkfsOptions {
            size: Some(size),
            block_size: bs,
            inode_size: isz,
            bytes_per_inode: ratio,
            label: label.to_string(),
            uuid,
            ..Default::default()
        };
        let s = mkfs_ext2mfr::mkfs(&img, &o).unwrap();
        let what = format!("mkfs.ext2mfr #{i} ({size} bytes, {bs:?})");
        compare(&img, &what);
        let f = std::fs::File::open(&img).unwrap();
        let (sb, _) = format::read_image_header(&f).unwrap();
        assert_eq!(sb.s_blocks_count.get(), s.blocks, "{what}");
        assert_eq!(sb.group_count(), s.groups, "{what}");
        assert_eq!(sb.s_uuid, s.uuid, "{what}");
        assert_eq!(sb.volume_name(), label, "{what}");
        std::fs::remove_file(&img).unwrap();
    }
}
