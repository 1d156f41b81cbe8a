//! The open-files limit (RLIMIT_NOFILE). systemd gives a service a soft limit of 1024 (and a
//! hard one far above); a worker at that limit with its default `max-connections` (1024) runs
//! out of descriptors with idle connections alone, and then a static file that exists cannot be
//! opened, a request body cannot be spooled, and accept fails in a loop. So the master raises
//! the soft limit to the hard one at start (any process may), and keeps `max-connections`
//! within what a worker has left for connections, with a warning that names the numbers and
//! the fix when it must lower it.

use std::io;

use crate::config::Config;

/// Descriptors a worker's event loop and signal handling open after fork (an epoll, an eventfd,
/// a signal pipe; about 6 measured, with room).
const RUNTIME: u64 = 16;
/// Descriptors kept for the application (database connections, log files, files it opens) and
/// for requests that hold a file while they run (a large static file being sent, a spooled
/// request body) beyond the static cache's own.
const APPLICATION: u64 = 64;
/// The static file cache keeps up to this fraction of the limit open (statics/mod.rs,
/// `Descriptors`), and at most [`CACHE_MAX`].
const CACHE_FRACTION: u64 = 8;
const CACHE_MAX: u64 = 1024;

/// The soft and hard limits (rlim_t is u64 on Linux).
fn limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft limit to the hard one (or, when the hard one is unlimited, to the most the
/// kernel allows a process: fs.nr_open). Returns (before, after) when it changed.
pub(crate) fn raise_soft_limit() -> io::Result<Option<(u64, u64)>> {
    let (soft, hard) = limits()?;
    let target = if hard == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= target {
        return Ok(None);
    }
    let limit = libc::rlimit {
        rlim_cur: target,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the hard one is
    // allowed to any process.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some((soft, target)))
}

/// What a worker needs besides its connections, at open-files limit `limit` when the master
/// has `open` descriptors (the worker inherits them): (those, the application's, the cache's).
fn reserved(limit: u64, open: u64) -> (u64, u64, u64) {
    (
        open + RUNTIME,
        APPLICATION,
        (limit / CACHE_FRACTION).min(CACHE_MAX),
    )
}

/// The most connections a worker can hold at open-files limit `limit` with `open`
/// descriptors inherited, and the warning when `wanted` (max-connections) is more.
fn fit(wanted: usize, limit: u64, open: u64) -> (usize, Option<String>) {
    let (inherited, application, cache) = reserved(limit, open);
    let room = limit.saturating_sub(inherited + application + cache).max(1);
    if wanted as u64 <= room {
        return (wanted, None);
    }
    let warning = format!(
        "max-connections = {wanted} does not fit within the open-files limit of {limit} per \
         process: a worker also needs descriptors for its listeners and event loop ({inherited}), \
         the application and files being sent ({application}) and the static file cache \
         ({cache}); using {room}. Fix: raise the limit (systemd: LimitNOFILE=65536 in the \
         service's unit; a shell: ulimit -n 65536) or set max-connections to {room} or less"
    );
    (room as usize, Some(warning))
}

/// Keeps `max-connections` within what the open-files limit leaves a worker; returns the
/// warning to log when it had to lower it. Call once the listeners are bound (they count).
pub(crate) fn fit_connections(config: &mut Config) -> Option<String> {
    let (soft, _) = limits().ok()?;
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
    let (connections, warning) = fit(config.limits.max_connections, soft, open);
    config.limits.max_connections = connections;
    warning
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_what_the_limit_leaves() {
        // A systemd service's soft limit, not raised (hard 1024 too): 1024 - 26 - 64 - 128.
        let (n, warning) = fit(1024, 1024, 10);
        assert_eq!(n, 806);
        let warning = warning.unwrap();
        assert!(
            warning.contains("max-connections = 1024 does not fit"),
            "{warning}"
        );
        assert!(warning.contains("limit of 1024"), "{warning}");
        assert!(
            warning.contains("using 806") && warning.contains("LimitNOFILE"),
            "{warning}"
        );
        // Raised to the usual hard limit: the default fits.
        assert_eq!(fit(1024, 524_288, 10), (1024, None));
        // The cache's part is capped.
        assert_eq!(fit(1_000_000, 65_536, 10).0, 65_536 - 26 - 64 - 1024);
        // A limit too small for anything still leaves one connection.
        assert_eq!(fit(1024, 50, 10).0, 1);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = limits().unwrap();
        raise_soft_limit().unwrap();
        let (soft, hard_after) = limits().unwrap();
        assert_eq!(hard_after, hard);
        assert!(soft == hard || hard == libc::RLIM_INFINITY, "{soft} {hard}");
        assert_eq!(raise_soft_limit().unwrap(), None);
    }
}
