//! The master's signal queue, as in gunicorn's arbiter: a tiny handler records the signal in an
//! atomic set and writes a byte to a self-pipe; the supervisor loop sleeps in `poll` on that pipe
//! and handles queued signals in order. No threads, nothing else done inside the handler.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// Signals the master handles.
pub const HANDLED: [libc::c_int; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Signals received and not yet taken, one bit per signal number.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The write end of the self-pipe, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: an atomic or, a write(2), errno preserved.
    // SAFETY: __errno_location returns this thread's errno slot; reading and restoring it is
    // what a signal handler must do so the interrupted code sees its own errno.
    let saved = unsafe { *libc::__errno_location() };
    PENDING.fetch_or(1 << sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: fd is the non-blocking write end of our pipe; a full pipe (EAGAIN) is fine
        // because one byte is enough to wake the loop, and the bit is already recorded.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The installed handlers and the read end of the self-pipe the supervisor waits on.
pub struct SignalQueue {
    read: OwnedFd,
    /// Kept open for the handler, which writes to it through `WAKE_FD`.
    _write: OwnedFd,
}

impl SignalQueue {
    /// Installs the handlers. Call once, in the master, before forking workers.
    pub fn install() -> io::Result<SignalQueue> {
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
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Takes the pending signals, lowest number first, and drains the pipe.
    pub fn take(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        let bits = PENDING.swap(0, Ordering::SeqCst);
        (1..64).filter(|s| bits & (1 << s) != 0).collect()
    }

    /// In a freshly forked worker: put every handled signal back to its default and forget the
    /// pipe, so the worker's own runtime installs its handlers on a clean slate and never wakes
    /// the master's loop.
    /// The pipe's fds are closed when the queue is dropped with the rest of the master's state.
    pub fn reset_in_child(&self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        for sig in HANDLED {
            let _ = set_action(sig, libc::SIG_DFL);
        }
        PENDING.store(0, Ordering::SeqCst);
    }
}

fn set_action(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we set the handler and flags, and
    // sigemptyset initialises the mask before the struct is passed to the kernel.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Human name of a signal, for log lines.
pub fn name(sig: libc::c_int) -> String {
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
        libc::SIGPIPE => "SIGPIPE".into(),
        other => format!("signal {other}"),
    }
}
