//! A response head as an application gives it, and the rules every bridge applies to it
//! before it goes out: no hop-by-hop headers (the server owns the connection), and a body that
//! matches the application's own Content-Length (extra bytes are cut off and reported, a short
//! body is reported), held as a number rather than a header so it is never parsed twice.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{Response, StatusCode};
use hyper::ext::ReasonPhrase;

use crate::http::{error_response, Body};
use crate::rules;

/// A response's status line and headers, as the application gave them.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// Set when the application's reason phrase differs from the standard one.
    pub(crate) reason: Option<ReasonPhrase>,
    /// The headers, except Content-Length.
    pub(crate) headers: HeaderMap,
    /// The application's `Content-Length`, if it set one (never in `headers`).
    pub(crate) content_length: Option<u64>,
}

impl Head {
    /// A head for `status` with room for `headers` headers, and one more: the `Server` header
    /// hyper's HTTP/1 adds to the map (the own HTTP/1 path writes it without the map), so the
    /// map never regrows.
    pub(crate) fn new(status: StatusCode, reason: Option<ReasonPhrase>, headers: usize) -> Head {
        Head {
            status,
            reason,
            headers: HeaderMap::with_capacity(headers + 1),
            content_length: None,
        }
    }

    /// Adds a header the application set: Content-Length becomes the number; a hop-by-hop
    /// header, or a name or value HTTP does not allow, is refused with the rule it breaks.
    pub(crate) fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), String> {
        // The name as text only for an error message: built when one is needed.
        let shown = || String::from_utf8_lossy(name);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = rules::content_length(value).ok_or_else(|| {
                format!(
                    "Content-Length must be a whole number; got {:?}",
                    String::from_utf8_lossy(value)
                )
            })?;
            if self.content_length.is_some_and(|c| c != n) {
                return Err("two different Content-Length headers".into());
            }
            self.content_length = Some(n);
            return Ok(());
        }
        let header = HeaderName::from_bytes(name)
            .map_err(|_| format!("{:?} is not a valid header name", shown()))?;
        if RESPONSE_HOP_BY_HOP.contains(&header.as_str()) {
            return Err(format!(
                "{:?} is a hop-by-hop header; the server manages the connection, so \
                 applications must not set it",
                shown()
            ));
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            format!(
                "the value of header {:?} contains control characters (CR, LF, NUL...); got {:?}",
                shown(),
                String::from_utf8_lossy(value)
            )
        })?;
        self.headers.append(header, value);
        Ok(())
    }
}

/// Headers that describe one connection, which the server owns: an application may not set
/// them in a response (PEP 3333; the same holds for ASGI).
const RESPONSE_HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The response for a complete body, holding it to the application's Content-Length; the
/// error names the rule the application broke.
pub(crate) fn complete_response(
    head: Head,
    body: Vec<Bytes>,
    head_request: bool,
) -> Result<Response<Body>, String> {
    let total: usize = body.iter().map(Bytes::len).sum();
    if head_request {
        // No body goes out; the headers are those a GET would get.
        let mut response = head_response(head);
        if !response.headers().contains_key(CONTENT_LENGTH) && total > 0 {
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(total));
        }
        return Ok(response);
    }
    check_length(&head, &body)?;
    let data = match body.len() {
        0 => Bytes::new(),
        1 => body.into_iter().next().unwrap_or_default(),
        _ => Bytes::from(body.concat()),
    };
    // hyper writes the length of a complete body itself, unless the status has no body (a
    // 304 keeps the application's Content-Length).
    let mut response = if rules::status_has_body(head.status) {
        response_without_length(head)
    } else {
        head_response(head)
    };
    *response.body_mut() = Body::full(data);
    Ok(response)
}

/// A complete body must be exactly as long as the application's Content-Length says.
pub(crate) fn check_length(head: &Head, body: &[Bytes]) -> Result<(), String> {
    let total = total_len(body);
    match head.content_length {
        Some(declared) if declared != total => Err(format!(
            "the response has {total} bytes but its Content-Length header says {declared}"
        )),
        _ => Ok(()),
    }
}

/// The bytes in `chunks`.
pub(crate) fn total_len(chunks: &[Bytes]) -> u64 {
    chunks.iter().map(|c| c.len() as u64).sum()
}

/// A response with the head (its Content-Length included) and an empty body.
pub(crate) fn head_response(head: Head) -> Response<Body> {
    let length = head.content_length;
    let mut response = response_without_length(head);
    if let Some(n) = length {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    response
}

/// [`head_response`] without the Content-Length header.
fn response_without_length(head: Head) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(reason);
    }
    response
}

/// The 500 sent when the application fails before its head went out.
pub(crate) fn internal_error() -> Response<Body> {
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "", false)
}

/// Holds a streamed body to the application's Content-Length: extra bytes are cut off and
/// reported, a short body is reported at the end.
pub(crate) struct LengthCheck {
    remaining: Option<u64>,
}

impl LengthCheck {
    /// `head` is `None` when the head went out before it was checked (WSGI's write()); its
    /// length was not tracked then.
    pub(crate) fn new(head: Option<&Head>) -> Self {
        LengthCheck {
            remaining: head.and_then(|h| h.content_length),
        }
    }

    /// Passes a chunk, truncated to what the declared length still allows.
    pub(crate) fn pass(&mut self, mut chunk: Bytes) -> Result<Bytes, (Bytes, String)> {
        let Some(remaining) = &mut self.remaining else {
            return Ok(chunk);
        };
        if chunk.len() as u64 > *remaining {
            chunk.truncate(*remaining as usize);
            *remaining = 0;
            return Err((
                chunk,
                "the application sent more bytes than its Content-Length header says".into(),
            ));
        }
        *remaining -= chunk.len() as u64;
        Ok(chunk)
    }

    /// Whether the declared length has been sent in full: the body must be over.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// At the end: an error if fewer bytes came than declared.
    pub(crate) fn finish(&self) -> Result<(), String> {
        match self.remaining {
            Some(n) if n > 0 => Err(format!(
                "the application's response ended {n} bytes short of its Content-Length header"
            )),
            _ => Ok(()),
        }
    }
}
