//! A worker as the master sees it: its position, process, generation and fate. Plain data (the
//! supervisor's decisions in `decide.rs` are functions of it); [`Worker::signal`] is the one
//! thing it does.

use std::fmt;
use std::time::{Duration, Instant};

/// Why a worker is replaced or stopped.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Reason {
    Reload,
    ChainReload,
    MaxRequests(u64),
    Lifetime(Duration),
    Rss(u64),
    /// Fewer workers wanted (SIGTTOU, or a reload with fewer processes).
    Scale,
    /// Started by a reload whose code does not load: killed, the previous load serves on.
    ReloadFailed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Reload => write!(f, "replaced by a reload"),
            Reason::ChainReload => write!(f, "replaced by a chain reload"),
            Reason::MaxRequests(n) => write!(f, "recycled after {n} requests (max-requests)"),
            Reason::Lifetime(d) => {
                write!(f, "recycled after {}s (max-worker-lifetime)", d.as_secs())
            }
            Reason::Rss(bytes) => write!(
                f,
                "recycled at {} MiB resident memory (reload-on-rss)",
                bytes / (1024 * 1024)
            ),
            Reason::Scale => write!(f, "stopped: fewer workers wanted"),
            Reason::ReloadFailed => write!(f, "stopped: its reload failed"),
        }
    }
}

/// What is to become of a worker.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Fate {
    Serving,
    /// A replacement is starting (in slot `by`, once forked); this worker serves until the
    /// replacement accepts connections.
    Replace {
        reason: Reason,
        by: Option<usize>,
    },
    /// Told to stop (SIGTERM): finishing its requests; killed at the deadline.
    Retire {
        reason: Reason,
        deadline: Instant,
    },
    /// A request ran past harakiri: its traceback was requested; killed at the deadline.
    Harakiri {
        deadline: Instant,
        killed: bool,
    },
}

/// One forked worker as the master sees it.
#[derive(Clone, Debug)]
pub(super) struct Worker {
    /// 1-based position, stable across respawns and reloads; shown in logs and stats.
    pub(crate) id: usize,
    /// Its scoreboard slot.
    pub(crate) slot: usize,
    pub(crate) pid: libc::pid_t,
    /// The configuration load it runs: each reload starts a new one.
    pub(crate) generation: u32,
    pub(crate) started: Instant,
    /// When it started, in seconds since the epoch (for the stats).
    pub(crate) started_unix: u64,
    /// It sent [`crate::ipc::Event::Ready`]: it accepts connections.
    pub(crate) ready: bool,
    pub(crate) fate: Fate,
}

impl Worker {
    /// Sends `sig` to this worker. The pid is still this worker's: a worker stays in the
    /// master's list until `reap` has collected its exit status, and until then the kernel
    /// keeps the pid (a zombie at worst), so the signal cannot reach a recycled pid.
    pub(crate) fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) takes plain numbers (a pid we forked and have not reaped, a valid
        // signal); no memory is involved.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// It serves, or serves until its replacement is ready: it counts toward the target.
    pub(crate) fn holds_position(&self) -> bool {
        matches!(self.fate, Fate::Serving | Fate::Replace { .. })
    }
}

/// Resident and virtual memory of a process, in bytes (0 when unknown).
pub(super) fn memory(pid: libc::pid_t) -> (u64, u64) {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return (0, 0);
    };
    let mut fields = statm
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (size, resident) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    (resident * page, size * page)
}

/// "exited with code 1", "was killed by SIGKILL", for log lines.
pub(super) fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!(
            "was killed by {}",
            super::signals::name(libc::WTERMSIG(status))
        )
    } else {
        format!("stopped (status {status})")
    }
}
