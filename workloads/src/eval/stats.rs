//! The daemon's counters (`ext2mfr.stats`, a JSON object in an extended
//! attribute of the mount's root) and its injection switch
//! (`ext2mfr.inject`). Both go through system calls on the mount, so both
//! run with a deadline: a hung daemon must not hang the harness.

use super::proc::within;
use serde_json::Value;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

const STATS_XATTR: &str = "ext2mfr.stats";
const INJECT_XATTR: &str = "ext2mfr.inject";
const WAIT: Duration = Duration::from_secs(10);

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())
}

/// Read the counters now.
pub fn read(mnt: &Path) -> Result<Value, String> {
    let path = c_path(mnt)?;
    let name = CString::new(STATS_XATTR).expect("no NUL");
    let bytes = within(WAIT, move || -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: path and name are NUL-terminated; buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 24 {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            return Err(format!("getxattr {STATS_XATTR}: {e}"));
        }
    })
    .ok_or_else(|| {
        format!(
            "reading {STATS_XATTR} did not return within {} s",
            WAIT.as_secs()
        )
    })??;
    serde_json::from_slice(&bytes).map_err(|e| format!("{STATS_XATTR} is not JSON: {e}"))
}

/// Pause (`false`) or resume (`true`) fault injection in the daemon, so
/// that checks made after a run are not themselves faulted. The switch is
/// itself a system call on the mount, and the kernel may first need a
/// GETATTR of the root, which injection can fail (at 99% with two
/// allocations in it, one try in 10,000 gets through): retry at once, many
/// times, for a few seconds.
pub fn set_injection(mnt: &Path, on: bool) -> Result<(), String> {
    let mnt = mnt.to_path_buf();
    let value: &'static [u8] = if on { b"1" } else { b"0" };
    let tries = Duration::from_secs(3);
    within(WAIT, move || {
        let start = std::time::Instant::now();
        loop {
            let Err(e) = set_xattr(&mnt, INJECT_XATTR, value) else {
                return Ok(());
            };
            if start.elapsed() > tries {
                return Err(format!(
                    "setxattr {INJECT_XATTR}: {e} (still, after {} s of retries)",
                    tries.as_secs()
                ));
            }
        }
    })
    .ok_or_else(|| {
        format!(
            "setting {INJECT_XATTR} did not return within {} s",
            WAIT.as_secs()
        )
    })?
}

/// setxattr(2) of `name` on `path` (following symbolic links).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes())?;
    let n = CString::new(name)?;
    // SAFETY: both strings are NUL-terminated and live across the call;
    // the value's pointer and length describe one slice.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A counter by dotted path ("ama.allocated_bytes"), if present.
pub fn get(v: &Value, dotted: &str) -> Option<u64> {
    let mut cur = v;
    for k in dotted.split('.') {
        cur = cur.get(k)?;
    }
    cur.as_u64()
}

/// `after - before` for a counter; an error naming it when the daemon does
/// not report it (e.g. an older build without AMA's accounting).
pub fn delta(before: &Value, after: &Value, dotted: &str) -> Result<u64, String> {
    match (get(before, dotted), get(after, dotted)) {
        (Some(b), Some(a)) => Ok(a.saturating_sub(b)),
        _ => Err(format!("the daemon's counters have no {dotted}")),
    }
}

/// A counter of one FUSE operation in AMA's per-op accounting
/// (`ama.by_op.<op>.<key>`). The caller ran the op between the two reads,
/// so `after` must have it; in `before` absent means it had not run yet (0).
pub fn op_delta(before: &Value, after: &Value, op: &str, key: &str) -> Result<u64, String> {
    let g = |v: &Value| {
        v.get("ama")
            .and_then(|a| a.get("by_op"))
            .and_then(|b| b.get(op))
            .and_then(|o| o.get(key))
            .and_then(Value::as_u64)
    };
    let a =
        g(after).ok_or_else(|| format!("the daemon's counters have no ama.by_op.{op}.{key}"))?;
    Ok(a.saturating_sub(g(before).unwrap_or(0)))
}

/// Per-op deltas of AMA's accounting between two reads: (op, requests,
/// reserved pages, used pages), largest reservation first.
pub fn op_deltas(before: &Value, after: &Value) -> Vec<(String, u64, u64, u64)> {
    let Some(ops) = after
        .get("ama")
        .and_then(|a| a.get("by_op"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let mut v: Vec<(String, u64, u64, u64)> = ops
        .keys()
        .map(|op| {
            let d = |k: &str| op_delta(before, after, op, k).unwrap_or(0);
            (
                op.clone(),
                d("requests"),
                d("reserved_pages"),
                d("used_pages"),
            )
        })
        .filter(|x| x.1 > 0)
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.2));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_and_deltas() {
        let a = serde_json::json!({"ama": {"allocated_bytes": 10, "by_op": {"setattr": {"reserved_pages": 3}}}});
        let b = serde_json::json!({"ama": {"allocated_bytes": 25, "by_op": {"setattr": {"reserved_pages": 7}}}});
        assert_eq!(get(&b, "ama.allocated_bytes"), Some(25));
        assert_eq!(delta(&a, &b, "ama.allocated_bytes"), Ok(15));
        assert!(delta(&a, &b, "ama.nothing").is_err());
        assert_eq!(op_delta(&a, &b, "setattr", "reserved_pages"), Ok(4));
        assert!(op_delta(&a, &b, "write", "reserved_pages").is_err());
        assert!(op_delta(&a, &serde_json::json!({}), "setattr", "x").is_err());
        let c = serde_json::json!({"ama": {"by_op": {"setattr": {"requests": 2, "reserved_pages": 9, "used_pages": 1}}}});
        assert_eq!(op_deltas(&a, &c), vec![("setattr".to_string(), 2, 6, 1)]);
    }
}
