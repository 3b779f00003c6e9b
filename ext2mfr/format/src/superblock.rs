//! The ext2 super block (1024 bytes at byte offset 1024) and its feature flags.

use super::le::{Le16, Le32};
use super::FormatError;
use bytemuck::{Pod, Zeroable};

pub const SUPERBLOCK_OFFSET: u64 = 1024;
pub const SUPERBLOCK_SIZE: usize = 1024;
pub const EXT2_MAGIC: u16 = 0xEF53;

/// `s_state` bits.
pub const STATE_VALID: u16 = 0x0001;
pub const STATE_ERROR: u16 = 0x0002;

pub const GOOD_OLD_REV: u32 = 0;
pub const DYNAMIC_REV: u32 = 1;
pub const GOOD_OLD_INODE_SIZE: u16 = 128;
pub const GOOD_OLD_FIRST_INO: u32 = 11;

pub mod feature {
    //! Feature bits and their names (as e2fsprogs spells them).
    pub const COMPAT_DIR_PREALLOC: u32 = 0x0001;
    pub const COMPAT_IMAGIC_INODES: u32 = 0x0002;
    pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
    pub const COMPAT_EXT_ATTR: u32 = 0x0008;
    pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
    pub const COMPAT_DIR_INDEX: u32 = 0x0020;

    pub const INCOMPAT_FILETYPE: u32 = 0x0002;

    pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
    pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;

    /// INCOMPAT features this implementation understands; any other bit refuses the mount.
    pub const INCOMPAT_SUPPORTED: u32 = INCOMPAT_FILETYPE;
    /// RO_COMPAT features we can write; any other bit allows a read-only mount only.
    pub const RO_COMPAT_SUPPORTED: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE;

    const INCOMPAT_NAMES: &[(u32, &str)] = &[
        (0x0001, "compression"),
        (0x0002, "filetype"),
        (0x0004, "needs_recovery"),
        (0x0008, "journal_dev"),
        (0x0010, "meta_bg"),
        (0x0040, "extent"),
        (0x0080, "64bit"),
        (0x0100, "mmp"),
        (0x0200, "flex_bg"),
        (0x0400, "ea_inode"),
        (0x1000, "dirdata"),
        (0x2000, "metadata_csum_seed"),
        (0x4000, "large_dir"),
        (0x8000, "inline_data"),
        (0x10000, "encrypt"),
        (0x20000, "casefold"),
    ];
    const RO_COMPAT_NAMES: &[(u32, &str)] = &[
        (0x0001, "sparse_super"),
        (0x0002, "large_file"),
        (0x0004, "btree_dir"),
        (0x0008, "huge_file"),
        (0x0010, "uninit_bg"),
        (0x0020, "dir_nlink"),
        (0x0040, "extra_isize"),
        (0x0080, "snapshot"),
        (0x0100, "quota"),
        (0x0200, "bigalloc"),
        (0x0400, "metadata_csum"),
        (0x0800, "replica"),
        (0x1000, "read-only"),
        (0x2000, "project"),
        (0x4000, "shared_blocks"),
        (0x8000, "verity"),
    ];

    fn names(bits: u32, table: &[(u32, &str)]) -> String {
        let mut out = Vec::new();
        for i in 0..32 {
            let bit = 1u32 << i;
            if bits & bit != 0 {
                match table.iter().find(|(b, _)| *b == bit) {
                    Some((_, n)) => out.push(n.to_string()),
                    None => out.push(format!("FEATURE_{bit:#x}")),
                }
            }
        }
        out.join(", ")
    }
    pub fn incompat_names(bits: u32) -> String {
        names(bits, INCOMPAT_NAMES)
    }
    pub fn ro_compat_names(bits: u32) -> String {
        names(bits, RO_COMPAT_NAMES)
    }
}

/// The on-disk super block, field for field (revision 1 layout; the tail that
/// ext3/ext4 use is kept as opaque bytes so it is written back unchanged).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Superblock {
    pub s_inodes_count: Le32,
    pub s_blocks_count: Le32,
    pub s_r_blocks_count: Le32,
    pub s_free_blocks_count: Le32,
    pub s_free_inodes_count: Le32,
    pub s_first_data_block: Le32,
    pub s_log_block_size: Le32,
    pub s_log_frag_size: Le32,
    pub s_blocks_per_group: Le32,
    pub s_frags_per_group: Le32,
    pub s_inodes_per_group: Le32,
    pub s_mtime: Le32,
    pub s_wtime: Le32,
    pub s_mnt_count: Le16,
    pub s_max_mnt_count: Le16,
    pub s_magic: Le16,
    pub s_state: Le16,
    pub s_errors: Le16,
    pub s_minor_rev_level: Le16,
    pub s_lastcheck: Le32,
    pub s_checkinterval: Le32,
    pub s_creator_os: Le32,
    pub s_rev_level: Le32,
    pub s_def_resuid: Le16,
    pub s_def_resgid: Le16,
    // Revision 1 fields.
    pub s_first_ino: Le32,
    pub s_inode_size: Le16,
    pub s_block_group_nr: Le16,
    pub s_feature_compat: Le32,
    pub s_feature_incompat: Le32,
    pub s_feature_ro_compat: Le32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_last_mounted: [u8; 64],
    pub s_algorithm_usage_bitmap: Le32,
    pub s_prealloc_blocks: u8,
    pub s_prealloc_dir_blocks: u8,
    pub s_reserved_gdt_blocks: Le16,
    pub s_journal_uuid: [u8; 16],
    pub s_journal_inum: Le32,
    pub s_journal_dev: Le32,
    pub s_last_orphan: Le32,
    pub s_hash_seed: [Le32; 4],
    pub s_def_hash_version: u8,
    pub s_jnl_backup_type: u8,
    pub s_desc_size: Le16,
    pub s_default_mount_opts: Le32,
    pub s_first_meta_bg: Le32,
    pub s_mkfs_time: Le32,
    pub s_jnl_blocks: [Le32; 17],
    pub s_blocks_count_hi: Le32,
    pub s_r_blocks_count_hi: Le32,
    pub s_free_blocks_hi: Le32,
    /// Extra inode bytes every inode has, and new inodes should get
    /// (mke2fs sets both to 32 with 256-byte inodes).
    pub s_min_extra_isize: Le16,
    pub s_want_extra_isize: Le16,
    pub s_rest: [u8; 672],
}

const _: () = assert!(std::mem::size_of::<Superblock>() == SUPERBLOCK_SIZE);

/// What a mount may do with an image, decided from its features and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountCheck {
    /// Unknown RO_COMPAT features force a read-only mount; this names them.
    pub read_only_reason: Option<String>,
    /// Warnings to log (not cleanly unmounted, errors recorded), as the kernel does.
    pub warnings: Vec<String>,
}

impl Superblock {
    pub fn from_bytes(bytes: &[u8]) -> Result<Superblock, FormatError> {
        if bytes.len() < SUPERBLOCK_SIZE {
            return Err(FormatError::TooSmall("super block"));
        }
        Ok(bytemuck::pod_read_unaligned(&bytes[..SUPERBLOCK_SIZE]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    pub fn block_size(&self) -> u32 {
        1024u32 << self.s_log_block_size.get().min(6)
    }

    pub fn inode_size(&self) -> u32 {
        if self.s_rev_level.get() == GOOD_OLD_REV {
            GOOD_OLD_INODE_SIZE as u32
        } else {
            self.s_inode_size.get() as u32
        }
    }

    pub fn first_ino(&self) -> u32 {
        if self.s_rev_level.get() == GOOD_OLD_REV {
            GOOD_OLD_FIRST_INO
        } else {
            self.s_first_ino.get()
        }
    }

    pub fn group_count(&self) -> u32 {
        let data = self.s_blocks_count.get() - self.s_first_data_block.get();
        data.div_ceil(self.s_blocks_per_group.get())
    }

    pub fn has_incompat(&self, bit: u32) -> bool {
        self.s_feature_incompat.get() & bit != 0
    }
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.s_feature_ro_compat.get() & bit != 0
    }
    pub fn has_compat(&self, bit: u32) -> bool {
        self.s_feature_compat.get() & bit != 0
    }

    pub fn volume_name(&self) -> String {
        let end = self
            .s_volume_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(16);
        String::from_utf8_lossy(&self.s_volume_name[..end]).into_owned()
    }

    /// Does group `g` hold a copy of the super block and descriptors?
    pub fn group_has_super(&self, g: u32) -> bool {
        group_has_super(g, self.has_ro_compat(feature::RO_COMPAT_SPARSE_SUPER))
    }

    /// Range-check every field that sizes or indexes something. Every later
    /// computation (group count, inode location, bitmap sizes) relies on this.
    pub fn validate(&self) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::BadSuper(m));
        if self.s_magic.get() != EXT2_MAGIC {
            return Err(FormatError::BadMagic(self.s_magic.get()));
        }
        let rev = self.s_rev_level.get();
        if rev > DYNAMIC_REV {
            return bad(format!("unsupported revision level {rev}"));
        }
        let log = self.s_log_block_size.get();
        if log > 2 {
            return bad(format!(
                "block size 2^{} KiB not supported (1, 2 or 4 KiB only)",
                log
            ));
        }
        let bs = self.block_size();
        let blocks = self.s_blocks_count.get();
        let first = self.s_first_data_block.get();
        let expected_first = if bs == 1024 { 1 } else { 0 };
        if first != expected_first {
            return bad(format!(
                "first data block {first} (expected {expected_first} for block size {bs})"
            ));
        }
        if blocks <= first + 1 {
            return bad(format!("block count {blocks} too small"));
        }
        let bpg = self.s_blocks_per_group.get();
        if bpg == 0 || bpg > 8 * bs || !bpg.is_multiple_of(8) {
            return bad(format!(
                "blocks per group {bpg} out of range (8..={})",
                8 * bs
            ));
        }
        let ipg = self.s_inodes_per_group.get();
        if ipg == 0 || ipg > 8 * bs || !ipg.is_multiple_of(8) {
            return bad(format!(
                "inodes per group {ipg} out of range (8..={})",
                8 * bs
            ));
        }
        let isz = self.inode_size();
        if !(128..=bs).contains(&isz) || !isz.is_power_of_two() {
            return bad(format!("inode size {isz} invalid"));
        }
        let groups = self.group_count() as u64;
        if groups * ipg as u64 != self.s_inodes_count.get() as u64 {
            return bad(format!(
                "inode count {} is not {} groups x {} inodes",
                self.s_inodes_count.get(),
                groups,
                ipg
            ));
        }
        let first_ino = self.first_ino();
        if first_ino < GOOD_OLD_FIRST_INO || first_ino >= self.s_inodes_count.get() {
            return bad(format!("first inode {first_ino} out of range"));
        }
        if self.s_r_blocks_count.get() > blocks {
            return bad("reserved block count exceeds block count".into());
        }
        if self.s_free_blocks_count.get() > blocks {
            return bad("free block count exceeds block count".into());
        }
        if self.s_free_inodes_count.get() > self.s_inodes_count.get() {
            return bad("free inode count exceeds inode count".into());
        }
        // The descriptor table must fit in group 0 after the super block.
        let gdt_blocks = (groups * 32).div_ceil(bs as u64);
        if gdt_blocks + 2 > bpg as u64 {
            return bad(format!(
                "{groups} groups need a descriptor table larger than a group"
            ));
        }
        let unknown = self.s_feature_incompat.get() & !feature::INCOMPAT_SUPPORTED;
        if unknown != 0 {
            return Err(FormatError::UnsupportedIncompat(feature::incompat_names(
                unknown,
            )));
        }
        Ok(())
    }

    /// Validate, then decide read-only and warnings from features and state.
    pub fn mount_check(&self) -> Result<MountCheck, FormatError> {
        self.validate()?;
        let unknown_ro = self.s_feature_ro_compat.get() & !feature::RO_COMPAT_SUPPORTED;
        let read_only_reason = (unknown_ro != 0).then(|| {
            format!(
                "unsupported read-only-compatible features: {}",
                feature::ro_compat_names(unknown_ro)
            )
        });
        let mut warnings = Vec::new();
        let state = self.s_state.get();
        if state & STATE_VALID == 0 {
            warnings.push(
                "file system was not cleanly unmounted, running e2fsck is recommended".into(),
            );
        }
        if state & STATE_ERROR != 0 {
            warnings.push("file system has errors recorded, running e2fsck is recommended".into());
        }
        let max = self.s_max_mnt_count.get() as i16;
        if max > 0 && self.s_mnt_count.get() as i16 >= max {
            warnings.push("maximal mount count reached, running e2fsck is recommended".into());
        }
        Ok(MountCheck {
            read_only_reason,
            warnings,
        })
    }
}

/// Sparse super: groups 0, 1 and powers of 3, 5 and 7 carry backups.
pub fn group_has_super(g: u32, sparse: bool) -> bool {
    if !sparse || g <= 1 {
        return true;
    }
    if g.is_multiple_of(2) {
        return false;
    }
    let is_power = |base: u32| {
        let mut n = base;
        while n < g {
            n = match n.checked_mul(base) {
                Some(v) => v,
                None => return false,
            };
        }
        n == g
    };
    is_power(3) || is_power(5) || is_power(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_groups() {
        let with: Vec<u32> = (0..100).filter(|&g| group_has_super(g, true)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
        assert!(group_has_super(4, false));
    }

    #[test]
    fn feature_names() {
        assert_eq!(feature::incompat_names(0x40 | 0x200), "extent, flex_bg");
        assert_eq!(feature::ro_compat_names(0x400), "metadata_csum");
        assert_eq!(feature::incompat_names(0x8000_0000), "FEATURE_0x80000000");
    }
}
