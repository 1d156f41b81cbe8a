//! The layer that watches a connection's traffic for its [`Lifecycle`]: every read and write
//! marks the connection active (the least recently active idle one is closed first when a
//! worker is at its connection cap), writes mark the end of a response's flushing (the wait
//! for the next request head counts from there), and a write that stays blocked longer than
//! `write-timeout` fails (a client that stopped reading cannot hold a response forever), as
//! does a client that has fallen behind and takes the response slower than `write-min-rate`
//! on average once `write-timeout` has passed (one that reads a byte just often enough to
//! dodge `write-timeout` holds its buffers too).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::lifecycle::Lifecycle;
use super::transport::Transport;
use crate::warn;

/// How slow a client may be to take a response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteRules {
    /// The longest a write may stay blocked (`write-timeout`).
    pub(crate) timeout: Duration,
    /// Bytes a second, on average, once behind and past `timeout` (`write-min-rate`; 0: off).
    pub(crate) min_rate: u64,
}

/// A transport with the watch on.
pub(crate) struct Watch<T> {
    inner: T,
    life: Rc<Lifecycle>,
    rules: WriteRules,
    /// Armed while a write is blocked; reused between stalls.
    write_deadline: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
    /// Since when the client has been behind (a write blocked and it has not caught up), and
    /// what it has taken since; `None` while it keeps up, which costs nothing per write.
    behind: Option<(Instant, u64)>,
    /// Who is on the other end, for the log line about a client that stopped reading.
    peer: Rc<str>,
}

impl<T: Transport> Watch<T> {
    pub(crate) fn new(inner: T, life: Rc<Lifecycle>, rules: WriteRules, peer: Rc<str>) -> Self {
        Watch {
            inner,
            life,
            rules,
            write_deadline: None,
            write_stalled: false,
            behind: None,
            peer,
        }
    }

    /// Whether the last write could not proceed (the client is not reading).
    pub(crate) fn write_stalled(&self) -> bool {
        self.write_stalled
    }

    /// Who is on the other end, as log lines name it.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// A write could not proceed: fail it once the client has taken nothing for too long.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.write_stalled {
            self.write_stalled = true;
            let now = Instant::now();
            if self.behind.is_none() && self.rules.min_rate > 0 {
                self.behind = Some((now, 0));
            }
            let deadline = now + self.rules.timeout;
            match &mut self.write_deadline {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.write_deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(sleep) = &mut self.write_deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                // Abort rather than close: a close would leave the kernel trickling megabytes
                // of queued response to a client that does not read.
                self.inner.reset_on_close();
                warn!(
                    "dropped the connection to {}: it took nothing of the response for {}s (write-timeout)",
                    self.peer,
                    self.rules.timeout.as_secs()
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing of the response for write-timeout",
                )));
            }
        }
        Poll::Pending
    }

    /// A write of `n` bytes went through. A client that took it at once has caught up; one
    /// that is behind must keep the minimum rate.
    fn wrote(&mut self, n: usize) -> io::Result<()> {
        crate::metrics::record::sent(n);
        let was_stalled = std::mem::replace(&mut self.write_stalled, false);
        self.life.wrote();
        let Some((since, taken)) = &mut self.behind else {
            return Ok(());
        };
        if !was_stalled {
            self.behind = None;
            return Ok(());
        }
        *taken += n as u64;
        let elapsed = since.elapsed();
        if elapsed <= self.rules.timeout {
            return Ok(());
        }
        let due = self.rules.min_rate as f64 * elapsed.as_secs_f64();
        if (*taken as f64) >= due {
            return Ok(());
        }
        self.inner.reset_on_close();
        warn!(
            "dropped the connection to {}: it took {} bytes of the response in {}s, less than {} \
             bytes a second (write-min-rate)",
            self.peer,
            taken,
            elapsed.as_secs(),
            self.rules.min_rate
        );
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took the response slower than write-min-rate",
        ))
    }
}

impl<T: Transport> AsyncRead for Watch<T> {
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
        let before = buf.filled().len();
        let ready = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.life.read();
            crate::metrics::record::received(buf.filled().len() - before);
        }
        ready
    }
}

impl<T: Transport> AsyncWrite for Watch<T> {
    #[inline(always)]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    #[inline(always)]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.stalled(cx),
            Poll::Ready(Ok(n)) => Poll::Ready(this.wrote(n).map(|()| n)),
            failed => {
                this.write_stalled = false;
                this.life.wrote();
                failed
            }
        }
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

impl<T: Transport> Transport for Watch<T> {
    fn reset_on_close(&self) {
        self.inner.reset_on_close();
    }
}
