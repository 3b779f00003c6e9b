//! Directories as ext2 writes them: blocks of entries chained by rec_len,
//! scanned in order, or found through an htree index where the directory
//! has one (`htree.rs`). An index we cannot follow reads fine as linear
//! (it hides in entries the linear format sees as empty space); its flag is
//! then cleared at the directory's first change, as the kernel does.

use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::dirent::{self, rec_len_for, DirEntry, FT_DIR};
use crate::format::dirent_index::NameIndex;
use crate::format::inode::{Inode, INDEX_FL};

/// Where a name was found.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub blk: u32,
    pub offset: usize,
    /// The entry before it in the same block (removal merges into it).
    pub prev: Option<usize>,
    pub ino: u32,
    pub file_type: u8,
}

/// An entry with room after its name (or unused) for one more entry.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    blk: u32,
    offset: usize,
    ino: u32,
    rec_len: usize,
    name_len: usize,
}

/// What [`Ext2::dir_probe`] found.
pub enum Probe {
    Exists(Found),
    /// Not there; where it fits, if anywhere.
    Absent(Option<Slot>),
}

/// One entry for readdir: `next` is the position to continue after it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub next: u64,
    pub ino: u32,
    pub file_type: u8,
    pub name: Vec<u8>,
}

impl Ext2 {
    pub(super) fn dir_block(&self, dir: &Inode, lblk: u64) -> Result<u32> {
        self.map(dir, lblk)?
            .ok_or_else(|| corrupt(format!("directory has a hole at block {lblk}")))
    }

    pub(super) fn parse_dir_block<'a>(
        &self,
        data: &'a [u8],
        blk: u32,
    ) -> Result<Vec<DirEntry<'a>>> {
        dirent::parse_block(data, self.geo.inodes_count)
            .map_err(|e| corrupt(format!("directory block {blk}: {e}")))
    }

    /// [`Ext2::parse_dir_block`] without collecting (see [`dirent::visit_block`]).
    pub(super) fn visit_dir_block<'a>(
        &self,
        data: &'a [u8],
        blk: u32,
        f: impl FnMut(DirEntry<'a>),
    ) -> Result<()> {
        dirent::visit_block(data, self.geo.inodes_count, f)
            .map_err(|e| corrupt(format!("directory block {blk}: {e}")))
    }

    pub(super) fn dir_nblocks(&self, dir: &Inode) -> u64 {
        dir.size() / self.geo.block_size as u64
    }

    pub(crate) fn ft(&self, ft: u8) -> u8 {
        if self.has_filetype() {
            ft
        } else {
            0
        }
    }

    /// Scans read through `cache.read_with`, so that with AMA's page
    /// recycling a large directory is scanned through one scratch page.
    pub(crate) fn dir_find(&self, dir: &Inode, name: &[u8]) -> Result<Option<Found>> {
        Ok(self.dir_scan_for(dir, name, None)?.0)
    }

    /// One scan for a name about to be added: the entry when it exists,
    /// else the first place with room for it (the kernel's ext2_add_link
    /// also looks for the name and for room in one pass). Callers probe
    /// before they change anything: finding no room, when AMA's first
    /// estimate took it for granted, restarts the request (`NoMem` on a
    /// stale reserve) on a full estimate.
    pub(crate) fn dir_probe(&self, dir: &Inode, name: &[u8]) -> Result<Probe> {
        let need = rec_len_for(name.len());
        Ok(match self.dir_scan_for(dir, name, Some(need))? {
            (Some(f), _) => Probe::Exists(f),
            (None, None) => {
                ama::assumption_failed("dir_probe").map_err(|_| FsError::NoMem)?;
                Probe::Absent(None)
            }
            (None, room) => Probe::Absent(room),
        })
    }

    /// The entry `name`, and (for `need: Some(rec_len)`) the first slot
    /// before it with room for `need` bytes.
    fn dir_scan_for(
        &self,
        dir: &Inode,
        name: &[u8],
        need: Option<usize>,
    ) -> Result<(Option<Found>, Option<Slot>)> {
        // "." and ".." are in the first block, indexed or not (the kernel
        // looks only there too).
        let dots = name == b"." || name == b"..";
        let blocks = if dots { 1 } else { self.dir_nblocks(dir) };
        if !dots {
            if let Some(dx) = self.dx(dir)? {
                return self.dx_find(dir, &dx, name, need);
            }
        }
        let mut room = None;
        for lblk in 0..blocks {
            let blk = self.dir_block(dir, lblk)?;
            let found = self.scan_dir_block(blk, name, need, &mut room)?;
            if found.is_some() {
                return Ok((found, room));
            }
        }
        Ok((None, room))
    }

    /// One block of a scan for `name`: the entry, if here; and, while
    /// `room` is still empty and `need` is given, the first slot with room
    /// for `need` bytes before it.
    pub(super) fn scan_dir_block(
        &self,
        blk: u32,
        name: &[u8],
        need: Option<usize>,
        room: &mut Option<Slot>,
    ) -> Result<Option<Found>> {
        self.cache.read_derived_with(blk as u64, |d, derived| {
            // (No more room wanted once some is found.)
            let need = if room.is_some() { None } else { need };
            // Through the block's name index, made at its first search and
            // kept with the cached block until the block changes; else (a
            // block read past the cache, a damaged one, no memory for an
            // index) a scan, which ends at the name as the kernel's does.
            let index = derived.and_then(|slot| self.name_index(d, slot));
            let (hit, r) = match index {
                Some(index) => index.search(d, name, need),
                None => dirent::search_block(d, self.geo.inodes_count, name, need)
                    .map_err(|e| corrupt(format!("directory block {blk}: {e}")))?,
            };
            if let Some(r) = r {
                *room = Some(Slot {
                    blk,
                    offset: r.offset,
                    ino: r.inode,
                    rec_len: r.rec_len,
                    name_len: r.name_len,
                });
            }
            Ok(hit.map(|h| Found {
                blk,
                offset: h.offset,
                prev: h.prev,
                ino: h.inode,
                file_type: h.file_type,
            }))
        })
    }

    /// The name index of directory block `d` kept in its cached buffer's
    /// derived `slot`, made now if there is none; `None` for a damaged
    /// block or when no memory for one can be had.
    pub(crate) fn name_index<'a>(
        &self,
        d: &[u8],
        slot: &'a mut Option<crate::cache::Derived>,
    ) -> Option<&'a NameIndex> {
        if slot.is_none() {
            *slot = NameIndex::build(d, self.geo.inodes_count).map(|i| Box::new(i) as _);
        }
        slot.as_ref()?.downcast_ref::<NameIndex>()
    }

    /// Add `name -> ino` at `room` (found by [`Ext2::dir_probe`] under the
    /// directory's lock, so still valid), or, when there is none, by
    /// splitting its leaf (indexed), indexing a full single-block directory
    /// (on images with `dir_index`, as the kernel does), or in a new block.
    /// The caller writes `dir` back (size and flags may change).
    pub(crate) fn dir_insert(
        &self,
        dir: &mut Inode,
        name: &[u8],
        ino: u32,
        ft: u8,
        privileged: bool,
        room: Option<Slot>,
    ) -> Result<()> {
        let dx = self.dx_or_unflag(dir)?;
        if let Some(s) = room {
            return self.write_in_slot(&s, name, ino, self.ft(ft));
        }
        if let Some(dx) = dx {
            return self.dx_add(dir, &dx, name, ino, ft, privileged);
        }
        if self.geo.dir_index
            && self.dir_nblocks(dir) == 1
            && self.dx_make_indexed(dir, name, ino, ft, privileged)?
        {
            return Ok(());
        }
        // No room: append a block.
        let (_, blk) = self.dir_append_block(dir, privileged)?;
        let bs = self.geo.block_size as usize;
        let b = self.cache.get(blk as u64)?;
        dirent::write_entry(&mut b.write(), 0, ino, bs, self.ft(ft), name);
        Ok(())
    }

    /// The directory's index, or (none we can follow) its index flag
    /// cleared: the change about to be made would leave a stale index.
    fn dx_or_unflag(&self, dir: &mut Inode) -> Result<Option<super::htree::Dx>> {
        let dx = self.dx(dir)?;
        if dx.is_none() {
            dir.i_flags.set(dir.i_flags.get() & !INDEX_FL);
        }
        Ok(dx)
    }

    /// Write an entry into a slot found with room for it.
    pub(super) fn write_in_slot(&self, s: &Slot, name: &[u8], ino: u32, ft: u8) -> Result<()> {
        let b = self.cache.get(s.blk as u64)?;
        // Only the entries' bytes change: the undo log keeps those, not
        // a copy of the whole block.
        // The slot's entry, and the block's name index with it, change
        // within the slot's span.
        let end = |at: usize| at + dirent::DIRENT_HEADER + name.len();
        let span = (s.offset, s.offset + s.rec_len);
        if s.ino == 0 {
            b.write_range_derived(s.offset..end(s.offset), |d, index| {
                dirent::write_entry(d, s.offset, ino, s.rec_len, ft, name);
                self.follow(d, index, span)
            });
        } else {
            let used = rec_len_for(s.name_len);
            b.write_range_derived(s.offset + 4..end(s.offset + used), |d, index| {
                dirent::set_rec_len(d, s.offset, used);
                dirent::write_entry(d, s.offset + used, ino, s.rec_len - used, ft, name);
                self.follow(d, index, span)
            });
        }
        Ok(())
    }

    /// A block's name index (see [`Ext2::name_index`]) brought up to date
    /// with a change of its entries within `span`; `None` if there was
    /// none or it cannot follow.
    fn follow(
        &self,
        d: &[u8],
        index: Option<crate::cache::Derived>,
        (start, end): (usize, usize),
    ) -> Option<crate::cache::Derived> {
        let mut index = index?;
        index
            .downcast_mut::<NameIndex>()?
            .reparse(d, self.geo.inodes_count, start, end)
            .then_some(index)
    }

    /// A new zeroed block at the end of the directory: (logical, physical).
    pub(super) fn dir_append_block(&self, dir: &mut Inode, privileged: bool) -> Result<(u32, u32)> {
        let nblocks = self.dir_nblocks(dir);
        let goal = if nblocks > 0 {
            self.dir_block(dir, nblocks - 1)? + 1
        } else {
            0
        };
        let (blk, new) = self.map_alloc(dir, nblocks, goal, privileged)?;
        self.cache.get_cleared(blk as u64, new)?;
        dir.set_size((nblocks + 1) * self.geo.block_size as u64);
        Ok((nblocks as u32, blk))
    }

    /// Remove a found entry: merge it into the previous entry of its block,
    /// or mark it unused when it is the first.
    pub(crate) fn dir_remove(&self, dir: &mut Inode, f: &Found) -> Result<()> {
        self.dx_or_unflag(dir)?;
        let b = self.cache.get(f.blk as u64)?;
        // (Ranged writes: the undo log keeps the entry's bytes only.)
        // (The block's name index follows the entries that change.)
        match f.prev {
            Some(p) => b.write_range_derived(p + 4..p + 6, |d, index| {
                let rec_len = u16::from_le_bytes([d[f.offset + 4], d[f.offset + 5]]) as usize;
                let prev_len = u16::from_le_bytes([d[p + 4], d[p + 5]]) as usize;
                dirent::set_rec_len(d, p, prev_len + rec_len);
                self.follow(d, index, (p, f.offset + rec_len))
            }),
            None => {
                b.write_range_derived(f.offset..f.offset + dirent::DIRENT_HEADER, |d, index| {
                    let rec_len = u16::from_le_bytes([d[f.offset + 4], d[f.offset + 5]]) as usize;
                    dirent::set_inode(d, f.offset, 0, 0);
                    self.follow(d, index, (f.offset, f.offset + rec_len))
                })
            }
        }
        Ok(())
    }

    /// Point a found entry at another inode (rename over an existing name).
    pub(crate) fn dir_set(&self, dir: &mut Inode, f: &Found, ino: u32, ft: u8) -> Result<()> {
        self.dx_or_unflag(dir)?;
        let b = self.cache.get(f.blk as u64)?;
        dirent::set_inode(
            &mut b.write_range(f.offset..f.offset + 8),
            f.offset,
            ino,
            self.ft(ft),
        );
        Ok(())
    }

    /// True when only "." and ".." are left.
    pub(crate) fn dir_is_empty(&self, dir: &Inode) -> Result<bool> {
        for lblk in 0..self.dir_nblocks(dir) {
            let blk = self.dir_block(dir, lblk)?;
            let empty = self.cache.read_with(blk as u64, |d| {
                Ok(self
                    .parse_dir_block(d, blk)?
                    .iter()
                    .all(|e| e.inode == 0 || e.name == b"." || e.name == b".."))
            })?;
            if !empty {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Entries from position `pos` on, at most `max` of them: a byte
    /// position in a linear directory, a hash cookie in an indexed one.
    pub(crate) fn dir_list(&self, dir: &Inode, pos: u64, max: usize) -> Result<Vec<Listed>> {
        if let Some(dx) = self.dx(dir)? {
            return self.dx_list(dir, &dx, pos, max);
        }
        let bs = self.geo.block_size as u64;
        let mut out = Vec::new();
        let mut lblk = pos / bs;
        while lblk < self.dir_nblocks(dir) && out.len() < max {
            let blk = self.dir_block(dir, lblk)?;
            self.cache.read_with(blk as u64, |d| {
                for e in self.parse_dir_block(d, blk)? {
                    let here = lblk * bs + e.offset as u64;
                    if here < pos || e.inode == 0 {
                        continue;
                    }
                    out.push(Listed {
                        next: here + e.rec_len as u64,
                        ino: e.inode,
                        file_type: e.file_type,
                        name: e.name.to_vec(),
                    });
                    if out.len() >= max {
                        break;
                    }
                }
                Ok(())
            })?;
            lblk += 1;
        }
        Ok(out)
    }

    /// The first block of a new directory: "." and "..".
    pub(crate) fn dir_init(
        &self,
        dir: &mut Inode,
        ino: u32,
        parent: u32,
        privileged: bool,
    ) -> Result<()> {
        let goal = self
            .geo
            .group_first_block((ino - 1) / self.geo.inodes_per_group);
        let (blk, new) = self.map_alloc(dir, 0, goal, privileged)?;
        let b = self.cache.get_cleared(blk as u64, new)?;
        let bs = self.geo.block_size as usize;
        let ft = self.ft(FT_DIR);
        let mut d = b.write();
        dirent::write_entry(&mut d, 0, ino, 12, ft, b".");
        dirent::write_entry(&mut d, 12, parent, bs - 12, ft, b"..");
        dir.set_size(bs as u64);
        Ok(())
    }

    /// The inode ".." points at.
    pub(crate) fn dir_parent(&self, dir: &Inode) -> Result<u32> {
        match self.dir_find(dir, b"..")? {
            Some(f) => Ok(f.ino),
            None => Err(corrupt("directory without '..'")),
        }
    }
}

impl Ext2 {
    pub(crate) fn has_filetype(&self) -> bool {
        self.geo.filetype
    }

    pub fn readdir(&self, ino: u32, pos: u64, max: usize) -> Result<Vec<Listed>> {
        let _g = self.locks.read(ino);
        let dir = self.dir_inode(ino)?;
        self.dir_list(&dir, pos, max)
    }
}
