//! Zero-copy file bodies on plain sockets: the bytes of a file go from the page cache to
//! the socket with `sendfile(2)`, never through user memory (nginx's `sendfile on`).
//!
//! hyper writes every response itself, from the frames a body yields, so a file region cannot
//! simply be handed to it. Instead a file body on a connection with a [`FileSender`] queues
//! the region here and yields a *stand-in*: a slice of [`STAND_IN`], memory that is never
//! read and never anything else. hyper queues the stand-in like any frame (the connection
//! forces its vectored, queueing write strategy, so frames are never copied or flattened) and
//! later passes it back, whole or in part, to the connection's writes, which reach the
//! [`FileSender`] layer; it recognises the address and sends the region at the front of the
//! queue instead.
//!
//! Frames are written in the order they were yielded, so the queue's front is always the
//! region of the first stand-in a write sees; each write checks that the stand-in's offset
//! and length are exactly what remains of that region and fails the connection otherwise.
//! The stand-in's zeros can never reach a client.
//!
//! A [`FileSender`] can only be built over a [`RawSocket`], and the queue only comes with
//! one: a connection whose bytes are transformed on the way (TLS) has no queue, so its file
//! bodies are read into memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::transport::{RawSocket, Transport};

/// The largest region one frame stands in for.
pub(crate) const MAX_REGION: usize = 1024 * 1024;

/// What stand-ins point into. Zero-initialised static memory: it lives in .bss and, never
/// being read or written, never becomes resident.
static STAND_IN: [u8; MAX_REGION] = [0; MAX_REGION];

/// A stretch of a file waiting to be sent.
struct Region {
    file: Rc<File>,
    offset: u64,
    len: usize,
    sent: usize,
    /// sendfile is not supported for this file: copy through a buffer instead.
    copy: bool,
}

/// One connection's queue of regions, shared by its file bodies and its socket.
#[derive(Default)]
pub(crate) struct ZeroCopy {
    regions: RefCell<VecDeque<Region>>,
}

impl ZeroCopy {
    /// Queues `len` bytes of `file` from `offset` (at most [`MAX_REGION`]), and returns the
    /// stand-in frame for them.
    pub(crate) fn stand_in(&self, file: Rc<File>, offset: u64, len: usize) -> Bytes {
        let len = len.min(MAX_REGION);
        self.regions.borrow_mut().push_back(Region {
            file,
            offset,
            len,
            sent: 0,
            copy: false,
        });
        Bytes::from_static(&STAND_IN[..len])
    }

    /// Whether no region is waiting.
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.regions.borrow().is_empty()
    }

    /// Whether a buffer hyper asks to write is (part of) a stand-in.
    fn is_stand_in(buf: &[u8]) -> bool {
        let start = STAND_IN.as_ptr() as usize;
        let at = buf.as_ptr() as usize;
        !buf.is_empty() && at >= start && at < start + MAX_REGION
    }

    /// Sends what the socket takes of the region `buf` stands in for; returns the bytes sent
    /// (`WouldBlock` when the socket is full).
    fn send(&self, socket: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
        let mut regions = self.regions.borrow_mut();
        let Some(region) = regions.front_mut() else {
            return Err(mismatch("no file region is waiting"));
        };
        let at = buf.as_ptr() as usize - STAND_IN.as_ptr() as usize;
        if at != region.sent || buf.len() != region.len - region.sent {
            return Err(mismatch(
                "the write does not match the file region at the front",
            ));
        }
        let n = if region.copy {
            copy(socket, region)?
        } else {
            match sendfile(socket, region) {
                Err(e) if unsupported(&e) => {
                    region.copy = true;
                    copy(socket, region)?
                }
                other => other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was being sent",
            ));
        }
        region.sent += n;
        if region.sent == region.len {
            regions.pop_front();
        }
        Ok(n)
    }
}

/// A write that does not match the queue: a bug, so it is logged, and the connection fails
/// rather than send anything else.
fn mismatch(why: &str) -> io::Error {
    crate::error!("zero-copy send: {why}; closing the connection");
    io::Error::other(format!("zero-copy send: {why}"))
}

/// Errors that mean "this file cannot be spliced", not "the connection failed".
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

fn sendfile(socket: BorrowedFd<'_>, region: &Region) -> io::Result<usize> {
    let mut offset = (region.offset + region.sent as u64) as libc::off_t;
    // SAFETY: both fds are open for the duration of the call (the socket is borrowed, the
    // file is kept by the region), and `offset` is a valid, exclusively borrowed off_t.
    let n = unsafe {
        libc::sendfile(
            socket.as_raw_fd(),
            region.file.as_raw_fd(),
            &mut offset,
            region.len - region.sent,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The fallback: read a block of the region and send what the socket takes of it (the rest is
/// read again next time).
fn copy(socket: BorrowedFd<'_>, region: &Region) -> io::Result<usize> {
    let want = (region.len - region.sent).min(64 * 1024);
    let mut buf = vec![0u8; want];
    // SAFETY: pread writes at most `want` bytes into `buf`, which is `want` bytes long.
    let got = unsafe {
        libc::pread(
            region.file.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            want,
            (region.offset + region.sent as u64) as libc::off_t,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    if got == 0 {
        return Ok(0);
    }
    send_flags(socket, &[io::IoSlice::new(&buf[..got as usize])], 0)
}

/// `sendmsg` of `bufs` with `flags` (plus MSG_NOSIGNAL).
fn send_flags(
    socket: BorrowedFd<'_>,
    bufs: &[io::IoSlice<'_>],
    flags: libc::c_int,
) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix; the kernel only reads through the pointer.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
    // SAFETY: msg points at `bufs`, which outlive the call; the socket fd is borrowed.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, flags | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The layer that sends file regions: every write is looked through for stand-ins (a few
/// pointer comparisons), and a stand-in's region goes out with sendfile.
pub(crate) struct FileSender<S> {
    inner: S,
    queue: Rc<ZeroCopy>,
}

impl<S: RawSocket> FileSender<S> {
    /// The layer, and the queue the connection's file bodies put their regions in. hyper must
    /// then queue frames as they are, never flatten them (`writev(true)`).
    pub(crate) fn new(inner: S) -> (Self, Rc<ZeroCopy>) {
        let queue = Rc::new(ZeroCopy::default());
        (
            FileSender {
                inner,
                queue: queue.clone(),
            },
            queue,
        )
    }

    /// Writes `bufs`, sending any stand-in for a file region with sendfile.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Every write is looked through, not only those made while a region waits: a
        // stand-in must never go out as it is.
        let inner = &self.inner;
        let fd = inner.as_fd();
        match bufs.iter().position(|b| ZeroCopy::is_stand_in(b)) {
            None if bufs.len() > 1 && bufs.iter().map(|b| b.len()).sum::<usize>() <= COALESCE => {
                // Not zeroed first: only the bytes copied in are read (zeroing the 2 KiB
                // cost about 126 instructions a response, by callgrind).
                let mut joined = [MaybeUninit::<u8>::uninit(); COALESCE];
                let mut n = 0;
                for b in bufs {
                    let to = &mut joined[n..n + b.len()];
                    // SAFETY: `to` is `b.len()` bytes of `joined` (bounds-checked just above),
                    // which no `IoSlice` can overlap.
                    unsafe {
                        std::ptr::copy_nonoverlapping(b.as_ptr(), to.as_mut_ptr().cast(), b.len())
                    };
                    n += b.len();
                }
                // SAFETY: the loop above wrote the first `n` bytes, and `n <= COALESCE`.
                let joined = unsafe { std::slice::from_raw_parts(joined.as_ptr().cast::<u8>(), n) };
                Pin::new(&mut self.inner).poll_write(cx, joined)
            }
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some(0) => poll_raw(inner, cx, || self.queue.send(fd, &bufs[0])),
            Some(k) => {
                // What precedes the file (the head), held back to go out with its first bytes.
                let before = &bufs[..k];
                let want: usize = before.iter().map(|b| b.len()).sum();
                let n = ready!(poll_raw(inner, cx, || send_flags(
                    fd,
                    before,
                    libc::MSG_MORE
                )))?;
                if n < want {
                    return Poll::Ready(Ok(n));
                }
                // The file right away if the socket takes it; a failure shows on the next write.
                match inner.try_write_with(|| self.queue.send(fd, &bufs[k])) {
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

impl<S: RawSocket> AsyncRead for FileSender<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: RawSocket> AsyncWrite for FileSender<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, bufs)
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

impl<S: RawSocket> Transport for FileSender<S> {
    fn reset_on_close(&self) {
        self.inner.reset_on_close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn file(content: &[u8]) -> Rc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        Rc::new(f)
    }

    #[test]
    fn regions_go_out_in_order_and_in_parts() {
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let f = file(&content);
        let zc = ZeroCopy::default();
        let a = zc.stand_in(f.clone(), 10, 100);
        let b = zc.stand_in(f, 1000, 3000);
        assert!(ZeroCopy::is_stand_in(&a) && ZeroCopy::is_stand_in(&b[5..]));
        assert!(!ZeroCopy::is_stand_in(b"other bytes"));
        let (tx, mut rx) = UnixStream::pair().unwrap();
        assert_eq!(zc.send(tx.as_fd(), &a).unwrap(), 100);
        // hyper passes what remains after a partial write.
        let mut sent = 0;
        while sent < 3000 {
            sent += zc.send(tx.as_fd(), &b[sent..]).unwrap();
        }
        assert!(zc.is_idle());
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..100], &content[10..110]);
        assert_eq!(&got[100..], &content[1000..4000]);
    }

    #[test]
    fn a_write_that_does_not_match_fails_and_sends_nothing() {
        let f = file(&[7u8; 100]);
        let zc = ZeroCopy::default();
        let a = zc.stand_in(f, 0, 100);
        let (tx, _rx) = UnixStream::pair().unwrap();
        assert!(zc.send(tx.as_fd(), &a[..50]).is_err());
        assert!(zc.send(tx.as_fd(), &a[1..]).is_err());
        let empty = ZeroCopy::default();
        assert!(empty.send(tx.as_fd(), &a).is_err());
    }

    #[test]
    fn a_file_that_shrinks_is_an_error() {
        let f = file(b"short");
        let zc = ZeroCopy::default();
        let a = zc.stand_in(f, 0, 100);
        let (tx, _rx) = UnixStream::pair().unwrap();
        assert_eq!(zc.send(tx.as_fd(), &a).unwrap(), 5);
        assert!(zc.send(tx.as_fd(), &a[5..]).is_err());
    }

    /// Small pieces go out copied together (the buffer is not zeroed first: what is sent
    /// must be exactly the pieces, whatever the stack held), larger lists as they are.
    #[test]
    fn pieces_go_out_exactly_joined_or_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
            let (mut sender, _zc) = FileSender::new(a);
            let big: Vec<u8> = (0..COALESCE as u32).map(|i| (i % 251) as u8).collect();
            let lists: [Vec<&[u8]>; 4] = [
                vec![b"HTTP/1.1 200 OK\r\n\r\n", b"", b"hello"],
                vec![&big[..1000], &big[1000..]],
                vec![&big[..1], &big[..]],
                vec![b"x"],
            ];
            let mut expected = Vec::new();
            for list in &lists {
                let mut want: Vec<u8> = list.concat();
                let mut sent = 0;
                while sent < want.len() {
                    // What a partial write left, as the callers pass it.
                    let rest = &want[sent..];
                    let slices = [io::IoSlice::new(rest)];
                    let slices: &[io::IoSlice<'_>] = if sent == 0 {
                        &list.iter().map(|p| io::IoSlice::new(p)).collect::<Vec<_>>()
                    } else {
                        &slices
                    };
                    sent += sender.write_vectored(slices).await.unwrap();
                }
                expected.append(&mut want);
            }
            drop(sender);
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, expected);
        });
    }
}
