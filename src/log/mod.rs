//! Logging: the server log and the access log.
//!
//! - [`line`]: the server log's lines (`[stamp] [pid] [LEVEL] message`, a worker's marked
//!   `[worker N]`), written by the `info!`, `warn!` and `error!` macros;
//! - [`access`]: a line per request, buffered per worker and written in batches;
//! - [`format`]: how a request line is written: dragoman's, JSON, or a uWSGI logformat;
//! - [`output`]: where lines go;
//! - [`stamp`] and [`memory`]: the times and memory figures lines show.

pub(crate) mod access;
pub mod format;
mod line;
mod memory;
mod output;
mod stamp;

pub use line::{write, write_block, Level};
pub use stamp::utc_timestamp;

use crate::config::logging::Logging;

/// The master, at startup: the lines' stamp (`log-date`).
pub fn setup(logging: &Logging) -> Result<(), String> {
    stamp::set_date_format(logging.date.as_deref());
    Ok(())
}

/// A worker, right after the fork: its lines say it is worker `id`.
pub fn enter_worker(id: usize) {
    line::set_worker(id);
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
