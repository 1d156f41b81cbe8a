//! HTTP dates from file times and configured lifetimes. An HTTP date carries years 1970 to
//! 9999 only (httpdate panics outside them), while a file's mtime can be anything the file
//! system keeps (tmpfs: any 64-bit time) and `static-expires` any u64 of seconds: every time
//! that reaches a header goes through here, clamped, so no file and no option can panic a
//! worker.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// 9999-12-31T23:59:59Z, the last instant an HTTP date can name.
const LATEST_SECS: u64 = 253_402_300_799;

/// `t` within what an HTTP date can carry.
fn clamp(t: SystemTime) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_SECS);
    t.clamp(UNIX_EPOCH, latest)
}

/// The header value of an HTTP date (IMF-fixdate), clamped into years 1970 to 9999.
pub(crate) fn header(t: SystemTime) -> HeaderValue {
    // An IMF-fixdate is always a valid header value; the fallback is unreachable.
    HeaderValue::from_str(&httpdate::fmt_http_date(clamp(t)))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// The modification time a response may state (RFC 9110 §8.8.2.1): a file dated in the
/// future is stated as modified now (when it was loaded), one dated before 1970 as of 1970.
/// The conditional requests compare against this same value, so what a client was told
/// validates.
pub(crate) fn last_modified(mtime: SystemTime, now: SystemTime) -> SystemTime {
    clamp(mtime.min(now))
}

/// The `Expires` of a response `secs` seconds from `now`: year 9999 at the latest (a lifetime
/// of more seconds than that is as good as forever).
pub(crate) fn expires(now: SystemTime, secs: u64) -> HeaderValue {
    let at = now
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(LATEST_SECS));
    header(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_beyond_what_http_carries_are_clamped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(header(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(1_000_000);
        assert_eq!(header(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(last_modified(far, now), now);
        assert_eq!(last_modified(before, now), UNIX_EPOCH);
        assert_eq!(
            last_modified(now - Duration::from_secs(5), now),
            now - Duration::from_secs(5)
        );
        assert_eq!(expires(now, u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(
            expires(now, 400_000_000_000),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(expires(now, 60), "Tue, 14 Nov 2023 22:14:20 GMT");
    }
}
