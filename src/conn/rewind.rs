//! Bytes read before the protocol starts, given back: a preamble (a PROXY header, a uwsgi
//! packet) is read in blocks, and what came after it belongs to the layer above. This layer
//! sits directly on the socket, below TLS: the bytes after a PROXY header are the start of
//! the TLS handshake.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::transport::{RawSocket, Transport};

/// A transport whose first reads return `prefix`.
pub(crate) struct Rewind<S> {
    inner: S,
    prefix: Bytes,
}

impl<S> Rewind<S> {
    pub(crate) fn new(inner: S, prefix: Bytes) -> Self {
        Rewind { inner, prefix }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
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
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
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
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Transport> Transport for Rewind<S> {
    fn reset_on_close(&self) {
        self.inner.reset_on_close();
    }
}

/// Writes go straight to the socket: the rewound bytes are on the read side only.
impl<S: RawSocket> AsFd for Rewind<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<S: RawSocket> RawSocket for Rewind<S> {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_writable(cx)
    }
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.inner.try_write_with(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_prefix_comes_first_then_the_stream() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = tokio::io::duplex(64);
            let mut r = Rewind::new(a, Bytes::from_static(b"hello "));
            b.write_all(b"world").await.unwrap();
            drop(b);
            let mut got = String::new();
            r.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, "hello world");
        });
    }
}
