//! Robustness of `ext2mfr::format` against corrupt images: seeded random and
//! targeted corruption of the super block and the group descriptor table must
//! never panic `read_image_header`/`mount_check`; what they accept must be
//! internally consistent; specific corruptions must be refused with an error.
//! `dirent::parse_block` must never panic on random blocks either.
//!
//! The valid starting images come from the real `mkfs.ext2` (e2fsprogs).

use ext2mfr::format::{
    self, dirent, group_desc, inode, superblock::feature, FormatError, GroupDesc, Superblock,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;

/// A valid image: its leading bytes (super block and descriptor table) in
/// memory, and a scratch file of the full image size to write variants to.
struct Base {
    name: String,
    /// Bytes 0..header_len of the image.
    head: Vec<u8>,
    size: u64,
    bs: usize,
    groups: usize,
    /// Byte offset of the descriptor table.
    gdt_off: usize,
}

/// Offsets of super block fields inside the image (super block at 1024).
mod off {
    pub const SB: usize = 1024;
    pub const INODES_COUNT: usize = SB;
    pub const BLOCKS_COUNT: usize = SB + 4;
    pub const R_BLOCKS_COUNT: usize = SB + 8;
    pub const FREE_BLOCKS: usize = SB + 12;
    pub const FREE_INODES: usize = SB + 16;
    pub const FIRST_DATA_BLOCK: usize = SB + 20;
    pub const LOG_BLOCK_SIZE: usize = SB + 24;
    pub const BLOCKS_PER_GROUP: usize = SB + 32;
    pub const INODES_PER_GROUP: usize = SB + 40;
    pub const MNT_COUNT: usize = SB + 52;
    pub const MAX_MNT_COUNT: usize = SB + 54;
    pub const MAGIC: usize = SB + 56;
    pub const STATE: usize = SB + 58;
    pub const REV_LEVEL: usize = SB + 76;
    pub const FIRST_INO: usize = SB + 84;
    pub const INODE_SIZE: usize = SB + 88;
    pub const FEATURE_INCOMPAT: usize = SB + 96;
    pub const FEATURE_RO_COMPAT: usize = SB + 100;
}

/// (name, offset, width in bytes) of every field the parser sizes or indexes with.
const FIELDS: &[(&str, usize, usize)] = &[
    ("s_inodes_count", off::INODES_COUNT, 4),
    ("s_blocks_count", off::BLOCKS_COUNT, 4),
    ("s_r_blocks_count", off::R_BLOCKS_COUNT, 4),
    ("s_free_blocks_count", off::FREE_BLOCKS, 4),
    ("s_free_inodes_count", off::FREE_INODES, 4),
    ("s_first_data_block", off::FIRST_DATA_BLOCK, 4),
    ("s_log_block_size", off::LOG_BLOCK_SIZE, 4),
    ("s_log_frag_size", off::SB + 28, 4),
    ("s_blocks_per_group", off::BLOCKS_PER_GROUP, 4),
    ("s_frags_per_group", off::SB + 36, 4),
    ("s_inodes_per_group", off::INODES_PER_GROUP, 4),
    ("s_mnt_count", off::MNT_COUNT, 2),
    ("s_max_mnt_count", off::MAX_MNT_COUNT, 2),
    ("s_magic", off::MAGIC, 2),
    ("s_state", off::STATE, 2),
    ("s_rev_level", off::REV_LEVEL, 4),
    ("s_first_ino", off::FIRST_INO, 4),
    ("s_inode_size", off::INODE_SIZE, 2),
    ("s_feature_compat", off::SB + 92, 4),
    ("s_feature_incompat", off::FEATURE_INCOMPAT, 4),
    ("s_feature_ro_compat", off::FEATURE_RO_COMPAT, 4),
    ("s_reserved_gdt_blocks", off::SB + 206, 2),
    ("s_desc_size", off::SB + 254, 2),
];

/// Descriptor fields: (name, offset in the descriptor, width).
const DESC_FIELDS: &[(&str, usize, usize)] = &[
    ("bg_block_bitmap", 0, 4),
    ("bg_inode_bitmap", 4, 4),
    ("bg_inode_table", 8, 4),
    ("bg_free_blocks_count", 12, 2),
    ("bg_free_inodes_count", 14, 2),
    ("bg_used_dirs_count", 16, 2),
];

fn put(buf: &mut [u8], at: usize, width: usize, v: u64) {
    buf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

fn get(buf: &[u8], at: usize, width: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(&buf[at..at + width]);
    u64::from_le_bytes(b)
}

fn make_base(dir: &Path, name: &str, size: u64, args: &[&str]) -> Base {
    let img = dir.join(format!("{name}.img"));
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    let out = Command::new("mkfs.ext2")
        .args(["-q", "-F"])
        .args(args)
        .arg(&img)
        .output()
        .expect("cannot run mkfs.ext2 (is e2fsprogs installed?)");
    assert!(
        out.status.success(),
        "mkfs.ext2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = std::fs::File::open(&img).unwrap();
    let (sb, descs) = format::read_image_header(&f).expect("a fresh mkfs.ext2 image is valid");
    let bs = sb.block_size() as usize;
    let gdt_off = group_desc::gdt_start(&sb) as usize * bs;
    let head_len = gdt_off + group_desc::gdt_blocks(&sb) as usize * bs;
    let mut head = vec![0u8; head_len];
    f.read_exact_at(&mut head, 0).unwrap();
    std::fs::remove_file(&img).unwrap();
    Base {
        name: name.into(),
        head,
        size,
        bs,
        groups: descs.len(),
        gdt_off,
    }
}

fn bases(dir: &Path) -> Vec<Base> {
    vec![
        // 1 KiB blocks, 8 groups (first data block 1, resize_inode).
        make_base(dir, "1k-64m", 64 << 20, &["-b", "1024"]),
        // 4 KiB blocks, one group, 128-byte inodes, no resize inode.
        make_base(
            dir,
            "4k-64m",
            64 << 20,
            &["-b", "4096", "-I", "128", "-O", "^resize_inode"],
        ),
        // 2 KiB blocks, 10 groups.
        make_base(dir, "2k-300m", 300 << 20, &["-b", "2048"]),
    ]
}

/// The scratch file every variant is written to: the image's size (sparse),
/// so a corrupted geometry reads zeros rather than hitting the end at once.
struct Scratch {
    _dir: tempfile::TempDir,
    file: std::fs::File,
}

impl Scratch {
    fn new(base: &Base) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("scratch.img"))
            .unwrap();
        file.set_len(base.size).unwrap();
        Scratch { _dir: dir, file }
    }

    /// Write `head` and parse it: never a panic. Returns the result.
    fn parse(
        &self,
        head: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(Superblock, Vec<GroupDesc>), FormatError> {
        self.file.write_all_at(head, 0).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let r = format::read_image_header(&self.file);
            if let Ok((sb, descs)) = &r {
                check_accepted(sb, descs);
                // mount_check must agree with what read_image_header accepted.
                sb.mount_check()
                    .expect("mount_check refuses what read_image_header accepted");
            }
            r
        }));
        match r {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("read_image_header panicked on {}: {msg}", what())
            }
        }
    }
}

/// What every later computation relies on when read_image_header says Ok.
fn check_accepted(sb: &Superblock, descs: &[GroupDesc]) {
    let bs = sb.block_size();
    assert!([1024, 2048, 4096].contains(&bs));
    assert_eq!(sb.s_first_data_block.get(), u32::from(bs == 1024));
    let groups = sb.group_count();
    assert!(groups >= 1);
    assert_eq!(descs.len(), groups as usize);
    let ipg = sb.s_inodes_per_group.get();
    assert!(ipg >= 1 && ipg <= 8 * bs);
    let bpg = sb.s_blocks_per_group.get();
    assert!(bpg >= 1 && bpg <= 8 * bs);
    assert_eq!(groups as u64 * ipg as u64, sb.s_inodes_count.get() as u64);
    let isz = sb.inode_size();
    assert!(isz.is_power_of_two() && (128..=bs).contains(&isz));
    assert!(sb.first_ino() < sb.s_inodes_count.get());
    assert!(sb.s_free_blocks_count.get() <= sb.s_blocks_count.get());
    assert!(sb.s_free_inodes_count.get() <= sb.s_inodes_count.get());
    assert_eq!(
        sb.s_feature_incompat.get() & !feature::INCOMPAT_SUPPORTED,
        0
    );
    let itb = group_desc::inode_table_blocks(sb);
    for (g, d) in descs.iter().enumerate() {
        let (first, last) = group_desc::group_range(sb, g as u32);
        assert!(first <= last && last < sb.s_blocks_count.get());
        for b in [d.bg_block_bitmap.get(), d.bg_inode_bitmap.get()] {
            assert!(
                (first..=last).contains(&b),
                "group {g}: {b} outside {first}..={last}"
            );
        }
        let it = d.bg_inode_table.get() as u64;
        assert!(it >= first as u64 && it + itb as u64 - 1 <= last as u64);
        assert!(d.bg_free_blocks_count.get() as u32 <= last - first + 1);
        assert!(d.bg_free_inodes_count.get() as u32 <= ipg);
    }
    // Locating the first and the last inode stays inside the table.
    for ino in [1, sb.first_ino(), sb.s_inodes_count.get()] {
        let (g, byte) = inode::inode_location(sb, ino);
        assert!(g < groups);
        assert!(byte + isz as u64 <= itb as u64 * bs as u64);
    }
}

/// Values that tend to break size arithmetic.
fn interesting(rng: &mut StdRng, width: usize, orig: u64) -> u64 {
    let max = if width == 2 { 0xffff } else { 0xffff_ffff };
    let pick = [
        0,
        1,
        2,
        3,
        7,
        8,
        9,
        31,
        32,
        127,
        128,
        255,
        256,
        1023,
        1024,
        4096,
        8192,
        16384,
        32768,
        32769,
        65535,
        65536,
        0x7fff_ffff,
        0x8000_0000,
        max - 1,
        max,
        orig.wrapping_add(1),
        orig.wrapping_sub(1),
        orig.wrapping_mul(2),
        orig / 2,
        orig ^ (1 << rng.gen_range(0..width * 8)),
        rng.gen::<u64>(),
    ];
    pick[rng.gen_range(0..pick.len())] & max
}

#[test]
fn random_byte_corruption_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_e272);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        // The untouched image parses.
        scratch
            .parse(&base.head, &|| format!("{} unchanged", base.name))
            .unwrap();
        for iter in 0..20_000 {
            let mut head = base.head.clone();
            let n = rng.gen_range(1..=8);
            let mut changes = Vec::new();
            for _ in 0..n {
                // Mostly the super block's first 264 bytes (the fields that
                // matter), also anywhere in it and in the descriptor table.
                let at = match rng.gen_range(0..4) {
                    0 | 1 => off::SB + rng.gen_range(0..264),
                    2 => off::SB + rng.gen_range(0..1024),
                    _ => base.gdt_off + rng.gen_range(0..(base.groups * 32).max(32)),
                };
                let v: u8 = rng.gen();
                head[at] = v;
                changes.push((at, v));
            }
            let r = scratch.parse(&head, &|| {
                format!("{} iteration {iter}: bytes {changes:?}", base.name)
            });
            if r.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    // Both outcomes happen: the parser is neither accept-all nor reject-all.
    assert!(
        accepted > 100 && refused > 100,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn targeted_field_corruption_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        for &(name, at, width) in FIELDS {
            let orig = get(&base.head, at, width);
            for k in 0..400 {
                let mut head = base.head.clone();
                let v = interesting(&mut rng, width, orig);
                put(&mut head, at, width, v);
                // Sometimes corrupt a second field too (pairs like bpg and blocks).
                let second = (k % 3 == 0).then(|| {
                    let &(n2, a2, w2) = &FIELDS[rng.gen_range(0..FIELDS.len())];
                    let v2 = interesting(&mut rng, w2, get(&base.head, a2, w2));
                    put(&mut head, a2, w2, v2);
                    (n2, v2)
                });
                let _ = scratch.parse(&head, &|| {
                    format!("{}: {name} = {v:#x}, then {second:?}", base.name)
                });
            }
        }
        for g in 0..base.groups {
            for &(name, o, width) in DESC_FIELDS {
                let at = base.gdt_off + g * 32 + o;
                let orig = get(&base.head, at, width);
                for _ in 0..100 {
                    let mut head = base.head.clone();
                    let v = interesting(&mut rng, width, orig);
                    put(&mut head, at, width, v);
                    let _ = scratch.parse(&head, &|| {
                        format!("{}: group {g} {name} = {v:#x}", base.name)
                    });
                }
            }
        }
    }
}

/// Geometry that is consistent with itself but not with the file: a huge
/// block count with a matching inode count, an image cut short.
#[test]
fn consistent_but_impossible_geometry() {
    let dir = tempfile::tempdir().unwrap();
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        let bs = base.bs as u64;
        let bpg = get(&base.head, off::BLOCKS_PER_GROUP, 4);
        let ipg = get(&base.head, off::INODES_PER_GROUP, 4);
        let first = get(&base.head, off::FIRST_DATA_BLOCK, 4);
        // Grow to as many groups as the descriptor table could describe.
        for groups in [2u64, 100, 1000, 5000, 100_000] {
            let blocks = first + groups * bpg;
            if blocks > u32::MAX as u64 || groups * ipg > u32::MAX as u64 {
                continue;
            }
            let mut head = base.head.clone();
            put(&mut head, off::BLOCKS_COUNT, 4, blocks);
            put(&mut head, off::INODES_COUNT, 4, groups * ipg);
            let r = scratch.parse(&head, &|| format!("{}: {groups} groups", base.name));
            // Descriptors beyond the real table read as zeros: never valid
            // past group 0, so the result is an error (not a panic, no huge
            // allocation beyond one descriptor table).
            if groups as usize > base.groups && (groups * 32).div_ceil(bs) + 2 <= bpg {
                assert!(
                    r.is_err(),
                    "{}: {groups} groups of zero descriptors accepted",
                    base.name
                );
            }
        }
        // Cut the file short: inside the super block, inside the table.
        for len in [0u64, 100, 1024, 1500, base.gdt_off as u64 + 10] {
            let short = tempfile::NamedTempFile::new().unwrap();
            short
                .as_file()
                .write_all_at(&base.head[..len as usize], 0)
                .unwrap();
            let r = catch_unwind(|| format::read_image_header(short.as_file()));
            match r {
                Ok(Err(FormatError::TooSmall(_))) => {}
                Ok(other) => panic!("{}: {len}-byte file gave {other:?}", base.name),
                Err(_) => panic!("{}: {len}-byte file panicked", base.name),
            }
        }
    }
}

fn expect_err(scratch: &Scratch, head: &[u8], what: &str) -> FormatError {
    match scratch.parse(head, &|| what.to_string()) {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e,
    }
}

#[test]
fn specific_corruptions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        let name = &base.name;
        let with = |at: usize, width: usize, v: u64| {
            let mut h = base.head.clone();
            put(&mut h, at, width, v);
            h
        };

        let e = expect_err(&scratch, &with(off::MAGIC, 2, 0x1234), "bad magic");
        assert!(matches!(e, FormatError::BadMagic(0x1234)), "{name}: {e:?}");
        assert!(e.to_string().contains("0x1234"), "{e}");

        for log in [3u64, 6, 7, 31, 0xffff_ffff] {
            let e = expect_err(
                &scratch,
                &with(off::LOG_BLOCK_SIZE, 4, log),
                "log block size",
            );
            assert!(
                matches!(e, FormatError::BadSuper(_)),
                "{name}: log {log}: {e:?}"
            );
            assert!(e.to_string().contains("block size"), "{e}");
        }

        let e = expect_err(&scratch, &with(off::INODES_PER_GROUP, 4, 0), "ipg 0");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let e = expect_err(&scratch, &with(off::BLOCKS_PER_GROUP, 4, 0), "bpg 0");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let too_many = 8 * base.bs as u64 + 8;
        let e = expect_err(
            &scratch,
            &with(off::BLOCKS_PER_GROUP, 4, too_many),
            "bpg > 8*bs",
        );
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let e = expect_err(
            &scratch,
            &with(off::INODES_PER_GROUP, 4, too_many),
            "ipg > 8*bs",
        );
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");

        let ic = get(&base.head, off::INODES_COUNT, 4);
        let e = expect_err(&scratch, &with(off::INODES_COUNT, 4, ic + 1), "inode count");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let fdb = get(&base.head, off::FIRST_DATA_BLOCK, 4);
        let e = expect_err(
            &scratch,
            &with(off::FIRST_DATA_BLOCK, 4, fdb ^ 1),
            "first data block",
        );
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        for isz in [0u64, 64, 100, 129, 384, 2 * base.bs as u64] {
            let e = expect_err(&scratch, &with(off::INODE_SIZE, 2, isz), "inode size");
            assert!(
                matches!(e, FormatError::BadSuper(_)),
                "{name}: isz {isz}: {e:?}"
            );
        }
        let e = expect_err(&scratch, &with(off::REV_LEVEL, 4, 2), "revision 2");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        for fi in [0u64, 1, 10, ic, ic + 100] {
            let e = expect_err(&scratch, &with(off::FIRST_INO, 4, fi), "first inode");
            assert!(
                matches!(e, FormatError::BadSuper(_)),
                "{name}: first_ino {fi}: {e:?}"
            );
        }
        let bc = get(&base.head, off::BLOCKS_COUNT, 4);
        let e = expect_err(&scratch, &with(off::FREE_BLOCKS, 4, bc + 1), "free blocks");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let e = expect_err(&scratch, &with(off::FREE_INODES, 4, ic + 1), "free inodes");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");
        let e = expect_err(&scratch, &with(off::R_BLOCKS_COUNT, 4, bc + 1), "reserved");
        assert!(matches!(e, FormatError::BadSuper(_)), "{name}: {e:?}");

        // INCOMPAT features we do not implement: refused, and named.
        let inc = get(&base.head, off::FEATURE_INCOMPAT, 4);
        let e = expect_err(
            &scratch,
            &with(off::FEATURE_INCOMPAT, 4, inc | 0x40),
            "extent",
        );
        match &e {
            FormatError::UnsupportedIncompat(s) => assert!(s.contains("extent"), "{s}"),
            other => panic!("{name}: extent gave {other:?}"),
        }
        assert!(e.to_string().contains("extent"), "{e}");
        let e = expect_err(
            &scratch,
            &with(off::FEATURE_INCOMPAT, 4, inc | 0x80 | 0x200),
            "64bit",
        );
        assert!(
            e.to_string().contains("64bit") && e.to_string().contains("flex_bg"),
            "{e}"
        );
        let e = expect_err(
            &scratch,
            &with(off::FEATURE_INCOMPAT, 4, inc | 0x4000_0000),
            "unnamed",
        );
        assert!(e.to_string().contains("0x40000000"), "{e}");

        // Descriptors: bitmaps and the inode table must lie inside their group.
        let sb = Superblock::from_bytes(&base.head[1024..2048]).unwrap();
        let itb = group_desc::inode_table_blocks(&sb) as u64;
        for g in [0, base.groups - 1] {
            let (first, last) = group_desc::group_range(&sb, g as u32);
            let d = base.gdt_off + g * 32;
            let cases = [
                (
                    "inode table crosses the group end",
                    8,
                    last as u64 + 1 - itb + 1,
                ),
                ("inode table in the next group", 8, last as u64 + 1),
                (
                    "inode table before the group",
                    8,
                    first as u64 - u64::from(first > 0),
                ),
                ("inode table far away", 8, 0xffff_fff0),
                ("block bitmap in the next group", 0, last as u64 + 1),
                ("inode bitmap past the end", 4, 0xffff_ffff),
                (
                    "free blocks larger than the group",
                    12,
                    (last - first + 2) as u64,
                ),
                (
                    "free inodes larger than the group",
                    14,
                    sb.s_inodes_per_group.get() as u64 + 1,
                ),
            ];
            for (what, o, v) in cases {
                if what.contains("before") && first == 0 {
                    continue; // nothing lies before group 0 with 2/4 KiB blocks
                }
                let width = if o >= 12 { 2 } else { 4 };
                if v > if width == 2 { 0xffff } else { 0xffff_ffff } {
                    continue;
                }
                let e = expect_err(&scratch, &with(d + o, width, v), what);
                match e {
                    FormatError::BadGroup(eg, _) => assert_eq!(eg as usize, g, "{name}: {what}"),
                    other => panic!("{name}: group {g} {what}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn features_and_state_in_mount_check() {
    let dir = tempfile::tempdir().unwrap();
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        let name = &base.name;
        let with = |at: usize, width: usize, v: u64| {
            let mut h = base.head.clone();
            put(&mut h, at, width, v);
            h
        };
        let mc = |h: &[u8]| {
            let (sb, _) = scratch.parse(h, &|| "mount_check".into()).unwrap();
            sb.mount_check().unwrap()
        };

        // A fresh image: writable, no warnings.
        let clean = mc(&base.head);
        assert_eq!(clean.read_only_reason, None, "{name}");
        assert!(clean.warnings.is_empty(), "{name}: {:?}", clean.warnings);

        // Unknown RO_COMPAT features: read-only, and the reason names them.
        let ro = get(&base.head, off::FEATURE_RO_COMPAT, 4);
        for (bit, feat) in [
            (0x400u64, "metadata_csum"),
            (0x8, "huge_file"),
            (0x20, "dir_nlink"),
            (0x10_0000, "FEATURE_0x100000"),
        ] {
            let m = mc(&with(off::FEATURE_RO_COMPAT, 4, ro | bit));
            let reason = m
                .read_only_reason
                .unwrap_or_else(|| panic!("{name}: {feat} not read-only"));
            assert!(reason.contains(feat), "{name}: {reason}");
            assert!(
                !reason.contains("sparse_super"),
                "{name}: supported features named: {reason}"
            );
        }
        // COMPAT bits alone change nothing.
        let m = mc(&with(off::SB + 92, 4, 0xffff_ffff));
        assert_eq!(m.read_only_reason, None, "{name}");

        // State: not cleanly unmounted, errors recorded.
        let m = mc(&with(off::STATE, 2, 0));
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("not cleanly unmounted")),
            "{name}: {:?}",
            m.warnings
        );
        assert_eq!(m.read_only_reason, None);
        let m = mc(&with(off::STATE, 2, 3));
        assert_eq!(m.warnings.len(), 1, "{name}: {:?}", m.warnings);
        assert!(m.warnings[0].contains("errors"), "{name}: {:?}", m.warnings);
        // Mount count reached.
        let mut h = with(off::MAX_MNT_COUNT, 2, 20);
        put(&mut h, off::MNT_COUNT, 2, 20);
        let m = mc(&h);
        assert!(
            m.warnings.iter().any(|w| w.contains("mount count")),
            "{name}: {:?}",
            m.warnings
        );
        put(&mut h, off::MNT_COUNT, 2, 19);
        assert!(mc(&h).warnings.is_empty(), "{name}");
    }
}

#[test]
fn parse_block_never_panics() {
    let mut rng = StdRng::seed_from_u64(0xd1e7);
    let mut ok = 0;
    for iter in 0..100_000 {
        let len = match iter % 4 {
            0 => [1024, 2048, 4096][rng.gen_range(0..3)],
            1 => rng.gen_range(0..64),
            _ => rng.gen_range(0..4200),
        };
        let mut block: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Half of the blocks start as a valid chain and then get a few bytes
        // corrupted, so the parser gets past the first entry.
        if iter % 2 == 0 && len >= 24 && len % 4 == 0 {
            let mut off = 0;
            let mut headers = Vec::new();
            while off < len {
                let name_len = rng.gen_range(0..=20usize.min(len - off - 8));
                let mut rec = dirent::rec_len_for(name_len);
                if off + rec + 12 > len || rng.gen_range(0..6) == 0 {
                    rec = len - off;
                }
                if rec < dirent::rec_len_for(name_len) {
                    break;
                }
                let name: Vec<u8> = (0..name_len).map(|_| rng.gen_range(b'a'..=b'z')).collect();
                // Unused slots (inode 0) are common: deleted entries, empty blocks.
                let ino = if rng.gen_range(0..4) == 0 {
                    0
                } else {
                    rng.gen_range(1..100)
                };
                dirent::write_entry(&mut block, off, ino, rec, 1, &name);
                headers.push(off);
                off += rec;
            }
            if off == len && dirent::parse_block(&block, 100).is_ok() {
                ok += 1;
            }
            // Corrupt a few bytes: anywhere, or in an entry header (inode,
            // rec_len, name_len), or an unused slot's name_len.
            for _ in 0..rng.gen_range(0..4) {
                match rng.gen_range(0..3) {
                    0 => {
                        let at = rng.gen_range(0..len);
                        block[at] = rng.gen();
                    }
                    1 => {
                        let h = headers[rng.gen_range(0..headers.len())];
                        let at = h + rng.gen_range(0..8);
                        block[at] = rng.gen();
                    }
                    _ => {
                        let h = headers[rng.gen_range(0..headers.len())];
                        block[h..h + 4].fill(0);
                        block[h + 6] = rng.gen();
                    }
                }
            }
        }
        let max_ino = [0, 1, 11, 100, u32::MAX][rng.gen_range(0..5)];
        let r = catch_unwind(|| {
            if let Ok(entries) = dirent::parse_block(&block, max_ino) {
                // What is accepted tiles the block and respects the bounds.
                let mut pos = 0;
                for e in &entries {
                    assert_eq!(e.offset, pos);
                    assert!(e.rec_len >= dirent::DIRENT_HEADER && e.rec_len % 4 == 0);
                    assert!(e.inode <= max_ino);
                    assert!(e.name.len() <= e.rec_len - dirent::DIRENT_HEADER);
                    let _ = e.slack();
                    pos += e.rec_len;
                }
                assert_eq!(pos, block.len());
            }
        });
        assert!(
            r.is_ok(),
            "parse_block panicked on iteration {iter} (seed 0xd1e7): {} bytes, max_ino {max_ino}, starts {:?}",
            block.len(),
            &block[..block.len().min(64)]
        );
    }
    assert!(
        ok > 5000,
        "only {ok} valid chains were built: the generator is broken"
    );
}

/// Descriptors whose bitmaps or inode table overlap the super block, the
/// descriptor table or each other pass `parse_table`, which only range-checks
/// each location against its group (as the kernel's ext2 does; ext4's
/// `ext4_check_descriptors` refuses overlaps with the super block and table).
/// A writer trusting such a descriptor overwrites the super block with a
/// bitmap. Hardening gap, not a violation of the module's stated contract.
#[test]
fn descriptors_overlapping_metadata_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for base in bases(dir.path()) {
        let scratch = Scratch::new(&base);
        let d0 = base.gdt_off;
        let sb_block = (1024 / base.bs) as u64; // block holding the super block
        let gdt_block = (base.gdt_off / base.bs) as u64;
        let bb = get(&base.head, d0, 4);
        let cases = [
            ("block bitmap on the super block", 0usize, sb_block),
            ("inode bitmap on the descriptor table", 4, gdt_block),
            ("inode bitmap on the block bitmap", 4, bb),
            ("inode table over the block bitmap", 8, bb),
        ];
        for (what, o, v) in cases {
            let mut h = base.head.clone();
            put(&mut h, d0 + o, 4, v);
            let r = scratch.parse(&h, &|| what.to_string());
            assert!(
                matches!(r, Err(FormatError::BadGroup(0, _))),
                "{}: {what} ({v}) gave {:?}",
                base.name,
                r.map(|_| ())
            );
        }
    }
}
