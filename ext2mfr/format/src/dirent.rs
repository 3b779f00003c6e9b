//! Directory entries: `inode u32, rec_len u16, name_len u8, file_type u8,
//! name`, padded to 4 bytes; entries of a block chain through `rec_len` and
//! the last one reaches the block end.

use super::inode::FileKind;
use super::FormatError;
use std::ops::ControlFlow;

pub const DIRENT_HEADER: usize = 8;
pub const MAX_NAME_LEN: usize = 255;

/// `file_type` values (with the `filetype` feature).
pub const FT_UNKNOWN: u8 = 0;
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SOCK: u8 = 6;
pub const FT_SYMLINK: u8 = 7;

pub fn file_type_of(kind: FileKind) -> u8 {
    match kind {
        FileKind::Regular => FT_REG_FILE,
        FileKind::Directory => FT_DIR,
        FileKind::CharDevice => FT_CHRDEV,
        FileKind::BlockDevice => FT_BLKDEV,
        FileKind::Fifo => FT_FIFO,
        FileKind::Socket => FT_SOCK,
        FileKind::Symlink => FT_SYMLINK,
    }
}

/// The kind an entry's file type names; `None` for FT_UNKNOWN (images
/// without the filetype feature) or a value ext2 does not define.
pub fn kind_of_file_type(ft: u8) -> Option<FileKind> {
    Some(match ft {
        FT_REG_FILE => FileKind::Regular,
        FT_DIR => FileKind::Directory,
        FT_CHRDEV => FileKind::CharDevice,
        FT_BLKDEV => FileKind::BlockDevice,
        FT_FIFO => FileKind::Fifo,
        FT_SOCK => FileKind::Socket,
        FT_SYMLINK => FileKind::Symlink,
        _ => return None,
    })
}

/// Space an entry with a name of `name_len` bytes needs.
pub const fn rec_len_for(name_len: usize) -> usize {
    (DIRENT_HEADER + name_len + 3) & !3
}

/// One entry as found in a block.
#[derive(Clone, Copy, Debug)]
pub struct DirEntry<'a> {
    pub offset: usize,
    pub inode: u32,
    pub rec_len: usize,
    pub file_type: u8,
    pub name: &'a [u8],
}

impl DirEntry<'_> {
    /// Is this entry in use and named `name`? Scans of large directories
    /// spend most of their time here, so no `memcmp` call per entry: names
    /// in one directory mostly share their beginnings and often their ends
    /// (`file_00001_data`, `file_00002_data`), so the last eight bytes are
    /// compared first, as one word, and then the rest a word at a time.
    #[inline]
    pub fn is(&self, name: &[u8]) -> bool {
        self.inode != 0 && same_name(self.name, name)
    }

    /// Bytes of `rec_len` not needed by this entry itself (0 for an unused slot
    /// counts its whole rec_len as free).
    pub fn slack(&self) -> usize {
        if self.inode == 0 {
            self.rec_len
        } else {
            self.rec_len - rec_len_for(self.name.len())
        }
    }
}

/// Parse every entry of one directory block, checking each the way the
/// kernel's `ext2_check_page` does. `max_ino` bounds inode numbers.
pub fn parse_block(block: &[u8], max_ino: u32) -> Result<Vec<DirEntry<'_>>, FormatError> {
    let mut out = Vec::with_capacity(block.len() / 32);
    visit_block(block, max_ino, |e| out.push(e))?;
    Ok(out)
}

/// `a == b`, without a call (see [`DirEntry::is`]).
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    if word(a, n - 8) != word(b, n - 8) {
        return false;
    }
    (0..n - 8).step_by(8).all(|at| word(a, at) == word(b, at))
}

/// [`parse_block`] without collecting: `f` sees every entry in order (the
/// whole block is checked even when the caller has found what it wants).
pub fn visit_block<'a>(
    block: &'a [u8],
    max_ino: u32,
    mut f: impl FnMut(DirEntry<'a>),
) -> Result<(), FormatError> {
    visit_block_until(block, max_ino, |e| {
        f(e);
        ControlFlow::Continue(())
    })
}

/// [`visit_block`] until `f` breaks: entries after that are not looked at
/// (nor checked), as the kernel's search of a directory block stops at the
/// name it finds.
pub fn visit_block_until<'a>(
    block: &'a [u8],
    max_ino: u32,
    mut f: impl FnMut(DirEntry<'a>) -> ControlFlow<()>,
) -> Result<(), FormatError> {
    let mut off = 0;
    while off < block.len() {
        let (inode, rec_len, name_len, file_type) = checked_header(block, off, max_ino)?;
        let name_end = (off + DIRENT_HEADER + name_len).min(off + rec_len);
        let seen = f(DirEntry {
            offset: off,
            inode,
            rec_len,
            file_type,
            name: &block[off + DIRENT_HEADER..name_end],
        });
        if seen.is_break() {
            break;
        }
        off += rec_len;
    }
    Ok(())
}

/// The entry [`search_block`] found: where it is, the entry before it in
/// the block (a removal merges into that one), what it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub offset: usize,
    pub prev: Option<usize>,
    pub inode: u32,
    pub file_type: u8,
}

/// An entry with room after its name, or unused, for a new one (see
/// [`search_block`]): its offset, inode, rec_len and name length (as far
/// as the entry holds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub offset: usize,
    pub inode: u32,
    pub rec_len: usize,
    pub name_len: usize,
}

/// Look for `name` in one directory block, checking each entry up to it as
/// [`visit_block_until`] does (the same errors at the same entries): the
/// entry if it is here; and, with `need` given, the first entry before it
/// with room for `need` bytes.
/// Lookups, creates and removals in a directory go through here: one pass
/// over the block reading each header as one word, and a name compared only
/// where its length matches, rather than an entry built and handed to a
/// closure for each.
pub fn search_block(
    block: &[u8],
    max_ino: u32,
    name: &[u8],
    need: Option<usize>,
) -> Result<(Option<Hit>, Option<Room>), FormatError> {
    let len = block.len();
    // (No more room wanted once one is found.)
    let mut need = need.unwrap_or(usize::MAX);
    let mut room = None;
    let mut off = 0;
    let mut prev = None;
    while off < len {
        let (inode, rec_len, name_len, file_type) = checked_header(block, off, max_ino)?;
        // (An entry in use holds its whole name: checked just above.)
        if inode != 0
            && name_len == name.len()
            && same_name(
                &block[off + DIRENT_HEADER..off + DIRENT_HEADER + name_len],
                name,
            )
        {
            let hit = Hit {
                offset: off,
                prev,
                inode,
                file_type,
            };
            return Ok((Some(hit), room));
        }
        if need != usize::MAX {
            let slack = if inode == 0 {
                rec_len
            } else {
                rec_len - rec_len_for(name_len)
            };
            if slack >= need {
                room = Some(Room {
                    offset: off,
                    inode,
                    rec_len,
                    name_len: name_len.min(rec_len - DIRENT_HEADER),
                });
                need = usize::MAX;
            }
        }
        prev = Some(off);
        off += rec_len;
    }
    Ok((None, room))
}

/// The header of the entry at `off` (`off < block.len()`): inode, rec_len,
/// name length and file type, checked as the kernel's `ext2_check_page`
/// checks them. Read as one word: this is the hottest step of every scan.
#[inline(always)]
pub(crate) fn checked_header(
    block: &[u8],
    off: usize,
    max_ino: u32,
) -> Result<(u32, usize, usize, u8), FormatError> {
    let bad = |m: &str| Err(FormatError::BadDirEntry(off, m.to_string()));
    let Some(h) = block.get(off..off + DIRENT_HEADER) else {
        return bad("entry header crosses block end");
    };
    let h = u64::from_le_bytes(h.try_into().expect("8 bytes"));
    let inode = h as u32;
    // (A 64 KiB block would store rec_len 65536 as 0: blocks here are at
    // most 4 KiB.)
    let rec_len = (h >> 32) as u16 as usize;
    let name_len = (h >> 48) as u8 as usize;
    if rec_len < DIRENT_HEADER || !rec_len.is_multiple_of(4) {
        return bad("bad rec_len");
    }
    if rec_len > block.len() - off {
        return bad("rec_len crosses block end");
    }
    if inode != 0 && rec_len < rec_len_for(name_len) {
        return bad("rec_len too small for name");
    }
    if inode > max_ino {
        return bad("inode number out of range");
    }
    Ok((inode, rec_len, name_len, (h >> 56) as u8))
}

/// Write an entry header and name at `off`.
pub fn write_entry(block: &mut [u8], off: usize, inode: u32, rec_len: usize, ft: u8, name: &[u8]) {
    block[off..off + 4].copy_from_slice(&inode.to_le_bytes());
    block[off + 4..off + 6].copy_from_slice(&(rec_len as u16).to_le_bytes());
    block[off + 6] = name.len() as u8;
    block[off + 7] = ft;
    block[off + DIRENT_HEADER..off + DIRENT_HEADER + name.len()].copy_from_slice(name);
}

/// Change only the rec_len of the entry at `off`.
pub fn set_rec_len(block: &mut [u8], off: usize, rec_len: usize) {
    block[off + 4..off + 6].copy_from_slice(&(rec_len as u16).to_le_bytes());
}

/// Change only the inode (and file type) of the entry at `off`.
pub fn set_inode(block: &mut [u8], off: usize, inode: u32, ft: u8) {
    block[off..off + 4].copy_from_slice(&inode.to_le_bytes());
    block[off + 7] = ft;
}

/// An empty directory block: one unused entry spanning it.
pub fn empty_block(block: &mut [u8]) {
    block.fill(0);
    let len = block.len();
    write_entry(block, 0, 0, len, 0, b"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_like_slices() {
        let names: [&[u8]; 10] = [
            b"",
            b"a",
            b"ab",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgi",
            b"xbcdefgh",
            b"file_00_00001234_data",
            b"file_00_00001235_data",
            b"file_01_00001234_data",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    /// [`search_block`] as [`visit_block_until`] and a closure would do it.
    fn search_by_visit(
        block: &[u8],
        max_ino: u32,
        name: &[u8],
        need: Option<usize>,
    ) -> Result<(Option<Hit>, Option<Room>), FormatError> {
        let (mut prev, mut found, mut room) = (None, None, None);
        visit_block_until(block, max_ino, |e| {
            if e.is(name) {
                found = Some(Hit {
                    offset: e.offset,
                    prev,
                    inode: e.inode,
                    file_type: e.file_type,
                });
                return ControlFlow::Break(());
            }
            if room.is_none() && need.is_some_and(|n| e.slack() >= n) {
                room = Some(Room {
                    offset: e.offset,
                    inode: e.inode,
                    rec_len: e.rec_len,
                    name_len: e.name.len(),
                });
            }
            prev = Some(e.offset);
            ControlFlow::Continue(())
        })?;
        Ok((found, room))
    }

    #[test]
    fn search_finds_what_a_visit_finds() {
        // Random blocks (see `testgen`); then each of them with one header
        // byte changed at random, which makes most of them corrupt at some
        // entry. Every search agrees with the visit: the entry, the room,
        // the error.
        let mut next = testgen::rng(0x2545_f491_4f6c_dd1d);
        let (mut hits, mut errors, mut rooms) = (0, 0, 0);
        for round in 0..400 {
            let bs = [1024usize, 2048, 4096][round % 3];
            let (mut b, mut names, _) = testgen::random_block(&mut next, bs, 40);
            if round % 2 == 1 {
                let at = next(bs as u64) as usize;
                b[at] = next(256) as u8;
            }
            names.push(b"none".to_vec());
            for name in &names {
                for need in [None, Some(12), Some(rec_len_for(30)), Some(bs)] {
                    let a = search_block(&b, 90, name, need);
                    let v = search_by_visit(&b, 90, name, need);
                    assert_eq!(
                        format!("{a:?}"),
                        format!("{v:?}"),
                        "round {round} {name:?} {need:?}"
                    );
                    hits += matches!(a, Ok((Some(_), _))) as u32;
                    errors += a.is_err() as u32;
                    rooms += matches!(a, Ok((_, Some(_)))) as u32;
                }
            }
        }
        // (All three kinds of answer came up, many times.)
        assert!(
            hits > 1000 && errors > 1000 && rooms > 1000,
            "{hits} {errors} {rooms}"
        );
    }

    #[test]
    fn parse_and_reject() {
        let mut b = vec![0u8; 1024];
        write_entry(&mut b, 0, 2, 12, FT_DIR, b".");
        write_entry(&mut b, 12, 2, 1012, FT_DIR, b"..");
        let e = parse_block(&b, 100).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].name, b"..");
        assert_eq!(e[1].slack(), 1012 - 12);
        set_rec_len(&mut b, 12, 2000);
        assert!(parse_block(&b, 100).is_err());
        set_rec_len(&mut b, 12, 6);
        assert!(parse_block(&b, 100).is_err());
        set_rec_len(&mut b, 12, 1012);
        assert!(parse_block(&b, 1).is_err());
    }
}

/// Random directory blocks for the tests here and in `dirent_index.rs`.
#[cfg(test)]
pub(crate) mod testgen {
    use super::*;

    /// A small xorshift generator: `next(n)` is below `n`.
    pub fn rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// A block of `bs` bytes of valid entries, names of 1 to `max_len`
    /// bytes from a few families (so that many share a length and most of
    /// their bytes, and some come twice), some unused (inode 0), some with
    /// room after them, inode numbers up to 100; its names, and whether
    /// any entry is in use.
    pub fn random_block(
        next: &mut impl FnMut(u64) -> u64,
        bs: usize,
        max_len: u64,
    ) -> (Vec<u8>, Vec<Vec<u8>>, bool) {
        let mut b = vec![0u8; bs];
        let mut names = Vec::new();
        let mut any_live = false;
        let mut off = 0;
        while off < bs {
            let mut len = 1 + next(max_len) as usize;
            let mut rec = rec_len_for(len) + 4 * next(3) as usize;
            if bs - off < rec + 12 {
                // The last entry reaches the block's end.
                rec = bs - off;
                len = len.min(rec - DIRENT_HEADER);
            }
            let family = next(5);
            let name: Vec<u8> = (0..len)
                .map(|i| b'a' + ((family + i as u64 * 7) % 26) as u8)
                .collect();
            let ino = if next(5) == 0 {
                0
            } else {
                1 + next(100) as u32
            };
            any_live |= ino != 0;
            write_entry(&mut b, off, ino, rec, FT_DIR, &name);
            names.push(name);
            off += rec;
        }
        (b, names, any_live)
    }
}
