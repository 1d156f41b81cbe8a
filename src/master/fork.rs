//! Forking a worker from the Python main thread, with CPython's fork protocol
//! (`PyOS_BeforeFork` / `PyOS_AfterFork_*`: the import lock, `os.register_at_fork` hooks, thread
//! state), exactly as `os.fork()` does it.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use pyo3::{ffi, Python};

use super::signals::SignalQueue;

/// The two sides of a fork.
pub enum Spawned {
    /// In the master: the worker's pid and the read end of its readiness pipe.
    Parent {
        pid: libc::pid_t,
        ready_pipe: OwnedFd,
    },
    /// In the worker: the write end of its readiness pipe, and the master's pid.
    Child {
        ready_pipe: OwnedFd,
        master_pid: libc::pid_t,
    },
}

/// Forks one worker. The `Python` token proves the GIL is held, as CPython's fork hooks require.
pub fn spawn(_py: Python<'_>, signals: &SignalQueue) -> io::Result<Spawned> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded; we own both new fds.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

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
            drop(read);
            Ok(Spawned::Child {
                ready_pipe: write,
                master_pid,
            })
        }
        pid => {
            drop(write);
            Ok(Spawned::Parent {
                pid,
                ready_pipe: read,
            })
        }
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
