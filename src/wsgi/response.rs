//! Turning what a WSGI application returns into an HTTP response.
//!
//! [`start`] calls the application and iterates until the first non-empty chunk (so
//! `start_response` may be called during the first iteration), which fixes the head. Then:
//! - a finished iteration becomes one buffer sent with `Content-Length`;
//! - otherwise the rest is pulled chunk by chunk into the response's pipe
//!   ([`crate::bridge::pipe`]): on the event-loop thread itself by a task of its own
//!   ([`stream_inline`]), or on an app thread that pushes through a bounded channel
//!   ([`super::channel::Sink`], [`super::channel::stream_channel`]).
//!
//! `close()` is called exactly once on whatever the application returned: when iteration ends,
//! fails, or the client goes away (the body is dropped).

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::Response;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::failure::Failure;
use super::input::InputStream;
use super::iteration::{close_logged, Iteration, WrappedFile};
use super::start_response::StartResponse;
use super::streams::FileWrapper;
use crate::bridge::admission::Slot;
use crate::bridge::head::{head_response, total_len, Head, LengthCheck};
use crate::bridge::label::RequestLabel;
use crate::bridge::pipe::{PipeBody, PipeWriter};
use crate::http::file::{FileBody, Piece};
use crate::http::Body;
use crate::scoreboard::RequestTimer;

/// What [`start`] produced.
pub(crate) enum Produced {
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
    input: Option<Py<InputStream>>,
) -> Result<Produced, Failure> {
    // The request's body is let go when its response is over: at the iteration's close(), or
    // here when there is no iteration.
    let release = |input: Option<Py<InputStream>>| {
        if let Some(input) = input {
            input.borrow(py).release();
        }
    };
    let returned = match app.call1((environ, start_response)) {
        Ok(returned) => returned,
        Err(e) => {
            release(input);
            return Err(Failure::Raised(e));
        }
    };
    if !head_only {
        if let Some(file) = open_wrapped_file(&returned) {
            return send_file(py, returned, file, start_response, input);
        }
    }
    let mut iteration = match Iteration::new(returned) {
        Ok(iteration) => iteration,
        Err(failure) => {
            release(input);
            return Err(failure);
        }
    };
    iteration.release_at_close(input);
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
        return Ok(Produced::Complete { head, body: prefix });
    }
    if finished || head_only {
        if let Some(err) = iteration.close(py) {
            return Err(Failure::CloseRaised(err));
        }
        if !finished {
            return Ok(Produced::HeadOnly { head });
        }
        return Ok(Produced::Complete { head, body: prefix });
    }
    Ok(Produced::Streaming {
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
    input: Option<Py<InputStream>>,
) -> Result<Produced, Failure> {
    let mut closer = Iteration::closer(returned);
    closer.release_at_close(input);
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
    Ok(Produced::File {
        head,
        body: WrappedFile {
            file,
            offset,
            len,
            closer,
        },
    })
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
