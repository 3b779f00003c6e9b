//! The one list of differences between ext2mfr and the kernel's driver that
//! are legitimate, each with its reason (for users: ext2mfr/DIFFERENCES.md,
//! one row per rule here). The comparison (diff.rs) reports every
//! difference it sees; a difference is forgiven only if a rule here
//! matches it. Nothing else is excused anywhere.
//!
//! Note on "the kernel's ext2 driver": on this kernel (6.18, built with
//! CONFIG_EXT4_USE_FOR_EXT2) `mount -t ext2` is served by ext4 in ext2 mode
//! (dmesg: "mounting ext2 file system using the ext4 subsystem"). The
//! reference therefore has ext4's behaviour where ext2 and ext4 differ,
//! e.g. nanosecond and post-2038 times in 256-byte inodes, and delayed
//! allocation.

use super::diff::{
    Diff, Scope, TAG_CAPABILITY_KEPT_AFTER_EFBIG, TAG_FIFO_WRITTEN, TAG_KERNEL_FAILED_FALLOCATE,
    TAG_KERNEL_MTIME_EXPLICIT, TAG_SETID_KEPT_AFTER_EFBIG,
};

pub struct Excuse {
    pub id: &'static str,
    pub reason: &'static str,
    applies: fn(&Diff) -> bool,
}

pub const EXCUSES: &[Excuse] = &[
    Excuse {
        id: "atime",
        reason: "access times depend on relatime's rule and on when each side's caches \
                 let a read reach the file system (FUSE serves reads from the page cache); \
                 never compared",
        applies: |d| d.field == "atime",
    },
    Excuse {
        id: "ctime",
        reason: "ctime is always the wall clock of the change, which differs between two \
                 calls made one after the other; utimensat cannot set it",
        applies: |d| d.field == "ctime",
    },
    Excuse {
        id: "mtime-wall-clock",
        reason: "an mtime neither side got from an explicit utimensat value is the wall \
                 clock of the last change (differs by the time between the calls); mtimes \
                 that were set explicitly are compared to the nanosecond",
        applies: |d| d.field == "mtime" && !d.explicit_time,
    },
    Excuse {
        id: "st_ino",
        reason: "inode numbers depend on the allocation policy (the kernel uses Orlov for \
                 directories); the tree walk compares hard-link structure instead (which \
                 paths share an inode)",
        applies: |d| d.field == "ino",
    },
    Excuse {
        id: "statfs-free-while-busy",
        reason: "free block/inode counts from a statfs call in the middle of the sequence: \
                 the kernel reserves blocks for delayed allocation and preallocates until \
                 write-back, and open-but-unlinked files still hold space; free counts are \
                 compared at quiescent points instead (after syncfs, no open files)",
        applies: |d| {
            d.scope == Scope::Call
                && d.op == "statfs"
                && matches!(d.field, "f_bfree" | "f_bavail" | "f_ffree")
        },
    },
    Excuse {
        id: "mtime-after-failed-fallocate",
        reason: "the kernel's ext4 (6.18) updates mtime and ctime in fallocate before it \
                 finds that a block-mapped (ext2) file cannot be preallocated or zeroed and \
                 answers EOPNOTSUPP (checked: fallocate(1) on a loop mount); fs/ext2 has no \
                 fallocate at all and changes nothing, as ext2mfr (a failed request rolls \
                 back whole; hole punching, which succeeds, moves both). Excused only for an inode \
                 on which such a fallocate failed, and only while the kernel's mtime is \
                 not an explicitly set one",
        applies: |d| {
            d.field == "mtime"
                && d.tags.contains(&TAG_KERNEL_FAILED_FALLOCATE)
                && !d.tags.contains(&TAG_KERNEL_MTIME_EXPLICIT)
        },
    },
    Excuse {
        id: "fifo-mtime-after-write",
        reason: "writing into a FIFO is pipe I/O that the kernel's pipe code serves without \
                 the file system; it then updates the FIFO's mtime in its own inode. The \
                 kernel's ext2 writes that inode back; over FUSE no request tells the daemon \
                 (there is no message for it), so ext2mfr keeps the mtime it was given. \
                 Excused only for FIFOs written through a descriptor, and only while the \
                 kernel's mtime is not an explicitly set one",
        applies: |d| {
            d.field == "mtime"
                && d.tags.contains(&TAG_FIFO_WRITTEN)
                && !d.tags.contains(&TAG_KERNEL_MTIME_EXPLICIT)
        },
    },
    Excuse {
        id: "capability-after-efbig-write",
        reason: "a write that fails with EFBIG (at ext2's largest file size) leaves \
                 security.capability on the kernel's ext2, whose generic_write_checks \
                 refuses it against s_maxbytes before file_remove_privs runs. Over FUSE \
                 s_maxbytes is the VFS's own limit, so the kernel's FUSE code passes that \
                 check, removes the capability (a removexattr request the daemon must \
                 obey) and only then sends the write, which ext2mfr refuses with EFBIG. \
                 Checked with a 2 KiB-block image (fs-diff seed 13). Excused only for \
                 files a write to failed with EFBIG, only when security.capability is the \
                 one name the kernel has more",
        applies: |d| d.tags.contains(&TAG_CAPABILITY_KEPT_AFTER_EFBIG),
    },
    Excuse {
        id: "setid-after-efbig-write",
        reason: "the same for set-user-ID and set-group-ID: a write by a user without \
                 CAP_FSETID that fails with EFBIG leaves them on the kernel's ext2 (its \
                 generic_write_checks refuses the write before file_remove_privs); over \
                 FUSE the kernel's FUSE code passes the check against its own limit, kills \
                 them (an empty setattr, whose reply gives the mode it caches, so the \
                 daemon kills there) and only then sends the write ext2mfr refuses. Found \
                 by fs-diff (seed 21, 1 KiB blocks, a write as another user past a file at \
                 ext2's largest size; kept since seed 4337 showed a kill left to the write \
                 leaves the kernel's cached mode stale). \
                 Excused only for files a write to failed with EFBIG, only when the modes \
                 differ in nothing but set-ID bits the kernel's file has more",
        applies: |d| d.tags.contains(&TAG_SETID_KEPT_AFTER_EFBIG),
    },
];

/// The excuse that covers `d`, if any.
pub fn excuse(d: &Diff) -> Option<&'static Excuse> {
    EXCUSES.iter().find(|e| (e.applies)(d))
}
