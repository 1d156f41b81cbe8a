//! The HTTP side: hyper's service for each connection, request checks hyper leaves to us, and
//! the [`App`] interface that application bridges (WSGI now, ASGI next) implement. Nothing here
//! knows about WSGI.

pub(crate) mod body;
mod error;
pub(crate) mod fast;
pub(crate) mod file;
pub(crate) mod framing;
mod future;
pub(crate) mod guard;
pub(crate) mod h1;
pub(crate) mod h2flood;
pub(crate) mod server;
pub(crate) mod service;
pub(crate) mod upgrade;
pub(crate) mod websocket;

use std::rc::Rc;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};

pub(crate) use body::{Body, RequestBody};
pub(crate) use error::BodyError;
pub(crate) use future::LocalFuture;

use crate::conn::ConnInfo;

/// The `Server` header sent when the application sets none.
pub(crate) const SERVER: &str = concat!("dragoman/", env!("CARGO_PKG_VERSION"));

/// Something that answers some requests before the application: static files (later the
/// ACME challenge and the health check). A seam so that `http` imports none of them: the
/// worker puts them in its [`service::Routes`].
pub(crate) trait Route {
    /// The response, or `None` to pass the request on.
    fn route(&self, req: &Request<RequestBody>) -> Option<Response<Body>>;

    /// What the metrics call the requests it answers (dragoman's own answers, unless said).
    fn kind(&self) -> crate::metrics::RouteKind {
        crate::metrics::RouteKind::Server
    }
}

/// An application bridge: turns a request into a response. Implemented by the WSGI and
/// ASGI bridges.
pub(crate) trait App {
    fn call(self: Rc<Self>, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Answer;

    /// Whether the bridge answers WebSocket upgrades itself ([`App::websocket`]); if not,
    /// they are served as any other request.
    fn serves_websockets(&self) -> bool {
        false
    }

    /// A request that asks to upgrade to WebSocket: the bridge checks the handshake
    /// ([`websocket::check`]) and answers it (a 101 with a session left in `handoff`, or a
    /// refusal).
    fn websocket(
        self: Rc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
        handoff: upgrade::Handoff,
    ) -> Answer {
        let _ = handoff;
        self.call(req, conn)
    }
}

/// What an application bridge gives for a request.
pub(crate) enum Answer {
    /// The response, made during the call: nothing had to be waited for (the usual request
    /// without a body, served on the event-loop thread), so no future was boxed.
    Now(Response<Body>),
    /// A response still to come: a body to read first, or an app thread to wait for.
    Later(LocalFuture<Response<Body>>),
}

/// A short plain-text response for errors the server answers itself (400, 500, ...). `close`
/// asks hyper to close the connection after it, for requests whose framing cannot be trusted.
pub(crate) fn error_response(status: StatusCode, detail: &str, close: bool) -> Response<Body> {
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
