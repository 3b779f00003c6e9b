//! Extended attributes on disk: an xattr block (`i_file_acl`: a 32-byte
//! header, then entries, values packed from the end) and the in-inode area
//! of a large inode (after `i_extra_isize`: a magic word, then entries
//! laid out as in a block, value offsets counted from the first entry).

/// Starts an xattr block and the in-inode area.
pub const MAGIC: u32 = 0xEA02_0000;
/// Block header: magic, reference count, blocks, hash, reserved.
pub const HEADER_LEN: usize = 32;
/// Entry header: name length, name index, value offset, value inode,
/// value size, hash; the name follows, padded to 4 bytes.
pub const ENTRY_LEN: usize = 16;

/// A name and its value.
pub type Attribute = (String, Vec<u8>);

/// The name prefix a name index stands for (`None`: one we do not know,
/// whose entries are skipped).
pub fn prefix(index: u8) -> Option<&'static str> {
    Some(match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => return None,
    })
}

fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"))
}
fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().expect("2 bytes"))
}

/// Entries from `first` on in `d` (an xattr block, or the in-inode area
/// starting at its first entry); value offsets count from the start of `d`.
pub fn parse_entries(d: &[u8], first: usize) -> Result<Vec<Attribute>, &'static str> {
    let mut out = Vec::new();
    let mut off = first;
    loop {
        // The list ends with four zero bytes, or where the area ends.
        if off + 4 > d.len() || u32_at(d, off) == 0 {
            return Ok(out);
        }
        if off + ENTRY_LEN > d.len() {
            return Err("entry past the end");
        }
        let name_len = d[off] as usize;
        let value_offs = u16_at(d, off + 2) as usize;
        let value_size = u32_at(d, off + 8) as usize;
        let name_end = off + ENTRY_LEN + name_len;
        if name_end > d.len() || value_offs + value_size > d.len() {
            return Err("entry out of bounds");
        }
        if let Some(p) = prefix(d[off + 1]) {
            let name = format!(
                "{p}{}",
                String::from_utf8_lossy(&d[off + ENTRY_LEN..name_end])
            );
            out.push((name, d[value_offs..value_offs + value_size].to_vec()));
        }
        off += (ENTRY_LEN + name_len + 3) & !3;
    }
}

/// The attributes of an xattr block.
pub fn block_entries(d: &[u8]) -> Result<Vec<Attribute>, &'static str> {
    if d.len() < HEADER_LEN || u32_at(d, 0) != MAGIC {
        return Err("bad magic");
    }
    parse_entries(d, HEADER_LEN)
}

/// How many inodes share an xattr block (`None`: not an xattr block).
pub fn block_refcount(d: &[u8]) -> Option<u32> {
    (d.len() >= HEADER_LEN && u32_at(d, 0) == MAGIC).then(|| u32_at(d, 4))
}

pub fn set_block_refcount(d: &mut [u8], refs: u32) {
    d[4..8].copy_from_slice(&refs.to_le_bytes());
}

/// The attributes in the extra space of a large inode's on-disk slot. A
/// missing or misplaced area is no attributes; a malformed one an error.
pub fn ibody_entries(slot: &[u8]) -> Result<Vec<Attribute>, &'static str> {
    if slot.len() <= 128 + 4 {
        return Ok(Vec::new());
    }
    let extra = u16_at(slot, 128) as usize;
    let start = 128 + extra + 4; // first entry, and base of value offsets
    if extra % 4 != 0 || start > slot.len() || u32_at(slot, start - 4) != MAGIC {
        return Ok(Vec::new());
    }
    parse_entries(&slot[start..], 0)
}
