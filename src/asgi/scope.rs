//! The connection scope an ASGI application is called with (asgiref's HTTP and WebSocket
//! spec, version [`SPEC_VERSION`]): built on the loop thread from a per-worker template (the
//! keys every scope has, shared) and the request's parts.

use std::sync::OnceLock;

use http::request::Parts;
use http::{header, Version};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::conn::ConnInfo;
use crate::forwarded::Forwarded;

/// The ASGI version.
pub(crate) const ASGI_VERSION: &str = "3.0";
/// The version of asgiref's HTTP and WebSocket spec dragoman follows: 2.5 has the `reason`
/// of `websocket.disconnect`, 2.4 the `OSError` from `send()` on a closed connection.
pub(crate) const SPEC_VERSION: &str = "2.5";

/// Which scope.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Http,
    WebSocket,
}

/// The per-worker templates, made on the loop thread at the first request.
#[derive(Default)]
pub(crate) struct Templates {
    http: OnceLock<Py<PyDict>>,
    websocket: OnceLock<Py<PyDict>>,
}

impl Templates {
    fn get<'py>(&self, py: Python<'py>, kind: Kind) -> PyResult<Bound<'py, PyDict>> {
        let cell = match kind {
            Kind::Http => &self.http,
            Kind::WebSocket => &self.websocket,
        };
        if let Some(t) = cell.get() {
            return Ok(t.bind(py).clone());
        }
        let t = template(py, kind)?;
        let _ = cell.set(t.clone().unbind());
        Ok(t)
    }
}

/// The keys every scope of a kind has.
fn template(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyDict>> {
    let t = PyDict::new(py);
    let asgi = PyDict::new(py);
    asgi.set_item("version", ASGI_VERSION)?;
    asgi.set_item("spec_version", SPEC_VERSION)?;
    let extensions = PyDict::new(py);
    match kind {
        Kind::Http => {
            t.set_item(intern!(py, "type"), intern!(py, "http"))?;
            extensions.set_item("http.response.trailers", PyDict::new(py))?;
            extensions.set_item("http.response.pathsend", PyDict::new(py))?;
        }
        Kind::WebSocket => {
            t.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
            extensions.set_item("websocket.http.response", PyDict::new(py))?;
        }
    }
    t.set_item(intern!(py, "asgi"), asgi)?;
    t.set_item(intern!(py, "root_path"), intern!(py, ""))?;
    t.set_item(intern!(py, "extensions"), extensions)?;
    Ok(t)
}

/// Builds the scope of a request. `state` is the lifespan's namespace, copied (shallowly)
/// into the scope, as the spec asks.
pub(crate) fn build<'py>(
    py: Python<'py>,
    templates: &Templates,
    kind: Kind,
    parts: &Parts,
    conn: &ConnInfo,
    state: Option<&Py<PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = templates.get(py, kind)?.copy()?;
    let http_version = match parts.version {
        Version::HTTP_10 => intern!(py, "1.0"),
        Version::HTTP_2 => intern!(py, "2"),
        _ => intern!(py, "1.1"),
    };
    scope.set_item(intern!(py, "http_version"), http_version)?;
    // A trusted proxy's word (`forwarded-allow-ips`) over the connection's, as uvicorn's
    // proxy headers do: the client and the scheme.
    let forwarded = parts.extensions.get::<Forwarded>();
    let https = match forwarded.and_then(|f| f.scheme) {
        Some(scheme) => scheme == "https",
        None => conn.scheme == "https",
    };
    let scheme = match (kind, https) {
        (Kind::Http, false) => intern!(py, "http"),
        (Kind::Http, true) => intern!(py, "https"),
        (Kind::WebSocket, false) => intern!(py, "ws"),
        (Kind::WebSocket, true) => intern!(py, "wss"),
    };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    if kind == Kind::Http {
        let method = parts.method.as_str();
        let method = match method {
            "GET" => intern!(py, "GET").clone(),
            "POST" => intern!(py, "POST").clone(),
            "HEAD" => intern!(py, "HEAD").clone(),
            _ => PyString::new(py, method),
        };
        scope.set_item(intern!(py, "method"), method)?;
    }
    let raw_path = parts.uri.path();
    let decoded = percent_encoding::percent_decode_str(raw_path).collect::<Vec<u8>>();
    scope.set_item(intern!(py, "path"), String::from_utf8_lossy(&decoded))?;
    scope.set_item(
        intern!(py, "raw_path"),
        PyBytes::new(py, raw_path.as_bytes()),
    )?;
    let query = parts.uri.query().unwrap_or("");
    scope.set_item(
        intern!(py, "query_string"),
        PyBytes::new(py, query.as_bytes()),
    )?;
    let headers = PyList::empty(py);
    for (name, value) in &parts.headers {
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, name.as_str().as_bytes()),
                PyBytes::new(py, value.as_bytes()),
            ],
        )?;
        headers.append(pair)?;
    }
    scope.set_item(intern!(py, "headers"), headers)?;
    match forwarded.and_then(|f| f.client) {
        Some(client) => scope.set_item(
            intern!(py, "client"),
            (client.ip().to_string(), client.port()),
        )?,
        None => match conn.peer {
            Some(peer) => {
                let (addr, _) = conn.remote_text();
                scope.set_item(intern!(py, "client"), (addr, peer.port()))?
            }
            None => scope.set_item(intern!(py, "client"), py.None())?,
        },
    }
    match conn.local {
        Some(local) => scope.set_item(
            intern!(py, "server"),
            (local.ip().to_string(), local.port()),
        )?,
        None => scope.set_item(intern!(py, "server"), py.None())?,
    }
    if kind == Kind::WebSocket {
        let protocols = PyList::empty(py);
        for value in parts.headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
            for p in value.to_str().unwrap_or("").split(',') {
                let p = p.trim();
                if !p.is_empty() {
                    protocols.append(p)?;
                }
            }
        }
        scope.set_item(intern!(py, "subprotocols"), protocols)?;
    }
    if let Some(state) = state {
        scope.set_item(intern!(py, "state"), state.bind(py).copy()?)?;
    }
    Ok(scope)
}
