//! Partial before-images (`Runtime::write_range`): a write that names the
//! bytes it changes keeps only their chunks. Rollback, cascades in either
//! order, merged children and write-back must all see exactly what whole
//! images would have given, both for an object that lends its bytes
//! (small before-bytes kept compact, without an image) and one that does not
//! (before-bytes in an image of the object's size).

use parking_lot::Mutex;
use recovery_rt::{
    copy_chunks, fault, Committed, Fault, Image, Kind, LoggedObject, Runtime, VersionChain,
};
use std::sync::Arc;

/// 256 bytes in 64 chunks of 4; counts the bytes its images copy.
struct Obj {
    chain: VersionChain,
    data: Mutex<Vec<u8>>,
    copied: Mutex<usize>,
    /// Lends its bytes, for compact before-bytes.
    lends: bool,
}

impl LoggedObject for Obj {
    fn chain(&self) -> &VersionChain {
        &self.chain
    }
    fn snapshot(&self) -> Image {
        *self.copied.lock() += 256;
        Box::new(self.data.lock().clone())
    }
    fn restore(&self, image: &[u8]) {
        self.data.lock().copy_from_slice(image);
    }
    fn blank(&self) -> Option<Image> {
        Some(Box::new(vec![0xEEu8; 256]))
    }
    fn save_chunks(&self, image: &mut [u8], mask: u64) {
        *self.copied.lock() += mask.count_ones() as usize * 4;
        copy_chunks(&self.data.lock(), image, mask);
    }
    fn restore_chunks(&self, image: &[u8], mask: u64) {
        copy_chunks(image, &mut self.data.lock(), mask);
    }
    fn read_bytes(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        if self.lends {
            f(&self.data.lock());
        }
        self.lends
    }
    fn write_bytes(&self, f: &mut dyn FnMut(&mut [u8])) {
        assert!(self.lends, "write_bytes on an object that lends nothing");
        f(&mut self.data.lock());
    }
}

fn obj_lending(lends: bool) -> Arc<Obj> {
    Arc::new(Obj {
        chain: VersionChain::new(),
        data: Mutex::new((0..=255).collect()),
        copied: Mutex::new(0),
        lends,
    })
}

/// Both kinds of object.
const KINDS: [bool; 2] = [false, true];

fn original() -> Vec<u8> {
    (0..=255).collect()
}

/// Write `v` into bytes `r`, logged as a range write.
fn put(rt: &Runtime, o: &Arc<Obj>, r: std::ops::Range<usize>, v: u8) {
    let d: Arc<dyn LoggedObject> = o.clone();
    rt.write_range(&d, r.clone());
    o.data.lock()[r].fill(v);
}

/// Write `v` into bytes `r`, logged as a whole write.
fn put_whole(rt: &Runtime, o: &Arc<Obj>, r: std::ops::Range<usize>, v: u8) {
    let d: Arc<dyn LoggedObject> = o.clone();
    rt.write(&d);
    o.data.lock()[r].fill(v);
}

fn quiet() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn a_rolled_back_range_write_restores_its_bytes_and_copies_only_them() {
    quiet();
    for lends in KINDS {
        let rt = Runtime::new();
        let o = obj_lending(lends);
        let r: Result<(), _> = rt.root(|| {
            put(&rt, &o, 8..16, 1);
            put(&rt, &o, 10..12, 2); // inside what is kept: nothing more copied
            put(&rt, &o, 100..101, 3);
            fault(4)
        });
        assert_eq!(r, Err(Fault::Explicit(4)));
        assert_eq!(*o.data.lock(), original());
        // (Inline bytes are copied by the runtime, not through the object.)
        let copied = if lends { 0 } else { 8 + 4 };
        assert_eq!(*o.copied.lock(), copied, "chunks 2, 3 and 25 only");
        assert_eq!(rt.uncommitted(), 0);
    }
}

#[test]
fn a_whole_write_after_a_range_write_keeps_the_older_bytes() {
    quiet();
    for lends in KINDS {
        let rt = Runtime::new();
        let o = obj_lending(lends);
        let r: Result<(), _> = rt.root(|| {
            put(&rt, &o, 0..4, 9);
            put_whole(&rt, &o, 0..256, 7);
            fault(1)
        });
        assert!(r.is_err());
        assert_eq!(*o.data.lock(), original());
    }
}

#[test]
fn committed_ranges_stay_and_write_back_sees_only_committed_bytes() {
    quiet();
    for lends in KINDS {
        committed_bytes(lends);
    }
}

fn committed_bytes(lends: bool) {
    let rt = Runtime::new();
    let o = obj_lending(lends);
    rt.root(|| put(&rt, &o, 20..24, 5)).unwrap();
    let mut want = original();
    want[20..24].fill(5);
    assert_eq!(*o.data.lock(), want);
    // Inside an uncommitted domain, write-back is given the committed bytes.
    rt.root(|| {
        put(&rt, &o, 40..48, 6);
        put(&rt, &o, 200..204, 6);
        let current = o.data.lock().clone();
        let chain = o.chain.versions_for_writeback();
        match chain.committed(&current) {
            Committed::Image(bytes) => assert_eq!(&bytes[..], &want[..]),
            _ => panic!("expected the committed bytes"),
        }
    })
    .unwrap();
}

/// Two domains write different and overlapping ranges of one object; the
/// second depends on the first. Whichever rolls back first, the object
/// ends as it was before both.
#[test]
fn cascaded_range_writes_undo_in_either_order() {
    quiet();
    // B's second write: a few chunks, or more than fit compact.
    let cases = KINDS
        .into_iter()
        .flat_map(|l| [true, false].map(move |f| (l, f)))
        .flat_map(|(l, f)| [128..132, 100..250].map(move |r| (l, f, r)));
    for (lends, first_faults, b_range) in cases {
        let rt = Runtime::new();
        let o = obj_lending(lends);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let (rt, o) = (&rt, &o);
        std::thread::scope(|s| {
            let a = s.spawn(move || {
                rt.root(|| {
                    put(rt, o, 0..8, 1);
                    put(rt, o, 60..64, 1);
                    tx.send(()).unwrap();
                    rx2.recv().unwrap();
                    if first_faults {
                        fault(2)
                    }
                })
            });
            let b = s.spawn(move || {
                rx.recv().unwrap();
                rt.root(|| {
                    put(rt, o, 4..12, 2); // overlaps A's chunk 1
                    put(rt, o, b_range.clone(), 2);
                    if !first_faults {
                        tx2.send(()).unwrap();
                        fault(3)
                    }
                    tx2.send(()).unwrap();
                })
            });
            let (ra, rb) = (a.join().unwrap(), b.join().unwrap());
            if first_faults {
                assert_eq!(ra, Err(Fault::Explicit(2)));
                assert_eq!(rb, Err(Fault::Cascade));
                assert_eq!(*o.data.lock(), original(), "both undone");
            } else {
                assert_eq!(ra, Ok(()));
                assert_eq!(rb, Err(Fault::Explicit(3)));
                let mut want = original();
                want[0..8].fill(1);
                want[60..64].fill(1);
                assert_eq!(*o.data.lock(), want, "only B undone");
            }
        });
        assert_eq!(rt.uncommitted(), 0);
        assert!(!o.chain.is_speculative());
    }
}

/// A Basic child merges into its parent: the parent's older bytes win, the
/// child's fill the chunks the parent had not kept.
#[test]
fn a_merged_childs_ranges_join_its_parents() {
    quiet();
    for lends in KINDS {
        // The child's second write small (compact) or large (an image).
        for child_range in [252..256, 60..256] {
            let rt = Runtime::new();
            let o = obj_lending(lends);
            let r: Result<(), _> = rt.root(|| {
                put(&rt, &o, 0..4, 1);
                rt.domain(
                    Kind::Basic,
                    || {
                        put(&rt, &o, 0..8, 2);
                        put(&rt, &o, child_range.clone(), 2);
                    },
                    |_| None,
                )
                .unwrap();
                put(&rt, &o, 128..130, 3);
                fault(6)
            });
            assert!(r.is_err());
            assert_eq!(*o.data.lock(), original());
        }
    }
}

/// Random nests of range and whole writes, against a model of what each
/// domain's rollback must leave: roots that commit or fault, with Basic
/// children that merge or fault. Inline before-bytes grow chunk by chunk
/// past their limit (a quarter of the object) into images, and merge with images both ways.
#[test]
fn random_range_writes_roll_back_exactly() {
    quiet();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for lends in KINDS {
        for _ in 0..300 {
            let rt = Runtime::new();
            let o = obj_lending(lends);
            let mut model = original();
            for _ in 0..4 {
                let before_root = model.clone();
                let mut writes: Vec<Vec<(usize, usize, u8, bool)>> = Vec::new();
                // (start, len, value, whole) per write; the child's between.
                for _ in 0..3 {
                    let n = next(6) as usize;
                    writes.push(
                        (0..n)
                            .map(|_| {
                                let len = [1, 4, 9, 40, 130][next(5) as usize];
                                let start = next((256 - len) as u64 + 1) as usize;
                                (start, len, next(250) as u8 + 1, next(12) == 0)
                            })
                            .collect(),
                    );
                }
                let child_faults = next(3) == 0;
                let root_faults = next(3) == 0;
                let apply = |ws: &[(usize, usize, u8, bool)]| {
                    for &(a, n, v, whole) in ws {
                        if whole {
                            put_whole(&rt, &o, a..a + n, v);
                        } else {
                            put(&rt, &o, a..a + n, v);
                        }
                    }
                };
                let r: Result<(), _> = rt.root(|| {
                    apply(&writes[0]);
                    let c = rt.domain(
                        Kind::Basic,
                        || {
                            apply(&writes[1]);
                            if child_faults {
                                fault(8)
                            }
                        },
                        |_| None,
                    );
                    assert_eq!(c.is_err(), child_faults);
                    apply(&writes[2]);
                    if root_faults {
                        fault(9)
                    }
                });
                assert_eq!(r.is_err(), root_faults);
                if !root_faults {
                    for (i, ws) in writes.iter().enumerate() {
                        if i == 1 && child_faults {
                            continue;
                        }
                        for &(a, n, v, _) in ws {
                            model[a..a + n].fill(v);
                        }
                    }
                } else {
                    model = before_root;
                }
                assert_eq!(*o.data.lock(), model, "lends {lends}");
                assert!(!o.chain.is_speculative());
            }
        }
    }
}

/// An exclusive domain (an allocator under its group's lock) keeps the
/// before-bytes of its small writes privately, without a version: a
/// rollback puts them back (a larger write, or one of an object that lends
/// nothing, is versioned as usual and undone with them), a commit keeps the
/// change, and the parent's rollback runs the inverse.
#[test]
fn an_exclusive_domains_small_writes_are_undone_without_versions() {
    quiet();
    let rt = Runtime::new();
    for lends in KINDS {
        let o = obj_lending(lends);
        let big = obj_lending(true);
        let inverse_ran = Arc::new(Mutex::new(false));
        let r: Result<(), _> = rt.root(|| {
            // Fails after two small writes (one over the other) and a large one.
            let failed = rt.exclusive_domain(
                || {
                    put(&rt, &o, 10..11, 0xA1);
                    put(&rt, &o, 8..12, 0xA2);
                    put(&rt, &big, 0..64, 0xA3);
                    assert_eq!(o.chain.is_speculative(), !lends, "lends {lends}");
                    assert!(big.chain.is_speculative(), "too large for private bytes");
                    fault(4)
                },
                |_: &()| None,
            );
            assert_eq!(failed, Err(Fault::Explicit(4)));
            assert_eq!(*o.data.lock(), original(), "lends {lends}");
            assert_eq!(*big.data.lock(), original());
            assert!(!o.chain.is_speculative() && !big.chain.is_speculative());
            // Commits: the change stays, nothing is left versioned.
            let ran = inverse_ran.clone();
            rt.exclusive_domain(
                    || put(&rt, &o, 3..4, 0xB1),
                    move |_: &()| {
                        Some(Box::new(move || *ran.lock() = true) as Box<dyn FnOnce() + Send>)
                    },
                )
                .unwrap();
            assert_eq!(o.data.lock()[3], 0xB1);
            assert!(!o.chain.is_speculative());
            fault(5)
        });
        assert_eq!(r, Err(Fault::Explicit(5)));
        assert!(
            *inverse_ran.lock(),
            "the parent's rollback runs the inverse"
        );
        assert_eq!(rt.uncommitted(), 0);
    }
    assert_eq!(rt.stats().edges, 0);
}
