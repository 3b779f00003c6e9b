//! Generating the extended-attribute and ACL ops: names from small pools
//! per namespace (so gets, replaces and removes hit names that exist),
//! now and then a name the kernel refuses (a namespace ext2 has no index
//! for, a bare prefix, 256 bytes); values from empty up to past a block
//! (so the in-inode area overflows into the block, and the block into
//! ENOSPC); POSIX ACLs from a small generator, mostly valid, on files and
//! directories (a default ACL on a file: EACCES).

use super::super::ops::{
    acl_xattr, AclEntry, Op, XValue, ACL_ACCESS, ACL_DEFAULT, ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK,
    ACL_OTHER, ACL_USER, ACL_USER_OBJ, SLOTS,
};
use super::super::xattr::SIZE_MAX;
use super::Generator;
use rand::Rng;

/// The id setfacl writes in the entries that name no one (ACL_UNDEFINED_ID).
const UNDEFINED_ID: u32 = u32::MAX;

/// Ids of named ACL entries: root, a user, nobody, large ones (not -1,
/// which is no valid id).
const IDS: [u32; 6] = [0, 1, 1000, 65534, 100_000, 4_294_967_294];

impl Generator {
    /// A generic xattr op (user., trusted., security., odd names).
    pub(super) fn xattr_op(&mut self) -> Op {
        let nofollow = self.chance(25);
        let r = self.rng.gen_range(0..100);
        // Through a descriptor when one is open (regular files only).
        if r >= 90 {
            let open: Vec<u8> = (0..SLOTS)
                .filter(|s| self.slots[*s as usize].is_some())
                .collect();
            if !open.is_empty() {
                let slot = open[self.rng.gen_range(0..open.len())];
                let name = self.xattr_name();
                return if self.chance(70) {
                    let value = self.value_for(&name);
                    Op::FdSetXattr {
                        slot,
                        name,
                        value,
                        flags: self.set_flags(),
                    }
                } else {
                    Op::FdGetXattr {
                        slot,
                        size: self.get_size(),
                        name,
                    }
                };
            }
        }
        // Mostly files and directories: user.* is refused (EPERM) on
        // anything else, which a few picks still try.
        let t = match self.rng.gen_range(0..100) {
            0..=59 => '-',
            60..=84 => 'd',
            _ => '*',
        };
        let path = self.pick_or_new(t, 92);
        match r {
            0..=44 | 90.. => {
                let name = self.xattr_name();
                Op::SetXattr {
                    path,
                    nofollow,
                    value: self.value_for(&name),
                    name,
                    flags: self.set_flags(),
                }
            }
            45..=64 => Op::GetXattr {
                path,
                nofollow,
                name: self.xattr_name(),
                size: self.get_size(),
            },
            65..=74 => Op::ListXattr {
                path,
                nofollow,
                size: self.get_size(),
            },
            _ => Op::RemoveXattr {
                path,
                nofollow,
                name: self.xattr_name(),
            },
        }
    }

    /// An op on system.posix_acl_access or system.posix_acl_default.
    pub(super) fn acl_op(&mut self) -> Op {
        let default = self.chance(40);
        let name = if default { ACL_DEFAULT } else { ACL_ACCESS }.to_string();
        let t = match (default, self.rng.gen_range(0..100)) {
            // Default ACLs on directories, sometimes on files (EACCES).
            (true, 0..=79) => 'd',
            (true, _) => '-',
            (false, 0..=59) => '-',
            (false, 60..=89) => 'd',
            // Symlinks, device nodes, FIFOs too.
            (false, _) => '*',
        };
        let path = self.pick_or_new(t, 92);
        let nofollow = self.chance(20);
        match self.rng.gen_range(0..100) {
            0..=64 => Op::SetXattr {
                path,
                nofollow,
                name,
                value: XValue::Acl(self.acl()),
                // The kernel ignores the flags for ACLs (vfs_set_acl).
                flags: self.set_flags(),
            },
            65..=71 => Op::SetXattr {
                path,
                nofollow,
                name,
                value: self.bad_acl(),
                flags: 0,
            },
            // An empty value removes the ACL.
            72..=74 => Op::SetXattr {
                path,
                nofollow,
                name,
                value: XValue::Raw(Vec::new()),
                flags: 0,
            },
            75..=89 => Op::RemoveXattr {
                path,
                nofollow,
                name,
            },
            _ => Op::GetXattr {
                path,
                nofollow,
                name,
                size: self.get_size(),
            },
        }
    }

    fn xattr_name(&mut self) -> String {
        match self.rng.gen_range(0..100) {
            0..=59 => format!(
                "user.{}",
                ["a", "b", "c", "d", "mime_type", "k"][self.rng.gen_range(0..6)]
            ),
            60..=71 => format!("trusted.t{}", self.rng.gen_range(0..3)),
            72..=80 => format!("security.s{}", self.rng.gen_range(0..2)),
            81..=84 => "security.capability".into(),
            // The longest name (255 bytes in all) and one byte more (ERANGE).
            85..=88 => {
                let len = [200usize, 255, 255, 256][self.rng.gen_range(0..4)];
                let mut s = format!("user.L{len}");
                while s.len() < len {
                    s.push('x');
                }
                s
            }
            // Names the kernel refuses: no such namespace (EOPNOTSUPP; for
            // system.* too: only the ACLs are system attributes of ext2),
            // a bare prefix (EINVAL), the empty name (ERANGE).
            89..=96 => [
                "os2.x",
                "system.foo",
                "xfs.a",
                "user.",
                "trusted.",
                "security.",
                "",
                "user",
            ][self.rng.gen_range(0..8)]
            .into(),
            _ => [ACL_ACCESS, ACL_DEFAULT][self.rng.gen_range(0..2)].into(),
        }
    }

    /// A value fitting the name: an ACL for an ACL name, a capability
    /// structure (mostly) for security.capability, else seeded bytes.
    fn value_for(&mut self, name: &str) -> XValue {
        if name == ACL_ACCESS || name == ACL_DEFAULT {
            return XValue::Acl(self.acl());
        }
        if name == "security.capability" && self.chance(70) {
            return XValue::Raw(self.capability());
        }
        XValue::Data {
            seed: self.rng.gen(),
            len: self.value_len(),
        }
    }

    /// Value lengths: empty, small (in-inode), around what the inode's
    /// extra space holds, around a block (into the block, over it:
    /// ENOSPC), now and then past XATTR_SIZE_MAX (E2BIG).
    fn value_len(&mut self) -> u32 {
        let bs = self.block_size;
        match self.rng.gen_range(0..100) {
            0..=7 => 0,
            8..=49 => self.rng.gen_range(1..48),
            50..=64 => self.rng.gen_range(48..160),
            65..=79 => self.rng.gen_range(bs / 4..bs / 2 + 64),
            80..=97 => self.rng.gen_range(bs - 128..bs + 16),
            _ => [SIZE_MAX, SIZE_MAX + 1][self.rng.gen_range(0..2)],
        }
    }

    /// 0 mostly; XATTR_CREATE, XATTR_REPLACE, and now and then both (which
    /// can never succeed: ENODATA or EEXIST).
    fn set_flags(&mut self) -> i32 {
        match self.rng.gen_range(0..100) {
            0..=59 => 0,
            60..=79 => libc::XATTR_CREATE,
            80..=96 => libc::XATTR_REPLACE,
            _ => libc::XATTR_CREATE | libc::XATTR_REPLACE,
        }
    }

    /// getxattr/listxattr buffer sizes: the size query, small ones (ERANGE
    /// for longer values), up to a block, or the largest.
    fn get_size(&mut self) -> u32 {
        match self.rng.gen_range(0..100) {
            0..=19 => 0,
            20..=34 => self.rng.gen_range(1..24),
            35..=44 => self.rng.gen_range(24..self.block_size + 64),
            _ => SIZE_MAX,
        }
    }

    /// A valid ACL in setfacl's order: u::, named users (ascending ids),
    /// g::, named groups, the mask (required with named entries, optional
    /// without), o::. Minimal ones (three entries) are frequent: for an
    /// access ACL the kernel then only sets the mode and stores nothing.
    fn acl(&mut self) -> Vec<AclEntry> {
        let obj_id = |g: &mut Self| if g.chance(80) { UNDEFINED_ID } else { 0 };
        let perm = |g: &mut Self| g.rng.gen_range(0..8u16);
        let named = |g: &mut Self, tag: u16, max: usize| -> Vec<AclEntry> {
            let n = g.rng.gen_range(0..=max);
            let mut ids: Vec<u32> = (0..n).map(|_| IDS[g.rng.gen_range(0..IDS.len())]).collect();
            // Now and then as drawn: ids out of order or repeated are
            // valid to the kernel (posix_acl_valid does not compare them;
            // setfacl would sort them).
            if g.chance(85) {
                ids.sort();
                ids.dedup();
            }
            ids.into_iter().map(|id| (tag, perm(g), id)).collect()
        };
        let minimal = self.chance(35);
        let users = if minimal {
            Vec::new()
        } else {
            named(self, ACL_USER, 3)
        };
        let groups = if minimal {
            Vec::new()
        } else {
            named(self, ACL_GROUP, 2)
        };
        let mut e = vec![(ACL_USER_OBJ, perm(self), obj_id(self))];
        e.extend(users);
        e.push((ACL_GROUP_OBJ, perm(self), obj_id(self)));
        let has_named = e.len() > 2 || !groups.is_empty();
        e.extend(groups);
        if has_named || (!minimal && self.chance(30)) {
            e.push((ACL_MASK, perm(self), obj_id(self)));
        }
        e.push((ACL_OTHER, perm(self), obj_id(self)));
        e
    }

    /// An ACL the kernel refuses: EINVAL for a named entry without a
    /// mask, a second base entry, entries out of order, a permission bit
    /// beyond rwx, the id -1, a length that is no whole entry;
    /// EOPNOTSUPP for another version.
    fn bad_acl(&mut self) -> XValue {
        let base = vec![
            (ACL_USER_OBJ, 6, UNDEFINED_ID),
            (ACL_GROUP_OBJ, 4, UNDEFINED_ID),
            (ACL_OTHER, 4, UNDEFINED_ID),
        ];
        match self.rng.gen_range(0..7) {
            0 => XValue::Acl(vec![
                (ACL_USER_OBJ, 6, UNDEFINED_ID),
                (ACL_USER, 4, 1000),
                (ACL_GROUP_OBJ, 4, UNDEFINED_ID),
                (ACL_OTHER, 0, UNDEFINED_ID),
            ]),
            1 => XValue::Acl(vec![
                (ACL_USER_OBJ, 6, UNDEFINED_ID),
                (ACL_USER_OBJ, 6, UNDEFINED_ID),
                (ACL_GROUP_OBJ, 4, UNDEFINED_ID),
                (ACL_MASK, 6, UNDEFINED_ID),
                (ACL_OTHER, 0, UNDEFINED_ID),
            ]),
            2 => XValue::Acl(vec![base[2], base[0], base[1]]),
            3 => XValue::Acl(vec![(ACL_USER_OBJ, 0o10, UNDEFINED_ID), base[1], base[2]]),
            4 => XValue::Acl(vec![
                base[0],
                (ACL_USER, 4, u32::MAX),
                base[1],
                (ACL_MASK, 4, UNDEFINED_ID),
                base[2],
            ]),
            5 => {
                let mut v = acl_xattr(2, &base);
                v.truncate(v.len() - 3);
                XValue::Raw(v)
            }
            _ => XValue::Raw(acl_xattr(1, &base)),
        }
    }

    /// A security.capability value: VFS_CAP_REVISION_2 (20 bytes), with
    /// or without the effective flag, a few capabilities permitted.
    fn capability(&mut self) -> Vec<u8> {
        let magic: u32 = 0x0200_0000 | u32::from(self.chance(50));
        let permitted: u32 = [1 << 10, 1 << 12 | 1 << 13, 0][self.rng.gen_range(0..3)];
        let mut v = magic.to_le_bytes().to_vec();
        for w in [permitted, 0, 0, 0] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }
}
