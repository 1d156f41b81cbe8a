//! Logging: the server log, the access log, and where they go.
//!
//! - [`mod@line`]: the server log's lines (`[stamp] [pid] [LEVEL] message`, a worker's marked
//!   `[worker N]`), written by the `info!`, `warn!` and `error!` macros;
//! - [`mod@format`]: the request line's format, read: dragoman's, JSON, or a uWSGI logformat
//!   (the access log itself, a line per request, is `crate::access`);
//! - [`settings`]: what the logging options decided;
//! - [`output`]: where lines go (stderr, `logto`, `logger`, `req-logger`, the log master) and
//!   how files are reopened and rotated;
//! - [`python`]: Python's `sys.stdout` and `sys.stderr`, marked the same way;
//! - [`stamp`] and [`memory`]: the times and memory figures lines show.
//!
//! The master sets the outputs up at startup ([`setup`], then [`open_late`] after the
//! privilege drop); a worker marks itself after the fork ([`enter_worker`]) and reopens its
//! files on SIGUSR1 ([`reopen_on_signal`]).

pub(crate) mod format;
mod line;
pub(crate) mod memory;
pub(crate) mod output;
mod python;
pub(crate) mod settings;
pub(crate) mod stamp;

use pyo3::prelude::*;

pub(crate) use line::{write, write_block, Level};
pub(crate) use stamp::utc_timestamp;

use settings::Logging;

/// The master, at startup: the outputs, and Python's streams in the log's shape.
pub(crate) fn setup(py: Python<'_>, logging: &Logging) -> Result<(), String> {
    output::setup(logging)?;
    python::install(py).map_err(|e| format!("cannot put Python's output in the log: {e}"))
}

/// The master, after the privilege drop: opens `logto2` and the `file:` loggers as the
/// service user.
pub(crate) fn open_late() -> Result<(), String> {
    output::open_late()
}

/// A worker, right after the fork: its lines say it is worker `id`, and with log-master go to
/// the master.
pub(crate) fn enter_worker(id: usize) {
    line::set_worker(id);
    output::enter_worker();
}

/// Reopens the log files (after logrotate renamed them) and says so; `why` names the cause
/// (`SIGUSR1`).
pub(crate) fn reopen(why: &str) {
    let worker = line::worker();
    let outcomes = output::reopen();
    if outcomes.is_empty() && worker == 0 {
        crate::info!("{why}: no log file to reopen (the log goes to stderr)");
    }
    for outcome in outcomes {
        match outcome {
            Ok(path) if worker == 0 => crate::info!("{why}: reopened {}", path.display()),
            Ok(_) => {}
            Err(e) => crate::error!("{why}: {e}"),
        }
    }
}

/// A worker's task: reopens its log files on SIGUSR1 (which the master passes on). Files
/// the master reopened before this worker could take the signal are caught up at once.
pub(crate) async fn reopen_on_signal() {
    let Ok(mut usr1) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    else {
        crate::error!("cannot handle SIGUSR1: the log files will not be reopened on it");
        return;
    };
    output::reopen_moved();
    while usr1.recv().await.is_some() {
        reopen("SIGUSR1");
    }
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
