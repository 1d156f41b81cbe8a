//! The server log: one line per event on stderr, in the shape gunicorn users already grep for:
//! `[2026-11-21 10:00:00 +0000] [1234] [INFO] message`.
//!
//! Master and workers share stderr; each line is written with a single `write` call so lines from
//! different processes do not interleave mid-line.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How bad an event is; printed in the third bracket of each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Writes one log line. Use the `info!`, `warn!` and `error!` macros rather than calling this.
pub(crate) fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut line = String::with_capacity(128);
    use fmt::Write as _;
    let _ = write!(
        line,
        "[{}] [{}] [{}] {}",
        utc_timestamp(SystemTime::now()),
        std::process::id(),
        level.label(),
        args
    );
    if !line.ends_with('\n') {
        line.push('\n');
    }
    // A log line that cannot be written (closed stderr) is dropped: logging must never take the
    // server down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes text that is already formatted (a Python traceback, say) with a header line, so that
/// multi-line blocks stay together in the log.
pub(crate) fn write_block(level: Level, header: fmt::Arguments<'_>, block: &str) {
    let mut text = format!("{header}\n{block}");
    if text.ends_with('\n') {
        text.pop();
    }
    write(level, format_args!("{text}"));
}

/// Formats a time as `2026-11-21 10:00:00 +0000` (UTC), without a time-zone database.
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_timestamp(t), "2026-11-18 11:06:40 +0000");
        // 2024-02-29, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(utc_timestamp(t), "2024-02-29 12:00:00 +0000");
    }
}
