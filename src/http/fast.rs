//! The connection's own HTTP/1 path, ahead of hyper. Most requests a Python site gets are a
//! GET or HEAD without a body, or a small form post or JSON call whose body comes with its
//! head; this path reads them, calls the service and writes the response itself, with a few
//! hundred instructions where hyper's general machinery (its dispatcher, header map
//! re-encoding, write buffer) takes several thousand. The first head it
//! does not take ([`h1::parse`] says which), or a half-read head when the client closes, goes
//! to hyper with every byte read so far, and hyper serves the connection from then on.
//!
//! The wire format is in [`super::h1`]; this file is the socket part: reading heads (and the
//! connection's orders while it waits), writing the response, closing.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use http_body::Body as _;
use hyper::ext::ReasonPhrase;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::guard::Guard;
use super::h1::{self, Asked, BodyFraming, BodySize, Parsed};
use super::service::{HttpService, Now, Sent};
use crate::config::Limits;
use crate::conn::lifecycle::{Lifecycle, Order};
use crate::conn::transport::Transport;

/// How a connection left this path.
pub(crate) enum Exit {
    /// It is over (closed, failed, or told to go).
    Closed,
    /// hyper serves the rest: the bytes read and not yet used are back in the socket's
    /// read side.
    ToHyper,
}

/// The read buffer's size, and the least room left before a read.
const READ_BUF: usize = 8 * 1024;
const READ_ROOM: usize = 1024;

/// The most pieces (head, frames, chunk lines) one `writev` is given.
const MAX_PIECES: usize = 64;
/// How much of a streamed body is gathered before it is written.
const GATHER_BYTES: usize = 256 * 1024;

/// Serves requests on `io` while they are ones this path takes.
pub(crate) async fn serve<T: Transport>(
    io: &mut Guard<T>,
    service: &HttpService,
    limits: &Limits,
    life: &Lifecycle,
) -> Exit {
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut out = BytesMut::new();
    let mut pieces = VecDeque::with_capacity(4);
    // The read buffer was grown past READ_BUF for a request with a body.
    let mut grown = false;
    loop {
        if grown && buf.is_empty() {
            // Back to the usual size once that request is done, so an idle connection does
            // not keep the larger buffer.
            buf = BytesMut::with_capacity(READ_BUF);
            grown = false;
        }
        let (request, keep_alive) = loop {
            match h1::parse(&mut buf, limits) {
                Parsed::Simple {
                    request,
                    keep_alive,
                    ..
                } => break (request, keep_alive),
                Parsed::Other => return to_hyper(io, buf),
                Parsed::Partial => {}
                Parsed::NeedBody(total) => {
                    // The body this path takes came with its head: it is read if the socket
                    // has it now. One that is still on its way is hyper's, whose body reads
                    // keep their pace (a wait here would count against header-timeout).
                    if buf.capacity() < total {
                        buf.reserve(total - buf.len());
                        grown = true;
                    }
                    while buf.len() < total {
                        match poll_fn(|cx| Poll::Ready(poll_more(io, cx, &mut buf, life))).await {
                            Poll::Ready(Ok(Some(n))) if n > 0 => {}
                            Poll::Ready(Err(_)) => return Exit::Closed,
                            Poll::Ready(Ok(None)) if life.order() == Order::Drop => {
                                return Exit::Closed
                            }
                            // Not here yet, the client's end, or told to close: hyper's.
                            _ => return to_hyper(io, buf),
                        }
                    }
                    continue;
                }
            }
            match poll_fn(|cx| poll_more(io, cx, &mut buf, life)).await {
                Ok(Some(0)) if buf.is_empty() => return Exit::Closed,
                // A head cut short: hyper says what it says about it.
                Ok(Some(0)) => return to_hyper(io, buf),
                Ok(Some(_)) => {}
                // Told to close while idle, or to drop: go. A close with half a head read
                // is hyper's to finish, as it would have been.
                Ok(None) if buf.is_empty() || life.order() == Order::Drop => return Exit::Closed,
                Ok(None) => return to_hyper(io, buf),
                Err(_) => return Exit::Closed,
            }
        };
        let asked = Asked {
            version: request.version(),
            head: request.method() == Method::HEAD,
            keep_alive,
        };
        let response = match service.respond_now(request) {
            Now::Ready(response) => response,
            Now::Later(later) => {
                let Ok(response) = later.await;
                response
            }
        };
        // Evicted, draining or closing while the app ran: this response is the last.
        let asked = Asked {
            keep_alive: asked.keep_alive && life.order() == Order::Serve,
            ..asked
        };
        match respond(io, response, asked, &mut out, &mut pieces).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.shutdown().await;
                return Exit::Closed;
            }
            Err(_) => return Exit::Closed,
        }
    }
}

fn to_hyper<T: Transport>(io: &mut Guard<T>, buf: BytesMut) -> Exit {
    io.unread(buf.freeze());
    Exit::ToHyper
}

/// Reads more of the stream into `buf`: the bytes read (0 at its end), or `None` when the
/// connection has been told to close or drop (a drain leaves an idle connection open: its
/// next response says `Connection: close`). Inlined into both of its callers, as it was
/// into its one caller before a small body's read was the second: 177 instructions a request
/// (callgrind).
#[inline(always)]
fn poll_more<T: Transport>(
    io: &mut Guard<T>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    life: &Lifecycle,
) -> Poll<io::Result<Option<usize>>> {
    if life.poll_order_above(Order::Drain, cx).is_ready() {
        return Poll::Ready(Ok(None));
    }
    if buf.capacity() - buf.len() < READ_ROOM {
        buf.reserve(READ_BUF);
    }
    let spare = buf.spare_capacity_mut();
    let mut read = ReadBuf::uninit(spare);
    ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
    let n = read.filled().len();
    // SAFETY: poll_read initialised the first `n` bytes of the spare capacity (ReadBuf only
    // counts bytes as filled once written).
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(Some(n)))
}

/// Writes one response; whether the connection stays open after it. An error means the
/// connection cannot go on (the client went, or the body failed part way).
async fn respond<T: Transport>(
    io: &mut Guard<T>,
    response: http::Response<Sent>,
    asked: Asked,
    out: &mut BytesMut,
    pieces: &mut VecDeque<Bytes>,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let size = if body.is_end_stream() {
        BodySize::None
    } else {
        match body.size_hint().exact() {
            Some(n) => BodySize::Known(n),
            None => BodySize::Unknown,
        }
    };
    let encoded = h1::encode_head(
        out,
        parts.status,
        parts.extensions.get::<ReasonPhrase>(),
        &parts.headers,
        size,
        asked,
    )
    .map_err(|_| broken("the response's Content-Length is not a number"))?;
    pieces.push_back(out.split().freeze());
    let mut remaining = match encoded.framing {
        BodyFraming::Length(0) => {
            send(io, pieces).await?;
            return Ok(!encoded.last);
        }
        BodyFraming::Length(n) => Some(n),
        BodyFraming::Chunked | BodyFraming::Close => None,
    };
    let chunked = encoded.framing == BodyFraming::Chunked;
    loop {
        // Gather what the body has ready, then write it: one writev for a whole response
        // whose body is ready at once, as hyper does.
        let mut gathered = 0;
        let mut end = false;
        while pieces.len() + 3 <= MAX_PIECES && gathered < GATHER_BYTES {
            let frame = if pieces.is_empty() {
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            } else {
                match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => break,
                }
            };
            let mut data = match frame {
                None => {
                    end = true;
                    break;
                }
                Some(Err(e)) => {
                    send(io, pieces).await?;
                    return Err(broken(&e.to_string()));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue, // trailers, empty frames: nothing to send
                },
            };
            if let Some(left) = &mut remaining {
                if data.len() as u64 > *left {
                    data.truncate(*left as usize);
                }
                *left -= data.len() as u64;
            }
            gathered += data.len();
            if chunked {
                pieces.push_back(h1::chunk_size_line(data.len()));
                pieces.push_back(data);
                pieces.push_back(Bytes::from_static(b"\r\n"));
            } else {
                pieces.push_back(data);
            }
            if remaining == Some(0) {
                end = true;
                break;
            }
        }
        if end {
            if chunked {
                pieces.push_back(Bytes::from_static(b"0\r\n\r\n"));
            }
            send(io, pieces).await?;
            drop(body);
            if remaining.is_some_and(|left| left > 0) {
                // Shorter than its Content-Length: the client can only tell by the close.
                return Err(broken("the body ended before its Content-Length"));
            }
            return Ok(!encoded.last);
        }
        send(io, pieces).await?;
    }
}

fn broken(why: &str) -> io::Error {
    io::Error::other(why.to_string())
}

/// Writes every piece, in order, with as few writes as the socket allows.
async fn send<T: Transport>(io: &mut Guard<T>, pieces: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !pieces.is_empty() {
        let n = poll_fn(|cx| poll_send(io, cx, pieces)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n;
        while n > 0 {
            let Some(front) = pieces.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                pieces.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}

fn poll_send<T: Transport>(
    io: &mut Guard<T>,
    cx: &mut Context<'_>,
    pieces: &VecDeque<Bytes>,
) -> Poll<io::Result<usize>> {
    // A head and a body (the usual response) need a short list, set up in a few stores.
    if pieces.len() <= 4 {
        let mut slices = [io::IoSlice::new(&[]); 4];
        return poll_slices(io, cx, pieces, &mut slices);
    }
    let mut slices = [io::IoSlice::new(&[]); MAX_PIECES];
    poll_slices(io, cx, pieces, &mut slices)
}

// Inlined into both of poll_send's list sizes: 15 instructions less a response (callgrind).
#[inline(always)]
fn poll_slices<'a, T: Transport>(
    io: &mut Guard<T>,
    cx: &mut Context<'_>,
    pieces: &'a VecDeque<Bytes>,
    slices: &mut [io::IoSlice<'a>],
) -> Poll<io::Result<usize>> {
    let mut k = 0;
    for (slot, piece) in slices.iter_mut().zip(pieces.iter()) {
        *slot = io::IoSlice::new(piece);
        k += 1;
    }
    Pin::new(io).poll_write_vectored(cx, &slices[..k])
}
