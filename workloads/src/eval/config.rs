//! The daemon configurations the papers compare, as mount options, and a
//! probe that asks the daemon whether it has them: a build without AMA
//! refuses `ama=on`, and its rows are then reported as not run (with the
//! daemon's own message) instead of being filled with anything made up.

use super::image;
use super::mount::{Mount, MountError, Peer, Tools};
use super::workdir::WorkDir;
use std::collections::BTreeMap;

/// Which of the two mechanisms are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanisms {
    /// Both off: the same code with nothing around it.
    Baseline,
    RecoveryOnly,
    AmaOnly,
    /// Both on.
    Ext2Mfr,
}

impl Mechanisms {
    pub const ALL: [Mechanisms; 4] = [
        Mechanisms::Baseline,
        Mechanisms::RecoveryOnly,
        Mechanisms::AmaOnly,
        Mechanisms::Ext2Mfr,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Mechanisms::Baseline => "baseline",
            Mechanisms::RecoveryOnly => "recovery only",
            Mechanisms::AmaOnly => "ama only",
            Mechanisms::Ext2Mfr => "ext2-mfr",
        }
    }

    pub fn opts(self) -> &'static str {
        match self {
            Mechanisms::Baseline => "baseline",
            Mechanisms::RecoveryOnly => "ama=off,recovery=on",
            Mechanisms::AmaOnly => "ama=on,recovery=off",
            Mechanisms::Ext2Mfr => "ama=on,recovery=on",
        }
    }

    /// The baseline has no mechanism that could apply a policy.
    pub fn has_policy(self) -> bool {
        self != Mechanisms::Baseline
    }

    pub fn peer(self) -> Peer {
        Peer::Daemon {
            label: self.label().into(),
            opts: self.opts().into(),
        }
    }
}

/// What a request does after a fault (an allocation failure or a rollback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    FailFast,
    Retry,
}

impl Policy {
    pub const ALL: [Policy; 2] = [Policy::FailFast, Policy::Retry];

    pub fn label(self) -> &'static str {
        match self {
            Policy::FailFast => "fail-fast",
            Policy::Retry => "retry",
        }
    }

    pub fn opt(self) -> String {
        format!("policy={}", self.label())
    }
}

/// A configuration's mount options, with a policy where it has one.
pub fn options(m: Mechanisms, p: Option<Policy>) -> String {
    match p {
        Some(p) if m.has_policy() => format!("{},{}", m.opts(), p.opt()),
        _ => m.opts().to_string(),
    }
}

/// The fault experiments run every configuration over /dev/fuse (the
/// daemon's default transport) and ext2-mfr again over FUSE over io_uring,
/// to show that the transport changes none of their outcomes.
pub const URING_OPTION: &str = "transport=uring";

/// A configuration's name in the fault tables: the mechanisms, and
/// " (io_uring)" over FUSE over io_uring, as the performance tables name it.
pub fn config_label(m: Mechanisms, uring: bool) -> String {
    if uring {
        format!("{} (io_uring)", m.label())
    } else {
        m.label().to_string()
    }
}

/// [`options`], with the io_uring transport where `uring`.
pub fn transport_options(m: Mechanisms, p: Option<Policy>, uring: bool) -> String {
    if uring {
        format!("{},{URING_OPTION}", options(m, p))
    } else {
        options(m, p)
    }
}

/// Which option sets the daemon accepts; refused ones with its message.
#[derive(Default)]
pub struct Availability {
    known: BTreeMap<String, Result<(), String>>,
}

impl Availability {
    /// Does the daemon mount with `opts`? Asked once per option set.
    /// Outer Err: the probe could not run; inner Err: refused, and why.
    pub fn check(
        &mut self,
        tools: &Tools,
        work: &WorkDir,
        opts: &str,
    ) -> Result<Result<(), String>, String> {
        if let Some(r) = self.known.get(opts) {
            return Ok(r.clone());
        }
        let r = probe(tools, work, opts)?;
        self.known.insert(opts.to_string(), r.clone());
        Ok(r)
    }

    /// The refused option sets and why, for the reports.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.known
            .iter()
            .filter_map(|(k, r)| r.as_ref().err().map(|e| (k.clone(), e.clone())))
            .collect()
    }
}

/// Outer Err: the probe itself could not run. Inner Err: the daemon
/// refused these options (its exit code was 2, a usage error).
fn probe(tools: &Tools, work: &WorkDir, opts: &str) -> Result<Result<(), String>, String> {
    let img = work.file("probe.img");
    image::make(&img, 16)?;
    let peer = Peer::Daemon {
        label: "probe".into(),
        opts: opts.into(),
    };
    let log = work.file("probe.log");
    let r = match Mount::start(&peer, tools, &img, &work.dir("probe-mnt"), Some(&log)) {
        Ok(m) => {
            m.unmount()?;
            Ok(Ok(()))
        }
        Err(MountError::Refused {
            code: Some(2),
            message,
        }) => Ok(Err(message)),
        Err(e) => Err(format!("probing -o {opts}: {e}")),
    };
    let _ = std::fs::remove_file(&img);
    r
}

/// The fuse module's switch for FUSE over io_uring (Linux 6.14+).
pub const URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Does the kernel offer FUSE over io_uring? Turns the module's switch on
/// where it is off and writable (as `scripts/bench_transport.sh` does); Err
/// says why not, for the reports' "not run" notes.
pub fn enable_uring() -> Result<(), String> {
    let p = std::path::Path::new(URING_PARAM);
    let on = || {
        std::fs::read_to_string(p)
            .map(|s| s.trim() == "Y" || s.trim() == "1")
            .unwrap_or(false)
    };
    if !p.exists() {
        return Err(format!(
            "the kernel offers no FUSE over io_uring ({URING_PARAM} is absent: needs Linux 6.14+ with \
             CONFIG_FUSE_IO_URING)"
        ));
    }
    if on() {
        return Ok(());
    }
    if let Err(e) = std::fs::write(p, "Y") {
        return Err(format!(
            "FUSE over io_uring is off and `echo Y > {URING_PARAM}` failed: {e}"
        ));
    }
    if on() {
        Ok(())
    } else {
        Err(format!("{URING_PARAM} stays off after writing Y"))
    }
}

/// The daemon over FUSE over io_uring, beside the same configurations over
/// /dev/fuse: the baseline and both mechanisms; and both mechanisms with
/// the opt-in `writeback_cache` (the kernel's page cache in front of the
/// daemon's writes: another semantics, errors at fsync and close, so a
/// column of its own and never the default).
pub fn uring_peers() -> [Peer; 3] {
    [
        Peer::Daemon {
            label: "baseline (io_uring)".into(),
            opts: format!("{},transport=uring", Mechanisms::Baseline.opts()),
        },
        Peer::Daemon {
            label: "ext2-mfr (io_uring)".into(),
            opts: format!("{},transport=uring", Mechanisms::Ext2Mfr.opts()),
        },
        Peer::Daemon {
            label: WRITEBACK_LABEL.into(),
            opts: format!(
                "{},transport=uring,writeback_cache",
                Mechanisms::Ext2Mfr.opts()
            ),
        },
    ]
}

/// ext2-mfr over io_uring with the kernel's write-back cache.
pub const WRITEBACK_LABEL: &str = "ext2-mfr (io_uring, writeback_cache)";

/// Configurations that cannot run, each with why.
pub type Refusals = Vec<(String, String)>;

/// The peers to add for io_uring, and the ones that cannot run with why:
/// the module switch first, then the daemon's own answer (its probe mount).
pub fn uring_available(
    peers: &[Peer],
    mut available: impl FnMut(&str) -> Result<Result<(), String>, String>,
) -> Result<(Vec<Peer>, Refusals), String> {
    let mut ok = Vec::new();
    let mut not_run = Vec::new();
    let switch = enable_uring();
    for p in peers {
        let Peer::Daemon { label, opts } = p else {
            continue;
        };
        let r = match &switch {
            Err(why) => Err(why.clone()),
            Ok(()) => available(opts)?,
        };
        match r {
            Ok(()) => ok.push(p.clone()),
            Err(why) => not_run.push((format!("{label} (`-o {opts}`)"), why)),
        }
    }
    Ok((ok, not_run))
}
