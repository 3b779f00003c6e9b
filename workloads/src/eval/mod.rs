//! The evaluation harness behind `evaluate`: it builds the papers'
//! experiment matrix, mounts and unmounts for every run, and writes
//! `results/` (Markdown and CSV tables, SVG figures, and a README that
//! compares each measured figure with the paper's).
//!
//! Plumbing: [`proc`] (commands with deadlines), [`workdir`], [`image`]
//! (mkfs, e2fsck), [`mount`] (the unmount-always guard), [`stats`] (the
//! daemon's counters), [`config`] (configurations and whether the daemon has
//! them), [`machine`] (provenance). Runs: [`mixed`] and [`child`] (the
//! robustness workload in a child process), [`usable`], [`classify`],
//! [`compare`] (side-by-side performance runs, shared with `fs-compare`).

pub mod child;
pub mod classify;
pub mod compare;
pub mod config;
pub mod driver;
pub mod external;
pub mod image;
pub mod injected;
pub mod instructions;
pub mod machine;
pub mod mixed;
pub mod mount;
pub mod paper;
pub mod performance;
pub mod phases;
pub mod placement;
pub mod plan;
pub mod proc;
pub mod report;
pub mod robustness;
pub mod safety;
pub mod scale;
pub mod signals;
pub mod space;
pub mod stats;
pub mod svg;
pub mod table;
pub mod truncate;
pub mod usable;
pub mod workdir;
