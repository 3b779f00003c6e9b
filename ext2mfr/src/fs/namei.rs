//! Names: lookup, create (files, device nodes, directories, symlinks),
//! link, unlink, rmdir and rename, as fs/ext2's namei.c. Each takes the
//! locks it needs (see the lock order in `mod.rs`), works on the inodes it
//! reads into a small working set, and writes them back at its end.

use super::acl::Inherited;
use super::attr::{Attr, Ctx};
use super::dir::{Found, Probe};
use super::{flags, now, Ext2};
use crate::error::{corrupt, FsError, Result};
use crate::format::dirent::{file_type_of, MAX_NAME_LEN};
use crate::format::inode::{FileKind, Inode, Timestamp, MAX_LINKS, ROOT_INO, S_IFMT, S_ISGID};
use crate::format::le::{Le16, Le32};

/// Inodes read for one operation, written back together at its end, so an
/// operation on one directory as both source and target sees one copy.
/// (At most four, for a rename: kept inline and searched in order, where a
/// hash map would cost a heap allocation per request.)
struct WorkingSet<'a> {
    fs: &'a Ext2,
    inodes: smallvec::SmallVec<[(u32, Inode); 2]>,
}

impl<'a> WorkingSet<'a> {
    fn new(fs: &'a Ext2) -> Self {
        WorkingSet {
            fs,
            inodes: smallvec::SmallVec::new(),
        }
    }
    fn get(&mut self, ino: u32) -> Result<&mut Inode> {
        let at = match self.inodes.iter().position(|(i, _)| *i == ino) {
            Some(at) => at,
            None => {
                let i = self.fs.read_inode(ino)?;
                self.inodes.push((ino, i));
                self.inodes.len() - 1
            }
        };
        Ok(&mut self.inodes[at].1)
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

impl Ext2 {
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

    /// `name` in directory `parent`. The kernel asks for "." and ".." only
    /// when it decodes a file handle (`open_by_handle_at`, an NFS export)
    /// of an inode it no longer caches: "." of any inode is that inode,
    /// ".." of a directory its parent. An inode number that names no inode
    /// in use (free, deleted and not open, reserved, out of range) is
    /// ENOENT, which the kernel turns into ESTALE; a reused number answers
    /// the new inode, whose generation the kernel finds different (ESTALE).
    pub fn lookup(&self, parent: u32, name: &[u8]) -> Result<Attr> {
        if name.len() > MAX_NAME_LEN {
            return Err(FsError::NameTooLong);
        }
        // A handle carries any number: not an inode of ours is not a
        // corrupt image (an EIO and a logged error), just no such inode.
        if parent == 0 || parent > self.geo.inodes_count {
            return Err(FsError::NotFound);
        }
        let _g = self.locks.read(parent);
        if name == b"." {
            // Reserved inodes (bad blocks, resize, journal...) are no
            // files, as the kernel's ext4_nfs_get_inode refuses them.
            if parent < self.geo.first_ino && parent != ROOT_INO {
                return Err(FsError::NotFound);
            }
            // Not even an unlinked inode the kernel still holds open: the
            // kernel asks for "." only of inodes it does not hold (an
            // unlinked one it just let go of, its FORGET maybe still on
            // the way here, is gone for it, as for ext4's handles).
            let i = self.live_inode(parent)?;
            if i.links() == 0 {
                return Err(FsError::NotFound);
            }
            return Ok(Attr::from_inode(parent, &i));
        }
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

    /// Create an inode of `kind` named `name` in `parent`. `fill` sets up
    /// its contents (directory block, symlink target) before it is linked.
    fn create_node(
        &self,
        ctx: &Ctx,
        parent: u32,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        umask: u32,
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
        flags::check_dir_add(&dir)?;
        let is_dir = kind == FileKind::Directory;
        if is_dir && dir.links() >= MAX_LINKS {
            return Err(FsError::TooManyLinks);
        }
        let ino = self.alloc_inode(parent, is_dir)?;
        // (No lock for the new inode: no name leads to it before it is
        // linked below, under the parent's lock, and the kernel has no
        // reference to a free inode number.)
        let t = Timestamp::now();
        // The directory's default ACL, if any, masks the mode instead of
        // the umask (symlinks take neither: their mode is always 0777).
        let (mut perm, acls) = if kind == FileKind::Symlink {
            (mode as u16 & 0o7777, Inherited::default())
        } else {
            self.inherit_acl(
                parent,
                &dir,
                mode as u16 & 0o7777,
                umask as u16 & 0o777,
                is_dir,
            )?
        };
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
            i_flags: Le32::new(flags::inherited(&dir, kind.mode_bits())),
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
            if !acls.is_empty() {
                self.store_inherited(ctx, ino, &mut i, &acls)?;
                self.write_inode(ino, &i)?;
            }
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
                let _ = self.xattr_release(&mut i);
                i.i_dtime.set(now());
                let _ = self.write_new_inode(ino, &i);
            }
            self.free_inode_bit(ino, is_dir);
            return Err(e);
        }
        ws.write_back()?;
        Ok(Attr::from_inode(ino, &i))
    }

    /// `umask`: applied here, where a default ACL does not take its place.
    pub fn mknod(
        &self,
        ctx: &Ctx,
        parent: u32,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Attr> {
        let kind = FileKind::from_mode(mode as u16).ok_or(FsError::Invalid)?;
        if kind == FileKind::Directory || kind == FileKind::Symlink {
            return Err(FsError::Invalid);
        }
        self.create_node(ctx, parent, name, kind, mode, umask, |_, _, i| {
            if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
                let dev = rdev as libc::dev_t;
                i.set_device(libc::major(dev), libc::minor(dev));
            }
            Ok(())
        })
    }

    pub fn mkdir(
        &self,
        ctx: &Ctx,
        parent: u32,
        name: &[u8],
        mode: u32,
        umask: u32,
    ) -> Result<Attr> {
        let privileged = ctx.privileged();
        self.create_node(
            ctx,
            parent,
            name,
            FileKind::Directory,
            mode,
            umask,
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
        self.create_node(
            ctx,
            parent,
            name,
            FileKind::Symlink,
            0o777,
            0,
            |fs, ino, i| fs.write_symlink_target(ino, i, target, privileged),
        )
    }

    pub fn link(&self, ctx: &Ctx, ino: u32, parent: u32, name: &[u8]) -> Result<Attr> {
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
        let Probe::Absent(room) = self.dir_probe(&dir, name)? else {
            return Err(FsError::Exists);
        };
        // (vfs_link: the directory's permission, then the file's flags,
        // then its link count.)
        flags::check_dir_add(&dir)?;
        flags::refuse_if_pinned(&src)?;
        if src.links() >= MAX_LINKS {
            return Err(FsError::TooManyLinks);
        }
        let t = Timestamp::now();
        let ft = src.kind().map(file_type_of).unwrap_or(0);
        let privileged = ctx.privileged();
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

    pub fn unlink(&self, parent: u32, name: &[u8]) -> Result<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: u32, name: &[u8]) -> Result<()> {
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
        // may_delete: the directory's flags and the victim's come before
        // its type and emptiness.
        flags::check_dir_remove(ws.get(parent)?)?;
        flags::refuse_if_pinned(&child)?;
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
        if (want_dir || child.links() <= 1) && !self.kernel_holds(found.ino) {
            // It would be freed now, which AMA's first estimate took not
            // to happen (see `requirements::remove`): restart on a full one.
            ama::assumption_failed("remove").map_err(|_| FsError::NoMem)?;
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
        if let Some(d) = &dst_f {
            if d.ino == src_f.ino {
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
        let from = (old_dir, old_name, src_f.ino);
        self.move_name(ctx, from, new_dir, new_name, dst_f.as_ref())
    }

    /// rename(2) proper: `from` (directory, name, inode) gets the name
    /// `new_name` in `new_dir`, replacing `dst` (found there) if any. The
    /// caller holds the locks of both directories and both inodes.
    fn move_name(
        &self,
        ctx: &Ctx,
        (old_dir, old_name, src_ino): (u32, &[u8], u32),
        new_dir: u32,
        new_name: &[u8],
        dst: Option<&Found>,
    ) -> Result<()> {
        let mut ws = WorkingSet::new(self);
        let src = *ws.get(src_ino)?;
        // The flags first (may_delete, may_create): the old name goes,
        // a new one comes or replaces a target, which goes.
        flags::check_dir_remove(ws.get(old_dir)?)?;
        flags::refuse_if_pinned(&src)?;
        match dst {
            None => flags::check_dir_add(ws.get(new_dir)?)?,
            Some(d) => {
                flags::check_dir_remove(ws.get(new_dir)?)?;
                flags::refuse_if_pinned(ws.get(d.ino)?)?;
            }
        }
        self.check_move(&mut ws, &src, src_ino, old_dir, new_dir, dst)?;
        let t = Timestamp::now();
        let ft = src.kind().map(file_type_of).unwrap_or(0);
        let mut dropped: Option<(u32, u16)> = None;
        match dst {
            Some(d) => {
                self.dir_set(ws.get(new_dir)?, d, src_ino, ft)?;
                let target = ws.get(d.ino)?;
                let links = if src.is_dir() {
                    0
                } else {
                    target.links().saturating_sub(1)
                };
                target.i_links_count.set(links);
                target.set_ctime(t);
                dropped = Some((d.ino, links));
                if src.is_dir() {
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
                let privileged = ctx.privileged();
                self.dir_insert(ws.get(new_dir)?, new_name, src_ino, ft, privileged, room)?
            }
        }
        // Adding may have split entries of the old directory's blocks: find again.
        let od = *ws.get(old_dir)?;
        let again = self
            .dir_find(&od, old_name)?
            .ok_or_else(|| corrupt("rename source vanished"))?;
        self.dir_remove(ws.get(old_dir)?, &again)?;
        if src.is_dir() && old_dir != new_dir {
            self.reparent(&mut ws, src_ino, old_dir, new_dir)?;
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

    /// What rename(2) refuses before it changes anything: a directory over
    /// a non-directory and the reverse, over a non-empty directory, into
    /// itself, or into a parent with the most links.
    fn check_move(
        &self,
        ws: &mut WorkingSet,
        src: &Inode,
        src_ino: u32,
        old_dir: u32,
        new_dir: u32,
        dst: Option<&Found>,
    ) -> Result<()> {
        if let Some(d) = dst {
            let target = *ws.get(d.ino)?;
            match (src.is_dir(), target.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !self.dir_is_empty(&target)? => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        if src.is_dir() && old_dir != new_dir {
            if self.is_within(new_dir, src_ino)? {
                return Err(FsError::Invalid);
            }
            if dst.is_none() && ws.get(new_dir)?.links() >= MAX_LINKS {
                return Err(FsError::TooManyLinks);
            }
        }
        Ok(())
    }

    /// Directory `ino` moved from parent `from` to `to`: its ".." and the
    /// two parents' link counts follow.
    fn reparent(&self, ws: &mut WorkingSet, ino: u32, from: u32, to: u32) -> Result<()> {
        let me = *ws.get(ino)?;
        let dotdot = self
            .dir_find(&me, b"..")?
            .ok_or_else(|| corrupt("directory without '..'"))?;
        self.dir_set(ws.get(ino)?, &dotdot, to, crate::format::dirent::FT_DIR)?;
        let f = ws.get(from)?;
        f.i_links_count.set(f.links().saturating_sub(1));
        let t = ws.get(to)?;
        t.i_links_count.set(t.links() + 1);
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
        let mut ws = WorkingSet::new(self);
        let a = *ws.get(a_f.ino)?;
        let b = *ws.get(b_f.ino)?;
        // Each name goes from its directory and the other comes in.
        for (dir, i) in [(old_dir, &a), (new_dir, &b)] {
            flags::check_dir_remove(ws.get(dir)?)?;
            flags::refuse_if_pinned(i)?;
        }
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
            if a.is_dir() {
                self.reparent(&mut ws, a_f.ino, old_dir, new_dir)?;
            }
            if b.is_dir() {
                self.reparent(&mut ws, b_f.ino, new_dir, old_dir)?;
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
}
