//! Forking a worker from the Python main thread, with CPython's fork protocol
//! (`PyOS_BeforeFork` / `PyOS_AfterFork_*`: the import lock, `os.register_at_fork` hooks, thread
//! state), exactly as `os.fork()` does it.

use std::io;

use pyo3::{ffi, Python};

use super::signals::SignalQueue;

/// The two sides of a fork.
pub enum Spawned {
    /// In the master: the worker's pid.
    Parent(libc::pid_t),
    /// In the worker.
    Child,
}

/// Forks one worker. The `Python` token proves the GIL is held, as CPython's fork hooks require.
pub fn spawn(_py: Python<'_>, signals: &SignalQueue) -> io::Result<Spawned> {
    let master_pid = std::process::id() as libc::pid_t;
    // SAFETY: we hold the GIL (the token) and are on the main thread; the master has no other
    // threads, so fork copies a consistent process. Before/After are paired on every path.
    let pid = unsafe {
        ffi::PyOS_BeforeFork();
        let pid = libc::fork();
        if pid == 0 {
            ffi::PyOS_AfterFork_Child();
        } else {
            ffi::PyOS_AfterFork_Parent();
        }
        pid
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            signals.reset_in_child();
            die_with_master(master_pid);
            Ok(Spawned::Child)
        }
        pid => Ok(Spawned::Parent(pid)),
    }
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
