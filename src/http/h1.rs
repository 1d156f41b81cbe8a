//! The HTTP/1 wire format of the requests the connection serves itself, ahead of hyper (see
//! [`super::fast`]): a request in origin form without a body (GET, HEAD) or with a small one
//! framed by one `Content-Length` and already read (POST, PUT, PATCH, DELETE), nothing that
//! asks for chunked framing, an upgrade or a 100 Continue; and any response to it.
//!
//! Sans-I/O: [`parse`] reads a head from bytes and says whether it is such a request;
//! [`encode_head`] writes a response head and says how its body is framed. Everything else,
//! and every head this path does not take, is left to hyper, so the rules here only need to
//! be right for what they accept. The response rules are hyper's (1.12, `role.rs`), so a
//! client cannot tell which of the two answered: the same status line, the same headers in
//! the same order, the same framing and the same keep-alive decision.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use hyper::ext::ReasonPhrase;

use super::RequestBody;
use crate::config::Limits;
use crate::rules;

/// The most header fields a head this path takes may have; one with more goes to hyper,
/// which applies `limit-request-fields`.
const MAX_HEADERS: usize = 32;

/// The largest request body this path takes; a larger one goes to hyper, whose body reads
/// keep their own pace (`body-timeout`, `body-min-rate`). The usual form post or JSON call
/// is smaller, and arrives with its head.
pub(crate) const MAX_BODY: u64 = 16 * 1024;

/// What [`parse`] found at the start of the buffer.
// Returned once per request and taken apart at once: a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A request this path serves; its head is the first `len` bytes.
    Simple {
        request: Request<RequestBody>,
        len: usize,
        /// What the request asks of the connection: HTTP/1.1 keeps it unless it says
        /// `close`, HTTP/1.0 closes it unless it says `keep-alive`.
        keep_alive: bool,
    },
    /// The head is not complete yet.
    Partial,
    /// The head is complete and takes a body this path takes, not all read yet: the whole
    /// request is this many bytes.
    NeedBody(usize),
    /// Anything else, valid or not: hyper's to parse and answer.
    Other,
}

/// Reads the head at the start of `buf`; one over `buffer-size`, `limit-request-line` or
/// `limit-request-fields` is hyper's to answer. A [`Parsed::Simple`] head is split off `buf`; the
/// request's target and header values share its bytes, without a copy.
pub(crate) fn parse(buf: &mut BytesMut, limits: &Limits) -> Parsed {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.head_bytes => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    if len > limits.head_bytes || req.headers.len() > limits.header_fields {
        return Parsed::Other;
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    // A GET or HEAD with a body is rare enough to be hyper's.
    let (method, may_have_body) = match method {
        "GET" => (Method::GET, false),
        "HEAD" => (Method::HEAD, false),
        "POST" => (Method::POST, true),
        "PUT" => (Method::PUT, true),
        "PATCH" => (Method::PATCH, true),
        "DELETE" => (Method::DELETE, true),
        _ => return Parsed::Other,
    };
    if !path.starts_with('/') || path.len() > limits.line_bytes {
        return Parsed::Other;
    }
    let (version, mut keep_alive) = match minor {
        1 => (Version::HTTP_11, true),
        _ => (Version::HTTP_10, false),
    };
    // Where the target and each header sit in the head, to share its bytes once split off.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let path_at = (offset(path.as_bytes()), path.len());
    // Not zeroed first (1 KiB: about 77 instructions a request): only the first `count`,
    // each written below, are read.
    let mut fields = [const { MaybeUninit::<(usize, usize, usize, usize)>::uninit() }; MAX_HEADERS];
    let count = req.headers.len();
    let mut saw_close = false;
    // The body's length: one Content-Length of plain digits, for a method that may have a
    // body (a second one, even with the same value, is hyper's to judge).
    let mut body_len: Option<u64> = None;
    for (field, h) in fields.iter_mut().zip(req.headers.iter()) {
        let name = h.name.as_bytes();
        if may_have_body && body_len.is_none() && name.eq_ignore_ascii_case(b"content-length") {
            match rules::content_length(h.value) {
                Some(n) if n <= MAX_BODY => body_len = Some(n),
                _ => return Parsed::Other,
            }
            field.write((offset(name), name.len(), offset(h.value), h.value.len()));
            continue;
        }
        // Anything else that frames a body, or asks for more than a plain response: hyper's.
        // `TE: trailers` asks for trailers, which this path does not write.
        for special in [
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
            "te",
        ] {
            if name.eq_ignore_ascii_case(special.as_bytes()) {
                return Parsed::Other;
            }
        }
        if name.eq_ignore_ascii_case(b"connection") {
            // hyper's rule: once a Connection line asks to close, no later one undoes it.
            if saw_close || rules::has_token(h.value, b"close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = rules::has_token(h.value, b"keep-alive");
            }
        }
        field.write((offset(name), name.len(), offset(h.value), h.value.len()));
    }
    // The whole request's length.
    let body_len = body_len.unwrap_or(0) as usize;
    let Some(total) = len.checked_add(body_len) else {
        return Parsed::Other;
    };
    if buf.len() < total {
        return Parsed::NeedBody(total);
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path_at.0..path_at.0 + path_at.1)) else {
        // Put back: hyper answers it.
        return other_after_split(buf, head);
    };
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let map = request.headers_mut();
    map.reserve(count);
    for field in &fields[..count] {
        // SAFETY: the loop above wrote one entry for each of the `count` headers (`fields`
        // has room for all of them: httparse fills at most MAX_HEADERS), or returned.
        let (name_at, name_len, value_at, value_len) = unsafe { field.assume_init_read() };
        let Ok(name) = HeaderName::from_bytes(&head[name_at..name_at + name_len]) else {
            return other_after_split(buf, head);
        };
        let value = head.slice(value_at..value_at + value_len);
        // SAFETY: httparse accepted the value, so every byte is a visible ASCII character,
        // a space, a tab or obs-text (0x80-0xFF): exactly what HeaderValue allows (no
        // control characters, no DEL).
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(value) };
        map.append(name, value);
    }
    if body_len > 0 {
        *request.body_mut() = RequestBody::Full(Some(buf.split_to(body_len).freeze()));
    }
    Parsed::Simple {
        request,
        len,
        keep_alive,
    }
}

/// A head split off that hyper must see after all: rejoined in front of what follows.
fn other_after_split(buf: &mut BytesMut, head: Bytes) -> Parsed {
    let mut joined = BytesMut::with_capacity(head.len() + buf.len());
    joined.extend_from_slice(&head);
    joined.extend_from_slice(buf);
    *buf = joined;
    Parsed::Other
}

/// The request facts a response's framing depends on.
#[derive(Clone, Copy)]
pub(crate) struct Asked {
    pub(crate) version: Version,
    pub(crate) head: bool,
    /// The request, and the worker, let the connection stay open.
    pub(crate) keep_alive: bool,
}

/// What is known of a response body before it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodySize {
    /// Nothing to send (the body is already at its end).
    None,
    Known(u64),
    Unknown,
}

/// How a response body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// Exactly this many bytes; nothing at all when 0 (HEAD, 204, 304).
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    Close,
}

/// A response head as encoded: how its body goes, and whether the connection closes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) framing: BodyFraming,
    pub(crate) last: bool,
}

/// A Content-Length value the response's own headers carry that is not a number: the
/// response cannot be framed (hyper drops the connection too).
#[derive(Debug)]
pub(crate) struct BadLength;

/// Writes the status line and headers of a response to `asked` into `dst`, with the framing
/// headers (`content-length`, `transfer-encoding`), the Connection token hyper adds
/// (`keep-alive` for an HTTP/1.0 client that keeps the connection, `close` for an HTTP/1.1
/// one that does not), and `server` and `date` when the response has none.
pub(crate) fn encode_head(
    dst: &mut BytesMut,
    status: StatusCode,
    reason: Option<&ReasonPhrase>,
    headers: &http::HeaderMap,
    body: BodySize,
    asked: Asked,
) -> Result<Encoded, BadLength> {
    let mut last = !asked.keep_alive;
    let http10 = asked.version == Version::HTTP_10;
    // What hyper adds to the Connection header (its enforce_version): `keep-alive` for an
    // HTTP/1.0 client that keeps the connection, `close` for an HTTP/1.1 one that does not,
    // unless the response says so already. It joins the response's own Connection line, or
    // goes after the other headers.
    let says = |token: &[u8]| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| rules::has_token(v.as_bytes(), token))
    };
    let mut add_connection = match (http10, asked.keep_alive) {
        (true, true) if !says(b"keep-alive") => Some(&b"keep-alive"[..]),
        (false, false) if !says(b"close") => Some(&b"close"[..]),
        _ => None,
    };
    let can_body = can_have_body(asked.head, status);
    let can_length = rules::status_has_body(status);
    dst.reserve(64 + headers.len() * 32);
    if !http10 && status == StatusCode::OK && reason.is_none() {
        dst.put_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        dst.put_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        dst.put_slice(status.as_str().as_bytes());
        dst.put_u8(b' ');
        match reason {
            Some(reason) => dst.put_slice(reason.as_bytes()),
            None => dst.put_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        dst.put_slice(b"\r\n");
    }
    let mut framing = BodyFraming::Length(0);
    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut wrote_server = false;
    let mut prev_len: Option<u64> = None;
    // Connection and Transfer-Encoding values go on one line each, joined with ", ".
    let mut joined: Option<HeaderName> = None;
    let mut must_add_chunked = false;
    for (name, value) in headers {
        if joined.as_ref().is_some_and(|j| j != name) {
            end_joined(dst, &mut joined, must_add_chunked, &mut add_connection);
        }
        match *name {
            header::CONTENT_LENGTH => match body {
                BodySize::Known(n) => {
                    // The body's own length wins; the header goes out as the first value.
                    if !wrote_len {
                        framing = BodyFraming::Length(n);
                        write_header(dst, name, value);
                        wrote_len = true;
                    }
                    continue;
                }
                BodySize::Unknown => {
                    let len = rules::content_length(value.as_bytes()).ok_or(BadLength)?;
                    match prev_len {
                        Some(prev) if prev != len => return Err(BadLength),
                        Some(_) => {}
                        None => {
                            framing = BodyFraming::Length(len);
                            write_header(dst, name, value);
                            wrote_len = true;
                            prev_len = Some(len);
                        }
                    }
                    continue;
                }
                BodySize::None if asked.head => {
                    write_header(dst, name, value);
                    wrote_len = true;
                    continue;
                }
                BodySize::None => continue,
            },
            header::TRANSFER_ENCODING => {
                if http10 || !can_body {
                    continue;
                }
                wrote_len = true;
                framing = BodyFraming::Chunked;
                must_add_chunked = !rules::ends_chunked(value.as_bytes());
                join(dst, &mut joined, name, value);
                continue;
            }
            header::CONNECTION => {
                if rules::has_token(value.as_bytes(), b"close") {
                    last = true;
                }
                join(dst, &mut joined, name, value);
                continue;
            }
            header::DATE => wrote_date = true,
            header::SERVER => wrote_server = true,
            _ => {}
        }
        write_header(dst, name, value);
    }
    end_joined(dst, &mut joined, must_add_chunked, &mut add_connection);
    // Where hyper's path has it: last of the response's own headers (see
    // `service::WithServer`).
    if !wrote_server {
        dst.put_slice(b"server: ");
        dst.put_slice(super::SERVER.as_bytes());
        dst.put_slice(b"\r\n");
    }
    if let Some(value) = add_connection {
        dst.put_slice(b"connection: ");
        dst.put_slice(value);
        dst.put_slice(b"\r\n");
    }
    if !wrote_len {
        framing = match body {
            BodySize::Unknown if http10 || !can_body => BodyFraming::Close,
            BodySize::Unknown => {
                dst.put_slice(b"transfer-encoding: chunked\r\n");
                BodyFraming::Chunked
            }
            BodySize::None | BodySize::Known(0) => {
                if can_length && !asked.head {
                    dst.put_slice(b"content-length: 0\r\n");
                }
                BodyFraming::Length(0)
            }
            BodySize::Known(n) if can_length => {
                dst.put_slice(b"content-length: ");
                dst.put_slice(itoa::Buffer::new().format(n).as_bytes());
                dst.put_slice(b"\r\n");
                BodyFraming::Length(n)
            }
            BodySize::Known(_) => BodyFraming::Length(0),
        };
    }
    if !can_body {
        framing = BodyFraming::Length(0);
    }
    // A body sent until the close: the close ends it.
    last |= framing == BodyFraming::Close;
    if !wrote_date {
        dst.put_slice(b"date: ");
        with_date(|date| dst.put_slice(date));
        dst.put_slice(b"\r\n");
    }
    dst.put_slice(b"\r\n");
    Ok(Encoded { framing, last })
}

fn write_header(dst: &mut BytesMut, name: &HeaderName, value: &HeaderValue) {
    dst.put_slice(name.as_str().as_bytes());
    dst.put_slice(b": ");
    dst.put_slice(value.as_bytes());
    dst.put_slice(b"\r\n");
}

/// Adds a value to the line being joined for `name`, starting the line if needed.
fn join(
    dst: &mut BytesMut,
    joined: &mut Option<HeaderName>,
    name: &HeaderName,
    value: &HeaderValue,
) {
    if joined.is_some() {
        dst.put_slice(b", ");
    } else {
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        *joined = Some(name.clone());
    }
    dst.put_slice(value.as_bytes());
}

fn end_joined(
    dst: &mut BytesMut,
    joined: &mut Option<HeaderName>,
    add_chunked: bool,
    add_connection: &mut Option<&[u8]>,
) {
    if let Some(name) = joined.take() {
        if name == header::TRANSFER_ENCODING && add_chunked {
            dst.put_slice(b", chunked");
        }
        if name == header::CONNECTION {
            if let Some(value) = add_connection.take() {
                dst.put_slice(b", ");
                dst.put_slice(value);
            }
        }
        dst.put_slice(b"\r\n");
    }
}

/// A response to HEAD, a 1xx, 204 or 304 has no body.
fn can_have_body(head: bool, status: StatusCode) -> bool {
    !head && rules::status_has_body(status)
}

/// The current `Date` value (IMF-fixdate), formatted once a second.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = crate::clock::clock_us(libc::CLOCK_REALTIME_COARSE) / 1_000_000;
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            let text = httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(now),
            );
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = now;
            }
        }
        f(&cached.1)
    })
}

/// The line that opens a chunk of `len` bytes.
pub(crate) fn chunk_size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:X}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            head_bytes: 8192,
            ..Limits::default()
        }
    }

    fn parsed(raw: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let p = parse(&mut buf, &limits());
        (p, buf)
    }

    #[test]
    fn a_plain_get_is_taken_and_split_off() {
        let (p, rest) =
            parsed(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next");
        let Parsed::Simple {
            request,
            len,
            keep_alive,
        } = p
        else {
            panic!("not taken");
        };
        assert_eq!(len, 52);
        assert!(keep_alive);
        assert_eq!(&rest[..], b"GET /next");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/a");
        assert_eq!(request.uri().query(), Some("b=1"));
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "x");
        let two: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_lines() {
        let ka = |raw: &[u8]| match parsed(raw).0 {
            Parsed::Simple { keep_alive, .. } => keep_alive,
            _ => panic!("not taken"),
        };
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"
        ));
    }

    #[test]
    fn anything_else_is_left_to_hyper_untouched() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nab",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nab",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16385\r\n\r\nab",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
            b"OPTIONS / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
        ] {
            let (p, rest) = parsed(raw);
            assert!(
                matches!(p, Parsed::Other | Parsed::Partial),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            if matches!(p, Parsed::Other) {
                assert_eq!(&rest[..], raw, "the bytes stay for hyper");
            }
        }
        assert!(matches!(parsed(b"GET / HTTP/1.1\r\nHo").0, Parsed::Partial));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert!(matches!(parsed(long.as_bytes()).0, Parsed::Other));
        let many: String = (0..40).map(|i| format!("x-{i}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parsed(many.as_bytes()).0, Parsed::Other));
    }

    #[test]
    fn a_small_body_that_came_with_its_head_is_taken() {
        let raw = b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /next";
        let (p, rest) = parsed(raw);
        let Parsed::Simple { request, len, .. } = p else {
            panic!("not taken");
        };
        assert_eq!(len, raw.len() - "helloGET /next".len());
        assert_eq!(&rest[..], b"GET /next");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.headers()["content-length"], "5");
        match request.into_body() {
            RequestBody::Full(Some(body)) => assert_eq!(&body[..], b"hello"),
            _ => panic!("the body is not the one read"),
        }
        // Without a length, or with 0, there is no body.
        for raw in [
            &b"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (p, rest) = parsed(raw);
            let Parsed::Simple { request, .. } = p else {
                panic!("not taken");
            };
            assert!(matches!(request.body(), RequestBody::Empty));
            assert!(rest.is_empty());
        }
        // Part of the body: the head stays whole in the buffer, and the whole request's
        // length is known.
        let raw = b"PATCH / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello";
        let (p, rest) = parsed(raw);
        assert!(matches!(p, Parsed::NeedBody(n) if n == raw.len() + 5));
        assert_eq!(&rest[..], raw);
        // The largest body taken.
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n{}",
            "b".repeat(MAX_BODY as usize)
        );
        assert!(matches!(parsed(big.as_bytes()).0, Parsed::Simple { .. }));
    }

    /// The whole head `encode_head` writes for these headers.
    fn encode_all(
        status: u16,
        headers: &[(&str, &str)],
        body: BodySize,
        asked: Asked,
    ) -> (String, Encoded) {
        let mut map = http::HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut dst = BytesMut::new();
        let e = encode_head(
            &mut dst,
            StatusCode::from_u16(status).unwrap(),
            None,
            &map,
            body,
            asked,
        )
        .unwrap();
        (String::from_utf8(dst.to_vec()).unwrap(), e)
    }

    /// The head up to its Date line, without dragoman's own Server line (its place is tested
    /// on its own): present once unless the response has one.
    fn encode(
        status: u16,
        headers: &[(&str, &str)],
        body: BodySize,
        asked: Asked,
    ) -> (String, Encoded) {
        let (text, e) = encode_all(status, headers, body, asked);
        let ours = format!("server: {}\r\n", crate::http::SERVER);
        let text = if headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("server"))
        {
            assert!(!text.contains(&ours));
            text
        } else {
            assert_eq!(text.matches(&ours).count(), 1, "{text}");
            text.replacen(&ours, "", 1)
        };
        let cut = text.find("date: ").expect("a date");
        assert_eq!(&text[cut + 6 + 29..], "\r\n\r\n");
        (text[..cut].to_string(), e)
    }

    const GET11: Asked = Asked {
        version: Version::HTTP_11,
        head: false,
        keep_alive: true,
    };

    #[test]
    fn framing_follows_the_body_and_the_request() {
        let (t, e) = encode(200, &[("a", "1")], BodySize::Known(5), GET11);
        assert_eq!(t, "HTTP/1.1 200 OK\r\na: 1\r\ncontent-length: 5\r\n");
        assert_eq!(
            e,
            Encoded {
                framing: BodyFraming::Length(5),
                last: false
            }
        );
        let (t, e) = encode(200, &[], BodySize::Unknown, GET11);
        assert_eq!(t, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n");
        assert_eq!(e.framing, BodyFraming::Chunked);
        let old = Asked {
            version: Version::HTTP_10,
            ..GET11
        };
        let (t, e) = encode(200, &[], BodySize::Unknown, old);
        assert_eq!(t, "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n");
        assert_eq!(
            e,
            Encoded {
                framing: BodyFraming::Close,
                last: true
            }
        );
        let (t, e) = encode(200, &[], BodySize::None, GET11);
        assert_eq!(t, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n");
        assert_eq!(e.framing, BodyFraming::Length(0));
        let (t, e) = encode(204, &[], BodySize::None, GET11);
        assert_eq!(t, "HTTP/1.1 204 No Content\r\n");
        assert_eq!(e.framing, BodyFraming::Length(0));
        let head = Asked {
            head: true,
            ..GET11
        };
        let (t, e) = encode(200, &[("content-length", "13")], BodySize::None, head);
        assert_eq!(t, "HTTP/1.1 200 OK\r\ncontent-length: 13\r\n");
        assert_eq!(e.framing, BodyFraming::Length(0));
        let (t, e) = encode(200, &[("content-length", "7")], BodySize::Unknown, GET11);
        assert_eq!(t, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n");
        assert_eq!(e.framing, BodyFraming::Length(7));
        let (t, e) = encode(
            404,
            &[("connection", "close"), ("connection", "x")],
            BodySize::Known(2),
            GET11,
        );
        assert_eq!(
            t,
            "HTTP/1.1 404 Not Found\r\nconnection: close, x\r\ncontent-length: 2\r\n"
        );
        assert!(e.last);
        let closing = Asked {
            keep_alive: false,
            ..GET11
        };
        assert!(encode(200, &[], BodySize::Known(1), closing).1.last);
    }

    #[test]
    fn the_server_line_follows_the_apps_headers_unless_the_app_sent_one() {
        let ours = format!("server: {}\r\n", crate::http::SERVER);
        let old = Asked {
            version: Version::HTTP_10,
            ..GET11
        };
        let (t, _) = encode_all(200, &[("connection", "x")], BodySize::Known(1), old);
        let want =
            format!("HTTP/1.0 200 OK\r\nconnection: x, keep-alive\r\n{ours}content-length: 1\r\n");
        assert!(t.starts_with(&want), "{t}");
        let (t, _) = encode(
            200,
            &[("server", "mine"), ("a", "1")],
            BodySize::Known(1),
            GET11,
        );
        assert_eq!(
            t,
            "HTTP/1.1 200 OK\r\nserver: mine\r\na: 1\r\ncontent-length: 1\r\n"
        );
    }

    #[test]
    fn a_length_that_is_not_a_number_cannot_be_framed() {
        let mut map = http::HeaderMap::new();
        map.insert(header::CONTENT_LENGTH, HeaderValue::from_static("+5"));
        let mut dst = BytesMut::new();
        let r = encode_head(
            &mut dst,
            StatusCode::OK,
            None,
            &map,
            BodySize::Unknown,
            GET11,
        );
        assert!(r.is_err());
    }
}
