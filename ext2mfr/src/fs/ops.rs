//! The file-system operations the FUSE adapter calls, in ext2 inode numbers.
//! Each takes the locks it needs (see the lock order in `mod.rs`), works on
//! inodes read into a small working set, and writes them back at the end.

use super::attr::{Attr, Ctx, SetAttr, Statfs};
use super::dir::{Found, Listed, Probe};
use super::{now, Ext2};
use crate::error::{corrupt, FsError, Result};
use crate::format::dirent::{file_type_of, MAX_NAME_LEN};
use crate::format::inode::{
    max_file_size, FileKind, Inode, Timestamp, FAST_SYMLINK_MAX, MAX_LINKS, ROOT_INO, S_IFMT,
    S_ISGID, S_ISUID, S_IXGRP,
};
use crate::format::le::{Le16, Le32};
use crate::format::superblock::feature;
use std::collections::HashMap;

/// Inodes read for one operation, written back together at its end, so an
/// operation on one directory as both source and target sees one copy.
struct WorkingSet<'a> {
    fs: &'a Ext2,
    inodes: HashMap<u32, Inode>,
}

impl<'a> WorkingSet<'a> {
    fn new(fs: &'a Ext2) -> Self {
        WorkingSet {
            fs,
            inodes: HashMap::new(),
        }
    }
    fn get(&mut self, ino: u32) -> Result<&mut Inode> {
        if !self.inodes.contains_key(&ino) {
            let i = self.fs.read_inode(ino)?;
            self.inodes.insert(ino, i);
        }
        Ok(self.inodes.get_mut(&ino).expect("just inserted"))
    }
    fn write_back(self) -> Result<()> {
        for (ino, i) in &self.inodes {
            self.fs.write_inode(*ino, i)?;
        }
        Ok(())
    }
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(FsError::Invalid);
    }
    Ok(())
}

/// What a write, a truncate or a change of owner does to set-user-ID and
/// set-group-ID, as the kernel decides it (setattr_should_drop_suidgid):
/// set-user-ID goes; set-group-ID goes with group-execute, and without it
/// (no longer a set-group-ID program) for a caller outside the file's group
/// without CAP_FSETID. FUSE passes on the caller's primary group only, so a
/// member through a supplementary group loses the bit too.
fn kill_suidgid(i: &mut Inode, ctx: &Ctx) {
    let m = i.mode();
    let mut kill = S_ISUID;
    if m & S_IXGRP != 0 || (!ctx.privileged() && ctx.gid != i.gid()) {
        kill |= S_ISGID;
    }
    if m & kill != 0 {
        i.i_mode.set(m & !kill);
    }
}

impl Ext2 {
    pub(crate) fn has_filetype(&self) -> bool {
        self.geo.filetype
    }

    /// Read an inode that the kernel refers to: it must be in use.
    fn live_inode(&self, ino: u32) -> Result<Inode> {
        let i = self.read_inode(ino)?;
        if i.mode() == 0 || (i.links() == 0 && !self.refs.lock().orphans.contains(&ino)) {
            return Err(FsError::NotFound);
        }
        Ok(i)
    }

    fn dir_inode(&self, ino: u32) -> Result<Inode> {
        let i = self.live_inode(ino)?;
        if !i.is_dir() {
            return Err(FsError::NotDir);
        }
        Ok(i)
    }

    // ---- kernel references (lookup counts) and unlinked inodes ----

    /// The kernel now holds one more reference to `ino` (an entry reply was
    /// sent). Called by the FUSE adapter after the request committed, so a
    /// rolled-back request leaves no reference behind.
    pub fn add_ref(&self, ino: u32) {
        *self.refs.lock().lookups.entry(ino).or_insert(0) += 1;
    }

    /// The kernel dropped `n` references; free the inode if it was unlinked.
    pub fn forget(&self, ino: u32, n: u64) {
        let release = {
            let mut r = self.refs.lock();
            let gone = match r.lookups.get_mut(&ino) {
                Some(c) if *c > n => {
                    *c -= n;
                    false
                }
                Some(_) => {
                    r.lookups.remove(&ino);
                    true
                }
                None => false,
            };
            gone && r.orphans.remove(&ino)
        };
        if release {
            let r = self.request("forget", super::requirements::Need::Release { ino }, || {
                let _g = self.locks.write_all(&[ino]);
                self.release_inode(ino)
            });
            if let Err(e) = r {
                // Nobody can be told, and nothing may leak: keep it as an
                // orphan, released at unmount.
                log::warn!("releasing unlinked inode {ino} failed ({e}); retried at unmount");
                self.refs.lock().orphans.insert(ino);
            }
        }
    }

    /// `ino` lost its last link: free it now, or when the kernel forgets it.
    /// The caller holds its lock and has written the inode.
    fn unlinked(&self, ino: u32) -> Result<()> {
        {
            let mut r = self.refs.lock();
            if r.lookups.contains_key(&ino) {
                r.orphans.insert(ino);
                let fs = self.arc();
                self.rt.log_undo(move || {
                    fs.refs.lock().orphans.remove(&ino);
                });
                return Ok(());
            }
        }
        self.release_inode(ino)
    }

    /// Free an inode with no links: its blocks, its xattr block, its bitmap bit.
    pub(crate) fn release_inode(&self, ino: u32) -> Result<()> {
        let mut i = self.read_inode(ino)?;
        if i.links() != 0 || i.mode() == 0 {
            return Ok(());
        }
        let is_dir = i.is_dir();
        self.truncate_blocks(&mut i, 0)?;
        self.xattr_release(&mut i)?;
        i.set_size(0);
        i.i_dtime.set(now());
        self.write_inode(ino, &i)?;
        self.free_inode_bit(ino, is_dir)
    }

    /// Lock `base` and the inodes `probe` finds (retrying until the locks
    /// taken cover everything found, since probing needs the base locks).
    fn lock_for<T>(
        &self,
        base: &[u32],
        mut probe: impl FnMut() -> Result<(Vec<u32>, T)>,
    ) -> Result<(super::locks::Held<'_>, T)> {
        let mut extra: Vec<u32> = Vec::new();
        loop {
            let mut all = base.to_vec();
            all.extend_from_slice(&extra);
            let held = self.locks.write_all(&all);
            let (needed, t) = probe()?;
            if needed.iter().all(|&i| held.covers(i)) {
                return Ok((held, t));
            }
            drop(held);
            extra = needed;
        }
    }

    // ---- operations ----

    pub fn lookup(&self, parent: u32, name: &[u8]) -> Result<Attr> {
        if name.len() > MAX_NAME_LEN {
            return Err(FsError::NameTooLong);
        }
        let _g = self.locks.read(parent);
        let dir = self.dir_inode(parent)?;
        let f = self.dir_find(&dir, name)?.ok_or(FsError::NotFound)?;
        let i = self.read_inode(f.ino)?;
        if i.mode() == 0 {
            return Err(corrupt(format!(
                "entry '{}' points to free inode {}",
                String::from_utf8_lossy(name),
                f.ino
            )));
        }
        Ok(Attr::from_inode(f.ino, &i))
    }

    pub fn getattr(&self, ino: u32) -> Result<Attr> {
        let _g = self.locks.read(ino);
        Ok(Attr::from_inode(ino, &self.live_inode(ino)?))
    }

    pub fn setattr(&self, ctx: &Ctx, ino: u32, s: &SetAttr) -> Result<Attr> {
        self.check_writable()?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        let t = Timestamp::now();
        if let Some(mode) = s.mode {
            let m = (i.mode() & S_IFMT) | (mode as u16 & 0o7777);
            i.i_mode.set(m);
        }
        // The kernel leaves killing set-user-ID and set-group-ID to us
        // (FUSE_HANDLE_KILLPRIV_V2): a change of owner kills set-user-ID on
        // anything but a directory, for everyone, as chown(2) does, judged
        // on the file as it was. chown(f, -1, -1) changes no owner but does
        // the same; FUSE sends it as a setattr with nothing set.
        let chown = s.uid.is_some() || s.gid.is_some() || s.is_empty();
        if chown && s.mode.is_none() && !i.is_dir() {
            kill_suidgid(&mut i, ctx);
        }
        if let Some(uid) = s.uid {
            i.set_uid(uid);
        }
        if let Some(gid) = s.gid {
            i.set_gid(gid);
        }
        if let Some(size) = s.size {
            if i.is_dir() {
                return Err(FsError::IsDir);
            }
            if !i.is_reg() {
                return Err(FsError::Invalid);
            }
            self.set_size(ctx, &mut i, size)?;
            i.set_mtime(t);
            // A truncate kills them unless the caller holds CAP_FSETID. The
            // kernel says so in FATTR_KILL_SUIDGID, which fuser does not
            // pass on; root stands for the capability, as in `privileged`.
            if !ctx.privileged() {
                kill_suidgid(&mut i, ctx);
            }
        }
        if let Some(a) = s.atime {
            i.set_atime(a);
        }
        if let Some(m) = s.mtime {
            i.set_mtime(m);
        }
        i.set_ctime(s.ctime.unwrap_or(t));
        self.write_inode(ino, &i)?;
        Ok(Attr::from_inode(ino, &i))
    }

    /// Truncate or extend (with a hole) a regular file.
    fn set_size(&self, _ctx: &Ctx, i: &mut Inode, size: u64) -> Result<()> {
        if size > max_file_size(self.geo.block_size) {
            return Err(FsError::TooBig);
        }
        let bs = self.geo.block_size as u64;
        let old = i.size();
        if size < old {
            self.truncate_blocks(i, size.div_ceil(bs))?;
            // Zero the tail of the new last block so a later extension reads zeros.
            if size % bs != 0 {
                if let Some(b) = self.map(i, size / bs)? {
                    let buf = self.cache.get(b as u64)?;
                    buf.write()[(size % bs) as usize..].fill(0);
                }
            }
        }
        self.note_large_file(size);
        i.set_size(size);
        Ok(())
    }

    /// Files of 2 GiB and more need the large_file feature.
    fn note_large_file(&self, size: u64) {
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

    pub fn readlink(&self, ino: u32) -> Result<Vec<u8>> {
        let _g = self.locks.read(ino);
        let i = self.live_inode(ino)?;
        if !i.is_symlink() {
            return Err(FsError::Invalid);
        }
        let size = i.size() as usize;
        if i.is_fast_symlink(self.geo.block_size) {
            if size > FAST_SYMLINK_MAX + 1 {
                return Err(corrupt(format!("fast symlink {ino} with size {size}")));
            }
            let raw: Vec<u8> = i
                .i_block
                .iter()
                .flat_map(|p| p.get().to_le_bytes())
                .collect();
            return Ok(raw[..size].to_vec());
        }
        if size >= self.geo.block_size as usize {
            return Err(corrupt(format!("symlink {ino} with size {size}")));
        }
        let b = self
            .map(&i, 0)?
            .ok_or_else(|| corrupt(format!("symlink {ino} has no block")))?;
        let buf = self.cache.get(b as u64)?;
        let out = buf.read()[..size].to_vec();
        Ok(out)
    }

    /// Create an inode of `kind` named `name` in `parent`. `fill` sets up
    /// its contents (directory block, symlink target) before it is linked.
    fn create_node(
        &self,
        ctx: &Ctx,
        parent: u32,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        fill: impl FnOnce(&Ext2, u32, &mut Inode) -> Result<()>,
    ) -> Result<Attr> {
        self.check_writable()?;
        check_name(name)?;
        let _g = self.locks.write_all(&[parent]);
        let mut ws = WorkingSet::new(self);
        let dir = *ws.get(parent)?;
        if dir.mode() == 0 || dir.links() == 0 {
            return Err(FsError::NotFound);
        }
        if !dir.is_dir() {
            return Err(FsError::NotDir);
        }
        let Probe::Absent(room) = self.dir_probe(&dir, name)? else {
            return Err(FsError::Exists);
        };
        let is_dir = kind == FileKind::Directory;
        if is_dir && dir.links() >= MAX_LINKS {
            return Err(FsError::TooManyLinks);
        }
        let ino = self.alloc_inode(parent, is_dir)?;
        // The new inode is not reachable yet; lock it anyway for forget/getattr races.
        let t = Timestamp::now();
        let mut perm = mode as u16 & 0o7777;
        let mut gid = ctx.gid;
        if dir.mode() & S_ISGID != 0 {
            gid = dir.gid();
            if is_dir {
                perm |= S_ISGID;
            }
        }
        let mut i = Inode {
            i_mode: Le16::new(kind.mode_bits() | perm),
            i_links_count: Le16::new(if is_dir { 2 } else { 1 }),
            i_generation: Le32::new(
                self.next_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
            ..self.blank_inode()
        };
        i.set_atime(t);
        i.set_mtime(t);
        i.set_ctime(t);
        i.set_crtime(t);
        i.set_uid(ctx.uid);
        i.set_gid(gid);
        let built = fill(self, ino, &mut i).and_then(|()| {
            self.write_new_inode(ino, &i)?;
            let d = ws.get(parent)?;
            // `fill` wrote only the new inode's blocks: `room` still holds.
            self.dir_insert(d, name, ino, file_type_of(kind), ctx.privileged(), room)?;
            if is_dir {
                d.i_links_count.set(d.links() + 1);
            }
            d.set_mtime(t);
            d.set_ctime(t);
            Ok(())
        });
        if let Err(e) = built {
            // Undo: give back the inode and whatever `fill` allocated.
            i.i_links_count.set(0);
            if i.mode() & S_IFMT != 0 {
                let _ = self.truncate_blocks(&mut i, 0);
                i.i_dtime.set(now());
                let _ = self.write_new_inode(ino, &i);
            }
            let _ = self.free_inode_bit(ino, is_dir);
            return Err(e);
        }
        ws.write_back()?;
        Ok(Attr::from_inode(ino, &i))
    }

    pub fn create(&self, ctx: &Ctx, parent: u32, name: &[u8], mode: u32) -> Result<Attr> {
        self.create_node(ctx, parent, name, FileKind::Regular, mode, |_, _, _| Ok(()))
    }

    pub fn mknod(&self, ctx: &Ctx, parent: u32, name: &[u8], mode: u32, rdev: u32) -> Result<Attr> {
        let kind = FileKind::from_mode(mode as u16).ok_or(FsError::Invalid)?;
        if kind == FileKind::Directory || kind == FileKind::Symlink {
            return Err(FsError::Invalid);
        }
        self.create_node(ctx, parent, name, kind, mode, |_, _, i| {
            if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
                let dev = rdev as libc::dev_t;
                i.set_device(libc::major(dev), libc::minor(dev));
            }
            Ok(())
        })
    }

    pub fn mkdir(&self, ctx: &Ctx, parent: u32, name: &[u8], mode: u32) -> Result<Attr> {
        let privileged = ctx.privileged();
        self.create_node(
            ctx,
            parent,
            name,
            FileKind::Directory,
            mode,
            |fs, ino, i| fs.dir_init(i, ino, parent, privileged),
        )
    }

    pub fn symlink(&self, ctx: &Ctx, parent: u32, name: &[u8], target: &[u8]) -> Result<Attr> {
        if target.len() >= self.geo.block_size as usize {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        let privileged = ctx.privileged();
        self.create_node(ctx, parent, name, FileKind::Symlink, 0o777, |fs, ino, i| {
            if target.len() <= FAST_SYMLINK_MAX {
                let mut raw = [0u8; 60];
                raw[..target.len()].copy_from_slice(target);
                for (k, p) in i.i_block.iter_mut().enumerate() {
                    p.set(u32::from_le_bytes(
                        raw[k * 4..k * 4 + 4].try_into().unwrap(),
                    ));
                }
            } else {
                let goal = fs
                    .geo
                    .group_first_block((ino - 1) / fs.geo.inodes_per_group);
                let (b, new) = fs.map_alloc(i, 0, goal, privileged)?;
                let buf = fs.cache.get_cleared(b as u64, new)?;
                buf.write()[..target.len()].copy_from_slice(target);
            }
            i.set_size(target.len() as u64);
            Ok(())
        })
    }

    pub fn link(&self, _ctx: &Ctx, ino: u32, parent: u32, name: &[u8]) -> Result<Attr> {
        self.check_writable()?;
        check_name(name)?;
        let _g = self.locks.write_all(&[ino, parent]);
        let mut ws = WorkingSet::new(self);
        let dir = *ws.get(parent)?;
        if !dir.is_dir() {
            return Err(FsError::NotDir);
        }
        if dir.links() == 0 {
            return Err(FsError::NotFound);
        }
        let src = *ws.get(ino)?;
        if src.is_dir() {
            return Err(FsError::Perm);
        }
        if src.links() == 0 {
            return Err(FsError::NotFound);
        }
        if src.links() >= MAX_LINKS {
            return Err(FsError::TooManyLinks);
        }
        let Probe::Absent(room) = self.dir_probe(&dir, name)? else {
            return Err(FsError::Exists);
        };
        let t = Timestamp::now();
        let ft = src.kind().map(file_type_of).unwrap_or(0);
        let privileged = _ctx.privileged();
        self.dir_insert(ws.get(parent)?, name, ino, ft, privileged, room)?;
        {
            let d = ws.get(parent)?;
            d.set_mtime(t);
            d.set_ctime(t);
        }
        let s = ws.get(ino)?;
        s.i_links_count.set(s.links() + 1);
        s.set_ctime(t);
        let attr = Attr::from_inode(ino, s);
        ws.write_back()?;
        Ok(attr)
    }

    pub fn unlink(&self, _ctx: &Ctx, parent: u32, name: &[u8]) -> Result<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, _ctx: &Ctx, parent: u32, name: &[u8]) -> Result<()> {
        self.remove(parent, name, true)
    }

    fn remove(&self, parent: u32, name: &[u8], want_dir: bool) -> Result<()> {
        self.check_writable()?;
        if name.len() > MAX_NAME_LEN {
            return Err(FsError::NameTooLong);
        }
        if name == b"." {
            return Err(FsError::Invalid);
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        let (_g, found) = self.lock_for(&[parent], || {
            let dir = self.dir_inode(parent)?;
            let f = self.dir_find(&dir, name)?.ok_or(FsError::NotFound)?;
            Ok((vec![f.ino], f))
        })?;
        let mut ws = WorkingSet::new(self);
        let child = *ws.get(found.ino)?;
        if want_dir {
            if !child.is_dir() {
                return Err(FsError::NotDir);
            }
            if !self.dir_is_empty(&child)? {
                return Err(FsError::NotEmpty);
            }
        } else if child.is_dir() {
            return Err(FsError::IsDir);
        }
        let t = Timestamp::now();
        self.dir_remove(ws.get(parent)?, &found)?;
        {
            let d = ws.get(parent)?;
            d.set_mtime(t);
            d.set_ctime(t);
            if want_dir {
                d.i_links_count.set(d.links().saturating_sub(1));
            }
        }
        let c = ws.get(found.ino)?;
        let links = if want_dir {
            0
        } else {
            c.links().saturating_sub(1)
        };
        c.i_links_count.set(links);
        c.set_ctime(t);
        ws.write_back()?;
        if links == 0 {
            self.unlinked(found.ino)?;
        }
        Ok(())
    }

    /// rename(2), with RENAME_NOREPLACE and RENAME_EXCHANGE (as the
    /// kernel's driver serving `-t ext2` has them); RENAME_WHITEOUT and
    /// unknown flags are EINVAL.
    pub fn rename(
        &self,
        ctx: &Ctx,
        old_dir: u32,
        old_name: &[u8],
        new_dir: u32,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
            || (exchange && flags & libc::RENAME_NOREPLACE != 0)
        {
            return Err(FsError::Invalid);
        }
        if old_name.len() > MAX_NAME_LEN {
            return Err(FsError::NameTooLong);
        }
        check_name(new_name)?;
        if old_name == b"." || old_name == b".." {
            return Err(FsError::Invalid);
        }
        let _tree = (old_dir != new_dir).then(|| self.rename_lock.lock());
        let (_g, (src_f, dst_f)) = self.lock_for(&[old_dir, new_dir], || {
            let od = self.dir_inode(old_dir)?;
            let nd = self.dir_inode(new_dir)?;
            let s = self.dir_find(&od, old_name)?.ok_or(FsError::NotFound)?;
            let d = self.dir_find(&nd, new_name)?;
            let mut need = vec![s.ino];
            need.extend(d.map(|d| d.ino));
            Ok((need, (s, d)))
        })?;
        let src_ino = src_f.ino;
        if let Some(d) = &dst_f {
            if d.ino == src_ino {
                return Ok(()); // both names are links to one inode
            }
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(FsError::Exists);
            }
        }
        if exchange {
            let dst_f = dst_f.ok_or(FsError::NotFound)?;
            return self.exchange(old_dir, &src_f, new_dir, &dst_f);
        }
        let mut ws = WorkingSet::new(self);
        let src = *ws.get(src_ino)?;
        let src_is_dir = src.is_dir();
        if let Some(d) = &dst_f {
            let dst = *ws.get(d.ino)?;
            match (src_is_dir, dst.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !self.dir_is_empty(&dst)? => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        if src_is_dir && old_dir != new_dir {
            if self.is_within(new_dir, src_ino)? {
                return Err(FsError::Invalid);
            }
            if dst_f.is_none() && ws.get(new_dir)?.links() >= MAX_LINKS {
                return Err(FsError::TooManyLinks);
            }
        }
        let t = Timestamp::now();
        let ft = src.kind().map(file_type_of).unwrap_or(0);
        let mut dropped: Option<(u32, u16)> = None;
        match &dst_f {
            Some(d) => {
                self.dir_set(ws.get(new_dir)?, d, src_ino, ft)?;
                let dst = ws.get(d.ino)?;
                let links = if src_is_dir {
                    0
                } else {
                    dst.links().saturating_sub(1)
                };
                dst.i_links_count.set(links);
                dst.set_ctime(t);
                dropped = Some((d.ino, links));
                if src_is_dir {
                    // The replaced directory's ".." no longer counts for new_dir.
                    let nd = ws.get(new_dir)?;
                    nd.i_links_count.set(nd.links().saturating_sub(1));
                }
            }
            None => {
                let nd = *ws.get(new_dir)?;
                let Probe::Absent(room) = self.dir_probe(&nd, new_name)? else {
                    return Err(corrupt("rename target appeared under the lock"));
                };
                self.dir_insert(
                    ws.get(new_dir)?,
                    new_name,
                    src_ino,
                    ft,
                    ctx.privileged(),
                    room,
                )?
            }
        }
        // Adding may have split entries of the old directory's blocks: find again.
        let od = *ws.get(old_dir)?;
        let again = self
            .dir_find(&od, old_name)?
            .ok_or_else(|| corrupt("rename source vanished"))?;
        self.dir_remove(ws.get(old_dir)?, &again)?;
        if src_is_dir && old_dir != new_dir {
            let s = *ws.get(src_ino)?;
            let dotdot = self
                .dir_find(&s, b"..")?
                .ok_or_else(|| corrupt("directory without '..'"))?;
            self.dir_set(
                ws.get(src_ino)?,
                &dotdot,
                new_dir,
                crate::format::dirent::FT_DIR,
            )?;
            let o = ws.get(old_dir)?;
            o.i_links_count.set(o.links().saturating_sub(1));
            let n = ws.get(new_dir)?;
            n.i_links_count.set(n.links() + 1);
        }
        for d in [old_dir, new_dir] {
            let x = ws.get(d)?;
            x.set_mtime(t);
            x.set_ctime(t);
        }
        ws.get(src_ino)?.set_ctime(t);
        ws.write_back()?;
        if let Some((ino, 0)) = dropped {
            self.unlinked(ino)?;
        }
        Ok(())
    }

    /// Is directory `dir` the directory `anc` or below it? (No moving a
    /// directory into itself: walk up from `dir`. Cross-directory renames
    /// hold `rename_lock`, so no ".." changes meanwhile.)
    fn is_within(&self, dir: u32, anc: u32) -> Result<bool> {
        let mut cur = dir;
        // A chain longer than there are inodes loops (a corrupt image).
        for _ in 0..=self.geo.inodes_count {
            if cur == ROOT_INO {
                return Ok(false);
            }
            if cur == anc {
                return Ok(true);
            }
            let parent = self.dir_parent(&self.read_inode(cur)?)?;
            if parent == cur {
                return Ok(false);
            }
            cur = parent;
        }
        Err(corrupt(format!(
            "the parents of directory {dir} form a loop"
        )))
    }

    /// renameat2(RENAME_EXCHANGE): the two names swap their inodes in one
    /// change. Directories that change parent get their ".." and their
    /// parents' link counts set accordingly, as the kernel's
    /// ext4_cross_rename does. The caller holds the locks of both
    /// directories and both inodes.
    fn exchange(&self, old_dir: u32, a_f: &Found, new_dir: u32, b_f: &Found) -> Result<()> {
        use crate::format::dirent::FT_DIR;
        let mut ws = WorkingSet::new(self);
        let a = *ws.get(a_f.ino)?;
        let b = *ws.get(b_f.ino)?;
        let moves = old_dir != new_dir;
        // A directory may not end up inside itself.
        if moves && a.is_dir() && self.is_within(new_dir, a_f.ino)? {
            return Err(FsError::Invalid);
        }
        if moves && b.is_dir() && self.is_within(old_dir, b_f.ino)? {
            return Err(FsError::Invalid);
        }
        // A parent gains a subdirectory where a directory comes in for a
        // non-directory.
        if moves && a.is_dir() != b.is_dir() {
            let gains = if a.is_dir() { new_dir } else { old_dir };
            if ws.get(gains)?.links() >= MAX_LINKS {
                return Err(FsError::TooManyLinks);
            }
        }
        let ft = |i: &Inode| i.kind().map(file_type_of).unwrap_or(0);
        self.dir_set(ws.get(old_dir)?, a_f, b_f.ino, ft(&b))?;
        self.dir_set(ws.get(new_dir)?, b_f, a_f.ino, ft(&a))?;
        if moves {
            for (ino, is_dir, from, to) in [
                (a_f.ino, a.is_dir(), old_dir, new_dir),
                (b_f.ino, b.is_dir(), new_dir, old_dir),
            ] {
                if !is_dir {
                    continue;
                }
                let me = *ws.get(ino)?;
                let dotdot = self
                    .dir_find(&me, b"..")?
                    .ok_or_else(|| corrupt("directory without '..'"))?;
                self.dir_set(ws.get(ino)?, &dotdot, to, FT_DIR)?;
                let f = ws.get(from)?;
                f.i_links_count.set(f.links().saturating_sub(1));
                let t = ws.get(to)?;
                t.i_links_count.set(t.links() + 1);
            }
        }
        let t = Timestamp::now();
        for ino in [old_dir, new_dir] {
            let d = ws.get(ino)?;
            d.set_mtime(t);
            d.set_ctime(t);
        }
        for ino in [a_f.ino, b_f.ino] {
            ws.get(ino)?.set_ctime(t);
        }
        ws.write_back()
    }

    pub fn read(&self, ino: u32, offset: u64, size: u32) -> Result<Vec<u8>> {
        let i = {
            let _g = self.locks.read(ino);
            let i = self.live_inode(ino)?;
            if i.is_dir() {
                return Err(FsError::IsDir);
            }
            let fsize = i.size();
            if offset >= fsize {
                return Ok(Vec::new());
            }
            let end = (offset + size as u64).min(fsize);
            let bs = self.geo.block_size as u64;
            // Filled in order, block by block (not zeroed first: only
            // holes are).
            let mut out = Vec::with_capacity((end - offset) as usize);
            let mut pos = offset;
            while pos < end {
                let lblk = pos / bs;
                let in_blk = (pos % bs) as usize;
                let n = ((bs - pos % bs).min(end - pos)) as usize;
                match self.map(&i, lblk)? {
                    // (Through the scratch page when AMA's alternate
                    // requirement recycles pages for reads.)
                    Some(b) => self.cache.read_with(b as u64, |d| {
                        out.extend_from_slice(&d[in_blk..in_blk + n]);
                        Ok(())
                    })?,
                    None => out.resize(out.len() + n, 0),
                }
                pos += n as u64;
            }
            (i, out)
        };
        let (inode, out) = i;
        self.touch_atime(ino, &inode);
        Ok(out)
    }

    /// relatime: update atime when it is older than mtime/ctime or a day old.
    fn touch_atime(&self, ino: u32, i: &Inode) {
        if !self.config.atime || self.config.read_only {
            return;
        }
        let t = Timestamp::now();
        let a = i.atime();
        if a > i.mtime() && a > i.ctime() && t.secs.saturating_sub(a.secs) < 86400 {
            return;
        }
        // atime does not change what the file system means: a Transparent
        // domain, committed on its own and simply skipped after a fault.
        let _ = self.rt.domain(
            recovery_rt::Kind::Transparent,
            || {
                let _g = self.locks.write_all(&[ino]);
                if let Ok(mut i) = self.read_inode(ino) {
                    i.set_atime(t);
                    let _ = self.write_inode(ino, &i);
                }
            },
            |_| None,
        );
    }

    /// Write `data` at `offset`. `kill_privileges`: the kernel's
    /// FUSE_WRITE_KILL_SUIDGID (the writer lacks CAP_FSETID), so the write
    /// also clears set-user-ID and set-group-ID, as write(2) does.
    pub fn write(
        &self,
        ctx: &Ctx,
        ino: u32,
        offset: u64,
        data: &[u8],
        kill_privileges: bool,
    ) -> Result<usize> {
        self.check_writable()?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        if i.is_dir() {
            return Err(FsError::IsDir);
        }
        // As the kernel's generic_write_check_limits: EFBIG at or past the
        // largest file size, else a short write up to it.
        let max = max_file_size(self.geo.block_size);
        if offset >= max {
            return Err(FsError::TooBig);
        }
        let data = &data[..data.len().min((max - offset) as usize)];
        let end = offset + data.len() as u64;
        let bs = self.geo.block_size as u64;
        let mut pos = offset;
        let mut goal = self
            .geo
            .group_first_block((ino - 1) / self.geo.inodes_per_group);
        if offset >= bs {
            if let Some(prev) = self.map(&i, offset / bs - 1)? {
                goal = prev + 1;
            }
        }
        let mut result = Ok(());
        while pos < end {
            let lblk = pos / bs;
            let in_blk = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + n];
            let step = (|| -> Result<()> {
                let (b, is_new) = self.map_alloc(&mut i, lblk, goal, ctx.privileged())?;
                goal = b + 1;
                // Only a block just allocated may skip reading its old
                // contents: a rolled-back overwrite must restore them.
                if is_new {
                    self.cache.get_new_with(b as u64, in_blk, src)?;
                } else {
                    let buf = self.cache.get(b as u64)?;
                    buf.write()[in_blk..in_blk + n].copy_from_slice(src);
                }
                Ok(())
            })();
            if let Err(e) = step {
                result = Err(e);
                break;
            }
            pos += n as u64;
        }
        let written = (pos - offset) as usize;
        if kill_privileges {
            kill_suidgid(&mut i, ctx);
        }
        if written > 0 {
            if pos > i.size() {
                self.note_large_file(pos);
                i.set_size(pos);
            }
            let t = Timestamp::now();
            i.set_mtime(t);
            i.set_ctime(t);
        }
        // Blocks allocated before a failure are recorded in the inode either way.
        self.write_inode(ino, &i)?;
        match result {
            Err(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    pub fn readdir(&self, ino: u32, pos: u64, max: usize) -> Result<Vec<Listed>> {
        let _g = self.locks.read(ino);
        let dir = self.dir_inode(ino)?;
        self.dir_list(&dir, pos, max)
    }

    /// Check `mask` (R=4, W=2, X=1) against the mode bits for the caller.
    pub fn access(&self, ctx: &Ctx, ino: u32, mask: u32) -> Result<()> {
        let i = self.getattr(ino)?;
        if mask & 2 != 0 && self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if ctx.uid == 0 {
            // Root may do anything but execute a file no one can execute.
            if mask & 1 != 0 && i.kind != FileKind::Directory && i.perm & 0o111 == 0 {
                return Err(FsError::Access);
            }
            return Ok(());
        }
        let bits = if ctx.uid == i.uid {
            (i.perm >> 6) & 7
        } else if ctx.gid == i.gid {
            (i.perm >> 3) & 7
        } else {
            i.perm & 7
        } as u32;
        if mask & !bits != 0 {
            return Err(FsError::Access);
        }
        Ok(())
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

    pub fn fsync(&self) -> Result<()> {
        self.sync()
    }
}
