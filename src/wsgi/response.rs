//! Turning what a WSGI application returns into an HTTP response.
//!
//! [`start`] calls the application and iterates until the first non-empty chunk (so
//! `start_response` may be called during the first iteration), which fixes the head. Then:
//! - a finished iteration becomes one buffer sent with `Content-Length`;
//! - otherwise the rest is pulled chunk by chunk: on the event-loop thread itself by
//!   [`InlineBody`] (hyper polls it only when the socket can take more), or on an app thread
//!   that pushes through a bounded channel ([`Sink`] / [`ChannelBody`]).
//!
//! `close()` is called exactly once on whatever the application returned: when iteration ends,
//! fails, or the client goes away (the body is dropped).

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::Response;
use pyo3::exceptions::PyOSError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tokio::sync::mpsc;

use super::start_response::{chunk_bytes, StartResponse};
use super::streams::FileWrapper;
use crate::bridge::admission::Slot;
use crate::bridge::head::{head_response, total_len, Head, LengthCheck};
use crate::bridge::label::RequestLabel;
use crate::bridge::pipe::{PipeBody, PipeWriter};
use crate::http::Body;
use crate::scoreboard::RequestTimer;
use crate::statics::file::{FileBody, Piece};
use crate::{error, log};

/// Why a request ended in a 500 (or, after the head was sent, a cut connection).
pub(crate) enum Failure {
    /// The application raised.
    Raised(PyErr),
    /// The `close()` of what the application returned raised.
    CloseRaised(PyErr),
    /// The application broke a rule of PEP 3333; the text names it.
    Rule(String),
}

impl Failure {
    /// Logs the failure and counts it as an exception in the worker's stats.
    pub(crate) fn report(&self, py: Python<'_>, label: &RequestLabel) {
        label.stats.exception();
        self.log(py, &label.app, &label.request.to_string());
    }

    /// Logs the failure: the traceback, or the rule, with the app and the request line.
    pub(crate) fn log(&self, py: Python<'_>, app: &str, request: &str) {
        match self {
            Failure::Raised(err) => log::write_block(
                log::Level::Error,
                format_args!("error in the application {app} while serving {request}:"),
                &traceback(py, err),
            ),
            Failure::CloseRaised(err) => log::write_block(
                log::Level::Error,
                format_args!(
                    "the application {app} broke PEP 3333 while serving {request}: close() of its \
                     response raised"
                ),
                &traceback(py, err),
            ),
            Failure::Rule(rule) => {
                error!("the application {app} broke PEP 3333 while serving {request}: {rule}")
            }
        }
    }
}

/// A Python exception formatted as the interpreter would print it.
pub(crate) fn traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}

/// The iteration over an application's return value.
pub(crate) struct Iteration {
    /// What the application returned, kept for its `close()`.
    returned: Option<Py<PyAny>>,
    kind: Kind,
}

enum Kind {
    /// A list or tuple that iterates as the built-in one does: indexed directly, no iterator
    /// object. (A subclass with its own `__iter__` is iterated.)
    Sequence {
        items: Py<PyAny>,
        index: usize,
        len: usize,
    },
    Iterator(Py<PyAny>),
    Done,
}

/// Whether a list or tuple iterates as the built-in type does: it is one, or its subclass
/// keeps the built-in `__iter__`.
fn builtin_iter<T: pyo3::PyTypeInfo>(sequence: &Bound<'_, PyAny>) -> bool {
    let py = sequence.py();
    if sequence.is_exact_instance_of::<T>() {
        return true;
    }
    let iter = intern!(py, "__iter__");
    match (
        sequence.get_type().getattr(iter),
        T::type_object(py).getattr(iter),
    ) {
        (Ok(own), Ok(builtin)) => own.is(&builtin),
        _ => false,
    }
}

impl Iteration {
    fn new(returned: Bound<'_, PyAny>) -> Result<Iteration, Failure> {
        let kind = if let Some(list) = returned
            .cast::<PyList>()
            .ok()
            .filter(|_| builtin_iter::<PyList>(&returned))
        {
            Kind::Sequence {
                len: list.len(),
                items: list.clone().into_any().unbind(),
                index: 0,
            }
        } else if let Some(tuple) = returned
            .cast::<PyTuple>()
            .ok()
            .filter(|_| builtin_iter::<PyTuple>(&returned))
        {
            Kind::Sequence {
                len: tuple.len(),
                items: tuple.clone().into_any().unbind(),
                index: 0,
            }
        } else {
            match returned.try_iter() {
                Ok(iter) => Kind::Iterator(iter.into_any().unbind()),
                Err(_) => {
                    let what = returned
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    let mut it = Iteration {
                        returned: Some(returned.unbind()),
                        kind: Kind::Done,
                    };
                    Python::attach(|py| it.close(py));
                    return Err(Failure::Rule(format!(
                        "the application must return an iterable of bytes, but returned {what}"
                    )));
                }
            }
        };
        // A plain list or tuple has no close(), and looking for one costs a raised and
        // cleared AttributeError (before Python 3.13): nothing to keep for it.
        let plain =
            returned.is_exact_instance_of::<PyList>() || returned.is_exact_instance_of::<PyTuple>();
        Ok(Iteration {
            returned: (!plain).then(|| returned.unbind()),
            kind,
        })
    }

    /// Whether the whole body is already in memory (a list or tuple).
    fn is_sequence(&self) -> bool {
        matches!(self.kind, Kind::Sequence { .. })
    }

    /// The next chunk, or `None` at the end.
    pub(crate) fn next(&mut self, py: Python<'_>) -> Result<Option<Bytes>, Failure> {
        let item = match &mut self.kind {
            Kind::Done => return Ok(None),
            Kind::Sequence { items, index, len } => {
                if *index >= *len {
                    self.kind = Kind::Done;
                    return Ok(None);
                }
                let items = items.bind(py);
                let item = match items.cast::<PyList>() {
                    Ok(list) => list.get_item(*index),
                    Err(_) => items
                        .cast::<PyTuple>()
                        .map_or_else(|_| items.get_item(*index), |tuple| tuple.get_item(*index)),
                }
                .map_err(Failure::Raised)?;
                *index += 1;
                item
            }
            Kind::Iterator(iter) => {
                // SAFETY: iter is a live iterator object (from try_iter) and we hold the GIL;
                // PyIter_Next returns a new reference, or NULL at the end or on an error.
                let ptr = unsafe { pyo3::ffi::PyIter_Next(iter.as_ptr()) };
                if ptr.is_null() {
                    self.kind = Kind::Done;
                    return match PyErr::take(py) {
                        Some(err) => Err(Failure::Raised(err)),
                        None => Ok(None),
                    };
                }
                // SAFETY: a non-null PyIter_Next result is a new, owned reference.
                unsafe { Bound::from_owned_ptr(py, ptr) }
            }
        };
        chunk_bytes(&item).map(Some).map_err(Failure::Rule)
    }

    /// Calls the returned object's `close()`, once. An error from it is logged.
    pub(crate) fn close(&mut self, py: Python<'_>) -> Option<PyErr> {
        self.kind = Kind::Done;
        let returned = self.returned.take()?;
        let returned = returned.bind(py);
        match returned.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close.call0().err(),
            Ok(None) => None,
            Err(e) => Some(e),
        }
    }
}

impl Drop for Iteration {
    fn drop(&mut self) {
        if self.returned.is_some() {
            Python::attach(|py| {
                if let Some(err) = self.close(py) {
                    log::write_block(
                        log::Level::Error,
                        format_args!("close() of the response raised:"),
                        &traceback(py, &err),
                    );
                }
            });
        }
    }
}

/// What [`start`] produced.
pub(crate) enum Outcome {
    /// Iteration finished (and `close()` was called): the head and every chunk.
    /// `head` is `None` when write() already delivered it (thread-pool mode).
    Complete {
        head: Option<Head>,
        body: Vec<Bytes>,
    },
    /// A HEAD request whose iteration was stopped once the head was known (so the body's
    /// length is unknown); `close()` was called.
    HeadOnly { head: Option<Head> },
    /// A `wsgi.file_wrapper` over a real file, sent by Rust.
    File { head: Head, body: WrappedFile },
    /// The head, the first bytes, and the iteration to pull the rest from.
    Streaming {
        head: Option<Head>,
        prefix: Vec<Bytes>,
        rest: Iteration,
    },
}

/// Calls the application and iterates to the first non-empty chunk (or the end). For HEAD
/// (`head_only`) iteration stops once the head is known.
pub(crate) fn start(
    py: Python<'_>,
    app: &Bound<'_, PyAny>,
    environ: Bound<'_, PyDict>,
    start_response: &Bound<'_, StartResponse>,
    head_only: bool,
) -> Result<Outcome, Failure> {
    let returned = app
        .call1((environ, start_response))
        .map_err(Failure::Raised)?;
    if !head_only {
        if let Some(file) = open_wrapped_file(&returned) {
            return send_file(py, returned, file, start_response);
        }
    }
    let mut iteration = Iteration::new(returned)?;
    let mut chunks = Vec::new();
    let finished = loop {
        match iteration.next(py) {
            Ok(Some(chunk)) if chunk.is_empty() => continue,
            Ok(Some(chunk)) => {
                chunks.push(chunk);
                if !iteration.is_sequence() {
                    break false;
                }
            }
            Ok(None) => break true,
            Err(failure) => {
                close_logged(py, &mut iteration);
                return Err(failure);
            }
        }
    };
    let (head, mut prefix) = match start_response.get().take_head() {
        Ok(Some((head, written))) => (Some(head), written),
        Ok(None) => (None, Vec::new()),
        Err(rule) => {
            close_logged(py, &mut iteration);
            return Err(Failure::Rule(rule));
        }
    };
    if prefix.is_empty() {
        prefix = chunks;
    } else {
        prefix.append(&mut chunks);
    }
    // The declared length is already here (Django's HttpResponse: one chunk, Content-Length
    // set): the iteration must be over, which makes this a complete response.
    let declared = head.as_ref().and_then(|h| h.content_length);
    if !finished && !head_only && declared.is_some_and(|n| n <= total_len(&prefix)) {
        check_exhausted(py, &mut iteration)?;
        return Ok(Outcome::Complete { head, body: prefix });
    }
    if finished || head_only {
        if let Some(err) = iteration.close(py) {
            return Err(Failure::CloseRaised(err));
        }
        if !finished {
            return Ok(Outcome::HeadOnly { head });
        }
        return Ok(Outcome::Complete { head, body: prefix });
    }
    Ok(Outcome::Streaming {
        head,
        prefix,
        rest: iteration,
    })
}

/// The file behind a `wsgi.file_wrapper` the application returned, when it is a real file:
/// a duplicate of its descriptor and its current position. Anything else (a BytesIO, a
/// socket, a file object without `fileno`) is iterated as usual.
fn open_wrapped_file(returned: &Bound<'_, PyAny>) -> Option<(std::fs::File, u64)> {
    let wrapper = returned.cast::<FileWrapper>().ok()?;
    let filelike = wrapper.get().filelike.bind(returned.py());
    let fd: std::os::fd::RawFd = filelike.call_method0("fileno").ok()?.extract().ok()?;
    let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    // SAFETY: F_DUPFD_CLOEXEC on an fd the file object owns; we own the duplicate.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return None;
    }
    // SAFETY: dup is a fresh descriptor owned by nobody else.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    file.metadata().ok().filter(|m| m.is_file())?;
    Some((file, offset))
}

/// Hands a wrapped file to Rust: the application's part is over (its thread is free), and the
/// file goes out from its current position; `close()` runs when the transfer ends.
fn send_file(
    py: Python<'_>,
    returned: Bound<'_, PyAny>,
    (file, offset): (std::fs::File, u64),
    start_response: &Bound<'_, StartResponse>,
) -> Result<Outcome, Failure> {
    let mut closer = Iteration {
        returned: Some(returned.unbind()),
        kind: Kind::Done,
    };
    let head = match start_response.get().take_head() {
        Ok(Some((head, written))) if written.is_empty() => head,
        Ok(_) => {
            close_logged(py, &mut closer);
            return Err(Failure::Rule(
                "write() and a wsgi.file_wrapper in the same response".into(),
            ));
        }
        Err(rule) => {
            close_logged(py, &mut closer);
            return Err(Failure::Rule(rule));
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let available = size.saturating_sub(offset);
    let len = head.content_length.unwrap_or(available);
    if len > available {
        close_logged(py, &mut closer);
        return Err(Failure::Rule(format!(
            "the response's Content-Length says {len} bytes, but the wrapped file has {available} from its position"
        )));
    }
    Ok(Outcome::File {
        head,
        body: WrappedFile {
            file,
            offset,
            len,
            closer,
        },
    })
}

/// A file sent by Rust on the application's behalf: `len` bytes from `offset`. Once the
/// response is made, the body keeps `closer`, so dropping it calls the application's `close()`
/// (Django releases its database connection there).
pub(crate) struct WrappedFile {
    file: std::fs::File,
    offset: u64,
    len: u64,
    closer: Iteration,
}

/// Closes after a failure; the failure is what gets reported, a close() error is just logged.
fn close_logged(py: Python<'_>, iteration: &mut Iteration) {
    if let Some(err) = iteration.close(py) {
        log::write_block(
            log::Level::Error,
            format_args!("close() of the response raised:"),
            &traceback(py, &err),
        );
    }
}

/// The response for a wrapped file: the head, with the length the file body knows.
pub(crate) fn file_response(head: Head, wrapped: WrappedFile) -> Response<Body> {
    let WrappedFile {
        file,
        offset,
        len,
        closer,
    } = wrapped;
    let mut response = head_response(head);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    let body = FileBody::new(file, vec![Piece::Range { offset, len }]);
    *response.body_mut() = Body::File(body.with_guard(Box::new(closer)));
    response
}

/// Once the declared Content-Length has gone out, hyper stops reading the body, so the
/// iteration is checked for more before the last chunk is released: more bytes break the rule
/// (the connection is cut); none means the iteration is over (and `close()` runs now).
pub(crate) fn check_exhausted(py: Python<'_>, rest: &mut Iteration) -> Result<(), Failure> {
    loop {
        match rest.next(py)? {
            Some(chunk) if chunk.is_empty() => continue,
            Some(_) => {
                return Err(Failure::Rule(
                    "the application sent more bytes than its Content-Length header says".into(),
                ))
            }
            None => break,
        }
    }
    match rest.close(py) {
        Some(err) => Err(Failure::CloseRaised(err)),
        None => Ok(()),
    }
}

/// The rest of a response, pulled from the application on the event-loop thread (threads = 1)
/// by a task of its own, as fast as the application produces it, into the response's pipe
/// ([`crate::bridge::pipe`]): a client that reads slowly does not hold the application (its
/// one slot) beyond the pipe's buffer. The request counts as running (the timer) and holds
/// its slot until the iteration is over and `close()` has run.
pub(crate) fn stream_inline(
    head: &Head,
    prefix: Vec<Bytes>,
    rest: Iteration,
    label: RequestLabel,
    timer: RequestTimer,
    slot: Slot,
    pipe: (PipeWriter, PipeBody),
) -> Body {
    let (writer, body) = pipe;
    let length = LengthCheck::new(Some(head));
    tokio::task::spawn_local(async move {
        pull_inline(prefix.into(), rest, length, &label, writer).await;
        drop(timer);
        drop(slot);
    });
    Body::Stream(Box::pin(body))
}

/// What [`pull_inline`] gets from the application next.
enum Next {
    Chunk(Bytes),
    End,
}

async fn pull_inline(
    mut prefix: VecDeque<Bytes>,
    rest: Iteration,
    mut length: LengthCheck,
    label: &RequestLabel,
    writer: PipeWriter,
) {
    let mut rest = Some(rest);
    // A failure is reported, what the application returned is closed, and the writer is
    // dropped unfinished: the client's connection is cut, so it can tell.
    let fail = |py: Python<'_>, failure: Failure, rest: &mut Option<Iteration>| {
        failure.report(py, label);
        if let Some(mut rest) = rest.take() {
            close_logged(py, &mut rest);
        }
    };
    loop {
        let next = Python::attach(|py| {
            let chunk = match prefix.pop_front() {
                Some(chunk) => chunk,
                None => {
                    let Some(iteration) = rest.as_mut() else {
                        return Ok(Next::End);
                    };
                    let next = loop {
                        match iteration.next(py) {
                            Ok(Some(chunk)) if chunk.is_empty() => continue,
                            other => break other,
                        }
                    };
                    match next {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => {
                            if let Some(err) = rest.take().and_then(|mut r| r.close(py)) {
                                return Err(Failure::CloseRaised(err));
                            }
                            return length.finish().map(|()| Next::End).map_err(Failure::Rule);
                        }
                        Err(failure) => return Err(failure),
                    }
                }
            };
            let chunk = length
                .pass(chunk)
                .map_err(|(_, rule)| Failure::Rule(rule))?;
            label.stats.sent(chunk.len());
            // The declared length is all here: the iteration must be over (and close() runs).
            if length.is_done() && prefix.is_empty() {
                if let Some(mut iteration) = rest.take() {
                    check_exhausted(py, &mut iteration)?;
                }
            }
            Ok(Next::Chunk(chunk))
        });
        match next {
            Ok(Next::Chunk(chunk)) => {
                if writer.send(chunk).await.is_err() {
                    return; // the client left; `rest` is closed when dropped
                }
                // Let the connection write what it has before the application is asked for
                // more (which may block the loop: a streaming view that sleeps between chunks
                // must reach the client chunk by chunk).
                tokio::task::yield_now().await;
            }
            Ok(Next::End) => {
                writer.finish();
                return;
            }
            Err(failure) => {
                Python::attach(|py| fail(py, failure, &mut rest));
                return;
            }
        }
    }
}

/// A message from an app thread to the event loop, through a bounded channel.
pub(crate) enum Msg {
    /// The head; `complete` when `body` is the whole body.
    Head {
        head: Head,
        body: Vec<Bytes>,
        complete: bool,
    },
    Data(Bytes),
    /// A wrapped file for the event loop to send (the whole response).
    File {
        head: Head,
        body: WrappedFile,
    },
    /// The body ended normally.
    End,
    /// The body failed midway: cut the connection.
    Abort,
}

/// The app thread's end of the channel. Sending blocks (with the GIL released) while the
/// channel is full, which is the backpressure from a slow client.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<Msg>) -> Self {
        Sink { tx }
    }

    /// Sends a message; an error means the client is gone (the event loop dropped its end).
    pub(crate) fn send(&self, py: Python<'_>, msg: Msg) -> PyResult<()> {
        let tx = &self.tx;
        if py.detach(|| tx.blocking_send(msg).is_ok()) {
            Ok(())
        } else {
            Err(PyOSError::new_err("the client closed the connection"))
        }
    }

    pub(crate) fn head(
        &self,
        py: Python<'_>,
        head: Head,
        body: Vec<Bytes>,
        complete: bool,
    ) -> PyResult<()> {
        self.send(
            py,
            Msg::Head {
                head,
                body,
                complete,
            },
        )
    }

    pub(crate) fn data(&self, py: Python<'_>, chunk: Bytes) -> PyResult<()> {
        self.send(py, Msg::Data(chunk))
    }
}

/// The rest of a response from an app thread, moved from its channel into the response's
/// pipe by a task of its own, as fast as the thread produces it: a client that reads slowly
/// does not hold the thread beyond the pipe's buffer (then the channel fills, and the
/// thread's next send waits).
pub(crate) fn stream_channel(
    prefix: Vec<Bytes>,
    mut rx: mpsc::Receiver<Msg>,
    pipe: (PipeWriter, PipeBody),
) -> Body {
    let (writer, body) = pipe;
    tokio::task::spawn_local(async move {
        for chunk in prefix {
            if writer.send(chunk).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Some(Msg::Data(chunk)) => {
                    if writer.send(chunk).await.is_err() {
                        return; // the client left: dropping `rx` tells the thread
                    }
                }
                Some(Msg::End) => return writer.finish(),
                // Abort, a stray head, or the app thread gone without End: the body is
                // incomplete, and dropping the writer unfinished says so.
                _ => return,
            }
        }
    });
    Body::Stream(Box::pin(body))
}
