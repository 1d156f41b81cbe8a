//! A uwsgi request translated for the HTTP side. Sans-I/O.
//!
//! The packet becomes an HTTP/1.0 request head (method, target, `HTTP_*` variables as header
//! lines, `CONTENT_LENGTH` framing the body that follows on the stream), which hyper then
//! serves like any connection: the same limits, timeouts, static files and application bridge
//! apply, and the response goes back as HTTP, which is what nginx's uwsgi module reads. HTTP/1.0
//! without keep-alive makes hyper end the body by closing, never with chunked encoding, as a
//! uwsgi peer expects.
//!
//! Every variable that did not become a header line is kept for the environ, which gets it as
//! sent (as uWSGI does): PATH_INFO and SCRIPT_NAME as nginx computed them, REMOTE_ADDR, HTTPS,
//! SERVER_PROTOCOL, custom `uwsgi_param`s.

use std::net::{IpAddr, SocketAddr};

use super::codec::Packet;

/// modifier1 for a WSGI request (what nginx sends by default).
pub(crate) const MODIFIER_WSGI: u8 = 0;
/// uWSGI's modifier1 30: SCRIPT_NAME is removed from the front of PATH_INFO.
pub(crate) const MODIFIER_STRIP_SCRIPT_NAME: u8 = 30;

/// The translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translated {
    /// An HTTP/1.0 request head, ending with the empty line.
    pub(crate) head: Vec<u8>,
    /// Variables for the environ as sent (latin-1 text, as PEP 3333 wants).
    pub(crate) environ: Vec<(String, String)>,
    /// The request came over HTTPS (HTTPS=on, or the scheme variables say so).
    pub(crate) https: bool,
    /// The client, from REMOTE_ADDR and REMOTE_PORT.
    pub(crate) remote: Option<SocketAddr>,
}

/// Header variables that describe the hop to nginx, not the request: the body is framed by
/// CONTENT_LENGTH alone, and nginx has handled `Expect` itself. They stay in the environ.
const HOP_VARIABLES: &[&[u8]] = &[
    b"HTTP_CONNECTION",
    b"HTTP_KEEP_ALIVE",
    b"HTTP_TRANSFER_ENCODING",
    b"HTTP_TE",
    b"HTTP_TRAILER",
    b"HTTP_UPGRADE",
    b"HTTP_EXPECT",
    b"HTTP_PROXY_CONNECTION",
    // Sent beside CONTENT_TYPE and CONTENT_LENGTH, which are the ones used.
    b"HTTP_CONTENT_TYPE",
    b"HTTP_CONTENT_LENGTH",
];

/// Translates a packet; the error says what is wrong with it (answered with a 400).
pub(crate) fn translate(packet: &Packet<'_>) -> Result<Translated, String> {
    let strip_script_name = match packet.modifier1 {
        MODIFIER_WSGI => false,
        MODIFIER_STRIP_SCRIPT_NAME => true,
        other => {
            return Err(format!(
                "uwsgi modifier1 {other} is not served here (0: a WSGI request; 30: the same with \
                 SCRIPT_NAME removed from PATH_INFO)"
            ))
        }
    };
    let method = packet
        .get("REQUEST_METHOD")
        .ok_or("the uwsgi packet has no REQUEST_METHOD")?;
    if method.is_empty() || !method.iter().all(|&b| crate::rules::is_tchar(b)) {
        return Err("the uwsgi REQUEST_METHOD is not a method name".into());
    }
    let target = target(packet)?;

    let mut head = Vec::with_capacity(packet.len + 64);
    head.extend_from_slice(method);
    head.push(b' ');
    head.extend_from_slice(&target);
    head.extend_from_slice(b" HTTP/1.0\r\n");
    let mut environ = Vec::with_capacity(packet.vars.len());
    for &(key, value) in &packet.vars {
        let name = header_name(key);
        if let Some(name) = name {
            if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!(
                    "the uwsgi variable {} holds a line break or NUL",
                    latin1(key)
                ));
            }
            if key == b"CONTENT_LENGTH" && !value.iter().all(u8::is_ascii_digit) {
                return Err("the uwsgi CONTENT_LENGTH is not a number".into());
            }
            if !value.is_empty() || key.starts_with(b"HTTP_") {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
        } else {
            environ.push((latin1(key), latin1(value)));
        }
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");

    if strip_script_name {
        strip_script_name_from_path_info(&mut environ);
    }
    let text = |key: &str| packet.get(key).map(latin1).unwrap_or_default();
    let https = matches!(text("HTTPS").to_ascii_lowercase().as_str(), "on" | "1")
        || text("UWSGI_SCHEME").eq_ignore_ascii_case("https")
        || text("REQUEST_SCHEME").eq_ignore_ascii_case("https");
    let remote = text("REMOTE_ADDR")
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, text("REMOTE_PORT").parse().unwrap_or(0)));
    Ok(Translated {
        head,
        environ,
        https,
        remote,
    })
}

/// The request target: REQUEST_URI as the client sent it, or PATH_INFO (re-encoded) and
/// QUERY_STRING when there is none.
fn target(packet: &Packet<'_>) -> Result<Vec<u8>, String> {
    let valid = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| b > b' ' && b != 0x7f);
    if let Some(uri) = packet.get("REQUEST_URI").filter(|u| !u.is_empty()) {
        return if valid(uri) {
            Ok(uri.to_vec())
        } else {
            Err("the uwsgi REQUEST_URI holds spaces or control characters".into())
        };
    }
    let path = packet.get("PATH_INFO").unwrap_or(b"");
    let mut target = Vec::with_capacity(path.len() + 16);
    if !path.starts_with(b"/") {
        target.push(b'/');
    }
    for &b in path {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            target.push(b);
        } else {
            target.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    if let Some(query) = packet.get("QUERY_STRING").filter(|q| !q.is_empty()) {
        if !valid(query) {
            return Err("the uwsgi QUERY_STRING holds spaces or control characters".into());
        }
        target.push(b'?');
        target.extend_from_slice(query);
    }
    Ok(target)
}

/// The header line a variable becomes, if it is one: `HTTP_X_FORWARDED_FOR` is
/// `x-forwarded-for`; CONTENT_TYPE and CONTENT_LENGTH are theirs.
pub(crate) fn header_name(key: &[u8]) -> Option<String> {
    match key {
        b"CONTENT_TYPE" => return Some("content-type".into()),
        b"CONTENT_LENGTH" => return Some("content-length".into()),
        _ => {}
    }
    let rest = key.strip_prefix(b"HTTP_")?;
    if rest.is_empty()
        || HOP_VARIABLES.contains(&key)
        || !rest
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some(
        rest.iter()
            .map(|&b| {
                if b == b'_' {
                    '-'
                } else {
                    b.to_ascii_lowercase() as char
                }
            })
            .collect(),
    )
}

/// With modifier1 30, uWSGI removes SCRIPT_NAME from the front of PATH_INFO.
fn strip_script_name_from_path_info(environ: &mut [(String, String)]) {
    let Some(script) = environ
        .iter()
        .find(|(k, _)| k == "SCRIPT_NAME")
        .map(|(_, v)| v.trim_end_matches('/').to_string())
    else {
        return;
    };
    for (key, value) in environ.iter_mut() {
        if key == "PATH_INFO" {
            if let Some(rest) = value.strip_prefix(&script) {
                if rest.is_empty() || rest.starts_with('/') {
                    *value = rest.to_string();
                }
            }
        }
    }
}

/// Bytes as a latin-1 string (each byte one char), as PEP 3333 wants environ values.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwsgi::codec::{encode, parse, Parsed};

    fn translate_vars(modifier1: u8, vars: &[(&str, &str)]) -> Result<Translated, String> {
        let vars: Vec<(&[u8], &[u8])> = vars
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        let bytes = encode(modifier1, 0, &vars).unwrap();
        let Parsed::Packet(p) = parse(&bytes) else {
            panic!()
        };
        translate(&p)
    }

    fn environ(t: Translated) -> std::collections::HashMap<String, String> {
        t.environ.into_iter().collect()
    }

    const NGINX: &[(&str, &str)] = &[
        ("QUERY_STRING", "a=1"),
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", "5"),
        ("REQUEST_URI", "/app/x%20y?a=1"),
        ("PATH_INFO", "/app/x y"),
        ("DOCUMENT_ROOT", "/srv"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "https"),
        ("HTTPS", "on"),
        ("REMOTE_ADDR", "203.0.113.9"),
        ("REMOTE_PORT", "41000"),
        ("SERVER_PORT", "443"),
        ("SERVER_NAME", "example.com"),
        ("SCRIPT_NAME", "/app"),
        ("HTTP_HOST", "example.com"),
        ("HTTP_CONTENT_LENGTH", "5"),
        ("HTTP_TRANSFER_ENCODING", "chunked"),
        ("HTTP_COOKIE", "a=b"),
        ("HTTP_X_FORWARDED_FOR", "10.0.0.1"),
    ];

    #[test]
    fn an_nginx_request() {
        let t = translate_vars(0, NGINX).unwrap();
        let head = String::from_utf8(t.head.clone()).unwrap();
        assert_eq!(
            head,
            "POST /app/x%20y?a=1 HTTP/1.0\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\
             host: example.com\r\ncookie: a=b\r\nx-forwarded-for: 10.0.0.1\r\n\
             connection: close\r\n\r\n"
        );
        assert!(t.https);
        assert_eq!(t.remote, Some("203.0.113.9:41000".parse().unwrap()));
        let env = environ(t);
        assert_eq!(env["PATH_INFO"], "/app/x y");
        assert_eq!(env["SCRIPT_NAME"], "/app");
        assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
        assert_eq!(env["HTTP_TRANSFER_ENCODING"], "chunked");
        assert!(!env.contains_key("HTTP_HOST"));
    }

    #[test]
    fn modifier_30_strips_script_name() {
        let t = translate_vars(30, NGINX).unwrap();
        assert_eq!(environ(t)["PATH_INFO"], "/x y");
        let t = translate_vars(
            30,
            &[
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", "/app"),
                ("PATH_INFO", "/application"),
            ],
        )
        .unwrap();
        assert_eq!(
            environ(t)["PATH_INFO"],
            "/application",
            "only whole segments"
        );
        assert!(translate_vars(5, NGINX)
            .unwrap_err()
            .contains("modifier1 5"));
    }

    #[test]
    fn target_from_path_info_when_no_request_uri() {
        let t = translate_vars(
            0,
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/a b/é"),
                ("QUERY_STRING", "q=1"),
            ],
        )
        .unwrap();
        assert!(t.head.starts_with(b"GET /a%20b/%C3%A9?q=1 HTTP/1.0\r\n"));
        let t = translate_vars(0, &[("REQUEST_METHOD", "GET")]).unwrap();
        assert!(t.head.starts_with(b"GET / HTTP/1.0\r\n"));
    }

    #[test]
    fn injection_is_refused() {
        for vars in [
            &[("REQUEST_METHOD", "GET / HTTP/1.1\r\nX: y")][..],
            &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/ HTTP/1.1")],
            &[
                ("REQUEST_METHOD", "GET"),
                ("HTTP_X", "a\r\nTransfer-Encoding: chunked"),
            ],
            &[("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "5, 6")],
            &[("REQUEST_METHOD", "GET"), ("QUERY_STRING", "a b")],
            &[("PATH_INFO", "/")],
        ] {
            assert!(translate_vars(0, vars).is_err(), "{vars:?}");
        }
        // Names that are not header-like stay in the environ only.
        let t = translate_vars(0, &[("REQUEST_METHOD", "GET"), ("HTTP_X:Y", "1")]).unwrap();
        assert!(!t.head.windows(3).any(|w| w == b"x:y"));
        assert_eq!(environ(t)["HTTP_X:Y"], "1");
    }
}
