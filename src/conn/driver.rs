//! One connection, from accept to close: its preamble, then the TLS handshake and ALPN (on
//! https listeners), then the protocol that serves it, over the layers it needs.
//!
//! The protocol is a seam ([`Protocol`]): the connection layer knows nothing of HTTP, and the
//! HTTP side ([`crate::http::server`]) knows nothing of preambles, listeners or sockets, only
//! a [`Transport`], whether file bodies can go out with zero copies, and how the protocol
//! starts ([`Mode`]: what ALPN chose, or the HTTP/2 preface a plain connection began with).

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::lifecycle::{Lifecycle, Order};
use super::preamble::{Preamble, PreambleError};
use super::registry::Registered;
use super::rewind::Rewind;
use super::tls;
use super::transport::{RawSocket, Transport};
use super::watch::{Watch, WriteRules};
use super::zerocopy::{FileSender, ZeroCopy};
use super::ConnInfo;
use crate::config::Wire;
use crate::tls::WorkerTls;
use crate::{info, warn};

/// How the protocol starts on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Http1,
    /// HTTP/2: chosen with ALPN, or the connection began with the HTTP/2 preface (h2c with
    /// prior knowledge, `http2-cleartext`).
    Http2,
    /// Every request is answered with a redirect to HTTPS, to this port (`http-to-https`).
    Redirect(Option<u16>),
}

/// What serves a connection once the connection layer has set it up.
pub(crate) trait Protocol {
    /// Serves the connection until it ends. `files` is the queue for file bodies sent with
    /// zero copies, when the transport can send files by itself (a protocol that frames its
    /// bodies, HTTP/2, leaves it unused).
    async fn serve<T: Transport>(
        &self,
        io: Watch<T>,
        files: Option<Rc<ZeroCopy>>,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
        mode: Mode,
    );

    /// Answers a connection whose preamble is malformed (the protocol has not started: this
    /// is its one answer), then closes it.
    async fn refuse<T: Transport>(&self, io: &mut T, why: &str);
}

/// How a worker's connections are set up, shared by its accept loops.
pub(crate) struct Driver<P> {
    pub(crate) protocol: P,
    /// With the PROXY protocol on: the peers whose headers are believed.
    pub(crate) proxy: Option<crate::forwarded::TrustedProxies>,
    pub(crate) header_timeout: Duration,
    pub(crate) write: WriteRules,
    /// The worker's TLS, with https listeners.
    pub(crate) tls: Option<Rc<WorkerTls>>,
    /// `http2-cleartext`: a plain connection that begins with the HTTP/2 preface speaks it.
    pub(crate) h2c: bool,
}

/// What an HTTP/2 connection begins with (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

impl<P: Protocol> Driver<P> {
    /// Drives a connection accepted on a listener speaking `wire`; it stays in the registry
    /// until this returns.
    pub(crate) async fn drive<S: RawSocket>(
        &self,
        mut stream: S,
        wire: Wire,
        mut conn: ConnInfo,
        registered: Registered,
    ) {
        let preamble = match (wire, &self.proxy) {
            (Wire::Uwsgi, _) => Preamble::Uwsgi,
            (_, Some(trusted)) => Preamble::Proxy(trusted),
            (_, None) => Preamble::None,
        };
        let prefix = match preamble
            .read(&mut stream, &mut conn, self.header_timeout)
            .await
        {
            Ok(prefix) => prefix,
            Err(e) => {
                self.ended_early(&mut stream, wire, &conn, e).await;
                return;
            }
        };
        let life = registered.life.clone();
        // The preamble had a header-timeout of its own: the request head (and the TLS
        // handshake before it) gets a fresh one.
        life.restart_wait();
        let peer: Rc<str> = conn.describe().into();
        match wire {
            Wire::Https(listener) => {
                self.serve_tls(stream, prefix, listener, conn, life, peer)
                    .await
            }
            Wire::Http if self.h2c => {
                let more = |b: &[u8]| b.len() < PREFACE.len() && PREFACE.starts_with(b);
                let Some(prefix) = self.read_first(&mut stream, prefix, &life, more).await else {
                    return;
                };
                let mode = if prefix.starts_with(PREFACE) {
                    Mode::Http2
                } else {
                    Mode::Http1
                };
                self.serve_plain(stream, prefix, conn, life, peer, mode)
                    .await
            }
            Wire::Redirect(port) => {
                let mode = Mode::Redirect(port);
                self.serve_plain(stream, prefix, conn, life, peer, mode)
                    .await
            }
            Wire::Http | Wire::Uwsgi => {
                self.serve_plain(stream, prefix, conn, life, peer, Mode::Http1)
                    .await
            }
        }
        drop(registered);
    }

    /// Serves a plain connection: files go out with zero copies.
    async fn serve_plain<S: RawSocket>(
        &self,
        stream: S,
        prefix: Bytes,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
        peer: Rc<str>,
        mode: Mode,
    ) {
        let (io, files) = FileSender::new(Rewind::new(stream, prefix));
        let io = Watch::new(io, life.clone(), self.write, peer);
        self.protocol.serve(io, Some(files), conn, life, mode).await;
    }

    /// Serves a connection of https listener `listener`: the handshake, within what is left
    /// of header-timeout (it is part of what comes before the first request), then the
    /// protocol ALPN chose, with no zero-copy queue (the bytes are encrypted on the way).
    async fn serve_tls<S: RawSocket>(
        &self,
        mut stream: S,
        prefix: Bytes,
        listener: u16,
        mut conn: ConnInfo,
        life: Rc<Lifecycle>,
        peer: Rc<str>,
    ) {
        let Some(tls) = &self.tls else {
            return;
        };
        let Some(prefix) = self
            .read_first(&mut stream, prefix, &life, |b| b.is_empty())
            .await
        else {
            return;
        };
        if prefix[0] != TLS_HANDSHAKE {
            self.not_tls(&mut stream, &prefix, &conn).await;
            return;
        }
        let handshake = tls::handshake(
            Rewind::new(stream, prefix),
            tls.sites(),
            listener,
            tls.export_cert(),
        );
        let (io, settled) = match self.before_request(&life, handshake).await {
            Some(Ok(done)) => done,
            Some(Err(why)) => {
                info!("closed the connection from {peer}: {why}");
                return;
            }
            None => {
                info!("closed the connection from {peer}: no TLS handshake within header-timeout");
                return;
            }
        };
        conn.scheme = "https";
        conn.extra_environ.push(("HTTPS".into(), "on".into()));
        conn.extra_environ.extend(settled.client);
        let mode = if settled.h2 { Mode::Http2 } else { Mode::Http1 };
        let io = Watch::new(io, life.clone(), self.write, peer);
        self.protocol.serve(io, None, conn, life, mode).await;
    }

    /// Runs `work` (what a client sends before its first request) within header-timeout and
    /// while the connection is not told to close (at the connection cap, or by the sweep);
    /// `None` when it did not finish in time.
    async fn before_request<F: Future>(&self, life: &Lifecycle, work: F) -> Option<F::Output> {
        let limited = tokio::time::timeout(self.header_timeout, work);
        tokio::pin!(limited);
        poll_fn(|cx| {
            if let Poll::Ready(done) = limited.as_mut().poll(cx) {
                return Poll::Ready(done.ok());
            }
            life.poll_order_above(Order::Drain, cx).map(|_| None)
        })
        .await
    }

    /// The first bytes of a connection, read until `more` says enough (`prefix`: what the
    /// preamble read past itself already). `None` when the client went or took too long.
    async fn read_first<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        prefix: Bytes,
        life: &Lifecycle,
        more: impl Fn(&[u8]) -> bool,
    ) -> Option<Bytes> {
        if !more(&prefix) {
            return Some(prefix);
        }
        let mut buf = BytesMut::with_capacity(4096);
        buf.extend_from_slice(&prefix);
        let read = async {
            while more(&buf) {
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
            Some(buf.freeze())
        };
        self.before_request(life, read).await.flatten()
    }

    /// A connection to an https listener that did not start with a TLS handshake: a plain
    /// HTTP request gets a plain 400 that says so (as nginx answers it); anything else is
    /// closed.
    async fn not_tls<S: Transport>(&self, stream: &mut S, first: &[u8], conn: &ConnInfo) {
        let peer = conn.describe();
        if first[0].is_ascii_uppercase() {
            info!("refused the connection from {peer}: plain HTTP to an https listener");
            self.refuse(
                stream,
                "this is an HTTPS port: the request was sent in plain HTTP; use https://",
            )
            .await;
        } else {
            info!("closed the connection from {peer}: it did not begin with a TLS handshake");
        }
    }

    /// A connection that ended in its preamble: logged, and answered when it was malformed.
    async fn ended_early<T: Transport>(
        &self,
        stream: &mut T,
        wire: Wire,
        conn: &ConnInfo,
        error: PreambleError,
    ) {
        let peer = conn.describe();
        let uwsgi = wire == Wire::Uwsgi;
        match error {
            PreambleError::Invalid(why) if uwsgi => {
                warn!("refused a uwsgi request from {peer}: {why}");
                self.refuse(stream, &why).await;
            }
            PreambleError::Invalid(why) => {
                warn!("refused the connection from {peer}: {why} (proxy-protocol is on)");
                self.refuse(stream, &why).await;
            }
            PreambleError::Gone(Some(why)) if uwsgi => {
                info!("closed the uwsgi connection from {peer}: {why}")
            }
            PreambleError::Gone(Some(why)) => info!("closed the connection from {peer}: {why}"),
            PreambleError::Gone(None) => {}
        }
    }

    async fn refuse<T: Transport>(&self, stream: &mut T, why: &str) {
        let _ = tokio::time::timeout(self.write.timeout, self.protocol.refuse(stream, why)).await;
    }
}
