//! The connections one worker holds, capped (`max-connections`). At the cap, the least
//! recently active connection is asked to shut down gracefully: an idle keep-alive one closes
//! at once, a busy one after its response. So idle keep-alive clients never starve new ones,
//! and a flood of connections cannot take memory without bound (the rest wait in the
//! listen queue).
//!
//! The registry also enforces `header-timeout`: each connection marks when it starts waiting
//! for a request head (opened, or the last byte of its last response written) and clears the
//! mark when a head arrives; a sweep a few times per timeout closes the ones that waited too
//! long (slowloris, idle keep-alive). One timer for the worker instead of hyper's timer per
//! request, which cost about 1,650 instructions per request (6% of a hello-world request;
//! callgrind).
//!
//! What the worker asks of a connection (close gracefully: evicted at the cap, or the worker
//! is closing; drop at once: expired) goes through one [`Orders`] per connection, a cell and a
//! waker, which the connection's task checks on every wake-up for a few instructions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::coarse_ms;

/// Only connections idle at least this long are closed to make room: one that was just used
/// is likely to send again, and closing it then races the client's next request.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// When a connection last read or wrote: [`coarse_ms`] at the time.
pub type Activity = Rc<Cell<u64>>;

/// Since when a connection has been waiting for a request head ([`coarse_ms`]), or
/// [`BUSY`] while it serves a request.
pub type Waiting = Rc<Cell<u64>>;

/// The [`Waiting`] mark of a connection serving a request.
pub const BUSY: u64 = 0;

/// The [`Waiting`] mark of a connection that starts waiting for a request head at `now_ms`
/// ([`coarse_ms`]): never [`BUSY`].
pub fn waiting_since(now_ms: u64) -> u64 {
    now_ms.max(BUSY + 1)
}

/// What the worker asks of a connection; a later order only ever raises it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    #[default]
    Serve,
    /// Finish the request in flight, then close (an idle connection closes at once).
    Close,
    /// Close now, unanswered: no request head within header-timeout.
    Drop,
}

/// A connection's order and the waker of the task that serves it.
#[derive(Default)]
pub struct Orders {
    order: Cell<Order>,
    waker: RefCell<Option<Waker>>,
}

impl Orders {
    /// Raises the order (never lowers it) and wakes the connection's task.
    pub fn give(&self, order: Order) {
        if order > self.order.get() {
            self.order.set(order);
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// The order as it stands.
    pub fn current(&self) -> Order {
        self.order.get()
    }

    /// Ready with the order once it is above `seen`; otherwise keeps the task's waker.
    pub fn poll_above(&self, seen: Order, cx: &mut Context<'_>) -> Poll<Order> {
        let order = self.order.get();
        if order > seen {
            return Poll::Ready(order);
        }
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One connection as the registry sees it.
struct Entry {
    activity: Activity,
    waiting: Waiting,
    orders: Rc<Orders>,
}

/// The registry.
pub struct Connections {
    cap: usize,
    entries: RefCell<HashMap<u64, Entry>>,
    next: Cell<u64>,
    closed: Notify,
    /// The worker is closing: every connection, new ones included, is told to close.
    closing: Cell<bool>,
}

/// What a connection holds while it lives: its activity and waiting marks and its orders.
pub struct Registered {
    registry: Rc<Connections>,
    id: u64,
    pub activity: Activity,
    pub waiting: Waiting,
    pub orders: Rc<Orders>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.entries.borrow_mut().remove(&self.id);
        self.registry.closed.notify_waiters();
    }
}

impl Connections {
    pub fn new(cap: usize) -> Rc<Connections> {
        Rc::new(Connections {
            cap: cap.max(1),
            entries: RefCell::default(),
            next: Cell::new(0),
            closed: Notify::new(),
            closing: Cell::new(false),
        })
    }

    pub fn count(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Waits until a new connection may be accepted, asking the least recently active
    /// connection to close while the worker is at its cap.
    pub async fn room(self: &Rc<Self>) {
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
        if let Some(entry) = entries
            .values()
            .filter(|e| e.orders.order.get() == Order::Serve && e.activity.get() <= idle_since)
            .min_by_key(|e| e.activity.get())
        {
            entry.orders.give(Order::Close);
        }
    }

    /// Asks every connection to close gracefully, and those that come later too.
    pub fn close_all(&self) {
        self.closing.set(true);
        for entry in self.entries.borrow().values() {
            entry.orders.give(Order::Close);
        }
    }

    /// Counts a new connection until the returned value is dropped.
    pub fn register(self: &Rc<Self>) -> Registered {
        let id = self.next.get();
        self.next.set(id + 1);
        let now = coarse_ms();
        let activity = Rc::new(Cell::new(now));
        let waiting = Rc::new(Cell::new(waiting_since(now)));
        let orders = Rc::new(Orders::default());
        if self.closing.get() {
            orders.give(Order::Close);
        }
        self.entries.borrow_mut().insert(
            id,
            Entry {
                activity: activity.clone(),
                waiting: waiting.clone(),
                orders: orders.clone(),
            },
        );
        Registered {
            registry: self.clone(),
            id,
            activity,
            waiting,
            orders,
        }
    }

    /// Runs for the worker's life: closes every connection that has waited `timeout` or
    /// longer for a request head. Checks four times per timeout (at most once a second, at
    /// least every 10 ms), so a connection goes within a quarter timeout of its deadline.
    pub async fn expire_slow_heads(self: Rc<Self>, timeout: Duration) {
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

    /// One sweep of [`Connections::expire_slow_heads`].
    fn expire_now(&self, limit_ms: u64) {
        let now = coarse_ms();
        for entry in self.entries.borrow().values() {
            let since = entry.waiting.get();
            if since != BUSY && now.saturating_sub(since) >= limit_ms {
                entry.orders.give(Order::Drop);
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

    /// The order a connection gets above `Serve` within `ms`, if any.
    async fn order_within(orders: &Orders, ms: u64) -> Option<Order> {
        let order = std::future::poll_fn(|cx| orders.poll_above(Order::Serve, cx));
        tokio::time::timeout(Duration::from_millis(ms), order)
            .await
            .ok()
    }

    #[test]
    fn the_least_recently_active_goes_first() {
        runtime().block_on(async {
            let conns = Connections::new(2);
            let old = conns.register();
            let new = conns.register();
            old.activity.set(coarse_ms().saturating_sub(10_000));
            new.activity.set(coarse_ms()); // just used: never the one asked
            assert_eq!(conns.count(), 2);
            // At the cap: waiting for room asks `old` to close...
            let waiting = conns.room();
            tokio::pin!(waiting);
            assert!(
                tokio::time::timeout(Duration::from_millis(20), waiting.as_mut())
                    .await
                    .is_err()
            );
            assert_eq!(order_within(&old.orders, 20).await, Some(Order::Close));
            assert_eq!(order_within(&new.orders, 20).await, None);
            // ...and room appears when it does.
            drop(old);
            waiting.await;
            assert_eq!(conns.count(), 1);
            drop(new);
        });
    }

    #[test]
    fn orders_only_rise_wake_the_task_and_reach_later_connections_when_closing() {
        runtime().block_on(async {
            let conns = Connections::new(10);
            let a = conns.register();
            let orders = a.orders.clone();
            let waiter = tokio::task::LocalSet::new();
            let woken = waiter.spawn_local(async move {
                std::future::poll_fn(|cx| orders.poll_above(Order::Serve, cx)).await
            });
            waiter
                .run_until(async {
                    tokio::task::yield_now().await;
                    a.orders.give(Order::Drop);
                    a.orders.give(Order::Close); // lower: ignored
                    assert_eq!(woken.await.unwrap(), Order::Drop);
                })
                .await;
            conns.close_all();
            let later = conns.register();
            assert_eq!(order_within(&later.orders, 10).await, Some(Order::Close));
        });
    }

    #[test]
    fn connections_waiting_too_long_for_a_head_expire_busy_ones_do_not() {
        runtime().block_on(async {
            let conns = Connections::new(10);
            let slow = conns.register();
            let busy = conns.register();
            let fresh = conns.register();
            slow.waiting
                .set(waiting_since(coarse_ms().saturating_sub(5_000)));
            busy.waiting.set(BUSY);
            let sweep = tokio::task::LocalSet::new();
            sweep.spawn_local(conns.clone().expire_slow_heads(Duration::from_secs(2)));
            sweep
                .run_until(async {
                    assert_eq!(order_within(&slow.orders, 100).await, Some(Order::Drop));
                    assert_eq!(order_within(&busy.orders, 100).await, None);
                    assert_eq!(order_within(&fresh.orders, 100).await, None);
                    // Waiting since long ago now: the next sweeps (every 500 ms) expire it.
                    busy.waiting
                        .set(waiting_since(coarse_ms().saturating_sub(3_000)));
                    assert_eq!(order_within(&busy.orders, 2000).await, Some(Order::Drop));
                })
                .await;
        });
    }
}
