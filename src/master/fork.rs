//! Forking a worker from the Python main thread, with CPython's fork protocol
//! (`PyOS_BeforeFork` / `PyOS_AfterFork_*`: the import lock, `os.register_at_fork` hooks, thread
//! state), exactly as `os.fork()` does it.
//!
//! Signals are blocked across the fork itself. A new worker starts with the master's handlers,
//! which queue signals for the master's loop, not the worker's; until it has put them back to
//! their defaults, a SIGTERM sent to it (a stop, a retirement) would be queued there and then
//! forgotten, and the worker would go on to serve until killed at the mercy deadline. Blocked,
//! the signal waits; the worker unblocks once its handlers are the defaults, and the signal then
//! takes effect (SIGTERM ends a worker that has accepted nothing yet). Not blocked for longer:
//! the application's threads and subprocesses inherit the mask, and must not inherit a blocked
//! SIGTERM.

use std::io;

use pyo3::{ffi, Python};

use super::signals::SignalQueue;

/// The two sides of a fork.
pub(crate) enum Spawned {
    /// In the master: the worker's pid.
    Parent(libc::pid_t),
    /// In the worker.
    Child,
}

/// Forks one worker. The `Python` token proves the GIL is held, as CPython's fork hooks require.
pub(crate) fn spawn(_py: Python<'_>, signals: &SignalQueue) -> io::Result<Spawned> {
    let master_pid = std::process::id() as libc::pid_t;
    // SAFETY: we hold the GIL (the token) and are on the main thread; the master has no other
    // threads, so fork copies a consistent process. Before/After are paired on every path. The
    // `before` hooks run with signals as they are; the mask is blocked only around fork(2),
    // and the parent restores it at once (what arrived meanwhile is delivered then).
    let (pid, fork_error, saved) = unsafe {
        ffi::PyOS_BeforeFork();
        let saved = block_signals();
        let pid = libc::fork();
        let fork_error = io::Error::last_os_error();
        if pid == 0 {
            ffi::PyOS_AfterFork_Child();
        } else {
            restore_signals(&saved);
            ffi::PyOS_AfterFork_Parent();
        }
        (pid, fork_error, saved)
    };
    match pid {
        -1 => Err(fork_error),
        0 => {
            signals.reset_in_child();
            die_with_master(master_pid);
            // The handlers are the defaults now: a signal that arrived since the fork is
            // delivered here, to this worker.
            // SAFETY: `saved` is the mask pthread_sigmask returned before the fork.
            unsafe { restore_signals(&saved) };
            Ok(Spawned::Child)
        }
        pid => Ok(Spawned::Parent(pid)),
    }
}

/// Forks this process with CPython's fork protocol and nothing else (no signal handling to
/// reset, no link to a master): for `daemonize`, before the master has installed its handlers.
pub(crate) fn fork_plain(_py: Python<'_>) -> io::Result<Spawned> {
    // SAFETY: we hold the GIL (the token) and are on the main thread of a process with no
    // other threads; Before/After are paired on every path.
    let (pid, fork_error) = unsafe {
        ffi::PyOS_BeforeFork();
        let pid = libc::fork();
        let fork_error = io::Error::last_os_error();
        if pid == 0 {
            ffi::PyOS_AfterFork_Child();
        } else {
            ffi::PyOS_AfterFork_Parent();
        }
        (pid, fork_error)
    };
    match pid {
        -1 => Err(fork_error),
        0 => Ok(Spawned::Child),
        pid => Ok(Spawned::Parent(pid)),
    }
}

/// Blocks every signal that can be blocked; returns the mask to restore.
///
/// # Safety
/// Pair with [`restore_signals`] on every path.
unsafe fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask initialise and fill the
    // sets we pass them.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut saved);
        saved
    }
}

/// Puts back the mask [`block_signals`] returned.
///
/// # Safety
/// `saved` must come from [`block_signals`].
unsafe fn restore_signals(saved: &libc::sigset_t) {
    // SAFETY: `saved` is an initialised set (pthread_sigmask filled it).
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, saved, std::ptr::null_mut()) };
}

/// Asks the kernel to send this worker SIGTERM if the master dies, so no worker outlives it
/// (a `kill -9` of the master then still stops every worker gracefully).
fn die_with_master(master: libc::pid_t) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_PDEATHSIG with a valid signal number; no pointers involved.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
        // The master may have died between fork and prctl.
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != master {
            // SAFETY: raising a signal in our own process.
            unsafe { libc::raise(libc::SIGTERM) };
        }
    }
}
