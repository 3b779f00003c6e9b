//! Domains, the per-thread stack, the dependence graph, commit and rollback.

use crate::object::{Before, LoggedObject, Version, Versions, FULL};
use crate::DomainId;
use parking_lot::{Condvar, Mutex};
use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Basic,
    Reversible,
    Transparent,
    Unlogged,
}

/// Why a domain was rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A panic inside the domain (an injected or real bounds-check failure...).
    Panic(String),
    /// An explicit [`fault`] call with the client's error code.
    Explicit(i32),
    /// A domain this one depended on was rolled back.
    Cascade,
}

/// Payload of the panic that [`fault`] raises.
struct ExplicitFault(i32);
/// Payload of the panic that makes a doomed running domain stop.
struct Doomed;

/// Raise a fault explicitly: the current domain rolls back with `code`.
pub fn fault(code: i32) -> ! {
    std::panic::panic_any(ExplicitFault(code))
}

/// Raise `fault` again in the enclosing domain, so that a fault a nested
/// domain reported can fail its parent the same way.
pub fn resume(fault: Fault) -> ! {
    match fault {
        Fault::Panic(msg) => std::panic::panic_any(msg),
        Fault::Explicit(code) => std::panic::panic_any(ExplicitFault(code)),
        Fault::Cascade => std::panic::panic_any(Doomed),
    }
}

/// Is this panic payload one of the runtime's own (a doomed domain stopping,
/// or an explicit fault), rather than a real panic? Panic hooks use it to
/// stay quiet about them.
pub fn is_runtime_payload(payload: &(dyn Any + Send)) -> bool {
    payload.is::<Doomed>() || payload.is::<ExplicitFault>()
}

type Action = Box<dyn FnOnce() + Send>;

enum Undo {
    /// Run on rollback (newest first).
    Inverse(Action),
    /// A Reversible child's inverse: if the child has not committed when the
    /// parent rolls back, the child is rolled back instead of running this.
    Child(DomainId, Action),
}

/// What a domain did, to be undone on rollback or finished on commit.
#[derive(Default)]
struct Logs {
    writes: Vec<Arc<dyn LoggedObject>>,
    undo: Vec<Undo>,
    deferred: Vec<Action>,
}

impl Logs {
    /// Nothing logged (a lookup, a stat, an allocator whose one write was
    /// kept privately): nothing to finish at a commit or to undo.
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.undo.is_empty() && self.deferred.is_empty()
    }
}

struct Frame {
    rt: usize,
    id: DomainId,
    kind: Kind,
    /// What other threads see of it (its doom flag, its node), taken at
    /// its first version or node (see [`PerThread::top_cell`]): until
    /// then no other thread can know of it, so it cannot be doomed or
    /// depended on, and a domain that writes nothing (a lookup, a stat)
    /// never takes one.
    cell: Option<Arc<DomainCell>>,
    /// A root's own thread waits for its outcome (for its cell).
    owner_waits: bool,
    /// An exclusive domain (see [`Runtime::exclusive_domain`]): its small
    /// writes of objects nobody else has a version of keep their
    /// before-bytes privately ([`Private`]).
    exclusive: bool,
    logs: Logs,
    /// Its logged reads and writes, counted here and added to its thread's
    /// share of the counters when the frame is popped (with the domain's
    /// start: one access to the share per domain).
    reads: u32,
    writes: u32,
}

impl Frame {
    fn doomed(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.doomed())
    }

    /// [`DomainCell::settle`]; a frame without a cell was never seen by
    /// another domain, so it is still where it started.
    fn settle(&self, to: u8) -> bool {
        self.cell.as_ref().is_none_or(|c| c.settle(to))
    }
}

/// Before-bytes an exclusive domain keeps of one small write, in its
/// thread's state instead of a version in the object's chain. Its caller's
/// lock keeps every other domain away from the object until the domain has
/// ended, and the domain commits at its end: no other domain can come to
/// see or depend on the change, so nothing needs publishing; a rollback
/// puts these bytes back, and a commit forgets them.
struct Private {
    id: DomainId,
    obj: Arc<dyn LoggedObject>,
    at: usize,
    len: usize,
    bytes: [u8; PRIVATE_BYTES],
}

/// The largest write an exclusive domain keeps privately (an allocator
/// changes one byte of a bitmap).
const PRIVATE_BYTES: usize = 16;

/// A domain as other threads see it, shared by its frame, its node and its
/// versions. A domain gets a node in the dependence graph only when one
/// depends on another: when it reads or overwrites another's uncommitted
/// version, it gives itself a node, and the other one too, from the cell
/// the version holds. One that nobody comes to depend on and that depends
/// on nobody (most: a lookup, a create in a directory nobody else is
/// changing) never takes the graph's lock; it commits, or rolls back, by
/// itself at its end. Whether a domain ends alone or was given a node is
/// decided once, by a compare-and-swap on `reg` (see [`Reg`]): the domain
/// itself at its end, a dependent under the graph's lock.
pub(crate) struct DomainCell {
    doomed: AtomicBool,
    reg: AtomicU8,
    /// A root's own thread waits for its outcome and rolls it back itself.
    owner_waits: AtomicBool,
}

/// The states of [`DomainCell::reg`].
struct Reg;
impl Reg {
    /// Running without a node.
    const RUNNING: u8 = 0;
    /// Has a node, or had one until it committed.
    const NODE: u8 = 1;
    /// Committed without a node: its versions left are final.
    const COMMITTED: u8 = 2;
    /// Rolling back without a node: its versions left are being undone.
    const ROLLED_BACK: u8 = 3;
    /// A Basic child merged into its parent without a node (no version of
    /// it is left: they are its parent's).
    const MERGED: u8 = 4;
}

impl DomainCell {
    /// Move the domain from running without a node to `to` (one of
    /// [`Reg`]'s states): true if it was still there, false if that was
    /// decided already (it was given a node).
    fn settle(&self, to: u8) -> bool {
        self.reg
            .compare_exchange(Reg::RUNNING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn doomed(&self) -> bool {
        self.doomed.load(Ordering::Acquire)
    }
}

/// A thread's domains and what it keeps for new ones, in one
/// thread-local (each access to one costs a check and a borrow, and every
/// request begins a domain).
#[derive(Default)]
struct PerThread {
    /// The domain stack, innermost last.
    frames: Vec<Frame>,
    /// Emptied logs of committed domains, for new frames: a domain per
    /// request should not cost heap allocations for its log vectors.
    spare_logs: Vec<Logs>,
    /// Cells of ended domains, for new frames (see `fresh_cell`).
    spare_cells: Vec<Arc<DomainCell>>,
    /// Exclusive domains' private before-bytes, innermost domain's last.
    private: Vec<Private>,
    /// This thread's shares of the counters of the runtimes it used last,
    /// by runtime uid, the last used first (see [`StatsInner`]).
    shares: Vec<(u64, Arc<StatsInner>)>,
    /// Domain ids taken for this thread and not handed out yet: `ids.0`
    /// up to `ids.1` (see [`NEXT_IDS`]).
    ids: (DomainId, DomainId),
}

impl std::ops::Deref for PerThread {
    type Target = Vec<Frame>;
    fn deref(&self) -> &Vec<Frame> {
        &self.frames
    }
}

impl std::ops::DerefMut for PerThread {
    fn deref_mut(&mut self) -> &mut Vec<Frame> {
        &mut self.frames
    }
}

/// Domain ids: unique in the process (so in every runtime), taken by each
/// thread in batches of [`ID_BATCH`] (a shared counter per domain would
/// move a cache line between CPUs at every request). Ids are only ever
/// compared for equality.
static NEXT_IDS: AtomicU64 = AtomicU64::new(1);
const ID_BATCH: u64 = 1024;

impl PerThread {
    /// This thread's share of `rt`'s counters.
    #[inline]
    fn share(&mut self, rt: &Runtime) -> &StatsInner {
        if self.shares.first().is_none_or(|(uid, _)| *uid != rt.uid) {
            self.share_slow(rt);
        }
        &self.shares[0].1
    }

    #[cold]
    fn share_slow(&mut self, rt: &Runtime) {
        let share = match self.shares.iter().position(|(uid, _)| *uid == rt.uid) {
            Some(i) => self.shares.remove(i),
            None => {
                let share = Arc::new(StatsInner::default());
                rt.shares.lock().push(share.clone());
                (rt.uid, share)
            }
        };
        self.shares.insert(0, share);
        // (A share dropped here stays counted: its runtime keeps it too.)
        self.shares.truncate(4);
    }

    /// A fresh domain id.
    fn next_id(&mut self) -> DomainId {
        if self.ids.0 == self.ids.1 {
            let first = NEXT_IDS.fetch_add(ID_BATCH, Ordering::Relaxed);
            self.ids = (first, first + ID_BATCH);
        }
        self.ids.0 += 1;
        self.ids.0 - 1
    }

    /// Logs for a new frame, reusing the vectors of a committed domain's.
    fn fresh_logs(&mut self) -> Logs {
        self.spare_logs.pop().unwrap_or_default()
    }

    /// Keep emptied logs for [`PerThread::fresh_logs`].
    fn keep_logs(&mut self, logs: Logs) {
        if self.spare_logs.len() < 16 {
            self.spare_logs.push(logs);
        }
    }

    /// The top frame's cell, taken now if it has none yet.
    fn top_cell(&mut self) -> Arc<DomainCell> {
        let top = self.frames.last().expect("current frame");
        if let Some(c) = &top.cell {
            return c.clone();
        }
        let c = self.fresh_cell(top.owner_waits);
        self.frames.last_mut().expect("current frame").cell = Some(c.clone());
        c
    }

    /// A fresh cell for a frame: one no frame, node or version holds
    /// any more (only the spare list does) is reused, so that a domain
    /// costs no heap allocation for it.
    fn fresh_cell(&mut self, owner_waits: bool) -> Arc<DomainCell> {
        if let Some(c) = self.spare_cells.iter().find(|c| Arc::strong_count(c) == 1) {
            // Whoever held it last let go with a release (Arc's drop): what
            // it did with the cell happens before the reset.
            std::sync::atomic::fence(Ordering::Acquire);
            c.doomed.store(false, Ordering::Relaxed);
            c.reg.store(Reg::RUNNING, Ordering::Relaxed);
            c.owner_waits.store(owner_waits, Ordering::Relaxed);
            return c.clone();
        }
        let c = Arc::new(DomainCell {
            doomed: AtomicBool::new(false),
            reg: AtomicU8::new(Reg::RUNNING),
            owner_waits: AtomicBool::new(owner_waits),
        });
        if self.spare_cells.len() < 8 {
            self.spare_cells.push(c.clone());
        }
        c
    }
}

thread_local! {
    static STACK: RefCell<PerThread> = const {
        RefCell::new(PerThread {
            frames: Vec::new(),
            spare_logs: Vec::new(),
            spare_cells: Vec::new(),
            private: Vec::new(),
            shares: Vec::new(),
            ids: (0, 0),
        })
    };
}

/// Keep a committed domain's log vectors for [`fresh_logs`].
fn recycle_logs(logs: Logs) {
    let logs = emptied(logs);
    STACK.with(|s| s.borrow_mut().keep_logs(logs));
}

/// `logs` with their entries dropped (which runs client code: so not
/// while the thread's stack is borrowed), their vectors kept.
fn emptied(mut logs: Logs) -> Logs {
    logs.writes.clear();
    logs.undo.clear();
    logs.deferred.clear();
    logs
}

/// Domain ids are handed out in sequence: FxHash spreads them well enough,
/// at a fraction of SipHash's cost on the commit path.
type IdMap<V> = rustc_hash::FxHashMap<DomainId, V>;
type IdSet = rustc_hash::FxHashSet<DomainId>;

/// A domain's edges: a handful at most in practice, kept inline so that
/// a dependence costs no heap allocation (a hash set allocated on its
/// first insert, for every domain with an edge).
#[derive(Default)]
struct Edges(smallvec::SmallVec<[DomainId; 4]>);

impl Edges {
    /// Add `id`; false if it was there.
    fn insert(&mut self, id: DomainId) -> bool {
        if self.0.contains(&id) {
            return false;
        }
        self.0.push(id);
        true
    }
    fn remove(&mut self, id: &DomainId) {
        if let Some(i) = self.0.iter().position(|d| d == id) {
            self.0.swap_remove(i);
        }
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn iter(&self) -> std::slice::Iter<'_, DomainId> {
        self.0.iter()
    }
}

impl IntoIterator for Edges {
    type Item = DomainId;
    type IntoIter = smallvec::IntoIter<[DomainId; 4]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Edges {
    type Item = &'a DomainId;
    type IntoIter = std::slice::Iter<'a, DomainId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Speculative,
    Completed,
}

struct Node {
    state: State,
    cell: Arc<DomainCell>,
    /// Domains this one depends on, and those that depend on it.
    deps: Edges,
    rdeps: Edges,
    /// A root's own thread waits for its outcome and rolls it back itself;
    /// other completed domains are rolled back by whoever dooms them.
    owner_waits: bool,
    logs: Logs,
}

#[derive(Default)]
struct Graph {
    nodes: IdMap<Node>,
    /// Basic children merged into their parents.
    merged: IdMap<DomainId>,
}

impl Node {
    fn new(cell: &Arc<DomainCell>) -> Node {
        Node {
            state: State::Speculative,
            cell: cell.clone(),
            deps: Edges::default(),
            rdeps: Edges::default(),
            owner_waits: cell.owner_waits.load(Ordering::Relaxed),
            logs: Logs::default(),
        }
    }
}

/// What a domain that meets another's version finds of that one.
enum Seen {
    /// It has a node (this id, after merges).
    Node(DomainId),
    /// It has committed: its data is final.
    Committed,
    /// It is rolling back without a node.
    RolledBack,
}

impl Graph {
    fn resolve(&self, mut id: DomainId) -> DomainId {
        while let Some(&p) = self.merged.get(&id) {
            id = p;
        }
        id
    }

    /// Domain `w`, whose version (holding `cell`) another domain meets:
    /// its node, given to it now if it has none and is still running.
    fn node_for(&mut self, w: DomainId, cell: &Arc<DomainCell>) -> Seen {
        let r = self.resolve(w);
        if self.nodes.contains_key(&r) {
            return Seen::Node(r);
        }
        if r != w {
            // Merged into a parent that has committed since.
            return Seen::Committed;
        }
        match cell.reg.compare_exchange(
            Reg::RUNNING,
            Reg::NODE,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.nodes.insert(w, Node::new(cell));
                Seen::Node(w)
            }
            Err(Reg::ROLLED_BACK) => Seen::RolledBack,
            // Its node is gone (it committed), or it committed alone.
            // (A merged child's versions are its parent's before its cell
            // says so: none is met.)
            Err(_) => Seen::Committed,
        }
    }

    /// `from` read or overwrote data of `to`. Reading data of a domain that
    /// is being rolled back taints the reader and everything depending on
    /// it: those are doomed, and the completed, unowned ones among them are
    /// returned for the caller to roll back.
    #[must_use]
    fn add_edge(
        &mut self,
        from: DomainId,
        to: DomainId,
        stats: &StatsInner,
    ) -> Vec<(DomainId, Logs)> {
        let (from, to) = (self.resolve(from), self.resolve(to));
        if from == to {
            return Vec::new();
        }
        let Some(target) = self.nodes.get_mut(&to) else {
            return Vec::new(); // committed: its data is no longer speculative
        };
        if target.cell.doomed() {
            return if self.nodes.contains_key(&from) {
                self.doom(from, stats)
            } else {
                Vec::new()
            };
        }
        if target.rdeps.insert(from) {
            stats.edges.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = self.nodes.get_mut(&from) {
            n.deps.insert(to);
        }
        Vec::new()
    }

    /// Doom `id` and everything that depends on it; returns the completed,
    /// unowned nodes the caller must roll back.
    fn doom(&mut self, id: DomainId, stats: &StatsInner) -> Vec<(DomainId, Logs)> {
        let mut queue = VecDeque::from([self.resolve(id)]);
        let mut seen = IdSet::default();
        let mut orphans = Vec::new();
        while let Some(d) = queue.pop_front() {
            if !seen.insert(d) {
                continue;
            }
            let Some(n) = self.nodes.get(&d) else {
                continue;
            };
            if d != id && !n.cell.doomed.swap(true, Ordering::AcqRel) {
                stats.cascaded.fetch_add(1, Ordering::Relaxed);
            }
            n.cell.doomed.store(true, Ordering::Release);
            queue.extend(n.rdeps.iter().copied());
            if n.state == State::Completed && !n.owner_waits {
                orphans.push(d);
            }
        }
        // Their logs are taken; the nodes stay (doomed) until undone, so that
        // a reader of their not-yet-restored data is doomed too.
        orphans
            .into_iter()
            .filter_map(|d| {
                let n = self.nodes.get_mut(&d)?;
                n.owner_waits = true; // taken care of by the caller
                Some((d, std::mem::take(&mut n.logs)))
            })
            .collect()
    }

    /// Remove a node that commits, with the logs it held while it waited.
    fn remove_with_logs(&mut self, id: DomainId) -> Option<(DomainId, Node, Logs)> {
        let mut n = self.remove(id)?;
        let logs = std::mem::take(&mut n.logs);
        Some((id, n, logs))
    }

    fn remove(&mut self, id: DomainId) -> Option<Node> {
        let n = self.nodes.remove(&id)?;
        for d in &n.deps {
            if let Some(x) = self.nodes.get_mut(d) {
                x.rdeps.remove(&id);
            }
        }
        for d in &n.rdeps {
            if let Some(x) = self.nodes.get_mut(d) {
                x.deps.remove(&id);
            }
        }
        Some(n)
    }

    /// If `id` can commit, the set that commits with it (it and everything
    /// it transitively depends on, all completed and none doomed).
    fn commit_set(&self, id: DomainId) -> Option<Vec<DomainId>> {
        let mut set = Vec::new();
        let mut seen = IdSet::default();
        let mut stack = vec![id];
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            let n = self.nodes.get(&d)?;
            if n.state != State::Completed || n.cell.doomed() {
                return None;
            }
            set.push(d);
            stack.extend(n.deps.iter().copied());
        }
        Some(set)
    }
}

/// The runtime's counters: a share per thread, which only that thread
/// writes (a load and a store, see [`bump`]), and the runtime's own for
/// counts of the rare paths; [`Runtime::stats`] sums them.
#[derive(Default)]
struct StatsInner {
    started: AtomicU64,
    committed: AtomicU64,
    rolled_back: AtomicU64,
    cascaded: AtomicU64,
    merged: AtomicU64,
    edges: AtomicU64,
    logged_reads: AtomicU64,
    logged_writes: AtomicU64,
    unlogged_reads: AtomicU64,
    unlogged_writes: AtomicU64,
}

/// Count one in a thread's own share of the counters.
fn bump(a: &AtomicU64) {
    add(a, 1);
}

/// Count `n` in a thread's own share of the counters.
fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Counters (the paper's Table 3 coverage is logged / all accesses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Domains started (each counted once its closure has returned: a
    /// running domain is not in it yet).
    pub started: u64,
    pub committed: u64,
    pub rolled_back: u64,
    /// Domains doomed because a domain they depended on rolled back.
    pub cascaded: u64,
    pub merged: u64,
    pub edges: u64,
    pub logged_reads: u64,
    pub logged_writes: u64,
    pub unlogged_reads: u64,
    pub unlogged_writes: u64,
}

pub struct Runtime {
    enabled: bool,
    /// Unique in the process (an address can be reused by a later runtime).
    uid: u64,
    graph: Mutex<Graph>,
    changed: Condvar,
    /// Counts of the rare paths (edges, dooms, merges).
    stats: StatsInner,
    /// Every thread's share of the counters.
    shares: Mutex<Vec<Arc<StatsInner>>>,
}

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

fn fault_of(payload: Box<dyn Any + Send>) -> Fault {
    if payload.is::<Doomed>() {
        Fault::Cascade
    } else if let Some(e) = payload.downcast_ref::<ExplicitFault>() {
        Fault::Explicit(e.0)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Fault::Panic(s.clone())
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        Fault::Panic(s.to_string())
    } else {
        Fault::Panic("panic".into())
    }
}

/// A committed domain's versions are final: dropped from the chains of
/// the objects it wrote. (A merged child's version can leave its parent with
/// two of one object, when another domain's came in between.)
fn drop_versions(id: DomainId, writes: &[Arc<dyn LoggedObject>]) {
    for obj in writes {
        let mut chain = obj.chain().lock();
        // Dropped where they lie (a removal would move each out first).
        if chain.len() == 1 {
            if chain[0].domain == id {
                chain.clear();
            }
        } else {
            chain.retain(|v| v.domain != id);
        }
    }
}

/// Remove `id`'s version from an object: the newest version restores its
/// before-image; an older one hands its before-image to the next version, so
/// the object ends where it was before the oldest rolled-back write whatever
/// the order of rollbacks.
fn unversion(obj: &dyn LoggedObject, id: DomainId) {
    let mut chain = obj.chain().lock();
    let Some(i) = chain.iter().position(|v| v.domain == id) else {
        return;
    };
    let v = chain.remove(i);
    if i == chain.len() {
        v.restore(obj);
    } else {
        chain[i].absorb(v);
    }
}

impl Runtime {
    pub fn new() -> Arc<Runtime> {
        Arc::new(Runtime {
            enabled: true,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            graph: Mutex::new(Graph::default()),
            changed: Condvar::new(),
            stats: StatsInner::default(),
            shares: Mutex::new(Vec::new()),
        })
    }

    /// A runtime that is bypassed: domains run their closure directly (a panic
    /// propagates), hooks do nothing. The same code runs either way.
    pub fn disabled() -> Arc<Runtime> {
        let mut rt = Runtime::new();
        Arc::get_mut(&mut rt).expect("fresh").enabled = false;
        rt
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn key(&self) -> usize {
        self as *const Runtime as usize
    }

    pub fn stats(&self) -> Stats {
        let shares = self.shares.lock().clone();
        let l = |f: fn(&StatsInner) -> &AtomicU64| -> u64 {
            let own = f(&self.stats).load(Ordering::Relaxed);
            own + shares
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        Stats {
            started: l(|s| &s.started),
            committed: l(|s| &s.committed),
            rolled_back: l(|s| &s.rolled_back),
            cascaded: l(|s| &s.cascaded),
            merged: l(|s| &s.merged),
            edges: l(|s| &s.edges),
            logged_reads: l(|s| &s.logged_reads),
            logged_writes: l(|s| &s.logged_writes),
            unlogged_reads: l(|s| &s.unlogged_reads),
            unlogged_writes: l(|s| &s.unlogged_writes),
        }
    }

    /// Count one in this thread's share of counter `which`.
    #[inline(never)]
    fn count(&self, which: fn(&StatsInner) -> &AtomicU64) {
        STACK.with(|s| bump(which(s.borrow_mut().share(self))));
    }

    /// Domains in the dependence graph, neither committed nor rolled back
    /// (for tests and reports). A running domain that nobody depends on and
    /// that depends on nobody has no node and is not counted.
    pub fn uncommitted(&self) -> usize {
        self.graph.lock().nodes.len()
    }

    /// The innermost logged domain of this runtime on this thread, and
    /// whether it has been doomed (read in place: this runs on every logged
    /// access, so no reference to the flag is cloned out).
    fn current(&self) -> Option<(DomainId, bool)> {
        if !self.enabled {
            return None;
        }
        STACK.with(|s| {
            let s = s.borrow();
            let top = s.last()?;
            if top.rt != self.key() || top.kind == Kind::Unlogged {
                return None;
            }
            Some((top.id, top.doomed()))
        })
    }

    /// The current domain's cell.
    fn current_cell(&self) -> Arc<DomainCell> {
        STACK.with(|s| s.borrow_mut().top_cell())
    }

    /// [`Runtime::current`], and `obj` recorded in the frame's write log
    /// unless `published` (its chain's newest version) is the frame's own;
    /// whether it was (then also the frame's cell, for a new version).
    /// Nothing is recorded in a doomed frame.
    fn current_frame_recording(
        &self,
        obj: &Arc<dyn LoggedObject>,
        published: DomainId,
    ) -> Option<(DomainId, bool, Option<Arc<DomainCell>>)> {
        if !self.enabled {
            return None;
        }
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let top = s.last_mut()?;
            if top.rt != self.key() || top.kind == Kind::Unlogged {
                return None;
            }
            top.writes += 1;
            let doomed = top.doomed();
            let record = !doomed && published != top.id;
            if record {
                top.logs.writes.push(obj.clone());
            }
            let id = top.id;
            Some((id, doomed, record.then(|| s.top_cell())))
        })
    }

    /// The current domain `id` meets the newest version of `chain`: if it
    /// is another uncommitted domain's (not of its own nest), it comes to
    /// depend on that one, both getting their nodes. The orphans the new
    /// edge produced if it added one; `None` if there was nothing to depend
    /// on. A domain rolling back alone taints it.
    fn depend_on_newest(&self, id: DomainId, chain: &Versions) -> Option<Vec<(DomainId, Logs)>> {
        let v = chain.last()?;
        if v.domain == id || self.in_nest(v.domain) {
            return None;
        }
        let mut g = self.graph.lock();
        match g.node_for(v.domain, &v.owner) {
            Seen::Node(w) if w != id && !self.in_nest(w) => {
                self.register_current(&mut g);
                Some(g.add_edge(id, w, &self.stats))
            }
            Seen::Node(_) | Seen::Committed => None,
            Seen::RolledBack => {
                drop(g);
                self.tainted()
            }
        }
    }

    /// The current domain is about to read or overwrite data of a domain
    /// that is rolling back without a node: it is doomed, as a dependent
    /// of that one would be.
    fn tainted(&self) -> ! {
        self.stats.cascaded.fetch_add(1, Ordering::Relaxed);
        std::panic::panic_any(Doomed)
    }

    /// Raise [`Doomed`] in the current domain if it has been doomed.
    fn check_current(&self) {
        if let Some((_, true)) = self.current() {
            std::panic::panic_any(Doomed);
        }
    }

    /// Is `id` one of this thread's own open domains (the current one or an
    /// ancestor)? A domain never depends on its own nest.
    fn in_nest(&self, id: DomainId) -> bool {
        STACK.with(|s| s.borrow().iter().any(|f| f.rt == self.key() && f.id == id))
    }

    /// Hook: the current domain is about to read `obj`.
    pub fn read(&self, obj: &dyn LoggedObject) {
        if !self.enabled {
            return;
        }
        // The current domain, and the read counted, in one access.
        let current = STACK.with(|s| match s.borrow_mut().last_mut() {
            Some(top) if top.rt == self.key() && top.kind != Kind::Unlogged => {
                top.reads += 1;
                Some((top.id, top.doomed()))
            }
            _ => None,
        });
        let Some((id, doomed)) = current else {
            self.count(|s| &s.unlogged_reads);
            return;
        };
        if doomed {
            std::panic::panic_any(Doomed);
        }
        // Nobody else's uncommitted version (the common case): no lock.
        // (A version pushed just after this load is one a reader holding
        // the chain's lock would have missed the same way: writers push
        // their version before they change the object.)
        let newest = obj.chain().newest();
        if newest == 0 || newest == id {
            return;
        }
        let chain = obj.chain().lock();
        let edge = self.depend_on_newest(id, &chain);
        drop(chain);
        if let Some(orphans) = edge {
            // Depending on a doomed domain dooms this one.
            self.undo_orphans(orphans);
            self.check_current();
        }
    }

    /// Hook: the current domain is about to modify `obj` (call it before
    /// taking the object's own data lock). The first write in a domain
    /// records the before-image.
    pub fn write(&self, obj: &Arc<dyn LoggedObject>) {
        self.write_logged(obj, true, None)
    }

    /// Like [`Runtime::write`], for a write that changes only the bytes in
    /// `range` of `obj`: an object that offers partial images keeps only
    /// the chunks of the range (see [`crate::object`]).
    pub fn write_range(&self, obj: &Arc<dyn LoggedObject>, range: std::ops::Range<usize>) {
        self.write_logged(obj, true, Some(range))
    }

    /// Like [`Runtime::write`], for an object new to the current domain
    /// (e.g. a block it has just allocated, whose allocation it undoes if
    /// it rolls back): versioned, so readers depend on the writer and
    /// write-back waits for the commit, but without a before-image, as
    /// what the object held before does not matter.
    pub fn write_new(&self, obj: &Arc<dyn LoggedObject>) {
        self.write_logged(obj, false, None)
    }

    fn write_logged(
        &self,
        obj: &Arc<dyn LoggedObject>,
        image: bool,
        range: Option<std::ops::Range<usize>>,
    ) {
        // The frame, and (in the same access to it) the object recorded in
        // its log, unless the chain says this domain wrote it last. (An
        // entry with no version of the domain behind it is harmless: its
        // commit and its rollback find nothing of it to finish or undo.)
        if !self.enabled {
            return;
        }
        let published = obj.chain().newest();
        if published == 0 && image {
            if let Some(r) = &range {
                if r.len() <= PRIVATE_BYTES && self.write_private(obj, r.clone()) {
                    return;
                }
            }
        }
        let Some((id, doomed, cell)) = self.current_frame_recording(obj, published) else {
            self.count(|s| &s.unlogged_writes);
            return;
        };
        if doomed {
            std::panic::panic_any(Doomed);
        }
        let mut chain = obj.chain().lock();
        let newest = chain.last().map(|v| v.domain);
        if newest == Some(id) {
            // Written before in this domain: keep the before-bytes of what
            // this write touches that the version does not hold yet.
            chain
                .last_mut()
                .expect("newest")
                .extend(obj.as_ref(), range);
            return;
        }
        // Overwriting another's uncommitted version: this one depends on
        // that one.
        let edge = self.depend_on_newest(id, &chain);
        let (edge, orphans) = (edge.is_some(), edge.unwrap_or_default());
        // Only a new edge can have doomed it since the check above (to a
        // domain being rolled back); a doom by another thread any later is
        // seen at the next access or at completion.
        if edge && self.current().is_some_and(|(_, doomed)| doomed) {
            drop(chain);
            self.undo_orphans(orphans);
            std::panic::panic_any(Doomed);
        }
        debug_assert!(orphans.is_empty(), "only a doomed writer produces orphans");
        // An object new to the domain has no older version to keep, unless
        // another uncommitted domain wrote it (then it is not new after all).
        let image = image || newest.is_some();
        let recorded = cell.is_some();
        let owner = cell.unwrap_or_else(|| self.current_cell());
        chain.push(if image {
            Version::first(id, owner, obj.as_ref(), range)
        } else {
            Version {
                domain: id,
                owner,
                before: Before::New,
                mask: FULL,
            }
        });
        drop(chain);
        if !recorded {
            // Another domain's version came on top of this one's since.
            STACK.with(|s| {
                s.borrow_mut()
                    .last_mut()
                    .expect("current frame")
                    .logs
                    .writes
                    .push(obj.clone())
            });
        }
    }

    /// A small write of an object no domain has a version of, in an
    /// exclusive domain: its before-bytes kept privately (see [`Private`]);
    /// false if the current domain is not exclusive (or is doomed), or the
    /// object does not lend its bytes: then it is versioned as any write.
    fn write_private(&self, obj: &Arc<dyn LoggedObject>, r: std::ops::Range<usize>) -> bool {
        let exclusive = STACK.with(|s| {
            s.borrow()
                .last()
                .is_some_and(|f| f.exclusive && f.rt == self.key() && !f.doomed())
        });
        if !exclusive {
            return false;
        }
        let mut bytes = [0u8; PRIVATE_BYTES];
        let mut lent = false;
        obj.read_bytes(&mut |b| {
            if let Some(before) = b.get(r.clone()) {
                bytes[..r.len()].copy_from_slice(before);
                lent = true;
            }
        });
        if !lent {
            return false;
        }
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let top = s.frames.last_mut().expect("current frame");
            top.writes += 1;
            let id = top.id;
            s.private.push(Private {
                id,
                obj: obj.clone(),
                at: r.start,
                len: r.len(),
                bytes,
            });
        });
        true
    }

    /// The exclusive domain `id` ended: its private before-bytes are put
    /// back if it `failed`, else forgotten (it commits).
    fn end_private(&self, id: DomainId, failed: bool) {
        let mine = STACK.with(|s| {
            let mut s = s.borrow_mut();
            if s.private.last().is_none_or(|p| p.id != id) {
                return None;
            }
            match s.private.iter().rposition(|p| p.id != id) {
                // All of them (the common case): the vector itself, given
                // back below, so that no domain allocates one.
                None => Some(std::mem::take(&mut s.private)),
                Some(i) => Some(s.private.split_off(i + 1)),
            }
        });
        // (Outside the thread's state: putting bytes back and dropping
        // objects run client code.)
        let Some(mut mine) = mine else {
            return;
        };
        if failed {
            for p in mine.iter().rev() {
                let before = &p.bytes[..p.len];
                p.obj
                    .write_bytes(&mut |b| b[p.at..p.at + p.len].copy_from_slice(before));
            }
        }
        mine.clear();
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if s.private.capacity() == 0 {
                s.private = mine;
            }
        });
    }

    /// Log an inverse with the current domain: run if it rolls back.
    /// Outside a logged domain nothing can roll back, and `f` is dropped.
    pub fn log_undo(&self, f: impl FnOnce() + Send + 'static) {
        self.with_top(|fr| fr.logs.undo.push(Undo::Inverse(Box::new(f))));
    }

    /// Defer a release until the current domain commits (run at once when
    /// there is no logged domain).
    pub fn defer(&self, f: impl FnOnce() + Send + 'static) {
        let mut f = Some(f);
        let logged = self.with_top(|fr| fr.logs.deferred.push(Box::new(f.take().expect("once"))));
        if !logged {
            (f.take().expect("not taken"))();
        }
    }

    fn with_top(&self, op: impl FnOnce(&mut Frame)) -> bool {
        if !self.enabled {
            return false;
        }
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            match s.last_mut() {
                Some(fr) if fr.rt == self.key() && fr.kind != Kind::Unlogged => {
                    op(fr);
                    true
                }
                _ => false,
            }
        })
    }

    /// Is the current thread inside a logged domain of this runtime (and not
    /// in an Unlogged stretch such as a rollback's inverses)?
    pub fn in_logged_domain(&self) -> bool {
        self.current().is_some()
    }

    /// Is the current thread running Unlogged code of this runtime?
    pub fn in_unlogged(&self) -> bool {
        self.enabled
            && STACK.with(|s| {
                s.borrow()
                    .last()
                    .is_some_and(|f| f.rt == self.key() && f.kind == Kind::Unlogged)
            })
    }

    /// Raise a fault in the current domain if a domain it depends on was
    /// rolled back (long operations call this between steps).
    pub fn checkpoint(&self) {
        self.check_current();
    }

    fn push_frame(&self, kind: Kind, owner_waits: bool) -> DomainId {
        self.push_frame_under(kind, owner_waits, false).0
    }

    /// Push a frame; its id, and whether the frame it is pushed on is a
    /// logged one of this runtime (in one access to the stack).
    fn push_frame_under(&self, kind: Kind, owner_waits: bool, exclusive: bool) -> (DomainId, bool) {
        let (id, parent_logged) = STACK.with(|s| {
            let mut t = s.borrow_mut();
            let id = if kind == Kind::Unlogged {
                0
            } else {
                t.next_id()
            };
            let parent_logged = t
                .last()
                .is_some_and(|f| f.rt == self.key() && f.kind != Kind::Unlogged);
            // (An unlogged frame logs nothing.)
            let logs = if kind == Kind::Unlogged {
                Logs::default()
            } else {
                t.fresh_logs()
            };
            t.push(Frame {
                rt: self.key(),
                id,
                kind,
                cell: None,
                owner_waits,
                exclusive,
                logs,
                reads: 0,
                writes: 0,
            });
            (id, parent_logged)
        });
        (id, parent_logged)
    }

    /// Give the domain on top of this thread's stack its node in the graph
    /// unless it has one (see [`DomainCell`]); `g` is the held graph. (The
    /// current domain, or a parent taking on its child's versions or edges
    /// once the child's frame is popped.)
    fn register_current(&self, g: &mut Graph) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let cell = s.top_cell();
            let f = s.last().expect("current frame");
            debug_assert!(f.rt == self.key() && f.kind != Kind::Unlogged);
            if cell.settle(Reg::NODE) {
                g.nodes.insert(f.id, Node::new(&cell));
            }
        });
    }

    /// A domain without a node completed (its cell now says so): nobody
    /// depends on it and it on nobody, so it commits now.
    fn commit_alone(&self, frame: &mut Frame) {
        if !frame.logs.is_empty() {
            drop_versions(frame.id, &frame.logs.writes);
            self.run_unlogged(&mut frame.logs.deferred);
        }
        let logs = emptied(std::mem::take(&mut frame.logs));
        // Counted, and the logs kept, in one access to the thread's state
        // (this runs at the end of almost every domain).
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            bump(&s.share(self).committed);
            s.keep_logs(logs);
        });
    }

    fn pop_frame(&self) -> Frame {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let f = s.pop().expect("domain frame");
            if f.kind != Kind::Unlogged {
                let share = s.share(self);
                bump(&share.started);
                add(&share.logged_reads, f.reads.into());
                add(&share.logged_writes, f.writes.into());
            }
            f
        })
    }

    /// Pop the current (logged) frame, as [`Runtime::pop_frame`]; when
    /// `commit`, a domain that no other saw and that logged nothing (a
    /// lookup, a stat: most requests) is committed in the same access to
    /// the thread's state, and `None` returned.
    fn pop_frame_or_commit(&self, commit: bool) -> Option<Frame> {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let f = s.pop().expect("domain frame");
            let share = s.share(self);
            bump(&share.started);
            add(&share.logged_reads, f.reads.into());
            add(&share.logged_writes, f.writes.into());
            if commit && f.cell.is_none() && f.logs.is_empty() {
                bump(&share.committed);
                s.keep_logs(f.logs);
                return None;
            }
            Some(f)
        })
    }

    /// Run client actions (inverses, deferred releases) outside any logged
    /// domain: their effects are final.
    /// (Drained, so that a recycled log keeps its vector.)
    fn run_unlogged(&self, actions: &mut Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        self.push_frame(Kind::Unlogged, false);
        for a in actions.drain(..) {
            a();
        }
        self.pop_frame();
    }

    /// Undo a domain's effects: versions, then inverses newest first.
    fn undo_logs(&self, id: DomainId, mut logs: Logs) {
        for obj in &logs.writes {
            unversion(obj.as_ref(), id);
        }
        let mut actions: Vec<Action> = Vec::new();
        for u in logs.undo.drain(..).rev() {
            match u {
                Undo::Inverse(f) => actions.push(f),
                Undo::Child(child, f) => {
                    let pending = {
                        let mut g = self.graph.lock();
                        let orphans = if g.nodes.contains_key(&child) {
                            g.doom(child, &self.stats)
                        } else {
                            Vec::new()
                        };
                        let logs = g.nodes.get_mut(&child).map(|n| std::mem::take(&mut n.logs));
                        logs.map(|l| (l, orphans))
                    };
                    match pending {
                        Some((logs, orphans)) => {
                            self.undo_logs(child, logs);
                            self.drop_node(child);
                            self.undo_orphans(orphans);
                        }
                        None => actions.push(f),
                    }
                }
            }
        }
        self.run_unlogged(&mut actions);
        self.count(|s| &s.rolled_back);
        // (Its deferred releases are dropped unrun: what they would have
        // released stays in use.)
        recycle_logs(logs);
    }

    #[inline]
    fn undo_orphans(&self, orphans: Vec<(DomainId, Logs)>) {
        if orphans.is_empty() {
            return;
        }
        self.undo_orphans_now(orphans);
    }

    fn undo_orphans_now(&self, orphans: Vec<(DomainId, Logs)>) {
        self.changed.notify_all();
        for (id, logs) in orphans {
            self.undo_logs(id, logs);
            self.drop_node(id);
        }
    }

    /// Drop a rolled-back domain's node, now that its data is restored.
    fn drop_node(&self, id: DomainId) {
        self.graph.lock().remove(id);
        self.changed.notify_all();
    }

    /// Roll back a domain of this thread that faulted (its frame is popped).
    fn rollback_frame(&self, frame: Frame) {
        if frame.logs.is_empty() {
            // It changed nothing (a failed lookup, say): nobody can depend
            // on it and there is nothing to undo.
            if !frame.settle(Reg::ROLLED_BACK) {
                self.drop_node(frame.id);
            }
            self.count(|s| &s.rolled_back);
            recycle_logs(frame.logs);
            return;
        }
        if frame.settle(Reg::ROLLED_BACK) {
            // Nobody depends on it (one that meets its versions from now
            // on is doomed): only its own undo to run.
            self.undo_logs(frame.id, frame.logs);
            return;
        }
        let orphans = self.graph.lock().doom(frame.id, &self.stats);
        self.changed.notify_all();
        self.undo_logs(frame.id, frame.logs);
        self.drop_node(frame.id);
        self.undo_orphans(orphans);
    }

    /// Try to commit `id` and then whatever its commit unblocks.
    fn try_commit(&self, id: DomainId) {
        self.commit_from(Some(id), Vec::new());
    }

    /// Mark a domain with a node completed, with its logs. One that depends
    /// on nobody commits at once, under the same hold of the graph's lock
    /// (the common case: a completion and a commit cost one lock); true if
    /// it did. Others wait in the graph for what they depend on.
    fn complete(&self, id: DomainId, logs: Logs) -> bool {
        let alone = {
            let mut g = self.graph.lock();
            let Some(n) = g.nodes.get_mut(&id) else {
                return false;
            };
            n.state = State::Completed;
            if !n.deps.is_empty() || n.cell.doomed() {
                n.logs = logs;
                return false;
            }
            // (Its logs go with it straight to the commit, not through
            // the node.)
            g.remove(id)
        };
        let Some(n) = alone else {
            return false;
        };
        let mut work = Vec::new();
        self.finish_commit(&mut [(id, n, logs)], &mut work);
        if !work.is_empty() {
            self.commit_from(None, work);
        }
        true
    }

    /// Try to commit `first`, then the domains in `work`, and whatever
    /// their commits unblock.
    fn commit_from(&self, first: Option<DomainId>, mut work: Vec<DomainId>) {
        let mut next = first;
        while let Some(id) = next.take().or_else(|| work.pop()) {
            let mut one = None;
            let mut many = Vec::new();
            {
                let mut g = self.graph.lock();
                let Some(n) = g.nodes.get(&id) else {
                    continue;
                };
                if n.deps.is_empty() {
                    // The common case, without walking a set.
                    if n.state != State::Completed || n.cell.doomed() {
                        continue;
                    }
                    one = g.remove_with_logs(id);
                } else {
                    let Some(set) = g.commit_set(id) else {
                        continue;
                    };
                    many.extend(set.into_iter().filter_map(|d| g.remove_with_logs(d)));
                }
            }
            let done = match &mut one {
                Some(one) => std::slice::from_mut(one),
                None => &mut many[..],
            };
            self.finish_commit(done, &mut work);
        }
    }

    /// Domains removed from the graph as committed: their versions are
    /// final now (dropped from the chains), then their deferred releases
    /// run. Their dependents go to `work`, to be tried next.
    fn finish_commit(&self, done: &mut [(DomainId, Node, Logs)], work: &mut Vec<DomainId>) {
        for (d, _, logs) in done.iter() {
            drop_versions(*d, &logs.writes);
            self.count(|s| &s.committed);
        }
        self.changed.notify_all();
        for (_, n, logs) in done.iter_mut() {
            self.run_unlogged(&mut logs.deferred);
            work.extend(n.rdeps.iter().copied());
            recycle_logs(std::mem::take(logs));
        }
    }

    /// Run `f` as a nested domain of `kind`. Basic, Reversible and
    /// Transparent domains are rolled back on a fault and answer `Err`
    /// (a Transparent one is meant to be skipped then). Unlogged runs `f`
    /// directly. `inverse` (Reversible only) undoes `f`'s effect logically
    /// and is logged with the parent on success.
    pub fn domain<T>(
        &self,
        kind: Kind,
        f: impl FnOnce() -> T,
        inverse: impl FnOnce(&T) -> Option<Action>,
    ) -> Result<T, Fault> {
        self.domain_inner(kind, false, f, inverse)
    }

    /// Run `f` as a nested Reversible domain (see [`Runtime::domain`]) whose
    /// caller holds, from before this call until after it returns, a lock
    /// that guards every object `f` reads and writes: an allocator's group
    /// lock over its bitmap, say. Then no other domain can read or
    /// overwrite its versions before it has committed or been rolled back,
    /// so nobody can come to depend on it, and it commits at completion
    /// without a node in the dependence graph. (Any domain that nobody
    /// comes to depend on does: see [`DomainCell`]. This one is sure to.)
    /// For the same reason its small writes ([`Runtime::write_range`]) of
    /// objects no other domain has a version of need no version either:
    /// their before-bytes stay with this thread ([`Private`]), put back if
    /// it fails, forgotten when it commits. (So the cache's write-back may
    /// take such a change before the domain ends, as it takes any change
    /// the moment the domain commits; a failed domain's bytes put back are
    /// written again.)
    pub fn exclusive_domain<T>(
        &self,
        f: impl FnOnce() -> T,
        inverse: impl FnOnce(&T) -> Option<Action>,
    ) -> Result<T, Fault> {
        self.domain_inner(Kind::Reversible, true, f, inverse)
    }

    fn domain_inner<T>(
        &self,
        kind: Kind,
        exclusive: bool,
        f: impl FnOnce() -> T,
        inverse: impl FnOnce(&T) -> Option<Action>,
    ) -> Result<T, Fault> {
        if !self.enabled || kind == Kind::Unlogged {
            if !self.enabled {
                return Ok(f());
            }
            self.push_frame(Kind::Unlogged, false);
            let r = catch_unwind(AssertUnwindSafe(f));
            self.pop_frame();
            return match r {
                Ok(v) => Ok(v),
                Err(p) => resume_unwind(p),
            };
        }
        let has_parent = self.push_frame_under(kind, false, exclusive).1;
        let r = catch_unwind(AssertUnwindSafe(f));
        let mut frame = self.pop_frame();
        let value = match r {
            Ok(v) if !frame.doomed() => v,
            Ok(_) => {
                let id = frame.id;
                self.rollback_frame(frame);
                self.end_private(id, true);
                return Err(Fault::Cascade);
            }
            Err(p) => {
                let id = frame.id;
                self.rollback_frame(frame);
                self.end_private(id, true);
                return Err(fault_of(p));
            }
        };
        if exclusive {
            self.end_private(frame.id, false);
        }
        let id = frame.id;
        match kind {
            Kind::Basic if has_parent => self.merge_into_parent(frame),
            _ => {
                let inv = if kind == Kind::Reversible && has_parent {
                    inverse(&value)
                } else {
                    None
                };
                // What its parent logs of it: its inverse, or (Transparent)
                // a mark to roll it back with the parent.
                let undo = match inv {
                    _ if !has_parent => None,
                    Some(inv) => Some(Undo::Child(id, inv)),
                    None if kind == Kind::Transparent => Some(Undo::Child(id, Box::new(|| {}))),
                    None => None,
                };
                if frame.cell.is_none() && frame.logs.is_empty() {
                    // Never seen by another domain and nothing logged (an
                    // allocator whose write was kept privately, say): it
                    // commits here, and is counted, its empty logs kept and
                    // its parent's undo logged in one access to the
                    // thread's state.
                    let Frame { logs, .. } = frame;
                    STACK.with(|s| {
                        let mut s = s.borrow_mut();
                        bump(&s.share(self).committed);
                        s.keep_logs(logs);
                        if let Some(u) = undo {
                            s.last_mut().expect("parent").logs.undo.push(u);
                        }
                    });
                    return Ok(value);
                }
                // Still in the graph after its completion: it waits for a
                // domain it depends on.
                let pending = if frame.settle(Reg::COMMITTED) {
                    self.commit_alone(&mut frame);
                    false
                } else {
                    let Frame { logs, .. } = frame;
                    !self.complete(id, logs)
                };
                // (An exclusive domain's private bytes went final at its end:
                // it must not wait for another domain, which its caller's
                // lock rules out.)
                debug_assert!(
                    !(exclusive && pending),
                    "an exclusive domain came to depend on another"
                );
                if has_parent {
                    let parent = STACK
                        .with(|s| s.borrow().last().map(|f| f.id))
                        .expect("parent");
                    if kind == Kind::Reversible && pending {
                        // The parent must not commit before this child does.
                        let orphans = {
                            let mut g = self.graph.lock();
                            self.register_current(&mut g);
                            g.add_edge(parent, id, &self.stats)
                        };
                        self.undo_orphans(orphans);
                    }
                    if let Some(u) = undo {
                        self.with_top(|fr| fr.logs.undo.push(u));
                    }
                }
                if pending {
                    // Its dependences may all be completed (a cycle that
                    // commits together).
                    self.try_commit(id);
                }
            }
        }
        Ok(value)
    }

    /// A Basic child completed: its versions, logs and edges become its parent's.
    fn merge_into_parent(&self, mut child: Frame) {
        let (parent, parent_cell) = STACK
            .with(|s| {
                let mut s = s.borrow_mut();
                let id = s.last().map(|f| f.id)?;
                Some((id, s.top_cell()))
            })
            .expect("parent frame");
        // (A reader that meets the parent's versions gives it a node if
        // need be, as for any running domain.)
        for obj in &child.logs.writes {
            let mut chain = obj.chain().lock();
            let Some(i) = chain.iter().position(|v| v.domain == child.id) else {
                continue;
            };
            if i > 0 && chain[i - 1].domain == parent {
                // The parent's older before-bytes win; the child's fill in
                // what the parent had not kept.
                let child_version = chain.remove(i);
                chain[i - 1].fill_gaps(child_version);
            } else {
                chain[i].domain = parent;
                chain[i].owner = parent_cell.clone();
            }
        }
        // No version of the child is left; unless it was given a node, no
        // domain depends on it and it on none.
        if !child.settle(Reg::MERGED) {
            let mut g = self.graph.lock();
            self.register_current(&mut g);
            let mut orphans = Vec::new();
            if let Some(n) = g.remove(child.id) {
                for d in n.deps {
                    orphans.extend(g.add_edge(parent, d, &self.stats));
                }
                for d in n.rdeps {
                    orphans.extend(g.add_edge(d, parent, &self.stats));
                }
            }
            g.merged.insert(child.id, parent);
            drop(g);
            self.undo_orphans(orphans);
        }
        self.stats.merged.fetch_add(1, Ordering::Relaxed);
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let p = s.last_mut().expect("parent frame");
            p.logs.writes.append(&mut child.logs.writes);
            p.logs.undo.append(&mut child.logs.undo);
            p.logs.deferred.append(&mut child.logs.deferred);
        });
        // The child's (now empty) vectors serve the next domain.
        recycle_logs(std::mem::take(&mut child.logs));
    }

    /// Run `f` as a root Basic domain and return only once it has committed
    /// (`Ok`) or been rolled back (`Err`), so nothing it did is observable
    /// outside before it is final.
    pub fn root<T>(&self, f: impl FnOnce() -> T) -> Result<T, Fault> {
        self.root_inner(f, |_| false)
    }

    /// Like [`Runtime::root`] for a closure that reports its own failures:
    /// an `Err` result rolls the domain back (its partial effects undone)
    /// and is returned as it is, without the cost of unwinding.
    pub fn root_result<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, Fault> {
        self.root_inner(f, |r| r.is_err())
    }

    fn root_inner<T>(
        &self,
        f: impl FnOnce() -> T,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<T, Fault> {
        if !self.enabled {
            return Ok(f());
        }
        self.push_frame(Kind::Basic, true);
        let r = catch_unwind(AssertUnwindSafe(f));
        let failed = r.as_ref().is_ok_and(failed);
        let Some(mut frame) = self.pop_frame_or_commit(r.is_ok() && !failed) else {
            return Ok(r.unwrap_or_else(|_| unreachable!("committed")));
        };
        match r {
            Ok(v) if !frame.doomed() && failed => {
                self.rollback_frame(frame);
                Ok(v)
            }
            Ok(v) if !frame.doomed() => self.commit_root(&mut frame).map(|()| v),
            Ok(_) => {
                self.rollback_frame(frame);
                Err(Fault::Cascade)
            }
            Err(p) => {
                self.rollback_frame(frame);
                Err(fault_of(p))
            }
        }
    }

    /// A root that completed: committed once nothing it depends on can be
    /// rolled back any more (`Ok`), or rolled back with one (`Err`).
    fn commit_root(&self, frame: &mut Frame) -> Result<(), Fault> {
        let id = frame.id;
        if frame.settle(Reg::COMMITTED) {
            self.commit_alone(frame);
            return Ok(());
        }
        if self.complete(id, std::mem::take(&mut frame.logs)) {
            return Ok(());
        }
        self.try_commit(id);
        let mut g = self.graph.lock();
        loop {
            match g.nodes.get(&id) {
                None => return Ok(()),
                Some(n) if n.cell.doomed() => {
                    let orphans = g.doom(id, &self.stats);
                    let logs = std::mem::take(&mut g.nodes.get_mut(&id).expect("present").logs);
                    drop(g);
                    self.changed.notify_all();
                    self.undo_logs(id, logs);
                    self.drop_node(id);
                    self.undo_orphans(orphans);
                    return Err(Fault::Cascade);
                }
                Some(_) if g.commit_set(id).is_some() => {
                    // What held us back is gone (committed or rolled back).
                    drop(g);
                    self.try_commit(id);
                    g = self.graph.lock();
                }
                Some(_) => {
                    self.changed.wait(&mut g);
                }
            }
        }
    }
}
