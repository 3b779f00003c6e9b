//! The scheduling policy of the io_uring queue threads
//! (`queue_policy=idle|normal`), and the watchdog that keeps an idle-policy
//! queue from starving.
//!
//! Why: a FUSE reply wakes the application while the queue thread still
//! runs on the application's CPU (the kernel queues a request on the
//! issuing CPU's queue, whose thread is pinned there), so the scheduler
//! wakes the application on another, idle CPU, and its next request goes
//! there: a single-threaded application moves between CPUs at every
//! request, and on a VM without halt polling each such wake-up of an idle
//! vCPU exits to the host (README, "Where the application runs").
//! A `SCHED_IDLE` queue thread does not count against its CPU: the
//! scheduler finds the CPU idle (`sched_idle_cpu`), wakes the application
//! there, and the round trip stays on one CPU.
//!
//! The danger: a `SCHED_IDLE` thread runs only when nothing else wants its
//! CPU. Behind a busy process on that CPU its requests wait, unboundedly
//! (measured: postmark 500/2000 pinned beside a busy loop, 0.38 s with
//! normal queue threads, 115.5 s with idle ones). So a watchdog reads each
//! queue thread's run delay (the time it spent runnable but not running,
//! `/proc/self/task/TID/schedstat`) every [`WINDOW`]; a queue that waited
//! more than [`LIMIT`] in one window runs under the normal policy for
//! [`HOLD`], then goes back to idle. A starving queue thus waits at most
//! about a window before it competes like any thread, and the benefit
//! returns once the CPU is quiet again.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the watchdog looks.
pub const WINDOW: Duration = Duration::from_millis(10);
/// Run delay within one window that counts as starving: half of it. (An
/// idle-policy queue thread is also runnable, not running, while the
/// application it has just answered runs on its CPU, until that one's next
/// request: a few microseconds per request for a file-system-bound load,
/// the whole window for one that computes. Either way it costs nothing:
/// a queue given the normal policy then only loses the placement for a
/// while.)
pub const LIMIT: Duration = Duration::from_millis(5);
/// The longest pause between looks while no queue thread waits at all.
pub const QUIET: Duration = Duration::from_millis(160);
/// How long a queue found starving keeps the normal policy.
pub const HOLD: Duration = Duration::from_secs(1);

/// `queue_policy=`: how the io_uring queue threads are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuePolicy {
    /// `SCHED_OTHER`, like every thread.
    Normal,
    /// `SCHED_IDLE`, with the watchdog (see the module's doc).
    Idle,
}

/// The queue threads the watchdog looks after: each one's thread id, 0
/// before it starts and after it ends.
pub struct Queues {
    tids: Vec<AtomicI32>,
    /// Times a queue was found starving and given the normal policy.
    promotions: Arc<AtomicU64>,
    started: AtomicBool,
}

impl Queues {
    /// `n` queues; promotions are counted in `promotions`.
    pub fn new(n: usize, promotions: Arc<AtomicU64>) -> Arc<Queues> {
        Arc::new(Queues {
            tids: (0..n).map(|_| AtomicI32::new(0)).collect(),
            promotions,
            started: AtomicBool::new(false),
        })
    }

    /// Called by queue `q`'s thread when it starts: under `Idle`, it takes
    /// the idle policy and the watchdog's care. The guard marks it gone
    /// when dropped (the thread's end).
    pub fn enter(self: &Arc<Queues>, q: usize, policy: QueuePolicy) -> Option<Leave> {
        if policy != QueuePolicy::Idle {
            return None;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if let Err(e) = set_policy(tid, libc::SCHED_IDLE) {
            log::warn!("FUSE ring queue {q}: SCHED_IDLE: {e}; it stays normal");
            return None;
        }
        self.tids[q].store(tid, Ordering::Release);
        self.started.store(true, Ordering::Release);
        Some(Leave {
            queues: self.clone(),
            q,
        })
    }

    fn any_running(&self) -> bool {
        self.tids.iter().any(|t| t.load(Ordering::Acquire) != 0)
    }
}

/// Marks a queue thread gone when it ends.
pub struct Leave {
    queues: Arc<Queues>,
    q: usize,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.queues.tids[self.q].store(0, Ordering::Release);
    }
}

fn set_policy(tid: libc::pid_t, policy: libc::c_int) -> std::io::Result<()> {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid parameter block; the kernel checks the thread id.
    if unsafe { libc::sched_setscheduler(tid, policy, &p) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A thread's schedstat file, kept open (read again from its start for
/// each look: no open and close every window).
fn schedstat(tid: libc::pid_t) -> Option<std::fs::File> {
    std::fs::File::open(format!("/proc/self/task/{tid}/schedstat")).ok()
}

/// The thread's total run delay so far (nanoseconds), schedstat's second
/// field; `None` once the thread is gone.
fn run_delay(f: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = f.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Start the watchdog over `queues`; it ends once every queue thread that
/// entered has ended (or, if none ever enters, after a while).
pub fn watchdog(queues: Arc<Queues>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("fuse-q-watch".into())
        .spawn(move || {
            let n = queues.tids.len();
            // Per queue: the run delay last seen, and until when it keeps
            // the normal policy.
            let mut last: Vec<Option<u64>> = vec![None; n];
            let mut normal_until: Vec<Option<Instant>> = vec![None; n];
            let mut files: Vec<Option<(libc::pid_t, std::fs::File)>> =
                (0..n).map(|_| None).collect();
            let born = Instant::now();
            // Every window while a queue thread waited at all; longer
            // apart, up to QUIET, while none did (an idle mount costs
            // next to nothing; a queue that starts starving then is seen
            // within QUIET and a window).
            let mut pause = WINDOW;
            loop {
                std::thread::sleep(pause);
                if !queues.started.load(Ordering::Acquire) {
                    if born.elapsed() > Duration::from_secs(10) {
                        return;
                    }
                    continue;
                }
                if !queues.any_running() {
                    return;
                }
                let now = Instant::now();
                let mut any_waited = false;
                for q in 0..n {
                    let tid = queues.tids[q].load(Ordering::Acquire);
                    if tid == 0 {
                        continue;
                    }
                    if files[q].as_ref().is_none_or(|(t, _)| *t != tid) {
                        files[q] = schedstat(tid).map(|f| (tid, f));
                        last[q] = None;
                    }
                    let Some(delay) = files[q].as_ref().and_then(|(_, f)| run_delay(f)) else {
                        continue;
                    };
                    let waited = last[q].map_or(0, |l| delay.saturating_sub(l));
                    last[q] = Some(delay);
                    any_waited |= waited > 0 || normal_until[q].is_some();
                    if let Some(until) = normal_until[q] {
                        // Back to idle once its hold is over.
                        if now >= until && set_policy(tid, libc::SCHED_IDLE).is_ok() {
                            normal_until[q] = None;
                        }
                    } else if waited > LIMIT.as_nanos() as u64
                        && set_policy(tid, libc::SCHED_OTHER).is_ok()
                    {
                        normal_until[q] = Some(now + HOLD);
                        queues.promotions.fetch_add(1, Ordering::Relaxed);
                    }
                }
                pause = if any_waited {
                    WINDOW
                } else {
                    (pause * 2).min(QUIET)
                };
            }
        })
}
