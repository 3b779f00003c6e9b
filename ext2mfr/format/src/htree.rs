//! Hashed directory indexes (htree, `dir_index`), as the kernel's ext4
//! driver and e2fsprogs lay them out in ext2 directories: block 0 is the
//! root (the "." and ".." entries, an 8-byte info header, then index
//! entries), further index nodes hide behind an empty entry spanning the
//! block, and leaves are ordinary directory blocks holding the names of one
//! hash range. Plus the name hashes (legacy, half-MD4, TEA; signed and
//! unsigned character variants) of fs/ext4/hash.c.

/// Hash versions (`dx_root_info.hash_version`, `s_def_hash_version`).
pub const HASH_LEGACY: u8 = 0;
pub const HASH_HALF_MD4: u8 = 1;
pub const HASH_TEA: u8 = 2;
/// The unsigned-character variants (chosen by the superblock flags).
pub const HASH_UNSIGNED_OFFSET: u8 = 3;

/// `s_flags` bits: which character signedness names were hashed with.
pub const FLAGS_SIGNED_HASH: u32 = 0x1;
pub const FLAGS_UNSIGNED_HASH: u32 = 0x2;

/// Where the root's info header starts: after "." (12 bytes) and ".."'s
/// 12-byte head.
const ROOT_INFO: usize = 24;
/// The info header's length (`info_length`).
const INFO_LEN: usize = 8;
/// Where a non-root node's entries start: after its empty 8-byte entry.
const NODE_ENTRIES: usize = 8;
/// Bytes of one index entry (hash, block); the first entry's hash field
/// holds the limit and count instead.
pub const ENTRY_BYTES: usize = 8;
/// Index levels below the root ext2 allows (no `largedir`).
pub const MAX_INDIRECT_LEVELS: u8 = 1;
/// A hash past every hash (`EXT4_HTREE_EOF_32BIT`).
const EOF_32BIT: u32 = 0x7fff_ffff;

fn le32(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"))
}
fn le16(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}

/// Entries a root block holds.
pub fn root_limit(block_size: usize) -> usize {
    (block_size - ROOT_INFO - INFO_LEN) / ENTRY_BYTES
}

/// Entries a non-root index node holds.
pub fn node_limit(block_size: usize) -> usize {
    (block_size - NODE_ENTRIES) / ENTRY_BYTES
}

/// The root's header, checked as the kernel's dx_probe checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootInfo {
    pub hash_version: u8,
    pub indirect_levels: u8,
}

/// The info of a root block, or why it is not one we can follow.
pub fn root_info(d: &[u8]) -> Result<RootInfo, &'static str> {
    if d.len() < ROOT_INFO + INFO_LEN + ENTRY_BYTES {
        return Err("root block too small");
    }
    // "." then ".." whose record spans the rest of the block.
    if le16(d, 4) != 12 || d[6] != 1 || d[8] != b'.' || le16(d, 16) as usize != d.len() - 12 {
        return Err("root block without its '.' and '..'");
    }
    let hash_version = d[ROOT_INFO + 4];
    let info_length = d[ROOT_INFO + 5] as usize;
    let indirect_levels = d[ROOT_INFO + 6];
    let flags = d[ROOT_INFO + 7];
    if hash_version > HASH_TEA {
        return Err("unknown hash version");
    }
    if info_length != INFO_LEN || flags & 1 != 0 {
        return Err("unknown root info");
    }
    if indirect_levels > MAX_INDIRECT_LEVELS {
        return Err("too many index levels");
    }
    Ok(RootInfo {
        hash_version,
        indirect_levels,
    })
}

/// The offset of the entries (count/limit first) in an index block.
pub fn entries_at(root: bool) -> usize {
    if root {
        ROOT_INFO + INFO_LEN
    } else {
        NODE_ENTRIES
    }
}

/// (limit, count) of the entries at `at`.
pub fn count_limit(d: &[u8], at: usize) -> (usize, usize) {
    (le16(d, at) as usize, le16(d, at + 2) as usize)
}

pub fn set_count(d: &mut [u8], at: usize, count: usize) {
    d[at + 2..at + 4].copy_from_slice(&(count as u16).to_le_bytes());
}

pub fn set_limit(d: &mut [u8], at: usize, limit: usize) {
    d[at..at + 2].copy_from_slice(&(limit as u16).to_le_bytes());
}

/// Entry `k`'s (hash, block); entry 0 has hash 0 (its field holds the
/// count and limit).
pub fn entry(d: &[u8], at: usize, k: usize) -> (u32, u32) {
    let o = at + k * ENTRY_BYTES;
    let hash = if k == 0 { 0 } else { le32(d, o) };
    (hash, le32(d, o + 4))
}

pub fn set_entry(d: &mut [u8], at: usize, k: usize, hash: u32, block: u32) {
    let o = at + k * ENTRY_BYTES;
    if k != 0 {
        d[o..o + 4].copy_from_slice(&hash.to_le_bytes());
    }
    d[o + 4..o + 8].copy_from_slice(&block.to_le_bytes());
}

/// The checked (limit, count) of an index block, as dx_probe checks them.
pub fn checked_entries(d: &[u8], root: bool) -> Result<(usize, usize), &'static str> {
    let at = entries_at(root);
    let (limit, count) = count_limit(d, at);
    let want = if root {
        root_limit(d.len())
    } else {
        node_limit(d.len())
    };
    if limit != want {
        return Err("index limit wrong");
    }
    if count == 0 || count > limit {
        return Err("index count wrong");
    }
    Ok((limit, count))
}

/// The entry whose range holds `hash` (the last with a hash not above it),
/// by binary search as dx_probe does.
pub fn find(d: &[u8], at: usize, count: usize, hash: u32) -> usize {
    let (mut lo, mut hi) = (1usize, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(d, at, mid).0 > hash {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo - 1
}

/// Insert (hash, block) after entry `k` (dx_insert_block); the block has room.
pub fn insert_after(d: &mut [u8], at: usize, k: usize, hash: u32, block: u32) {
    let (_, count) = count_limit(d, at);
    let from = at + (k + 1) * ENTRY_BYTES;
    let end = at + count * ENTRY_BYTES;
    d.copy_within(from..end, from + ENTRY_BYTES);
    set_entry(d, at, k + 1, hash, block);
    set_count(d, at, count + 1);
}

/// A new root in `d` (block 0 of a directory whose "." and ".." are in
/// place, ".." becoming the record that spans the block): one entry, to
/// block `first_leaf`.
pub fn init_root(d: &mut [u8], hash_version: u8, first_leaf: u32) {
    let bs = d.len();
    d[16..18].copy_from_slice(&((bs - 12) as u16).to_le_bytes());
    d[ROOT_INFO..].fill(0);
    d[ROOT_INFO + 4] = hash_version;
    d[ROOT_INFO + 5] = INFO_LEN as u8;
    let at = entries_at(true);
    set_limit(d, at, root_limit(bs));
    set_count(d, at, 1);
    set_entry(d, at, 0, 0, first_leaf);
}

/// A new index node in `d`: an empty entry spanning the block, then
/// `entries` (hash, block), the first one's hash not stored.
pub fn init_node(d: &mut [u8], entries: &[(u32, u32)]) {
    let bs = d.len();
    d.fill(0);
    d[4..6].copy_from_slice(&(bs as u16).to_le_bytes());
    let at = entries_at(false);
    set_limit(d, at, node_limit(bs));
    set_count(d, at, entries.len());
    for (k, &(h, b)) in entries.iter().enumerate() {
        set_entry(d, at, k, h, b);
    }
}

pub fn set_indirect_levels(root: &mut [u8], levels: u8) {
    root[ROOT_INFO + 6] = levels;
}

// ---- name hashes (fs/ext4/hash.c) ----

/// How names are hashed in one directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hasher {
    /// With the unsigned offset applied.
    pub version: u8,
    pub seed: [u32; 4],
}

/// A name's hash: `major` (low bit clear) orders the index; `minor`
/// orders further (readdir).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameHash {
    pub major: u32,
    pub minor: u32,
}

impl Hasher {
    /// The hasher of a directory whose root says `version`, on a file
    /// system whose `s_flags` say how characters were taken.
    pub fn new(version: u8, seed: [u32; 4], s_flags: u32) -> Hasher {
        let unsigned = s_flags & FLAGS_UNSIGNED_HASH != 0;
        let version = if version <= HASH_TEA && unsigned {
            version + HASH_UNSIGNED_OFFSET
        } else {
            version
        };
        Hasher { version, seed }
    }

    pub fn hash(&self, name: &[u8]) -> NameHash {
        let mut buf = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
        if self.seed.iter().any(|&s| s != 0) {
            buf = self.seed;
        }
        let unsigned = self.version >= HASH_UNSIGNED_OFFSET;
        let (major, minor) = match self.version % HASH_UNSIGNED_OFFSET {
            HASH_LEGACY => (dx_hack_hash(name, unsigned), 0),
            HASH_HALF_MD4 => {
                for chunk in chunks(name, 32) {
                    let mut input = [0u32; 8];
                    str2hashbuf(chunk, &mut input, unsigned);
                    half_md4_transform(&mut buf, &input);
                }
                (buf[1], buf[2])
            }
            _ => {
                for chunk in chunks(name, 16) {
                    let mut input = [0u32; 4];
                    str2hashbuf(chunk, &mut input, unsigned);
                    tea_transform(&mut buf, &input);
                }
                (buf[0], buf[1])
            }
        };
        let mut major = major & !1;
        if major == EOF_32BIT << 1 {
            major = (EOF_32BIT - 1) << 1;
        }
        NameHash { major, minor }
    }
}

/// The name from each chunk start on (each call sees the rest of the
/// name, as the kernel passes `len` down while stepping `p`).
fn chunks(name: &[u8], step: usize) -> impl Iterator<Item = &[u8]> {
    (0..name.len()).step_by(step).map(move |i| &name[i..])
}

fn char_value(c: u8, unsigned: bool) -> u32 {
    if unsigned {
        c as u32
    } else {
        c as i8 as i32 as u32
    }
}

fn dx_hack_hash(name: &[u8], unsigned: bool) -> u32 {
    let (mut hash0, mut hash1) = (0x12a3_fe2du32, 0x37ab_e8f9u32);
    for &c in name {
        let mut hash = hash1.wrapping_add(hash0 ^ char_value(c, unsigned).wrapping_mul(7_152_373));
        if hash & 0x8000_0000 != 0 {
            hash = hash.wrapping_sub(0x7fff_ffff);
        }
        hash1 = hash0;
        hash0 = hash;
    }
    hash0 << 1
}

/// The kernel's str2hashbuf: `msg` (the rest of the name) into `buf`,
/// padded with a word made of the remaining length.
fn str2hashbuf(msg: &[u8], buf: &mut [u32], unsigned: bool) {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let num = buf.len();
    let take = msg.len().min(num * 4);
    let mut out = 0;
    for (i, &c) in msg[..take].iter().enumerate() {
        val = char_value(c, unsigned).wrapping_add(val << 8);
        if i % 4 == 3 {
            buf[out] = val;
            out += 1;
            val = pad;
        }
    }
    if out < num {
        buf[out] = val;
        out += 1;
    }
    for b in &mut buf[out..] {
        *b = pad;
    }
}

fn half_md4_transform(buf: &mut [u32; 4], x: &[u32; 8]) {
    const K2: u32 = 0x5A82_7999;
    const K3: u32 = 0x6ED9_EBA1;
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    let [mut a, mut b, mut c, mut d] = *buf;
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    round!(f, a, b, c, d, x[0], 3);
    round!(f, d, a, b, c, x[1], 7);
    round!(f, c, d, a, b, x[2], 11);
    round!(f, b, c, d, a, x[3], 19);
    round!(f, a, b, c, d, x[4], 3);
    round!(f, d, a, b, c, x[5], 7);
    round!(f, c, d, a, b, x[6], 11);
    round!(f, b, c, d, a, x[7], 19);

    round!(g, a, b, c, d, x[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, x[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[6].wrapping_add(K2), 13);

    round!(h, a, b, c, d, x[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, x[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[4].wrapping_add(K3), 15);

    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea_transform(buf: &mut [u32; 4], x: &[u32; 4]) {
    const DELTA: u32 = 0x9E37_79B9;
    let (mut b0, mut b1) = (buf[0], buf[1]);
    let [a, b, c, d] = *x;
    let mut sum = 0u32;
    for _ in 0..16 {
        sum = sum.wrapping_add(DELTA);
        b0 = b0.wrapping_add(
            (b1 << 4).wrapping_add(a) ^ b1.wrapping_add(sum) ^ (b1 >> 5).wrapping_add(b),
        );
        b1 = b1.wrapping_add(
            (b0 << 4).wrapping_add(c) ^ b0.wrapping_add(sum) ^ (b0 >> 5).wrapping_add(d),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(root_limit(1024), 124);
        assert_eq!(node_limit(1024), 127);
        assert_eq!(root_limit(4096), 508);
        assert_eq!(node_limit(4096), 511);
    }

    #[test]
    fn root_round_trip_and_search() {
        let mut d = vec![0u8; 1024];
        // "." and ".." as mkdir writes them.
        d[0..4].copy_from_slice(&2u32.to_le_bytes());
        d[4..6].copy_from_slice(&12u16.to_le_bytes());
        d[6] = 1;
        d[8] = b'.';
        d[12..16].copy_from_slice(&2u32.to_le_bytes());
        d[16..18].copy_from_slice(&1012u16.to_le_bytes());
        d[18] = 2;
        d[20..22].copy_from_slice(b"..");
        init_root(&mut d, HASH_HALF_MD4, 1);
        assert_eq!(
            root_info(&d),
            Ok(RootInfo {
                hash_version: 1,
                indirect_levels: 0
            })
        );
        let at = entries_at(true);
        insert_after(&mut d, at, 0, 0x4000, 2);
        insert_after(&mut d, at, 1, 0x8000, 3);
        assert_eq!(checked_entries(&d, true), Ok((124, 3)));
        assert_eq!(entry(&d, at, find(&d, at, 3, 0x3ffe)), (0, 1));
        assert_eq!(entry(&d, at, find(&d, at, 3, 0x4000)), (0x4000, 2));
        assert_eq!(entry(&d, at, find(&d, at, 3, 0xffff_fffe)), (0x8000, 3));
    }
}
