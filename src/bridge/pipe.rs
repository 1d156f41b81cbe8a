//! The buffer between an application that produces a streamed response and the client that
//! takes it, as nginx's proxy buffering did in front: the application goes on producing while
//! the client reads, up to `response-buffer` bytes ahead of it (the first [`MEMORY`] in memory,
//! the rest in an unnamed temporary file counted against the worker's spool budget). So a
//! client that reads slowly holds the application (and its slot) no longer than the
//! application takes to produce the response. Bytes still go out as soon as the client takes
//! them (streaming responses and server-sent events keep flowing); only beyond the buffer
//! does the client's pace reach the application.
//!
//! Both ends live on the worker's event-loop thread: the writer is a task that pulls from the
//! application (or from an application thread's channel), the reader is the response body.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::future::poll_fn;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::spool::{Spool, SpoolLease};
use crate::http::BodyError;

/// The part of a response's buffer kept in memory; past it, a temporary file.
pub(crate) const MEMORY: u64 = 1024 * 1024;
/// How much of the temporary file one frame carries back.
const READ_BACK: u64 = 256 * 1024;

/// A pipe for one response: the writer for the application's side, the body for the client's.
pub(crate) fn pipe(limit: u64, spool: &Arc<Spool>) -> (PipeWriter, PipeBody) {
    let state = Rc::new(RefCell::new(State {
        memory: VecDeque::new(),
        in_memory: 0,
        spill: None,
        lease: spool.lease(),
        limit,
        end: End::Open,
        reader_gone: false,
        reader: None,
        writer: None,
        trailers: None,
    }));
    (
        PipeWriter {
            state: state.clone(),
            finished: false,
        },
        PipeBody { state },
    )
}

struct State {
    memory: VecDeque<Bytes>,
    in_memory: u64,
    spill: Option<Spill>,
    /// The temporary file's bytes, counted against the worker's spool budget.
    lease: SpoolLease,
    limit: u64,
    end: End,
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Trailers to send after the body (ASGI's `http.response.trailers`).
    trailers: Option<http::HeaderMap>,
}

/// The temporary file: bytes from `read` to `written` are waiting.
struct Spill {
    file: File,
    written: u64,
    read: u64,
}

enum End {
    Open,
    Done,
    Failed(String),
}

impl State {
    fn in_file(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.written - s.read)
    }

    fn buffered(&self) -> u64 {
        self.in_memory + self.in_file()
    }

    /// Takes `data` if there is room for it, in order after what is waiting; gives it back
    /// if not. An empty buffer always takes it, so a chunk larger than the buffer still goes.
    fn store(&mut self, data: Bytes) -> Result<(), Bytes> {
        let n = data.len() as u64;
        let empty = self.buffered() == 0;
        if !empty && self.buffered() + n > self.limit {
            return Err(data);
        }
        // While the file has bytes waiting, the new ones go after them; otherwise memory
        // first.
        if self.in_file() == 0 && (self.in_memory + n <= MEMORY || empty) {
            self.in_memory += n;
            self.memory.push_back(data);
            return Ok(());
        }
        if self.lease.take(n).is_err() {
            // The worker's spool budget is spent: wait for the client instead.
            return Err(data);
        }
        if self.spill.is_none() {
            match tempfile::tempfile() {
                Ok(file) => {
                    self.spill = Some(Spill {
                        file,
                        written: 0,
                        read: 0,
                    })
                }
                Err(_) => {
                    self.lease.give_back(n);
                    return Err(data);
                }
            }
        }
        let Some(spill) = self.spill.as_mut() else {
            return Err(data);
        };
        if spill.file.write_all_at(&data, spill.written).is_err() {
            self.lease.give_back(n);
            return Err(data);
        }
        spill.written += n;
        Ok(())
    }

    /// The next bytes for the client, if any are waiting.
    fn take(&mut self) -> Option<Result<Bytes, String>> {
        if let Some(data) = self.memory.pop_front() {
            self.in_memory -= data.len() as u64;
            return Some(Ok(data));
        }
        let spill = self.spill.as_mut().filter(|s| s.read < s.written)?;
        let want = (spill.written - spill.read).min(READ_BACK) as usize;
        let mut buf = BytesMut::zeroed(want);
        if let Err(e) = spill.file.read_exact_at(&mut buf, spill.read) {
            return Some(Err(format!("the response's temporary file: {e}")));
        }
        spill.read += want as u64;
        if spill.read == spill.written {
            // Read back whole: start it over, and give its bytes back to the budget.
            let _ = spill.file.set_len(0);
            let emptied = spill.written;
            spill.read = 0;
            spill.written = 0;
            self.lease.give_back(emptied);
        }
        Some(Ok(buf.freeze()))
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// The client went away: nothing more is wanted.
#[derive(Debug)]
pub(crate) struct Gone;

/// The application's end. Dropped without [`PipeWriter::finish`], the response fails (the
/// connection is cut so the client can tell it is incomplete).
pub(crate) struct PipeWriter {
    state: Rc<RefCell<State>>,
    finished: bool,
}

impl PipeWriter {
    /// Hands a chunk to the client's side, once there is room for it.
    pub(crate) async fn send(&self, data: Bytes) -> Result<(), Gone> {
        let mut data = Some(data);
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.reader_gone {
                return Poll::Ready(Err(Gone));
            }
            let Some(chunk) = data.take() else {
                return Poll::Ready(Ok(()));
            };
            match state.store(chunk) {
                Ok(()) => {
                    state.wake_reader();
                    Poll::Ready(Ok(()))
                }
                Err(chunk) => {
                    data = Some(chunk);
                    state.writer = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The response is complete.
    pub(crate) fn finish(mut self) {
        self.end(End::Done);
    }

    /// The response is complete, and these trailers follow its body.
    pub(crate) fn finish_with_trailers(mut self, trailers: http::HeaderMap) {
        self.state.borrow_mut().trailers = Some(trailers);
        self.end(End::Done);
    }

    fn end(&mut self, end: End) {
        self.finished = true;
        let mut state = self.state.borrow_mut();
        state.end = end;
        state.wake_reader();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.end(End::Failed("the application failed mid-response".into()));
        }
    }
}

/// The client's end: a response body.
pub(crate) struct PipeBody {
    state: Rc<RefCell<State>>,
}

impl http_body::Body for PipeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut state = self.state.borrow_mut();
        if let Some(taken) = state.take() {
            state.wake_writer();
            return Poll::Ready(Some(taken.map(Frame::data).map_err(BodyError)));
        }
        match std::mem::replace(&mut state.end, End::Done) {
            End::Done => Poll::Ready(state.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            End::Failed(why) => Poll::Ready(Some(Err(BodyError(why)))),
            End::Open => {
                state.end = End::Open;
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = self.state.borrow();
        matches!(state.end, End::Done) && state.buffered() == 0 && state.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for PipeBody {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.reader_gone = true;
        state.wake_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_writer_runs_ahead_up_to_the_limit_in_order_through_the_file() {
        runtime().block_on(async {
            let spool = Spool::new(u64::MAX);
            let (writer, mut body) = pipe(3 * MEMORY, &spool);
            // Memory, then the file: 2.5 MiB ahead of a client that has read nothing.
            let chunk = |i: u8| Bytes::from(vec![i; 512 * 1024]);
            for i in 0..5 {
                writer.send(chunk(i)).await.unwrap();
            }
            assert_eq!(writer.state.borrow().in_memory, MEMORY);
            assert_eq!(writer.state.borrow().in_file(), 3 * 512 * 1024);
            // Full: the sixth and seventh wait for the client.
            let more = async {
                writer.send(chunk(5)).await.unwrap();
                writer.send(chunk(6)).await.unwrap();
                writer.finish();
            };
            let read = async {
                let mut all = Vec::new();
                while let Some(frame) = body.frame().await {
                    all.extend_from_slice(&frame.unwrap().into_data().unwrap());
                }
                all
            };
            let ((), all) = tokio::join!(more, read);
            assert_eq!(all.len(), 7 * 512 * 1024);
            for (i, part) in all.chunks(512 * 1024).enumerate() {
                assert!(part.iter().all(|&b| b == i as u8), "chunk {i} in order");
            }
            assert_eq!(spool.lease().bytes(), 0);
        });
    }

    #[test]
    fn a_spent_budget_keeps_it_in_memory_and_waits() {
        runtime().block_on(async {
            let spool = Spool::new(0);
            let (writer, body) = pipe(8 * MEMORY, &spool);
            writer
                .send(Bytes::from(vec![1; MEMORY as usize]))
                .await
                .unwrap();
            let next = writer.send(Bytes::from_static(b"x"));
            tokio::pin!(next);
            assert!(futures_poll_once(next.as_mut()).is_none(), "waits: no file");
            drop(body);
            assert!(matches!(next.await, Err(Gone)));
        });
    }

    #[test]
    fn a_writer_dropped_unfinished_fails_the_body() {
        runtime().block_on(async {
            let spool = Spool::new(0);
            let (writer, mut body) = pipe(MEMORY, &spool);
            writer.send(Bytes::from_static(b"ab")).await.unwrap();
            drop(writer);
            assert_eq!(
                &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
                b"ab"
            );
            assert!(body.frame().await.unwrap().is_err());
        });
    }

    /// Polls a future once.
    fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        let waker = std::task::Waker::noop();
        match Pin::new(&mut f).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}
