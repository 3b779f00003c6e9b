//! Recovery domains, after Akeso ("Recovery Domains: An Organizing Principle
//! for Recoverable Operating Systems"), as a generic runtime that knows
//! nothing of file systems.
//!
//! - Four domain kinds ([`Kind`], the paper's Table 1): **Basic** (rolled back
//!   and returns an error on a fault; a Basic child merges into its logged
//!   parent on success), **Reversible** (commits on its own at completion and
//!   leaves a semantic inverse with its parent), **Transparent** (commits at
//!   completion; a fault only skips it), **Unlogged** (not recoverable, no
//!   logging; a panic passes through it).
//! - Nesting through a per-thread domain stack.
//! - Logged state: clients register objects ([`LoggedObject`]); the first
//!   write of an object inside a domain records its before-image in the
//!   object's [`VersionChain`] (a write that names its bytes,
//!   [`Runtime::write_range`], keeps only their chunks). Inverses ([`Runtime::log_undo`]) and deferred
//!   releases ([`Runtime::defer`], run only at commit) cover state that is
//!   not an object.
//! - Dependences: reading or writing an object whose newest version belongs
//!   to another uncommitted domain adds an edge. Only the two ends of an
//!   edge enter the graph (the reader gives the writer its node, from the
//!   cell its version holds); a domain nobody depends on and that depends
//!   on nobody commits or rolls back alone at its end, without the graph's
//!   lock, whatever it wrote (`DomainCell`). A completed domain commits
//!   when every domain it (transitively) depends on has completed; cycles of
//!   completed domains commit together (Speculative → Completed → Committed).
//! - Rollback: a panic (an injected bounds-check failure, a real one, or
//!   [`fault`]) is caught at the domain boundary; the domain and every domain
//!   that depends on it, on any thread, roll back. A running dependent faults
//!   at its next runtime call or at completion; a completed root waiting for
//!   its commit rolls itself back. Versions make the order irrelevant.
//!
//! Lock order inside the runtime: a version chain's mutex, then the graph
//! mutex; code holding the graph mutex never takes a chain mutex or runs
//! client code.

mod object;
mod runtime;

pub use object::{
    copy_chunks, Committed, Image, ImageBytes, Locked, LoggedObject, VersionChain, CHUNKS,
    INLINE_BYTES,
};
pub use runtime::{fault, is_runtime_payload, resume, Fault, Kind, Runtime, Stats};

pub type DomainId = u64;
