//! Per-inode locks, striped: inode `n` is guarded by stripe `n % STRIPES`.
//! Several inodes are always locked in ascending stripe order (duplicates
//! collapse), which makes multi-inode operations (rename, link, unlink)
//! deadlock-free. parking_lot locks do not poison: a panic that unwinds
//! through a guard leaves the lock usable.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const STRIPES: usize = 1024;

pub struct InodeLocks {
    stripes: Vec<RwLock<()>>,
}

pub struct Held<'a> {
    stripes: Vec<usize>,
    _guards: Vec<RwLockWriteGuard<'a, ()>>,
}

impl Held<'_> {
    /// Is `ino` covered by these guards?
    pub fn covers(&self, ino: u32) -> bool {
        self.stripes.contains(&(ino as usize % STRIPES))
    }
}

impl InodeLocks {
    pub fn new() -> InodeLocks {
        InodeLocks {
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
        }
    }

    pub fn read(&self, ino: u32) -> RwLockReadGuard<'_, ()> {
        self.stripes[ino as usize % STRIPES].read()
    }

    /// Exclusive locks on every inode in `inos`, in stripe order.
    pub fn write_all(&self, inos: &[u32]) -> Held<'_> {
        let mut s: Vec<usize> = inos.iter().map(|&i| i as usize % STRIPES).collect();
        s.sort_unstable();
        s.dedup();
        let guards = s.iter().map(|&i| self.stripes[i].write()).collect();
        Held {
            stripes: s,
            _guards: guards,
        }
    }
}

impl Default for InodeLocks {
    fn default() -> Self {
        Self::new()
    }
}
