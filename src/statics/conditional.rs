//! Conditional requests (RFC 9110 §13): If-None-Match, If-Modified-Since and If-Range,
//! decided from the request headers and the representation's validators. Pure functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};

/// The validators of one representation.
pub(crate) struct Validators<'a> {
    /// The entity tag, quoted (`"5f1a-3c"`).
    pub(crate) etag: &'a str,
    pub(crate) modified: SystemTime,
}

/// The opaque part of an entity tag, without `W/` and quotes.
fn opaque(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Whether `If-None-Match` matches (weak comparison, §8.8.3.2), or is `*`.
pub(crate) fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').any(|candidate| {
        let candidate = candidate.trim();
        candidate == "*" || (!candidate.is_empty() && opaque(candidate) == opaque(etag))
    })
}

/// Seconds since the epoch, as HTTP dates carry them.
fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the client's copy is current: a 304 is due. If-None-Match wins over
/// If-Modified-Since (§13.2.2).
pub(crate) fn not_modified(headers: &HeaderMap, v: &Validators<'_>) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|h| h.to_str().ok()) {
        return none_match(inm, v.etag);
    }
    if let Some(ims) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| httpdate::parse_http_date(h).ok())
    {
        return seconds(v.modified) <= seconds(ims);
    }
    false
}

/// Whether a Range may be honoured under If-Range (§13.1.5): the tag must match strongly, or
/// the date must equal the last modification (and that be at least a second old: a date is a
/// weak validator within the second it was taken).
pub(crate) fn range_allowed(headers: &HeaderMap, v: &Validators<'_>) -> bool {
    let Some(if_range) = headers.get(IF_RANGE).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let if_range = if_range.trim();
    if if_range.starts_with('"') {
        return if_range == v.etag;
    }
    if if_range.starts_with("W/") {
        return false; // weak tags never validate a range
    }
    match httpdate::parse_http_date(if_range) {
        Ok(date) => {
            let old_enough = SystemTime::now()
                .duration_since(v.modified)
                .is_ok_and(|age| age >= Duration::from_secs(1));
            old_enough && seconds(date) == seconds(v.modified)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn v(etag: &str) -> Validators<'_> {
        Validators {
            etag,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(val).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_is_weak_and_lists() {
        assert!(none_match("\"a1\"", "\"a1\""));
        assert!(none_match("W/\"a1\"", "\"a1\""));
        assert!(none_match("\"x\", \"a1\"", "\"a1\""));
        assert!(none_match("*", "\"a1\""));
        assert!(!none_match("\"a1-br\"", "\"a1\""));
        assert!(!none_match("", "\"a1\""));
    }

    #[test]
    fn not_modified_rules() {
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let later = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_500));
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert!(not_modified(
            &headers(&[(IF_MODIFIED_SINCE, &date)]),
            &v("\"e\"")
        ));
        assert!(not_modified(
            &headers(&[(IF_MODIFIED_SINCE, &later)]),
            &v("\"e\"")
        ));
        assert!(!not_modified(
            &headers(&[(IF_MODIFIED_SINCE, &earlier)]),
            &v("\"e\"")
        ));
        // If-None-Match decides when both are present.
        let both = headers(&[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, &date)]);
        assert!(!not_modified(&both, &v("\"e\"")));
        assert!(!not_modified(&HeaderMap::new(), &v("\"e\"")));
    }

    #[test]
    fn if_range() {
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(range_allowed(&HeaderMap::new(), &v("\"e\"")));
        assert!(range_allowed(&headers(&[(IF_RANGE, "\"e\"")]), &v("\"e\"")));
        assert!(!range_allowed(
            &headers(&[(IF_RANGE, "\"f\"")]),
            &v("\"e\"")
        ));
        assert!(!range_allowed(
            &headers(&[(IF_RANGE, "W/\"e\"")]),
            &v("\"e\"")
        ));
        assert!(range_allowed(&headers(&[(IF_RANGE, &date)]), &v("\"e\"")));
        assert!(!range_allowed(
            &headers(&[(IF_RANGE, "yesterday")]),
            &v("\"e\"")
        ));
    }
}
