//! The HTTP side: hyper's service for each connection, request checks hyper leaves to us, and
//! the [`App`] interface that application bridges (WSGI now, ASGI next) implement. Nothing here
//! knows about WSGI.

pub mod body;
pub mod fast;
pub mod framing;
pub mod h1;
pub mod io;
pub mod proxy;
pub mod service;
pub mod zerocopy;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use http::{header, HeaderValue, Request, Response, StatusCode};

pub use body::{Body, BodyError, RequestBody};

/// The `Server` header sent when the application sets none.
pub const SERVER: &str = concat!("dragoman/", env!("CARGO_PKG_VERSION"));

/// What a connection knows about itself, shared by the requests it carries. The addresses
/// are `None` on a unix socket.
pub struct ConnInfo {
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Variables the environ gets as they are, over what dragoman derives from the request:
    /// those a uwsgi peer sent (PATH_INFO, SCRIPT_NAME, REMOTE_ADDR, `uwsgi_param`s, ...).
    /// Empty on HTTP connections.
    pub extra_environ: Vec<(String, String)>,
    /// `REMOTE_ADDR` and `REMOTE_PORT` as text, made once per connection (on first use, so
    /// after a PROXY or uwsgi preamble has set `peer`).
    pub remote_text: OnceLock<(String, String)>,
    /// The connection carries one request (uwsgi): nothing is worth keeping for a next one.
    pub one_request: bool,
    /// What the application bridge keeps for the connection's later requests (the WSGI
    /// bridge: the environ's per-connection part).
    pub app_state: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl ConnInfo {
    /// The peer's address and port as text; empty for a unix-socket peer.
    pub fn remote_text(&self) -> (&str, &str) {
        let (addr, port) = self.remote_text.get_or_init(|| match self.peer {
            Some(peer) => (peer.ip().to_string(), peer.port().to_string()),
            None => (String::new(), String::new()),
        });
        (addr, port)
    }
}

/// A boxed future local to the worker's event-loop thread.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// An application bridge: turns a request into a response. Implemented by the WSGI bridge;
/// the ASGI bridge will sit beside it.
pub trait App {
    fn call(self: Rc<Self>, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Answer;
}

/// What an application bridge gives for a request.
pub enum Answer {
    /// The response, made during the call: nothing had to be waited for (the usual request
    /// without a body, served on the event-loop thread), so no future was boxed.
    Now(Response<Body>),
    /// A response still to come: a body to read first, or an app thread to wait for.
    Later(LocalFuture<Response<Body>>),
}

/// A short plain-text response for errors the server answers itself (400, 500, ...). `close`
/// asks hyper to close the connection after it, for requests whose framing cannot be trusted.
pub fn error_response(status: StatusCode, detail: &str, close: bool) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let text = if detail.is_empty() {
        format!("{} {reason}\n", status.as_u16())
    } else {
        format!("{} {reason}: {detail}\n", status.as_u16())
    };
    let mut response = Response::new(Body::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
