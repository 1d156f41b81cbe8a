//! The master's signal queue, as in gunicorn's arbiter: a tiny handler appends the signal to a
//! bounded FIFO and writes a byte to a self-pipe; the supervisor loop sleeps in `poll` on that
//! pipe and handles the queued signals in the order they arrived. No threads, nothing else done
//! inside the handler.
//!
//! A FIFO, not a set: two SIGTTINs that arrive while the loop is busy (forking, reloading) are
//! two more workers, and a SIGHUP then a SIGTERM are a reload then a stop. (Two identical
//! signals sent before the kernel delivers the first are still one: that is Unix.)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

/// Signals the master handles.
pub(crate) const HANDLED: [libc::c_int; 8] = [
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Signals that wait at most in the queue; more are dropped (and counted). gunicorn keeps 5;
/// the loop takes them at every wake-up, so only a burst during a long fork or reload waits.
const QUEUE_LEN: usize = 16;

/// A bounded FIFO of signal numbers that a signal handler can append to: lock-free, no
/// allocation, async-signal-safe. Appenders claim a place by advancing `tail` (a
/// compare-exchange, so even handlers running at once in two threads each get their own), then
/// publish the signal in it; the loop takes published signals from `head` on, in order.
struct Ring {
    /// Signal numbers; 0 marks a place claimed but not yet written (or already taken).
    places: [AtomicI32; QUEUE_LEN],
    /// Places taken by the loop (only the loop writes it).
    head: AtomicUsize,
    /// Places claimed by handlers.
    tail: AtomicUsize,
    /// Signals dropped because the queue was full.
    dropped: AtomicU32,
}

impl Ring {
    const fn new() -> Ring {
        Ring {
            places: [const { AtomicI32::new(0) }; QUEUE_LEN],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            dropped: AtomicU32::new(0),
        }
    }

    /// Appends a signal, or counts it dropped when the queue is full. Async-signal-safe.
    fn push(&self, sig: libc::c_int) {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail.wrapping_sub(self.head.load(Ordering::Acquire)) >= QUEUE_LEN {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match self.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => tail = now,
            }
        }
        // Release: the loop that reads this number sees the place as claimed and published.
        self.places[tail % QUEUE_LEN].store(sig, Ordering::Release);
    }

    /// Takes the published signals in arrival order. Stops at a place claimed but not yet
    /// written: its handler is running and will write the wake-up byte after it, so the loop
    /// comes back for it.
    fn take(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut head = self.head.load(Ordering::Relaxed);
        while head != self.tail.load(Ordering::Acquire) {
            let sig = self.places[head % QUEUE_LEN].swap(0, Ordering::Acquire);
            if sig == 0 {
                break;
            }
            out.push(sig);
            head = head.wrapping_add(1);
            // Release: the place is free (zeroed) before a handler may claim it again.
            self.head.store(head, Ordering::Release);
        }
        out
    }

    /// How many signals were dropped since the last call.
    fn take_dropped(&self) -> u32 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Forgets everything queued (in a freshly forked worker).
    fn clear(&self) {
        while !self.take().is_empty() {}
        self.take_dropped();
    }
}

/// The signals received and not yet taken.
static QUEUE: Ring = Ring::new();
/// The write end of the self-pipe, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics, a write(2), errno preserved.
    // SAFETY: __errno_location returns this thread's errno slot; reading and restoring it is
    // what a signal handler must do so the interrupted code sees its own errno.
    let saved = unsafe { *libc::__errno_location() };
    // SIGCHLD only wakes the loop, which reaps every exited worker at each wake-up: queueing
    // one per exit could crowd out the signals an operator sent.
    if sig != libc::SIGCHLD {
        QUEUE.push(sig);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: fd is the non-blocking write end of our pipe; a full pipe (EAGAIN) is fine
        // because one byte is enough to wake the loop, and the signal is already queued.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The installed handlers and the read end of the self-pipe the supervisor waits on.
pub(crate) struct SignalQueue {
    read: OwnedFd,
    /// Kept open for the handler, which writes to it through `WAKE_FD`.
    _write: OwnedFd,
}

impl SignalQueue {
    /// Installs the handlers. Call once, in the master, before forking workers.
    pub(crate) fn install() -> io::Result<SignalQueue> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for sig in HANDLED {
            set_action(sig, on_signal as *const () as libc::sighandler_t)?;
        }
        Ok(SignalQueue {
            read,
            _write: write,
        })
    }

    /// The fd to poll for readability: readable when a signal arrived.
    pub(crate) fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Takes the queued signals, in the order they arrived, and drains the pipe; also says
    /// how many were dropped because the queue was full.
    pub(crate) fn take(&self) -> (Vec<libc::c_int>, u32) {
        let mut buf = [0u8; 64];
        // Drain first: a signal arriving after the drain leaves its byte for the next poll.
        // SAFETY: reading into a local buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        (QUEUE.take(), QUEUE.take_dropped())
    }

    /// In a freshly forked worker: put every handled signal back to its default and forget the
    /// pipe and the queue, so the worker's own runtime installs its handlers on a clean slate
    /// and never wakes the master's loop.
    /// The pipe's fds are closed when the queue is dropped with the rest of the master's state.
    pub(crate) fn reset_in_child(&self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        for sig in HANDLED {
            // SIGUSR1 (reopen the logs) is ignored until the worker handles it: by default it
            // would end a worker the master passes it to while the application loads.
            let action = match sig {
                libc::SIGUSR1 => libc::SIG_IGN,
                _ => libc::SIG_DFL,
            };
            let _ = set_action(sig, action);
        }
        QUEUE.clear();
    }
}

fn set_action(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we set the handler and flags, and
    // sigemptyset initialises the mask before the struct is passed to the kernel.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        // While one handler runs, the others wait: handlers never nest on one thread.
        libc::sigemptyset(&mut action.sa_mask);
        for other in HANDLED {
            libc::sigaddset(&mut action.sa_mask, other);
        }
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Human name of a signal, for log lines.
pub(crate) fn name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGCHLD => "SIGCHLD".into(),
        libc::SIGTTIN => "SIGTTIN".into(),
        libc::SIGTTOU => "SIGTTOU".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_come_out_in_arrival_order_and_repeats_are_kept() {
        let ring = Ring::new();
        for sig in [libc::SIGTTIN, libc::SIGTTIN, libc::SIGHUP, libc::SIGTTIN] {
            ring.push(sig);
        }
        assert_eq!(
            ring.take(),
            [libc::SIGTTIN, libc::SIGTTIN, libc::SIGHUP, libc::SIGTTIN]
        );
        assert!(ring.take().is_empty());
    }

    #[test]
    fn a_full_queue_drops_and_counts_then_wraps_around() {
        let ring = Ring::new();
        for round in 0..3 {
            for i in 0..QUEUE_LEN + 2 {
                ring.push(1 + (i % 30) as libc::c_int);
            }
            let taken = ring.take();
            assert_eq!(taken.len(), QUEUE_LEN, "round {round}");
            assert_eq!(taken[..3], [1, 2, 3]);
            assert_eq!(ring.take_dropped(), 2);
        }
        ring.push(libc::SIGTERM);
        ring.clear();
        assert!(ring.take().is_empty());
    }

    #[test]
    fn a_claimed_but_unwritten_place_stops_the_take() {
        let ring = Ring::new();
        ring.push(libc::SIGHUP);
        // A handler that claimed the next place and has not written it yet.
        ring.tail.fetch_add(1, Ordering::AcqRel);
        assert_eq!(ring.take(), [libc::SIGHUP]);
        assert!(ring.take().is_empty());
        ring.places[1].store(libc::SIGTERM, Ordering::Release);
        assert_eq!(ring.take(), [libc::SIGTERM]);
    }
}
