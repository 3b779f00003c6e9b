//! The gate every request passes, and the only place that knows policies.
//!
//! With recovery on, a request runs as a root recovery domain: it either
//! commits (and only then is it answered) or is rolled back, together with
//! whatever depended on it. A request that ends in an ordinary error is
//! rolled back too, so a failed call leaves nothing half done. After a
//! rollback caused by a fault, the policy decides: `fail-fast` answers EIO
//! (ENOMEM for an allocation failure); `retry` runs the request again from
//! scratch, up to [`MAX_ATTEMPTS`] times with exponential back-off starting
//! at 1 ms (at most 255 ms in all), then answers as fail-fast.
//!
//! With recovery off (the baseline) the request runs bare: errors return the
//! ordinary way and a panic ends the daemon.

use super::Ext2;
use crate::error::{FsError, Result};
use crate::options::Policy;
use recovery_rt::Fault;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 8;

thread_local! {
    static IN_REQUEST: Cell<bool> = const { Cell::new(false) };
}

/// Is this thread serving a request (as opposed to write-back or unmount)?
pub fn in_request() -> bool {
    IN_REQUEST.with(Cell::get)
}

struct RequestFlag;
impl RequestFlag {
    fn set() -> RequestFlag {
        IN_REQUEST.with(|c| c.set(true));
        RequestFlag
    }
}
impl Drop for RequestFlag {
    fn drop(&mut self) {
        IN_REQUEST.with(|c| c.set(false));
    }
}

#[derive(Default)]
pub struct GateStats {
    pub requests: AtomicU64,
    /// Requests rolled back because of a fault (their own or a dependence's).
    pub faulted: AtomicU64,
    /// Re-executions under the retry policy.
    pub retries: AtomicU64,
    /// Requests answered with an error after a fault.
    pub failed: AtomicU64,
}

impl Ext2 {
    /// Run one request under the mount's recovery setting and policy.
    pub fn request<T>(&self, op: &str, f: impl Fn() -> Result<T>) -> Result<T> {
        let _flag = RequestFlag::set();
        self.gate.requests.fetch_add(1, Ordering::Relaxed);
        if !self.rt.enabled() {
            return f();
        }
        let mut attempt = 0;
        loop {
            let retryable = match self.rt.root_result(&f) {
                Ok(Ok(v)) => return Ok(v),
                // An ordinary error result, already rolled back. Memory
                // running out is a fault like any other for the policy.
                Ok(Err(FsError::NoMem)) => FsError::NoMem,
                Ok(Err(e)) => return Err(e),
                Err(fault) => {
                    let why = match &fault {
                        Fault::Panic(m) => m.clone(),
                        Fault::Explicit(c) => format!("explicit fault {c}"),
                        Fault::Cascade => "a request it depended on was rolled back".into(),
                    };
                    log::info!("{op}: rolled back ({why})");
                    FsError::Fault(why)
                }
            };
            self.gate.faulted.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            if self.config.policy == Policy::Retry && attempt < MAX_ATTEMPTS {
                self.gate.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1 << (attempt - 1)));
                continue;
            }
            self.gate.failed.fetch_add(1, Ordering::Relaxed);
            return Err(retryable);
        }
    }
}
