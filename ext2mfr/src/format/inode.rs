//! The on-disk inode (the first 128 bytes; larger inodes keep their extra
//! bytes untouched) and where an inode lives.

use super::le::{Le16, Le32};
use super::superblock::Superblock;
use bytemuck::{Pod, Zeroable};

pub const ROOT_INO: u32 = 2;
pub const BAD_BLOCKS_INO: u32 = 1;
pub const LOST_FOUND_NAME: &str = "lost+found";

/// Direct, single, double and triple indirect pointers in `i_block`.
pub const N_DIRECT: usize = 12;
pub const IND_BLOCK: usize = 12;
pub const DIND_BLOCK: usize = 13;
pub const TIND_BLOCK: usize = 14;
pub const N_BLOCKS: usize = 15;

/// `i_mode` file type bits.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFIFO: u16 = 0o010000;
/// `i_mode` set-id bits, and the group-execute bit that qualifies set-group-ID.
pub const S_ISUID: u16 = 0o4000;
pub const S_ISGID: u16 = 0o2000;
pub const S_IXGRP: u16 = 0o0010;

/// `i_flags` bits we act on.
pub const INDEX_FL: u32 = 0x0000_1000;
pub const IMMUTABLE_FL: u32 = 0x0000_0010;
pub const APPEND_FL: u32 = 0x0000_0020;

/// Longest symlink target stored inside `i_block` ("fast" symlink).
pub const FAST_SYMLINK_MAX: usize = N_BLOCKS * 4 - 1;

pub const MAX_LINKS: u16 = 32000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Inode {
    pub i_mode: Le16,
    pub i_uid: Le16,
    pub i_size: Le32,
    pub i_atime: Le32,
    pub i_ctime: Le32,
    pub i_mtime: Le32,
    pub i_dtime: Le32,
    pub i_gid: Le16,
    pub i_links_count: Le16,
    pub i_blocks: Le32,
    pub i_flags: Le32,
    pub i_osd1: Le32,
    pub i_block: [Le32; N_BLOCKS],
    pub i_generation: Le32,
    pub i_file_acl: Le32,
    pub i_size_high: Le32,
    pub i_faddr: Le32,
    pub l_i_frag: u8,
    pub l_i_fsize: u8,
    pub i_pad1: Le16,
    pub l_i_uid_high: Le16,
    pub l_i_gid_high: Le16,
    pub l_i_reserved2: Le32,
}

pub const INODE_STRUCT_SIZE: usize = 128;
const _: () = assert!(std::mem::size_of::<Inode>() == INODE_STRUCT_SIZE);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    pub fn from_mode(mode: u16) -> Option<FileKind> {
        Some(match mode & S_IFMT {
            S_IFREG => FileKind::Regular,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            S_IFCHR => FileKind::CharDevice,
            S_IFBLK => FileKind::BlockDevice,
            S_IFIFO => FileKind::Fifo,
            S_IFSOCK => FileKind::Socket,
            _ => return None,
        })
    }
    pub fn mode_bits(self) -> u16 {
        match self {
            FileKind::Regular => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::CharDevice => S_IFCHR,
            FileKind::BlockDevice => S_IFBLK,
            FileKind::Fifo => S_IFIFO,
            FileKind::Socket => S_IFSOCK,
        }
    }
}

impl Inode {
    pub fn from_bytes(b: &[u8]) -> Inode {
        bytemuck::pod_read_unaligned(&b[..INODE_STRUCT_SIZE])
    }
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
    pub fn mode(&self) -> u16 {
        self.i_mode.get()
    }
    pub fn kind(&self) -> Option<FileKind> {
        FileKind::from_mode(self.mode())
    }
    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.mode() & S_IFMT == S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode() & S_IFMT == S_IFLNK
    }
    /// 64-bit size: regular files use `i_size_high` (large_file); for
    /// directories that field is `i_dir_acl` in revision 0 and is ignored.
    pub fn size(&self) -> u64 {
        let lo = self.i_size.get() as u64;
        if self.is_reg() {
            lo | ((self.i_size_high.get() as u64) << 32)
        } else {
            lo
        }
    }
    pub fn set_size(&mut self, size: u64) {
        self.i_size.set(size as u32);
        if self.is_reg() {
            self.i_size_high.set((size >> 32) as u32);
        }
    }
    pub fn uid(&self) -> u32 {
        self.i_uid.get() as u32 | (self.l_i_uid_high.get() as u32) << 16
    }
    pub fn gid(&self) -> u32 {
        self.i_gid.get() as u32 | (self.l_i_gid_high.get() as u32) << 16
    }
    pub fn set_uid(&mut self, uid: u32) {
        self.i_uid.set(uid as u16);
        self.l_i_uid_high.set((uid >> 16) as u16);
    }
    pub fn set_gid(&mut self, gid: u32) {
        self.i_gid.set(gid as u16);
        self.l_i_gid_high.set((gid >> 16) as u16);
    }
    pub fn links(&self) -> u16 {
        self.i_links_count.get()
    }
    pub fn block(&self, i: usize) -> u32 {
        self.i_block[i].get()
    }
    /// A symlink whose target lives in `i_block` (no data block). An extended
    /// attribute block counts in `i_blocks` but is not data.
    pub fn is_fast_symlink(&self, block_size: u32) -> bool {
        let ea_sectors = if self.i_file_acl.get() != 0 {
            block_size / 512
        } else {
            0
        };
        self.is_symlink() && self.i_blocks.get() == ea_sectors
    }
    /// Device number, in either the old (16-bit, i_block[0]) or the new
    /// (32-bit, i_block[1]) encoding, as (major, minor).
    pub fn device(&self) -> (u32, u32) {
        let old = self.block(0);
        if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            let new = self.block(1);
            ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
        }
    }
    pub fn set_device(&mut self, major: u32, minor: u32) {
        if major < 256 && minor < 256 {
            self.i_block[0].set((major << 8) | minor);
            self.i_block[1].set(0);
        } else {
            self.i_block[0].set(0);
            self.i_block[1].set((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12));
        }
        self.i_block[2].set(0);
    }
}

/// Group, and byte position inside the inode table, of inode `ino` (1-based).
/// The caller must have checked `1 <= ino <= s_inodes_count`.
pub fn inode_location(sb: &Superblock, ino: u32) -> (u32, u64) {
    let ipg = sb.s_inodes_per_group.get();
    let group = (ino - 1) / ipg;
    let index = (ino - 1) % ipg;
    (group, index as u64 * sb.inode_size() as u64)
}

/// Block pointers per indirect block.
pub fn ptrs_per_block(block_size: u32) -> u64 {
    block_size as u64 / 4
}

/// Largest file size the block map can address, also bounded by `i_blocks`
/// counting 512-byte sectors in 32 bits (no huge_file).
pub fn max_file_size(block_size: u32) -> u64 {
    let p = ptrs_per_block(block_size);
    let blocks = N_DIRECT as u64 + p + p * p + p * p * p;
    let by_map = blocks * block_size as u64;
    // i_blocks counts data and indirect blocks; one indirect block per `p`
    // data blocks (and a few above them) is a safe allowance.
    let sector_limit_blocks = ((1u64 << 32) - 1) / (block_size as u64 / 512);
    let by_iblocks = (sector_limit_blocks * p / (p + 1)).saturating_sub(3) * block_size as u64;
    by_map.min(by_iblocks).min((1u64 << 63) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_encodings_round_trip() {
        let mut i = Inode::default();
        for (ma, mi) in [(1, 3), (8, 1), (259, 7), (4, 300), (1000, 100000)] {
            i.set_device(ma, mi);
            assert_eq!(i.device(), (ma, mi));
        }
    }

    #[test]
    fn max_sizes() {
        // 1 KiB blocks: the map (about 16 GiB) limits the size.
        assert!(max_file_size(1024) > 16 << 30);
        assert!(max_file_size(1024) < 17 << 30);
        // 4 KiB blocks: well past 4 GiB.
        assert!(max_file_size(4096) > 1 << 40);
    }
}
