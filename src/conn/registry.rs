//! The connections one worker holds: counted, capped (`max-connections`), told what to do,
//! and waited for at shutdown. One registry for all of it (it used to be two: a connection
//! count for shutdown and a table for the cap).
//!
//! At the cap, the least recently active connection is asked to shut down gracefully: an
//! idle keep-alive one closes at once, a busy one after its response. So idle keep-alive
//! clients never starve new ones, and a flood of connections cannot take memory without
//! bound (the rest wait in the listen queue).
//!
//! The registry also enforces `header-timeout`: each connection's [`Lifecycle`] says since
//! when it has waited for a request head; a sweep a few times per timeout closes the ones
//! that waited too long (slowloris, idle keep-alive). One timer for the worker instead of
//! hyper's timer per request, which cost about 1,650 instructions per request (6% of a
//! hello-world request; callgrind).
//!
//! Graceful shutdown has two phases, so that a reload under load fails no request:
//! 1. [`Registry::drain`]: accept loops stop (new connections go to other workers, which
//!    share the listening sockets), and every response carries `Connection: close`
//!    ([`Order::Drain`]), so clients that keep sending move to another worker after their
//!    current request;
//! 2. [`Registry::close_all`]: connections still open (idle keep-alive ones) are shut
//!    gracefully: idle ones close at once, a request in flight finishes first.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

use super::lifecycle::{coarse_ms, Lifecycle, Order};

/// Only connections idle at least this long are closed to make room: one that was just used
/// is likely to send again, and closing it then races the client's next request.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// The registry of one worker.
pub(crate) struct Registry {
    cap: usize,
    entries: RefCell<HashMap<u64, Rc<Lifecycle>>>,
    next: Cell<u64>,
    /// A connection ended.
    closed: Notify,
    /// The order every connection gets, new ones included: raised by drain and close_all.
    floor: Cell<Order>,
    drain_started: Notify,
}

/// A connection's place in the registry, held while it lives: dropping it removes the
/// connection (and wakes whoever waits for room or for the worker to empty).
pub(crate) struct Registered {
    registry: Rc<Registry>,
    id: u64,
    pub(crate) life: Rc<Lifecycle>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.entries.borrow_mut().remove(&self.id);
        self.registry.closed.notify_waiters();
        crate::metrics::record::connection_closed();
    }
}

impl Registry {
    pub(crate) fn new(cap: usize) -> Rc<Registry> {
        Rc::new(Registry {
            cap: cap.max(1),
            entries: RefCell::default(),
            next: Cell::new(0),
            closed: Notify::new(),
            floor: Cell::new(Order::Serve),
            drain_started: Notify::new(),
        })
    }

    /// Live connections.
    pub(crate) fn count(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Counts a new connection until the returned value is dropped.
    pub(crate) fn register(self: &Rc<Self>) -> Registered {
        let id = self.next.get();
        self.next.set(id + 1);
        let life = Rc::new(Lifecycle::new());
        life.give(self.floor.get());
        self.entries.borrow_mut().insert(id, life.clone());
        crate::metrics::record::connection_opened();
        Registered {
            registry: self.clone(),
            id,
            life,
        }
    }

    /// Waits until a new connection may be accepted, asking the least recently active
    /// connection to close while the worker is at its cap.
    pub(crate) async fn room(&self) {
        loop {
            let closed = self.closed.notified();
            if self.count() < self.cap {
                return;
            }
            self.evict_one();
            // A connection may close, or become idle long enough to be asked.
            let _ = tokio::time::timeout(EVICTABLE_AFTER / 4, closed).await;
        }
    }

    /// Asks the least recently active connection, idle for a while and not yet asked, to
    /// close gracefully.
    fn evict_one(&self) {
        let entries = self.entries.borrow();
        let idle_since = coarse_ms().saturating_sub(EVICTABLE_AFTER.as_millis() as u64);
        if let Some(life) = entries
            .values()
            .filter(|l| l.order() < Order::Close && l.last_active() <= idle_since)
            .min_by_key(|l| l.last_active())
        {
            life.give(Order::Close);
        }
    }

    /// Raises every connection's order, and that of connections still to come.
    fn order_all(&self, order: Order) {
        self.floor.set(self.floor.get().max(order));
        for life in self.entries.borrow().values() {
            life.give(order);
        }
    }

    /// Phase 1 of a graceful stop: accept loops stop, responses close their connections.
    /// Idempotent.
    pub(crate) fn drain(&self) {
        if self.floor.get() < Order::Drain {
            self.order_all(Order::Drain);
            self.drain_started.notify_waiters();
        }
    }

    /// Resolves once draining has begun (at once if it already has).
    pub(crate) async fn draining(&self) {
        let notified = self.drain_started.notified();
        if self.floor.get() >= Order::Drain {
            return;
        }
        notified.await;
    }

    /// Phase 2: every connection closes gracefully, and those that come later too.
    pub(crate) fn close_all(&self) {
        self.order_all(Order::Close);
    }

    /// Resolves when no connection is live.
    pub(crate) async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Runs for the worker's life: closes every connection that has waited `timeout` or
    /// longer for a request head. Checks four times per timeout (at most once a second, at
    /// least every 10 ms), so a connection goes within a quarter timeout of its deadline.
    pub(crate) async fn expire_slow_heads(self: Rc<Self>, timeout: Duration) {
        let limit = timeout.as_millis() as u64;
        let mut tick = tokio::time::interval(
            (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire_now(limit);
        }
    }

    /// One sweep of [`Registry::expire_slow_heads`].
    fn expire_now(&self, limit_ms: u64) {
        let now = coarse_ms();
        for life in self.entries.borrow().values() {
            if let Some(since) = life.waiting_since() {
                if now.saturating_sub(since) >= limit_ms {
                    life.give(Order::Drop);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// The order a connection gets above `above` within `ms`, if any.
    async fn order_within(life: &Lifecycle, above: Order, ms: u64) -> Option<Order> {
        let order = std::future::poll_fn(|cx| life.poll_order_above(above, cx));
        tokio::time::timeout(Duration::from_millis(ms), order)
            .await
            .ok()
    }

    /// Makes a connection look last active `ms` ago.
    fn age(life: &Lifecycle, ms: u64) {
        life.activity.set(coarse_ms().saturating_sub(ms));
    }

    #[test]
    fn the_least_recently_active_goes_first() {
        runtime().block_on(async {
            let conns = Registry::new(2);
            let old = conns.register();
            let new = conns.register();
            age(&old.life, 10_000);
            new.life.read(); // just used: never the one asked
            assert_eq!(conns.count(), 2);
            // At the cap: waiting for room asks `old` to close...
            let waiting = conns.room();
            tokio::pin!(waiting);
            assert!(
                tokio::time::timeout(Duration::from_millis(20), waiting.as_mut())
                    .await
                    .is_err()
            );
            assert_eq!(
                order_within(&old.life, Order::Serve, 20).await,
                Some(Order::Close)
            );
            assert_eq!(order_within(&new.life, Order::Serve, 20).await, None);
            // ...and room appears when it does.
            drop(old);
            waiting.await;
            assert_eq!(conns.count(), 1);
            drop(new);
        });
    }

    #[test]
    fn orders_only_rise_wake_the_task_and_reach_later_connections() {
        runtime().block_on(async {
            let conns = Registry::new(10);
            let a = conns.register();
            let life = a.life.clone();
            let waiter = tokio::task::LocalSet::new();
            let woken = waiter.spawn_local(async move {
                std::future::poll_fn(|cx| life.poll_order_above(Order::Serve, cx)).await
            });
            waiter
                .run_until(async {
                    tokio::task::yield_now().await;
                    a.life.give(Order::Drop);
                    a.life.give(Order::Close); // lower: ignored
                    assert_eq!(woken.await.unwrap(), Order::Drop);
                })
                .await;
            conns.drain();
            conns.draining().await;
            let during_drain = conns.register();
            assert_eq!(during_drain.life.order(), Order::Drain);
            conns.close_all();
            assert_eq!(during_drain.life.order(), Order::Close);
            let later = conns.register();
            assert_eq!(
                order_within(&later.life, Order::Serve, 10).await,
                Some(Order::Close)
            );
        });
    }

    #[test]
    fn drained_waits_for_the_last_connection() {
        runtime().block_on(async {
            let conns = Registry::new(10);
            let a = conns.register();
            let b = conns.register();
            conns.drain();
            drop(a);
            assert_eq!(conns.count(), 1);
            let waiter = conns.drained();
            drop(b);
            waiter.await;
            assert_eq!(conns.count(), 0);
        });
    }

    #[test]
    fn connections_waiting_too_long_for_a_head_expire_busy_ones_do_not() {
        runtime().block_on(async {
            let conns = Registry::new(10);
            let slow = conns.register();
            let busy = conns.register();
            let fresh = conns.register();
            slow.life.idle_since.set(coarse_ms().saturating_sub(5_000));
            let request = busy.life.begin_request();
            busy.life.idle_since.set(coarse_ms().saturating_sub(5_000));
            let sweep = tokio::task::LocalSet::new();
            sweep.spawn_local(conns.clone().expire_slow_heads(Duration::from_secs(2)));
            sweep
                .run_until(async {
                    let serve = Order::Serve;
                    assert_eq!(
                        order_within(&slow.life, serve, 100).await,
                        Some(Order::Drop)
                    );
                    assert_eq!(order_within(&busy.life, serve, 100).await, None);
                    assert_eq!(order_within(&fresh.life, serve, 100).await, None);
                    // Its request done long ago now: the next sweeps (every 500 ms) expire it.
                    drop(request);
                    busy.life.idle_since.set(coarse_ms().saturating_sub(3_000));
                    assert_eq!(
                        order_within(&busy.life, serve, 2000).await,
                        Some(Order::Drop)
                    );
                })
                .await;
        });
    }
}
