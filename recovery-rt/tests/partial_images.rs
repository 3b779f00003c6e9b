//! Partial before-images (`Runtime::write_range`): a write that names the
//! bytes it changes keeps only their chunks. Rollback, cascades in either
//! order, merged children and write-back must all see exactly what whole
//! images would have given.

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
}

fn obj() -> Arc<Obj> {
    Arc::new(Obj {
        chain: VersionChain::new(),
        data: Mutex::new((0..=255).collect()),
        copied: Mutex::new(0),
    })
}

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
    let rt = Runtime::new();
    let o = obj();
    let r: Result<(), _> = rt.root(|| {
        put(&rt, &o, 8..16, 1);
        put(&rt, &o, 10..12, 2); // inside what is kept: nothing more copied
        put(&rt, &o, 100..101, 3);
        fault(4)
    });
    assert_eq!(r, Err(Fault::Explicit(4)));
    assert_eq!(*o.data.lock(), original());
    assert_eq!(*o.copied.lock(), 8 + 4, "chunks 2, 3 and 25 only");
    assert_eq!(rt.uncommitted(), 0);
}

#[test]
fn a_whole_write_after_a_range_write_keeps_the_older_bytes() {
    quiet();
    let rt = Runtime::new();
    let o = obj();
    let r: Result<(), _> = rt.root(|| {
        put(&rt, &o, 0..4, 9);
        put_whole(&rt, &o, 0..256, 7);
        fault(1)
    });
    assert!(r.is_err());
    assert_eq!(*o.data.lock(), original());
}

#[test]
fn committed_ranges_stay_and_write_back_sees_only_committed_bytes() {
    quiet();
    let rt = Runtime::new();
    let o = obj();
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
    for first_faults in [true, false] {
        let rt = Runtime::new();
        let o = obj();
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
                    put(rt, o, 128..132, 2);
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
    let rt = Runtime::new();
    let o = obj();
    let r: Result<(), _> = rt.root(|| {
        put(&rt, &o, 0..4, 1);
        rt.domain(
            Kind::Basic,
            || {
                put(&rt, &o, 0..8, 2);
                put(&rt, &o, 252..256, 2);
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
