//! Times as log lines write them: the header's stamp (UTC, or `log-date`'s strftime format in
//! local time) and the request times of uWSGI's logformat (`%(ltime)`, `%(ctime)`, ...).
//!
//! Formatting a date costs a few hundred instructions (a `localtime_r` and a `strftime`), and a
//! busy worker writes a request line every few microseconds: each format keeps the text of the
//! current second ([`PerSecond`]), so a worker formats each date once a second.

use std::ffi::CString;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::clock_us;

/// `log-date`'s strftime format, set once at startup (before the workers fork); `None`: the
/// header stamp is UTC, as `2026-11-21 10:00:00 +0000`.
static DATE_FORMAT: OnceLock<Option<CString>> = OnceLock::new();

/// Sets `log-date`'s format for every header stamp of this process and its workers. An empty
/// format (`log-date = true`) keeps the default stamp; a second call changes nothing.
pub(crate) fn set_date_format(format: Option<&str>) {
    let format = format
        .filter(|f| !f.is_empty())
        .and_then(|f| CString::new(f).ok());
    let _ = DATE_FORMAT.set(format);
}

fn date_format() -> Option<&'static CString> {
    DATE_FORMAT.get().and_then(Option::as_ref)
}

/// Microseconds since the epoch, from the precise real-time clock.
pub(crate) fn wall_us() -> u64 {
    clock_us(libc::CLOCK_REALTIME)
}

/// Seconds since the epoch from the coarse real-time clock: the last tick (a few ms of
/// resolution), read without the time-stamp counter; enough to tell which second it is.
pub(crate) fn coarse_secs() -> u64 {
    clock_us(libc::CLOCK_REALTIME_COARSE) / 1_000_000
}

/// The header stamp of a log line written now.
pub(crate) fn header_now() -> String {
    header_at(SystemTime::now())
}

/// The header stamp for `t`: `log-date`'s format in local time, else UTC.
pub(crate) fn header_at(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match date_format() {
        Some(format) => strftime_local(secs as i64, format),
        None => utc_timestamp(t),
    }
}

/// Formats a time as `2026-11-21 10:00:00 +0000` (UTC), without a time-zone database.
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (date, time) = civil(secs);
    format!("{date} {time} +0000")
}

/// `2026-11-21T10:00:00` (UTC) for `secs` since the epoch: ISO 8601 without the zone.
pub(crate) fn iso_utc(secs: u64) -> String {
    let (date, time) = civil(secs);
    format!("{date}T{time}")
}

/// The UTC date and time of day of `secs` since the epoch, as `2026-11-21` and `10:00:00`.
fn civil(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60),
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

/// `secs` since the epoch in local time (the TZ variable, else /etc/localtime), formatted by
/// the C library's strftime, as uWSGI formats its dates. Empty when the format makes nothing.
pub(crate) fn strftime_local(secs: i64, format: &CString) -> String {
    // SAFETY: tm is plain data that localtime_r fills; time_t is i64 on the Linux targets.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: both pointers are to live locals; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    let mut out = [0u8; 128];
    // SAFETY: strftime writes at most out.len() bytes (NUL included) and returns how many it
    // wrote before the NUL, 0 when they would not fit; format is NUL-terminated.
    let n = unsafe { libc::strftime(out.as_mut_ptr().cast(), out.len(), format.as_ptr(), &tm) };
    String::from_utf8_lossy(&out[..n]).into_owned()
}

/// Apache's request time, `21/Nov/2026:10:00:00 +0100` (uWSGI's `%(ltime)`), in local time.
pub(crate) fn apache_local(secs: i64) -> String {
    static FORMAT: OnceLock<CString> = OnceLock::new();
    let format = FORMAT.get_or_init(|| CString::new("%d/%b/%Y:%H:%M:%S %z").expect("no NUL"));
    strftime_local(secs, format)
}

/// C's ctime without its newline, `Sat Nov 21 10:00:00 2026` (uWSGI's `%(ctime)`), local time.
pub(crate) fn ctime_local(secs: i64) -> String {
    static FORMAT: OnceLock<CString> = OnceLock::new();
    let format = FORMAT.get_or_init(|| CString::new("%a %b %e %H:%M:%S %Y").expect("no NUL"));
    strftime_local(secs, format)
}

/// The text of one date format for the current second, kept until the second changes.
#[derive(Default)]
pub(crate) struct PerSecond {
    second: Option<u64>,
    text: String,
}

impl PerSecond {
    /// The text for `second`, made by `make` only when the second changed.
    pub(crate) fn get(&mut self, second: u64, make: impl FnOnce(u64) -> String) -> &str {
        if self.second != Some(second) {
            self.text = make(second);
            self.second = Some(second);
        }
        &self.text
    }
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
        assert_eq!(iso_utc(1_709_208_000), "2024-02-29T12:00:00");
    }

    #[test]
    fn strftime_formats_in_local_time() {
        // The test process has no TZ set in the tests' environment, or UTC in containers; the
        // checks hold for any zone: the fields come from the same local time.
        let format = CString::new("%Y|%d/%b").unwrap();
        let text = strftime_local(1_709_208_000, &format);
        assert!(text.starts_with("2024|"), "{text}");
        assert!(text.ends_with("/Feb") || text.ends_with("/Mar"), "{text}");
        let apache = apache_local(1_709_208_000);
        assert!(
            apache.contains("/Feb/2024:") || apache.contains("/Mar/2024:"),
            "{apache}"
        );
        assert_eq!(ctime_local(1_709_208_000).len(), 24);
    }

    #[test]
    fn per_second_text_is_made_once_a_second() {
        let mut cache = PerSecond::default();
        let mut made = 0;
        for second in [5, 5, 5, 6, 6] {
            cache.get(second, |s| {
                made += 1;
                format!("s{s}")
            });
        }
        assert_eq!(made, 2);
        assert_eq!(cache.get(6, |_| unreachable!()), "s6");
    }
}
