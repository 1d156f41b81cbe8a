//! The HTTP/1 rulebook: the small rules of RFC 9110 and RFC 9112 that more than one part of
//! dragoman applies (the own HTTP/1 path, the request-framing tracker, the application
//! bridges, the uwsgi translation, the answers given outside hyper). One definition each, so
//! the parts cannot disagree about where a request ends or whether a response has a body:
//! such disagreements are what request smuggling is made of. hyper (pinned to 1.12.x in
//! Cargo.toml) is the reference the own path is proven against, so where the RFC leaves room
//! these follow hyper.

use http::StatusCode;

/// A Content-Length value (RFC 9110 §8.6): one or more digits, with optional spaces and
/// tabs around them (a field value's OWS); `None` for anything else (a sign, a line break),
/// or a number that does not fit in 64 bits.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `value` without the spaces and tabs around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &value[start..end]
}

/// Whether a comma-separated header value (Connection, Transfer-Encoding, ...) lists `token`,
/// compared without regard to case (RFC 9110 §5.6.1).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether `chunked` is the last transfer coding a Transfer-Encoding value lists: only then
/// does chunked framing end the body (RFC 9112 §6.3).
pub(crate) fn ends_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether a response with this status may carry a body, or a Content-Length for one:
/// 1xx, 204 and 304 never do (RFC 9110 §6.4.1).
pub(crate) fn status_has_body(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Whether `b` may appear in a token (RFC 9110 §5.6.2): methods, header names, chunk
/// extension names.
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// A complete response with a short text body, for the answers dragoman gives outside hyper
/// and the own HTTP/1 path (a refused preamble, the stats server): a status line, the content
/// type, the length, `Connection: close` when asked, and the body.
pub(crate) fn simple_response(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let reason = status.canonical_reason().unwrap_or("");
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        status.as_u16(),
        body.len()
    )
    .into_bytes();
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_and_nothing_else() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 42\t"), Some(42));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b" ",
            b"+5",
            b"-5",
            b"5 5",
            b"0x10",
            b"1,1",
            b"18446744073709551616",
            b"1\r\n",
        ] {
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tokens() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert!(ends_chunked(b"gzip, chunked"));
        assert!(ends_chunked(b"Chunked "));
        assert!(!ends_chunked(b"chunked, gzip"));
        assert!(!ends_chunked(b""));
    }

    #[test]
    fn bodiless_statuses() {
        for s in [100, 101, 204, 304] {
            assert!(!status_has_body(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 205, 404, 500] {
            assert!(status_has_body(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn a_simple_response_is_framed_by_its_length() {
        let r = simple_response(StatusCode::BAD_REQUEST, "text/plain", b"no\n", true);
        assert_eq!(
            r,
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\
              connection: close\r\n\r\nno\n"
        );
    }
}
