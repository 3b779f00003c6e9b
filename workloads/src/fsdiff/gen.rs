//! The seeded random op generator. It keeps a model of the names that exist
//! (re-read from the kernel's mount after every op that changed the set of
//! names, so it is exact for the reference side) so most ops hit existing
//! names of a fitting type, and some deliberately miss: absent names,
//! paths through a file, names of 255 and 256 bytes, wrong types. The
//! extended-attribute and ACL ops are made in gen/xattr.rs.

use super::ops::{NodeKind, Op, RenameFlags, Time, SLOTS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

mod xattr;

/// Op kinds the generator can make (for `--without`; "users": no op runs
/// as another user than root).
pub const KINDS: &[&str] = &[
    "users",
    "write",
    "mknod",
    "mkdir",
    "rmdir",
    "unlink",
    "link",
    "symlink",
    "rename",
    "truncate",
    "fallocate",
    "chmod",
    "chown",
    "utimens",
    "stat",
    "read",
    "readlink",
    "readdir",
    "statfs",
    "fd",
    "xattr",
    "acl",
];

/// The largest file size of a block-mapped ext2 file, as the kernel
/// computes it (fs/ext2/super.c ext2_max_size, the same in ext4's
/// ext4_max_bitmap_size without huge_file): the block tree's reach, capped
/// so that data plus indirect blocks fit i_blocks' 2^32 sectors.
pub fn max_file_size(block_size: u32) -> u64 {
    let bits = block_size.trailing_zeros() as u64;
    let ppb = u64::from(block_size / 4);
    let mut upper = ((1u64 << 32) - 1) >> (bits - 9);
    let mut res = 12 + ppb + ppb * ppb + ppb * ppb * ppb;
    let mut meta = 1 + (1 + ppb) + (1 + ppb + ppb * ppb);
    if res + meta > upper {
        res = upper;
        upper -= 12;
        meta = 1;
        upper -= ppb;
        if upper < ppb * ppb {
            meta += 1 + upper.div_ceil(ppb);
        } else {
            meta += 1 + ppb;
            upper -= ppb * ppb;
            meta += 1 + upper.div_ceil(ppb) + upper.div_ceil(ppb * ppb);
        }
        res -= meta;
    }
    (res << bits).min(i64::MAX as u64)
}

/// A fallocate's mode, mostly a hole punch (PUNCH_HOLE|KEEP_SIZE, what
/// ext2 serves), sometimes preallocation or ZERO_RANGE (EOPNOTSUPP on
/// both drivers). Taken from the range's own numbers rather than a new
/// random draw, so that every seed generates the same operations as before
/// the mode was varied (reproducers quoted by seed stay valid).
fn fallocate_mode(off: u64, len: u64) -> i32 {
    match off.wrapping_add(len) % 8 {
        0..=5 => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        6 => 0,
        _ => libc::FALLOC_FL_ZERO_RANGE,
    }
}

/// The kernel keeps timestamps of 256-byte inodes within
/// [S32_MIN, 2446-05-10] (seconds with 2 epoch bits) and zeroes the
/// nanoseconds of a clamped value: the value a stat shows after utimensat.
pub fn clamp_time(t: (i64, i64)) -> (i64, i64) {
    const MIN: i64 = i32::MIN as i64;
    const MAX: i64 = (1i64 << 34) - 1 + i32::MIN as i64;
    if t.0 <= MIN {
        (MIN, 0)
    } else if t.0 >= MAX {
        (MAX, 0)
    } else {
        t
    }
}

/// The other users an op may run as (uid, gid, supplementary groups): one
/// with no group but its own, one in root's group (gid 0, which owns what
/// root makes) by a supplementary group, one whose primary group is
/// another user's.
const OTHER_USERS: [(u32, u32, &[u32]); 4] = [
    (1000, 1000, &[]),
    (1000, 1000, &[0, 2000]),
    (65534, 65534, &[1000]),
    (2000, 1000, &[]),
];

/// Percent of the ops that run as another user ("users" in `without`
/// leaves them all to root).
const AS_OTHER_USER: u32 = 15;

pub struct Generator {
    rng: StdRng,
    /// Whether an op runs as another user, and as whom: a stream of its
    /// own, so that the ops drawn from `rng` are those of the same seed
    /// without users.
    users: StdRng,
    block_size: u32,
    max_size: u64,
    /// (path, ls -l type letter) of every entry but the root.
    entries: Vec<(String, char)>,
    /// The path each descriptor slot was opened on (a hint: unlink it).
    slots: [Option<String>; SLOTS as usize],
    stale: bool,
    without: Vec<String>,
}

impl Generator {
    pub fn new(seed: u64, block_size: u32, without: &[String]) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            users: StdRng::seed_from_u64(seed ^ 0x05e7_05e7_05e7_05e7),
            block_size,
            max_size: max_file_size(block_size),
            entries: Vec::new(),
            slots: Default::default(),
            stale: true,
            without: without.to_vec(),
        }
    }

    /// Learn from the reference side's answer.
    pub fn observe(&mut self, op: &Op, ok: bool) {
        if ok && op.changes_names() {
            self.stale = true;
        }
        match op.inner() {
            Op::FdOpen { slot, path, .. } => self.slots[*slot as usize] = ok.then(|| path.clone()),
            Op::FdClose { slot } => self.slots[*slot as usize] = None,
            _ => {}
        }
    }

    fn refresh(&mut self, root: &Path) {
        if !self.stale {
            return;
        }
        self.stale = false;
        self.entries.clear();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(root.join(&dir)) else {
                continue;
            };
            let mut names: Vec<_> = rd.flatten().collect();
            // Sorted, so the model (and thus the sequence) is a function of
            // the seed alone, not of readdir order.
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                let t = match e.file_type() {
                    Ok(t) if t.is_dir() => 'd',
                    Ok(t) if t.is_file() => '-',
                    Ok(t) if t.is_symlink() => 'l',
                    _ => 's',
                };
                if t == 'd' {
                    stack.push(rel.clone());
                }
                self.entries.push((rel, t));
            }
        }
    }

    /// The next op; `kernel_root` is read to refresh the model.
    pub fn next(&mut self, kernel_root: &Path) -> Op {
        self.refresh(kernel_root);
        // Weights; deletions weigh more once the tree is big, so it stays
        // at a few hundred entries.
        let big = self.entries.len() > 150;
        let table: [(&str, u32); 21] = [
            ("write", 16),
            ("mknod", 5),
            ("mkdir", 6),
            ("rmdir", if big { 8 } else { 4 }),
            ("unlink", if big { 14 } else { 6 }),
            ("link", 4),
            ("symlink", 4),
            ("rename", 9),
            ("truncate", 5),
            ("fallocate", 1),
            ("chmod", 4),
            ("chown", 4),
            ("utimens", 5),
            ("stat", 5),
            ("read", 4),
            ("readlink", 2),
            ("readdir", 2),
            ("statfs", 1),
            ("fd", 14),
            ("xattr", 10),
            ("acl", 5),
        ];
        let total: u32 = table
            .iter()
            .filter(|(k, _)| !self.without.iter().any(|w| w == k))
            .map(|(_, w)| w)
            .sum();
        let mut r = self.rng.gen_range(0..total.max(1));
        let mut kind = "stat";
        for (k, w) in table {
            if self.without.iter().any(|x| x == k) {
                continue;
            }
            if r < w {
                kind = k;
                break;
            }
            r -= w;
        }
        let op = self.make(kind);
        let other = self.users.gen_range(0..100) < AS_OTHER_USER;
        let (uid, gid, groups) = OTHER_USERS[self.users.gen_range(0..OTHER_USERS.len())];
        if other && !self.without.iter().any(|w| w == "users") {
            Op::AsUser {
                uid,
                gid,
                groups: groups.to_vec(),
                op: Box::new(op),
            }
        } else {
            op
        }
    }

    fn make(&mut self, kind: &str) -> Op {
        match kind {
            "write" => {
                let path = self.pick_or_new('-', 65);
                let append = self.chance(15);
                Op::WriteFile {
                    path,
                    excl: self.chance(15),
                    trunc: self.chance(15),
                    append,
                    at: if self.chance(30) {
                        None
                    } else {
                        Some(self.offset())
                    },
                    len: self.length(),
                    seed: self.rng.gen(),
                    mode: self.perm(),
                }
            }
            "mknod" => {
                let kinds = [
                    NodeKind::Reg,
                    NodeKind::Chr,
                    NodeKind::Blk,
                    NodeKind::Fifo,
                    NodeKind::Sock,
                ];
                let kind = kinds[self.rng.gen_range(0..kinds.len())];
                let (major, minor) = if self.chance(50) {
                    (self.rng.gen_range(0..256), self.rng.gen_range(0..256))
                } else {
                    (
                        self.rng.gen_range(0..4096),
                        self.rng.gen_range(0..1_048_576),
                    )
                };
                Op::Mknod {
                    path: self.new_path(),
                    kind,
                    perm: self.perm(),
                    major,
                    minor,
                }
            }
            "mkdir" => Op::Mkdir {
                path: self.new_path(),
                perm: [0o755, 0o700, 0o2755, 0o1777, 0o777][self.rng.gen_range(0..5)],
            },
            "rmdir" => {
                // Empty directories half of the time: most are not.
                let empty: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|(p, t)| {
                        *t == 'd'
                            && !self
                                .entries
                                .iter()
                                .any(|(q, _)| q.starts_with(&format!("{p}/")))
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                let path = if !empty.is_empty() && self.chance(50) {
                    empty[self.rng.gen_range(0..empty.len())].clone()
                } else {
                    self.pick_or_new('d', 90)
                };
                Op::Rmdir { path }
            }
            "unlink" => {
                let open: Vec<String> = self.slots.iter().flatten().cloned().collect();
                let path = if !open.is_empty() && self.chance(30) {
                    open[self.rng.gen_range(0..open.len())].clone()
                } else {
                    let t = if self.chance(85) { '!' } else { '*' };
                    self.pick_or_new(t, 90)
                };
                Op::Unlink { path }
            }
            "link" => {
                let t = if self.chance(85) { '-' } else { '*' };
                Op::Link {
                    from: self.pick_or_new(t, 90),
                    to: self.pick_or_new('*', 15),
                }
            }
            "symlink" => Op::Symlink {
                target: self.symlink_target(),
                path: self.new_path(),
            },
            "rename" => self.rename(),
            "truncate" => Op::Truncate {
                path: self.pick_or_new('-', 90),
                size: self.size(),
            },
            "fallocate" => {
                let path = self.pick_or_new('-', 90);
                let off = self.offset();
                let len = u64::from(self.length()).max(1);
                Op::Fallocate {
                    path,
                    mode: fallocate_mode(off, len),
                    off,
                    len,
                }
            }
            "chmod" => Op::Chmod {
                path: self.pick_or_new('*', 90),
                mode: self.mode_bits(),
            },
            "chown" => {
                let ids = [
                    0u32,
                    1,
                    2,
                    1000,
                    65534,
                    65535,
                    65536,
                    100_000,
                    4_294_967_294,
                ];
                let id = |this: &mut Self| {
                    if this.chance(25) {
                        None
                    } else {
                        Some(ids[this.rng.gen_range(0..ids.len())])
                    }
                };
                let uid = id(self);
                let gid = id(self);
                Op::Chown {
                    path: self.pick_or_new('*', 90),
                    uid,
                    gid,
                    nofollow: self.chance(50),
                }
            }
            "utimens" => {
                let atime = self.time();
                let mtime = self.time();
                Op::Utimens {
                    path: self.pick_or_new('*', 92),
                    atime,
                    mtime,
                    nofollow: self.chance(40),
                }
            }
            "stat" => Op::Stat {
                path: self.pick_or_new('*', 85),
            },
            "read" => Op::Read {
                path: self.pick_or_new('-', 90),
                off: if self.chance(70) {
                    self.rng.gen_range(0..256 << 10)
                } else {
                    self.offset()
                },
                len: self.length(),
            },
            "readlink" => Op::Readlink {
                path: self.pick_or_new('l', 85),
            },
            "readdir" => Op::Readdir {
                path: self.pick_or_new('d', 90),
            },
            "statfs" => Op::Statfs,
            "xattr" => self.xattr_op(),
            "acl" => self.acl_op(),
            _ => self.fd_op(),
        }
    }

    fn fd_op(&mut self) -> Op {
        let open: Vec<u8> = (0..SLOTS)
            .filter(|s| self.slots[*s as usize].is_some())
            .collect();
        if open.is_empty() || self.chance(20) {
            let slot = self.rng.gen_range(0..SLOTS);
            return Op::FdOpen {
                slot,
                path: self.pick_or_new('-', 70),
                creat: self.chance(60),
                trunc: self.chance(10),
                append: self.chance(15),
            };
        }
        let slot = open[self.rng.gen_range(0..open.len())];
        match self.rng.gen_range(0..100) {
            0..=39 => Op::FdWrite {
                slot,
                at: if self.chance(25) {
                    None
                } else {
                    Some(self.offset())
                },
                len: self.length(),
                seed: self.rng.gen(),
            },
            40..=59 => Op::FdRead {
                slot,
                off: self.rng.gen_range(0..256 << 10),
                len: self.length(),
            },
            60..=74 => Op::FdStat { slot },
            75..=84 => Op::FdTruncate {
                slot,
                size: self.size(),
            },
            _ => Op::FdClose { slot },
        }
    }

    fn rename(&mut self) -> Op {
        let from = self.pick_or_new('*', 92);
        let from_type = self.type_of(&from);
        let to = match self.rng.gen_range(0..100) {
            // Over an entry of the same type (file over file, directory
            // over an empty or a non-empty directory).
            0..=29 => self.pick_or_new(from_type.unwrap_or('-'), 95),
            30..=49 => self.pick_or_new('*', 95),
            // A new name, often in another directory.
            50..=74 => self.new_path(),
            75..=81 => from.clone(),
            // A directory into its own subdirectory (or below a file).
            _ => {
                let below: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|(p, t)| *t == 'd' && p.starts_with(&format!("{from}/")))
                    .map(|(p, _)| p.clone())
                    .collect();
                let base = if below.is_empty() {
                    from.clone()
                } else {
                    below[self.rng.gen_range(0..below.len())].clone()
                };
                format!("{base}/{}", self.name())
            }
        };
        let flags = match self.rng.gen_range(0..100) {
            0..=64 => RenameFlags::Plain,
            65..=79 => RenameFlags::NoReplace,
            _ => RenameFlags::Exchange,
        };
        Op::Rename { from, to, flags }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn type_of(&self, path: &str) -> Option<char> {
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| *t)
    }

    /// An existing path of type `t` ('*': any, '!': any but a directory)
    /// with `percent` chance,
    /// otherwise a new or odd path.
    fn pick_or_new(&mut self, t: char, percent: u32) -> String {
        if self.chance(percent) {
            let fits: Vec<&String> = self
                .entries
                .iter()
                .filter(|(_, et)| t == '*' || *et == t || (t == '!' && *et != 'd'))
                .map(|(p, _)| p)
                .collect();
            if !fits.is_empty() {
                return fits[self.rng.gen_range(0..fits.len())].clone();
            }
        }
        self.new_path()
    }

    /// A name in an existing directory (it may exist already: names come
    /// from small pools), or now and then an odd path.
    fn new_path(&mut self) -> String {
        match self.rng.gen_range(0..100) {
            // Missing parent: ENOENT.
            0..=2 => format!("nodir{}/{}", self.rng.gen_range(0..3), self.name()),
            // A file as a parent: ENOTDIR.
            3..=5 => {
                let f = self.pick_or_new('-', 100);
                format!("{f}/{}", self.name())
            }
            _ => {
                let name = self.name();
                let dirs: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|(_, t)| *t == 'd')
                    .map(|(p, _)| p.clone())
                    .collect();
                // The root more often than any one directory.
                if dirs.is_empty() || self.chance(35) {
                    name
                } else {
                    format!("{}/{name}", dirs[self.rng.gen_range(0..dirs.len())])
                }
            }
        }
    }

    /// A name from a small pool, or a long one (254-256 bytes: 256 is
    /// ENAMETOOLONG).
    fn name(&mut self) -> String {
        if self.chance(6) {
            let len = [250usize, 254, 255, 255, 256][self.rng.gen_range(0..5)];
            let c = ['x', 'y'][self.rng.gen_range(0..2)];
            let mut s = format!("L{len}");
            while s.len() < len {
                s.push(c);
            }
            return s;
        }
        let prefix = ["f", "f", "d", "s", "n"][self.rng.gen_range(0..5)];
        format!("{prefix}{}", self.rng.gen_range(0..24))
    }

    /// Relative targets without "..": nothing can point out of the mount.
    fn symlink_target(&mut self) -> String {
        let bs = self.block_size as usize;
        let len = match self.rng.gen_range(0..100) {
            0..=49 => self.rng.gen_range(1..60),
            // Around the fast-symlink limit (60 bytes in i_block).
            50..=64 => self.rng.gen_range(58..62),
            65..=89 => self.rng.gen_range(60..1000.min(bs - 1)),
            // Around the block size: bs-1 is the longest ext2 stores.
            _ => self.rng.gen_range(bs - 2..bs + 2),
        };
        let mut t = self.name();
        while t.len() < len {
            t.push('/');
            t.push_str(&self.name());
        }
        t.truncate(len);
        while t.ends_with('/') || t.is_empty() {
            t.push('t');
        }
        t
    }

    fn perm(&mut self) -> u32 {
        [0o644, 0o600, 0o755, 0o666, 0o4755, 0o2755, 0o6755, 0o2644][self.rng.gen_range(0..8)]
    }

    /// chmod's argument: mostly plain permissions, often set-id bits
    /// (including setgid without group execute, which means mandatory
    /// locking candidates, not set-group-ID).
    fn mode_bits(&mut self) -> u32 {
        if self.chance(50) {
            [
                0o4755, 0o2755, 0o6755, 0o2644, 0o4644, 0o1777, 0o6777, 0o7000,
            ][self.rng.gen_range(0..8)]
        } else {
            self.rng.gen_range(0..0o1000)
        }
    }

    /// Write/read lengths: mostly small, sometimes a block or up to 64 KiB.
    fn length(&mut self) -> u32 {
        match self.rng.gen_range(0..100) {
            0..=2 => 0,
            3..=59 => self.rng.gen_range(1..4096),
            60..=79 => self.block_size * self.rng.gen_range(1..4),
            _ => self.rng.gen_range(4096..65536),
        }
    }

    /// A file offset: mostly small, some sparse, some at the indirect
    /// levels' boundaries (double at (12+P) blocks, triple at
    /// (12+P+P²) blocks, P = block size / 4), some just below the largest
    /// file size so writes cross it.
    fn offset(&mut self) -> u64 {
        let bs = u64::from(self.block_size);
        let p = bs / 4;
        match self.rng.gen_range(0..100) {
            0..=54 => self.rng.gen_range(0..64 << 10),
            55..=74 => self.rng.gen_range(0..2 << 20),
            75..=84 => self.rng.gen_range(0..64 << 20),
            85..=94 => {
                let level = [12, 12 + p, 12 + p + p * p][self.rng.gen_range(0..3)];
                let around =
                    (level * bs) as i64 + self.rng.gen_range(-2 * bs as i64..2 * bs as i64);
                if self.chance(30) {
                    self.rng.gen_range(0..5u64 << 30)
                } else {
                    around.max(0) as u64
                }
            }
            _ => self.max_size - self.rng.gen_range(0..4 * bs),
        }
    }

    /// A truncate size: offsets as above, plus the largest file size and
    /// just past it (EFBIG).
    fn size(&mut self) -> u64 {
        match self.rng.gen_range(0..100) {
            0..=9 => 0,
            10..=89 => self.offset(),
            90..=93 => self.max_size,
            94..=96 => self.max_size + 1,
            _ => self.max_size - 1,
        }
    }

    fn time(&mut self) -> Time {
        let ns = |g: &mut Self| {
            if g.chance(30) {
                0
            } else {
                g.rng.gen_range(0..1_000_000_000)
            }
        };
        match self.rng.gen_range(0..100) {
            0..=9 => Time::Omit,
            10..=19 => Time::Now,
            20..=49 => Time::At(self.rng.gen_range(0..i32::MAX as i64), ns(self)),
            // After 2038 (2100-01-01 among them), up to the 2446 limit.
            50..=69 => {
                let s = if self.chance(30) {
                    4_102_444_800
                } else {
                    self.rng.gen_range(1i64 << 31..15_032_385_535)
                };
                Time::At(s, ns(self))
            }
            // Before 1970, down to 1901.
            70..=89 => Time::At(self.rng.gen_range(i32::MIN as i64..0), ns(self)),
            // The edges of the 32-bit and extended ranges (and past them:
            // the kernel clamps).
            _ => {
                let edges = [
                    i32::MAX as i64,
                    i32::MAX as i64 + 1,
                    i32::MIN as i64,
                    i32::MIN as i64 - 1,
                    -1,
                    (1i64 << 32) - 1,
                    1i64 << 32,
                    15_032_385_535,
                    15_032_385_536,
                ];
                Time::At(edges[self.rng.gen_range(0..edges.len())], ns(self))
            }
        }
    }
}
