//! Where injected memory-safety faults may strike: at sites inside requests
//! (never in write-back, unmount, or a rollback's own undo work, which the
//! papers also leave out as unlogged code). With recovery on, a fault is
//! caught by the request's domain; with recovery off it ends the daemon.

use recovery_rt::Runtime;
use std::cell::Cell;

thread_local! {
    static IN_REQUEST: Cell<bool> = const { Cell::new(false) };
}

/// Is this thread serving a request (as opposed to write-back or unmount)?
/// (Also asked by AMA's pool: allocation faults are injected only there.)
pub fn in_request() -> bool {
    IN_REQUEST.with(Cell::get)
}

/// Marks this thread as serving a request while it lives (the gate holds
/// one per request).
pub struct InRequest(());

impl InRequest {
    pub fn enter() -> InRequest {
        IN_REQUEST.with(|c| c.set(true));
        InRequest(())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        IN_REQUEST.with(|c| c.set(false));
    }
}

/// A fault site: every function that touches on-disk structures calls it.
pub fn site(rt: &Runtime, name: &'static str) {
    if let Some(inj) = faultinject::global() {
        if inj.may_fault() && in_request() && !rt.in_unlogged() {
            inj.fault_point(name);
        }
    }
}
