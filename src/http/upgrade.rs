//! A connection handed over after `101 Switching Protocols` (a WebSocket): the application
//! bridge that accepted the upgrade leaves a session in the connection's [`Handoff`]; once
//! hyper has written the 101 and let go of the connection, the HTTP/1 server takes the
//! transport back and runs the session on it, as part of the connection's task (so the
//! connection stays counted, watched and told what the worker orders).
//!
//! hyper's own upgrade API needs a `Send` transport, which a worker's connections are not
//! (they live on one thread, with `Rc` state); `poll_without_shutdown` and `into_parts` give
//! the transport back instead.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::future::LocalFuture;
use crate::conn::lifecycle::Lifecycle;
use crate::conn::transport::Transport;

/// What a session runs over: a connection's transport, with its watch (activity marks,
/// the write deadline).
pub(crate) trait UpgradedIo: AsyncRead + AsyncWrite + Unpin {}

impl<T: Transport> UpgradedIo for T {}

/// An HTTP/2 stream handed over by hyper (RFC 8441); the connection's watch is below it.
impl UpgradedIo for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

/// The connection after the 101.
pub(crate) struct Upgraded {
    pub(crate) io: Box<dyn UpgradedIo>,
    /// Bytes the client sent after its request head, read already.
    pub(crate) prefix: Bytes,
    /// The connection's lifecycle: the session counts as a request in flight, and hears the
    /// worker's orders (a drain closes a WebSocket with 1001).
    pub(crate) life: Rc<Lifecycle>,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A session to run on the connection once it is handed over.
pub(crate) type Session = Box<dyn FnOnce(Upgraded) -> LocalFuture<()>>;

/// Where a bridge leaves the session for an upgrade it accepted; one per HTTP/1 connection.
#[derive(Clone, Default)]
pub(crate) struct Handoff(Rc<RefCell<Option<Session>>>);

impl Handoff {
    /// Leaves the session to run once the 101 is out.
    pub(crate) fn set(&self, session: Session) {
        *self.0.borrow_mut() = Some(session);
    }

    /// The session left, if any.
    pub(crate) fn take(&self) -> Option<Session> {
        self.0.borrow_mut().take()
    }
}
