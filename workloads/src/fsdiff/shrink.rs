//! Shrinking a failing sequence (delta debugging, Zeller's ddmin): replay
//! shorter sequences on fresh images and keep any that still shows a
//! mismatch with the same signature. First the ops after the failing one
//! go, then chunks of halving size, down to single ops.

use super::ops::Op;
use super::runner::{run, Limits, Mismatch, Setup, Source};
use std::time::{Duration, Instant};

pub struct Shrunk {
    pub ops: Vec<Op>,
    /// The mismatch as the shortest sequence shows it (None: the original
    /// did not reproduce on replay, e.g. timing-dependent).
    pub mismatch: Option<Mismatch>,
    pub trials: usize,
    /// Stopped by the time budget before reaching a 1-minimal sequence.
    pub incomplete: bool,
}

/// Shrink `ops` (which showed `m`) within `budget`. The tree checks of the
/// original run are ops in the sequence (Op::CheckTrees): a walk reads
/// every file and so changes what the daemon has cached, and some bugs
/// show only with (or without) one; shrinking keeps or drops them like
/// any other op.
pub fn shrink(setup: &Setup, ops: &[Op], m: &Mismatch, budget: Duration) -> Result<Shrunk, String> {
    let sig = m.diff.signature();
    let start = Instant::now();
    let mut trials = 0;
    let limits = Limits {
        check_every: 0,
        max_mismatches: 0,
        target: Some(sig.clone()),
        keep: false,
    };
    let mut fails = |cand: &[Op]| -> Result<Option<Mismatch>, String> {
        trials += 1;
        let r = run(setup, Source::Replay(cand), &limits)?;
        Ok(r.mismatches.into_iter().find(|x| {
            std::iter::once(&x.diff)
                .chain(&x.also)
                .any(|d| d.signature() == sig)
        }))
    };

    // Ops after the one that showed it cannot matter (end checks: all can).
    let mut cur: Vec<Op> = match m.index {
        Some(i) => ops[..=i.min(ops.len().saturating_sub(1))].to_vec(),
        None => ops.to_vec(),
    };
    let Some(mut best) = fails(&cur)? else {
        return Ok(Shrunk {
            ops: cur,
            mismatch: None,
            trials,
            incomplete: false,
        });
    };
    let mut n = 2usize;
    let mut incomplete = false;
    while cur.len() >= 2 {
        let chunk = cur.len().div_ceil(n);
        let mut reduced = false;
        // From the back: late ops are the likelier to be irrelevant setup
        // for nothing, and a failing op near the end stays.
        let mut starts: Vec<usize> = (0..cur.len()).step_by(chunk).collect();
        starts.reverse();
        for s in starts {
            if start.elapsed() > budget {
                incomplete = true;
                break;
            }
            let mut cand = cur[..s].to_vec();
            cand.extend_from_slice(&cur[(s + chunk).min(cur.len())..]);
            if cand.is_empty() {
                continue;
            }
            if let Some(mm) = fails(&cand)? {
                cur = cand;
                best = mm;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
        }
        if incomplete {
            break;
        }
        if !reduced {
            if chunk == 1 {
                break;
            }
            n = (n * 2).min(cur.len());
        }
    }
    Ok(Shrunk {
        ops: cur,
        mismatch: Some(best),
        trials,
        incomplete,
    })
}
