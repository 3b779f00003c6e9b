//! POSIX ACLs: the two encodings (the kernel's xattr form, in which
//! `system.posix_acl_*` values cross the system-call boundary, and ext2's
//! compact on-disk form) and the mode/ACL rules of the kernel's
//! fs/posix_acl.c (equivalent mode, create masking, chmod).

/// Entry tags.
pub const USER_OBJ: u16 = 0x01;
pub const USER: u16 = 0x02;
pub const GROUP_OBJ: u16 = 0x04;
pub const GROUP: u16 = 0x08;
pub const MASK: u16 = 0x10;
pub const OTHER: u16 = 0x20;

/// Version word of the xattr form (posix_acl_xattr_header).
const XATTR_VERSION: u32 = 2;
/// Version word of ext2's on-disk form (ext2_acl_header).
const DISK_VERSION: u32 = 1;
/// The id of entries that have none.
const UNDEFINED_ID: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub tag: u16,
    pub perm: u16,
    /// The user or group of USER and GROUP entries.
    pub id: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl(pub Vec<AclEntry>);

fn has_id(tag: u16) -> bool {
    tag == USER || tag == GROUP
}

impl Acl {
    /// Parse the xattr form: a version word, then 8-byte entries.
    pub fn from_xattr(v: &[u8]) -> Option<Acl> {
        if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) || le32(v, 0) != XATTR_VERSION {
            return None;
        }
        let entries = v[4..]
            .chunks(8)
            .map(|e| {
                let tag = le16(e, 0);
                AclEntry {
                    tag,
                    perm: le16(e, 2),
                    id: if has_id(tag) {
                        le32(e, 4)
                    } else {
                        UNDEFINED_ID
                    },
                }
            })
            .collect();
        Some(Acl(entries))
    }

    pub fn to_xattr(&self) -> Vec<u8> {
        let mut v = XATTR_VERSION.to_le_bytes().to_vec();
        for e in &self.0 {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            let id = if has_id(e.tag) { e.id } else { UNDEFINED_ID };
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    /// Parse ext2's on-disk form: a version word, then 4-byte entries,
    /// 8-byte ones (with an id) for USER and GROUP.
    pub fn from_disk(v: &[u8]) -> Option<Acl> {
        if v.len() < 4 || le32(v, 0) != DISK_VERSION {
            return None;
        }
        let mut entries = Vec::new();
        let mut off = 4;
        while off < v.len() {
            if off + 4 > v.len() {
                return None;
            }
            let tag = le16(v, off);
            let perm = le16(v, off + 2);
            let id = if has_id(tag) {
                if off + 8 > v.len() {
                    return None;
                }
                let id = le32(v, off + 4);
                off += 8;
                id
            } else {
                off += 4;
                UNDEFINED_ID
            };
            entries.push(AclEntry { tag, perm, id });
        }
        Some(Acl(entries))
    }

    pub fn to_disk(&self) -> Vec<u8> {
        let mut v = DISK_VERSION.to_le_bytes().to_vec();
        for e in &self.0 {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            if has_id(e.tag) {
                v.extend_from_slice(&e.id.to_le_bytes());
            }
        }
        v
    }

    /// Whether the kernel would take it (posix_acl_valid): the entries in
    /// their order (owner, named users, group, named groups, mask, other),
    /// each of the three base entries once, a mask when there are named
    /// entries, permissions within rwx. The ids of named entries are not
    /// checked for order or duplicates: kernels since 3.x (kuid/kgid) no
    /// longer do, and store such an ACL as given (checked on 6.18).
    pub fn is_valid(&self) -> bool {
        let mut state = USER_OBJ;
        let mut named = false;
        let mut mask = false;
        for e in &self.0 {
            if e.perm & !7 != 0 {
                return false;
            }
            match (state, e.tag) {
                (USER_OBJ, USER_OBJ) => state = USER,
                (USER, USER) | (GROUP, GROUP) => named = true,
                (USER, GROUP_OBJ) => state = GROUP,
                (GROUP, MASK) => {
                    state = OTHER;
                    mask = true;
                }
                (GROUP | OTHER, OTHER) => state = 0,
                _ => return false,
            }
        }
        state == 0 && (mask || !named)
    }

    /// The permission bits the ACL stands for, and whether the mode says
    /// all of it (posix_acl_equiv_mode): owner, group (the mask, if any)
    /// and other.
    pub fn equiv_mode(&self) -> (u16, bool) {
        let mut mode = 0u16;
        let mut equiv = true;
        let mut mask = None;
        for e in &self.0 {
            match e.tag {
                USER_OBJ => mode |= (e.perm & 7) << 6,
                GROUP_OBJ => mode |= (e.perm & 7) << 3,
                OTHER => mode |= e.perm & 7,
                MASK => {
                    mask = Some(e.perm);
                    equiv = false;
                }
                _ => equiv = false,
            }
        }
        if let Some(m) = mask {
            mode = (mode & !0o070) | ((m & 7) << 3);
        }
        (mode, equiv)
    }

    /// A new inode's access ACL from its directory's default one
    /// (posix_acl_create_masq): the entries narrowed by the requested
    /// `mode` and the mode by the entries. Returns the new permission bits
    /// (the rest of `mode` kept) and whether the ACL says more than they
    /// do, or `None` for an ACL without a group entry.
    pub fn create_masq(&mut self, mode: u16) -> Option<(u16, bool)> {
        let mut m = mode;
        let mut not_equiv = false;
        let mut group_obj = None;
        let mut mask_obj = None;
        for (k, e) in self.0.iter_mut().enumerate() {
            match e.tag {
                USER_OBJ => {
                    e.perm &= (m >> 6) & 7;
                    m &= (e.perm << 6) | !0o700;
                }
                USER | GROUP => not_equiv = true,
                GROUP_OBJ => group_obj = Some(k),
                OTHER => {
                    e.perm &= m & 7;
                    m &= e.perm | !0o007;
                }
                MASK => {
                    mask_obj = Some(k);
                    not_equiv = true;
                }
                _ => return None,
            }
        }
        let g = mask_obj.or(group_obj)?;
        let e = &mut self.0[g];
        e.perm &= (m >> 3) & 7;
        m &= (e.perm << 3) | !0o070;
        Some(((mode & !0o777) | (m & 0o777), not_equiv))
    }

    /// The ACL after chmod to `mode` (posix_acl_chmod): owner, mask (or
    /// group, without a mask) and other follow the mode; named entries
    /// stay. False for an ACL without a group entry.
    pub fn chmod(&mut self, mode: u16) -> bool {
        let mut group_obj = None;
        let mut mask_obj = None;
        for (k, e) in self.0.iter_mut().enumerate() {
            match e.tag {
                USER_OBJ => e.perm = (mode >> 6) & 7,
                OTHER => e.perm = mode & 7,
                GROUP_OBJ => group_obj = Some(k),
                MASK => mask_obj = Some(k),
                _ => {}
            }
        }
        match mask_obj.or(group_obj) {
            Some(g) => {
                self.0[g].perm = (mode >> 3) & 7;
                true
            }
            None => false,
        }
    }
}

fn le16(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}
fn le32(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(es: &[(u16, u16, u32)]) -> Acl {
        Acl(es
            .iter()
            .map(|&(tag, perm, id)| AclEntry { tag, perm, id })
            .collect())
    }
    const U: u32 = UNDEFINED_ID;

    #[test]
    fn both_forms_round_trip() {
        let a = acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 65534),
            (GROUP_OBJ, 4, U),
            (MASK, 4, U),
            (OTHER, 0, U),
        ]);
        let x = a.to_xattr();
        assert_eq!(x.len(), 4 + 5 * 8);
        assert_eq!(Acl::from_xattr(&x), Some(a.clone()));
        let d = a.to_disk();
        // Four short entries and one with an id.
        assert_eq!(d.len(), 4 + 4 * 4 + 8);
        assert_eq!(Acl::from_disk(&d), Some(a));
        assert_eq!(Acl::from_disk(&x), None, "versions differ");
    }

    #[test]
    fn validity_as_the_kernel_judges_it() {
        let ok = acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 1),
            (USER, 4, 2),
            (GROUP_OBJ, 4, U),
            (MASK, 4, U),
            (OTHER, 0, U),
        ]);
        assert!(ok.is_valid());
        assert!(acl(&[(USER_OBJ, 6, U), (GROUP_OBJ, 4, U), (OTHER, 0, U)]).is_valid());
        // Ids out of order and repeated: the kernel (6.18) takes and stores
        // them as given (fs-diff found ext2mfr refusing them with EINVAL).
        assert!(acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 2),
            (USER, 4, 1),
            (USER, 6, 1),
            (GROUP_OBJ, 4, U),
            (GROUP, 4, 7),
            (GROUP, 4, 7),
            (MASK, 4, U),
            (OTHER, 0, U)
        ])
        .is_valid());
        // Named entry without a mask; a base entry missing.
        assert!(!acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 1),
            (GROUP_OBJ, 4, U),
            (OTHER, 0, U)
        ])
        .is_valid());
        assert!(!acl(&[(USER_OBJ, 6, U), (OTHER, 0, U)]).is_valid());
    }

    #[test]
    fn equivalent_mode() {
        let a = acl(&[(USER_OBJ, 7, U), (GROUP_OBJ, 5, U), (OTHER, 1, U)]);
        assert_eq!(a.equiv_mode(), (0o751, true));
        let m = acl(&[
            (USER_OBJ, 6, U),
            (USER, 7, 1),
            (GROUP_OBJ, 4, U),
            (MASK, 6, U),
            (OTHER, 0, U),
        ]);
        assert_eq!(m.equiv_mode(), (0o660, false));
    }

    #[test]
    fn create_masks_both_ways() {
        // default: u::rwx, u:1:rwx, g::r-x, m::rwx, o::r-x; create 0666.
        let mut d = acl(&[
            (USER_OBJ, 7, U),
            (USER, 7, 1),
            (GROUP_OBJ, 5, U),
            (MASK, 7, U),
            (OTHER, 5, U),
        ]);
        assert_eq!(d.create_masq(0o100666), Some((0o100664, true)));
        assert_eq!(d.0[0].perm, 6);
        assert_eq!(d.0[3].perm, 6, "the mask takes the group bits");
        assert_eq!(d.0[4].perm, 4);
    }

    #[test]
    fn chmod_moves_the_mask() {
        let mut a = acl(&[
            (USER_OBJ, 7, U),
            (USER, 7, 1),
            (GROUP_OBJ, 5, U),
            (MASK, 7, U),
            (OTHER, 5, U),
        ]);
        assert!(a.chmod(0o640));
        assert_eq!(a.equiv_mode(), (0o640, false));
        assert_eq!(a.0[2].perm, 5, "the group entry stays under a mask");
    }
}
