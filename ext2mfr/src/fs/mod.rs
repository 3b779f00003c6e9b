//! The ext2 file system proper, one concern per file as in fs/ext2:
//! `super_block` (mount, sync, unmount, statfs), `inode` (inode tables and
//! attributes), `bmap` (block map), `alloc` (bitmaps), `dir` (directory
//! entries), `namei` (names: create, link, unlink, rename), `file` (read,
//! write, size), `punch` (fallocate: hole punching), `flags` (lsattr/chattr
//! flags and what they forbid), `symlink`, `xattr`, `refs` (the kernel's
//! references and
//! unlinked inodes), `stats`; `gate` runs each request under AMA and
//! recovery, `requirements` prices it for AMA.
//!
//! Lock order (a thread takes locks only in this order, and never waits for
//! one while holding a later one):
//! 1. `rename_lock` (cross-directory renames only, as the kernel's
//!    `s_vfs_rename_mutex`: it keeps the tree shape stable for the
//!    "moving a directory into itself" walk);
//! 2. inode stripe locks ([`locks::InodeLocks`]), in ascending stripe order;
//! 3. one group mutex at a time (allocation bitmaps and counts of that group);
//! 4. the lookup-count table (`refs`);
//! 5. block cache shard mutexes, then buffer data locks (short, leaf-level).
//! The super block mutex is a leaf: nothing is taken while holding it.

pub mod acl;
pub mod alloc;
pub mod attr;
pub mod bmap;
pub mod dir;
pub mod file;
pub mod flags;
pub mod gate;
pub mod htree;
pub mod inode;
pub mod locks;
pub mod namei;
pub mod punch;
pub mod refs;
pub mod requirements;
pub mod stats;
pub mod super_block;
pub mod symlink;
pub mod xattr;
pub mod xattr_share;

pub use super_block::MountError;

use crate::cache::BlockCache;
use crate::device::Device;
use crate::error::{FsError, Result};
use crate::format::{GroupDesc, Superblock};
use parking_lot::Mutex;
use recovery_rt::Runtime;
use std::sync::atomic::{AtomicI64, AtomicU32};
use std::sync::{Arc, Weak};

/// AMA settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmaConfig {
    /// Reserve each request's worst case on entry and serve it from there.
    pub enabled: bool,
    /// Cache peeking: pin cached blocks instead of reserving for them.
    pub peek: bool,
    /// Page recycling: truncates and large scans reuse one scratch page.
    pub recycle: bool,
    /// Page-pool capacity in bytes (default: the cache plus a quarter, at
    /// least 16 MiB more).
    pub mem_bytes: Option<usize>,
}

impl Default for AmaConfig {
    fn default() -> Self {
        AmaConfig {
            enabled: true,
            peek: true,
            recycle: true,
            mem_bytes: None,
        }
    }
}

/// Mount-time settings of the file system core.
#[derive(Clone, Debug)]
pub struct FsConfig {
    pub read_only: bool,
    /// Block-cache capacity in bytes.
    pub cache_bytes: usize,
    /// Update atime on read (relatime rules), unless `noatime`.
    pub atime: bool,
    /// Run every request as a recovery domain (`recovery=on`).
    pub recovery: bool,
    /// What a rolled-back request (or a failed reservation) does.
    pub policy: ama::Policy,
    /// Anticipatory memory allocation.
    pub ama: AmaConfig,
    /// FUSE worker threads (concurrent requests; AMA's slack for growth).
    pub threads: usize,
    /// Ask the kernel for FUSE_WRITEBACK_CACHE at INIT (`writeback_cache`).
    pub writeback_cache: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            read_only: false,
            cache_bytes: 64 << 20,
            atime: true,
            recovery: true,
            policy: ama::Policy::Retry,
            ama: AmaConfig::default(),
            threads: 2,
            writeback_cache: false,
        }
    }
}

/// Values fixed at mount time, read without locks.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub block_size: u32,
    pub blocks_count: u32,
    pub first_data_block: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inodes_count: u32,
    pub inode_size: u32,
    pub first_ino: u32,
    pub groups: u32,
    pub r_blocks: u32,
    /// Directory entries carry a file type (INCOMPAT filetype).
    pub filetype: bool,
    /// Directories may have htree indexes (COMPAT dir_index), hashed with
    /// this seed, default version and `s_flags` (character signedness).
    pub dir_index: bool,
    pub hash_seed: [u32; 4],
    pub def_hash_version: u8,
    pub hash_flags: u32,
    pub block_bitmap: Vec<u32>,
    pub inode_bitmap: Vec<u32>,
    pub inode_table: Vec<u32>,
}

impl Geometry {
    /// The geometry a super block and its group descriptors describe.
    pub fn new(sb: &Superblock, descs: &[GroupDesc]) -> Geometry {
        let (hash_seed, def_hash_version, hash_flags) = htree::hash_settings(sb);
        Geometry {
            block_size: sb.block_size(),
            blocks_count: sb.s_blocks_count.get(),
            first_data_block: sb.s_first_data_block.get(),
            blocks_per_group: sb.s_blocks_per_group.get(),
            inodes_per_group: sb.s_inodes_per_group.get(),
            inodes_count: sb.s_inodes_count.get(),
            inode_size: sb.inode_size(),
            first_ino: sb.first_ino(),
            groups: sb.group_count(),
            r_blocks: sb.s_r_blocks_count.get(),
            filetype: sb.has_incompat(crate::format::superblock::feature::INCOMPAT_FILETYPE),
            dir_index: sb.s_feature_compat.get()
                & crate::format::superblock::feature::COMPAT_DIR_INDEX
                != 0,
            hash_seed,
            def_hash_version,
            hash_flags,
            block_bitmap: descs.iter().map(|d| d.bg_block_bitmap.get()).collect(),
            inode_bitmap: descs.iter().map(|d| d.bg_inode_bitmap.get()).collect(),
            inode_table: descs.iter().map(|d| d.bg_inode_table.get()).collect(),
        }
    }

    pub fn ptrs(&self) -> u64 {
        self.block_size as u64 / 4
    }
    pub fn group_of_block(&self, blk: u32) -> u32 {
        (blk - self.first_data_block) / self.blocks_per_group
    }
    pub fn group_first_block(&self, g: u32) -> u32 {
        self.first_data_block + g * self.blocks_per_group
    }
    pub fn blocks_in_group(&self, g: u32) -> u32 {
        (self.blocks_count - self.group_first_block(g)).min(self.blocks_per_group)
    }
    pub fn sectors_per_block(&self) -> u32 {
        self.block_size / 512
    }
}

pub struct Ext2 {
    /// This file system, for the 'static closures the recovery runtime keeps
    /// (deferred frees, inverses of allocations).
    me: Weak<Ext2>,
    pub geo: Geometry,
    /// The recovery runtime (bypassed with `recovery=off`).
    pub rt: Arc<Runtime>,
    pub cache: BlockCache,
    dev: Arc<Device>,
    /// The page pool block frames and before-images come from.
    pub pool: Arc<ama::Pool>,
    /// Every block and inode bitmap, held in the cache for the whole mount
    /// when they are few (at most an eighth of the cache), as the kernel
    /// keeps bitmaps of busy groups: allocations then never need a frame,
    /// and AMA need not reserve for bitmap scans. Empty otherwise.
    resident_bitmaps: Vec<crate::cache::BufRef>,
    sb: Mutex<Superblock>,
    /// Per-group descriptor; its mutex also serializes that group's bitmaps.
    groups: Vec<Mutex<GroupDesc>>,
    free_blocks: AtomicI64,
    free_inodes: AtomicI64,
    locks: locks::InodeLocks,
    rename_lock: Mutex<()>,
    /// Kernel references (FUSE lookup counts) per inode, and the inodes whose
    /// last link is gone but that the kernel still references.
    refs: Mutex<refs::Refs>,
    /// Frees of committed requests that could not be done when they
    /// committed (no frame for a bitmap block): done at the next write-back
    /// or at unmount (see `alloc.rs`).
    pending_frees: Mutex<Vec<alloc::PendingFree>>,
    /// Xattr blocks that inodes with equal attributes may share.
    xattr_shared: Mutex<xattr_share::SharedBlocks>,
    next_generation: AtomicU32,
    pub config: FsConfig,
    pub gate: gate::GateStats,
    /// Warnings from mount (unclean state, errors recorded).
    pub mount_warnings: Vec<String>,
    /// The image was marked clean (`STATE_VALID`) when mounted. Only then
    /// does a clean unmount mark it clean again: an image never checked
    /// after an unclean unmount stays "not clean", as with the kernel's ext2
    /// (which writes back the state it found at mount).
    valid_at_mount: bool,
    /// Writes refused now (EROFS): from `ro` at mount, or a remount. The
    /// image itself was opened for writing unless `config.read_only`.
    read_only_now: std::sync::atomic::AtomicBool,
    /// How requests reach the daemon ("dev", "dev-own", "uring"), set once
    /// the mount is up: shown in `ext2mfr.stats`.
    pub transport: std::sync::OnceLock<&'static str>,
    /// The kernel took FUSE_WRITEBACK_CACHE at INIT (asked for with
    /// `config.writeback_cache`): shown in `ext2mfr.stats`.
    pub writeback_cache: std::sync::atomic::AtomicBool,
    /// The io_uring queue threads' policy ("idle", "normal"; unset over
    /// /dev/fuse), and how often the watchdog gave a starving idle-policy
    /// queue the normal one: shown in `ext2mfr.stats`.
    pub queue_policy: std::sync::OnceLock<&'static str>,
    pub queue_promotions: Arc<std::sync::atomic::AtomicU64>,
    /// The FUSE requests the transport received, by opcode (counted by the
    /// transport; shown in `ext2mfr.stats`).
    pub fuse_requests: crate::opcounts::OpCounts,
}

pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Ext2 {
    /// Are all bitmaps held in the cache (see `resident_bitmaps`)?
    pub(crate) fn bitmaps_resident(&self) -> bool {
        !self.resident_bitmaps.is_empty()
    }

    /// Are writes refused now (`ro`, or remounted read-only)?
    pub fn read_only(&self) -> bool {
        self.read_only_now
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn arc(&self) -> Arc<Ext2> {
        self.me.upgrade().expect("file system alive")
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only() {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }
}
