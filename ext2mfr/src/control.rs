//! The daemon's own controls and counters, as extended attributes of the
//! mount's root (`ext2mfr.*`): read and written outside the gate, since
//! they are not file-system state.
//!
//! - `ext2mfr.stats` (read): every counter as one JSON object.
//! - `ext2mfr.fault_after` = N: the N-th fault site reached from now on
//!   faults (tests that fault each step of an operation in turn).
//! - `ext2mfr.inject` = 0 | 1: pause or resume fault injection (so a harness
//!   can inspect the tree without meeting faults).
//! - `ext2mfr.short_estimates` = N > 0: every N-th AMA reservation is one
//!   page short, as an estimate overtaken by a concurrent request would be
//!   (tests of the restart path); 0 stops it.
//! - `ext2mfr.drop_caches` = 1: write back, then drop every cached block
//!   nobody holds (`echo 3 > /proc/sys/vm/drop_caches` for the daemon's own
//!   cache, so that a benchmark can start both drivers cold).
//! - `ext2mfr.read_only` = 1 | 0: remount read-only (write back, mark the
//!   image clean, refuse writes) or read-write (`ext2mfr -o remount,...`,
//!   which mount(8) runs for `mount -o remount,ro`, sets it).

use crate::error::{FsError, Result};
use crate::format::inode::ROOT_INO;
use crate::fs::Ext2;

pub const STATS_XATTR: &str = "ext2mfr.stats";
pub const FAULT_AFTER_XATTR: &str = "ext2mfr.fault_after";
pub const INJECT_XATTR: &str = "ext2mfr.inject";
pub const SHORT_ESTIMATES_XATTR: &str = "ext2mfr.short_estimates";
pub const READ_ONLY_XATTR: &str = "ext2mfr.read_only";
pub const DROP_CACHES_XATTR: &str = "ext2mfr.drop_caches";

fn number(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

impl Ext2 {
    /// The value of control attribute `name` of inode `ino`, if it is one.
    pub(crate) fn control_get(&self, ino: u32, name: &[u8]) -> Option<Vec<u8>> {
        (ino == ROOT_INO && name == STATS_XATTR.as_bytes()).then(|| self.stats_json().into_bytes())
    }

    /// Set control attribute `name` of inode `ino`, if it is one (`None`:
    /// an ordinary attribute).
    pub(crate) fn control_set(&self, ino: u32, name: &[u8], value: &[u8]) -> Option<Result<()>> {
        if ino != ROOT_INO {
            return None;
        }
        let injector = faultinject::global();
        Some(match name {
            n if n == FAULT_AFTER_XATTR.as_bytes() => match (number(value), injector) {
                (Some(n), Some(inj)) => {
                    inj.arm_after(n);
                    Ok(())
                }
                _ => Err(FsError::Invalid),
            },
            n if n == INJECT_XATTR.as_bytes() => match (value, injector) {
                (b"0" | b"1", Some(inj)) => {
                    inj.set_enabled(value == b"1");
                    Ok(())
                }
                _ => Err(FsError::Invalid),
            },
            n if n == READ_ONLY_XATTR.as_bytes() => match value {
                b"0" | b"1" => self.set_read_only(value == b"1"),
                _ => Err(FsError::Invalid),
            },
            n if n == DROP_CACHES_XATTR.as_bytes() => match value {
                b"1" => self.drop_caches(),
                _ => Err(FsError::Invalid),
            },
            n if n == SHORT_ESTIMATES_XATTR.as_bytes() => match number(value) {
                Some(k) => {
                    self.pool.short_every(k);
                    Ok(())
                }
                None => Err(FsError::Invalid),
            },
            _ => return None,
        })
    }
}
