//! An in-memory index of one directory block's entries, so that a search
//! of the block compares a 32-bit hash per entry instead of walking the
//! rec_len chain and comparing names (see [`dirent::search_block`]). It is
//! derived from the block's bytes and answers exactly as a search of them
//! would. Whoever keeps one either drops it at a change of those bytes or,
//! for a change confined to a run of whole entries (an entry added in a
//! slot, one removed into the entry before it), brings it up to date with
//! [`NameIndex::reparse`].

use crate::dirent::{self, rec_len_for, Hit, Room, DIRENT_HEADER};

/// One directory block's entries, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameIndex {
    entries: Vec<Ent>,
}

/// An entry: the hash of its name (in use only), its offset with [`LIVE`]
/// when in use, and the room after its name (all of it when unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ent {
    hash: u32,
    off: u16,
    room: u16,
}

/// In an [`Ent`]'s offset: the entry is in use. (Offsets are below 32 KiB:
/// blocks here are at most 4 KiB, and [`NameIndex::build`] refuses larger.)
const LIVE: u16 = 1 << 15;

impl Ent {
    fn offset(self) -> usize {
        (self.off & !LIVE) as usize
    }
    fn live(self) -> bool {
        self.off & LIVE != 0
    }
}

/// A name's hash for the index (FxHash's multiply-rotate over 8-byte words,
/// the last word overlapping the one before it, with the length): cheap,
/// and only ever compared, never stored on disk.
pub fn name_hash(name: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let word = |at: usize| u64::from_le_bytes(name[at..at + 8].try_into().expect("8 bytes"));
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let n = name.len();
    let mut h = n as u64;
    if n < 8 {
        let mut w = 0u64;
        for (i, &b) in name.iter().enumerate() {
            w |= (b as u64) << (8 * i);
        }
        h = mix(h, w);
    } else {
        let mut at = 0;
        while at + 8 < n {
            h = mix(h, word(at));
            at += 8;
        }
        h = mix(h, word(n - 8));
    }
    (h >> 32) as u32
}

/// The entries of `block` from `start` to `end` (entry boundaries), checked
/// as [`dirent::search_block`] checks them, appended to `out`; false if one
/// is damaged or the run does not end at `end`.
fn parse_run(block: &[u8], max_ino: u32, start: usize, end: usize, out: &mut Vec<Ent>) -> bool {
    let mut off = start;
    while off < end {
        let Ok((inode, rec_len, name_len, _)) = dirent::checked_header(block, off, max_ino) else {
            return false;
        };
        let ent = if inode != 0 {
            let name = &block[off + DIRENT_HEADER..off + DIRENT_HEADER + name_len];
            Ent {
                hash: name_hash(name),
                off: off as u16 | LIVE,
                room: (rec_len - rec_len_for(name_len)) as u16,
            }
        } else {
            Ent {
                hash: 0,
                off: off as u16,
                room: rec_len as u16,
            }
        };
        out.push(ent);
        off += rec_len;
    }
    off == end
}

impl NameIndex {
    /// The index of `block`, or `None` if it is not a block of valid
    /// entries (a search of it must report the damage: see
    /// [`dirent::search_block`]), is 32 KiB or more, or memory for the
    /// index cannot be had (the index is a help, never a need).
    pub fn build(block: &[u8], max_ino: u32) -> Option<NameIndex> {
        if block.len() >= LIVE as usize {
            return None;
        }
        // Room for as many entries as the block can hold, so that entries
        // added later need no more.
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(block.len() / rec_len_for(1))
            .ok()?;
        parse_run(block, max_ino, 0, block.len(), &mut entries).then_some(NameIndex { entries })
    }

    /// The entries from `start` to `end` of `block` changed, and only they
    /// (both entry boundaries before and after the change): read them
    /// again. False if the index cannot follow (a damaged entry, a run
    /// that does not start at an entry): then it must be dropped.
    pub fn reparse(&mut self, block: &[u8], max_ino: u32, start: usize, end: usize) -> bool {
        let lo = self.entries.partition_point(|e| e.offset() < start);
        let hi = self.entries.partition_point(|e| e.offset() < end);
        if self.entries.get(lo).map(|e| e.offset()) != Some(start) {
            return false;
        }
        // The run's new entries are read onto the end (within the capacity
        // `build` reserved), then moved into place: [before, old run, after,
        // new] -> [before, after, new, old run] -> [before, new, after].
        let at = self.entries.len();
        if !parse_run(block, max_ino, start, end, &mut self.entries) {
            return false;
        }
        let new = self.entries.len() - at;
        let keep = self.entries.len() - (hi - lo);
        self.entries[lo..].rotate_left(hi - lo);
        self.entries[lo..keep].rotate_right(new);
        self.entries.truncate(keep);
        true
    }

    /// The inode of the entry `name` in the block this index was built from.
    pub fn find(&self, block: &[u8], name: &[u8]) -> Option<u32> {
        self.search(block, name, None).0.map(|h| h.inode)
    }

    /// How many entries of `need` bytes fit in the room the block's entries
    /// leave after their names (each entry's room on its own).
    pub fn slots(&self, need: usize) -> usize {
        self.entries.iter().map(|e| e.room as usize / need).sum()
    }

    /// What [`dirent::search_block`] answers for `name` and `need` on the
    /// `block` this index was built from (and which has changed since only
    /// as [`NameIndex::reparse`] was told).
    pub fn search(
        &self,
        block: &[u8],
        name: &[u8],
        need: Option<usize>,
    ) -> (Option<Hit>, Option<Room>) {
        let h = name_hash(name);
        let mut need = need.unwrap_or(usize::MAX);
        let mut room = None;
        let mut hit = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.hash == h && e.live() {
                let off = e.offset();
                if block[off + 6] as usize == name.len()
                    && &block[off + DIRENT_HEADER..off + DIRENT_HEADER + name.len()] == name
                {
                    hit = Some(Hit {
                        offset: off,
                        prev: i.checked_sub(1).map(|p| self.entries[p].offset()),
                        inode: u32::from_le_bytes(block[off..off + 4].try_into().expect("4 bytes")),
                        file_type: block[off + 7],
                    });
                    break;
                }
            }
            if e.room as usize >= need {
                room = Some(e.offset());
                need = usize::MAX;
            }
        }
        let room = room.map(|off| {
            let rec_len = u16::from_le_bytes([block[off + 4], block[off + 5]]) as usize;
            Room {
                offset: off,
                inode: u32::from_le_bytes(block[off..off + 4].try_into().expect("4 bytes")),
                rec_len,
                name_len: (block[off + 6] as usize).min(rec_len - DIRENT_HEADER),
            }
        });
        (hit, room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirent::{search_block, set_inode, set_rec_len, testgen, write_entry, FT_REG_FILE};

    /// Every name in `names` and some absent ones, with every need: the
    /// index answers as the search of `block` does; returns (hits, rooms).
    fn agrees(index: &NameIndex, block: &[u8], names: &[Vec<u8>], what: &str) -> (u32, u32) {
        let (mut hits, mut rooms) = (0, 0);
        let absent: [&[u8]; 2] = [b"absent", b"file_0000_absent"];
        for name in names.iter().map(|n| n.as_slice()).chain(absent) {
            for need in [None, Some(12), Some(rec_len_for(20)), Some(block.len())] {
                let want = search_block(block, 200, name, need).expect("valid");
                assert_eq!(
                    index.search(block, name, need),
                    want,
                    "{what} {name:?} {need:?}"
                );
                hits += want.0.is_some() as u32;
                rooms += want.1.is_some() as u32;
            }
        }
        (hits, rooms)
    }

    #[test]
    fn an_index_answers_as_the_search_of_its_block() {
        // Blocks of entries with names of every length from a few
        // families (so that many share a length and a hash is often
        // compared in vain), some removed (inode 0), some with room, some
        // names twice. A corrupt block has no index.
        let mut next = testgen::rng(0x9e37_79b9_7f4a_7c15);
        let (mut hits, mut rooms) = (0, 0);
        for round in 0..300 {
            let bs = [1024usize, 2048, 4096][round % 3];
            let (b, names, any_live) = testgen::random_block(&mut next, bs, 24);
            let index = NameIndex::build(&b, 200).expect("a valid block");
            let (h, r) = agrees(&index, &b, &names, &format!("round {round}"));
            hits += h;
            rooms += r;
            // An inode number out of range makes the block corrupt.
            assert_eq!(NameIndex::build(&b, 0).is_none(), any_live);
        }
        assert!(hits > 1000 && rooms > 1000, "{hits} {rooms}");
    }

    #[test]
    fn an_index_follows_adds_and_removals_as_the_directory_code_makes_them() {
        // Names added where the search finds room (into an unused entry,
        // or split off an entry's room) and removed (merged into the entry
        // before, or the first one marked unused), as `Ext2::write_in_slot`
        // and `Ext2::dir_remove` change the bytes, each followed by a
        // reparse of the run it changed: after every step the index answers
        // as the search of the block, and equals one built afresh.
        let mut next = testgen::rng(0x2545_f491_4f6c_dd1d);
        let mut steps = 0;
        for round in 0..60 {
            let bs = [1024usize, 2048, 4096][round % 3];
            let mut b = vec![0u8; bs];
            dirent::empty_block(&mut b);
            let mut index = NameIndex::build(&b, 200).expect("empty block");
            let mut names: Vec<Vec<u8>> = Vec::new();
            for step in 0..300 {
                let add = names.is_empty() || next(3) != 0;
                let (start, end) = if add {
                    let len = 1 + next(30) as usize;
                    let name: Vec<u8> = (0..len)
                        .map(|i| b'a' + ((step as u64 + i as u64 * 3) % 26) as u8)
                        .collect();
                    if names.contains(&name) {
                        continue;
                    }
                    let (_, room) = search_block(&b, 200, &name, Some(rec_len_for(len))).unwrap();
                    let Some(s) = room else {
                        continue; // full
                    };
                    let ino = 1 + next(199) as u32;
                    if s.inode == 0 {
                        write_entry(&mut b, s.offset, ino, s.rec_len, FT_REG_FILE, &name);
                    } else {
                        let used = rec_len_for(s.name_len);
                        set_rec_len(&mut b, s.offset, used);
                        write_entry(
                            &mut b,
                            s.offset + used,
                            ino,
                            s.rec_len - used,
                            FT_REG_FILE,
                            &name,
                        );
                    }
                    names.push(name);
                    (s.offset, s.offset + s.rec_len)
                } else {
                    let name = names.swap_remove(next(names.len() as u64) as usize);
                    let (hit, _) = search_block(&b, 200, &name, None).unwrap();
                    let f = hit.expect("added before");
                    let len = u16::from_le_bytes([b[f.offset + 4], b[f.offset + 5]]) as usize;
                    match f.prev {
                        Some(p) => {
                            let plen = u16::from_le_bytes([b[p + 4], b[p + 5]]) as usize;
                            set_rec_len(&mut b, p, plen + len);
                            (p, f.offset + len)
                        }
                        None => {
                            set_inode(&mut b, f.offset, 0, 0);
                            (f.offset, f.offset + len)
                        }
                    }
                };
                assert!(
                    index.reparse(&b, 200, start, end),
                    "round {round} step {step}"
                );
                agrees(&index, &b, &names, &format!("round {round} step {step}"));
                assert_eq!(Some(&index), NameIndex::build(&b, 200).as_ref());
                steps += 1;
            }
        }
        assert!(steps > 10_000, "{steps}");
    }

    #[test]
    fn a_reparse_refuses_a_run_it_cannot_follow() {
        let mut b = vec![0u8; 1024];
        dirent::empty_block(&mut b);
        write_entry(&mut b, 0, 5, 12, FT_REG_FILE, b"a");
        write_entry(&mut b, 12, 6, 1012, FT_REG_FILE, b"b");
        let mut index = NameIndex::build(&b, 200).unwrap();
        // Not an entry's start, and a run that overshoots its end.
        assert!(!index.clone().reparse(&b, 200, 4, 12));
        assert!(!index.clone().reparse(&b, 200, 0, 8));
        // A damaged entry in the run.
        set_rec_len(&mut b, 12, 2000);
        assert!(!index.reparse(&b, 200, 12, 1024));
    }

    #[test]
    fn hashes_differ_for_names_that_differ_late() {
        let a = name_hash(b"file_00_00001234_data");
        let b = name_hash(b"file_00_00001235_data");
        let c = name_hash(b"file_00_00001234_datb");
        assert!(a != b && a != c && b != c);
        assert_eq!(name_hash(b""), name_hash(b""));
    }
}
