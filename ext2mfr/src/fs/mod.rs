//! The ext2 file system proper: mount and unmount, and (in the submodules)
//! inodes, block mapping, allocation, directories and the operations the
//! FUSE adapter calls.
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

pub mod alloc;
pub mod attr;
pub mod bmap;
pub mod dir;
pub mod gate;
pub mod inode;
pub mod locks;
pub mod ops;
pub mod requirements;
pub mod xattr;

use crate::cache::BlockCache;
use crate::device::Device;
use crate::error::{FsError, Result};
use crate::format::group_desc::{self, GROUP_DESC_SIZE};
use crate::format::superblock::STATE_VALID;
use crate::format::{read_image_header, GroupDesc, Superblock};
use parking_lot::Mutex;
use recovery_rt::Runtime;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Weak};

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
    pub policy: crate::options::Policy,
    /// Anticipatory memory allocation.
    pub ama: crate::options::AmaConfig,
    /// FUSE worker threads (concurrent requests; AMA's slack for growth).
    pub threads: usize,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            read_only: false,
            cache_bytes: 64 << 20,
            atime: true,
            recovery: true,
            policy: crate::options::Policy::Retry,
            ama: crate::options::AmaConfig::default(),
            threads: 2,
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
    pub block_bitmap: Vec<u32>,
    pub inode_bitmap: Vec<u32>,
    pub inode_table: Vec<u32>,
}

impl Geometry {
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
    refs: Mutex<Refs>,
    /// Frees of committed requests that could not be done when they
    /// committed (no frame for a bitmap block): done at the next write-back
    /// or at unmount (see `alloc.rs`).
    pending_frees: Mutex<Vec<alloc::PendingFree>>,
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
}

#[derive(Default)]
struct Refs {
    lookups: HashMap<u32, u64>,
    orphans: HashSet<u32>,
}

pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0}: {1}")]
    Open(String, std::io::Error),
    #[error("{0}: {1}")]
    Format(String, crate::format::FormatError),
    #[error("{0}: {1}; it can be mounted read-only (-o ro)")]
    NeedsReadOnly(String, String),
    #[error("{0}: image is {1} bytes but the file system needs {2}")]
    Truncated(String, u64, u64),
    #[error("{0}: {1}")]
    Io(String, FsError),
}

impl Ext2 {
    pub fn mount(path: &Path, config: FsConfig) -> std::result::Result<Arc<Ext2>, MountError> {
        let name = path.display().to_string();
        let mut dev =
            Device::open(path, config.read_only).map_err(|e| MountError::Open(name.clone(), e))?;
        let (sb, descs) =
            read_image_header(dev.file()).map_err(|e| MountError::Format(name.clone(), e))?;
        let check = sb
            .mount_check()
            .map_err(|e| MountError::Format(name.clone(), e))?;
        if let (Some(reason), false) = (&check.read_only_reason, config.read_only) {
            return Err(MountError::NeedsReadOnly(name, reason.clone()));
        }
        for w in &check.warnings {
            log::warn!("{name}: {w}");
        }
        let bs = sb.block_size();
        let need = sb.s_blocks_count.get() as u64 * bs as u64;
        let have = dev.file().metadata().map(|m| m.len()).unwrap_or(0);
        let is_blockdev = {
            use std::os::unix::fs::FileTypeExt;
            dev.file()
                .metadata()
                .map(|m| m.file_type().is_block_device())
                .unwrap_or(false)
        };
        if !is_blockdev && have < need {
            return Err(MountError::Truncated(name, have, need));
        }
        dev.set_block_size(bs);
        let dev = Arc::new(dev);
        let geo = Geometry {
            block_size: bs,
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
            block_bitmap: descs.iter().map(|d| d.bg_block_bitmap.get()).collect(),
            inode_bitmap: descs.iter().map(|d| d.bg_inode_bitmap.get()).collect(),
            inode_table: descs.iter().map(|d| d.bg_inode_table.get()).collect(),
        };
        let cache_frames = (config.cache_bytes / bs as usize).max(256);
        let pool_pages = match config.ama.mem_bytes {
            Some(m) => (m / bs as usize).max(64),
            None => cache_frames + (cache_frames / 4).max((16 << 20) / bs as usize),
        };
        let pool = ama::Pool::new(
            bs as usize,
            pool_pages,
            &requirements::object_kinds(),
            faultinject::global().cloned(),
            gate::in_request,
        )
        .map_err(|e| MountError::Open(name.clone(), e))?;
        // In test builds an under-allocation is a bug to stop at.
        pool.set_strict(cfg!(debug_assertions));
        let rt = if config.recovery {
            Runtime::new()
        } else {
            Runtime::disabled()
        };
        let cache = BlockCache::new(
            dev.clone(),
            pool.clone(),
            cache_frames,
            rt.clone(),
            geo.blocks_count as u64,
        );
        let mut resident_bitmaps = Vec::new();
        if geo.groups as usize * 2 <= cache_frames / 8 {
            for g in 0..geo.groups as usize {
                for blk in [geo.block_bitmap[g], geo.inode_bitmap[g]] {
                    let b = cache
                        .get(blk as u64)
                        .map_err(|e| MountError::Io(name.clone(), e))?;
                    resident_bitmaps.push(b);
                }
            }
        }
        let free_blocks: i64 = descs
            .iter()
            .map(|d| d.bg_free_blocks_count.get() as i64)
            .sum();
        let free_inodes: i64 = descs
            .iter()
            .map(|d| d.bg_free_inodes_count.get() as i64)
            .sum();
        let valid_at_mount = sb.s_state.get() & STATE_VALID != 0;
        let fs = Arc::new_cyclic(|me| Ext2 {
            me: me.clone(),
            geo,
            rt,
            cache,
            dev,
            pool,
            resident_bitmaps,
            sb: Mutex::new(sb),
            groups: descs.into_iter().map(Mutex::new).collect(),
            free_blocks: AtomicI64::new(free_blocks),
            free_inodes: AtomicI64::new(free_inodes),
            locks: locks::InodeLocks::new(),
            rename_lock: Mutex::new(()),
            refs: Mutex::new(Refs::default()),
            pending_frees: Mutex::new(Vec::new()),
            next_generation: AtomicU32::new(rand_seed()),
            config,
            gate: gate::GateStats::default(),
            mount_warnings: check.warnings,
            valid_at_mount,
        });
        let me = Arc::downgrade(&fs);
        fs.pool
            .set_reclaimer(move |want| me.upgrade().map_or(0, |fs| fs.cache.reclaim(want)));
        if !fs.config.read_only {
            // Mark the image in use, as the kernel does: not clean until unmount.
            let mut sb = fs.sb.lock();
            let st = sb.s_state.get();
            sb.s_state.set(st & !STATE_VALID);
            let mc = sb.s_mnt_count.get();
            sb.s_mnt_count.set(mc.wrapping_add(1));
            sb.s_mtime.set(now());
            drop(sb);
            fs.write_super(false)
                .map_err(|e| MountError::Io(name.clone(), e))?;
            fs.dev.sync().map_err(|e| MountError::Io(name, e))?;
        }
        Ok(fs)
    }

    /// Are all bitmaps held in the cache (see `resident_bitmaps`)?
    pub(crate) fn bitmaps_resident(&self) -> bool {
        !self.resident_bitmaps.is_empty()
    }

    pub fn read_only(&self) -> bool {
        self.config.read_only
    }

    pub(crate) fn arc(&self) -> Arc<Ext2> {
        self.me.upgrade().expect("file system alive")
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.config.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Write the descriptor table and the super block (with the free counts
    /// summed from the descriptors) to the image. `clean` marks it cleanly
    /// unmounted.
    fn write_super(&self, clean: bool) -> Result<()> {
        let bs = self.geo.block_size as usize;
        let mut gdt = vec![0u8; group_desc::gdt_blocks(&self.sb.lock()) as usize * bs];
        let (mut free_b, mut free_i) = (0u64, 0u64);
        for (i, g) in self.groups.iter().enumerate() {
            let d = *g.lock();
            free_b += d.bg_free_blocks_count.get() as u64;
            free_i += d.bg_free_inodes_count.get() as u64;
            gdt[i * GROUP_DESC_SIZE..(i + 1) * GROUP_DESC_SIZE]
                .copy_from_slice(bytemuck::bytes_of(&d));
        }
        let gdt_off = (self.geo.first_data_block as u64 + 1) * bs as u64;
        self.dev.write_at(gdt_off, &gdt)?;
        let bytes = {
            let mut sb = self.sb.lock();
            sb.s_free_blocks_count.set(free_b as u32);
            sb.s_free_inodes_count.set(free_i as u32);
            sb.s_wtime.set(now());
            if clean && self.valid_at_mount {
                let st = sb.s_state.get();
                sb.s_state.set(st | STATE_VALID);
            }
            sb.as_bytes().to_vec()
        };
        self.dev
            .write_at(crate::format::superblock::SUPERBLOCK_OFFSET, &bytes)
    }

    /// Write everything dirty to the image and sync it.
    pub fn sync(&self) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        self.retry_pending_frees();
        self.cache.flush_all()?;
        self.write_super(false)?;
        self.dev.sync()
    }

    /// Clean unmount: release orphans (unlinked but still referenced inodes),
    /// write everything back, and mark the super block clean.
    pub fn unmount(&self) -> Result<()> {
        if self.config.read_only {
            return Ok(());
        }
        let orphans: Vec<u32> = {
            let mut r = self.refs.lock();
            r.lookups.clear();
            r.orphans.drain().collect()
        };
        for ino in orphans {
            if let Err(e) = self.release_inode(ino) {
                log::error!("releasing unlinked inode {ino} at unmount: {e}");
            }
        }
        self.retry_pending_frees();
        self.cache.flush_all()?;
        self.write_super(true)?;
        self.dev.sync()?;
        log::info!("unmounted cleanly; counters: {}", self.stats_json());
        Ok(())
    }

    /// Every counter of the daemon as one JSON object: the recovery
    /// runtime's, the gate's, the block cache's and the fault injector's.
    pub fn stats_json(&self) -> String {
        let r = self.rt.stats();
        let c = self.cache.stats();
        let g = &self.gate;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let inj = faultinject::global()
            .map(|i| i.counters())
            .unwrap_or_default();
        let logged = r.logged_reads + r.logged_writes;
        let all = logged + r.unlogged_reads + r.unlogged_writes;
        serde_json::json!({
            "recovery": {
                "enabled": self.rt.enabled(),
                "domains_started": r.started,
                "committed": r.committed,
                "rolled_back": r.rolled_back,
                "cascaded_rollbacks": r.cascaded,
                "merged_children": r.merged,
                "dependence_edges": r.edges,
                "logged_reads": r.logged_reads,
                "logged_writes": r.logged_writes,
                "unlogged_reads": r.unlogged_reads,
                "unlogged_writes": r.unlogged_writes,
                "coverage": if all == 0 { 0.0 } else { logged as f64 / all as f64 },
                "uncommitted_now": self.rt.uncommitted(),
            },
            "requests": {
                "total": l(&g.requests),
                "faulted": l(&g.faulted),
                "retries": l(&g.retries),
                "failed_after_fault": l(&g.failed),
            },
            "cache": {
                "hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                "writebacks": c.writebacks, "forgotten": c.forgotten,
            },
            "ama": self.ama_json(),
            "faults_injected": {
                "alloc_checks": inj.alloc_checks,
                "alloc_faults": inj.alloc_faults,
                "fault_point_hits": inj.fault_point_hits,
                "safety_faults": inj.safety_faults,
                "by_site": inj.by_site.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            },
        })
        .to_string()
    }

    fn ama_json(&self) -> serde_json::Value {
        let s = self.pool.space();
        let a = &self.config.ama;
        let by_op: serde_json::Map<String, serde_json::Value> = s
            .by_op
            .iter()
            .map(|(op, o)| {
                (
                    op.to_string(),
                    serde_json::json!({
                        "requests": o.requests, "reserved_pages": o.reserved_pages,
                        "used_pages": o.used_pages, "returned_pages": o.returned_pages,
                        "pinned_pages": o.pinned_pages, "max_reserved": o.max_reserved,
                        "max_used": o.max_used, "under_allocations": o.under_allocations,
                        "restarts": o.restarts,
                    }),
                )
            })
            .collect();
        let sum = |f: fn(&ama::OpSpace) -> u64| s.by_op.values().map(f).sum::<u64>();
        serde_json::json!({
            "enabled": a.enabled, "peek": a.peek, "recycle": a.recycle,
            "page_size": s.page_size, "pool_pages": s.capacity_pages,
            "in_use_pages": s.in_use_pages, "peak_pages": s.peak_pages,
            "allocated_pages": s.allocated_pages,
            "allocated_object_bytes": s.allocated_object_bytes,
            "allocated_bytes": s.allocated_bytes(),
            "reservations": s.reservations,
            "reservation_failures": s.reservation_failures,
            "reserved_pages": sum(|o| o.reserved_pages),
            "used_pages": sum(|o| o.used_pages),
            "returned_pages": sum(|o| o.returned_pages),
            "pinned_pages": sum(|o| o.pinned_pages),
            "under_allocations": s.under_allocations,
            "restarts": s.restarts,
            "by_op": by_op,
        })
    }

    pub fn free_blocks(&self) -> u64 {
        self.free_blocks.load(Ordering::Relaxed).max(0) as u64
    }
    pub fn free_inodes(&self) -> u64 {
        self.free_inodes.load(Ordering::Relaxed).max(0) as u64
    }
    pub fn volume_name(&self) -> String {
        self.sb.lock().volume_name()
    }
}

fn rand_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(1);
    t | 1
}
