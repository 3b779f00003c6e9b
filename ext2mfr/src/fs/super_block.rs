//! The file system as a whole: mount, the super block written back,
//! sync and unmount, statfs, and the features changes turn on.

use super::attr::Statfs;
use super::refs::Refs;
use super::{gate, locks, now, Ext2, FsConfig, Geometry};
use crate::cache::BlockCache;
use crate::device::Device;
use crate::error::{FsError, Result};
use crate::format::dirent::MAX_NAME_LEN;
use crate::format::group_desc::{self, GROUP_DESC_SIZE};
use crate::format::superblock::{feature, STATE_VALID};
use crate::format::{read_image_header, GroupDesc, Superblock};
use parking_lot::Mutex;
use recovery_rt::Runtime;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

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
        let config_read_only = config.read_only;
        let (dev, sb, descs, warnings) = open_image(path, &name, config.read_only)?;
        let geo = Geometry::new(&sb, &descs);
        let bs = geo.block_size;
        let cache_frames = (config.cache_bytes / bs as usize).max(256);
        let pool_pages = match config.ama.mem_bytes {
            Some(m) => (m / bs as usize).max(64),
            None => cache_frames + (cache_frames / 4).max((16 << 20) / bs as usize),
        };
        let pool = ama::Pool::new(
            bs as usize,
            pool_pages,
            &crate::cache::object_kinds(),
            faultinject::global().cloned(),
            crate::faults::in_request,
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
        let resident_bitmaps = if geo.groups as usize * 2 <= cache_frames / 8 {
            resident_bitmaps(&cache, &geo).map_err(|e| MountError::Io(name.clone(), e))?
        } else {
            Vec::new()
        };
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
            xattr_shared: Mutex::new(Default::default()),
            next_generation: AtomicU32::new(rand_seed()),
            config,
            gate: gate::GateStats::default(),
            mount_warnings: warnings,
            valid_at_mount,
            read_only_now: std::sync::atomic::AtomicBool::new(config_read_only),
            transport: std::sync::OnceLock::new(),
            writeback_cache: Default::default(),
            queue_policy: std::sync::OnceLock::new(),
            queue_promotions: Default::default(),
            fuse_requests: Default::default(),
        });
        let me = Arc::downgrade(&fs);
        fs.pool
            .set_reclaimer(move |want| me.upgrade().map_or(0, |fs| fs.cache.reclaim(want)));
        if !fs.config.read_only {
            fs.mark_in_use().map_err(|e| MountError::Io(name, e))?;
        }
        Ok(fs)
    }

    /// Remount read-only (`ro`) or read-write: read-only writes everything
    /// back and marks the image clean, then refuses writes with EROFS, as
    /// the kernel's `remount,ro`; read-write marks it in use again. An image
    /// mounted `ro` was opened read-only: it cannot become writable.
    pub fn set_read_only(&self, ro: bool) -> Result<()> {
        use std::sync::atomic::Ordering::AcqRel;
        if ro {
            if self.read_only_now.swap(true, AcqRel) || self.config.read_only {
                return Ok(());
            }
            self.retry_pending_frees();
            self.cache.flush_all()?;
            self.write_super(true)?;
            self.dev.sync()?;
            log::info!("remounted read-only");
        } else {
            if self.config.read_only {
                return Err(FsError::ReadOnly);
            }
            if self.read_only() {
                self.mark_in_use()?;
                self.read_only_now
                    .store(false, std::sync::atomic::Ordering::Release);
                log::info!("remounted read-write");
            }
        }
        Ok(())
    }

    /// Mark the image in use, as the kernel does: not clean until unmount.
    fn mark_in_use(&self) -> Result<()> {
        let mut sb = self.sb.lock();
        let st = sb.s_state.get();
        sb.s_state.set(st & !STATE_VALID);
        let mc = sb.s_mnt_count.get();
        sb.s_mnt_count.set(mc.wrapping_add(1));
        sb.s_mtime.set(now());
        drop(sb);
        self.write_super(false)?;
        self.dev.sync()
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

    /// Write everything back, then drop every cached block nobody holds
    /// (those a request still uses, and the resident bitmaps, stay).
    pub fn drop_caches(&self) -> Result<()> {
        self.sync()?;
        let dropped = self.cache.drop_unused()?;
        log::info!("dropped {dropped} cached blocks");
        Ok(())
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

    pub fn free_blocks(&self) -> u64 {
        self.free_blocks.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn free_inodes(&self) -> u64 {
        self.free_inodes.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn volume_name(&self) -> String {
        self.sb.lock().volume_name()
    }

    pub fn statfs(&self) -> Statfs {
        let free = self.free_blocks();
        let r = self.geo.r_blocks as u64;
        Statfs {
            blocks: self.geo.blocks_count as u64 - self.overhead_blocks(),
            bfree: free,
            bavail: free.saturating_sub(r),
            files: self.geo.inodes_count as u64,
            ffree: self.free_inodes(),
            bsize: self.geo.block_size,
            namelen: MAX_NAME_LEN as u32,
        }
    }

    /// Metadata blocks (super block copies, descriptor tables, bitmaps,
    /// inode tables), which statfs leaves out of the total as ext2's bsddf does.
    fn overhead_blocks(&self) -> u64 {
        let sb = self.sb.lock();
        let gdt = crate::format::group_desc::gdt_blocks(&sb) as u64;
        let itb = crate::format::group_desc::inode_table_blocks(&sb) as u64;
        let mut n = self.geo.first_data_block as u64;
        for g in 0..self.geo.groups {
            if sb.group_has_super(g) {
                n += 1 + gdt + sb.s_reserved_gdt_blocks.get() as u64;
            }
            n += 2 + itb;
        }
        n
    }

    /// Files of 2 GiB and more need the large_file feature.
    pub(super) fn note_large_file(&self, size: u64) {
        if size >= 1 << 31 {
            let mut sb = self.sb.lock();
            // Revision 0 has no feature flags (e2fsck: "feature flag(s) set,
            // but is a revision 0 filesystem"): move to revision 1 first, with
            // the values revision 0 implies, as the kernel's
            // ext2_update_dynamic_rev does.
            use crate::format::superblock::{
                DYNAMIC_REV, GOOD_OLD_FIRST_INO, GOOD_OLD_INODE_SIZE, GOOD_OLD_REV,
            };
            if sb.s_rev_level.get() == GOOD_OLD_REV {
                log::warn!("updating to revision 1 for the large_file feature");
                sb.s_first_ino.set(GOOD_OLD_FIRST_INO);
                sb.s_inode_size.set(GOOD_OLD_INODE_SIZE);
                sb.s_rev_level.set(DYNAMIC_REV);
            }
            let f = sb.s_feature_ro_compat.get();
            sb.s_feature_ro_compat
                .set(f | feature::RO_COMPAT_LARGE_FILE);
        }
    }

    pub fn fsync(&self) -> Result<()> {
        self.sync()
    }
}

fn rand_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(1);
    t | 1
}

/// Open the image and read its header: the device (its block size set),
/// the super block, the group descriptors and the mount-time warnings.
/// Refused: a malformed header, a feature that needs a read-only mount
/// when mounting read-write, an image shorter than its block count says.
fn open_image(
    path: &Path,
    name: &str,
    read_only: bool,
) -> std::result::Result<(Arc<Device>, Superblock, Vec<GroupDesc>, Vec<String>), MountError> {
    let name = name.to_string();
    let mut dev = Device::open(path, read_only).map_err(|e| MountError::Open(name.clone(), e))?;
    let (sb, descs) =
        read_image_header(dev.file()).map_err(|e| MountError::Format(name.clone(), e))?;
    let check = sb
        .mount_check()
        .map_err(|e| MountError::Format(name.clone(), e))?;
    if let (Some(reason), false) = (&check.read_only_reason, read_only) {
        return Err(MountError::NeedsReadOnly(name, reason.clone()));
    }
    for w in &check.warnings {
        log::warn!("{name}: {w}");
    }
    let bs = sb.block_size();
    let need = sb.s_blocks_count.get() as u64 * bs as u64;
    let meta = dev.file().metadata();
    let have = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let is_blockdev = {
        use std::os::unix::fs::FileTypeExt;
        meta.map(|m| m.file_type().is_block_device())
            .unwrap_or(false)
    };
    if !is_blockdev && have < need {
        return Err(MountError::Truncated(name, have, need));
    }
    dev.set_block_size(bs);
    Ok((Arc::new(dev), sb, descs, check.warnings))
}

/// Every block and inode bitmap, read into the cache and held there for
/// the whole mount (see `Ext2::resident_bitmaps`).
fn resident_bitmaps(cache: &BlockCache, geo: &Geometry) -> Result<Vec<crate::cache::BufRef>> {
    let mut held = Vec::with_capacity(geo.groups as usize * 2);
    for g in 0..geo.groups as usize {
        for blk in [geo.block_bitmap[g], geo.inode_bitmap[g]] {
            held.push(cache.get(blk as u64)?);
        }
    }
    Ok(held)
}
