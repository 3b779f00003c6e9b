//! Recovery domains (Akeso): domain kinds (Basic, Reversible, Transparent,
//! Unlogged), a per-thread domain stack, an undo log of registered objects,
//! the dependence graph between uncommitted domains, commit and rollback.
//!
//! This crate knows nothing of ext2. It is not implemented yet (issue 4);
//! ext2mfr currently runs every request without a domain around it.
