//! One connection's lifecycle state, in one place: when it last read or wrote, how many
//! requests it has in flight and since when it has had none, and what the worker has ordered
//! it to do. The connection's task and its transports mark it; the worker's [`Registry`]
//! reads it (to evict the least recently active connection at the cap, and to expire
//! connections that wait too long for a request head) and gives the orders.
//!
//! Requests in flight are counted, not flagged: on a connection that multiplexes (HTTP/2),
//! the first request to finish must not make the connection look idle while others run,
//! or the header-timeout sweep would cut them all.
//!
//! [`Registry`]: super::registry::Registry

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub(crate) use crate::clock::coarse_ms;

/// What the worker asks of a connection; a later order only ever raises it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Order {
    #[default]
    Serve,
    /// The worker is draining: every response says `Connection: close` and the connection
    /// closes after it. An idle connection is left open (closing it could race a request
    /// the client is sending right now); [`Order::Close`] comes for those a little later.
    Drain,
    /// Finish the request in flight, then close (an idle connection closes at once).
    Close,
    /// Close now, unanswered: no request head within header-timeout.
    Drop,
}

/// The state. Shared (`Rc`) by the connection's task, its transports and the registry.
pub(crate) struct Lifecycle {
    /// When the connection last read or wrote ([`coarse_ms`]).
    pub(super) activity: Cell<u64>,
    /// Requests between their head and the end of their response.
    in_flight: Cell<u32>,
    /// Since when the connection has been waiting for a request head ([`coarse_ms`]): when
    /// it opened, or when the last byte of its last response went out. Meaningless while a
    /// request is in flight.
    pub(super) idle_since: Cell<u64>,
    order: Cell<Order>,
    /// The connection task's waker, woken when an order rises.
    waker: RefCell<Option<Waker>>,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        let now = coarse_ms();
        Lifecycle {
            activity: Cell::new(now),
            in_flight: Cell::new(0),
            idle_since: Cell::new(now),
            order: Cell::new(Order::Serve),
            waker: RefCell::new(None),
        }
    }

    /// Bytes came in. Reading does not restart the wait for a head: a client that sends a
    /// byte at a time must still be cut at header-timeout.
    pub(crate) fn read(&self) {
        self.activity.set(coarse_ms());
    }

    /// Bytes went out. While no request is in flight, they are the end of the last response,
    /// still being flushed: the wait for the next head counts from the last of them, so a
    /// response read more slowly than header-timeout is not cut off.
    pub(crate) fn wrote(&self) {
        let now = coarse_ms();
        self.activity.set(now);
        if self.in_flight.get() == 0 {
            self.idle_since.set(now);
        }
    }

    /// The wait for a request head starts now (after a preamble that had a timeout of its
    /// own).
    pub(crate) fn restart_wait(&self) {
        self.idle_since.set(coarse_ms());
    }

    /// When the connection last read or wrote.
    pub(crate) fn last_active(&self) -> u64 {
        self.activity.get()
    }

    /// Since when the connection has waited for a request head, or `None` while a request
    /// is in flight.
    pub(crate) fn waiting_since(&self) -> Option<u64> {
        (self.in_flight.get() == 0).then(|| self.idle_since.get())
    }

    /// A request has its head; it counts as in flight until the returned guard is dropped
    /// (when the protocol is done with its response).
    pub(crate) fn begin_request(self: &Rc<Self>) -> InFlight {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self.clone())
    }

    /// Raises the order (never lowers it) and wakes the connection's task.
    pub(crate) fn give(&self, order: Order) {
        if order > self.order.get() {
            self.order.set(order);
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// The order as it stands.
    pub(crate) fn order(&self) -> Order {
        self.order.get()
    }

    /// Whether responses must close the connection (the worker drains, or more).
    pub(crate) fn closing(&self) -> bool {
        self.order.get() >= Order::Drain
    }

    /// Ready with the order once it is above `seen`; otherwise keeps the task's waker.
    pub(crate) fn poll_order_above(&self, seen: Order, cx: &mut Context<'_>) -> Poll<Order> {
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

/// A request in flight on its connection (see [`Lifecycle::begin_request`]).
pub(crate) struct InFlight(Rc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let life = &self.0;
        let left = life.in_flight.get().saturating_sub(1);
        life.in_flight.set(left);
        if left == 0 {
            life.idle_since.set(coarse_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_when_no_request_is_in_flight() {
        let life = Rc::new(Lifecycle::new());
        assert!(life.waiting_since().is_some());
        let a = life.begin_request();
        let b = life.begin_request();
        assert_eq!(life.waiting_since(), None);
        drop(a);
        assert_eq!(life.waiting_since(), None, "one stream still runs");
        life.idle_since.set(0);
        life.wrote();
        assert_eq!(
            life.idle_since.get(),
            0,
            "bytes of a running request move nothing"
        );
        drop(b);
        assert!(life.waiting_since().is_some_and(|t| t > 0));
        life.idle_since.set(0);
        life.read();
        assert_eq!(
            life.waiting_since(),
            Some(0),
            "reading does not restart the wait"
        );
        life.wrote();
        assert!(life.waiting_since().is_some_and(|t| t > 0), "flushing does");
    }

    #[test]
    fn orders_only_rise() {
        let life = Lifecycle::new();
        assert!(!life.closing());
        life.give(Order::Close);
        life.give(Order::Drain);
        assert_eq!(life.order(), Order::Close);
        assert!(life.closing());
    }
}
