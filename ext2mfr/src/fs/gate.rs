//! The gate every request passes, and the only place that knows policies.
//!
//! With recovery on, a request runs as a root recovery domain: it either
//! commits (and only then is it answered) or is rolled back, together with
//! whatever depended on it. A request that ends in an ordinary error is
//! rolled back too, so a failed call leaves nothing half done. After a
//! rollback caused by a fault, the policy decides: `fail-fast` answers EIO
//! (ENOMEM for an allocation failure); `retry` runs the request again from
//! scratch, up to [`MAX_ATTEMPTS`] times with a back-off that doubles from
//! 1 ms to [`MAX_BACKOFF_MS`] (231 ms in all), then answers as fail-fast.
//!
//! With AMA on, every attempt first takes the request's worst-case memory
//! (its [`Need`], priced by `requirements/`) from the pool in one
//! reservation, and the request runs on that reserve. A failed reservation is
//! handled here too: `fail-fast` answers ENOMEM, `retry` tries again until it
//! succeeds, `retry-alternate` tries again with the smaller requirement (see
//! `ama::acquire`). A retry after a rollback starts from a fresh reservation.
//! An estimate that a concurrent request overtook (the reserve runs dry)
//! restarts the request on a fresh one: with recovery on after a rollback,
//! without only if nothing was changed yet (see `ama::Reserve::allow_restart`).
//!
//! With recovery off the request runs bare: errors return the ordinary way
//! and a panic ends the daemon (with AMA off too, that is the baseline).

use super::requirements::Need;
use super::Ext2;
use crate::error::{FsError, Result};
use ama::Policy;
use recovery_rt::Fault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Attempts of a request under `retry` before it fails as under
/// `fail-fast`. Many, because faults strike per block touched: a listing
/// that reads 70 blocks under `inject_safety=0.01` faults on half of its
/// attempts, and 8 attempts (the bound until 2026-12) failed 7 of 2,364
/// such requests (EIO). Yet within about a quarter of a second in all
/// (with [`MAX_BACKOFF_MS`]), as 8 attempts took: where a fault strikes
/// every attempt (a real bug, or allocations failing at 99% without AMA)
/// the caller gets its error, not a hang.
pub const MAX_ATTEMPTS: u32 = 32;

/// The longest pause between two attempts: the back-off gives a request
/// it depended on time to finish, which takes milliseconds.
pub const MAX_BACKOFF_MS: u64 = 8;

/// Restarts on a stale AMA estimate before the request runs on an estimate
/// with margins.
pub const MAX_RESTARTS: u32 = 4;

#[derive(Default)]
pub struct GateStats {
    pub requests: AtomicU64,
    /// Requests rolled back because of a fault (their own or a dependence's).
    pub faulted: AtomicU64,
    /// Of those, the ones rolled back only because a request they depended
    /// on was: a fault elsewhere, or a rollback that is no fault at all (an
    /// error result after changes, a restart on a stale estimate).
    pub cascaded: AtomicU64,
    /// Re-executions under the retry policy.
    pub retries: AtomicU64,
    /// Requests answered with an error after a fault.
    pub failed: AtomicU64,
}

impl Ext2 {
    /// Take the request's reserve (AMA on) under the policy. `restart`:
    /// whether an estimate found stale may restart the request (then it is
    /// computed without margins for concurrent requests).
    fn reserve(
        &self,
        op: &'static str,
        need: &Need,
        restart: ama::Restart,
        first: bool,
    ) -> Result<Option<ama::Reserve<'_>>> {
        if !self.config.ama.enabled {
            return Ok(None);
        }
        let r = ama::acquire(
            &self.pool,
            op,
            self.config.policy,
            restart,
            |r, alternate| self.requirements(need, r, alternate, restart, first),
        )
        .map_err(|_| FsError::NoMem)?;
        Ok(Some(r))
    }

    /// How a stale estimate may be answered on this attempt: by a rollback
    /// and restart with recovery on, by a restart before the first change
    /// without; after [`MAX_RESTARTS`] restarts, no longer (the estimate
    /// then keeps margins for concurrent requests).
    fn restart_mode(&self, restarts: u32) -> ama::Restart {
        if restarts >= MAX_RESTARTS {
            ama::Restart::Never
        } else if self.rt.enabled() {
            ama::Restart::Anywhere
        } else {
            ama::Restart::BeforeChange
        }
    }

    /// Run one request under the mount's AMA and recovery settings and
    /// policy. `need` describes what it will touch, for AMA.
    pub fn request<T>(&self, op: &'static str, need: Need, f: impl Fn() -> Result<T>) -> Result<T> {
        let _flag = crate::faults::InRequest::enter();
        self.gate.requests.fetch_add(1, Ordering::Relaxed);
        let mut restarts = 0;
        if !self.rt.enabled() {
            loop {
                let reserve =
                    self.reserve(op, &need, self.restart_mode(restarts), restarts == 0)?;
                let r = f();
                if r.is_err() && reserve.as_ref().is_some_and(|r| r.is_stale()) {
                    // Refused before the request changed anything.
                    restarts += 1;
                    continue;
                }
                return r;
            }
        }
        let mut attempt = 0;
        loop {
            // Dropped after the domain committed or was rolled back: commit
            // work (deferred frees) draws on it too.
            let reserve = self.reserve(op, &need, self.restart_mode(restarts), restarts == 0)?;
            let result = self.rt.root_result(&f);
            if reserve.as_ref().is_some_and(|r| r.is_stale()) && !matches!(result, Ok(Ok(_))) {
                // Rolled back on a stale estimate: not a fault, no back-off.
                restarts += 1;
                continue;
            }
            let retryable = match result {
                Ok(Ok(v)) => return Ok(v),
                // An ordinary error result, already rolled back. Memory
                // running out is a fault like any other for the policy.
                Ok(Err(FsError::NoMem)) => FsError::NoMem,
                Ok(Err(e)) => return Err(e),
                Err(fault) => {
                    let why = match &fault {
                        Fault::Panic(m) => m.clone(),
                        Fault::Explicit(c) if *c == libc::ENOMEM => "out of memory".into(),
                        Fault::Explicit(c) => format!("explicit fault {c}"),
                        Fault::Cascade => "a request it depended on was rolled back".into(),
                    };
                    log::info!("{op}: rolled back ({why})");
                    if matches!(fault, Fault::Cascade) {
                        self.gate.cascaded.fetch_add(1, Ordering::Relaxed);
                    }
                    if matches!(fault, Fault::Explicit(libc::ENOMEM)) {
                        FsError::NoMem
                    } else {
                        FsError::Fault(why)
                    }
                }
            };
            self.gate.faulted.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            if self.config.policy != Policy::FailFast && attempt < MAX_ATTEMPTS {
                self.gate.retries.fetch_add(1, Ordering::Relaxed);
                let pause = (1u64 << (attempt - 1).min(16)).min(MAX_BACKOFF_MS);
                std::thread::sleep(Duration::from_millis(pause));
                continue;
            }
            self.gate.failed.fetch_add(1, Ordering::Relaxed);
            return Err(retryable);
        }
    }
}
