//! An HTTP request under ASGI: the worker's side ([`respond`]: the request goes to the loop
//! thread, the response comes back as a complete body, a stream through the response pipe,
//! or a file), and the application's side ([`HttpChannel`]: its `receive` and `send`).
//!
//! The body was read before the call (post-buffering), so `receive()` hands it out from
//! memory or its spool file as `http.request` messages (64 KiB each from a file, with
//! `more_body`), then waits for `http.disconnect`: when the client goes, or once the
//! response is complete.

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, HeaderValue, Method, Response};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::exchange::{Exchange, Gone, GoneOnDrop, Out};
use super::message::{self, Rule};
use super::runner::{fail, resolve, Ctx};
use super::scope::{self, Kind};
use super::shared::{start_failed, ClientDisconnected, Core, Held};
use crate::bridge::body::Buffered;
use crate::bridge::head::{self as heads, Head, LengthCheck};
use crate::bridge::label::{RequestLabel, RequestLine};
use crate::bridge::pipe::pipe;
use crate::bridge::spool::SpoolLease;
use crate::conn::ConnInfo;
use crate::http::file::{FileBody, Piece};
use crate::http::Body;
use crate::{error, log};

/// How much of a spooled body one `http.request` message carries.
const FILE_CHUNK: usize = 64 * 1024;

/// Serves one request: hands it to the application at once, and returns the wait for its
/// response. The request itself is the loop thread's by then, so the future holds only what
/// the wait needs (288 bytes against 848 when the request was in it too: the future is
/// moved into its box whole).
pub(crate) fn respond(
    core: Arc<Core>,
    parts: Parts,
    conn: Arc<ConnInfo>,
    body: Buffered,
    held: Held,
) -> impl Future<Output = Response<Body>> {
    let head_request = parts.method == Method::HEAD;
    let label = RequestLabel {
        app: core.name.clone(),
        request: RequestLine::of(&parts),
        stats: core.stats.clone(),
    };
    let timer = label.begin(held.core());
    let (exchange, mut rx) = Exchange::new(core.inbox.clone(), &core.outbox, wake);
    // A dropped future (the client went before the response) or a relay over: the
    // application hears http.disconnect.
    let gone = GoneOnDrop(exchange.clone(), Gone::disconnected());
    let request = Request {
        parts,
        conn,
        body,
        exchange: exchange.clone(),
        label: label.clone(),
    };
    let job_core = core.clone();
    core.inbox
        .push(Box::new(move |py, ctx| start(py, ctx, &job_core, request)));
    async move {
        let Some(first) = rx.recv().await else {
            return heads::internal_error();
        };
        exchange.took(&first);
        match first {
            Out::Response {
                head,
                body,
                more: false,
                trailers: false,
            } => {
                let n = body.len();
                match heads::complete_response(*head, vec![body], head_request) {
                    Ok(response) => {
                        core.stats.sent(n);
                        response
                    }
                    Err(rule) => {
                        broke(&label, &rule);
                        heads::internal_error()
                    }
                }
            }
            Out::Response {
                head,
                body,
                more,
                trailers,
            } => {
                let (writer, pipe_body) = pipe(core.response_buffer, &core.spool);
                let mut length = LengthCheck::new(Some(&head));
                let mut response = heads::head_response(*head);
                if head_request {
                    return response;
                }
                *response.body_mut() = Body::Stream(Box::pin(pipe_body));
                tokio::task::spawn_local(async move {
                    let _in_app = (held, timer, gone);
                    let mut next = Some(Out::Body { data: body, more });
                    // Trailers gathered (several messages make one map).
                    let mut gathered = http::HeaderMap::new();
                    loop {
                        let message = match next.take() {
                            Some(m) => m,
                            None => match rx.recv().await {
                                Some(m) => {
                                    exchange.took(&m);
                                    m
                                }
                                // The application's side is gone without finishing: cut.
                                None => return,
                            },
                        };
                        match message {
                            Out::Body { data, more } => {
                                let data = match length.pass(data) {
                                    Ok(data) => data,
                                    Err((_, rule)) => return broke(&label, &rule),
                                };
                                label.stats.sent(data.len());
                                if !data.is_empty() && writer.send(data).await.is_err() {
                                    return; // the client left (`gone` tells the application)
                                }
                                if !more {
                                    if let Err(rule) = length.finish() {
                                        return broke(&label, &rule);
                                    }
                                    if !trailers {
                                        return writer.finish();
                                    }
                                }
                            }
                            Out::Trailers { headers, more } => {
                                gathered.extend(*headers);
                                if !more {
                                    return writer.finish_with_trailers(gathered);
                                }
                            }
                            // Ended before the end of the body (logged by the application's
                            // side), or anything else: the body is cut.
                            _ => return,
                        }
                    }
                });
                response
            }
            Out::File { head, path } => file_response(*head, &path, &label, head_request),
            _ => heads::internal_error(),
        }
    }
}

/// The response for `http.response.pathsend`: the file, sent by the connection (with
/// sendfile on a plain socket).
fn file_response(
    head: Head,
    path: &std::path::Path,
    label: &RequestLabel,
    head_request: bool,
) -> Response<Body> {
    let file = match File::open(path).and_then(|f| f.metadata().map(|m| (f, m))) {
        Ok((file, meta)) if meta.is_file() => (file, meta.len()),
        Ok(_) => {
            broke(
                label,
                &format!("http.response.pathsend: {} is not a file", path.display()),
            );
            return heads::internal_error();
        }
        Err(e) => {
            broke(
                label,
                &format!(
                    "http.response.pathsend: cannot open {}: {e}",
                    path.display()
                ),
            );
            return heads::internal_error();
        }
    };
    let (file, len) = file;
    if head.content_length.is_some_and(|n| n != len) {
        broke(
            label,
            &format!(
                "http.response.pathsend: {} has {len} bytes but the Content-Length header says {}",
                path.display(),
                head.content_length.unwrap_or(0)
            ),
        );
        return heads::internal_error();
    }
    let mut response = heads::head_response(head);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !head_request {
        label.stats.sent(len as usize);
        *response.body_mut() =
            Body::File(FileBody::new(file, vec![Piece::Range { offset: 0, len }]));
    }
    response
}

/// Logs a broken rule of the ASGI spec for a request, and counts it.
pub(crate) fn broke(label: &RequestLabel, rule: &str) {
    label.stats.exception();
    error!(
        "the application {} broke ASGI while serving {}: {rule}",
        label.app, label.request
    );
}

/// A request on its way to the loop thread.
struct Request {
    parts: Parts,
    conn: Arc<ConnInfo>,
    body: Buffered,
    exchange: Arc<Exchange>,
    label: RequestLabel,
}

/// On the loop thread: the scope, the channel, the application's task.
fn start(py: Python<'_>, ctx: &Arc<Ctx>, core: &Arc<Core>, req: Request) {
    let Request {
        parts,
        conn,
        body,
        exchange,
        label,
    } = req;
    let head_request = parts.method == Method::HEAD;
    let started = scope::build(
        py,
        &core.templates,
        Kind::Http,
        &parts,
        &conn,
        core.state.get(),
    )
    .and_then(|scope| {
        let channel = HttpChannel {
            exchange: exchange.clone(),
            ctx: ctx.clone(),
            body: Some(BodySource::from(body)),
            phase: Phase::Start,
            label: label.clone(),
            violated: false,
            head_request,
        };
        let channel = Bound::new(py, channel)?;
        ctx.start(py, &core.app, scope.into_any(), channel.as_any())
    });
    if let Err(e) = started {
        start_failed(py, &label, &exchange, "serving", &e);
    }
}

/// The loop thread's side of a wake-up: a `receive()` waiting for the disconnect, a
/// `send()` waiting for room.
fn wake(py: Python<'_>, _ctx: &Arc<Ctx>, exchange: &Arc<Exchange>) {
    let (receive, send, gone) = {
        let mut shared = exchange.lock();
        let gone = shared.gone.is_some();
        let receive = if gone {
            shared.receive_waiter.take()
        } else {
            None
        };
        let send = if gone || exchange.below_low_water() {
            shared.send_waiter.take()
        } else {
            None
        };
        (receive, send, gone)
    };
    if let Some(f) = receive {
        if let Ok(msg) = disconnect(py) {
            resolve(py, f.bind(py), msg.into_any());
        }
    }
    if let Some(f) = send {
        if gone {
            fail(py, f.bind(py), disconnected_error(py));
        } else {
            resolve(py, f.bind(py), py.None().into_bound(py));
        }
    }
}

fn disconnect(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(msg)
}

/// The exception `send()` raises once the client is gone (spec 2.4).
pub(crate) fn disconnected_error(py: Python<'_>) -> Bound<'_, PyAny> {
    ClientDisconnected::new_err("the client closed the connection")
        .into_value(py)
        .into_bound(py)
        .into_any()
}

/// Where `receive()` reads the request body from.
enum BodySource {
    Empty,
    Memory(Bytes),
    File {
        file: File,
        remaining: u64,
        _lease: SpoolLease,
    },
}

impl From<Buffered> for BodySource {
    fn from(b: Buffered) -> Self {
        match b {
            Buffered::Empty => BodySource::Empty,
            Buffered::Memory(data) => BodySource::Memory(data),
            Buffered::File { file, len, lease } => BodySource::File {
                file,
                remaining: len,
                _lease: lease,
            },
        }
    }
}

/// Where a response is.
enum Phase {
    Start,
    /// `http.response.start` came; no body yet.
    Started {
        head: Head,
        trailers: bool,
    },
    /// In the body.
    Body {
        trailers: bool,
    },
    /// The body is over; trailers come.
    Trailers,
    Done,
}

/// The application's `receive` and `send` for one request.
#[pyclass(module = "dragoman", name = "HttpChannel")]
pub(crate) struct HttpChannel {
    exchange: Arc<Exchange>,
    ctx: Arc<Ctx>,
    /// The body still to hand out; `None` once it all was.
    body: Option<BodySource>,
    phase: Phase,
    label: RequestLabel,
    /// A rule was broken (and logged): the task's end says nothing more.
    violated: bool,
    head_request: bool,
}

impl HttpChannel {
    /// The next `http.request` message.
    fn body_message<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (data, more) = match self.body.take() {
            None | Some(BodySource::Empty) => (PyBytes::new(py, b""), false),
            Some(BodySource::Memory(data)) => (PyBytes::new(py, &data), false),
            Some(BodySource::File {
                mut file,
                remaining,
                _lease,
            }) => {
                let n = remaining.min(FILE_CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(n);
                file.read_exact(&mut buf).map_err(|e| {
                    pyo3::exceptions::PyOSError::new_err(format!(
                        "reading the spooled request body: {e}"
                    ))
                })?;
                let left = remaining - n as u64;
                if left > 0 {
                    self.body = Some(BodySource::File {
                        file,
                        remaining: left,
                        _lease,
                    });
                }
                (PyBytes::new(py, &buf), left > 0)
            }
        };
        let msg = PyDict::new(py);
        msg.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
        msg.set_item(intern!(py, "body"), data)?;
        msg.set_item(intern!(py, "more_body"), more)?;
        Ok(msg)
    }

    /// Records a broken rule: logged once, the response becomes a 500 (or is cut), and the
    /// application gets the exception at the call that broke it.
    fn violation(&mut self, rule: Rule, exception: fn(String) -> PyErr) -> PyErr {
        if !self.violated {
            self.violated = true;
            broke(&self.label, &rule);
            let _ = self.exchange.send(Out::Ended { failed: true });
        }
        self.phase = Phase::Done;
        exception(format!("ASGI: {rule}"))
    }

    /// Sends to the connection; a future to wait on when past the high-water mark.
    fn push<'py>(&mut self, py: Python<'py>, out: Out) -> PyResult<Bound<'py, PyAny>> {
        match self.exchange.send(out) {
            Ok(false) => Ok(self.ctx.done(py)),
            Ok(true) => {
                let f = self.ctx.future(py)?;
                let mut shared = self.exchange.lock();
                if shared.gone.is_some() || self.exchange.below_low_water() {
                    drop(shared);
                    return Ok(self.ctx.done(py));
                }
                shared.send_waiter = Some(f.clone().unbind());
                Ok(f)
            }
            Err(()) => Err(ClientDisconnected::new_err(
                "the client closed the connection",
            )),
        }
    }

    /// The response is complete: a `receive()` waiting hears http.disconnect now.
    fn complete(&mut self, py: Python<'_>) {
        self.phase = Phase::Done;
        let waiter = self.exchange.lock().receive_waiter.take();
        if let (Some(f), Ok(msg)) = (waiter, disconnect(py)) {
            resolve(py, f.bind(py), msg.into_any());
        }
    }
}

#[pymethods]
impl HttpChannel {
    fn receive<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.body.is_some() {
            let msg = self.body_message(py)?;
            return self.ctx.ready(py, msg.into_any());
        }
        let mut shared = self.exchange.lock();
        if shared.gone.is_some() || matches!(self.phase, Phase::Done) {
            drop(shared);
            return self.ctx.ready(py, disconnect(py)?.into_any());
        }
        if let Some(waiter) = &shared.receive_waiter {
            // A second receive() while one waits: both hear the same disconnect.
            return Ok(waiter.bind(py).clone());
        }
        let f = self.ctx.future(py)?;
        shared.receive_waiter = Some(f.clone().unbind());
        Ok(f)
    }

    fn send<'py>(
        &mut self,
        py: Python<'py>,
        message: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind =
            message::kind(&message).map_err(|rule| self.violation(rule, PyValueError::new_err))?;
        let kind = kind.to_str()?;
        if self.exchange.is_gone() && !matches!(self.phase, Phase::Done) {
            return Err(ClientDisconnected::new_err(
                "the client closed the connection",
            ));
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (kind, phase) {
            ("http.response.start", Phase::Start) => {
                let status = message::status(&message)
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let trailers = message::flag(&message, intern!(py, "trailers"));
                let mut head = Head::new(status, None, 8);
                let read = message::headers_into(&message, &mut head, trailers);
                read.map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                self.phase = Phase::Started { head, trailers };
                Ok(self.ctx.done(py))
            }
            ("http.response.body", Phase::Started { head, trailers }) => {
                let body = message::body(&message, intern!(py, "body"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let more = message::flag(&message, intern!(py, "more_body"));
                let body = if self.head_request {
                    Bytes::new()
                } else {
                    body
                };
                let out = Out::Response {
                    head: Box::new(head),
                    body,
                    more,
                    trailers,
                };
                self.after_body(py, more, trailers);
                self.push(py, out)
            }
            ("http.response.body", Phase::Body { trailers }) => {
                let body = message::body(&message, intern!(py, "body"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let more = message::flag(&message, intern!(py, "more_body"));
                self.after_body(py, more, trailers);
                self.push(py, Out::Body { data: body, more })
            }
            ("http.response.pathsend", Phase::Started { head, trailers }) => {
                let path = message::text(&message, intern!(py, "path"))
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let path = match path.map(std::path::PathBuf::from) {
                    Some(p) if p.is_absolute() => p,
                    _ => {
                        let rule = "http.response.pathsend needs an absolute \"path\"".to_string();
                        return Err(self.violation(rule, PyValueError::new_err));
                    }
                };
                if trailers {
                    let rule = "http.response.pathsend cannot be followed by trailers".to_string();
                    return Err(self.violation(rule, PyValueError::new_err));
                }
                self.complete(py);
                self.push(
                    py,
                    Out::File {
                        head: Box::new(head),
                        path,
                    },
                )
            }
            ("http.response.trailers", Phase::Trailers) => {
                let headers = message::header_map(&message, &[])
                    .map_err(|rule| self.violation(rule, PyValueError::new_err))?;
                let more = message::flag(&message, intern!(py, "more_trailers"));
                if more {
                    self.phase = Phase::Trailers;
                } else {
                    self.complete(py);
                }
                self.push(
                    py,
                    Out::Trailers {
                        headers: Box::new(headers),
                        more,
                    },
                )
            }
            // Extensions dragoman does not offer, which a server may ignore.
            ("http.response.early_hint" | "http.response.debug", phase) => {
                self.phase = phase;
                Ok(self.ctx.done(py))
            }
            (_, Phase::Done) => {
                let rule = format!("it sent {kind} after the response was complete");
                Err(self.violation(rule, PyRuntimeError::new_err))
            }
            ("http.response.body" | "http.response.pathsend", Phase::Start) => {
                let rule = format!("it sent {kind} before http.response.start");
                Err(self.violation(rule, PyRuntimeError::new_err))
            }
            ("http.response.start", _) => {
                let rule = "it sent http.response.start twice".to_string();
                Err(self.violation(rule, PyRuntimeError::new_err))
            }
            ("http.response.trailers", _) => {
                let rule = "it sent http.response.trailers without `trailers: True` in \
                            http.response.start, or before the last body"
                    .to_string();
                Err(self.violation(rule, PyRuntimeError::new_err))
            }
            (other, _) => {
                let rule = format!("it sent a message of unknown type {other:?}");
                Err(self.violation(rule, PyValueError::new_err))
            }
        }
    }

    /// The application's task is over: what it left undone is a broken rule.
    fn _finished(&mut self, py: Python<'_>, raised: Option<Bound<'_, PyAny>>) {
        let cancelled = raised
            .as_ref()
            .is_some_and(|e| e.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>());
        let raised = raised.filter(|_| !cancelled);
        let gone = self.exchange.is_gone();
        let mut failed = false;
        if let Some(exception) = raised {
            failed = true;
            // Its own ClientDisconnected, re-raised: the client left, nothing to report.
            let quiet = exception.is_instance_of::<ClientDisconnected>() || self.violated;
            if !quiet {
                let err = PyErr::from_value(exception);
                log::write_block(
                    log::Level::Error,
                    format_args!(
                        "error in the application {} while serving {}:",
                        self.label.app, self.label.request
                    ),
                    &message::traceback(py, &err),
                );
                self.label.stats.exception();
            }
        } else if !cancelled && !gone && !self.violated {
            let rule = match self.phase {
                Phase::Start => Some("it returned without sending a response"),
                Phase::Started { .. } => {
                    Some("it returned after http.response.start without sending the body")
                }
                Phase::Body { .. } => {
                    Some("it returned before the end of its response (more_body was True)")
                }
                Phase::Trailers => Some("it returned without sending the trailers it announced"),
                Phase::Done => None,
            };
            if let Some(rule) = rule {
                failed = true;
                broke(&self.label, rule);
            }
        }
        self.phase = Phase::Done;
        let _ = self.exchange.send(Out::Ended { failed });
    }
}

impl HttpChannel {
    fn after_body(&mut self, py: Python<'_>, more: bool, trailers: bool) {
        if more {
            self.phase = Phase::Body { trailers };
        } else if trailers {
            self.phase = Phase::Trailers;
        } else {
            self.complete(py);
        }
    }
}

impl Gone {
    /// An HTTP client that went away (1006: no close frame, for the WebSocket's part).
    pub(crate) fn disconnected() -> Gone {
        Gone {
            code: 1006,
            reason: String::new(),
        }
    }
}
