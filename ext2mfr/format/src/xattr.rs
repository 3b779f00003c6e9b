//! Extended attributes on disk: an xattr block (`i_file_acl`: a 32-byte
//! header, then entries sorted by name, values packed from the end) and the
//! in-inode area of a large inode (after `i_extra_isize`: a magic word,
//! then entries in the order they were added, value offsets counted from
//! the first entry). Layout, sorting and hashes as the kernel's ext2/ext4
//! drivers and e2fsprogs write them.

/// Starts an xattr block and the in-inode area.
pub const MAGIC: u32 = 0xEA02_0000;
/// Block header: magic, reference count, blocks, hash, reserved.
pub const HEADER_LEN: usize = 32;
/// Entry header: name length, name index, value offset, value inode,
/// value size, hash; the name follows, padded to 4 bytes.
pub const ENTRY_LEN: usize = 16;
/// The four zero bytes that end a list of entries.
const END_LEN: usize = 4;
/// The longest name after its prefix (`e_name_len` is a byte).
pub const NAME_MAX: usize = 255;
/// The in-inode area starts after the 128-byte core and `i_extra_isize`.
const INODE_CORE: usize = 128;

/// Name indexes (`e_name_index`), as the kernel numbers them.
pub const INDEX_USER: u8 = 1;
pub const INDEX_POSIX_ACL_ACCESS: u8 = 2;
pub const INDEX_POSIX_ACL_DEFAULT: u8 = 3;
pub const INDEX_TRUSTED: u8 = 4;
pub const INDEX_SECURITY: u8 = 6;

pub const POSIX_ACL_ACCESS: &str = "system.posix_acl_access";
pub const POSIX_ACL_DEFAULT: &str = "system.posix_acl_default";

/// A name and its value.
pub type Attribute = (String, Vec<u8>);

/// One entry as stored: its name index, the name after the index's
/// prefix, and the value. Entries of indexes we do not know are kept as
/// they are when a list is written back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// The name prefix a name index stands for (`None`: one we do not know,
/// whose entries are not shown).
pub fn prefix(index: u8) -> Option<&'static str> {
    Some(match index {
        INDEX_USER => "user.",
        INDEX_POSIX_ACL_ACCESS => POSIX_ACL_ACCESS,
        INDEX_POSIX_ACL_DEFAULT => POSIX_ACL_DEFAULT,
        INDEX_TRUSTED => "trusted.",
        INDEX_SECURITY => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => return None,
    })
}

/// The index and stored name of a full attribute name, for the
/// namespaces ext2 stores (`None`: EOPNOTSUPP, as the kernel answers for
/// a prefix it has no handler for).
pub fn split_name(full: &[u8]) -> Option<(u8, &[u8])> {
    if full == POSIX_ACL_ACCESS.as_bytes() {
        return Some((INDEX_POSIX_ACL_ACCESS, b""));
    }
    if full == POSIX_ACL_DEFAULT.as_bytes() {
        return Some((INDEX_POSIX_ACL_DEFAULT, b""));
    }
    [INDEX_USER, INDEX_TRUSTED, INDEX_SECURITY]
        .into_iter()
        .find_map(|i| {
            let p = prefix(i).expect("known index").as_bytes();
            full.strip_prefix(p).map(|rest| (i, rest))
        })
}

impl Entry {
    /// The full name (`None`: an index we do not know).
    pub fn full_name(&self) -> Option<String> {
        prefix(self.index).map(|p| format!("{p}{}", String::from_utf8_lossy(&self.name)))
    }

    /// Bytes of the entry header and its padded name.
    fn entry_len(&self) -> usize {
        (ENTRY_LEN + self.name.len() + 3) & !3
    }

    /// Bytes of the padded value.
    fn value_len(&self) -> usize {
        (self.value.len() + 3) & !3
    }

    /// What the entry takes in a list: header, name and value.
    pub fn footprint(&self) -> usize {
        self.entry_len() + self.value_len()
    }

    /// The block order (the kernel's ext4_xattr_find_entry on a sorted
    /// list): name index, then name length, then name.
    fn sort_key(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), &self.name)
    }
}

fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"))
}
fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().expect("2 bytes"))
}
fn put_u32(d: &mut [u8], o: usize, v: u32) {
    d[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// The hash of one entry (ext4_xattr_hash_entry): name bytes, then the
/// value as little-endian words, zero-padded.
pub fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    const NAME_HASH_SHIFT: u32 = 5;
    const VALUE_HASH_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for &c in name {
        hash = (hash << NAME_HASH_SHIFT) ^ (hash >> (32 - NAME_HASH_SHIFT)) ^ c as u32;
    }
    for w in value.chunks(4) {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        hash = (hash << VALUE_HASH_SHIFT)
            ^ (hash >> (32 - VALUE_HASH_SHIFT))
            ^ u32::from_le_bytes(word);
    }
    hash
}

/// The block's hash over its entries' hashes (ext4_xattr_rehash).
fn block_hash(hashes: impl Iterator<Item = u32>) -> u32 {
    const BLOCK_HASH_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for h in hashes {
        if h == 0 {
            // An entry without a hash: the block is not to be shared.
            return 0;
        }
        hash = (hash << BLOCK_HASH_SHIFT) ^ (hash >> (32 - BLOCK_HASH_SHIFT)) ^ h;
    }
    hash
}

/// Entries from `first` on in `d` (an xattr block, or the in-inode area
/// starting at its first entry); value offsets count from the start of `d`.
pub fn parse_raw(d: &[u8], first: usize) -> Result<Vec<Entry>, &'static str> {
    let mut out = Vec::new();
    let mut off = first;
    loop {
        // The list ends with four zero bytes, or where the area ends.
        if off + END_LEN > d.len() || u32_at(d, off) == 0 {
            return Ok(out);
        }
        if off + ENTRY_LEN > d.len() {
            return Err("entry past the end");
        }
        let name_len = d[off] as usize;
        let value_offs = u16_at(d, off + 2) as usize;
        if u32_at(d, off + 4) != 0 {
            return Err("value in an inode of its own (ea_inode) not supported");
        }
        let value_size = u32_at(d, off + 8) as usize;
        let name_end = off + ENTRY_LEN + name_len;
        if name_end > d.len() || value_offs + value_size > d.len() {
            return Err("entry out of bounds");
        }
        out.push(Entry {
            index: d[off + 1],
            name: d[off + ENTRY_LEN..name_end].to_vec(),
            value: d[value_offs..value_offs + value_size].to_vec(),
        });
        off += (ENTRY_LEN + name_len + 3) & !3;
    }
}

/// The shown attributes of a list of entries.
pub fn attributes(entries: Vec<Entry>) -> Vec<Attribute> {
    entries
        .into_iter()
        .filter_map(|e| Some((e.full_name()?, e.value)))
        .collect()
}

/// Lay `entries` out in `area` (zeroed first): headers from `first` on,
/// values packed from the end, offsets from `base`. `hashed`: entries get
/// their hash (blocks); in-inode entries keep 0, as the kernel leaves them.
/// False when they do not fit.
fn lay_out(entries: &[&Entry], area: &mut [u8], first: usize, base: usize, hashed: bool) -> bool {
    let need: usize = entries.iter().map(|e| e.footprint()).sum::<usize>() + END_LEN;
    if first + need > area.len() {
        return false;
    }
    area[first..].fill(0);
    let mut off = first;
    let mut value_end = area.len();
    for e in entries {
        let value_offs = if e.value.is_empty() {
            0
        } else {
            value_end -= e.value_len();
            area[value_end..value_end + e.value.len()].copy_from_slice(&e.value);
            value_end - base
        };
        area[off] = e.name.len() as u8;
        area[off + 1] = e.index;
        area[off + 2..off + 4].copy_from_slice(&(value_offs as u16).to_le_bytes());
        put_u32(area, off + 8, e.value.len() as u32);
        let hash = if hashed {
            entry_hash(&e.name, &e.value)
        } else {
            0
        };
        put_u32(area, off + 12, hash);
        area[off + ENTRY_LEN..off + ENTRY_LEN + e.name.len()].copy_from_slice(&e.name);
        off += e.entry_len();
    }
    true
}

/// An xattr block of `block_size` bytes holding `entries` (sorted as the
/// kernel sorts them, hashed), shared by `refcount` inodes; `None` when
/// they do not fit.
pub fn encode_block(entries: &[Entry], block_size: usize, refcount: u32) -> Option<Vec<u8>> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut d = vec![0u8; block_size];
    if !lay_out(&sorted, &mut d, HEADER_LEN, 0, true) {
        return None;
    }
    put_u32(&mut d, 0, MAGIC);
    put_u32(&mut d, 4, refcount);
    put_u32(&mut d, 8, 1); // h_blocks
    let hashes = sorted.iter().map(|e| entry_hash(&e.name, &e.value));
    let h = block_hash(hashes);
    put_u32(&mut d, 12, h);
    Some(d)
}

/// Whether `entries` fit in an xattr block of `block_size` bytes.
pub fn fits_block(entries: &[Entry], block_size: usize) -> bool {
    HEADER_LEN + entries.iter().map(|e| e.footprint()).sum::<usize>() + END_LEN <= block_size
}

/// The entries of an xattr block.
pub fn block_raw(d: &[u8]) -> Result<Vec<Entry>, &'static str> {
    if d.len() < HEADER_LEN || u32_at(d, 0) != MAGIC {
        return Err("bad magic");
    }
    if u32_at(d, 8) != 1 {
        return Err("h_blocks is not 1");
    }
    parse_raw(d, HEADER_LEN)
}

/// The attributes of an xattr block.
pub fn block_entries(d: &[u8]) -> Result<Vec<Attribute>, &'static str> {
    block_raw(d).map(attributes)
}

/// How many inodes share an xattr block (`None`: not an xattr block).
pub fn block_refcount(d: &[u8]) -> Option<u32> {
    (d.len() >= HEADER_LEN && u32_at(d, 0) == MAGIC).then(|| u32_at(d, 4))
}

pub fn set_block_refcount(d: &mut [u8], refs: u32) {
    put_u32(d, 4, refs);
}

/// The block hash (`h_hash`) of an xattr block (0: none, or not one).
pub fn block_hash_of(d: &[u8]) -> u32 {
    if d.len() < HEADER_LEN || u32_at(d, 0) != MAGIC {
        return 0;
    }
    u32_at(d, 12)
}

/// Whether `candidate` is an xattr block in use by fewer than `max`
/// inodes holding the same entries as the block `wanted`, so an inode
/// wanting `wanted` may share it (the kernel's ext4_xattr_cmp).
pub fn same_block_but_refcount(candidate: &[u8], wanted: &[u8], max: u32) -> bool {
    match block_refcount(candidate) {
        Some(refs) if refs >= 1 && refs < max => {}
        _ => return false,
    }
    if block_hash_of(candidate) != block_hash_of(wanted) {
        return false;
    }
    match (block_raw(candidate), block_raw(wanted)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Where the in-inode area of a slot starts (its magic word), if the
/// inode has one: a large inode whose extra fields leave room.
pub fn ibody_start(slot: &[u8]) -> Option<usize> {
    if slot.len() <= INODE_CORE + 2 {
        return None;
    }
    let extra = u16_at(slot, INODE_CORE) as usize;
    let start = INODE_CORE + extra;
    (extra >= 4 && extra.is_multiple_of(4) && start + 4 + END_LEN <= slot.len()).then_some(start)
}

/// The entries in the extra space of a large inode's on-disk slot. A
/// missing area (no magic) is no entries; a malformed one an error.
pub fn ibody_raw(slot: &[u8]) -> Result<Vec<Entry>, &'static str> {
    match ibody_start(slot) {
        Some(start) if u32_at(slot, start) == MAGIC => parse_raw(&slot[start + 4..], 0),
        _ => Ok(Vec::new()),
    }
}

/// Does the extra space of a large inode's on-disk slot hold any entry?
/// (A look at the first entry only, without parsing the list: for
/// estimates, where a malformed list may count as holding entries.)
pub fn ibody_has_entries(slot: &[u8]) -> bool {
    match ibody_start(slot) {
        Some(start) if u32_at(slot, start) == MAGIC => u32_at(slot, start + 4) != 0,
        _ => false,
    }
}

/// The attributes in the extra space of a large inode's on-disk slot.
pub fn ibody_entries(slot: &[u8]) -> Result<Vec<Attribute>, &'static str> {
    ibody_raw(slot).map(attributes)
}

/// Write `entries` into the in-inode area of `slot` in their order
/// (the magic word cleared when there are none, as the kernel leaves an
/// empty area); false, and the slot unchanged, when they do not fit.
pub fn encode_ibody(entries: &[Entry], slot: &mut [u8]) -> bool {
    let Some(start) = ibody_start(slot) else {
        return entries.is_empty();
    };
    let area = &mut slot[start + 4..];
    let refs: Vec<&Entry> = entries.iter().collect();
    if !lay_out(&refs, area, 0, 0, false) {
        return false;
    }
    let magic = if entries.is_empty() { 0 } else { MAGIC };
    put_u32(slot, start, magic);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u8, name: &str, value: &[u8]) -> Entry {
        Entry {
            index,
            name: name.as_bytes().to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn names_split_by_namespace() {
        assert_eq!(split_name(b"user.k"), Some((INDEX_USER, &b"k"[..])));
        assert_eq!(
            split_name(b"security.selinux"),
            Some((INDEX_SECURITY, &b"selinux"[..]))
        );
        assert_eq!(split_name(b"trusted.x"), Some((INDEX_TRUSTED, &b"x"[..])));
        assert_eq!(
            split_name(POSIX_ACL_ACCESS.as_bytes()),
            Some((INDEX_POSIX_ACL_ACCESS, &b""[..]))
        );
        assert_eq!(split_name(b"system.foo"), None);
        assert_eq!(split_name(b"os2.x"), None);
    }

    #[test]
    fn block_round_trips_sorted_and_hashed() {
        let entries = vec![
            e(INDEX_USER, "zz", b"1"),
            e(INDEX_SECURITY, "a", b"22"),
            e(INDEX_USER, "b", b""),
        ];
        let d = encode_block(&entries, 1024, 1).unwrap();
        let back = block_raw(&d).unwrap();
        // Index first, then name length, then name.
        let names: Vec<_> = back.iter().map(|e| e.full_name().unwrap()).collect();
        assert_eq!(names, ["user.b", "user.zz", "security.a"]);
        assert_eq!(block_refcount(&d), Some(1));
        // Each entry's hash as stored.
        let mut off = HEADER_LEN;
        for x in &back {
            assert_eq!(u32_at(&d, off + 12), entry_hash(&x.name, &x.value));
            off += x.entry_len();
        }
        assert_ne!(u32_at(&d, 12), 0);
    }

    #[test]
    fn block_refuses_what_does_not_fit() {
        let big = e(
            INDEX_USER,
            "v",
            &[7u8; 1024 - HEADER_LEN - ENTRY_LEN - 4 - END_LEN],
        );
        assert!(fits_block(std::slice::from_ref(&big), 1024));
        assert!(encode_block(std::slice::from_ref(&big), 1024, 1).is_some());
        let bigger = e(
            INDEX_USER,
            "v",
            &[7u8; 1024 - HEADER_LEN - ENTRY_LEN - 4 - END_LEN + 1],
        );
        assert!(!fits_block(std::slice::from_ref(&bigger), 1024));
        assert!(encode_block(&[bigger], 1024, 1).is_none());
    }

    #[test]
    fn ibody_round_trips_in_order_and_clears_magic() {
        let mut slot = vec![0u8; 256];
        slot[128..130].copy_from_slice(&32u16.to_le_bytes());
        let entries = vec![e(INDEX_USER, "b", b"xyz"), e(INDEX_USER, "a", b"")];
        assert!(!ibody_has_entries(&slot), "no magic: none");
        assert!(encode_ibody(&entries, &mut slot));
        assert_eq!(ibody_raw(&slot).unwrap(), entries);
        assert!(ibody_has_entries(&slot));
        assert!(encode_ibody(&[], &mut slot));
        assert_eq!(u32_at(&slot, 160), 0);
        assert!(ibody_raw(&slot).unwrap().is_empty());
        assert!(!ibody_has_entries(&slot));
        // 256 - 160 - 4 (magic) = 92 bytes: 16 + 4 name + 68 value + 4 end.
        assert!(encode_ibody(&[e(INDEX_USER, "k", &[1; 68])], &mut slot));
        assert!(!encode_ibody(&[e(INDEX_USER, "k", &[1; 69])], &mut slot));
    }

    #[test]
    fn hash_matches_the_kernels_for_a_known_entry() {
        // "a" = 0x61; value "b\0\0\0" = 0x62 as one word:
        // (0x61 << 16) ^ (0x61 >> 16) ^ 0x62.
        assert_eq!(entry_hash(b"a", b"b"), (0x61 << 16) ^ 0x62);
    }
}
