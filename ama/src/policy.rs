//! What to do when a reservation fails. This is the only place allocation
//! can fail with AMA on, so one policy covers every request.

use crate::aad::Aad;
use crate::pool::{NoMem, Pool};
use crate::reserve::{Reserve, Restart};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Fail the request at once (the caller answers ENOMEM).
    FailFast,
    /// Try again until the reservation succeeds, with back-off.
    Retry,
    /// Try again with the client's alternate, smaller (recycling-heavy)
    /// requirement, with back-off.
    RetryAlternate,
}

/// The back-off between reservation attempts doubles from 1 µs and stops
/// growing here. Retry is "forever", so the cap bounds what a long run of
/// failures costs: at 99% failure a request takes about 100 attempts, a few
/// milliseconds in all (Linux sleeps at least ~50 µs of timer slack).
pub const BACKOFF_CAP: Duration = Duration::from_micros(50);

/// Exponential back-off, capped at [`BACKOFF_CAP`].
#[derive(Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn wait(&mut self) {
        let us = 1u64 << self.attempt.min(16);
        self.attempt += 1;
        std::thread::sleep(Duration::from_micros(us).min(BACKOFF_CAP));
    }
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Begin and fill a reserve for a request of type `op` under `policy`.
/// `requirement(reserve, alternate)` computes the request's [`Aad`]; it may
/// pin what it peeks at in `reserve`. Every attempt starts from a fresh
/// reserve: nothing is kept from a failed one.
/// `restart` is the reserve's [`Reserve::allow_restart`], set as it is
/// filled.
pub fn acquire<'p>(
    pool: &'p Arc<Pool>,
    op: &'static str,
    policy: Policy,
    restart: Restart,
    mut requirement: impl FnMut(&mut Reserve<'p>, bool) -> Aad,
) -> Result<Reserve<'p>, NoMem> {
    let mut backoff = Backoff::default();
    let mut alternate = false;
    loop {
        let mut r = pool.begin(op);
        let aad = requirement(&mut r, alternate);
        if aad.pages as usize > pool.capacity() {
            log::error!(
                "ama: {op} needs {} pages, more than the pool's {}",
                aad.pages,
                pool.capacity()
            );
            return Err(NoMem);
        }
        match r.fill_allowing(aad, restart) {
            Ok(()) => return Ok(r),
            Err(NoMem) => {
                drop(r);
                match policy {
                    Policy::FailFast => return Err(NoMem),
                    Policy::Retry => {}
                    Policy::RetryAlternate => alternate = true,
                }
                backoff.wait();
            }
        }
    }
}
