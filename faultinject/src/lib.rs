//! Seeded, reproducible fault injection, knowing nothing of what it breaks.
//!
//! - **Allocation faults**: [`Injector::alloc_fails`] answers, for one
//!   allocation attempt, whether it fails (probability `alloc_p`).
//! - **Memory-safety faults**: [`fault_point!`] sites fire with probability
//!   `safety_p`, or once every `base + rand(base)` hits (the recovery-domain
//!   paper's "300,000 + rand(300,000) basic blocks"), raising the very panic a
//!   failed bounds check raises.
//!
//! Every thread draws from its own stream, seeded from the configured seed
//! and the thread's arrival order, so a single-threaded run is reproducible
//! bit for bit. Counters record how many faults fired and where.

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Probability that one allocation attempt fails.
    pub alloc_p: f64,
    /// Probability that one fault point fires.
    pub safety_p: f64,
    /// Fire a fault point once every `n + rand(n)` hits (per thread).
    pub safety_interval: Option<u64>,
    pub seed: u64,
}

impl Config {
    pub fn is_active(&self) -> bool {
        self.alloc_p > 0.0 || self.safety_p > 0.0 || self.safety_interval.is_some()
    }
}

/// What was injected, for reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub alloc_checks: u64,
    pub alloc_faults: u64,
    pub fault_point_hits: u64,
    pub safety_faults: u64,
    /// Fired faults by site ("file:line" or an allocation site name).
    pub by_site: Vec<(String, u64)>,
}

pub struct Injector {
    cfg: Config,
    /// Allocation faults can be paused (e.g. while the harness inspects state).
    enabled: AtomicBool,
    next_stream: AtomicU64,
    alloc_checks: AtomicU64,
    alloc_faults: AtomicU64,
    hits: AtomicU64,
    safety_faults: AtomicU64,
    by_site: Mutex<HashMap<String, u64>>,
    id: u64,
    /// Armed countdown: the n-th fault-point hit from now on fires (0 = off).
    countdown: AtomicU64,
}

struct Stream {
    injector: u64,
    rng: StdRng,
    until_fire: u64,
}

thread_local! {
    static STREAM: RefCell<Option<Stream>> = const { RefCell::new(None) };
}

static NEXT_INJECTOR_ID: AtomicU64 = AtomicU64::new(1);

impl Injector {
    pub fn new(cfg: Config) -> Arc<Injector> {
        Arc::new(Injector {
            cfg,
            enabled: AtomicBool::new(true),
            next_stream: AtomicU64::new(0),
            alloc_checks: AtomicU64::new(0),
            alloc_faults: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            safety_faults: AtomicU64::new(0),
            by_site: Mutex::new(HashMap::new()),
            id: NEXT_INJECTOR_ID.fetch_add(1, Ordering::Relaxed),
            countdown: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    fn with_stream<T>(&self, f: impl FnOnce(&mut Stream) -> T) -> T {
        STREAM.with(|s| {
            let mut s = s.borrow_mut();
            if s.as_ref().is_none_or(|st| st.injector != self.id) {
                let k = self.next_stream.fetch_add(1, Ordering::Relaxed);
                let mut rng =
                    StdRng::seed_from_u64(self.cfg.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let until_fire = self
                    .cfg
                    .safety_interval
                    .map_or(u64::MAX, |n| n + rng.gen_range(0..n.max(1)));
                *s = Some(Stream {
                    injector: self.id,
                    rng,
                    until_fire,
                });
            }
            f(s.as_mut().expect("stream set"))
        })
    }

    fn record(&self, site: &str) {
        *self.by_site.lock().entry(site.to_string()).or_insert(0) += 1;
    }

    /// Does this allocation attempt fail?
    pub fn alloc_fails(&self, site: &str) -> bool {
        if self.cfg.alloc_p <= 0.0 || !self.enabled.load(Ordering::Relaxed) {
            return false;
        }
        self.alloc_checks.fetch_add(1, Ordering::Relaxed);
        let fail = self.with_stream(|s| s.rng.gen_bool(self.cfg.alloc_p.min(1.0)));
        if fail {
            self.alloc_faults.fetch_add(1, Ordering::Relaxed);
            self.record(site);
        }
        fail
    }

    /// Make the `n`-th fault-point hit from now on (on any thread) fire,
    /// once. For tests that fault an operation at each of its sites in turn.
    pub fn arm_after(&self, n: u64) {
        self.countdown.store(n, Ordering::SeqCst);
    }

    /// A memory-safety fault point: maybe panic exactly as a failed bounds
    /// check does.
    /// Can [`Injector::fault_point`] fire at all (a fault armed, or a
    /// probability or interval set)? Callers on hot paths ask this first.
    #[inline]
    pub fn may_fault(&self) -> bool {
        self.countdown.load(Ordering::Relaxed) > 0
            || self.cfg.safety_p > 0.0
            || self.cfg.safety_interval.is_some()
    }

    pub fn fault_point(&self, site: &'static str) {
        let armed = self.countdown.load(Ordering::Relaxed) > 0
            && self
                .countdown
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                == Ok(1);
        if armed {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.safety_faults.fetch_add(1, Ordering::Relaxed);
            self.record(site);
            out_of_bounds(site.len());
        }
        if self.cfg.safety_p <= 0.0 && self.cfg.safety_interval.is_none() {
            return;
        }
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        let fire = self.with_stream(|s| {
            let mut fire = self.cfg.safety_p > 0.0 && s.rng.gen_bool(self.cfg.safety_p.min(1.0));
            if let Some(n) = self.cfg.safety_interval {
                s.until_fire = s.until_fire.saturating_sub(1);
                if s.until_fire == 0 {
                    fire = true;
                    s.until_fire = n + s.rng.gen_range(0..n.max(1));
                }
            }
            fire
        });
        if fire {
            self.safety_faults.fetch_add(1, Ordering::Relaxed);
            self.record(site);
            out_of_bounds(site.len());
        }
    }

    pub fn counters(&self) -> Counters {
        let mut by_site: Vec<(String, u64)> = self
            .by_site
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        by_site.sort();
        Counters {
            alloc_checks: self.alloc_checks.load(Ordering::Relaxed),
            alloc_faults: self.alloc_faults.load(Ordering::Relaxed),
            fault_point_hits: self.hits.load(Ordering::Relaxed),
            safety_faults: self.safety_faults.load(Ordering::Relaxed),
            by_site,
        }
    }
}

/// Index an empty array with a run-time index: the panic is the compiler's
/// own bounds-check failure ("index out of bounds: the len is 0 but the index is N").
#[inline(never)]
fn out_of_bounds(i: usize) {
    let empty: [u8; 0] = [];
    let i = std::hint::black_box(i);
    std::hint::black_box(empty[i]);
}

static GLOBAL: OnceLock<Arc<Injector>> = OnceLock::new();

/// Install the process-wide injector (once; later calls are ignored and
/// return false).
pub fn install(inj: Arc<Injector>) -> bool {
    GLOBAL.set(inj).is_ok()
}

pub fn global() -> Option<&'static Arc<Injector>> {
    GLOBAL.get()
}

/// A memory-safety fault site: a no-op unless an injector with safety faults
/// is installed.
#[macro_export]
macro_rules! fault_point {
    () => {
        if let Some(inj) = $crate::global() {
            inj.fault_point(concat!(file!(), ":", line!()));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: u64) -> Vec<bool> {
        let inj = Injector::new(Config {
            alloc_p: 0.5,
            seed,
            ..Default::default()
        });
        (0..64).map(|_| inj.alloc_fails("t")).collect()
    }

    #[test]
    fn allocation_faults_are_seeded_and_counted() {
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let inj = Injector::new(Config {
            alloc_p: 0.5,
            seed: 1,
            ..Default::default()
        });
        let fails = (0..10_000).filter(|_| inj.alloc_fails("site-a")).count() as u64;
        assert!((4500..5500).contains(&fails), "{fails}");
        let c = inj.counters();
        assert_eq!((c.alloc_checks, c.alloc_faults), (10_000, fails));
        assert_eq!(c.by_site, vec![("site-a".to_string(), fails)]);
        assert!(!Injector::new(Config::default()).alloc_fails("x"));
    }

    #[test]
    fn fault_point_raises_a_bounds_check_panic() {
        let inj = Injector::new(Config {
            safety_p: 1.0,
            ..Default::default()
        });
        let err =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inj.fault_point("f.rs:1")))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("index out of bounds"), "{msg}");
        assert_eq!(inj.counters().safety_faults, 1);
    }

    #[test]
    fn interval_fires_between_n_and_2n() {
        let inj = Injector::new(Config {
            safety_interval: Some(100),
            seed: 3,
            ..Default::default()
        });
        let mut fired_at = Vec::new();
        for i in 0..1000u64 {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inj.fault_point("x")))
                .is_err()
            {
                fired_at.push(i);
            }
        }
        assert!(fired_at.len() >= 5 && fired_at.len() <= 10, "{fired_at:?}");
        let gaps: Vec<u64> = fired_at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| (100..200).contains(&g)), "{gaps:?}");
        assert!((100..200).contains(&(fired_at[0] + 1)));
    }

    #[test]
    fn armed_countdown_fires_once_at_the_nth_hit() {
        let inj = Injector::new(Config::default());
        inj.arm_after(3);
        let hits: Vec<bool> = (0..6)
            .map(|_| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inj.fault_point("s")))
                    .is_err()
            })
            .collect();
        assert_eq!(hits, vec![false, false, true, false, false, false]);
    }

    #[test]
    fn disabled_injector_does_nothing() {
        let inj = Injector::new(Config {
            alloc_p: 1.0,
            safety_p: 1.0,
            ..Default::default()
        });
        inj.set_enabled(false);
        assert!(!inj.alloc_fails("a"));
        inj.fault_point("b");
        assert_eq!(inj.counters().alloc_checks, 0);
    }
}
