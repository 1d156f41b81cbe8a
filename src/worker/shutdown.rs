//! Graceful shutdown of one worker, as its own small type passed to whoever must react to it,
//! plus the count of live connections the worker waits on before exiting.
//!
//! Two phases, so that a reload under load fails no request:
//! 1. draining: accept loops stop (new connections go to other workers, which share the
//!    listening sockets), and every response carries `Connection: close`, so clients that keep
//!    sending move to another worker after their current request;
//! 2. closing: connections still open (idle keep-alive ones) are shut gracefully: idle ones
//!    close at once, a request in flight finishes first (the connection registry asks them:
//!    `Connections::close_all`).

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::Notify;

/// The worker-wide shutdown state and the live-connection count.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: Cell<bool>,
    drain_started: Notify,
    connections: Cell<usize>,
    drained: Notify,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Phase 1: stop accepting, answer with `Connection: close`. Idempotent.
    pub fn drain(&self) {
        if !self.inner.draining.replace(true) {
            self.inner.drain_started.notify_waiters();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.get()
    }

    /// Resolves once draining has begun (at once if it already has).
    pub async fn draining(&self) {
        let notified = self.inner.drain_started.notified();
        if self.is_draining() {
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
    fn phases_and_drain() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = Shutdown::new();
            let a = s.track();
            let b = s.track();
            assert_eq!(s.connections(), 2);
            s.drain();
            s.draining().await;
            assert!(s.is_draining());
            drop(a);
            assert_eq!(s.connections(), 1);
            let waiter = s.drained();
            drop(b);
            waiter.await;
            assert_eq!(s.connections(), 0);
        });
    }
}
