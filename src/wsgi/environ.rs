//! The WSGI environ (PEP 3333), built per request from a per-worker template dict (the keys
//! that never change) and interned key strings, so a request costs one dict copy and a few
//! dozen `set_item`s. A keep-alive connection's later requests start from a per-connection
//! copy ([`ConnEnviron`]) that already holds what its requests share (`REMOTE_*`,
//! `SERVER_*`, the usual method and protocol), so they set little more than the path, the
//! headers and `wsgi.input`.
//!
//! The string rules are pure functions, tested without Python: which header becomes which
//! `HTTP_*` key, how repeated headers join, how `PATH_INFO` is percent-decoded.

use std::borrow::Cow;
use std::sync::Mutex;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Version};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{ffi, intern};

use super::start_response::Responder;
use crate::conn::ConnInfo;
use crate::forwarded::Forwarded;

/// The environ key a request header goes under: `HTTP_` + upper-cased name with `-` as `_`;
/// `CONTENT_TYPE` and `CONTENT_LENGTH` without the prefix (CGI). `None` for names containing
/// `_`: `X_Forwarded_For` and `X-Forwarded-For` would both become `HTTP_X_FORWARDED_FOR`, a
/// known way to spoof headers a proxy sets, so such headers are dropped (as nginx and gunicorn do).
pub(crate) fn header_key(name: &str) -> Option<String> {
    if name.contains('_') {
        return None;
    }
    match name {
        "content-type" => return Some("CONTENT_TYPE".into()),
        "content-length" => return Some("CONTENT_LENGTH".into()),
        _ => {}
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    Some(key)
}

/// The separator for repeated header lines: `; ` for Cookie (RFC 6265 §5.4), `, ` for every
/// other field (RFC 9110 §5.3).
pub(crate) fn join_separator(name: &HeaderName) -> &'static [u8] {
    if name == header::COOKIE {
        b"; "
    } else {
        b", "
    }
}

/// Percent-decodes a request path into bytes. Invalid escapes stay as written. `PATH_INFO` is
/// these bytes as a latin-1 string, per PEP 3333.
pub(crate) fn decode_path(raw: &str) -> std::borrow::Cow<'_, [u8]> {
    percent_encoding::percent_decode_str(raw).into()
}

/// Splits a Host header into (name, port), `[v6]:port` included.
pub(crate) fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            return (addr, after.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Grows `dict`'s table without adding an entry, so that its copies take more keys before
/// they grow. A copy of a dict keeps its table's size, and a full table that grows makes room
/// for about three times its entries and never shrinks; without this, the per-connection dict
/// is full, and every later request with a header besides Host (or a body) paid a resize of
/// its copy (about 700 instructions). So spare keys go in until the table grows (seen in
/// `__sizeof__`), then out again. Only speed depends on this: where CPython behaves otherwise,
/// the dict is the same dict.
fn make_room(py: Python<'_>, dict: &Bound<'_, PyDict>) -> PyResult<()> {
    let size = |d: &Bound<'_, PyDict>| -> PyResult<usize> {
        d.call_method0(intern!(py, "__sizeof__"))?.extract()
    };
    let before = size(dict)?;
    let mut spare = Vec::new();
    // A few at most: each spare key leaves a deleted slot behind, and a dict with many
    // of those is copied slowly (CPython compacts it instead).
    for i in 0..8 {
        let key = PyString::new(py, &format!("dragoman.spare.{i}"));
        dict.set_item(&key, py.None())?;
        spare.push(key);
        if size(dict)? > before {
            break;
        }
    }
    for key in spare {
        dict.del_item(key)?;
    }
    Ok(())
}

/// Creates a `str` from latin-1 bytes, as PEP 3333 wants for header values and paths.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8 (one pass, instead of validating and then
        // checking for ASCII).
        return PyString::new(py, unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    // SAFETY: the pointer and length describe a live byte slice; PyUnicode_DecodeLatin1 cannot
    // fail on any input except by running out of memory, which PyO3 turns into a panic-free
    // error check below.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        if ptr.is_null() {
            // Out of memory: fall back to the lossy text rather than unwinding.
            ffi::PyErr_Clear();
            return PyString::new(py, &String::from_utf8_lossy(bytes));
        }
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked()
    }
}

/// The environ's per-connection part, made at a connection's first request: the worker's
/// keys, `REMOTE_*`, `wsgi.url_scheme`, and that request's method, protocol and
/// `SERVER_NAME`/`SERVER_PORT` (with the values they came from, to tell when a later request
/// differs), and `HTTP_HOST` while the Host header stays the same. No other header, query or
/// body key: each request sets its own (the path, `REQUEST_URI` and `wsgi.input` are there,
/// to be replaced, so filling a copy replaces entries instead of growing the dict).
pub(crate) struct ConnEnviron {
    dict: Py<PyDict>,
    method: Method,
    version: Version,
    host: Option<HeaderValue>,
    /// The last request's start_response and write(), for the next request to reuse.
    pub(crate) responder: Mutex<Option<Responder>>,
}

/// Keys and values that are the same for every request of a worker, made once.
pub(crate) struct Template {
    /// `wsgi.*`, `SCRIPT_NAME`, `SERVER_SOFTWARE`: copied into every environ.
    base: Py<PyDict>,
    /// Interned `HTTP_*` keys for the headers most requests carry (a short list: comparing
    /// standard header names is cheaper than hashing them).
    header_keys: Vec<(HeaderName, Py<PyString>)>,
    /// Interned method names and protocol strings.
    methods: Vec<(Method, Py<PyString>)>,
    http11: Py<PyString>,
    http10: Py<PyString>,
    http2: Py<PyString>,
    empty: Py<PyString>,
}

impl Template {
    /// Builds the template. `errors` is `wsgi.errors`, `file_wrapper` is `wsgi.file_wrapper`
    /// (`None` with `wsgi-disable-file-wrapper`: the key is left out).
    pub(crate) fn new(
        py: Python<'_>,
        errors: Bound<'_, PyAny>,
        file_wrapper: Option<Bound<'_, PyAny>>,
        multithread: bool,
        multiprocess: bool,
    ) -> PyResult<Template> {
        let base = PyDict::new(py);
        base.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        base.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
        base.set_item(intern!(py, "wsgi.errors"), errors)?;
        base.set_item(intern!(py, "wsgi.multithread"), multithread)?;
        base.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
        base.set_item(intern!(py, "wsgi.run_once"), false)?;
        if let Some(file_wrapper) = file_wrapper {
            base.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
        }
        base.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        base.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
        base.set_item(intern!(py, "SERVER_SOFTWARE"), crate::http::SERVER)?;

        let common = [
            header::HOST,
            header::USER_AGENT,
            header::ACCEPT,
            header::ACCEPT_ENCODING,
            header::ACCEPT_LANGUAGE,
            header::CONNECTION,
            header::COOKIE,
            header::REFERER,
            header::ORIGIN,
            header::CACHE_CONTROL,
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::AUTHORIZATION,
            header::UPGRADE_INSECURE_REQUESTS,
            HeaderName::from_static("x-forwarded-for"),
            HeaderName::from_static("x-forwarded-proto"),
            HeaderName::from_static("x-requested-with"),
            HeaderName::from_static("x-csrftoken"),
            HeaderName::from_static("sec-fetch-mode"),
            HeaderName::from_static("sec-fetch-site"),
            HeaderName::from_static("sec-fetch-dest"),
            HeaderName::from_static("sec-fetch-user"),
        ];
        let header_keys = common
            .into_iter()
            .filter_map(|name| {
                let key = header_key(name.as_str())?;
                Some((name, PyString::intern(py, &key).unbind()))
            })
            .collect();
        let methods = [
            Method::GET,
            Method::POST,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ]
        .into_iter()
        .map(|m| {
            let s = PyString::intern(py, m.as_str()).unbind();
            (m, s)
        })
        .collect();
        Ok(Template {
            base: base.unbind(),
            header_keys,
            methods,
            http11: PyString::intern(py, "HTTP/1.1").unbind(),
            http10: PyString::intern(py, "HTTP/1.0").unbind(),
            http2: PyString::intern(py, "HTTP/2").unbind(),
            empty: PyString::intern(py, "").unbind(),
        })
    }

    /// Builds one request's environ. `content_length` overrides the header (set for chunked
    /// bodies, which are buffered first because Django reads exactly CONTENT_LENGTH bytes).
    /// `mount`: the request's mount, as its SCRIPT_NAME and the length of its prefix (in
    /// bytes of the percent-decoded path, which routed it), which PATH_INFO goes without.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        parts: &Parts,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
        content_length: Option<u64>,
        mount: Option<(&Bound<'py, PyString>, usize)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let shared = conn
            .app_state
            .get()
            .and_then(|s| s.downcast_ref::<ConnEnviron>());
        let env = match shared {
            Some(shared) => shared.dict.bind(py).copy()?,
            None => self.base.bind(py).copy()?,
        };
        let host = parts.headers.get(header::HOST);
        // Each key below is set unless the connection's copy already holds this request's
        // value.
        if shared.is_none_or(|s| s.method != parts.method) {
            let method = match self.methods.iter().find(|(m, _)| *m == parts.method) {
                Some((_, m)) => m.bind(py).clone(),
                None => PyString::new(py, parts.method.as_str()),
            };
            env.set_item(intern!(py, "REQUEST_METHOD"), method)?;
        }

        let uri = &parts.uri;
        let decoded = decode_path(uri.path());
        let path_info = match mount {
            Some((_, prefix)) => decoded.get(prefix..).unwrap_or_default(),
            None => &decoded,
        };
        env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
        let query = uri.query().unwrap_or("");
        if !query.is_empty() {
            // Raw bytes above 0x7F may reach us (hyper takes them): latin-1, like every
            // other native string of the environ, so `.encode("latin-1")` gives them back.
            env.set_item(intern!(py, "QUERY_STRING"), latin1(py, query.as_bytes()))?;
        } else if shared.is_none() {
            env.set_item(intern!(py, "QUERY_STRING"), self.empty.bind(py))?;
        }
        let request_uri = match uri.path_and_query() {
            Some(pq) if uri.scheme().is_none() => latin1(py, pq.as_str().as_bytes()),
            _ => latin1(py, uri.to_string().as_bytes()),
        };
        env.set_item(intern!(py, "REQUEST_URI"), request_uri)?;
        if shared.is_none_or(|s| s.version != parts.version) {
            let protocol = match parts.version {
                Version::HTTP_10 => &self.http10,
                Version::HTTP_2 => &self.http2,
                _ => &self.http11,
            };
            env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol.bind(py))?;
        }
        if shared.is_none() && conn.scheme != "http" {
            env.set_item(intern!(py, "wsgi.url_scheme"), conn.scheme)?;
        }
        // The Host header's value is in the per-connection copy while it stays the same.
        let host_shared = shared.is_some_and(|s| s.host.as_ref() == host);
        if !host_shared {
            self.set_server(py, &env, host, conn)?;
            if shared.is_some_and(|s| s.host.is_some()) && host.is_none() {
                env.del_item(intern!(py, "HTTP_HOST"))?;
            }
        }
        // The per-connection dict, when this request makes it.
        let mut kept = None;
        if shared.is_none() {
            // A unix-socket peer has no address; the proxy in front passes X-Forwarded-For.
            let (remote_addr, remote_port) = conn.remote_text();
            env.set_item(intern!(py, "REMOTE_ADDR"), remote_addr)?;
            env.set_item(intern!(py, "REMOTE_PORT"), remote_port)?;
            if !conn.one_request {
                // Kept before any header or body key goes in, with an empty query: a later
                // request sets those of its own.
                let dict = env.copy()?;
                if !query.is_empty() {
                    dict.set_item(intern!(py, "QUERY_STRING"), self.empty.bind(py))?;
                }
                // Keys every later request sets go in now (values replaced each time), so
                // filling the copy replaces entries instead of inserting and resizing.
                if let Some(host) = host {
                    dict.set_item(intern!(py, "HTTP_HOST"), latin1(py, host.as_bytes()))?;
                }
                dict.set_item(intern!(py, "wsgi.input"), py.None())?;
                kept = Some(dict.clone());
                let _ = conn.app_state.set(Box::new(ConnEnviron {
                    dict: dict.unbind(),
                    method: parts.method.clone(),
                    version: parts.version,
                    host: host.cloned(),
                    responder: Mutex::new(None),
                }));
            }
        }

        self.add_headers(py, &env, parts, host_shared)?;
        if let Some(length) = content_length {
            env.set_item(intern!(py, "CONTENT_LENGTH"), length.to_string())?;
        }
        for (key, value) in &conn.extra_environ {
            env.set_item(key, value)?;
        }
        // Set here, after the connection's copy was kept: its next request may be another
        // application's. Over a uwsgi connection the mount's values replace nginx's.
        if let Some((script_name, _)) = mount {
            env.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
            if !conn.extra_environ.is_empty() {
                env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
            }
        }
        if let Some(found) = parts.extensions.get::<Forwarded>() {
            set_forwarded(py, &env, found, host, conn)?;
        }
        env.set_item(intern!(py, "wsgi.input"), input)?;
        if let Some(dict) = kept {
            // This request added keys of its own (headers besides Host, a body's
            // CONTENT_*): the connection's next requests will too, so each copy needs room.
            if env.len() > dict.len() {
                make_room(py, &dict)?;
            }
        }
        Ok(env)
    }

    /// `SERVER_NAME` and `SERVER_PORT` from the Host header, as the client addressed us; the
    /// socket's own address when there is none (HTTP/1.0).
    fn set_server(
        &self,
        py: Python<'_>,
        env: &Bound<'_, PyDict>,
        host: Option<&HeaderValue>,
        conn: &ConnInfo,
    ) -> PyResult<()> {
        let host = host.and_then(|h| h.to_str().ok());
        let (server_name, server_port): (Cow<'_, str>, Cow<'_, str>) = match host.map(split_host) {
            Some((name, Some(port))) => (name.into(), port.into()),
            Some((name, None)) => (
                name.into(),
                if conn.scheme == "https" { "443" } else { "80" }.into(),
            ),
            None => match conn.local {
                Some(local) => (
                    local.ip().to_string().into(),
                    local.port().to_string().into(),
                ),
                None => ("localhost".into(), "0".into()), // a unix socket
            },
        };
        env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
        env.set_item(intern!(py, "SERVER_PORT"), server_port)?;
        Ok(())
    }

    /// Adds `HTTP_*`, `CONTENT_TYPE` and `CONTENT_LENGTH`, joining repeated header lines.
    /// Sets an `HTTP_*` key per header. `host_shared`: the environ already holds this
    /// request's single Host header as `HTTP_HOST`.
    fn add_headers(
        &self,
        py: Python<'_>,
        env: &Bound<'_, PyDict>,
        parts: &Parts,
        host_shared: bool,
    ) -> PyResult<()> {
        for name in parts.headers.keys() {
            if name == header::TRANSFER_ENCODING {
                continue; // the body is de-chunked; CONTENT_LENGTH describes what the app reads
            }
            let key = match self.header_keys.iter().find(|(n, _)| n == name) {
                Some((_, k)) => k.bind(py).clone(),
                None => match header_key(name.as_str()) {
                    Some(k) => PyString::new(py, &k),
                    None => continue,
                },
            };
            let mut values = parts.headers.get_all(name).iter();
            let first = values.next().map(|v| v.as_bytes()).unwrap_or_default();
            let value = match values.next() {
                None if host_shared && name == header::HOST => continue,
                None => latin1(py, first),
                Some(second) => {
                    let sep = join_separator(name);
                    let mut joined = first.to_vec();
                    for v in std::iter::once(second).chain(values) {
                        joined.extend_from_slice(sep);
                        joined.extend_from_slice(v.as_bytes());
                    }
                    latin1(py, &joined)
                }
            };
            env.set_item(key, value)?;
        }
        Ok(())
    }
}

/// What a trusted proxy says (`forwarded-allow-ips`, see [`crate::forwarded`]) over what the
/// connection says: `REMOTE_ADDR` and `REMOTE_PORT` (0 when the proxy named no port),
/// `wsgi.url_scheme`, `HTTP_HOST`, `SERVER_NAME` and `SERVER_PORT`. Only this request's
/// environ: the connection's kept copy holds the connection's own values.
fn set_forwarded(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    found: &Forwarded,
    host: Option<&HeaderValue>,
    conn: &ConnInfo,
) -> PyResult<()> {
    if let Some(client) = found.client {
        env.set_item(intern!(py, "REMOTE_ADDR"), client.ip().to_string())?;
        env.set_item(intern!(py, "REMOTE_PORT"), client.port().to_string())?;
    }
    if let Some(scheme) = found.scheme {
        env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    }
    if let Some(server) = found.server(host.and_then(|h| h.to_str().ok()), conn.scheme) {
        if let Some(host) = server.host {
            env.set_item(intern!(py, "HTTP_HOST"), host)?;
        }
        if let Some(name) = server.name {
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
        }
        env.set_item(intern!(py, "SERVER_PORT"), server.port)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys() {
        assert_eq!(
            header_key("x-forwarded-for").unwrap(),
            "HTTP_X_FORWARDED_FOR"
        );
        assert_eq!(header_key("host").unwrap(), "HTTP_HOST");
        assert_eq!(header_key("content-type").unwrap(), "CONTENT_TYPE");
        assert_eq!(header_key("content-length").unwrap(), "CONTENT_LENGTH");
        assert_eq!(header_key("x_forwarded_for"), None);
    }

    #[test]
    fn separators() {
        assert_eq!(join_separator(&header::COOKIE), b"; ");
        assert_eq!(join_separator(&header::ACCEPT), b", ");
    }

    #[test]
    fn path_decoding_keeps_bytes_and_bad_escapes() {
        assert_eq!(&*decode_path("/a%20b"), b"/a b");
        assert_eq!(&*decode_path("/caf%C3%A9"), b"/caf\xc3\xa9");
        assert_eq!(&*decode_path("/%E9"), b"/\xe9");
        assert_eq!(&*decode_path("/a%2Fb"), b"/a/b");
        assert_eq!(&*decode_path("/100%"), b"/100%");
        assert_eq!(&*decode_path("/%zz"), b"/%zz");
    }

    #[test]
    fn host_splitting() {
        assert_eq!(
            split_host("example.com:8080"),
            ("example.com", Some("8080"))
        );
        assert_eq!(split_host("example.com"), ("example.com", None));
        assert_eq!(split_host("[::1]:8000"), ("::1", Some("8000")));
        assert_eq!(split_host("[::1]"), ("::1", None));
    }
}
