//! WebSockets (RFC 6455) on the HTTP side: the opening handshake checked ([`check`]), the
//! response that accepts it ([`accept_response`]), permessage-deflate negotiated
//! ([`deflate`], RFC 7692), and the frames ([`frame`]). Sans-I/O: the session that runs
//! them over a connection belongs to the application bridge.

pub(crate) mod deflate;
pub(crate) mod frame;

use aws_lc_rs::digest;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};

use super::{error_response, Body};
use deflate::Negotiated;

/// The GUID of RFC 6455 §1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid opening handshake: what the response needs from it.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
    /// `Sec-WebSocket-Accept` for the response; `None` over HTTP/2 (RFC 8441), whose
    /// answer is a 200.
    pub(crate) accept: Option<HeaderValue>,
    /// The subprotocols the client offers, in its order.
    pub(crate) protocols: Vec<String>,
    /// The permessage-deflate offer we would accept, if any.
    pub(crate) deflate: Option<Negotiated>,
}

/// The handshake's verdict, left in the request's extensions for the bridge.
#[derive(Clone, Debug)]
pub(crate) enum Checked {
    Valid(Opening),
    /// Not a handshake a server may accept: the status and why (400, or 426 for another
    /// version).
    Invalid(StatusCode, &'static str),
}

impl Checked {
    /// The answer to an invalid handshake.
    pub(crate) fn refusal(status: StatusCode, why: &str) -> Response<Body> {
        let mut response = error_response(status, why, false);
        if status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Whether a request asks to upgrade to WebSocket (`Upgrade: websocket`).
pub(crate) fn asks_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"websocket"))
}

/// Whether an HTTP/2 request opens a WebSocket (RFC 8441 §4: a CONNECT with `:protocol`
/// websocket).
pub(crate) fn is_extended_connect<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Checks an opening handshake (RFC 6455 §4.2.1, or RFC 8441 §5 over HTTP/2);
/// `compression` allows permessage-deflate.
pub(crate) fn check<B>(req: &Request<B>, compression: bool) -> Checked {
    let bad = |why| Checked::Invalid(StatusCode::BAD_REQUEST, why);
    if req.version() == Version::HTTP_2 {
        return check_h2(req, compression);
    }
    if req.method() != Method::GET {
        return bad("a WebSocket handshake must be a GET");
    }
    if req.version() != Version::HTTP_11 {
        return bad("a WebSocket handshake must be HTTP/1.1");
    }
    let headers = req.headers();
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"upgrade"));
    if !connection_upgrade {
        return bad("a WebSocket handshake needs `Connection: Upgrade`");
    }
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes());
    if version != Some(b"13") {
        return Checked::Invalid(
            StatusCode::UPGRADE_REQUIRED,
            "this server speaks WebSocket version 13 (RFC 6455)",
        );
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.as_bytes(),
        _ => return bad("a WebSocket handshake needs one Sec-WebSocket-Key"),
    };
    if base64_decoded_len(key) != Some(16) {
        return bad("Sec-WebSocket-Key must be 16 bytes in base64");
    }
    Checked::Valid(opening(req, Some(accept_key(key)), compression))
}

/// RFC 8441 §5: an extended CONNECT with the version, and no key (the stream is the
/// handshake's proof).
fn check_h2<B>(req: &Request<B>, compression: bool) -> Checked {
    if !is_extended_connect(req) {
        return Checked::Invalid(
            StatusCode::BAD_REQUEST,
            "a WebSocket over HTTP/2 is an extended CONNECT",
        );
    }
    let version = req.headers().get(header::SEC_WEBSOCKET_VERSION);
    if version.map(|v| v.as_bytes()) != Some(b"13") {
        return Checked::Invalid(
            StatusCode::UPGRADE_REQUIRED,
            "this server speaks WebSocket version 13 (RFC 6455)",
        );
    }
    Checked::Valid(opening(req, None, compression))
}

/// The parts of a valid handshake the response needs.
fn opening<B>(req: &Request<B>, accept: Option<HeaderValue>, compression: bool) -> Opening {
    let headers = req.headers();
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let deflate = if compression {
        deflate::negotiate(
            headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    } else {
        None
    };
    Opening {
        accept,
        protocols,
        deflate,
    }
}

/// `Sec-WebSocket-Accept` for a key.
pub(crate) fn accept_key(key: &[u8]) -> HeaderValue {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    let encoded = base64(ctx.finish().as_ref());
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The 101 (a 200 over HTTP/2) that accepts `opening`: the subprotocol the application chose, the extension
/// negotiated, and the application's own headers.
pub(crate) fn accept_response(
    opening: &Opening,
    subprotocol: Option<&str>,
    headers: HeaderMap,
) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    let h = response.headers_mut();
    *h = headers;
    if let Some(accept) = &opening.accept {
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept.clone());
    }
    let h = response.headers_mut();
    if let Some(p) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    if let Some(deflate) = &opening.deflate {
        if let Ok(v) = HeaderValue::from_str(&deflate.response()) {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
        }
    }
    response
}

/// Whether a comma-separated header value holds `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The length base64 `text` decodes to, if it is valid (padded) base64.
fn base64_decoded_len(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() % 4 != 0 {
        return None;
    }
    let pad = text.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &text[..text.len() - pad];
    if !body.iter().all(|b| BASE64.contains(b)) {
        return None;
    }
    Some(text.len() / 4 * 3 - pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method("GET").uri("/chat");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const GOOD: [(&str, &str); 5] = [
        ("host", "x"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn the_rfc_example_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").to_str().unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn handshakes_are_checked() {
        let ok = request(&GOOD);
        assert!(asks_upgrade(&ok));
        match check(&ok, true) {
            Checked::Valid(o) => assert!(o.protocols.is_empty() && o.deflate.is_none()),
            other => panic!("{other:?}"),
        }
        let without = |name: &str| {
            let h: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != name).collect();
            check(&request(&h), true)
        };
        assert!(matches!(
            without("connection"),
            Checked::Invalid(StatusCode::BAD_REQUEST, _)
        ));
        assert!(matches!(
            without("sec-websocket-key"),
            Checked::Invalid(StatusCode::BAD_REQUEST, _)
        ));
        assert!(matches!(
            without("sec-websocket-version"),
            Checked::Invalid(StatusCode::UPGRADE_REQUIRED, _)
        ));
        let mut short: Vec<_> = GOOD.to_vec();
        short[3] = ("sec-websocket-key", "c2hvcnQ=");
        assert!(matches!(
            check(&request(&short), true),
            Checked::Invalid(..)
        ));
        let mut post = request(&GOOD);
        *post.method_mut() = Method::POST;
        assert!(matches!(check(&post, true), Checked::Invalid(..)));
        let mut with = GOOD.to_vec();
        with.push(("sec-websocket-protocol", "chat, superchat"));
        with.push((
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        ));
        match check(&request(&with), true) {
            Checked::Valid(o) => {
                assert_eq!(o.protocols, ["chat", "superchat"]);
                assert!(o.deflate.is_some());
            }
            other => panic!("{other:?}"),
        }
        match check(&request(&with), false) {
            Checked::Valid(o) => assert!(o.deflate.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http2_extended_connect() {
        let h2 = |protocol: Option<&'static str>, version: &str| {
            let mut r = Request::builder()
                .method(Method::CONNECT)
                .version(Version::HTTP_2)
                .uri("/chat")
                .header("sec-websocket-version", version)
                .body(())
                .unwrap();
            if let Some(p) = protocol {
                r.extensions_mut()
                    .insert(hyper::ext::Protocol::from_static(p));
            }
            r
        };
        assert!(is_extended_connect(&h2(Some("websocket"), "13")));
        assert!(!is_extended_connect(&h2(None, "13")));
        match check(&h2(Some("websocket"), "13"), true) {
            Checked::Valid(o) => {
                assert!(o.accept.is_none());
                let r = accept_response(&o, None, HeaderMap::new());
                assert_eq!(r.status(), StatusCode::OK);
                assert!(!r.headers().contains_key(header::UPGRADE));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(&h2(Some("websocket"), "8"), true),
            Checked::Invalid(StatusCode::UPGRADE_REQUIRED, _)
        ));
        assert!(matches!(
            check(&h2(None, "13"), true),
            Checked::Invalid(StatusCode::BAD_REQUEST, _)
        ));
    }
}
