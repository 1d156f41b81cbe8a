//! The fuzz harnesses: one function per parser, fed arbitrary bytes, checking what must hold
//! whatever the input (a panic is a finding). `fuzz/` runs them under libFuzzer (`make fuzz`);
//! the unit test below replays the corpora kept in `fuzz/corpus/` on every `make test`.

use std::path::{Component, Path};

use crate::config::ini;
use crate::conn::proxy;
use crate::http::framing::{Found, Framing};
use crate::statics::encoding::{self, Accepted, Coding};
use crate::statics::path::{normalise, segments};
use crate::statics::range::{self, Ranges};
use crate::uwsgi::{codec, request};

/// A harness: panics when an input breaks what must hold.
pub type Harness = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/` and `fuzz/corpus/` name them.
pub const TARGETS: &[(&str, Harness)] = &[
    ("ini", ini_file),
    ("uwsgi", uwsgi_packet),
    ("range", range_header),
    ("accept_encoding", accept_encoding),
    ("static_path", static_path),
    ("proxy", proxy_header),
    ("framing", framing),
    ("framing_hyper", framing_vs_hyper),
    ("h1_head", h1_head),
    ("environ", environ),
];

/// The ini reader: any text is entries or an error with a line, never a panic; every entry's
/// line is a line of the file.
pub fn ini_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("<{name}>"));
    let ctx = ini::Context {
        path: Path::new("/srv/site/site.ini"),
        env: &env,
    };
    let lines = text.lines().count().max(1);
    for section in [None, Some("uwsgi"), Some("other")] {
        match ini::read(&text, section, &ctx) {
            Ok((entries, warnings)) => {
                for e in &entries {
                    assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
                    assert!(!e.key.is_empty());
                }
                for w in &warnings {
                    assert!(w.line <= lines);
                }
            }
            Err(e) => assert!(e.line <= lines && !e.message.is_empty()),
        }
    }
    let _ = ini::referenced_placeholders(&text);
}

/// The uwsgi codec and translation: a parsed packet re-encodes to the same bytes; a
/// translated request head is one HTTP request that an HTTP parser reads whole, with the
/// method sent and one header line per header variable: no variable can inject a line.
pub fn uwsgi_packet(data: &[u8]) {
    let codec::Parsed::Packet(packet) = codec::parse(data) else {
        return;
    };
    assert!(packet.len <= data.len());
    let again = codec::encode(packet.modifier1, packet.modifier2, &packet.vars)
        .expect("a parsed packet fits");
    assert_eq!(again, &data[..packet.len]);
    let Ok(translated) = request::translate(&packet) else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 512];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&translated.head) {
        Ok(httparse::Status::Complete(n)) => {
            assert_eq!(n, translated.head.len(), "one request, nothing after it");
            assert_eq!(req.method.map(str::as_bytes), packet.get("REQUEST_METHOD"));
            assert_eq!(req.version, Some(0));
            let sent = packet
                .vars
                .iter()
                .filter(|(k, v)| {
                    request::header_name(k).is_some() && (k.starts_with(b"HTTP_") || !v.is_empty())
                })
                .count();
            assert_eq!(req.headers.len(), sent + 1, "+1: connection: close");
        }
        Ok(httparse::Status::Partial) => panic!("a translated head is incomplete"),
        // httparse is stricter than hyper about some bytes (obs-text in the target, say);
        // what matters is that it never reads more than one request.
        Err(_) => {}
    }
}

/// The Range parser: what it answers is within the file, sorted, merged and bounded.
pub fn range_header(data: &[u8]) {
    let (len, header) = match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_le_bytes(*len) % (1 << 40), rest),
        None => (1000, data),
    };
    let header = String::from_utf8_lossy(header);
    match range::parse(&header, len) {
        Ranges::Whole | Ranges::Unsatisfiable => {}
        Ranges::One(r) => assert!(r.start < r.end && r.end <= len, "{r:?} of {len}"),
        Ranges::Many(rs) => {
            assert!(rs.len() >= 2 && rs.len() <= 16, "{} parts", rs.len());
            for pair in rs.windows(2) {
                assert!(pair[0].end < pair[1].start, "{rs:?}: sorted, merged");
            }
            for r in &rs {
                assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
            }
        }
    }
}

/// Accept-Encoding: the coding chosen is acceptable, present, and the smallest acceptable.
pub fn accept_encoding(data: &[u8]) {
    let (sizes, header) = match data.split_first_chunk::<4>() {
        Some((sizes, rest)) => (*sizes, rest),
        None => ([9, 5, 6, 7], data),
    };
    let header = String::from_utf8_lossy(header);
    let identity = u64::from(sizes[0]);
    let variants: Vec<(Coding, u64)> = Coding::ALL
        .iter()
        .zip(&sizes[1..])
        .filter(|(_, &size)| size % 5 != 0) // some variants absent
        .map(|(&c, &size)| (c, u64::from(size)))
        .collect();
    let accepted = Accepted::parse(&header);
    match encoding::choose(Some(&header), identity, &variants) {
        Some(chosen) => {
            assert!(accepted.accepts(chosen), "{chosen:?} for {header:?}");
            let size = variants
                .iter()
                .find(|(c, _)| *c == chosen)
                .expect("present")
                .1;
            for &(c, s) in &variants {
                assert!(!accepted.accepts(c) || s >= size, "{c:?} is smaller");
            }
            assert!(!accepted.accepts_identity() || size < identity);
        }
        None => {
            if !accepted.accepts_identity() {
                return; // nothing acceptable may still mean the plain file
            }
            for &(c, s) in &variants {
                assert!(!accepted.accepts(c) || s >= identity, "{c:?} should win");
            }
        }
    }
}

/// Static path resolution: whatever the request path, the file it names is inside the mount,
/// and the normal spelling the cache is keyed by is exactly the segments it names (so two
/// spellings share an entry only when they name the same file).
pub fn static_path(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(rest);
    let normal = normalise(&raw, flags & 1 == 1);
    let Ok((segs, dir)) = segments(&raw, flags & 1 == 1) else {
        assert!(normal.is_err(), "{raw:?}: normalised but refused");
        return;
    };
    let (key, normal_dir) = normal.expect("segments took it, so must normalise");
    let mut joined = Vec::new();
    for seg in &segs {
        joined.push(b'/');
        joined.extend_from_slice(seg);
    }
    if dir {
        joined.push(b'/');
    }
    assert_eq!(&*key, &joined[..], "{raw:?}");
    assert_eq!(normal_dir, dir);
    let root = Path::new("/srv/static");
    let mut path = root.to_path_buf();
    for seg in &segs {
        assert!(!seg.is_empty() && seg.len() <= 255);
        assert!(!seg.contains(&b'/') && !seg.contains(&0));
        assert!(seg != b"." && seg != b"..");
        assert!(flags & 1 == 1 || seg[0] != b'.', "a dotfile");
        path.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(seg));
    }
    assert!(path.starts_with(root));
    assert!(path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
}

/// The PROXY protocol: a header's length is within the input, and the header alone parses to
/// the same; any shorter prefix of it is incomplete, never something else.
pub fn proxy_header(data: &[u8]) {
    match proxy::parse(data) {
        proxy::Parsed::Header { len, source } => {
            assert!(len > 0 && len <= data.len());
            assert_eq!(
                proxy::parse(&data[..len]),
                proxy::Parsed::Header { len, source }
            );
            for cut in 1..len.min(300) {
                assert_eq!(
                    proxy::parse(&data[..cut]),
                    proxy::Parsed::Incomplete,
                    "cut {cut}"
                );
            }
        }
        proxy::Parsed::Incomplete => assert!(data.len() < 16 + 65535),
        proxy::Parsed::Absent | proxy::Parsed::Invalid(_) => {}
    }
}

/// The request-framing tracker: reading the same bytes in any pieces gives the same verdict
/// and the same (possibly neutralised) bytes.
pub fn framing(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut whole = stream.to_vec();
    let found_whole = Framing::new().scan(&mut whole);
    let mut pieces = stream.to_vec();
    let mut tracker = Framing::new();
    let mut found_pieces = Found::Nothing;
    let step = usize::from(step % 17) + 1;
    for chunk in pieces.chunks_mut(step) {
        let found = tracker.scan(chunk);
        if found_pieces == Found::Nothing {
            found_pieces = found;
        }
    }
    assert_eq!(found_whole, found_pieces);
    assert_eq!(whole, pieces);
}

/// The framing tracker against hyper, on the same bytes: the requests hyper serves, in order,
/// are the requests the tracker saw end (the same body lengths), up to where hyper stops (it
/// also refuses what the tracker does not model, or closes on `Connection: close`); and a
/// request the tracker neutralises is never served. A disagreement about where a request ends
/// is how requests are smuggled past a proxy.
pub fn framing_vs_hyper(data: &[u8]) {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = data.to_vec();
    let mut tracker = Framing::recording();
    let found = tracker.scan(&mut stream);
    let tracked = tracker.ended().to_vec();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let served = rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let served = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let seen = served.clone();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    // Only a body read whole counts as a request served.
                    let (method, uri) = (req.method().to_string(), req.uri().clone());
                    if let Ok(body) = req.into_body().collect().await {
                        seen.borrow_mut()
                            .push((method, uri, body.to_bytes().len() as u64));
                    }
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new(
                    )))
                }
            });
        // As the worker configures it (src/http/server.rs), with the default limits.
        let limits = crate::config::Limits::default();
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .max_header_size(limits.head_bytes)
            .max_headers(limits.header_fields)
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let (mut read, mut write) = tokio::io::split(client);
        let talk = async {
            let _ = write.write_all(&stream).await;
            let _ = write.shutdown().await;
        };
        let drain = async {
            let mut sink = [0u8; 8192];
            while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let bounded = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::join!(conn, talk, drain)
        });
        let _ = bounded.await;
        let served = served.borrow().clone();
        served
    });
    // No request past the last one the tracker saw end (so not one it neutralised), and each
    // ended where the tracker says it did.
    assert!(
        served.len() <= tracked.len(),
        "hyper served more than the tracker saw end ({found:?}): {served:?} vs {tracked:?}"
    );
    for (k, ((method, uri, len), (line, body))) in served.iter().zip(&tracked).enumerate() {
        let mut words = line.split(|&b| b == b' ');
        let (tracked_method, tracked_uri) = (words.next(), words.next());
        let same = tracked_method == Some(method.as_bytes())
            && tracked_uri
                .and_then(|u| http::Uri::try_from(u).ok())
                .as_ref()
                == Some(uri)
            && len == body;
        assert!(same, "request {k} differs: {served:?} vs {tracked:?}");
    }
}

/// The own HTTP/1 path's head reader: a request it takes is exactly what httparse reads as a
/// complete head in origin form, followed by the body its one plain Content-Length declares
/// (only for a method that may have one, and at most `MAX_BODY`), head and body split off
/// the buffer whole; anything else leaves every byte in place for hyper.
pub fn h1_head(data: &[u8]) {
    use crate::config::Limits;
    use crate::http::h1::{parse, Parsed, MAX_BODY};
    use http_body::Body as _;
    let limits = Limits {
        head_bytes: 4096,
        line_bytes: 2048,
        header_fields: 20,
        ..Limits::default()
    };
    let mut buf = bytes::BytesMut::from(data);
    let declared = |req: &httparse::Request| -> Vec<Vec<u8>> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| h.value.to_vec())
            .collect()
    };
    match parse(&mut buf, &limits) {
        Parsed::Simple { request, len, .. } => {
            assert!(len <= data.len() && len <= limits.head_bytes);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            assert_eq!(req.parse(data), Ok(httparse::Status::Complete(len)));
            let method = req.method.unwrap_or_default();
            assert_eq!(request.method().as_str(), method);
            assert!(request.uri().path().starts_with('/'));
            assert_eq!(request.headers().len(), req.headers.len());
            let lengths = declared(&req);
            let body_len = match method {
                "GET" | "HEAD" => {
                    assert!(lengths.is_empty());
                    0
                }
                "POST" | "PUT" | "PATCH" | "DELETE" => {
                    assert!(lengths.len() <= 1);
                    lengths.first().map_or(0, |v| {
                        let n = crate::rules::content_length(v).expect("a plain length");
                        assert!(n <= MAX_BODY);
                        n as usize
                    })
                }
                other => panic!("took a {other}"),
            };
            assert_eq!(request.body().size_hint().exact(), Some(body_len as u64));
            match request.body() {
                crate::http::RequestBody::Full(Some(body)) => {
                    assert_eq!(&body[..], &data[len..len + body_len]);
                }
                crate::http::RequestBody::Empty => assert_eq!(body_len, 0),
                _ => panic!("an unexpected body kind"),
            }
            assert_eq!(&buf[..], &data[len + body_len..]);
            for h in req.headers.iter() {
                let name = h.name.to_ascii_lowercase();
                assert!(!matches!(
                    name.as_str(),
                    "transfer-encoding" | "expect" | "upgrade" | "te"
                ));
            }
        }
        Parsed::NeedBody(total) => {
            assert!(total > data.len());
            assert_eq!(&buf[..], data);
        }
        Parsed::Partial | Parsed::Other => assert_eq!(&buf[..], data),
    }
}

/// The environ builder fed with arbitrary requests (parsed as hyper parses them): every key
/// and value is a `str`, the CGI keys are there, and header keys are well formed.
pub fn environ(data: &[u8]) {
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyString};

    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"))
        .version(if req.version == Some(0) {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        });
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let conn = crate::conn::ConnInfo::new(
        Some("127.0.0.1:8000".parse().expect("an address")),
        Some("[::1]:5000".parse().expect("an address")),
    );
    Python::initialize();
    Python::attach(|py| {
        let template = crate::wsgi::environ::Template::new(
            py,
            py.None().into_bound(py),
            Some(py.None().into_bound(py)),
            false,
            true,
        )
        .expect("a template");
        let env: Bound<'_, PyDict> = template
            .build(py, &parts, &conn, py.None().into_bound(py), None, None)
            .expect("an environ");
        for key in [
            "REQUEST_METHOD",
            "PATH_INFO",
            "QUERY_STRING",
            "REQUEST_URI",
            "SERVER_NAME",
            "SERVER_PORT",
            "SERVER_PROTOCOL",
            "REMOTE_ADDR",
        ] {
            let value = env.get_item(key).expect("lookup").expect(key);
            assert!(value.is_instance_of::<PyString>(), "{key}");
        }
        for (key, value) in env.iter() {
            let key: String = key.extract().expect("str keys");
            if key.starts_with("wsgi.") {
                continue;
            }
            assert!(value.is_instance_of::<PyString>(), "{key} is not a str");
            let text: String = value.extract().expect("a str");
            assert!(text.chars().all(|c| (c as u32) < 256), "{key}: not latin-1");
            if let Some(name) = key.strip_prefix("HTTP_") {
                // RFC 3875 §4.1.18: the field name upper-cased, `-` as `_` (other token
                // characters, such as `.` or `|`, stay, as gunicorn and uWSGI keep them).
                assert!(!name.is_empty());
                assert!(name.bytes().all(|b| b"!#$%&'*+.^_`|~".contains(&b)
                    || b.is_ascii_uppercase()
                    || b.is_ascii_digit()));
            }
        }
        let method: String = env
            .get_item("REQUEST_METHOD")
            .expect("lookup")
            .expect("set")
            .extract()
            .expect("a str");
        assert_eq!(method, parts.method.as_str());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays every input kept in `fuzz/corpus/<target>/`: what the fuzzer found once stays
    /// fixed.
    #[test]
    fn replay_the_fuzz_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut count = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.expect("an entry").path();
                let data = std::fs::read(&path).expect("readable");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "fuzz/corpus/{name}: {path:?} fails");
                count += 1;
            }
            assert!(count >= 5, "fuzz/corpus/{name} holds {count} inputs");
        }
    }
}
