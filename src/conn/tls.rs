//! The TLS transport: a connection's bytes through rustls. It is a [`Transport`] and never a
//! [`super::transport::RawSocket`]: what the protocol writes is encrypted on the way, so a
//! file cannot go to the socket as it is (no sendfile; file bodies are read into memory in
//! large blocks, see [`crate::http::file`]).
//!
//! The handshake ([`handshake`]) reads the ClientHello first, chooses the certificate by the
//! name the client asks for ([`crate::tls::Sites`]), then completes; what it settled (the
//! protocol chosen with ALPN, the client's certificate) goes to the protocol. The driver
//! bounds it with the connection's header-timeout: a handshake is part of what a client must
//! send before its first request.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::transport::Transport;
use crate::tls::{certs, Sites};

/// A connection's transport with TLS on.
pub(crate) struct Tls<S>(TlsStream<S>);

/// What a handshake settled.
pub(crate) struct Settled {
    /// The client chose HTTP/2 (ALPN `h2`).
    pub(crate) h2: bool,
    /// `HTTPS_DN` (and `HTTPS_CC`) when the client gave a certificate.
    pub(crate) client: Vec<(String, String)>,
}

/// Runs the server side of a TLS handshake over `io` for https listener `listener`. The
/// error says why, for the log.
pub(crate) async fn handshake<S: Transport>(
    io: S,
    sites: Rc<Sites>,
    listener: u16,
    export_cert: bool,
) -> Result<(Tls<S>, Settled), String> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
        .await
        .map_err(|e| describe(&e))?;
    let hello = start.client_hello();
    if crate::tls::acme::is_challenge(&hello) {
        return answer_challenge(start, &sites).await;
    }
    let config = match sites.choose(listener, hello.server_name()) {
        Ok(config) => config,
        Err(why) => {
            // Refused with an alert, so the client says why rather than "connection reset".
            let _ = start.into_stream(sites.refusal()).await;
            return Err(why);
        }
    };
    let stream = start.into_stream(config).await.map_err(|e| describe(&e))?;
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2");
    let client = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| certs::client_environ(der, export_cert))
        .unwrap_or_default();
    Ok((Tls(stream), Settled { h2, client }))
}

/// A TLS-ALPN-01 validation (RFC 8737): the handshake with the challenge certificate, then
/// the connection closes (the CA sends nothing more). Always an `Err`, the log's line.
async fn answer_challenge<S: Transport>(
    start: tokio_rustls::StartHandshake<S>,
    sites: &Sites,
) -> Result<(Tls<S>, Settled), String> {
    let name = start.client_hello().server_name().map(str::to_owned);
    let shown = name.as_deref().unwrap_or("no name");
    match sites.acme_challenge(name.as_deref()) {
        Ok(config) => {
            let mut stream = start.into_stream(config).await.map_err(|e| describe(&e))?;
            let _ = stream.shutdown().await;
            Err(format!(
                "answered the ACME TLS-ALPN-01 challenge for {shown}"
            ))
        }
        Err(why) => {
            let _ = start.into_stream(sites.refusal()).await;
            Err(why)
        }
    }
}

/// A handshake error as the log says it.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "it closed during the TLS handshake".into(),
        _ => format!("TLS handshake failed: {e}"),
    }
}

impl<S: Transport> AsyncRead for Tls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A write hands its bytes to rustls and sends what the socket takes; what it did not
        // take waits in rustls. hyper flushes, the own HTTP/1 path does not (a plain socket
        // has nothing to flush): the wait for the next request pushes the rest out, and the
        // socket becoming writable wakes this task to push more.
        if this.0.get_ref().1.wants_write() {
            if let Poll::Ready(Err(e)) = Pin::new(&mut this.0).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.0).poll_read(cx, buf)
    }
}

impl<S: Transport> AsyncWrite for Tls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl<S: Transport> Transport for Tls<S> {
    fn reset_on_close(&self) {
        self.0.get_ref().0.reset_on_close();
    }
}
