//! HTTP/1's layer over a connection's transport (see [`crate::conn`] for the layers below):
//! - reads pass through the request-framing tracker ([`super::framing`]), which neutralises
//!   smuggling attempts before hyper sees them;
//! - bytes the connection's own HTTP/1 path read and did not use are given back
//!   ([`Guard::unread`]) when it hands the connection to hyper;
//! - when a connection closes in the middle of a request body nobody read (the application
//!   answered without reading it, or a 413), the close lingers: the write side is shut and
//!   the rest of the body read and discarded, so the peer reads the answer instead of a reset
//!   (nginx's lingering close; behind nginx's `uwsgi_pass` with request buffering off, a
//!   reset is a 502).
//!
//! It sits above TLS: it sees the plaintext.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::framing::{Found, Framing};
use crate::conn::transport::Transport;
use crate::conn::watch::Watch;
use crate::warn;

/// A connection's transport with HTTP/1's guards.
pub(crate) struct Guard<T> {
    inner: Watch<T>,
    framing: Framing,
    /// Bytes read and scanned already, given back unused (by the connection's own HTTP/1
    /// path when it hands over to hyper): served before anything else, not scanned again.
    replay: Bytes,
    closing: Closing,
}

/// How long a close lingers at most, and how much it reads and discards.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: u64 = 64 * 1024 * 1024;

/// Where a close is.
enum Closing {
    Open,
    /// The write side is shut; reading what the peer still sends until it closes.
    Lingering {
        deadline: Pin<Box<Sleep>>,
        discarded: u64,
    },
    Closed,
}

impl<T: Transport> Guard<T> {
    pub(crate) fn new(inner: Watch<T>) -> Self {
        Guard {
            inner,
            framing: Framing::new(),
            replay: Bytes::new(),
            closing: Closing::Open,
        }
    }

    /// The transport after a protocol upgrade (the framing of HTTP/1 requests no longer
    /// applies), and the bytes read through this layer and not used.
    pub(crate) fn into_upgraded(self) -> (Watch<T>, Bytes) {
        (self.inner, self.replay)
    }

    /// Gives back bytes read through this layer and not used: the next reads return them
    /// first.
    pub(crate) fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.replay.is_empty());
        self.replay = bytes;
    }
}

impl<T: Transport> AsyncRead for Guard<T> {
    // Inlined into the layer above: a connection's reads and writes pass through each of the
    // thin layers (Rewind, Watch, Guard), which LTO otherwise left as a call each (about 80
    // instructions a request in bench/callgrind.py).
    #[inline(always)]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let ready = Pin::new(&mut this.inner).poll_read(cx, buf);
        let fresh = &mut buf.filled_mut()[before..];
        if !fresh.is_empty() {
            let found = this.framing.scan(fresh);
            if found != Found::Nothing {
                warn!(
                    "refused a request from {} with {}: 400",
                    this.inner.peer(),
                    found.describe()
                );
            }
        }
        ready
    }
}

impl<T: Transport> AsyncWrite for Guard<T> {
    #[inline(always)]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    #[inline(always)]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    // Between requests, or after a write-timeout abort: nothing to wait for.
                    let unread = !this.framing.at_boundary() && !this.inner.write_stalled();
                    this.closing = if unread {
                        Closing::Lingering {
                            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                            discarded: 0,
                        }
                    } else {
                        Closing::Closed
                    };
                }
                Closing::Lingering {
                    deadline,
                    discarded,
                } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 16 * 1024];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *discarded += buf.filled().len() as u64;
                            if *discarded > LINGER_BYTES {
                                this.closing = Closing::Closed;
                            }
                        }
                        // The peer closed (or failed): done.
                        Poll::Ready(_) => this.closing = Closing::Closed,
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
