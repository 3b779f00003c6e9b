//! Per-thread reserves. A request begins a [`Reserve`] (nothing allocated
//! yet, but a sequence number with which the cache marks what it reads, see
//! `active.rs`), counts what cache peeking found, fills it with its [`Aad`]
//! in one bulk request, and from then on every allocation from the same pool
//! on this thread is served from it. Dropping it returns the unused rest and
//! records reserved / used / returned for the operation.

use crate::aad::{Aad, MAX_OBJECT_KINDS};
use crate::pool::{NoMem, Page, Pool};
use crate::stats::Share;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// Operation slots this thread remembers (see `State::op_slots`).
const OP_CACHE: usize = 32;
/// Counter shares this thread keeps, one per pool it used last.
const SHARES: usize = 4;

pub(crate) struct State {
    /// A reserve is active on this thread. (The state stays in place
    /// between requests, with its vectors: beginning and ending a reserve
    /// moves nothing and allocates nothing.)
    on: bool,
    /// The active reserve's pool, by its id (the reserve's guard holds
    /// the pool itself).
    pool_id: u64,
    op: &'static str,
    filled: bool,
    aad: Aad,
    pages: Vec<Page>,
    /// Pages of `pages` spoken for by [charges](Pool::charge_page): they
    /// stay in the vector (and go back at the end) but serve nothing.
    charged: u32,
    scratch: Option<Page>,
    objects: [u32; MAX_OBJECT_KINDS],
    used_pages: u32,
    used_objects: [u32; MAX_OBJECT_KINDS],
    peeked: u32,
    under: u32,
    restart: Restart,
    /// The request has changed shared state (see [`note_change`]).
    changed: bool,
    /// An allocation went beyond the reserve and was refused as stale.
    stale: bool,
    /// The estimate took something for granted (see [`Reserve::assume`]).
    assumed: bool,
    /// This thread's shares of the counters of the pools it used last,
    /// by pool id; the active reserve's pool's first.
    shares: Vec<(u64, Arc<Share>)>,
    /// Operation slots found, by the address of the name's literal and
    /// the pool: (address, pool id, slot). A request's accounting then
    /// takes no scan of the pool's names.
    /// ([`OP_CACHE`] entries once used; a vector, so that setting the
    /// state aside moves little.)
    op_slots: Vec<(usize, u64, u8)>,
}

/// When an allocation beyond the reserve may be refused as a stale
/// estimate instead of being an under-allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never: it is served from the pool and counted as an under-allocation.
    Never,
    /// Until the request's first change: a request that changed nothing can
    /// run again from the top as if it had not run.
    BeforeChange,
    /// At any point: the caller rolls the request back before it restarts.
    Anywhere,
}

thread_local! {
    static ACTIVE: RefCell<State> = const { RefCell::new(State::IDLE) };
    /// The sequence number of the request whose reserve is active on this
    /// thread (0: none), apart from `ACTIVE`: the cache reads it at every
    /// block it touches, and a plain cell costs no borrow.
    static PIN: Cell<u64> = const { Cell::new(0) };
    /// The slot of the pool's active set this thread had last.
    static SLOT_HINT: Cell<usize> = const { Cell::new(0) };
}

impl State {
    const IDLE: State = State {
        on: false,
        pool_id: 0,
        op: "",
        filled: false,
        aad: Aad {
            pages: 0,
            objects: [0; MAX_OBJECT_KINDS],
            scratch: false,
        },
        pages: Vec::new(),
        charged: 0,
        scratch: None,
        objects: [0; MAX_OBJECT_KINDS],
        used_pages: 0,
        used_objects: [0; MAX_OBJECT_KINDS],
        peeked: 0,
        under: 0,
        restart: Restart::Never,
        changed: false,
        stale: false,
        assumed: false,
        shares: Vec::new(),
        op_slots: Vec::new(),
    };

    /// Put `pool`'s share of this thread first, making one if need be.
    #[inline]
    fn share_first(&mut self, pool: &Pool) {
        if self.shares.first().is_none_or(|(id, _)| *id != pool.id) {
            self.share_first_slow(pool);
        }
    }

    #[cold]
    fn share_first_slow(&mut self, pool: &Pool) {
        let share = match self.shares.iter().position(|(id, _)| *id == pool.id) {
            Some(i) => self.shares.remove(i),
            None => (pool.id, pool.counters.new_share()),
        };
        self.shares.insert(0, share);
        // (A share dropped here stays counted: the pool keeps it too.)
        self.shares.truncate(SHARES);
    }

    /// The active pool's slot for operation `op`.
    #[inline]
    fn op_slot(&mut self, pool: &Pool, op: &'static str) -> Option<usize> {
        let addr = op.as_ptr() as usize;
        if self.op_slots.is_empty() {
            self.op_slots = vec![(0, 0, 0); OP_CACHE];
        }
        // (Fibonacci hashing: literals lie a few bytes apart.)
        let e = &mut self.op_slots[(addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) % OP_CACHE];
        if e.0 == addr && e.1 == pool.id {
            return Some(e.2 as usize);
        }
        let slot = pool.counters.slot_of(op)?;
        *e = (addr, pool.id, slot as u8);
        Some(slot)
    }
}

/// The thread's state if a reserve is active.
fn active_mut(s: &mut State) -> Option<&mut State> {
    if s.on {
        Some(s)
    } else {
        None
    }
}

/// The reserve of the request running on this thread (a guard: dropping it
/// ends the reserve). A nested `begin` while one is active is inert.
pub struct Reserve<'p> {
    pool: &'p Arc<Pool>,
    owner: bool,
    /// The owner's slot in the pool's active set.
    slot: usize,
    /// This thread's sequence number before (see [`outside_reserve`]).
    prev_pin: u64,
    /// Blocks peeking found cached (counted here, not in the thread's
    /// state: an estimate counts many, and each access to that costs).
    peeked: u32,
}

pub(crate) enum Served {
    Page(Page),
    Object,
    /// A page of the reserve is spoken for (see [`Pool::charge_page`]).
    Charged,
    /// No reserve of this pool is active on this thread.
    NoReserve,
    /// The active reserve had nothing left: an under-allocation.
    Under,
    /// The active reserve had nothing left and the request will restart.
    Stale,
}

impl Pool {
    /// Begin this thread's reserve for a request of type `op`.
    pub fn begin<'p>(self: &'p Arc<Self>, op: &'static str) -> Reserve<'p> {
        ACTIVE.with(|a| {
            let mut st = a.borrow_mut();
            if st.on {
                return Reserve {
                    pool: self,
                    owner: false,
                    slot: 0,
                    prev_pin: 0,
                    peeked: 0,
                };
            }
            // The vectors are empty (left so by the last reserve's end).
            let st = &mut *st;
            st.on = true;
            st.pool_id = self.id;
            st.share_first(self);
            st.op = op;
            st.filled = false;
            st.aad = Aad::default();
            st.objects = [0; MAX_OBJECT_KINDS];
            st.used_pages = 0;
            st.charged = 0;
            st.used_objects = [0; MAX_OBJECT_KINDS];
            st.peeked = 0;
            st.under = 0;
            st.restart = Restart::Never;
            st.changed = false;
            st.stale = false;
            st.assumed = false;
            let (seq, slot) = self.active.enter(SLOT_HINT.get());
            SLOT_HINT.set(slot);
            Reserve {
                pool: self,
                owner: true,
                slot,
                prev_pin: PIN.replace(seq),
                peeked: 0,
            }
        })
    }
}

impl Reserve<'_> {
    /// Take everything `aad` lists from the pool in one request: one
    /// injection decision (none for an empty `aad`), then all pages or none.
    pub fn fill(&mut self, aad: Aad) -> Result<(), NoMem> {
        self.fill_allowing(aad, Restart::Never)
    }

    /// [`Reserve::fill`], with [`Reserve::allow_restart`]`(restart)` in the
    /// same step.
    pub fn fill_allowing(&mut self, aad: Aad, restart: Restart) -> Result<(), NoMem> {
        if !self.owner {
            return Ok(());
        }
        let pool = self.pool;
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            let st = active_mut(&mut a).expect("owner has state");
            st.shares[0].1.reservation_attempt();
            // Nothing to take (all peeked at, or nothing needed): nothing
            // that could fail, as an allocation of nothing cannot.
            let empty = aad.pages == 0 && aad.objects.iter().all(|&n| n == 0);
            if !empty && pool.injected("ama reserve") {
                pool.counters.reservation_failed();
                return Err(NoMem);
            }
            if !pool.take_pages_into(pool.pages_to_fill(aad.pages) as usize, &mut st.pages) {
                pool.counters.reservation_failed();
                return Err(NoMem);
            }
            if aad.scratch {
                st.scratch = st.pages.pop();
            }
            for (k, n) in aad.objects.iter().enumerate() {
                if *n > 0 {
                    pool.counters.object_bytes(pool.kinds[k].size * *n as usize);
                }
            }
            st.objects = aad.objects;
            st.restart = restart;
            st.peeked = self.peeked;
            st.aad = aad;
            st.filled = true;
            Ok(())
        })
    }

    /// Count a block that cache peeking found cached (and the cache marked
    /// with this request's [sequence number](pin_seq), so that it stays
    /// until the request ends): one frame the reserve need not hold.
    /// (Before [`Reserve::fill`], which records the count.)
    pub fn note_peeked(&mut self) {
        self.peeked += 1;
    }

    /// The requirement was computed from what the request saw on entry; a
    /// concurrent request can change that before this one takes its locks
    /// (a directory grows, a file's tree changes). With a restart allowed,
    /// an allocation the reserve cannot serve then fails with [`NoMem`] and
    /// marks the reserve [stale](Reserve::is_stale), so that the caller can
    /// run the request again on a fresh estimate, instead of allocating
    /// below the top. The estimate needs no margin for such races.
    pub fn allow_restart(&mut self, when: Restart) {
        if self.owner {
            ACTIVE.with(|a| {
                if let Some(st) = active_mut(&mut a.borrow_mut()) {
                    st.restart = when;
                }
            });
        }
    }

    /// The estimate took for granted what only the request can check
    /// under its locks (that a directory has room for one more entry, say),
    /// to spare the work of finding out here. Call only with a restart
    /// allowed: a request that finds otherwise calls [`assumption_failed`]
    /// before it changes anything, and runs again on a full estimate.
    pub fn assume(&mut self) {
        if self.owner {
            ACTIVE.with(|a| {
                if let Some(st) = active_mut(&mut a.borrow_mut()) {
                    st.assumed = true;
                }
            });
        }
    }

    /// Did an allocation find the estimate stale (and fail), so that the
    /// request may restart? (Not if it went on to change state after all:
    /// with a restart only before changes, it must then finish as it is.)
    pub fn is_stale(&self) -> bool {
        self.owner
            && ACTIVE.with(|a| {
                let s = a.borrow();
                s.on && s.stale && (s.restart == Restart::Anywhere || !s.changed)
            })
    }

    /// Is this the reserve that owns the thread's state (not a nested one)?
    pub fn is_owner(&self) -> bool {
        self.owner
    }
}

impl Drop for Reserve<'_> {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let pool = self.pool;
        // Unused pages and the scratch page go back (dropped outside the
        // thread-local borrow).
        let scratch = ACTIVE.with(|a| {
            let mut st = a.borrow_mut();
            let st = &mut *st;
            if st.filled {
                if st.stale {
                    pool.counters.restarted();
                }
                if let Some(slot) = st.op_slot(pool, st.op) {
                    st.shares[0].1.record(
                        slot,
                        st.aad,
                        st.used_pages,
                        st.peeked,
                        st.under,
                        st.stale,
                    );
                }
            }
            pool.give_back_all(&mut st.pages);
            st.on = false;
            st.pool_id = 0;
            st.scratch.take()
        });
        drop(scratch);
        pool.active.leave(self.slot);
        PIN.set(self.prev_pin);
    }
}

/// The sequence number of the request whose reserve is active on this
/// thread, or 0. A cache marks every buffer a request reads with it (the
/// largest mark wins) and evicts a buffer only when its mark is below
/// [`Pool::oldest_active`]: a block read for a request stays until the
/// request ends, so it is never read twice (needing a second frame).
pub fn pin_seq() -> u64 {
    PIN.get()
}

/// The request on this thread is about to change shared state: from now on
/// a stale estimate cannot be answered by a restart unless the caller rolls
/// back (see [`Reserve::allow_restart`]).
pub fn note_change() {
    ACTIVE.with(|a| {
        if let Some(st) = active_mut(&mut a.borrow_mut()) {
            st.changed = true;
        }
    });
}

/// Run `f` with this thread's reserve set aside: what `f` allocates comes
/// from the pool the ordinary way (and may fail there), as it would on a
/// thread without a request. For work that is no part of the request the
/// reserve was estimated for, e.g. commit work of other requests that its
/// commit unblocks, run on this thread by a recovery runtime. (What `f`
/// reads is still marked with this thread's [`pin_seq`]: kept until the
/// request ends, which only errs on the side of keeping.)
pub fn outside_reserve<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<State>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(mut st) = self.0.take() {
                ACTIVE.with(|a| {
                    let mut a = a.borrow_mut();
                    std::mem::swap(&mut st.shares, &mut a.shares);
                    std::mem::swap(&mut st.op_slots, &mut a.op_slots);
                    *a = st;
                });
            }
        }
    }
    let _restore = Restore(Some(ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        // (Its counter shares and slots stay: they are no part of the
        // request, and a reserve begun inside `f` uses them.)
        let mut idle = State::IDLE;
        std::mem::swap(&mut idle.shares, &mut a.shares);
        std::mem::swap(&mut idle.op_slots, &mut a.op_slots);
        std::mem::replace(&mut *a, idle)
    })));
    f()
}

/// Is a filled reserve active on this thread?
pub fn active() -> bool {
    ACTIVE.with(|a| {
        let s = a.borrow();
        s.on && s.filled
    })
}

/// Run `f` on the reserve's scratch page, if it has one free: page
/// recycling, one page reused for block after block of a long scan.
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
    let page = ACTIVE.with(|a| active_mut(&mut a.borrow_mut()).and_then(|s| s.scratch.take()));
    let mut page = page?;
    let r = f(&mut page);
    ACTIVE.with(|a| {
        if let Some(s) = active_mut(&mut a.borrow_mut()) {
            s.scratch = Some(page);
        }
    });
    Some(r)
}

/// The request found false what its estimate assumed (see
/// [`Reserve::assume`]): with a restart still allowed, the reserve turns
/// stale and this is `Err(NoMem)`, for the request to run again; otherwise
/// `Ok` (whatever it then needs beyond the reserve is counted as it comes).
pub fn assumption_failed(site: &'static str) -> Result<(), NoMem> {
    ACTIVE.with(|a| match active_mut(&mut a.borrow_mut()) {
        Some(st) if st.filled && st.assumed && restartable(st) => {
            log::debug!(
                "ama: {} at {site}: estimate assumed wrong, restarting",
                st.op
            );
            st.stale = true;
            Err(NoMem)
        }
        _ => Ok(()),
    })
}

fn restartable(st: &State) -> bool {
    match st.restart {
        Restart::Never => false,
        Restart::BeforeChange => !st.changed,
        Restart::Anywhere => true,
    }
}

/// The reserve is spent: refuse as stale if a restart is allowed, else an
/// under-allocation.
fn beyond_reserve(pool: &Pool, st: &mut State, what: &str, site: &'static str) -> Served {
    if restartable(st) {
        if !st.stale {
            log::debug!(
                "ama: {} at {site}: estimate stale ({what} beyond the reserve), restarting",
                st.op
            );
        }
        st.stale = true;
        return Served::Stale;
    }
    under_allocation(pool, st, what, site);
    Served::Under
}

fn under_allocation(pool: &Pool, st: &mut State, what: &str, site: &'static str) {
    st.under += 1;
    pool.counters.under_allocation();
    log::error!(
        "ama: under-allocation in {} at {site}: {what} beyond the reserve ({:?})",
        st.op,
        st.aad
    );
}

/// Run `f` on this thread's filled reserve of `pool`; `NoReserve` when
/// there is none (found without a borrow when no request's reserve is
/// active at all, as on every allocation of the baseline).
fn with_reserve_of(pool: &Pool, f: impl FnOnce(&mut State) -> Served) -> Served {
    if PIN.get() == 0 {
        return Served::NoReserve;
    }
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        match active_mut(&mut a) {
            Some(st) if st.filled && st.pool_id == pool.id => f(st),
            _ => Served::NoReserve,
        }
    })
}

pub(crate) fn serve_page(pool: &Arc<Pool>, site: &'static str) -> Served {
    with_reserve_of(pool, |st| {
        if st.pages.len() <= st.charged as usize {
            return beyond_reserve(pool, st, "a page", site);
        }
        st.used_pages += 1;
        Served::Page(st.pages.pop().expect("a page beyond the charged ones"))
    })
}

/// Speak for one page of the active reserve without taking it (see
/// [`Pool::charge_page`]).
pub(crate) fn charge_page(pool: &Arc<Pool>, site: &'static str) -> Served {
    with_reserve_of(pool, |st| {
        if st.pages.len() <= st.charged as usize {
            return beyond_reserve(pool, st, "a page", site);
        }
        st.charged += 1;
        st.used_pages += 1;
        Served::Charged
    })
}

pub(crate) fn serve_object(pool: &Arc<Pool>, kind: usize, site: &'static str) -> Served {
    with_reserve_of(pool, |st| {
        if st.objects[kind] > 0 {
            st.objects[kind] -= 1;
            st.used_objects[kind] += 1;
            return Served::Object;
        }
        beyond_reserve(pool, st, pool.kinds[kind].name, site)
    })
}
