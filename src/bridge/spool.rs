//! The worker's budget for bodies in temporary files: request bodies spooled before the
//! application is called, and responses held for clients that read slowly
//! (`spool-budget`). Shared with application threads, which drop the files.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The bytes a worker's bodies hold in temporary files at once, against a budget.
pub(crate) struct Spool {
    used: AtomicU64,
    budget: u64,
}

impl Spool {
    pub(crate) fn new(budget: u64) -> Arc<Spool> {
        Arc::new(Spool {
            used: AtomicU64::new(0),
            budget,
        })
    }

    /// A lease holding nothing yet.
    pub(crate) fn lease(self: &Arc<Self>) -> SpoolLease {
        SpoolLease {
            spool: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes of one body counted against the worker's spool budget, given back on drop.
pub(crate) struct SpoolLease {
    spool: Arc<Spool>,
    bytes: u64,
}

impl SpoolLease {
    /// Counts `n` more bytes, or says the budget is spent (nothing is counted then).
    pub(crate) fn take(&mut self, n: u64) -> Result<(), ()> {
        let spool = &self.spool;
        spool
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|total| *total <= spool.budget)
            })
            .map_err(|_| ())?;
        self.bytes += n;
        Ok(())
    }

    /// Gives back `n` of the bytes counted (a file read back and emptied).
    pub(crate) fn give_back(&mut self, n: u64) {
        let n = n.min(self.bytes);
        self.spool.used.fetch_sub(n, Ordering::Relaxed);
        self.bytes -= n;
    }

    /// The bytes counted.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The worker's whole budget.
    pub(crate) fn budget(&self) -> u64 {
        self.spool.budget
    }
}

impl Drop for SpoolLease {
    fn drop(&mut self) {
        self.spool.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_taken_and_given_back() {
        let spool = Spool::new(100);
        let mut a = spool.lease();
        a.take(60).unwrap();
        let mut b = spool.lease();
        assert!(b.take(41).is_err());
        assert_eq!(b.bytes(), 0);
        b.take(40).unwrap();
        drop(a);
        b.take(60).unwrap();
        assert_eq!(spool.used.load(Ordering::Relaxed), 100);
        b.give_back(30);
        assert_eq!(spool.used.load(Ordering::Relaxed), 70);
        drop(b);
        assert_eq!(spool.used.load(Ordering::Relaxed), 0);
    }
}
