//! The connections one worker holds, capped (`max-connections`). At the cap, the least
//! recently active connection is asked to shut down gracefully: an idle keep-alive one closes
//! at once, a busy one after its response. So idle keep-alive clients never starve new ones,
//! and a flood of connections cannot take memory without bound (the rest wait in the
//! listen queue).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

/// Only connections idle at least this long are closed to make room: one that was just used
/// is likely to send again, and closing it then races the client's next request.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// When a connection last read or wrote: [`coarse_ms`] at the time.
pub type Activity = Rc<Cell<u64>>;

/// Milliseconds on CLOCK_MONOTONIC_COARSE: the clock's last tick (a few ms of resolution),
/// read without the time-stamp counter, so marking activity on every read and write is cheap.
pub fn coarse_ms() -> u64 {
    crate::scoreboard::clock_us(libc::CLOCK_MONOTONIC_COARSE) / 1000
}

/// One connection as the registry sees it.
struct Entry {
    activity: Activity,
    evict: Rc<Notify>,
    asked: bool,
}

/// The registry.
pub struct Connections {
    cap: usize,
    entries: RefCell<HashMap<u64, Entry>>,
    next: Cell<u64>,
    closed: Notify,
}

/// What a connection holds while it lives: its activity mark and its eviction signal.
pub struct Registered {
    registry: Rc<Connections>,
    id: u64,
    pub activity: Activity,
    pub evict: Rc<Notify>,
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
        let mut entries = self.entries.borrow_mut();
        let idle_since = coarse_ms().saturating_sub(EVICTABLE_AFTER.as_millis() as u64);
        if let Some(entry) = entries
            .values_mut()
            .filter(|e| !e.asked && e.activity.get() <= idle_since)
            .min_by_key(|e| e.activity.get())
        {
            entry.asked = true;
            entry.evict.notify_one();
        }
    }

    /// Counts a new connection until the returned value is dropped.
    pub fn register(self: &Rc<Self>) -> Registered {
        let id = self.next.get();
        self.next.set(id + 1);
        let activity = Rc::new(Cell::new(coarse_ms()));
        let evict = Rc::new(Notify::new());
        self.entries.borrow_mut().insert(
            id,
            Entry {
                activity: activity.clone(),
                evict: evict.clone(),
                asked: false,
            },
        );
        Registered {
            registry: self.clone(),
            id,
            activity,
            evict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_least_recently_active_goes_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
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
            assert!(
                tokio::time::timeout(Duration::from_millis(20), old.evict.notified())
                    .await
                    .is_ok()
            );
            // ...and room appears when it does.
            drop(old);
            waiting.await;
            assert_eq!(conns.count(), 1);
            drop(new);
        });
    }
}
