//! Logging: the server log, in files of one concept each.
//!
//! - [`line`]: the server log's lines (`[stamp] [pid] [LEVEL] message`, a worker's marked
//!   `[worker N]`), written by the `info!`, `warn!` and `error!` macros;
//! - [`output`]: where lines go;
//! - [`stamp`]: the times lines show.

mod line;
mod output;
mod stamp;

pub use line::{write, write_block, Level};
pub use stamp::utc_timestamp;

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
