//! Indexed directories (htree), as the kernel's ext4 driver keeps them on
//! ext2 images with `dir_index` (fs/ext4/namei.c): a name is found through
//! the index in the root, at most one index node and its leaf (and the
//! leaves after it that continue the same hash); a new name goes into its
//! leaf, which is split by hash when full (the index node split, or a level
//! added, when that is full); a single-block directory that fills up
//! becomes indexed. Readdir walks the leaves in hash order, with the hash
//! as its cookie, so that splits during a listing neither repeat nor skip
//! a name. A directory whose index is not one we can follow is read as
//! linear, and the index flag is cleared at its first change (what the
//! kernel does when its probe fails).

use super::dir::{Found, Listed, Slot};
use super::Ext2;
use crate::error::{corrupt, FsError, Result};
use crate::format::dirent::{self, rec_len_for, DirEntry};
use crate::format::htree::{self, Hasher, NameHash, RootInfo};
use crate::format::inode::{Inode, INDEX_FL};
use crate::format::superblock::Superblock;

/// One level of a path through the index: the block, the entry followed, and the entries' count and limit.
#[derive(Clone, Copy, Debug)]
struct Frame {
    blk: u32,
    root: bool,
    at: usize,
    count: usize,
    limit: usize,
}

/// The way from the root to a leaf.
struct DxPath {
    frames: Vec<Frame>,
}

impl DxPath {
    fn leaf_frame(&self) -> &Frame {
        self.frames.last().expect("a path has a root")
    }
}

/// How an indexed directory is hashed, from its root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dx {
    hasher: Hasher,
    info: RootInfo,
}

/// Readdir cookies of indexed directories: 0 starts, 1 follows ".", 2
/// follows ".."; an entry's is its hash key plus this.
const KEY_BASE: u64 = 3;

/// A name's position in hash order (`major` has its low bit clear).
fn key(h: NameHash) -> u64 {
    ((h.major >> 1) as u64) << 32 | h.minor as u64
}

impl Ext2 {
    /// The directory's index, when it has one we can follow: the image
    /// has `dir_index`, the inode the index flag, and its root checks out.
    pub(crate) fn dx(&self, dir: &Inode) -> Result<Option<Dx>> {
        if !self.maybe_indexed(dir) {
            return Ok(None);
        }
        let root = self.dir_block(dir, 0)?;
        let info = self
            .cache
            .read_with(root as u64, |d| Ok(htree::root_info(d)))?;
        match info {
            Ok(info) => Ok(Some(Dx {
                hasher: Hasher::new(info.hash_version, self.geo.hash_seed, self.geo.hash_flags),
                info,
            })),
            Err(why) => {
                log::warn!("directory index not followed ({why}); read as linear");
                Ok(None)
            }
        }
    }

    /// Whether `dir` says it is indexed (the root is not looked at: for
    /// estimates, which take an index they might not follow as one).
    pub(crate) fn maybe_indexed(&self, dir: &Inode) -> bool {
        self.geo.dir_index
            && dir.i_flags.get() & INDEX_FL != 0
            && dir.size() >= 2 * self.geo.block_size as u64
    }

    /// From the root down to the leaf whose range holds `hash`.
    fn dx_probe(&self, dir: &Inode, dx: &Dx, hash: u32) -> Result<(DxPath, u32)> {
        let mut frames = Vec::with_capacity(2);
        let mut lblk = 0u32;
        let mut root = true;
        let nblocks = self.dir_nblocks(dir);
        for _ in 0..=dx.info.indirect_levels {
            let blk = self.dir_block(dir, lblk as u64)?;
            let (frame, next) = self.cache.read_with(blk as u64, |d| {
                let (limit, count) = htree::checked_entries(d, root)
                    .map_err(|m| corrupt(format!("directory index block {lblk}: {m}")))?;
                let at = htree::entries_at(root);
                let k = htree::find(d, at, count, hash);
                Ok((
                    Frame {
                        blk,
                        root,
                        at: k,
                        count,
                        limit,
                    },
                    htree::entry(d, at, k).1,
                ))
            })?;
            if next == 0 || next as u64 >= nblocks {
                return Err(corrupt(format!("directory index points at block {next}")));
            }
            frames.push(frame);
            lblk = next;
            root = false;
        }
        Ok((DxPath { frames }, lblk))
    }

    /// The leaf after the one `path` leads to, and its starting hash
    /// (low bit: it continues the previous leaf's last hash), moving
    /// `path` along (the kernel's ext4_htree_next_block).
    fn dx_next_leaf(&self, dir: &Inode, path: &mut DxPath) -> Result<Option<(u32, u32)>> {
        // The deepest level that has an entry after the one followed.
        let Some(level) = path.frames.iter().rposition(|f| f.at + 1 < f.count) else {
            return Ok(None);
        };
        path.frames[level].at += 1;
        let mut out = (0, 0);
        for l in level..path.frames.len() {
            let f = path.frames[l];
            let (hash, next) = self.cache.read_with(f.blk as u64, |d| {
                Ok(htree::entry(d, htree::entries_at(f.root), f.at))
            })?;
            if l == level {
                out.0 = hash;
            }
            if l + 1 < path.frames.len() {
                let blk = self.dir_block(dir, next as u64)?;
                let (limit, count) = self.cache.read_with(blk as u64, |d| {
                    htree::checked_entries(d, false)
                        .map_err(|m| corrupt(format!("directory index block {next}: {m}")))
                })?;
                path.frames[l + 1] = Frame {
                    blk,
                    root: false,
                    at: 0,
                    count,
                    limit,
                };
            } else {
                out.1 = next;
            }
        }
        Ok(Some(out))
    }

    /// Look `name` up through the index: the entry, and (for `need`) room
    /// for it in the leaf it belongs in.
    pub(crate) fn dx_find(
        &self,
        dir: &Inode,
        dx: &Dx,
        name: &[u8],
        need: Option<usize>,
    ) -> Result<(Option<Found>, Option<Slot>)> {
        let h = dx.hasher.hash(name);
        let (mut path, mut leaf) = self.dx_probe(dir, dx, h.major)?;
        let mut room = None;
        // Room only in the leaf the name belongs in (the first).
        let mut need = need;
        loop {
            let blk = self.dir_block(dir, leaf as u64)?;
            let found = self.scan_dir_block(blk, name, need, &mut room)?;
            if found.is_some() {
                return Ok((found, room));
            }
            need = None;
            // A name of this hash may continue into the next leaf.
            match self.dx_next_leaf(dir, &mut path)? {
                Some((start, next)) if start & !1 == h.major => leaf = next,
                _ => return Ok((None, room)),
            }
        }
    }

    /// Add `name -> ino` to an indexed directory whose leaf for it is full
    /// (ext4_dx_add_entry): split the index first when its node is full,
    /// then the leaf.
    pub(crate) fn dx_add(
        &self,
        dir: &mut Inode,
        dx: &Dx,
        name: &[u8],
        ino: u32,
        ft: u8,
        privileged: bool,
    ) -> Result<()> {
        let h = dx.hasher.hash(name);
        let mut dx = *dx;
        loop {
            let (path, leaf) = self.dx_probe(dir, &dx, h.major)?;
            let leaf_blk = self.dir_block(dir, leaf as u64)?;
            if self.insert_in_block(leaf_blk, name, ino, ft)? {
                return Ok(());
            }
            let frame = *path.leaf_frame();
            if frame.count < frame.limit {
                return self.split_leaf(dir, &dx, &frame, leaf_blk, h, name, ino, ft, privileged);
            }
            // The index block that would take the new leaf is full.
            if path.frames.len() == 2 && path.frames[0].count < path.frames[0].limit {
                self.split_index_node(dir, &path, privileged)?;
            } else if path.frames.len() == 1 && dx.info.indirect_levels < htree::MAX_INDIRECT_LEVELS
            {
                self.add_index_level(dir, &path, privileged)?;
                dx.info.indirect_levels += 1;
            } else {
                // The kernel's "Directory index full!" (no largedir here).
                return Err(FsError::NoSpace);
            }
        }
    }

    /// Put the entry in the first place of block `blk` with room for it;
    /// false when there is none.
    fn insert_in_block(&self, blk: u32, name: &[u8], ino: u32, ft: u8) -> Result<bool> {
        // The first room in the block (the name is not there: the caller
        // probed for it under the directory's lock), through its index.
        let mut slot = None;
        self.scan_dir_block(blk, name, Some(rec_len_for(name.len())), &mut slot)?;
        match slot {
            Some(s) => {
                self.write_in_slot(&s, name, ino, self.ft(ft))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// do_split: move the upper half (by hash) of a full leaf to a new
    /// block, index it after the old one, and add the entry to the half
    /// its hash belongs in.
    #[allow(clippy::too_many_arguments)]
    fn split_leaf(
        &self,
        dir: &mut Inode,
        dx: &Dx,
        frame: &Frame,
        leaf_blk: u32,
        h: NameHash,
        name: &[u8],
        ino: u32,
        ft: u8,
        privileged: bool,
    ) -> Result<()> {
        let (new_lblk, new_blk) = self.dir_append_block(dir, privileged)?;
        let bs = self.geo.block_size as usize;
        let old = self.cache.get(leaf_blk as u64)?;
        let new = self.cache.get(new_blk as u64)?;
        let hash2 = {
            let mut d1 = old.write();
            let mut d2 = new.write();
            split_entries(&mut d1, &mut d2, &dx.hasher, bs)
                .map_err(|m| corrupt(format!("directory block {leaf_blk}: {m}")))?
        };
        {
            let b = self.cache.get(frame.blk as u64)?;
            htree::insert_after(
                &mut b.write(),
                htree::entries_at(frame.root),
                frame.at,
                hash2,
                new_lblk,
            );
        }
        let target = if h.major >= hash2 & !1 {
            new_blk
        } else {
            leaf_blk
        };
        if !self.insert_in_block(target, name, ino, ft)? {
            return Err(corrupt("a split leaf has no room for one entry"));
        }
        Ok(())
    }

    /// A full index node split in two, the upper half indexed in the root.
    fn split_index_node(&self, dir: &mut Inode, path: &DxPath, privileged: bool) -> Result<()> {
        let node = path.frames[1];
        let (new_lblk, new_blk) = self.dir_append_block(dir, privileged)?;
        let b = self.cache.get(node.blk as u64)?;
        let at = htree::entries_at(false);
        let keep = node.count / 2;
        let moved: Vec<(u32, u32)> = {
            let d = b.read();
            (keep..node.count)
                .map(|k| htree::entry(&d, at, k))
                .collect()
        };
        htree::set_count(&mut b.write(), at, keep);
        htree::init_node(&mut self.cache.get(new_blk as u64)?.write(), &moved);
        let root = path.frames[0];
        let rb = self.cache.get(root.blk as u64)?;
        htree::insert_after(
            &mut rb.write(),
            htree::entries_at(true),
            root.at,
            moved[0].0,
            new_lblk,
        );
        Ok(())
    }

    /// A full root's entries moved into a new node under it.
    fn add_index_level(&self, dir: &mut Inode, path: &DxPath, privileged: bool) -> Result<()> {
        let root = path.frames[0];
        let (new_lblk, new_blk) = self.dir_append_block(dir, privileged)?;
        let rb = self.cache.get(root.blk as u64)?;
        let at = htree::entries_at(true);
        let entries: Vec<(u32, u32)> = {
            let d = rb.read();
            (0..root.count).map(|k| htree::entry(&d, at, k)).collect()
        };
        htree::init_node(&mut self.cache.get(new_blk as u64)?.write(), &entries);
        let mut d = rb.write();
        htree::set_count(&mut d, at, 1);
        htree::set_entry(&mut d, at, 0, 0, new_lblk);
        htree::set_indirect_levels(&mut d, 1);
        Ok(())
    }

    /// make_indexed_dir: a full single-block directory becomes indexed:
    /// its entries move to a new leaf (block 1), block 0 becomes the root,
    /// the leaf is split, and the entry added.
    pub(crate) fn dx_make_indexed(
        &self,
        dir: &mut Inode,
        name: &[u8],
        ino: u32,
        ft: u8,
        privileged: bool,
    ) -> Result<bool> {
        let bs = self.geo.block_size as usize;
        let root_blk = self.dir_block(dir, 0)?;
        let root = self.cache.get(root_blk as u64)?;
        {
            // "." of 12 bytes then "..": the layout the root needs.
            let d = root.read();
            if dirent::parse_block(&d, self.geo.inodes_count)
                .map(|es| {
                    es.len() < 2 || es[0].rec_len != 12 || es[1].name != b".." || es[0].name != b"."
                })
                .unwrap_or(true)
            {
                return Ok(false);
            }
        }
        let (leaf_lblk, leaf_blk) = self.dir_append_block(dir, privileged)?;
        let hash_version = self.geo.def_hash_version;
        {
            let mut d = root.write();
            let leaf = self.cache.get(leaf_blk as u64)?;
            let mut l = leaf.write();
            let dotdot_len = u16::from_le_bytes([d[16], d[17]]) as usize;
            let start = 12 + dotdot_len;
            let len = bs - start;
            l[..len].copy_from_slice(&d[start..]);
            l[len..].fill(0);
            // The last entry spans to the end of the leaf.
            let mut last = 0;
            dirent::visit_block(&l[..len], self.geo.inodes_count, |e| last = e.offset)
                .map_err(|e| corrupt(format!("directory block {root_blk}: {e}")))?;
            let last_len = u16::from_le_bytes([l[last + 4], l[last + 5]]) as usize;
            dirent::set_rec_len(&mut l, last, last_len + (bs - len));
            htree::init_root(&mut d, hash_version, leaf_lblk);
        }
        dir.i_flags.set(dir.i_flags.get() | INDEX_FL);
        let dx = Dx {
            hasher: Hasher::new(hash_version, self.geo.hash_seed, self.geo.hash_flags),
            info: RootInfo {
                hash_version,
                indirect_levels: 0,
            },
        };
        let h = dx.hasher.hash(name);
        let frame = Frame {
            blk: root_blk,
            root: true,
            at: 0,
            count: 1,
            limit: htree::root_limit(bs),
        };
        self.split_leaf(dir, &dx, &frame, leaf_blk, h, name, ino, ft, privileged)?;
        Ok(true)
    }

    /// Entries in hash order after cookie `pos` (see [`KEY_BASE`]), at
    /// most `max` (more when names share a hash key, which one cookie
    /// cannot tell apart).
    pub(crate) fn dx_list(
        &self,
        dir: &Inode,
        dx: &Dx,
        pos: u64,
        max: usize,
    ) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        if pos < KEY_BASE {
            let root = self.dir_block(dir, 0)?;
            self.cache.read_with(root as u64, |d| {
                for (k, e) in self.parse_dir_block(d, root)?.iter().take(2).enumerate() {
                    if (k as u64) >= pos {
                        out.push(Listed {
                            next: k as u64 + 1,
                            ino: e.inode,
                            file_type: e.file_type,
                            name: e.name.to_vec(),
                        });
                    }
                }
                Ok(())
            })?;
        }
        // Keys above `after` are wanted (`None`: all).
        let after = pos.checked_sub(KEY_BASE);
        let start_major = after.map_or(0, |k| ((k >> 32) as u32) << 1);
        let (mut path, mut leaf) = self.dx_probe(dir, dx, start_major)?;
        let mut got: Vec<(u64, Listed)> = Vec::new();
        loop {
            let blk = self.dir_block(dir, leaf as u64)?;
            self.cache.read_with(blk as u64, |d| {
                self.visit_dir_block(d, blk, |e| {
                    if e.inode == 0 {
                        return;
                    }
                    let k = key(dx.hasher.hash(e.name));
                    if after.is_none_or(|a| k > a) {
                        got.push((
                            k,
                            Listed {
                                next: k + KEY_BASE,
                                ino: e.inode,
                                file_type: e.file_type,
                                name: e.name.to_vec(),
                            },
                        ));
                    }
                })
            })?;
            let Some((start, next)) = self.dx_next_leaf(dir, &mut path)? else {
                break;
            };
            // Later leaves hold keys from their start hash on: once enough
            // smaller keys are in hand, the batch is complete.
            if got.len() >= max {
                got.sort_by_key(|g| g.0);
                let last = got[max - 1].0;
                if ((start & !1) >> 1) as u64 > last >> 32 {
                    break;
                }
            }
            leaf = next;
        }
        got.sort_by_key(|g| g.0);
        if got.len() > max {
            // Not between equal keys: a cookie could not resume there.
            let last = got[max - 1].0;
            let cut = got.iter().position(|g| g.0 > last).unwrap_or(got.len());
            got.truncate(cut);
        }
        out.extend(got.into_iter().map(|g| g.1));
        Ok(out)
    }
}

/// The kernel's do_split on two blocks: the entries of `d1` sorted by hash
/// (its dx_make_map and dx_sort_map, ties as it leaves them), the upper
/// ones (up to half the block) moved to `d2`, both packed. Returns the
/// hash the new block starts at, with the low bit set when the previous
/// block ends with the same hash.
fn split_entries(
    d1: &mut [u8],
    d2: &mut [u8],
    hasher: &Hasher,
    bs: usize,
) -> std::result::Result<u32, String> {
    struct MapEntry {
        hash: u32,
        offs: usize,
        size: usize,
    }
    let mut map = Vec::new();
    dirent::visit_block(d1, u32::MAX, |e: DirEntry| {
        if e.inode != 0 && !e.name.is_empty() {
            map.push(MapEntry {
                hash: hasher.hash(e.name).major,
                offs: e.offset,
                size: e.rec_len,
            });
        }
    })
    .map_err(|e| e.to_string())?;
    // dx_make_map fills its map from the end.
    map.reverse();
    let count = map.len();
    if count < 2 {
        return Err("a full leaf with fewer than two entries".into());
    }
    dx_sort_map(&mut map, |m| m.hash);
    // Neither half over half full.
    let (mut size, mut moved) = (0usize, 0usize);
    let mut i = count as isize - 1;
    while i >= 0 {
        let m = &map[i as usize];
        if size + m.size / 2 > bs / 2 {
            break;
        }
        size += m.size;
        moved += 1;
        i -= 1;
    }
    let split = if i > 0 { count - moved } else { count / 2 };
    let hash2 = map[split].hash;
    let continued = u32::from(hash2 == map[split - 1].hash);
    // Move the upper entries, packed, into d2.
    d2.fill(0);
    let mut to = 0;
    let mut last = 0;
    for m in &map[split..] {
        let name_len = d1[m.offs + 6] as usize;
        let len = rec_len_for(name_len);
        d2[to..to + len].copy_from_slice(&d1[m.offs..m.offs + len]);
        dirent::set_rec_len(d2, to, len);
        // Wiped where it was: inode 0, the rest zero but rec_len.
        d1[m.offs..m.offs + 4].fill(0);
        d1[m.offs + 6..m.offs + m.size].fill(0);
        last = to;
        to += len;
    }
    dirent::set_rec_len(d2, last, bs - last);
    pack(d1, bs);
    Ok(hash2 + continued)
}

/// dx_pack_dirents: the live entries of a block moved to its start, the
/// last spanning to its end.
fn pack(d: &mut [u8], bs: usize) {
    let mut live = Vec::new();
    let _ = dirent::visit_block(d, u32::MAX, |e: DirEntry| {
        if e.inode != 0 && !e.name.is_empty() {
            live.push((e.offset, rec_len_for(e.name.len())));
        }
    });
    let mut to = 0;
    let mut last = 0;
    for (from, len) in live {
        if from != to {
            d.copy_within(from..from + len, to);
        }
        dirent::set_rec_len(d, to, len);
        last = to;
        to += len;
    }
    if to == 0 {
        dirent::empty_block(d);
    } else {
        dirent::set_rec_len(d, last, bs - last);
    }
}

/// The kernel's dx_sort_map: a comb sort, then a bubble sort, by hash.
/// Kept as it is so that entries of equal hashes land where the kernel's
/// land (the split point, and so the directory's size, depend on it).
fn dx_sort_map<T>(map: &mut [T], hash: impl Fn(&T) -> u32) {
    let top = map.len() as isize - 1;
    let mut count = map.len();
    while count > 2 {
        count = count * 10 / 13;
        if count.wrapping_sub(9) < 2 {
            count = 11;
        }
        let (mut p, mut q) = (top, top - count as isize);
        while q >= 0 {
            if hash(&map[p as usize]) < hash(&map[q as usize]) {
                map.swap(p as usize, q as usize);
            }
            p -= 1;
            q -= 1;
        }
    }
    loop {
        let mut more = false;
        let mut q = top;
        while q > 0 {
            q -= 1;
            if hash(&map[q as usize + 1]) >= hash(&map[q as usize]) {
                continue;
            }
            map.swap(q as usize + 1, q as usize);
            more = true;
        }
        if !more {
            break;
        }
    }
}

/// Hash settings of an image, for [`super::Geometry`].
pub(crate) fn hash_settings(sb: &Superblock) -> ([u32; 4], u8, u32) {
    let seed = sb.s_hash_seed.map(|s| s.get());
    let flags = u32::from_le_bytes(sb.s_rest[0..4].try_into().expect("4 bytes"));
    (seed, sb.s_def_hash_version, flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_map_orders_by_hash() {
        let mut v: Vec<u32> = (0..40).map(|i| (i * 7919) % 97).collect();
        dx_sort_map(&mut v, |&x| x);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }
}
