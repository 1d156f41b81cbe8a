//! The socket as hyper and the connection's own HTTP/1 path see it: reads pass through the
//! request-framing tracker (which neutralises smuggling attempts), writes that stay blocked
//! longer than `write-timeout` fail (a client that stopped reading cannot hold a response
//! forever), and every read or write marks the connection active (the least recently active
//! idle one is closed first when a worker is at its connection cap). When hyper closes a
//! connection in the middle of a request body it did not read (the application answered without
//! reading it, or a 413), the close lingers: the write side is shut and the rest of the body
//! read and discarded, so the peer reads the answer instead of a reset (nginx's lingering
//! close; behind nginx's `uwsgi_pass` with request buffering off, a reset is a 502). With
//! zero-copy on, file bodies go out with sendfile (see [`super::zerocopy`]).

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::time::Sleep;

use super::framing::{Found, Framing};
use super::zerocopy::{self, ZeroCopy};
use crate::clock::coarse_ms;
use crate::warn;
use crate::worker::connections::{waiting_since, Activity, Waiting, BUSY};

/// A socket the connection can also write to directly (sendmsg, sendfile), with tokio's
/// readiness tracking.
pub trait RawSocket: AsyncRead + AsyncWrite + AsFd + Unpin {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Runs a non-blocking write; a `WouldBlock` from it clears the write readiness.
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! raw_socket {
    ($t:ty) => {
        impl RawSocket for $t {
            fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_write_ready(cx)
            }
            fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, f)
            }
        }
    };
}
raw_socket!(tokio::net::TcpStream);
raw_socket!(tokio::net::UnixStream);

/// A connection's socket with the guards.
pub struct GuardedIo<S: AsFd> {
    inner: S,
    framing: Framing,
    write_timeout: Duration,
    /// Armed while a write is blocked; reused between stalls.
    write_deadline: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
    activity: Activity,
    /// The header-timeout mark: once a response is handed over, it counts from the last
    /// byte written, so a response read more slowly than header-timeout is not cut off.
    waiting: Waiting,
    /// Who is on the other end, for the log line about a refused request.
    peer: String,
    /// Bytes read before hyper took over (after a PROXY header), served first.
    prefix: bytes::Bytes,
    /// Bytes read and scanned already, given back unused (by the connection's own HTTP/1
    /// path when it hands over to hyper): served before anything else, not scanned again.
    replay: bytes::Bytes,
    closing: Closing,
    /// File regions waiting to be sent with sendfile, when zero-copy is on.
    zero_copy: Option<Rc<ZeroCopy>>,
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

impl<S: AsFd> GuardedIo<S> {
    pub fn new(
        inner: S,
        prefix: bytes::Bytes,
        write_timeout: Duration,
        activity: Activity,
        waiting: Waiting,
        peer: String,
    ) -> Self {
        GuardedIo {
            inner,
            framing: Framing::new(),
            write_timeout,
            write_deadline: None,
            write_stalled: false,
            activity,
            waiting,
            peer,
            prefix,
            replay: bytes::Bytes::new(),
            closing: Closing::Open,
            zero_copy: None,
        }
    }

    /// Turns zero-copy on: file bodies given the returned queue go out with sendfile. hyper
    /// must then queue frames as they are, never flatten them (`writev(true)`).
    pub fn zero_copy(&mut self) -> Rc<ZeroCopy> {
        self.zero_copy.get_or_insert_with(Rc::default).clone()
    }

    /// Gives back bytes read through this socket and not used: the next reads return them
    /// first.
    pub fn unread(&mut self, bytes: bytes::Bytes) {
        debug_assert!(self.replay.is_empty());
        self.replay = bytes;
    }

    /// A write could not proceed: fail it once the client has taken nothing for too long.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let deadline = tokio::time::Instant::now() + self.write_timeout;
        if !self.write_stalled {
            self.write_stalled = true;
            match &mut self.write_deadline {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.write_deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(sleep) = &mut self.write_deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                // Abort rather than close: a close would leave the kernel trickling megabytes
                // of queued response to a client that does not read.
                let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
                warn!(
                    "dropped the connection to {}: it took nothing of the response for {}s (write-timeout)",
                    self.peer,
                    self.write_timeout.as_secs()
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing of the response for write-timeout",
                )));
            }
        }
        Poll::Pending
    }

    fn progressed(&mut self) {
        self.write_stalled = false;
        let now = coarse_ms();
        self.activity.set(now);
        if self.waiting.get() != BUSY {
            self.waiting.set(waiting_since(now));
        }
    }
}

impl<S: RawSocket> AsyncRead for GuardedIo<S> {
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
        let ready = if this.prefix.is_empty() {
            Pin::new(&mut this.inner).poll_read(cx, buf)
        } else {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            Poll::Ready(Ok(()))
        };
        if let Poll::Ready(Ok(())) = &ready {
            let fresh = &mut buf.filled_mut()[before..];
            if !fresh.is_empty() {
                this.activity.set(coarse_ms());
                if this.framing.scan(fresh) == Found::Smuggling {
                    warn!(
                        "refused a request from {} with both Content-Length and Transfer-Encoding \
                         (a request smuggling attempt): 400",
                        this.peer
                    );
                }
            }
        }
        ready
    }
}

impl<S: RawSocket> GuardedIo<S> {
    /// Writes `bufs`, sending any stand-in for a file region with sendfile.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Every write is looked through (a few pointer comparisons), not only those made while
        // a region waits: a stand-in must never go out as it is.
        let Some(zero_copy) = self.zero_copy.as_deref() else {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        };
        let inner = &self.inner;
        let fd = inner.as_fd();
        match bufs.iter().position(|b| ZeroCopy::is_stand_in(b)) {
            None if bufs.len() > 1 && bufs.iter().map(|b| b.len()).sum::<usize>() <= COALESCE => {
                let mut joined = [0u8; COALESCE];
                let mut n = 0;
                for b in bufs {
                    joined[n..n + b.len()].copy_from_slice(b);
                    n += b.len();
                }
                Pin::new(&mut self.inner).poll_write(cx, &joined[..n])
            }
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some(0) => poll_raw(inner, cx, || zero_copy.send(fd, &bufs[0])),
            Some(k) => {
                // What precedes the file (the head), held back to go out with its first bytes.
                let before = &bufs[..k];
                let want: usize = before.iter().map(|b| b.len()).sum();
                let n = ready!(poll_raw(inner, cx, || zerocopy::send_flags(
                    fd,
                    before,
                    libc::MSG_MORE
                )))?;
                if n < want {
                    return Poll::Ready(Ok(n));
                }
                // The file right away if the socket takes it; a failure shows on the next write.
                match inner.try_write_with(|| zero_copy.send(fd, &bufs[k])) {
                    Ok(m) => Poll::Ready(Ok(n + m)),
                    Err(_) => Poll::Ready(Ok(n)),
                }
            }
        }
    }
}

/// Pieces that add up to no more than this go out in one plain write, copied together.
const COALESCE: usize = 2048;

/// Runs a direct write once the socket is writable, until it does not block.
fn poll_raw<S: RawSocket>(
    socket: &S,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(socket.poll_writable(cx))?;
        match socket.try_write_with(&mut write) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
}

impl<S: RawSocket> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_send(cx, bufs) {
            Poll::Pending => this.stalled(cx),
            ready => {
                this.progressed();
                ready
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
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    // Between requests, or after a write-timeout abort: nothing to wait for.
                    let unread = !this.framing.at_boundary() && !this.write_stalled;
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
