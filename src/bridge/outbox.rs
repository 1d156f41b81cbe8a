//! The way back from an application's thread (the ASGI loop thread, a WSGI app thread) to the
//! worker's event loop: wake-ups of its connection tasks, in batches.
//!
//! An answer goes through a tokio channel, whose receiver is a task of the worker's event
//! loop. Woken from another thread, a tokio task is scheduled remotely: the runtime writes its
//! own eventfd for every such wake-up, one system call per response (and the I/O thread is
//! mostly busy, so most of them wake nothing). Here the receiver is polled with a waker of
//! ours instead ([`Relayed`]): woken, it puts the task's own waker in the [`Outbox`], and only
//! the first of a batch writes the outbox's eventfd. A task of the worker's loop reads it and
//! wakes the batch there, which costs no system call. [`Batch`] serves the other direction
//! too (the ASGI loop thread's inbox).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error;

/// A non-blocking eventfd: the wake-up of a thread that waits on it in its event loop.
fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions; a negative result is an error.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `fd` (an [`eventfd`]) readable.
fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It cannot fail but by
    // overflowing the counter (2^64 - 2 wake-ups unread), which never happens.
    unsafe {
        libc::write(
            fd.as_raw_fd(),
            (&one as *const u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// Consumes the wake-ups `fd` (an [`eventfd`]) holds.
fn consume(fd: &OwnedFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd we own; EAGAIN
    // (nothing to read) is harmless.
    unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut count as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// Items for a thread's event loop, and the eventfd that wakes it. Only the first push of a
/// batch writes to the eventfd: while items wait, a wake-up is already on its way (the taker
/// reads the eventfd before it takes the batch, so a push after the take signals again).
pub(crate) struct Batch<T> {
    items: Mutex<Vec<T>>,
    fd: OwnedFd,
}

impl<T> Batch<T> {
    pub(crate) fn new() -> std::io::Result<Batch<T>> {
        Ok(Batch {
            items: Mutex::new(Vec::with_capacity(64)),
            fd: eventfd()?,
        })
    }

    /// Queues an item, waking the taker if it is the first of a batch.
    pub(crate) fn push(&self, item: T) {
        let first = {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            items.push(item);
            items.len() == 1
        };
        if first {
            signal(&self.fd);
        }
    }

    /// The items waiting, after the wake-up is consumed.
    pub(crate) fn take(&self) -> Vec<T> {
        consume(&self.fd);
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The eventfd the taker's loop watches.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Connection tasks to wake, and the eventfd that tells the worker's loop.
pub(crate) struct Outbox {
    wakers: Batch<Waker>,
    /// The task that drains it runs (started by the first receiver, on the worker's loop).
    draining: AtomicBool,
}

impl Outbox {
    pub(crate) fn new() -> std::io::Result<Arc<Outbox>> {
        Ok(Arc::new(Outbox {
            wakers: Batch::new()?,
            draining: AtomicBool::new(false),
        }))
    }

    /// Without the task: the tasks are woken directly again (see `Relay::wake_by_ref`), those
    /// waiting in the outbox now.
    fn stop_draining(&self) {
        self.draining.store(false, Ordering::Relaxed);
        self.wakers.take().into_iter().for_each(Waker::wake);
    }

    /// Starts the task that wakes the batches, once; on the worker's loop.
    fn start(self: &Arc<Self>) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        let watched = Watched(self.clone());
        tokio::task::spawn_local(async move {
            // SAFETY: the descriptor is the outbox's, which `Watched` keeps alive (and open:
            // nothing closes or replaces it before the outbox is dropped) while registered.
            let fd = match unsafe { AsyncFd::register_with_interest(watched, Interest::READABLE) } {
                Ok(fd) => fd,
                Err(failed) => {
                    let (Watched(outbox), e) = failed.into_parts();
                    // Never seen.
                    error!("cannot watch the outbox's eventfd: {e}; connection tasks are woken directly");
                    return outbox.stop_draining();
                }
            };
            let outbox = &fd.get_ref().0;
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return outbox.stop_draining(); // the runtime is going away
                };
                // Clearing the readiness loses nothing: a write after `take`'s read is an
                // event the driver has yet to read, and tokio clears only what this guard saw.
                let batch = outbox.wakers.take();
                ready.clear_ready();
                for waker in batch {
                    waker.wake();
                }
            }
        });
    }
}

/// The outbox's eventfd, as `AsyncFd` watches it: held with its outbox, so it stays open.
struct Watched(Arc<Outbox>);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0.wakers.fd().as_raw_fd()
    }
}

/// The waker the channel gets: passes the connection task's own waker to the outbox.
struct Relay {
    task: Mutex<Option<Waker>>,
    outbox: Arc<Outbox>,
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        if self.outbox.draining.load(Ordering::Relaxed) {
            self.outbox.wakers.push(task);
        } else {
            task.wake();
        }
    }
}

/// A receiver's side of the outbox: polls what it waits on (a channel's receiver) with the
/// relay's waker, so that the other thread's wake-up goes through the outbox.
pub(crate) struct Relayed {
    relay: Arc<Relay>,
    waker: Waker,
}

impl Relayed {
    pub(crate) fn new(outbox: &Arc<Outbox>) -> Relayed {
        outbox.start();
        let relay = Arc::new(Relay {
            task: Mutex::new(None),
            outbox: outbox.clone(),
        });
        Relayed {
            waker: Waker::from(relay.clone()),
            relay,
        }
    }

    /// `poll` (a receiver's poll) for the task `cx` belongs to, woken through the outbox.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        {
            let mut task = self.relay.task.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        poll(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// The eventfd's counter, read without consuming it (/proc/self/fdinfo).
    fn signals(outbox: &Outbox) -> u64 {
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            outbox.wakers.fd().as_raw_fd()
        ))
        .expect("fdinfo");
        info.lines()
            .find_map(|l| l.strip_prefix("eventfd-count:"))
            .map(|n| u64::from_str_radix(n.trim(), 16).expect("a number"))
            .expect("an eventfd")
    }

    #[test]
    fn wakeups_from_another_thread_cost_one_signal_a_batch() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let outbox = Outbox::new().unwrap();
            let (mut senders, mut tasks) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
                let relayed = Relayed::new(&outbox);
                senders.push(tx);
                tasks.push(tokio::task::spawn_local(async move {
                    let got = std::future::poll_fn(|cx| relayed.poll(cx, |cx| rx.poll_recv(cx)));
                    got.await == Some(7)
                }));
            }
            // The receivers wait; the drain task watches the eventfd.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            assert_eq!(signals(&outbox), 0);
            // Three answers from another thread while this loop is not looking: one signal.
            let again = senders.pop().unwrap();
            std::thread::spawn(move || {
                for tx in senders {
                    tx.send(7).unwrap();
                }
            })
            .join()
            .unwrap();
            assert_eq!(signals(&outbox), 1);
            assert_eq!(outbox.wakers.items.lock().unwrap().len(), 2);
            let last = tasks.pop().unwrap();
            for task in tasks {
                assert!(task.await.unwrap(), "woken with its message");
            }
            // Drained: the next answer signals afresh, and arrives.
            assert_eq!(signals(&outbox), 0);
            std::thread::spawn(move || again.send(7).unwrap())
                .join()
                .unwrap();
            assert_eq!(signals(&outbox), 1);
            assert!(last.await.unwrap());
            assert_eq!(signals(&outbox), 0);
        });
    }
}
