//! Make an ext2 file system (revision 1; `filetype`, `sparse_super`,
//! `large_file`) on a file or device, laid out the way `mke2fs` lays it out:
//! super block and descriptor backups in the sparse groups, bitmaps and inode
//! table per group, a root directory and a `lost+found` with pre-allocated
//! blocks. Uses `ext2_format` (the `ext2-format` crate) for every on-disk structure.

use ext2_format::dirent::{self, FT_DIR};
use ext2_format::group_desc::GROUP_DESC_SIZE;
use ext2_format::inode::{
    Inode, Timestamp, INODE_KNOWN_SIZE, LOST_FOUND_NAME, ROOT_INO, S_IFDIR, WANT_EXTRA_ISIZE,
};
use ext2_format::le::{Le16, Le32};
use ext2_format::superblock::{
    self, feature, group_has_super, Superblock, DYNAMIC_REV, EXT2_MAGIC, STATE_VALID,
};
use ext2_format::{bitmap, GroupDesc};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// File system size in bytes; `None` = the whole file or device.
    pub size: Option<u64>,
    /// 1024, 2048 or 4096; `None` picks like mke2fs (1 KiB below 512 MiB).
    pub block_size: Option<u32>,
    /// One inode per this many bytes; `None` picks like mke2fs.
    pub bytes_per_inode: Option<u64>,
    /// Exact inode count (overrides `bytes_per_inode`).
    pub inode_count: Option<u64>,
    /// 128 or 256 (or any power of two up to the block size).
    pub inode_size: Option<u32>,
    pub label: String,
    pub uuid: Option<[u8; 16]>,
    /// Percentage of blocks reserved for the super user.
    pub reserved_percent: f64,
    /// Overwrite an image that already holds an ext2 file system.
    pub force: bool,
}

impl Default for MkfsOptions {
    fn default() -> Self {
        MkfsOptions {
            size: None,
            block_size: None,
            bytes_per_inode: None,
            inode_count: None,
            inode_size: None,
            label: String::new(),
            uuid: None,
            reserved_percent: 5.0,
            force: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MkfsError {
    #[error("{0}")]
    BadOption(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} already contains an ext2 file system; use -F to overwrite it")]
    HasFileSystem(String),
    #[error("{0}: no size given and the file is empty (give a size, e.g. 64M)")]
    NoSize(String),
    #[error("file system too small: {0}")]
    TooSmall(String),
}

/// What was made, for the summary line and for tests.
#[derive(Clone, Debug)]
pub struct Summary {
    pub block_size: u32,
    pub blocks: u32,
    pub inodes: u32,
    pub groups: u32,
    pub inodes_per_group: u32,
    pub uuid: [u8; 16],
}

/// The computed layout of the new file system.
struct Layout {
    bs: u32,
    blocks: u32,
    first_data_block: u32,
    bpg: u32,
    groups: u32,
    ipg: u32,
    inode_size: u32,
    gdt_blocks: u32,
    itb: u32,
}

impl Layout {
    fn group_start(&self, g: u32) -> u32 {
        self.first_data_block + g * self.bpg
    }
    fn group_blocks(&self, g: u32) -> u32 {
        (self.blocks - self.group_start(g)).min(self.bpg)
    }
    fn has_super(&self, g: u32) -> bool {
        group_has_super(g, true)
    }
    /// Block bitmap, inode bitmap, inode table of group g.
    fn meta(&self, g: u32) -> (u32, u32, u32) {
        let mut pos = self.group_start(g);
        if self.has_super(g) {
            pos += 1 + self.gdt_blocks;
        }
        (pos, pos + 1, pos + 2)
    }
    fn overhead(&self, g: u32) -> u32 {
        let sup = if self.has_super(g) {
            1 + self.gdt_blocks
        } else {
            0
        };
        sup + 2 + self.itb
    }
}

fn compute_layout(size: u64, o: &MkfsOptions) -> Result<Layout, MkfsError> {
    let bad = |m: String| Err(MkfsError::BadOption(m));
    // mke2fs.conf's types: floppy (< 3 MiB), small (< 512 MiB), default.
    let (def_bs, def_ratio, def_isize) = if size < 3 << 20 {
        (1024, 8192, 128)
    } else if size < 512 << 20 {
        (1024, 4096, 256)
    } else {
        (4096, 16384, 256)
    };
    let bs = o.block_size.unwrap_or(def_bs);
    if ![1024, 2048, 4096].contains(&bs) {
        return bad(format!("invalid block size {bs} (1024, 2048 or 4096)"));
    }
    let inode_size = o.inode_size.unwrap_or(def_isize);
    if inode_size < 128 || inode_size > bs || !inode_size.is_power_of_two() {
        return bad(format!(
            "invalid inode size {inode_size} (a power of two, 128 to block size)"
        ));
    }
    let ratio = o.bytes_per_inode.unwrap_or(def_ratio);
    if !(1024..=(64 << 20)).contains(&ratio) {
        return bad(format!(
            "invalid bytes-per-inode {ratio} (1024 to 67108864)"
        ));
    }
    if !(0.0..=50.0).contains(&o.reserved_percent) {
        return bad(format!(
            "invalid reserved blocks percentage {} (0 to 50)",
            o.reserved_percent
        ));
    }
    let total = size / bs as u64;
    if total > u32::MAX as u64 {
        return bad(format!(
            "{size} bytes is too large for ext2 with {bs}-byte blocks"
        ));
    }
    let first_data_block = if bs == 1024 { 1 } else { 0 };
    let bpg = 8 * bs;
    let mut blocks = total as u32;
    let ipb = bs / inode_size;
    let align = ipb.max(8);
    loop {
        if blocks < first_data_block + 60 {
            return Err(MkfsError::TooSmall(format!(
                "{size} bytes is {blocks} blocks of {bs} bytes; at least {} blocks are needed",
                first_data_block + 60
            )));
        }
        let groups = (blocks - first_data_block).div_ceil(bpg);
        let gdt_blocks = (groups as usize * GROUP_DESC_SIZE).div_ceil(bs as usize) as u32;
        let wanted = match o.inode_count {
            Some(n) => n,
            None => blocks as u64 * bs as u64 / ratio,
        };
        let mut ipg = wanted.div_ceil(groups as u64).max(16);
        ipg = ipg.div_ceil(align as u64) * align as u64;
        // An inode bitmap is one block, and the table must leave room for data.
        let max_ipg = (8 * bs as u64).min((bpg as u64 - gdt_blocks as u64 - 3 - 50) * ipb as u64);
        if ipg > max_ipg {
            if o.inode_count.is_some() {
                return bad(format!(
                    "inode count {} too large: at most {} fit",
                    wanted,
                    max_ipg / align as u64 * align as u64 * groups as u64
                ));
            }
            ipg = max_ipg / align as u64 * align as u64;
        }
        if groups as u64 * ipg > u32::MAX as u64 {
            return bad("too many inodes".to_string());
        }
        let layout = Layout {
            bs,
            blocks,
            first_data_block,
            bpg,
            groups,
            ipg: ipg as u32,
            inode_size,
            gdt_blocks,
            itb: (ipg as u32 * inode_size).div_ceil(bs),
        };
        // Like mke2fs, drop a last group too small to hold its own metadata
        // and some data.
        let last = groups - 1;
        if layout.group_blocks(last) < layout.overhead(last) + 50 {
            if groups == 1 {
                return Err(MkfsError::TooSmall(format!(
                    "{blocks} blocks of {bs} bytes cannot hold the metadata of one group \
                     ({} blocks) and data; give a larger size or fewer inodes",
                    layout.overhead(0)
                )));
            }
            blocks = layout.group_start(last);
            continue;
        }
        return Ok(layout);
    }
}

/// Blocks lost+found gets up front, as mke2fs does (16 KiB, at least 2 blocks,
/// at most the 12 direct blocks), so e2fsck can add entries without allocating.
fn lost_found_blocks(bs: u32) -> u32 {
    (16384 / bs).clamp(2, 12)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MkfsError + '_ {
    move |source| MkfsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Make the file system. Creates `path` as a sparse file if it does not exist
/// and a size is given; grows a smaller file; never truncates.
pub fn mkfs(path: &Path, o: &MkfsOptions) -> Result<Summary, MkfsError> {
    if o.label.len() > 16 {
        return Err(MkfsError::BadOption(format!(
            "label '{}' is longer than 16 bytes",
            o.label
        )));
    }
    let exists = path.exists();
    if !exists && o.size.is_none() {
        return Err(MkfsError::NoSize(path.display().to_string()));
    }
    // Check the options before anything touches the file system, so a
    // refused run leaves no file behind.
    if let Some(size) = o.size {
        compute_layout(size, o)?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(o.size.is_some())
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    let meta = f.metadata().map_err(io_err(path))?;
    let is_block_dev = meta.file_type().is_block_device();
    if meta.is_dir() {
        return Err(MkfsError::BadOption(format!(
            "{} is a directory",
            path.display()
        )));
    }
    let current = if is_block_dev {
        device_size(&f).map_err(io_err(path))?
    } else {
        meta.len()
    };
    if exists && !o.force && has_ext2(&f) {
        return Err(MkfsError::HasFileSystem(path.display().to_string()));
    }
    let size = match o.size {
        Some(s) => s,
        None if current == 0 => return Err(MkfsError::NoSize(path.display().to_string())),
        None => current,
    };
    if is_block_dev && size > current {
        return Err(MkfsError::BadOption(format!(
            "size {size} is larger than the device ({current} bytes)"
        )));
    }
    let layout = compute_layout(size, o)?;
    let end = layout.blocks as u64 * layout.bs as u64;
    if !is_block_dev && meta.len() < end {
        f.set_len(end).map_err(io_err(path))?;
    }
    let uuid = o.uuid.unwrap_or_else(random_uuid);
    write_fs(&f, &layout, o, uuid).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(Summary {
        block_size: layout.bs,
        blocks: layout.blocks,
        inodes: layout.groups * layout.ipg,
        groups: layout.groups,
        inodes_per_group: layout.ipg,
        uuid,
    })
}

fn has_ext2(f: &File) -> bool {
    let mut magic = [0u8; 2];
    f.read_exact_at(&mut magic, 1024 + 56).is_ok() && u16::from_le_bytes(magic) == EXT2_MAGIC
}

fn device_size(f: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

pub fn random_uuid() -> [u8; 16] {
    let mut u: [u8; 16] = rand::random();
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

/// Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", or "random", "time", "clear".
pub fn parse_uuid(s: &str) -> Result<[u8; 16], MkfsError> {
    match s {
        "random" | "time" => return Ok(random_uuid()),
        "clear" | "null" => return Ok([0; 16]),
        _ => {}
    }
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    // Only ASCII hex digits: from_str_radix alone would take a '+' sign.
    if groups != [8, 4, 4, 4, 12] || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(MkfsError::BadOption(format!("invalid UUID '{s}'")));
    }
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| MkfsError::BadOption(format!("invalid UUID '{s}'")))?;
    }
    Ok(u)
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Zero a byte range: punch a hole where the file system allows (keeps
/// sparse images sparse), else write zeros.
fn zero_range(f: &File, off: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], off + done)?;
        done += n as u64;
    }
    Ok(())
}

fn write_fs(f: &File, l: &Layout, o: &MkfsOptions, uuid: [u8; 16]) -> std::io::Result<()> {
    let bs = l.bs as usize;
    let t = now();
    let at = |blk: u32| blk as u64 * bs as u64;

    // Data blocks of group 0 after its inode table: root, then lost+found.
    let (_, _, it0) = l.meta(0);
    let root_block = it0 + l.itb;
    let lf_count = lost_found_blocks(l.bs);
    let lf_first = root_block + 1;
    let first_ino = superblock::GOOD_OLD_FIRST_INO;
    let lf_ino = first_ino;

    // Group descriptors and bitmaps.
    let mut descs = Vec::with_capacity(l.groups as usize);
    let mut free_blocks_total: u64 = 0;
    for g in 0..l.groups {
        let (bb, ib, it) = l.meta(g);
        let n = l.group_blocks(g);
        let mut used = l.overhead(g);
        let mut bits = vec![0u8; bs];
        if g == 0 {
            used += 1 + lf_count;
        }
        for i in 0..used {
            bitmap::set(&mut bits, i as usize);
        }
        bitmap::set_padding(&mut bits, n as usize);
        f.write_all_at(&bits, at(bb))?;

        let mut ibits = vec![0u8; bs];
        let used_inodes = if g == 0 { lf_ino } else { 0 };
        for i in 0..used_inodes {
            bitmap::set(&mut ibits, i as usize);
        }
        bitmap::set_padding(&mut ibits, l.ipg as usize);
        f.write_all_at(&ibits, at(ib))?;
        zero_range(f, at(it), l.itb as u64 * bs as u64)?;

        let free = n - used;
        free_blocks_total += free as u64;
        descs.push(GroupDesc {
            bg_block_bitmap: Le32::new(bb),
            bg_inode_bitmap: Le32::new(ib),
            bg_inode_table: Le32::new(it),
            bg_free_blocks_count: Le16::new(free as u16),
            bg_free_inodes_count: Le16::new((l.ipg - used_inodes) as u16),
            bg_used_dirs_count: Le16::new(if g == 0 { 2 } else { 0 }),
            ..Default::default()
        });
    }

    // Root directory: ".", "..", "lost+found".
    let mut blk = vec![0u8; bs];
    dirent::write_entry(&mut blk, 0, ROOT_INO, 12, FT_DIR, b".");
    dirent::write_entry(&mut blk, 12, ROOT_INO, 12, FT_DIR, b"..");
    dirent::write_entry(
        &mut blk,
        24,
        lf_ino,
        bs - 24,
        FT_DIR,
        LOST_FOUND_NAME.as_bytes(),
    );
    f.write_all_at(&blk, at(root_block))?;
    // lost+found: ".", "..", then empty blocks.
    blk.fill(0);
    dirent::write_entry(&mut blk, 0, lf_ino, 12, FT_DIR, b".");
    dirent::write_entry(&mut blk, 12, ROOT_INO, bs - 12, FT_DIR, b"..");
    f.write_all_at(&blk, at(lf_first))?;
    dirent::empty_block(&mut blk);
    for i in 1..lf_count {
        f.write_all_at(&blk, at(lf_first + i))?;
    }

    // Inodes: root and lost+found (the reserved ones stay zero).
    let dir_inode = |perm: u16, links: u16, blocks: &[u32]| {
        let mut ino = Inode {
            i_mode: Le16::new(S_IFDIR | perm),
            i_size: Le32::new(blocks.len() as u32 * l.bs),
            i_links_count: Le16::new(links),
            i_blocks: Le32::new(blocks.len() as u32 * (l.bs / 512)),
            ..Default::default()
        };
        // Large inodes get their extra fields (nanoseconds, creation
        // time), as mke2fs writes them.
        if l.inode_size as usize >= INODE_KNOWN_SIZE {
            ino.i_extra_isize.set(WANT_EXTRA_ISIZE);
        }
        let t = Timestamp::secs(t as i64);
        ino.set_atime(t);
        ino.set_ctime(t);
        ino.set_mtime(t);
        ino.set_crtime(t);
        for (i, &b) in blocks.iter().enumerate() {
            ino.i_block[i].set(b);
        }
        ino
    };
    let root = dir_inode(0o755, 3, &[root_block]);
    let lf_blocks: Vec<u32> = (0..lf_count).map(|i| lf_first + i).collect();
    let lf = dir_inode(0o700, 2, &lf_blocks);
    let isz = l.inode_size as u64;
    for (ino, inode) in [(ROOT_INO, root), (lf_ino, lf)] {
        let mut slot = vec![0u8; isz as usize];
        inode.to_slot(&mut slot);
        f.write_all_at(&slot, at(it0) + (ino as u64 - 1) * isz)?;
    }

    // Super block and descriptor table, primary and backups.
    let inodes = l.groups * l.ipg;
    let mut sb: Superblock = bytemuck::Zeroable::zeroed();
    sb.s_inodes_count.set(inodes);
    sb.s_blocks_count.set(l.blocks);
    sb.s_r_blocks_count
        .set((l.blocks as f64 * o.reserved_percent / 100.0) as u32);
    sb.s_free_blocks_count.set(free_blocks_total as u32);
    sb.s_free_inodes_count.set(inodes - lf_ino);
    sb.s_first_data_block.set(l.first_data_block);
    let log = l.bs.trailing_zeros() - 10;
    sb.s_log_block_size.set(log);
    sb.s_log_frag_size.set(log);
    sb.s_blocks_per_group.set(l.bpg);
    sb.s_frags_per_group.set(l.bpg);
    sb.s_inodes_per_group.set(l.ipg);
    sb.s_wtime.set(t);
    sb.s_max_mnt_count.set(0xffff); // -1: no forced check by mount count
    sb.s_magic.set(EXT2_MAGIC);
    sb.s_state.set(STATE_VALID);
    sb.s_errors.set(1); // continue
    sb.s_lastcheck.set(t);
    sb.s_rev_level.set(DYNAMIC_REV);
    sb.s_first_ino.set(first_ino);
    sb.s_inode_size.set(l.inode_size as u16);
    if l.inode_size as usize >= INODE_KNOWN_SIZE {
        sb.s_min_extra_isize.set(WANT_EXTRA_ISIZE);
        sb.s_want_extra_isize.set(WANT_EXTRA_ISIZE);
    }
    sb.s_feature_incompat.set(feature::INCOMPAT_FILETYPE);
    sb.s_feature_ro_compat
        .set(feature::RO_COMPAT_SPARSE_SUPER | feature::RO_COMPAT_LARGE_FILE);
    sb.s_uuid = uuid;
    sb.s_volume_name[..o.label.len()].copy_from_slice(o.label.as_bytes());
    sb.s_mkfs_time.set(t);

    let mut gdt = vec![0u8; l.gdt_blocks as usize * bs];
    for (i, d) in descs.iter().enumerate() {
        gdt[i * GROUP_DESC_SIZE..(i + 1) * GROUP_DESC_SIZE].copy_from_slice(bytemuck::bytes_of(d));
    }
    for g in 0..l.groups {
        if !l.has_super(g) {
            continue;
        }
        let start = l.group_start(g);
        sb.s_block_group_nr.set(g as u16);
        let sb_off = if g == 0 {
            superblock::SUPERBLOCK_OFFSET
        } else {
            at(start)
        };
        f.write_all_at(sb.as_bytes(), sb_off)?;
        f.write_all_at(&gdt, at(start + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_parsing_rejects_signs_and_non_ascii() {
        assert!(parse_uuid("+1234567-89ab-cdef-0123-456789abcdef").is_err());
        assert!(parse_uuid("0é12345-89ab-cdef-0123-456789abcdef").is_err());
    }

    #[test]
    fn uuid_parsing() {
        let u = parse_uuid("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(u[0], 0x01);
        assert_eq!(u[15], 0xef);
        assert!(parse_uuid("0123456789abcdef0123456789abcdef").is_err());
        assert!(parse_uuid("zz234567-89ab-cdef-0123-456789abcdef").is_err());
    }

    #[test]
    fn layout_drops_tiny_last_group() {
        // 8 MiB + 20 KiB with 1 KiB blocks: the 20-block tail cannot hold a group.
        let l = compute_layout((8 << 20) + 20 * 1024, &MkfsOptions::default()).unwrap();
        assert_eq!(l.groups, 1);
        assert_eq!(l.blocks, 8193);
    }

    #[test]
    fn bad_options_are_refused() {
        let o = MkfsOptions {
            block_size: Some(3000),
            ..Default::default()
        };
        assert!(matches!(
            compute_layout(1 << 20, &o),
            Err(MkfsError::BadOption(_))
        ));
        assert!(matches!(
            compute_layout(4096, &MkfsOptions::default()),
            Err(MkfsError::TooSmall(_))
        ));
    }
}
