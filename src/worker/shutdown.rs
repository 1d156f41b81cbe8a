//! Graceful shutdown of one worker, as its own small type passed to whoever must react to it
//! (accept loops stop accepting, connections finish their request and close), plus the count
//! of live connections the worker waits on before exiting.

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::Notify;

/// The worker-wide "stop now, gracefully" signal and the live-connection count.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    begun: Cell<bool>,
    started: Notify,
    connections: Cell<usize>,
    drained: Notify,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the graceful shutdown; idempotent.
    pub fn begin(&self) {
        if !self.inner.begun.replace(true) {
            self.inner.started.notify_waiters();
        }
    }

    pub fn is_begun(&self) -> bool {
        self.inner.begun.get()
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn begun(&self) {
        let notified = self.inner.started.notified();
        if self.is_begun() {
            return;
        }
        notified.await;
    }

    /// Counts a connection as live until the guard is dropped.
    pub fn track(&self) -> ConnectionGuard {
        self.inner.connections.set(self.inner.connections.get() + 1);
        ConnectionGuard {
            shutdown: self.clone(),
        }
    }

    pub fn connections(&self) -> usize {
        self.inner.connections.get()
    }

    /// Resolves when no connection is live.
    pub async fn drained(&self) {
        loop {
            let notified = self.inner.drained.notified();
            if self.inner.connections.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Keeps a connection counted in [`Shutdown::connections`].
pub struct ConnectionGuard {
    shutdown: Shutdown,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let inner = &self.shutdown.inner;
        inner.connections.set(inner.connections.get() - 1);
        if inner.connections.get() == 0 {
            inner.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_after_last_guard() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = Shutdown::new();
            let a = s.track();
            let b = s.track();
            assert_eq!(s.connections(), 2);
            s.begin();
            s.begun().await;
            drop(a);
            assert_eq!(s.connections(), 1);
            let waiter = s.drained();
            drop(b);
            waiter.await;
            assert_eq!(s.connections(), 0);
        });
    }
}
