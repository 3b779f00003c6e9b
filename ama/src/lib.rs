//! Anticipatory Memory Allocation (AMA), after Sundararaman et al.: on entry
//! to a request, compute its worst-case memory need (an *anticipatory
//! allocation description*, [`Aad`]), take all of it from the [`Pool`] in one
//! bulk request, and serve every allocation downstream from that per-thread
//! [`Reserve`]. Allocation can then only fail at the top, where a [`Policy`]
//! (fail-fast, retry, retry-alternate) handles it.
//!
//! - [`Pool`]: a bounded page pool over one anonymous memory map, plus typed
//!   object quotas (the client names its object kinds and their sizes).
//! - [`Reserve`]: begun before the requirement is computed, with a sequence
//!   number ([`pin_seq`]) with which a cache marks what the request reads,
//!   so that *cache peeking* can count on it staying ([`Reserve::note_peeked`],
//!   [`Pool::oldest_active`]); then filled by
//!   [`Reserve::fill`]; while it is active on its thread, [`Pool::alloc_page`]
//!   and [`Pool::take_object`] are served from it, call sites unchanged.
//!   Dropping it returns what was not used and records the accounting.
//! - *Page recycling*: a reserve may hold one scratch page ([`with_scratch`])
//!   that a long scan reuses for block after block instead of taking a new
//!   page for each.
//! - An allocation an active reserve cannot serve is an *under-allocation*:
//!   counted, logged with the operation and the call site, and then served
//!   the ordinary way (where it may fail), or, in a [strict](Pool::set_strict)
//!   pool (test builds), a panic. A caller that can run the
//!   request again instead ([`Reserve::allow_restart`]) gets [`NoMem`] and a
//!   [stale](Reserve::is_stale) reserve: its estimate was overtaken by a
//!   concurrent request, and it restarts on a fresh one.
//!
//! Allocation failures are injected through `faultinject`: one decision per
//! reservation attempt (the paper allocates one chunk on entry), and one per
//! allocation when no reserve is active (the baseline).
//!
//! The crate knows nothing of file systems.

mod aad;
mod active;
mod freelist;
mod policy;
mod pool;
mod reserve;
mod stats;

pub use aad::{Aad, ObjectKind, MAX_OBJECT_KINDS};
pub use policy::{acquire, Backoff, Policy, BACKOFF_CAP};
pub use pool::{NoMem, Page, Pool};
pub use reserve::{
    active, assumption_failed, note_change, outside_reserve, pin_seq, with_scratch, Reserve,
    Restart,
};
pub use stats::{OpSpace, Space};
