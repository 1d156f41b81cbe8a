//! The connection layer: everything about a connection that is not its protocol.
//!
//! A connection is driven ([`driver`]) from accept to close: its preamble (a PROXY header or
//! a uwsgi packet, [`preamble`]), later the TLS handshake, then the protocol that serves it
//! (HTTP, from [`crate::http`], through the [`driver::Protocol`] seam). On the way the socket
//! is wrapped in layers, each with one job, in this order from the socket up:
//! - [`rewind::Rewind`]: the bytes read past the preamble, given back (below TLS);
//! - [`tls::Tls`]: TLS, on https listeners (no zero-copy layer above it);
//! - [`zerocopy::FileSender`]: file regions sent with sendfile; only over a plain socket
//!   ([`transport::RawSocket`]), never over TLS;
//! - [`watch::Watch`]: activity marks and the write deadline, for the [`lifecycle`];
//! - above these, the protocol's own (HTTP/1's smuggling guard, in [`crate::http`]).
//!
//! Each connection's state (activity, requests in flight, the worker's orders) lives in one
//! [`lifecycle::Lifecycle`], which the worker's [`registry::Registry`] reads and orders.

pub(crate) mod driver;
pub(crate) mod lifecycle;
pub(crate) mod preamble;
pub(crate) mod proxy;
pub(crate) mod registry;
pub(crate) mod rewind;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod watch;
pub(crate) mod zerocopy;

use std::net::SocketAddr;
use std::sync::OnceLock;

/// What a connection knows about itself, shared by the requests it carries. The addresses
/// are `None` on a unix socket.
pub(crate) struct ConnInfo {
    pub(crate) local: Option<SocketAddr>,
    pub(crate) peer: Option<SocketAddr>,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// Variables the environ gets as they are, over what dragoman derives from the request:
    /// those a uwsgi peer sent (PATH_INFO, SCRIPT_NAME, REMOTE_ADDR, `uwsgi_param`s, ...), or
    /// `HTTPS` and the client certificate's on a TLS connection. Empty on plain HTTP.
    pub(crate) extra_environ: Vec<(String, String)>,
    /// `REMOTE_ADDR` and `REMOTE_PORT` as text, made once per connection (on first use, so
    /// after a PROXY or uwsgi preamble has set `peer`).
    pub(crate) remote_text: OnceLock<(String, String)>,
    /// The connection carries one request (uwsgi): nothing is worth keeping for a next one.
    pub(crate) one_request: bool,
    /// What the application bridge keeps for the connection's later requests (the WSGI
    /// bridge: the environ's per-connection part).
    pub(crate) app_state: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl ConnInfo {
    /// A connection from `peer` (None: a unix socket client) accepted on `local`.
    pub(crate) fn new(local: Option<SocketAddr>, peer: Option<SocketAddr>) -> ConnInfo {
        ConnInfo {
            local,
            peer,
            scheme: "http",
            extra_environ: Vec::new(),
            remote_text: OnceLock::new(),
            one_request: false,
            app_state: OnceLock::new(),
        }
    }

    /// The peer's address and port as text; empty for a unix-socket peer.
    pub(crate) fn remote_text(&self) -> (&str, &str) {
        let (addr, port) = self.remote_text.get_or_init(|| match self.peer {
            Some(peer) => (peer.ip().to_string(), peer.port().to_string()),
            None => (String::new(), String::new()),
        });
        (addr, port)
    }

    /// The peer as log lines name it.
    pub(crate) fn describe(&self) -> String {
        self.peer
            .map_or_else(|| "a unix socket client".to_string(), |p| p.to_string())
    }
}
