//! A response body read from an open file (static files, `wsgi.file_wrapper`, later ASGI's
//! pathsend): a list of pieces, each bytes in memory (the boundaries of multipart/byteranges)
//! or a range of the file. On a connection with zero-copy
//! on ([`ZeroCopy`]) a range goes from the page cache to the socket with sendfile; otherwise
//! it is read in large blocks as hyper asks for them. A file is never read whole into memory.

use std::any::Any;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::error::BodyError;
use crate::conn::zerocopy::ZeroCopy;

/// How much of a file one frame carries when it is read into memory.
const BLOCK: usize = 256 * 1024;

/// One piece of a file body.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Bytes(Bytes),
    Range { offset: u64, len: u64 },
}

/// The body.
pub(crate) struct FileBody {
    file: Rc<File>,
    pieces: VecDeque<Piece>,
    remaining: u64,
    zero_copy: Option<Rc<ZeroCopy>>,
    /// Kept until the body is dropped (the application's iterable, whose `close()` runs then).
    _guard: Option<Box<dyn Any>>,
}

impl FileBody {
    pub(crate) fn new(file: impl Into<Rc<File>>, pieces: Vec<Piece>) -> FileBody {
        let pieces: VecDeque<Piece> = pieces
            .into_iter()
            .filter(|p| match p {
                Piece::Bytes(b) => !b.is_empty(),
                Piece::Range { len, .. } => *len > 0,
            })
            .collect();
        let remaining = pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::Range { len, .. } => *len,
            })
            .sum();
        FileBody {
            file: file.into(),
            pieces,
            remaining,
            zero_copy: None,
            _guard: None,
        }
    }

    /// Keeps `guard` alive as long as the body.
    pub(crate) fn with_guard(mut self, guard: Box<dyn Any>) -> FileBody {
        self._guard = Some(guard);
        self
    }

    /// Sends the file's ranges through the connection's zero-copy queue.
    pub(crate) fn send_through(&mut self, zero_copy: &Rc<ZeroCopy>) {
        self.zero_copy = Some(zero_copy.clone());
    }

    /// Reads up to `len` bytes at `offset` into a fresh buffer.
    fn read_block(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(len);
        let spare = buf.spare_capacity_mut();
        // SAFETY: pread writes at most `len` bytes into the buffer's spare capacity, which
        // is at least `len` long; we only mark as initialised the bytes it reports.
        let n = unsafe {
            libc::pread(
                self.file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                len,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pread initialised the first `n` bytes.
        unsafe { buf.set_len(n as usize) };
        Ok(buf.freeze())
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(piece) = this.pieces.pop_front() else {
            return Poll::Ready(None);
        };
        let (offset, len) = match piece {
            Piece::Bytes(b) => {
                this.remaining -= b.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            Piece::Range { offset, len } => (offset, len),
        };
        let data = match &this.zero_copy {
            Some(zero_copy) => zero_copy.stand_in(this.file.clone(), offset, len as usize),
            None => match this.read_block(offset, (len as usize).min(BLOCK)) {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => {
                    return Poll::Ready(Some(Err(BodyError(
                        "the file became shorter while it was being sent".into(),
                    ))))
                }
                Err(e) => {
                    return Poll::Ready(Some(Err(BodyError(format!("reading the file: {e}")))))
                }
            },
        };
        let got = data.len() as u64;
        if got < len {
            this.pieces.push_front(Piece::Range {
                offset: offset + got,
                len: len - got,
            });
        }
        this.remaining -= data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    #[test]
    fn pieces_and_ranges_in_order() {
        let mut f = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..(BLOCK * 2 + 100)).map(|i| (i % 251) as u8).collect();
        f.write_all(&content).unwrap();
        let body = FileBody::new(
            f,
            vec![
                Piece::Bytes(Bytes::from_static(b"<")),
                Piece::Range {
                    offset: 10,
                    len: (BLOCK + 50) as u64,
                },
                Piece::Bytes(Bytes::from_static(b">")),
            ],
        );
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some((BLOCK + 52) as u64)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(got[0], b'<');
        assert_eq!(&got[1..got.len() - 1], &content[10..10 + BLOCK + 50]);
        assert_eq!(got[got.len() - 1], b'>');
    }

    #[test]
    fn a_file_that_shrinks_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        let body = FileBody::new(
            f,
            vec![Piece::Range {
                offset: 0,
                len: 100,
            }],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(body.collect()).is_err());
    }
}
