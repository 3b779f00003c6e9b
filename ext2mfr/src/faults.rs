//! Where injected memory-safety faults may strike: at sites inside requests
//! (never in write-back, unmount, or a rollback's own undo work, which the
//! papers also leave out as unlogged code). With recovery on, a fault is
//! caught by the request's domain; with recovery off it ends the daemon.

use recovery_rt::Runtime;

/// A fault site: every function that touches on-disk structures calls it.
pub fn site(rt: &Runtime, name: &'static str) {
    if let Some(inj) = faultinject::global() {
        if crate::fs::gate::in_request() && !rt.in_unlogged() {
            inj.fault_point(name);
        }
    }
}
