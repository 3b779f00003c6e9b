//! Block group descriptors (32 bytes each, in the blocks after the super block).

use super::le::{Le16, Le32};
use super::superblock::Superblock;
use super::FormatError;
use bytemuck::{Pod, Zeroable};

pub const GROUP_DESC_SIZE: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GroupDesc {
    pub bg_block_bitmap: Le32,
    pub bg_inode_bitmap: Le32,
    pub bg_inode_table: Le32,
    pub bg_free_blocks_count: Le16,
    pub bg_free_inodes_count: Le16,
    pub bg_used_dirs_count: Le16,
    pub bg_pad: Le16,
    pub bg_reserved: [u8; 12],
}

const _: () = assert!(std::mem::size_of::<GroupDesc>() == GROUP_DESC_SIZE);

/// First block of the descriptor table (the block after the super block).
pub fn gdt_start(sb: &Superblock) -> u32 {
    sb.s_first_data_block.get() + 1
}

/// Blocks the descriptor table occupies.
pub fn gdt_blocks(sb: &Superblock) -> u32 {
    (sb.group_count() as usize * GROUP_DESC_SIZE).div_ceil(sb.block_size() as usize) as u32
}

/// First and last block (inclusive) of group `g`.
pub fn group_range(sb: &Superblock, g: u32) -> (u32, u32) {
    let first = sb.s_first_data_block.get() + g * sb.s_blocks_per_group.get();
    let last = (first as u64 + sb.s_blocks_per_group.get() as u64 - 1)
        .min(sb.s_blocks_count.get() as u64 - 1) as u32;
    (first, last)
}

/// Blocks of the inode table of one group.
pub fn inode_table_blocks(sb: &Superblock) -> u32 {
    (sb.s_inodes_per_group.get() * sb.inode_size()).div_ceil(sb.block_size())
}

impl GroupDesc {
    /// Parse the whole table from its raw bytes and range-check every entry
    /// the way the kernel's `ext2_check_descriptors` does: bitmaps and inode
    /// table inside their own group, free counts no larger than the group.
    pub fn parse_table(sb: &Superblock, raw: &[u8]) -> Result<Vec<GroupDesc>, FormatError> {
        let groups = sb.group_count() as usize;
        if raw.len() < groups * GROUP_DESC_SIZE {
            return Err(FormatError::TooSmall("group descriptor table"));
        }
        let itb = inode_table_blocks(sb);
        let mut out = Vec::with_capacity(groups);
        for g in 0..groups {
            let d: GroupDesc =
                bytemuck::pod_read_unaligned(&raw[g * GROUP_DESC_SIZE..(g + 1) * GROUP_DESC_SIZE]);
            let (first, last) = group_range(sb, g as u32);
            let bad = |what: &str, v: u32| {
                Err(FormatError::BadGroup(
                    g as u32,
                    format!("{what} {v} not in group blocks {first}..={last}"),
                ))
            };
            let bb = d.bg_block_bitmap.get();
            if bb < first || bb > last {
                return bad("block bitmap", bb);
            }
            let ib = d.bg_inode_bitmap.get();
            if ib < first || ib > last {
                return bad("inode bitmap", ib);
            }
            let it = d.bg_inode_table.get();
            if it < first || it as u64 + itb as u64 - 1 > last as u64 {
                return bad("inode table", it);
            }
            // Nor may they overlap the group's super block and descriptor
            // copies (with the blocks reserved for growing the table), or
            // each other (ext4 checks this; the kernel's ext2 does not).
            let meta_end = if sb.group_has_super(g as u32) {
                first as u64 + 1 + gdt_blocks(sb) as u64 + sb.s_reserved_gdt_blocks.get() as u64
            } else {
                first as u64
            };
            let in_meta = |b: u32| (b as u64) < meta_end;
            let in_table = |b: u32| b >= it && (b as u64) < it as u64 + itb as u64;
            if in_meta(bb) || in_meta(ib) || in_meta(it) || bb == ib || in_table(bb) || in_table(ib)
            {
                return Err(FormatError::BadGroup(
                    g as u32,
                    format!(
                        "bitmaps ({bb}, {ib}) and inode table ({it}, {itb} blocks) overlap \
                         each other or the super block copy and descriptors (before {meta_end})"
                    ),
                ));
            }
            let group_blocks = last - first + 1;
            if d.bg_free_blocks_count.get() as u32 > group_blocks {
                return Err(FormatError::BadGroup(
                    g as u32,
                    format!(
                        "free block count {} exceeds group size",
                        d.bg_free_blocks_count.get()
                    ),
                ));
            }
            if d.bg_free_inodes_count.get() as u32 > sb.s_inodes_per_group.get()
                || d.bg_used_dirs_count.get() as u32 > sb.s_inodes_per_group.get()
            {
                return Err(FormatError::BadGroup(
                    g as u32,
                    "inode counts exceed group size".into(),
                ));
            }
            out.push(d);
        }
        Ok(out)
    }
}
