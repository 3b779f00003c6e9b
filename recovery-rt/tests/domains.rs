//! Unit and model tests of the recovery runtime through its public API.

use parking_lot::Mutex;
use recovery_rt::{fault, Fault, Kind, LoggedObject, Runtime, VersionChain};
use std::sync::{Arc, Barrier};

/// A logged integer.
struct Cell {
    chain: VersionChain,
    v: Mutex<i64>,
}

impl LoggedObject for Cell {
    fn chain(&self) -> &VersionChain {
        &self.chain
    }
    fn snapshot(&self) -> recovery_rt::Image {
        Box::new(self.v.lock().to_le_bytes().to_vec())
    }
    fn restore(&self, image: &[u8]) {
        *self.v.lock() = i64::from_le_bytes(image.try_into().unwrap());
    }
}

fn cell(v: i64) -> Arc<Cell> {
    Arc::new(Cell {
        chain: VersionChain::new(),
        v: Mutex::new(v),
    })
}

fn get(rt: &Runtime, c: &Arc<Cell>) -> i64 {
    rt.read(c.as_ref());
    *c.v.lock()
}

fn set(rt: &Runtime, c: &Arc<Cell>, v: i64) {
    let obj: Arc<dyn LoggedObject> = c.clone();
    rt.write(&obj);
    *c.v.lock() = v;
}

/// Silence the runtime's own fault payloads; keep real panic messages.
fn quiet() {
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        if let Some(s) = p.downcast_ref::<String>() {
            eprintln!("panic: {s} at {:?}", info.location());
        } else if let Some(s) = p.downcast_ref::<&str>() {
            eprintln!("panic: {s} at {:?}", info.location());
        }
    }));
}

#[test]
fn root_commits_and_drops_versions() {
    let rt = Runtime::new();
    let c = cell(1);
    let r = rt.root(|| {
        set(&rt, &c, 2);
        set(&rt, &c, 3);
        7
    });
    assert_eq!(r, Ok(7));
    assert_eq!(*c.v.lock(), 3);
    assert!(!c.chain.is_speculative());
    assert_eq!(rt.uncommitted(), 0);
    let s = rt.stats();
    assert_eq!((s.started, s.committed, s.rolled_back), (1, 1, 0));
}

#[test]
fn panic_and_explicit_fault_roll_back() {
    quiet();
    let rt = Runtime::new();
    let c = cell(1);
    let r: Result<(), _> = rt.root(|| {
        set(&rt, &c, 2);
        let v: Vec<u8> = Vec::new();
        let i = std::hint::black_box(3);
        let _ = v[i]; // a real bounds-check failure
    });
    assert!(matches!(r, Err(Fault::Panic(m)) if m.contains("index out of bounds")));
    assert_eq!(*c.v.lock(), 1);
    let r: Result<(), _> = rt.root(|| {
        set(&rt, &c, 5);
        fault(12)
    });
    assert_eq!(r, Err(Fault::Explicit(12)));
    assert_eq!(*c.v.lock(), 1);
    assert_eq!(rt.stats().rolled_back, 2);
    assert_eq!(rt.uncommitted(), 0);
}

#[test]
fn error_result_rolls_back_without_unwinding() {
    let rt = Runtime::new();
    let c = cell(1);
    let r: Result<Result<(), i32>, _> = rt.root_result(|| {
        set(&rt, &c, 2);
        Err(7)
    });
    assert_eq!(r, Ok(Err(7)));
    assert_eq!(*c.v.lock(), 1, "partial effect undone");
    assert_eq!(
        rt.root_result(|| {
            set(&rt, &c, 3);
            Ok::<_, i32>(())
        }),
        Ok(Ok(()))
    );
    assert_eq!(*c.v.lock(), 3);
    assert_eq!((rt.stats().rolled_back, rt.stats().committed), (1, 1));
}

#[test]
fn basic_child_rolls_back_alone_and_merges_on_success() {
    quiet();
    let rt = Runtime::new();
    let (a, b) = (cell(0), cell(0));
    let r = rt.root(|| {
        set(&rt, &a, 1);
        let child = rt.domain(
            Kind::Basic,
            || {
                set(&rt, &a, 2);
                set(&rt, &b, 2);
                fault(5)
            },
            |_| None,
        );
        assert_eq!(child, Err(Fault::Explicit(5)));
        assert_eq!(
            (*a.v.lock(), *b.v.lock()),
            (1, 0),
            "only the child's writes undone"
        );
        let ok = rt.domain(Kind::Basic, || set(&rt, &b, 3), |_| None);
        assert!(ok.is_ok());
    });
    assert!(r.is_ok());
    assert_eq!((*a.v.lock(), *b.v.lock()), (1, 3));
    // A merged child is undone with its parent.
    let r: Result<(), _> = rt.root(|| {
        rt.domain(Kind::Basic, || set(&rt, &a, 9), |_| None)
            .unwrap();
        fault(1)
    });
    assert!(r.is_err());
    assert_eq!(*a.v.lock(), 1);
    assert_eq!(rt.uncommitted(), 0);
    assert!(rt.stats().merged >= 2);
}

#[test]
fn deferred_releases_run_only_at_commit() {
    quiet();
    let rt = Runtime::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    rt.root(|| rt.defer(move || l.lock().push("freed")))
        .unwrap();
    assert_eq!(*log.lock(), vec!["freed"]);
    let l = log.clone();
    let r: Result<(), _> = rt.root(|| {
        rt.defer(move || l.lock().push("must not run"));
        fault(1)
    });
    assert!(r.is_err());
    assert_eq!(*log.lock(), vec!["freed"]);
}

/// An allocator's inverse for the tests: take back the unit it added to
/// `bm` (as a free puts a bit back).
fn take_back<T>(
    rt: &Arc<Runtime>,
    bm: &Arc<Cell>,
) -> impl FnOnce(&T) -> Option<Box<dyn FnOnce() + Send>> {
    let (rt, bm) = (rt.clone(), bm.clone());
    move |_| {
        Some(Box::new(move || {
            let v = get(&rt, &bm);
            set(&rt, &bm, v - 1);
        }) as Box<dyn FnOnce() + Send>)
    }
}

#[test]
fn reversible_commits_alone_and_its_inverse_runs_on_parent_rollback() {
    quiet();
    let rt = Runtime::new();
    let bitmap = cell(0);
    let alloc = |rt: &Arc<Runtime>, bm: &Arc<Cell>| {
        rt.domain(
            Kind::Reversible,
            || {
                let v = get(rt, bm);
                set(rt, bm, v + 1);
                v
            },
            take_back(rt, bm),
        )
    };
    let r: Result<(), _> = rt.root(|| {
        alloc(&rt, &bitmap).unwrap();
        // Committed already: another domain reading it would not depend on us.
        assert!(!bitmap.chain.is_speculative());
        fault(3)
    });
    assert!(r.is_err());
    assert_eq!(*bitmap.v.lock(), 0, "inverse ran");
    rt.root(|| alloc(&rt, &bitmap).unwrap()).unwrap();
    assert_eq!(*bitmap.v.lock(), 1, "inverse not run on commit");
    assert_eq!(rt.uncommitted(), 0);
}

#[test]
fn exclusive_domain_commits_without_a_node_and_rolls_back_alone() {
    quiet();
    let rt = Runtime::new();
    let bitmap = cell(0);
    let alloc = |rt: &Arc<Runtime>, bm: &Arc<Cell>, fail: bool| {
        rt.exclusive_domain(
            || {
                let v = get(rt, bm);
                set(rt, bm, v + 1);
                // Versioned, but no node: nobody else can see it (the
                // caller's lock), so nobody can come to depend on it.
                assert!(bm.chain.is_speculative());
                assert_eq!(rt.uncommitted(), 0);
                if fail {
                    fault(5);
                }
                v
            },
            take_back(rt, bm),
        )
    };
    let r: Result<(), _> = rt.root(|| {
        alloc(&rt, &bitmap, false).unwrap();
        assert!(!bitmap.chain.is_speculative(), "committed: version dropped");
        assert_eq!(*bitmap.v.lock(), 1);
        // A faulting one is undone by itself; the request sees the fault.
        assert_eq!(alloc(&rt, &bitmap, true), Err(Fault::Explicit(5)));
        assert_eq!(*bitmap.v.lock(), 1);
        fault(3)
    });
    assert!(r.is_err());
    assert_eq!(*bitmap.v.lock(), 0, "the committed one's inverse ran");
    rt.root(|| alloc(&rt, &bitmap, false).unwrap()).unwrap();
    assert_eq!(*bitmap.v.lock(), 1, "inverse not run on commit");
    assert_eq!(rt.uncommitted(), 0);
    assert_eq!(rt.stats().edges, 0);
}

#[test]
fn a_domain_gets_a_node_only_when_another_depends_on_it() {
    let rt = Runtime::new();
    let x = cell(0);
    // Alone: versioned, no node, committed at its end.
    rt.root(|| {
        set(&rt, &x, 1);
        assert!(x.chain.is_speculative());
        assert_eq!(rt.uncommitted(), 0);
    })
    .unwrap();
    assert!(!x.chain.is_speculative());
    // Another thread reads A's uncommitted write: the reader gives A its
    // node, takes one itself, and commits only after A.
    let (wrote, read) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (rt_a, x_a, w_a, r_a) = (rt.clone(), x.clone(), wrote.clone(), read.clone());
    let a = std::thread::spawn(move || {
        rt_a.root(|| {
            set(&rt_a, &x_a, 2);
            assert_eq!(rt_a.uncommitted(), 0, "no node before anyone depends");
            w_a.wait();
            r_a.wait();
        })
    });
    let (rt_b, x_b) = (rt.clone(), x.clone());
    let b = std::thread::spawn(move || {
        rt_b.root(|| {
            wrote.wait();
            let v = get(&rt_b, &x_b);
            assert_eq!(rt_b.uncommitted(), 2, "the reader and the writer");
            read.wait();
            v
        })
    });
    assert_eq!(a.join().unwrap(), Ok(()));
    assert_eq!(b.join().unwrap(), Ok(2));
    assert_eq!(rt.uncommitted(), 0);
    assert_eq!(rt.stats().edges, 1);
    assert!(!x.chain.is_speculative());
}

/// A logged integer whose first restore waits at a barrier (a rollback
/// caught halfway).
struct SlowRestore {
    inner: Arc<Cell>,
    gate: Mutex<Option<Arc<Barrier>>>,
}

impl LoggedObject for SlowRestore {
    fn chain(&self) -> &VersionChain {
        &self.inner.chain
    }
    fn snapshot(&self) -> recovery_rt::Image {
        self.inner.snapshot()
    }
    fn restore(&self, image: &[u8]) {
        if let Some(g) = self.gate.lock().take() {
            g.wait(); // the rollback has begun
            g.wait(); // the reader has met the other version
        }
        self.inner.restore(image)
    }
}

#[test]
fn a_reader_of_a_domain_rolling_back_alone_is_doomed() {
    quiet();
    let rt = Runtime::new();
    let gate = Arc::new(Barrier::new(2));
    let x = Arc::new(SlowRestore {
        inner: cell(0),
        gate: Mutex::new(Some(gate.clone())),
    });
    let y = cell(0);
    // A writes x then y and faults, with no node (nobody depends on it
    // yet); its rollback stops at x's restore, y still versioned.
    let (rt_a, x_a, y_a) = (rt.clone(), x.clone(), y.clone());
    let a = std::thread::spawn(move || {
        rt_a.root(|| {
            let obj: Arc<dyn LoggedObject> = x_a.clone();
            rt_a.write(&obj);
            *x_a.inner.v.lock() = 1;
            set(&rt_a, &y_a, 1);
            fault(7)
        })
    });
    gate.wait();
    // B meets A's version of y: A is rolling back alone, so B is doomed.
    let b = rt.root(|| get(&rt, &y));
    gate.wait();
    assert_eq!(b, Err(Fault::Cascade));
    assert_eq!(a.join().unwrap(), Err(Fault::Explicit(7)));
    assert_eq!((*x.inner.v.lock(), *y.v.lock()), (0, 0));
    assert!(!y.chain.is_speculative());
    assert_eq!(rt.uncommitted(), 0);
    assert_eq!(rt.stats().cascaded, 1);
}

#[test]
fn transparent_fault_is_skipped() {
    quiet();
    let rt = Runtime::new();
    let (lru, data) = (cell(0), cell(0));
    rt.root(|| {
        set(&rt, &data, 1);
        let r = rt.domain(
            Kind::Transparent,
            || {
                set(&rt, &lru, 5);
                fault(2)
            },
            |_| None,
        );
        assert!(r.is_err());
        rt.domain(Kind::Transparent, || set(&rt, &lru, 6), |_| None)
            .unwrap();
    })
    .unwrap();
    assert_eq!((*data.v.lock(), *lru.v.lock()), (1, 6));
}

#[test]
fn dependent_on_another_thread_is_rolled_back_in_cascade() {
    quiet();
    for a_faults_while_b_running in [true, false] {
        let rt = Runtime::new();
        let x = cell(0);
        // A writes; B reads A's write and writes on top; only then A faults,
        // either while B still runs or after B completed.
        let wrote = Arc::new(Barrier::new(2));
        let b_read = Arc::new(Barrier::new(2));
        let a_faulted = Arc::new(Barrier::new(2));
        let (rt_a, x_a) = (rt.clone(), x.clone());
        let (w_a, r_a, f_a) = (wrote.clone(), b_read.clone(), a_faulted.clone());
        let a = std::thread::spawn(move || {
            let r = rt_a.root(|| {
                set(&rt_a, &x_a, 1);
                w_a.wait();
                r_a.wait();
                if !a_faults_while_b_running {
                    // Give B time to complete and wait for our commit.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                fault(9)
            });
            f_a.wait();
            r
        });
        let (rt_b, x_b) = (rt.clone(), x.clone());
        let b = std::thread::spawn(move || {
            let r = rt_b.root(|| {
                wrote.wait();
                let v = get(&rt_b, &x_b); // depends on A
                set(&rt_b, &x_b, v + 10);
                b_read.wait();
                if a_faults_while_b_running {
                    a_faulted.wait();
                    rt_b.checkpoint(); // doomed by now: faults here
                }
            });
            if !a_faults_while_b_running {
                a_faulted.wait();
            }
            r
        });
        assert_eq!(a.join().unwrap(), Err(Fault::Explicit(9)));
        assert_eq!(b.join().unwrap(), Err(Fault::Cascade));
        assert_eq!(*x.v.lock(), 0, "both undone, in either order");
        assert!(!x.chain.is_speculative());
        assert_eq!(rt.uncommitted(), 0);
        assert!(rt.stats().cascaded >= 1);
    }
}

#[test]
fn cycle_of_completed_domains_commits_together() {
    let rt = Runtime::new();
    let (x, y) = (cell(0), cell(0));
    let both_wrote = Arc::new(Barrier::new(2));
    let spawn = |mine: Arc<Cell>, other: Arc<Cell>| {
        let (rt, b) = (rt.clone(), both_wrote.clone());
        std::thread::spawn(move || {
            rt.root(|| {
                set(&rt, &mine, 1);
                b.wait();
                get(&rt, &other) // each depends on the other
            })
        })
    };
    let t1 = spawn(x.clone(), y.clone());
    let t2 = spawn(y.clone(), x.clone());
    assert_eq!(t1.join().unwrap(), Ok(1));
    assert_eq!(t2.join().unwrap(), Ok(1));
    assert_eq!(rt.uncommitted(), 0);
    assert_eq!(rt.stats().committed, 2);
    assert!(rt.stats().edges >= 2);
}

#[test]
fn disabled_runtime_runs_code_directly() {
    let rt = Runtime::disabled();
    let c = cell(0);
    assert_eq!(
        rt.root(|| {
            set(&rt, &c, 4);
            1
        }),
        Ok(1)
    );
    assert!(!c.chain.is_speculative());
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.root(|| fault(1)))).is_err()
    );
}

/// Model test: threads run root domains that each add 1 to a few random
/// cells (read-modify-write, so they depend on each other), some faulting at
/// random points. At the end each cell holds exactly the number of committed
/// domains that touched it.
#[test]
fn random_domains_leave_exactly_the_committed_effects() {
    use rand::{Rng, SeedableRng};
    quiet();
    let rt = Runtime::new();
    let cells: Arc<Vec<Arc<Cell>>> = Arc::new((0..8).map(|_| cell(0)).collect());
    // Domains give no isolation: like the file system, clients lock what they
    // read-modify-write (here in index order, so no deadlock).
    let locks: Arc<Vec<Mutex<()>>> = Arc::new((0..8).map(|_| Mutex::new(())).collect());
    let expected = Arc::new(Mutex::new(vec![0i64; 8]));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (rt, cells, expected, locks) =
                (rt.clone(), cells.clone(), expected.clone(), locks.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for _ in 0..300 {
                    let mut picks: Vec<usize> = (0..3).map(|_| rng.gen_range(0..8)).collect();
                    picks.sort_unstable();
                    picks.dedup();
                    let fault_at = if rng.gen_bool(0.2) {
                        Some(rng.gen_range(0..3))
                    } else {
                        None
                    };
                    let r = rt.root(|| {
                        let held: Vec<_> = picks.iter().map(|&i| locks[i].lock()).collect();
                        let mut touched = Vec::new();
                        for (k, &i) in picks.iter().enumerate() {
                            if fault_at == Some(k) {
                                fault(1);
                            }
                            let v = get(&rt, &cells[i]);
                            std::thread::yield_now();
                            set(&rt, &cells[i], v + 1);
                            touched.push(i);
                        }
                        drop(held);
                        // Until it commits, others may read what it wrote
                        // and come to depend on it: leave them the time.
                        std::thread::yield_now();
                        touched
                    });
                    if let Ok(touched) = r {
                        let mut e = expected.lock();
                        for i in touched {
                            e[i] += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got: Vec<i64> = cells.iter().map(|c| *c.v.lock()).collect();
    assert_eq!(got, *expected.lock());
    assert_eq!(rt.uncommitted(), 0);
    let s = rt.stats();
    assert_eq!(s.started, s.committed + s.rolled_back);
    assert!(s.rolled_back > 0 && s.edges > 0);
}

/// A cell that counts its snapshots.
struct Counted {
    inner: Arc<Cell>,
    snapshots: Mutex<u32>,
}

impl LoggedObject for Counted {
    fn chain(&self) -> &VersionChain {
        &self.inner.chain
    }
    fn snapshot(&self) -> recovery_rt::Image {
        *self.snapshots.lock() += 1;
        self.inner.snapshot()
    }
    fn restore(&self, image: &[u8]) {
        self.inner.restore(image)
    }
}

#[test]
fn a_write_to_a_new_object_is_versioned_without_a_before_image() {
    quiet();
    let rt = Runtime::new();
    let c = Arc::new(Counted {
        inner: cell(9),
        snapshots: Mutex::new(0),
    });
    let obj: Arc<dyn LoggedObject> = c.clone();
    // Rolled back: no image was taken and none is restored (the bytes of a
    // new object do not matter once its allocation is undone).
    let r: Result<(), _> = rt.root(|| {
        rt.write_new(&obj);
        *c.inner.v.lock() = 1;
        assert!(matches!(
            c.inner.chain.versions_for_writeback().committed(&[]),
            recovery_rt::Committed::Nothing
        ));
        fault(5)
    });
    assert_eq!(r, Err(Fault::Explicit(5)));
    assert_eq!(*c.snapshots.lock(), 0);
    assert_eq!(*c.inner.v.lock(), 1);
    assert!(!c.inner.chain.is_speculative());
    // Committed: the new bytes are final.
    let r = rt.root(|| {
        rt.write_new(&obj);
        *c.inner.v.lock() = 2;
    });
    assert_eq!(r, Ok(()));
    assert_eq!(*c.snapshots.lock(), 0);
    assert!(matches!(
        c.inner.chain.versions_for_writeback().committed(&[]),
        recovery_rt::Committed::Current
    ));
    assert_eq!(rt.uncommitted(), 0);
}
