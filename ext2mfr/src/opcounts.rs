//! FUSE requests counted by opcode, as they arrive at a transport (before
//! any translation), so that a workload's round trips can be read off
//! `ext2mfr.stats` (`"fuse_requests"`). Both transports count here: the
//! fuser adapter in each callback (`fuse.rs`), our own message layer in
//! `Dispatcher::dispatch` and at INIT. A relaxed atomic add per request:
//! nothing next to the round trip it counts.
//!
//! What fuser answers by itself never reaches a callback and is not
//! counted under `transport=dev`: INTERRUPT, and opcodes fuser 0.18 does
//! not know (STATX, SYNCFS, TMPFILE), which it answers ENOSYS; and fuser
//! hands a BATCH_FORGET to the file system as its FORGETs one by one
//! (its `ForgetOne` is private), counted as such.

use std::sync::atomic::{AtomicU64, Ordering};

/// Opcodes are small numbers (53 is the largest in protocol 7.42); one
/// slot each, the last for anything larger.
const SLOTS: usize = 64;

pub struct OpCounts {
    by_opcode: [AtomicU64; SLOTS],
    /// GETATTRs that came with a file handle (`FUSE_GETATTR_FH`: an fstat,
    /// or the kernel refreshing a size through an open file), apart from
    /// those that came without (a path's stat, a permission check).
    getattr_with_fh: AtomicU64,
}

impl Default for OpCounts {
    fn default() -> Self {
        OpCounts {
            by_opcode: std::array::from_fn(|_| AtomicU64::new(0)),
            getattr_with_fh: AtomicU64::new(0),
        }
    }
}

impl OpCounts {
    /// One request of `opcode` arrived.
    pub fn count(&self, opcode: u32) {
        let i = (opcode as usize).min(SLOTS - 1);
        self.by_opcode[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One GETATTR arrived; `fh`: with a file handle.
    pub fn count_getattr(&self, fh: bool) {
        self.count(GETATTR);
        if fh {
            self.getattr_with_fh.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many requests of `opcode` arrived.
    pub fn get(&self, opcode: u32) -> u64 {
        self.by_opcode[(opcode as usize).min(SLOTS - 1)].load(Ordering::Relaxed)
    }

    /// `{"total": N, "getattr_with_fh": N, "by_opcode": {"LOOKUP": N, ...}}`,
    /// opcodes never seen left out.
    pub fn json(&self) -> serde_json::Value {
        let mut by = serde_json::Map::new();
        let mut total = 0;
        for (i, c) in self.by_opcode.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                total += n;
                by.insert(name(i as u32), serde_json::json!(n));
            }
        }
        serde_json::json!({
            "total": total,
            "getattr_with_fh": self.getattr_with_fh.load(Ordering::Relaxed),
            "by_opcode": by,
        })
    }
}

const GETATTR: u32 = 3;

/// The protocol's name of an opcode (`include/uapi/linux/fuse.h`, without
/// `FUSE_`).
pub fn name(opcode: u32) -> String {
    const NAMES: [&str; 54] = [
        "?0",
        "LOOKUP",
        "FORGET",
        "GETATTR",
        "SETATTR",
        "READLINK",
        "SYMLINK",
        "?7",
        "MKNOD",
        "MKDIR",
        "UNLINK",
        "RMDIR",
        "RENAME",
        "LINK",
        "OPEN",
        "READ",
        "WRITE",
        "STATFS",
        "RELEASE",
        "?19",
        "FSYNC",
        "SETXATTR",
        "GETXATTR",
        "LISTXATTR",
        "REMOVEXATTR",
        "FLUSH",
        "INIT",
        "OPENDIR",
        "READDIR",
        "RELEASEDIR",
        "FSYNCDIR",
        "GETLK",
        "SETLK",
        "SETLKW",
        "ACCESS",
        "CREATE",
        "INTERRUPT",
        "BMAP",
        "DESTROY",
        "IOCTL",
        "POLL",
        "NOTIFY_REPLY",
        "BATCH_FORGET",
        "FALLOCATE",
        "READDIRPLUS",
        "RENAME2",
        "LSEEK",
        "COPY_FILE_RANGE",
        "SETUPMAPPING",
        "REMOVEMAPPING",
        "SYNCFS",
        "TMPFILE",
        "STATX",
        "COPY_FILE_RANGE_64",
    ];
    match NAMES.get(opcode as usize) {
        Some(n) => n.to_string(),
        None if (opcode as usize) < SLOTS - 1 => format!("?{opcode}"),
        None => format!("?{}+", SLOTS - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::abi::opcode as op;

    #[test]
    fn names_match_the_wire_numbers() {
        for (o, n) in [
            (op::LOOKUP, "LOOKUP"),
            (op::GETATTR, "GETATTR"),
            (op::FSYNC, "FSYNC"),
            (op::GETXATTR, "GETXATTR"),
            (op::FLUSH, "FLUSH"),
            (op::ACCESS, "ACCESS"),
            (op::CREATE, "CREATE"),
            (op::BATCH_FORGET, "BATCH_FORGET"),
            (op::FALLOCATE, "FALLOCATE"),
            (op::RENAME2, "RENAME2"),
        ] {
            assert_eq!(name(o), n);
        }
        assert_eq!(GETATTR, op::GETATTR);
    }

    #[test]
    fn counted_and_shown() {
        let c = OpCounts::default();
        c.count(op::LOOKUP);
        c.count(op::LOOKUP);
        c.count_getattr(true);
        c.count_getattr(false);
        c.count(1000);
        let j = c.json();
        assert_eq!(j["total"], 5);
        assert_eq!(j["getattr_with_fh"], 1);
        assert_eq!(j["by_opcode"]["LOOKUP"], 2);
        assert_eq!(j["by_opcode"]["GETATTR"], 2);
        assert_eq!(j["by_opcode"]["?63+"], 1);
        assert!(j["by_opcode"].get("WRITE").is_none());
    }
}
