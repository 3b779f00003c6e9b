//! Classifying one fault-injection run the way the AMA paper's Table 2 does.
//! The four outcomes are columns, not exclusive classes: one run can be an
//! Abort and Inconsistent at once.
//!
//! - **Error**: the workload saw a failed call, answered by a live daemon
//!   (a graceful failure).
//! - **Abort**: the workload was killed or hung (timed out), or the daemon
//!   died (during the run, or it did not exit cleanly after the unmount).
//!   A call failing because the daemon just died (ENOTCONN) counts here, not
//!   as an Error.
//! - **Unusable**: afterwards the mount (if its daemon still runs and its
//!   injection could be paused) or a fresh mount of the image cannot be
//!   listed, stat'ed or written.
//! - **Inconsistent**: `e2fsck -fn` reports problems after the unmount.

use super::image::Fsck;

/// How the workload process ended.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadEnd {
    Completed,
    /// It reported a failed call and exited.
    Failed(String),
    /// It died of a signal it did not send itself.
    Killed(String),
    /// It was still running at the deadline (and was killed).
    TimedOut,
}

/// Everything observed about one run.
#[derive(Clone, Debug)]
pub struct Observation {
    pub workload: WorkloadEnd,
    /// The daemon died while the workload ran (its stderr's last words).
    pub died_during_run: Option<String>,
    /// The daemon did not exit cleanly after the unmount (or had to be killed).
    pub unclean_exit: Option<String>,
    /// The live mount's usability (None: not checked, its daemon was dead).
    pub live_usable: Option<Result<(), String>>,
    /// A fresh mount of the image afterwards.
    pub fresh_usable: Result<(), String>,
    pub fsck: Fsck,
    /// Things worth recording that are no outcome (e.g. why the live mount
    /// was not checked).
    pub remarks: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub error: bool,
    pub abort: bool,
    pub unusable: bool,
    pub inconsistent: bool,
    /// Why, in a few words per outcome ("" for a clean run).
    pub detail: String,
}

pub fn classify(o: &Observation) -> Outcome {
    let mut why: Vec<String> = Vec::new();
    let died = o.died_during_run.is_some();
    let error = match &o.workload {
        WorkloadEnd::Failed(m) if !died => {
            why.push(format!("workload: {m}"));
            true
        }
        _ => false,
    };
    let mut abort = false;
    match &o.workload {
        WorkloadEnd::Killed(s) => {
            why.push(format!("workload killed ({s})"));
            abort = true;
        }
        WorkloadEnd::TimedOut => {
            why.push("workload hung (timed out)".into());
            abort = true;
        }
        _ => {}
    }
    if let Some(m) = &o.died_during_run {
        why.push(format!("daemon died: {m}"));
        abort = true;
    }
    if let Some(m) = &o.unclean_exit {
        why.push(format!("daemon exit after unmount: {m}"));
        abort = true;
    }
    let mut unusable = false;
    if let Some(Err(m)) = &o.live_usable {
        why.push(format!("mount unusable: {m}"));
        unusable = true;
    }
    if let Err(m) = &o.fresh_usable {
        why.push(format!("fresh mount unusable: {m}"));
        unusable = true;
    }
    let inconsistent = !o.fsck.clean;
    if inconsistent {
        why.push(format!(
            "e2fsck -fn exit {}: {}",
            o.fsck.exit.map_or("none".into(), |c| c.to_string()),
            o.fsck.first_problem
        ));
    }
    why.extend(o.remarks.iter().cloned());
    Outcome {
        error,
        abort,
        unusable,
        inconsistent,
        detail: why.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Observation {
        Observation {
            workload: WorkloadEnd::Completed,
            died_during_run: None,
            unclean_exit: None,
            live_usable: Some(Ok(())),
            fresh_usable: Ok(()),
            fsck: Fsck {
                clean: true,
                exit: Some(0),
                first_problem: String::new(),
            },
            remarks: Vec::new(),
        }
    }

    #[test]
    fn a_clean_run_has_no_outcome() {
        assert_eq!(classify(&clean()), Outcome::default());
    }

    #[test]
    fn a_graceful_failure_is_an_error_only() {
        let mut o = clean();
        o.workload = WorkloadEnd::Failed("write x: Cannot allocate memory".into());
        let c = classify(&o);
        assert!(c.error && !c.abort && !c.unusable && !c.inconsistent);
        assert!(c.detail.contains("Cannot allocate memory"));
    }

    #[test]
    fn a_dead_daemon_is_an_abort_not_an_error() {
        let mut o = clean();
        o.workload = WorkloadEnd::Failed("stat x: Transport endpoint is not connected".into());
        o.died_during_run = Some("panicked".into());
        o.live_usable = None;
        let c = classify(&o);
        assert!(!c.error && c.abort);
    }

    #[test]
    fn outcomes_combine() {
        let mut o = clean();
        o.workload = WorkloadEnd::TimedOut;
        o.fresh_usable = Err("readdir /: EIO".into());
        o.fsck.clean = false;
        o.fsck.exit = Some(4);
        let c = classify(&o);
        assert!(!c.error && c.abort && c.unusable && c.inconsistent);
    }
}
