//! The on-disk inode and where an inode lives: the 128-byte core every
//! revision has, and in large inodes (`s_inode_size` > 128) the extra fields
//! after it that the kernel's driver keeps there (`i_extra_isize` says how
//! many bytes of them this inode has): nanoseconds and the epoch bits of
//! times past 2038, and the creation time. Bytes beyond those (in-inode
//! extended attributes) are not part of this struct.

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

/// `i_flags` bits (the values of the kernel's fs/ext4/ext4.h, which
/// `lsattr`/`chattr` show and set through FS_IOC_GETFLAGS/SETFLAGS).
pub const SECRM_FL: u32 = 0x0000_0001;
pub const UNRM_FL: u32 = 0x0000_0002;
pub const COMPR_FL: u32 = 0x0000_0004;
pub const SYNC_FL: u32 = 0x0000_0008;
pub const IMMUTABLE_FL: u32 = 0x0000_0010;
pub const APPEND_FL: u32 = 0x0000_0020;
pub const NODUMP_FL: u32 = 0x0000_0040;
pub const NOATIME_FL: u32 = 0x0000_0080;
pub const DIRTY_FL: u32 = 0x0000_0100;
pub const COMPRBLK_FL: u32 = 0x0000_0200;
pub const NOCOMPR_FL: u32 = 0x0000_0400;
pub const ENCRYPT_FL: u32 = 0x0000_0800;
pub const INDEX_FL: u32 = 0x0000_1000;
pub const JOURNAL_DATA_FL: u32 = 0x0000_4000;
pub const NOTAIL_FL: u32 = 0x0000_8000;
pub const DIRSYNC_FL: u32 = 0x0001_0000;
pub const TOPDIR_FL: u32 = 0x0002_0000;
pub const EXTENTS_FL: u32 = 0x0008_0000;
pub const VERITY_FL: u32 = 0x0010_0000;
/// Formerly EOFBLOCKS: no meaning, but still settable.
pub const EOFBLOCKS_FL: u32 = 0x0040_0000;
pub const DAX_FL: u32 = 0x0200_0000;
pub const INLINE_DATA_FL: u32 = 0x1000_0000;
pub const PROJINHERIT_FL: u32 = 0x2000_0000;
pub const CASEFOLD_FL: u32 = 0x4000_0000;
/// What FS_IOC_SETFLAGS may change (ext4's EXT4_FL_USER_MODIFIABLE).
pub const FL_USER_MODIFIABLE: u32 = SECRM_FL
    | UNRM_FL
    | COMPR_FL
    | SYNC_FL
    | IMMUTABLE_FL
    | APPEND_FL
    | NODUMP_FL
    | NOATIME_FL
    | JOURNAL_DATA_FL
    | NOTAIL_FL
    | DIRSYNC_FL
    | TOPDIR_FL
    | EXTENTS_FL
    | EOFBLOCKS_FL
    | DAX_FL
    | PROJINHERIT_FL
    | CASEFOLD_FL;
/// What FS_IOC_GETFLAGS shows (EXT4_FL_USER_VISIBLE).
pub const FL_USER_VISIBLE: u32 = FL_USER_MODIFIABLE
    | DIRTY_FL
    | COMPRBLK_FL
    | NOCOMPR_FL
    | ENCRYPT_FL
    | INDEX_FL
    | VERITY_FL
    | INLINE_DATA_FL;
/// What a new inode takes from its directory (EXT4_FL_INHERITED).
pub const FL_INHERITED: u32 = SECRM_FL
    | UNRM_FL
    | COMPR_FL
    | SYNC_FL
    | NODUMP_FL
    | NOATIME_FL
    | NOCOMPR_FL
    | JOURNAL_DATA_FL
    | NOTAIL_FL
    | DIRSYNC_FL
    | PROJINHERIT_FL
    | CASEFOLD_FL
    | DAX_FL;

/// The flags that fit an inode of mode `mode` (ext4_mask_flags):
/// directories take all, regular files all but the directory ones, other
/// files only nodump and noatime.
pub fn mask_flags(mode: u16, flags: u32) -> u32 {
    match mode & S_IFMT {
        S_IFDIR => flags,
        S_IFREG => flags & !(DIRSYNC_FL | TOPDIR_FL | CASEFOLD_FL | PROJINHERIT_FL),
        _ => flags & (NODUMP_FL | NOATIME_FL),
    }
}

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
    // ---- large inodes only, as far as `i_extra_isize` reaches ----
    pub i_extra_isize: Le16,
    pub i_checksum_hi: Le16,
    pub i_ctime_extra: Le32,
    pub i_mtime_extra: Le32,
    pub i_atime_extra: Le32,
    pub i_crtime: Le32,
    pub i_crtime_extra: Le32,
    pub i_version_hi: Le32,
    pub i_projid: Le32,
}

/// The core every inode has (revision 0's whole inode).
pub const INODE_STRUCT_SIZE: usize = 128;
/// The core and the extra fields we know.
pub const INODE_KNOWN_SIZE: usize = 160;
/// `i_extra_isize` of a new large inode, as the kernel and mke2fs write it
/// (`s_want_extra_isize`: every extra field above).
pub const WANT_EXTRA_ISIZE: u16 = (INODE_KNOWN_SIZE - INODE_STRUCT_SIZE) as u16;
const _: () = assert!(std::mem::size_of::<Inode>() == INODE_KNOWN_SIZE);

/// The magic number that starts in-inode extended attributes (right after
/// `i_extra_isize` bytes of extra fields).
const IBODY_XATTR_MAGIC: u32 = 0xEA02_0000;

/// A time as the kernel keeps it: seconds since 1970 (negative before) and
/// nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub const fn secs(secs: i64) -> Timestamp {
        Timestamp { secs, nsec: 0 }
    }
    /// The wall clock.
    pub fn now() -> Timestamp {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(_) => Timestamp::default(),
        }
    }
}

/// Times an inode without extra fields holds: signed 32-bit seconds.
pub const TIME_MIN: i64 = i32::MIN as i64;
pub const TIME_MAX_OLD: i64 = i32::MAX as i64;
/// With extra fields two epoch bits extend the seconds to 34 bits (to
/// 2446), as the kernel's `EXT4_EXTRA_TIMESTAMP_MAX`.
pub const TIME_MAX_EXTRA: i64 = (1 << 34) - 1 + i32::MIN as i64;

/// The low two bits of an `_extra` time field are epoch bits, the rest
/// nanoseconds (the kernel's ext4_encode_extra_time/ext4_decode_extra_time).
const EPOCH_BITS: u32 = 2;
const EPOCH_MASK: u32 = (1 << EPOCH_BITS) - 1;

fn decode_time(base: u32, extra: Option<u32>) -> Timestamp {
    let mut t = Timestamp::secs(base as i32 as i64);
    if let Some(extra) = extra {
        t.secs += ((extra & EPOCH_MASK) as i64) << 32;
        t.nsec = (extra >> EPOCH_BITS).min(999_999_999);
    }
    t
}

/// (base, extra) of `t`. What the inode cannot hold is clamped to its
/// range, with no nanoseconds at either end (the kernel's
/// timestamp_truncate with the driver's s_time_min/s_time_max); without
/// extra fields there are no nanoseconds at all.
fn encode_time(t: Timestamp, extra: bool) -> (u32, u32) {
    let max = if extra { TIME_MAX_EXTRA } else { TIME_MAX_OLD };
    let s = t.secs.clamp(TIME_MIN, max);
    if !extra {
        return (s as i32 as u32, 0);
    }
    let nsec = if s == TIME_MIN || s == max {
        0
    } else {
        t.nsec.min(999_999_999)
    };
    let epoch = ((s - s as i32 as i64) >> 32) as u32 & EPOCH_MASK;
    (s as i32 as u32, epoch | (nsec << EPOCH_BITS))
}

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
    /// The inode in an on-disk slot (`s_inode_size` bytes, or at least the
    /// 128-byte core). Extra fields beyond `i_extra_isize` read as zero. A
    /// large inode without extra fields and without in-inode attributes
    /// gets them here, as the kernel's driver expands it when it writes it
    /// (ext4_try_to_expand_extra_isize): writing it back keeps them.
    pub fn from_slot(slot: &[u8]) -> Inode {
        let room = slot.len().saturating_sub(INODE_STRUCT_SIZE);
        let extra = if room >= 2 {
            (u16::from_le_bytes([slot[128], slot[129]]) as usize).min(room)
        } else {
            0
        };
        // Only what i_extra_isize covers is ours: later bytes of the slot are
        // the in-inode attributes.
        let n = INODE_STRUCT_SIZE + extra.min(INODE_KNOWN_SIZE - INODE_STRUCT_SIZE);
        if n == INODE_KNOWN_SIZE {
            // Every field is there (mkfs's default 256-byte inodes): read
            // in place, without zeroing a copy first.
            return bytemuck::pod_read_unaligned(&slot[..INODE_KNOWN_SIZE]);
        }
        let mut raw = [0u8; INODE_KNOWN_SIZE];
        raw[..n].copy_from_slice(&slot[..n]);
        let mut i: Inode = bytemuck::pod_read_unaligned(&raw);
        if extra == 0 && room >= WANT_EXTRA_ISIZE as usize {
            let magic = u32::from_le_bytes(slot[128..132].try_into().expect("4 bytes"));
            if magic != IBODY_XATTR_MAGIC {
                i.i_extra_isize.set(WANT_EXTRA_ISIZE);
            }
        }
        i
    }
    /// Write the inode into its on-disk slot: the core, and the extra
    /// fields as far as both the slot and `i_extra_isize` reach (the bytes
    /// after them belong to the in-inode attributes).
    pub fn to_slot(&self, slot: &mut [u8]) {
        let n = INODE_STRUCT_SIZE + self.extra_len(slot.len());
        slot[..n].copy_from_slice(&bytemuck::bytes_of(self)[..n]);
    }
    /// Bytes of extra fields this inode has in a slot of `slot_len` bytes.
    fn extra_len(&self, slot_len: usize) -> usize {
        (self.i_extra_isize.get() as usize)
            .min(slot_len.saturating_sub(INODE_STRUCT_SIZE))
            .min(INODE_KNOWN_SIZE - INODE_STRUCT_SIZE)
    }
    /// Whether the extra fields reach as far as byte `end` of the inode
    /// (the kernel's EXT4_FITS_IN_INODE).
    fn has_extra(&self, end: usize) -> bool {
        INODE_STRUCT_SIZE + self.i_extra_isize.get() as usize >= end
    }
    // Offsets (one past the end) of the extra time fields.
    const CTIME_EXTRA_END: usize = 0x88;
    const MTIME_EXTRA_END: usize = 0x8C;
    const ATIME_EXTRA_END: usize = 0x90;
    const CRTIME_EXTRA_END: usize = 0x98;

    pub fn atime(&self) -> Timestamp {
        let x = self.has_extra(Self::ATIME_EXTRA_END);
        decode_time(self.i_atime.get(), x.then(|| self.i_atime_extra.get()))
    }
    pub fn mtime(&self) -> Timestamp {
        let x = self.has_extra(Self::MTIME_EXTRA_END);
        decode_time(self.i_mtime.get(), x.then(|| self.i_mtime_extra.get()))
    }
    pub fn ctime(&self) -> Timestamp {
        let x = self.has_extra(Self::CTIME_EXTRA_END);
        decode_time(self.i_ctime.get(), x.then(|| self.i_ctime_extra.get()))
    }
    /// Creation time, where the inode has room for it.
    pub fn crtime(&self) -> Option<Timestamp> {
        self.has_extra(Self::CRTIME_EXTRA_END)
            .then(|| decode_time(self.i_crtime.get(), Some(self.i_crtime_extra.get())))
    }
    pub fn set_atime(&mut self, t: Timestamp) {
        let (b, x) = encode_time(t, self.has_extra(Self::ATIME_EXTRA_END));
        self.i_atime.set(b);
        self.i_atime_extra.set(x);
    }
    pub fn set_mtime(&mut self, t: Timestamp) {
        let (b, x) = encode_time(t, self.has_extra(Self::MTIME_EXTRA_END));
        self.i_mtime.set(b);
        self.i_mtime_extra.set(x);
    }
    pub fn set_ctime(&mut self, t: Timestamp) {
        let (b, x) = encode_time(t, self.has_extra(Self::CTIME_EXTRA_END));
        self.i_ctime.set(b);
        self.i_ctime_extra.set(x);
    }
    /// Set at creation only (a no-op for an inode without room for it).
    pub fn set_crtime(&mut self, t: Timestamp) {
        if self.has_extra(Self::CRTIME_EXTRA_END) {
            let (b, x) = encode_time(t, true);
            self.i_crtime.set(b);
            self.i_crtime_extra.set(x);
        }
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
    /// Whether `i_block` holds block pointers: only for regular files,
    /// directories and symlinks whose target is in a block. Device nodes
    /// keep their device number there, fast symlinks their target, FIFOs
    /// and sockets nothing (the kernel's ext2_truncate_blocks and
    /// ext2_inode_is_fast_symlink).
    pub fn has_block_map(&self, block_size: u32) -> bool {
        self.is_reg() || self.is_dir() || (self.is_symlink() && !self.is_fast_symlink(block_size))
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

/// Largest file size, as the kernel's ext2_max_size computes it: what the
/// block tree addresses, unless `i_blocks` (512-byte sectors in 32 bits, no
/// huge_file) runs out first, counting the indirect blocks a dense file of
/// that size needs as well.
pub fn max_file_size(block_size: u32) -> u64 {
    let bits = block_size.trailing_zeros();
    let ppb = ptrs_per_block(block_size);
    let mut upper = ((1u64 << 32) - 1) >> (bits - 9);
    let tree = N_DIRECT as u64 + ppb + ppb * ppb + ppb * ppb * ppb;
    let tree_meta = 1 + (1 + ppb) + (1 + ppb + ppb * ppb);
    let blocks = if tree + tree_meta <= upper {
        tree
    } else {
        let res = upper;
        upper -= N_DIRECT as u64;
        let mut meta = 1; // the indirect block
        upper -= ppb;
        if upper < ppb * ppb {
            meta += 1 + upper.div_ceil(ppb);
        } else {
            meta += 1 + ppb;
            upper -= ppb * ppb;
            meta += 1 + upper.div_ceil(ppb) + upper.div_ceil(ppb * ppb);
        }
        res - meta
    };
    (blocks << bits).min(i64::MAX as u64)
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
    fn times_round_trip_with_extra_fields() {
        let mut i = Inode::default();
        i.i_extra_isize.set(WANT_EXTRA_ISIZE);
        for t in [
            Timestamp {
                secs: 981_173_106,
                nsec: 123_456_789,
            },
            Timestamp {
                secs: 4_102_444_800,
                nsec: 1,
            }, // 2100-01-01
            Timestamp {
                secs: -1,
                nsec: 999_999_999,
            },
            Timestamp {
                secs: TIME_MIN,
                nsec: 0,
            },
            Timestamp {
                secs: TIME_MAX_EXTRA - 1,
                nsec: 5,
            },
        ] {
            i.set_mtime(t);
            assert_eq!(i.mtime(), t);
            i.set_crtime(t);
            assert_eq!(i.crtime(), Some(t));
        }
        // 2100 is epoch 1: base 0x0ed6_e680 (low 32 bits), epoch bits 01.
        i.set_atime(Timestamp::secs(4_102_444_800));
        assert_eq!(i.i_atime.get(), (4_102_444_800u64 & 0xffff_ffff) as u32);
        assert_eq!(i.i_atime_extra.get() & EPOCH_MASK, 1);
        // At the ends of the range: clamped, without nanoseconds.
        i.set_ctime(Timestamp {
            secs: i64::MAX,
            nsec: 3,
        });
        assert_eq!(i.ctime(), Timestamp::secs(TIME_MAX_EXTRA));
        i.set_ctime(Timestamp {
            secs: TIME_MIN,
            nsec: 3,
        });
        assert_eq!(i.ctime(), Timestamp::secs(TIME_MIN));
    }

    #[test]
    fn times_without_extra_fields_are_seconds_clamped_to_2038() {
        let mut i = Inode::default();
        i.set_mtime(Timestamp {
            secs: 4_102_444_800,
            nsec: 7,
        });
        assert_eq!(i.mtime(), Timestamp::secs(TIME_MAX_OLD));
        i.set_ctime(Timestamp { secs: 100, nsec: 7 });
        assert_eq!(i.ctime(), Timestamp::secs(100));
        assert_eq!(i.crtime(), None);
    }

    #[test]
    fn slot_keeps_in_inode_attributes() {
        // A 256-byte slot with in-inode attributes right after 4 extra bytes.
        let mut slot = vec![0u8; 256];
        slot[128..130].copy_from_slice(&4u16.to_le_bytes());
        slot[132..136].copy_from_slice(&IBODY_XATTR_MAGIC.to_le_bytes());
        slot[136] = 0xAB;
        let mut i = Inode::from_slot(&slot);
        assert_eq!(i.i_extra_isize.get(), 4);
        i.set_mtime(Timestamp { secs: 5, nsec: 9 });
        assert_eq!(i.mtime(), Timestamp::secs(5)); // no room for nanoseconds
        i.to_slot(&mut slot);
        assert_eq!(&slot[132..136], &IBODY_XATTR_MAGIC.to_le_bytes());
        assert_eq!(slot[136], 0xAB);
        // Without extra fields and without attributes: expanded.
        let empty = vec![0u8; 256];
        assert_eq!(
            Inode::from_slot(&empty).i_extra_isize.get(),
            WANT_EXTRA_ISIZE
        );
        assert_eq!(Inode::from_slot(&empty[..128]).i_extra_isize.get(), 0);
    }

    #[test]
    fn max_sizes() {
        // The block tree limits 1 and 2 KiB blocks; at 4 KiB i_blocks does,
        // and the kernel's driver refuses one byte more than this
        // (`truncate -s` on a loop mount).
        assert_eq!(max_file_size(1024), 17_247_252_480);
        assert_eq!(max_file_size(2048), 275_415_851_008);
        assert_eq!(max_file_size(4096), 2_196_873_666_560);
    }
}
