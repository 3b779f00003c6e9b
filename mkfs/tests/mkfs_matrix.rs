//! mkfs.ext2mfr against the real tools: every image it makes must pass
//! `e2fsck -fn`, match what `dumpe2fs` reports, read back through
//! `ext2_format`, and mount with the kernel's ext2 driver.
//!
//! Needs root (loop mounts) and e2fsprogs (`e2fsck`, `dumpe2fs`, `debugfs`).
//! Images are sparse files in temporary directories; nothing large is written.

use ext2_format::{self as format, superblock::group_has_super};
use mkfs_ext2mfr::{mkfs, MkfsError, MkfsOptions, Summary};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

const BIN: &str = env!("CARGO_BIN_EXE_mkfs-ext2mfr");

/// The matrix sizes: one group up to many (8 GiB with 1 KiB blocks is 1024 groups).
const SIZES: [u64; 6] = [MIB, 7 * MIB, 64 * MIB, 300 * MIB, GIB, 8 * GIB];
const BLOCK_SIZES: [u32; 3] = [1024, 2048, 4096];

// ---------------------------------------------------------------------------
// Running tools

fn run<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (is e2fsprogs installed?)"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn e2fsck_clean(img: &Path) {
    let out = run("e2fsck", &[OsStr::new("-fn"), img.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {} is not clean:\n{}\n{}",
        img.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// One group as `dumpe2fs` prints it.
#[derive(Debug, Default, Clone)]
struct DumpGroup {
    first: u32,
    last: u32,
    superblock: Option<u32>,
    gdt: Option<(u32, u32)>,
    block_bitmap: u32,
    inode_bitmap: u32,
    inode_table: u32,
    free_blocks: u32,
    free_inodes: u32,
    dirs: u32,
}

struct Dump {
    header: BTreeMap<String, String>,
    groups: Vec<DumpGroup>,
}

impl Dump {
    fn get(&self, key: &str) -> &str {
        self.header
            .get(key)
            .unwrap_or_else(|| panic!("dumpe2fs printed no '{key}': {:?}", self.header))
    }
    fn num(&self, key: &str) -> u64 {
        let v = self.get(key);
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("dumpe2fs '{key}' is not a number: {v:?}"))
    }
    fn features(&self) -> BTreeSet<String> {
        self.get("Filesystem features")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// First number in `s` (stops at anything not a digit).
fn lead_num(s: &str) -> u32 {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number at {s:?}"))
}

/// "A-B" (or "A") at the start of `s`.
fn range(s: &str) -> (u32, u32) {
    let a = lead_num(s);
    let rest = s.trim_start();
    let after = &rest[rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())..];
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
                g.block_bitmap = lead_num(r);
            }
            if let Some(r) = l.strip_prefix("Inode bitmap at ") {
                g.inode_bitmap = lead_num(r);
            }
            if let Some(r) = l.strip_prefix("Inode table at ") {
                g.inode_table = lead_num(r);
            }
            if l.contains(" free blocks, ") {
                let parts: Vec<&str> = l.split(", ").collect();
                g.free_blocks = lead_num(parts[0]);
                g.free_inodes = lead_num(parts[1]);
                g.dirs = lead_num(parts[2]);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            header.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    Dump { header, groups }
}

fn dumpe2fs(img: &Path) -> Dump {
    let out = run("dumpe2fs", &[img.as_os_str()]);
    assert!(
        out.status.success(),
        "dumpe2fs {} failed: {}",
        img.display(),
        text(&out.stderr)
    );
    parse_dumpe2fs(&text(&out.stdout))
}

fn dumpe2fs_h(img: &Path) -> Dump {
    let out = run("dumpe2fs", &[OsStr::new("-h"), img.as_os_str()]);
    assert!(
        out.status.success(),
        "dumpe2fs -h {} failed: {}",
        img.display(),
        text(&out.stderr)
    );
    parse_dumpe2fs(&text(&out.stdout))
}

fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = run(
        "debugfs",
        &[
            OsStr::new("-R"),
            OsStr::new(&format!("cat {path}")),
            img.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "debugfs cat {path}: {}",
        text(&out.stderr)
    );
    out.stdout
}

fn mkfs_bin<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run(BIN, args)
}

fn ext2_magic_at(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(b) => b.len() >= 1082 && u16::from_le_bytes([b[1080], b[1081]]) == 0xEF53,
        Err(_) => false,
    }
}

fn uuid_string(u: &[u8; 16]) -> String {
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

// ---------------------------------------------------------------------------
// What a made image must look like

/// What the caller asked for (to check the result against).
struct Asked {
    size: u64,
    bs: u32,
    inode_size: u32,
    /// Inodes wanted: exact (-N) or derived from the ratio.
    inode_count: Option<u64>,
    ratio: u64,
    reserved_percent: f64,
}

/// Blocks lost+found gets up front (mke2fs: 16 KiB, 2..=12 blocks).
fn lost_found_blocks(bs: u32) -> u32 {
    (16384 / bs).clamp(2, 12)
}

/// Check an image made by mkfs against the tools, `ext2_format` and the
/// request. Returns the dump for further checks.
fn check_image(img: &Path, s: &Summary, a: &Asked) -> Dump {
    let ctx = format!(
        "size {} bs {} isz {} ratio {} N {:?}",
        a.size, a.bs, a.inode_size, a.ratio, a.inode_count
    );
    e2fsck_clean(img);
    let d = dumpe2fs(img);

    let bs = a.bs;
    let bpg = 8 * bs;
    let first = u32::from(bs == 1024);
    let requested_blocks = a.size / bs as u64;

    // The summary agrees with itself and with the request.
    assert_eq!(s.block_size, bs, "{ctx}");
    assert!(
        s.blocks as u64 <= requested_blocks,
        "{ctx}: more blocks than the size holds"
    );
    assert_eq!(
        s.groups,
        (s.blocks - first).div_ceil(bpg),
        "{ctx}: group count"
    );
    assert_eq!(s.inodes, s.groups * s.inodes_per_group, "{ctx}");

    // Super block as dumpe2fs sees it.
    assert_eq!(d.get("Filesystem magic number"), "0xEF53", "{ctx}");
    assert!(d.get("Filesystem revision #").starts_with("1 "), "{ctx}");
    assert_eq!(d.get("Filesystem state"), "clean", "{ctx}");
    let want: BTreeSet<String> = ["filetype", "sparse_super", "large_file"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(d.features(), want, "{ctx}: features");
    assert_eq!(d.num("Block size"), bs as u64, "{ctx}");
    assert_eq!(d.num("Block count"), s.blocks as u64, "{ctx}");
    assert_eq!(d.num("Inode count"), s.inodes as u64, "{ctx}");
    assert_eq!(d.num("First block"), first as u64, "{ctx}");
    assert_eq!(d.num("Blocks per group"), bpg as u64, "{ctx}");
    assert_eq!(
        d.num("Inodes per group"),
        s.inodes_per_group as u64,
        "{ctx}"
    );
    assert_eq!(d.num("Inode size"), a.inode_size as u64, "{ctx}");
    assert_eq!(d.num("First inode"), 11, "{ctx}");
    assert_eq!(d.num("Free inodes"), s.inodes as u64 - 11, "{ctx}");
    assert_eq!(
        d.num("Reserved block count"),
        (s.blocks as f64 * a.reserved_percent / 100.0) as u64,
        "{ctx}: reserved blocks"
    );
    assert_eq!(d.get("Filesystem UUID"), uuid_string(&s.uuid), "{ctx}");

    // Groups: count, backups exactly in the sparse groups, metadata in place.
    assert_eq!(
        d.groups.len() as u32,
        s.groups,
        "{ctx}: dumpe2fs group count"
    );
    let ipg = s.inodes_per_group;
    let gdt_blocks = (s.groups * 32).div_ceil(bs);
    let itb = (ipg * a.inode_size).div_ceil(bs);
    let mut expected_free: u64 = (s.blocks - first) as u64;
    for (g, dg) in d.groups.iter().enumerate() {
        let g = g as u32;
        let start = first + g * bpg;
        assert_eq!(dg.first, start, "{ctx}: group {g} start");
        assert_eq!(
            dg.last,
            (start + bpg - 1).min(s.blocks - 1),
            "{ctx}: group {g} end"
        );
        let sup = group_has_super(g, true);
        assert_eq!(
            dg.superblock.is_some(),
            sup,
            "{ctx}: group {g} super block backup"
        );
        let mut pos = start;
        if sup {
            assert_eq!(dg.superblock, Some(start), "{ctx}: group {g}");
            assert_eq!(
                dg.gdt,
                Some((start + 1, start + gdt_blocks)),
                "{ctx}: group {g} gdt"
            );
            pos += 1 + gdt_blocks;
        }
        assert_eq!(dg.block_bitmap, pos, "{ctx}: group {g} block bitmap");
        assert_eq!(dg.inode_bitmap, pos + 1, "{ctx}: group {g} inode bitmap");
        assert_eq!(dg.inode_table, pos + 2, "{ctx}: group {g} inode table");
        assert_eq!(dg.dirs, if g == 0 { 2 } else { 0 }, "{ctx}: group {g} dirs");
        assert_eq!(
            dg.free_inodes,
            if g == 0 { ipg - 11 } else { ipg },
            "{ctx}: group {g}"
        );
        expected_free -= (pos - start + 2 + itb) as u64;
    }
    // Root directory (1 block) and lost+found's pre-allocated blocks.
    expected_free -= 1 + lost_found_blocks(bs) as u64;
    assert_eq!(d.num("Free blocks"), expected_free, "{ctx}: free blocks");
    let sum: u64 = d.groups.iter().map(|g| g.free_blocks as u64).sum();
    assert_eq!(sum, expected_free, "{ctx}: group free blocks");

    // The last group is only dropped when it could not hold its metadata and 50 blocks.
    let last = s.groups - 1;
    let last_meta = if group_has_super(last, true) {
        1 + gdt_blocks
    } else {
        0
    } + 2
        + itb;
    let last_blocks = s.blocks - (first + last * bpg);
    assert!(
        last_blocks >= last_meta + 50,
        "{ctx}: last group of {last_blocks} blocks kept"
    );
    let dropped = requested_blocks - s.blocks as u64;
    if dropped > 0 {
        let tail_first = first as u64 + s.groups as u64 * bpg as u64;
        assert_eq!(
            tail_first, s.blocks as u64,
            "{ctx}: only a whole tail group may be dropped"
        );
        // The tail was judged with one more group (its descriptor table may
        // have been a block larger; its inode table was not larger).
        let gdt_with_tail = ((s.groups + 1) * 32).div_ceil(bs);
        let tail_meta = if group_has_super(s.groups, true) {
            1 + gdt_with_tail
        } else {
            0
        } + 2
            + itb;
        assert!(
            dropped < (tail_meta + 50) as u64,
            "{ctx}: dropped a tail of {dropped} blocks that could hold a group"
        );
    }

    // Inode count: at least what was asked (unless a group is full of inodes),
    // at most one alignment unit (or the 16-inode minimum) per group more.
    let align = (bs / a.inode_size).max(8) as u64;
    let groups = s.groups as u64;
    let wanted = match a.inode_count {
        Some(n) => n,
        None => s.blocks as u64 * bs as u64 / a.ratio,
    };
    let lower = wanted.min(groups * 8 * bs as u64);
    let upper = groups * (wanted.div_ceil(groups).max(16) + align - 1);
    assert!(
        (lower..=upper).contains(&(s.inodes as u64)),
        "{ctx}: {} inodes, wanted {wanted} (allowed {lower}..={upper})",
        s.inodes
    );
    assert_eq!(ipg % 8, 0, "{ctx}: inodes per group a multiple of 8");
    assert_eq!(
        (ipg * a.inode_size) % bs,
        0,
        "{ctx}: inode table fills whole blocks"
    );
    assert!(ipg <= 8 * bs, "{ctx}");

    // ext2mfr's own reader agrees with dumpe2fs.
    let f = std::fs::File::open(img).unwrap();
    let (sb, descs) =
        format::read_image_header(&f).unwrap_or_else(|e| panic!("{ctx}: read_image_header: {e}"));
    assert_eq!(sb.group_count(), s.groups, "{ctx}");
    assert_eq!(descs.len() as u32, s.groups, "{ctx}");
    for (g, (dd, dg)) in descs.iter().zip(&d.groups).enumerate() {
        assert_eq!(
            dd.bg_block_bitmap.get(),
            dg.block_bitmap,
            "{ctx}: group {g}"
        );
        assert_eq!(
            dd.bg_inode_bitmap.get(),
            dg.inode_bitmap,
            "{ctx}: group {g}"
        );
        assert_eq!(dd.bg_inode_table.get(), dg.inode_table, "{ctx}: group {g}");
        assert_eq!(
            dd.bg_free_blocks_count.get() as u32,
            dg.free_blocks,
            "{ctx}: group {g}"
        );
        assert_eq!(
            dd.bg_free_inodes_count.get() as u32,
            dg.free_inodes,
            "{ctx}: group {g}"
        );
    }
    let mc = sb.mount_check().unwrap();
    assert_eq!(mc.read_only_reason, None, "{ctx}");
    assert!(mc.warnings.is_empty(), "{ctx}: {:?}", mc.warnings);
    d
}

/// mke2fs.conf's defaults as mkfs applies them (floppy, small, default).
fn default_ratio_and_isize(size: u64) -> (u64, u32) {
    if size < 3 * MIB {
        (8192, 128)
    } else if size < 512 * MIB {
        (4096, 256)
    } else {
        (16384, 256)
    }
}

fn matrix_for_block_size(bs: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut cells = 0;
    for &size in &SIZES {
        // (inode size, ratio); None = mkfs's default.
        let mut variants: Vec<(Option<u32>, Option<u64>)> = vec![(None, None)];
        for isz in [128, 256] {
            for ratio in [4096, 16384, 65536] {
                variants.push((Some(isz), Some(ratio)));
            }
        }
        for (isz, ratio) in variants {
            let img = dir
                .path()
                .join(format!("m-{bs}-{size}-{isz:?}-{ratio:?}.img"));
            let o = MkfsOptions {
                size: Some(size),
                block_size: Some(bs),
                bytes_per_inode: ratio,
                inode_size: isz,
                ..Default::default()
            };
            let s = match mkfs(&img, &o) {
                Ok(s) => s,
                // Only a clear TooSmall, and only for a tiny image, may refuse.
                Err(MkfsError::TooSmall(m)) if size <= 256 * KIB => {
                    eprintln!("refused (ok for a tiny image): {m}");
                    continue;
                }
                Err(e) => panic!("mkfs bs {bs} size {size} isz {isz:?} ratio {ratio:?}: {e}"),
            };
            let (def_ratio, def_isz) = default_ratio_and_isize(size);
            let asked = Asked {
                size,
                bs,
                inode_size: isz.unwrap_or(def_isz),
                inode_count: None,
                ratio: ratio.unwrap_or(def_ratio),
                reserved_percent: 5.0,
            };
            check_image(&img, &s, &asked);
            // Sparse: mkfs writes metadata only (8 GiB images stay small).
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(&img).unwrap();
            assert_eq!(md.len(), s.blocks as u64 * bs as u64);
            assert!(
                md.blocks() * 512 < 64 * MIB,
                "{}: {} bytes allocated",
                img.display(),
                md.blocks() * 512
            );
            std::fs::remove_file(&img).unwrap();
            cells += 1;
        }
    }
    assert_eq!(cells, SIZES.len() * 7, "every cell of the matrix was made");
}

#[test]
fn matrix_block_size_1024() {
    matrix_for_block_size(1024);
}

#[test]
fn matrix_block_size_2048() {
    matrix_for_block_size(2048);
}

#[test]
fn matrix_block_size_4096() {
    matrix_for_block_size(4096);
}

/// One group, and many groups: the counts dumpe2fs reports.
#[test]
fn group_counts_single_and_many() {
    let dir = tempfile::tempdir().unwrap();
    for (bs, size, groups) in [
        (4096u32, 7 * MIB, 1u32),
        (1024, 7 * MIB, 1),
        (1024, 64 * MIB, 8),
        (2048, 300 * MIB, 10),
        (4096, GIB, 8),
        (1024, GIB, 128),
        (4096, 8 * GIB, 64),
        (1024, 8 * GIB, 1024),
    ] {
        let img = dir.path().join(format!("g-{bs}-{size}.img"));
        let s = mkfs(
            &img,
            &MkfsOptions {
                size: Some(size),
                block_size: Some(bs),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.groups, groups, "bs {bs} size {size}");
        let d = dumpe2fs(&img);
        assert_eq!(
            d.groups.len() as u32,
            groups,
            "bs {bs} size {size}: dumpe2fs"
        );
        let backups: Vec<usize> = d
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.superblock.is_some())
            .map(|(i, _)| i)
            .collect();
        let expect: Vec<usize> = (0..groups as usize)
            .filter(|&g| group_has_super(g as u32, true))
            .collect();
        assert_eq!(backups, expect, "bs {bs} size {size}: backup groups");
        e2fsck_clean(&img);
        std::fs::remove_file(&img).unwrap();
    }
}

/// -N: at least the asked number of inodes; too many is a clear error.
#[test]
fn inode_count_option() {
    let dir = tempfile::tempdir().unwrap();
    for bs in [1024u32, 4096] {
        for size in [7 * MIB, GIB] {
            for (n, isz) in [(1u64, 256u32), (1000, 128), (5000, 256), (20000, 128)] {
                let img = dir.path().join(format!("n-{bs}-{size}-{n}.img"));
                let o = MkfsOptions {
                    size: Some(size),
                    block_size: Some(bs),
                    inode_count: Some(n),
                    inode_size: Some(isz),
                    ..Default::default()
                };
                match mkfs(&img, &o) {
                    Ok(s) => {
                        let asked = Asked {
                            size,
                            bs,
                            inode_size: isz,
                            inode_count: Some(n),
                            ratio: 0,
                            reserved_percent: 5.0,
                        };
                        check_image(&img, &s, &asked);
                        assert!(s.inodes as u64 >= n);
                    }
                    Err(e) => {
                        // Only 7 MiB with 1 KiB blocks (one group, 8192 inodes at most) cannot.
                        assert!(
                            bs == 1024 && size == 7 * MIB && n > 8192,
                            "bs {bs} size {size} -N {n}: {e}"
                        );
                        assert!(matches!(e, MkfsError::BadOption(_)), "{e:?}");
                        assert!(e.to_string().contains("too large"), "{e}");
                    }
                }
                let _ = std::fs::remove_file(&img);
            }
        }
    }
    // More inodes than the bitmaps can describe: refused, nothing written.
    let img = dir.path().join("toomany.img");
    let e = mkfs(
        &img,
        &MkfsOptions {
            size: Some(64 * MIB),
            block_size: Some(1024),
            inode_count: Some(8 * 8192 + 1),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, MkfsError::BadOption(_)), "{e:?}");
    assert!(!ext2_magic_at(&img));
}

/// TooSmall happens only for tiny sizes, every other size up to 1 MiB works,
/// and the smallest accepted images are valid.
#[test]
fn too_small_only_for_tiny_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for bs in BLOCK_SIZES {
        let mut smallest_ok = None;
        let mut size = 4 * KIB;
        while size <= MIB {
            let img = dir.path().join(format!("t-{bs}-{size}.img"));
            let o = MkfsOptions {
                size: Some(size),
                block_size: Some(bs),
                ..Default::default()
            };
            match mkfs(&img, &o) {
                Ok(s) => {
                    if smallest_ok.is_none() {
                        smallest_ok = Some(size);
                        let asked = Asked {
                            size,
                            bs,
                            inode_size: 128,
                            inode_count: None,
                            ratio: 8192,
                            reserved_percent: 5.0,
                        };
                        check_image(&img, &s, &asked);
                    }
                    // Every accepted image reads back through ext2_format.
                    let f = std::fs::File::open(&img).unwrap();
                    let (sb, _) = format::read_image_header(&f)
                        .unwrap_or_else(|e| panic!("bs {bs} size {size}: {e}"));
                    assert_eq!(sb.s_blocks_count.get(), s.blocks);
                }
                Err(MkfsError::TooSmall(m)) => {
                    assert!(
                        smallest_ok.is_none(),
                        "bs {bs}: {size} bytes refused but a smaller size was accepted: {m}"
                    );
                    assert!(
                        size < 256 * KIB,
                        "bs {bs}: {size} bytes is not tiny, yet: {m}"
                    );
                    assert!(!m.is_empty());
                }
                Err(e) => panic!("bs {bs} size {size}: unexpected error {e:?}"),
            }
            let _ = std::fs::remove_file(&img);
            size += 4 * KIB;
        }
        let smallest =
            smallest_ok.unwrap_or_else(|| panic!("bs {bs}: nothing up to 1 MiB accepted"));
        assert!(smallest <= 256 * KIB, "bs {bs}: smallest image {smallest}");
        assert!(
            smallest >= 16 * bs as u64,
            "bs {bs}: a {smallest}-byte image cannot be sane"
        );
    }
}

/// Sizes just around group boundaries: a short last group is kept only when it
/// can hold its metadata and some data (check_image asserts the rule).
#[test]
fn group_boundary_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for bs in BLOCK_SIZES {
        let group_bytes = 8 * bs as u64 * bs as u64;
        for k in [1u64, 2, 3] {
            for delta_blocks in [-1i64, 0, 1, 2, 20, 52, 53, 54, 60, 100, 300] {
                let size = (k * group_bytes) as i64 + delta_blocks * bs as i64;
                let size = size as u64;
                let img = dir.path().join(format!("b-{bs}-{size}.img"));
                let o = MkfsOptions {
                    size: Some(size),
                    block_size: Some(bs),
                    bytes_per_inode: Some(16384),
                    inode_size: Some(128),
                    ..Default::default()
                };
                let s = mkfs(&img, &o).unwrap_or_else(|e| panic!("bs {bs} size {size}: {e}"));
                let asked = Asked {
                    size,
                    bs,
                    inode_size: 128,
                    inode_count: None,
                    ratio: 16384,
                    reserved_percent: 5.0,
                };
                check_image(&img, &s, &asked);
                std::fs::remove_file(&img).unwrap();
            }
        }
    }
}

/// For the same layout options, the block count, inode count and free counts
/// are exactly what mke2fs (without resize_inode/dir_index/ext_attr) makes.
#[test]
fn same_layout_as_mke2fs() {
    let dir = tempfile::tempdir().unwrap();
    for (bs, size, isz, ratio) in [
        (1024u32, 7 * MIB, 128u32, 4096u64),
        (1024, 64 * MIB, 256, 4096),
        (2048, 64 * MIB, 256, 16384),
        (4096, 64 * MIB, 128, 16384),
        (4096, 300 * MIB, 256, 65536),
        (1024, GIB, 256, 65536),
    ] {
        let ours = dir.path().join(format!("o-{bs}-{size}.img"));
        mkfs(
            &ours,
            &MkfsOptions {
                size: Some(size),
                block_size: Some(bs),
                inode_size: Some(isz),
                bytes_per_inode: Some(ratio),
                ..Default::default()
            },
        )
        .unwrap();
        let theirs = dir.path().join(format!("r-{bs}-{size}.img"));
        std::fs::File::create(&theirs)
            .unwrap()
            .set_len(size)
            .unwrap();
        let out = run(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                "ext2",
                "-O",
                "^resize_inode,^dir_index,^ext_attr",
                "-b",
                &bs.to_string(),
                "-I",
                &isz.to_string(),
                "-i",
                &ratio.to_string(),
                theirs.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "mke2fs: {}", text(&out.stderr));
        let (a, b) = (dumpe2fs_h(&ours), dumpe2fs_h(&theirs));
        for key in [
            "Block count",
            "Inode count",
            "Free blocks",
            "Free inodes",
            "Reserved block count",
            "First block",
            "Blocks per group",
            "Inodes per group",
            "Inode size",
            "Filesystem features",
        ] {
            assert_eq!(
                a.get(key),
                b.get(key),
                "bs {bs} size {size}: '{key}' differs from mke2fs"
            );
        }
        std::fs::remove_file(&ours).unwrap();
        std::fs::remove_file(&theirs).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The kernel's ext2 driver

/// A loop mount that is always undone, even when the test fails.
struct Mounted {
    dir: PathBuf,
    mounted: bool,
}

impl Mounted {
    fn new(img: &Path, dir: &Path) -> Mounted {
        let out = run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new("loop"),
                OsStr::new("-t"),
                OsStr::new("ext2"),
                img.as_os_str(),
                dir.as_os_str(),
            ],
        );
        assert!(
            out.status.success(),
            "mount -o loop -t ext2 {} failed: {}",
            img.display(),
            text(&out.stderr)
        );
        Mounted {
            dir: dir.to_path_buf(),
            mounted: true,
        }
    }

    fn unmount(mut self) {
        let out = run("umount", &[self.dir.as_os_str()]);
        assert!(
            out.status.success(),
            "umount {}: {}",
            self.dir.display(),
            text(&out.stderr)
        );
        self.mounted = false;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn kernel_round_trip(bs: u32, size: u64, extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("k.img");
    let mut args: Vec<String> = vec!["-q".into(), "-b".into(), bs.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(img.to_str().unwrap().into());
    args.push(format!("{}K", size / KIB));
    let out = mkfs_bin(&args);
    assert!(out.status.success(), "mkfs {args:?}: {}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "-q prints nothing");
    e2fsck_clean(&img);
    let free_inodes_before = {
        let f = std::fs::File::open(&img).unwrap();
        format::read_image_header(&f)
            .unwrap()
            .0
            .s_free_inodes_count
            .get()
    };

    // Contents: a few hundred KiB (past the direct blocks and, with 1 KiB
    // blocks, into the double indirect range), a directory of files of
    // awkward sizes, and a nested directory.
    let mut rng = rand::rngs::StdRng::seed_from_u64(bs as u64 ^ size);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let big: Vec<u8> = (0..300 * 1024 + 7).map(|_| rng.gen()).collect();
    files.push(("/big.bin".into(), big));
    let b = bs as usize;
    for (i, len) in [
        0usize,
        1,
        100,
        b - 1,
        b,
        b + 1,
        12 * b,
        12 * b + 1,
        13 * b + 17,
        40_000,
    ]
    .into_iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        files.push((format!("/dir/f{i:02}"), data));
    }
    files.push(("/dir/sub/deep.txt".into(), b"nested file\n".repeat(100)));

    let mnt = tempfile::tempdir().unwrap();
    let m = Mounted::new(&img, mnt.path());
    std::fs::create_dir(mnt.path().join("dir")).unwrap();
    std::fs::create_dir(mnt.path().join("dir/sub")).unwrap();
    for (p, data) in &files {
        std::fs::write(mnt.path().join(&p[1..]), data).unwrap();
    }
    for (p, data) in &files {
        assert_eq!(
            &std::fs::read(mnt.path().join(&p[1..])).unwrap(),
            data,
            "{p} while mounted"
        );
    }
    m.unmount();

    e2fsck_clean(&img);
    for (p, data) in &files {
        let got = debugfs_cat(&img, p);
        assert_eq!(got.len(), data.len(), "{p}: length after umount");
        assert!(got == *data, "{p}: contents differ after umount");
    }
    // The kernel wrote back a valid super block with the new counts.
    let f = std::fs::File::open(&img).unwrap();
    let (sb, _) = format::read_image_header(&f).unwrap();
    let created = files.len() as u32 + 2; // files, plus dir and dir/sub
    assert_eq!(sb.s_free_inodes_count.get(), free_inodes_before - created);
    let mc = sb.mount_check().unwrap();
    assert!(mc.warnings.is_empty(), "{:?}", mc.warnings);
}

#[test]
fn kernel_ext2_1024_single_group() {
    kernel_round_trip(1024, 7 * MIB, &["-I", "128"]);
}

#[test]
fn kernel_ext2_2048() {
    kernel_round_trip(2048, 64 * MIB, &[]);
}

#[test]
fn kernel_ext2_4096() {
    kernel_round_trip(4096, 300 * MIB, &["-i", "65536"]);
}

#[test]
fn kernel_ext2_1gib_many_groups() {
    // 1 KiB blocks: 128 groups, a 4-block descriptor table.
    kernel_round_trip(1024, GIB, &[]);
}

// ---------------------------------------------------------------------------
// Command line

#[test]
fn cli_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("bad.img");
    let p = img.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["-b", "3000", p, "8M"], "block size"),
        (&["-m", "80", p, "8M"], "reserved"),
        (&["-U", "not-a-uuid", p, "8M"], "uuid"),
        (&["-U", "0123456789abcdef0123456789abcdef", p, "8M"], "uuid"),
        (&[p, "8X"], "suffix"),
        (&["-L", "seventeen-bytes!!", p, "8M"], "16 bytes"),
        (&[p], "size"),
        (&["-t", "ext4", p, "8M"], "ext4"),
        (&["-I", "100", p, "8M"], "inode size"),
        (&["-b", "1024", p, "5T"], "too large"),
    ];
    assert_eq!("seventeen-bytes!!".len(), 17);
    for (args, needle) in cases {
        let out = mkfs_bin(args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.status.code().is_some(), "{args:?} died of a signal");
        assert!(!err.trim().is_empty(), "{args:?}: nothing on stderr");
        assert!(
            err.to_lowercase().contains(needle),
            "{args:?}: stderr does not mention '{needle}': {err}"
        );
        assert!(!ext2_magic_at(&img), "{args:?} wrote a file system");
        let _ = std::fs::remove_file(&img);
    }
}

/// A refused command line should leave no file behind. mkfs creates the file
/// before it checks the block size and the reserved percentage, so it does.
#[test]
fn cli_bad_arguments_create_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["-b", "3000"][..],
        &["-m", "80"],
        &["-I", "100"],
        &["-b", "1024"],
    ] {
        let img = dir.path().join("bad.img");
        let mut a: Vec<&str> = args.to_vec();
        a.push(img.to_str().unwrap());
        a.push(if args == ["-b", "1024"] { "5T" } else { "8M" });
        let out = mkfs_bin(&a);
        assert!(!out.status.success());
        assert!(!img.exists(), "{a:?} left {} behind", img.display());
    }
}

/// A malformed -U must give a clean error, never a panic, never a file system.
/// parse_uuid slices the (dash-stripped) string by bytes, so a multi-byte
/// character across a byte pair panics (exit 101), and `u8::from_str_radix`
/// takes a leading '+', so "+1" is read as the byte 0x01.
#[test]
fn cli_rejects_malformed_uuids_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("u.img");
    for u in [
        "0\u{e9}12345-89ab-cdef-0123-456789abcdef", // 'é' straddles the first byte pair
        "+1234567-89ab-cdef-0123-456789abcdef",
        "01+23456-89ab-cdef-0123-456789abcdef",
    ] {
        let lib = std::panic::catch_unwind(|| mkfs_ext2mfr::parse_uuid(u));
        assert!(matches!(lib, Ok(Err(_))), "parse_uuid({u:?}) = {lib:?}");
        let out = mkfs_bin(&["-q", "-U", u, img.to_str().unwrap(), "1M"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "-U {u:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).to_lowercase().contains("uuid"),
            "{}",
            text(&out.stderr)
        );
        assert!(!ext2_magic_at(&img), "-U {u:?} made a file system");
        let _ = std::fs::remove_file(&img);
    }
}

#[test]
fn cli_refuses_existing_ext2_without_force() {
    let dir = tempfile::tempdir().unwrap();
    // One image from mkfs.ext2mfr, one from the real mkfs.ext2.
    let ours = dir.path().join("ours.img");
    let out = mkfs_bin(&["-q", "-b", "1024", ours.to_str().unwrap(), "2M"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let real = dir.path().join("real.img");
    std::fs::File::create(&real)
        .unwrap()
        .set_len(2 * MIB)
        .unwrap();
    let out = run("mkfs.ext2", &["-q", "-F", real.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    for img in [&ours, &real] {
        let p = img.to_str().unwrap();
        let before = std::fs::read(img).unwrap();
        for args in [
            &["-q", p][..],
            &["-q", p, "2M"],
            &["-q", "-b", "4096", p, "4M"],
            &[p, "1M"],
        ] {
            let out = mkfs_bin(args);
            let err = text(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} overwrote an ext2 file system"
            );
            assert!(
                err.contains("-F"),
                "{args:?}: stderr should point at -F: {err}"
            );
            assert!(
                std::fs::read(img).unwrap() == before,
                "{args:?} changed the image"
            );
        }
        // With -F it is overwritten.
        let out = mkfs_bin(&[
            "-q",
            "-F",
            "-U",
            "11111111-2222-4333-8444-555555555555",
            p,
            "2M",
        ]);
        assert!(out.status.success(), "-F: {}", text(&out.stderr));
        assert!(std::fs::read(img).unwrap() != before);
        let d = dumpe2fs_h(img);
        assert_eq!(
            d.get("Filesystem UUID"),
            "11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(
            d.get("Filesystem features"),
            "filetype sparse_super large_file"
        );
        e2fsck_clean(img);
    }
}

#[test]
fn cli_never_truncates_and_grows_small_files() {
    let dir = tempfile::tempdir().unwrap();
    // A larger file that is not ext2: mkfs uses its start and keeps the rest.
    let img = dir.path().join("big.img");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut content: Vec<u8> = (0..4 * MIB).map(|_| rng.gen()).collect();
    content[1080] = 0;
    content[1081] = 0; // surely no ext2 magic
    std::fs::write(&img, &content).unwrap();
    let out = mkfs_bin(&["-q", "-b", "1024", img.to_str().unwrap(), "1M"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = std::fs::read(&img).unwrap();
    assert_eq!(after.len() as u64, 4 * MIB, "mkfs truncated the file");
    assert!(
        after[MIB as usize..] == content[MIB as usize..],
        "mkfs wrote past the file system"
    );
    assert_eq!(dumpe2fs_h(&img).num("Block count"), 1024);
    e2fsck_clean(&img);

    // Without a size, the whole (non-empty) file is used.
    let whole = dir.path().join("whole.img");
    std::fs::File::create(&whole)
        .unwrap()
        .set_len(3 * MIB)
        .unwrap();
    let out = mkfs_bin(&["-q", "-b", "2048", whole.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(dumpe2fs_h(&whole).num("Block count"), 3 * MIB / 2048);
    e2fsck_clean(&whole);

    // A smaller file grows to the requested size.
    let small = dir.path().join("small.img");
    std::fs::write(&small, vec![0x5au8; 100_000]).unwrap();
    let out = mkfs_bin(&["-q", "-b", "4096", small.to_str().unwrap(), "8M"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&small).unwrap().len(), 8 * MIB);
    e2fsck_clean(&small);

    // An empty existing file and no size: refused with a message.
    let empty = dir.path().join("empty.img");
    std::fs::File::create(&empty).unwrap();
    let out = mkfs_bin(&[empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("size"), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn cli_label_uuid_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("l.img");
    let uuid = "01234567-89ab-cdef-0123-456789abcdef";
    let label = "exactly16bytes!!";
    assert_eq!(label.len(), 16);
    let out = mkfs_bin(&[
        "-b",
        "4096",
        "-L",
        label,
        "-U",
        uuid,
        img.to_str().unwrap(),
        "64M",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("UUID {uuid}")), "{stdout}");
    assert!(stdout.contains("16384 blocks of 4096 bytes"), "{stdout}");
    let d = dumpe2fs_h(&img);
    assert_eq!(d.get("Filesystem volume name"), label);
    assert_eq!(d.get("Filesystem UUID"), uuid);
    e2fsck_clean(&img);
    let f = std::fs::File::open(&img).unwrap();
    let (sb, _) = format::read_image_header(&f).unwrap();
    assert_eq!(sb.volume_name(), label);

    // A short label, and a cleared UUID.
    let img2 = dir.path().join("l2.img");
    let out = mkfs_bin(&[
        "-q",
        "-L",
        "data",
        "-U",
        "clear",
        img2.to_str().unwrap(),
        "8M",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = dumpe2fs_h(&img2);
    assert_eq!(d.get("Filesystem volume name"), "data");
    assert_eq!(d.get("Filesystem UUID"), "<none>");

    // Random UUIDs differ between runs and are version 4.
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let p = dir.path().join(format!("r{i}.img"));
        let out = mkfs_bin(&["-q", p.to_str().unwrap(), "1M"]);
        assert!(out.status.success());
        let u = dumpe2fs_h(&p).get("Filesystem UUID").to_string();
        assert_eq!(&u[14..15], "4", "{u}");
        seen.insert(u);
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn cli_reserved_percent_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for (m, expect) in [
        (Some("1"), 655u64),
        (Some("0"), 0),
        (None, 3276),
        (Some("50"), 32768),
        (Some("2.5"), 1638),
    ] {
        let img = dir.path().join(format!("m{m:?}.img"));
        let mut args = vec!["-q", "-b", "1024"];
        if let Some(m) = m {
            args.extend(["-m", m]);
        }
        args.extend([img.to_str().unwrap(), "64M"]);
        let out = mkfs_bin(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let d = dumpe2fs_h(&img);
        assert_eq!(d.num("Block count"), 65536);
        assert_eq!(d.num("Reserved block count"), expect, "-m {m:?}");
        e2fsck_clean(&img);
    }
    // Size units: plain numbers are blocks with -b, KiB without; s is sectors.
    for (args, blocks) in [
        (&["-b", "4096"][..], ("2048", 2048u64)),
        (&[], ("8192", 8192)),
        (&["-b", "2048"], ("16384s", 4096)),
        (&["-b", "1024"], ("3m", 3072)),
    ] {
        let img = dir.path().join(format!("u{}.img", blocks.0));
        let mut a = vec!["-q"];
        a.extend_from_slice(args);
        a.extend([img.to_str().unwrap(), blocks.0]);
        let out = mkfs_bin(&a);
        assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
        assert_eq!(dumpe2fs_h(&img).num("Block count"), blocks.1, "{a:?}");
    }
    // -N and -I through the command line.
    let img = dir.path().join("n.img");
    let out = mkfs_bin(&[
        "-q",
        "-b",
        "1024",
        "-N",
        "1000",
        "-I",
        "128",
        img.to_str().unwrap(),
        "64M",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = dumpe2fs_h(&img);
    assert_eq!(d.num("Inode size"), 128);
    let inodes = d.num("Inode count");
    assert!((1000..1000 + 8 * 8).contains(&inodes), "{inodes}");
    e2fsck_clean(&img);
}
