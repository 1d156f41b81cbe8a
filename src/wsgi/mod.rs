//! The WSGI bridge (PEP 3333): an [`App`] that calls a Python WSGI application.
//!
//! Two shapes, chosen by `threads`:
//! - `threads = 1`: the application runs on the event-loop thread itself, inside the request's
//!   future, as bjoern does: no thread hand-off and no GIL hand-off per request. Requests whose
//!   body must be streamed in while the app runs (a large Content-Length, or
//!   `Expect: 100-continue`) go to a single app thread, since the loop thread cannot wait for
//!   the socket while it runs Python. One app slot keeps it one request at a time either way.
//! - `threads = N`: every request runs on a fixed pool of N Python threads; the event loop
//!   never takes the GIL.

pub(crate) mod environ;
mod input;
mod pool;
mod response;
mod start_response;
mod streams;

use std::io::{Seek, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::http::RequestBody;
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use pyo3::prelude::*;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, Limits};
use crate::conn::ConnInfo;
use crate::http::{error_response, Answer, App, Body};
use crate::scoreboard::RequestStats;
use crate::{error, interp, log};
use environ::{ConnEnviron, Template};
use input::{InputStream, Source};
use pool::Pool;
use response::{ChannelBody, Failure, InlineBody, Msg, Outcome, RequestLabel, RequestLine, Sink};
use start_response::Responder;
pub use streams::{ErrorStream, FileWrapper};

/// Bodies up to this size are read before the app is called (inline mode), so the app's
/// `read()` never has to wait on the socket.
const SMALL_BODY: u64 = 64 * 1024;
/// A chunked body is kept in memory up to this size, then spooled to a temporary file.
const SPOOL_IN_MEMORY: usize = 1024 * 1024;
/// Chunks in flight between an app thread and the event loop, per response.
const CHANNEL_DEPTH: usize = 4;

/// What the app threads share: the application, the environ template, the worker's stats.
struct Core {
    app: Py<PyAny>,
    template: Template,
    /// `mysite.wsgi:application`, for log lines.
    name: Arc<str>,
    stats: Arc<RequestStats>,
    /// The `wsgi.input` of every request without a body: it holds no state, so one serves all.
    empty_input: Py<InputStream>,
}

/// A loaded WSGI application, ready to serve requests.
pub struct WsgiApp {
    core: Arc<Core>,
    /// One permit per request allowed in the application at once (`threads`).
    slots: Arc<Semaphore>,
    /// Requests waiting for a slot (only the event-loop thread touches it).
    waiting: std::cell::Cell<usize>,
    limits: Limits,
    inline: bool,
    pool: Pool,
}

impl WsgiApp {
    /// Imports the application named by the config (unless the master already did:
    /// `preloaded`). On failure the traceback and a one-line reason are logged, and the worker
    /// must exit.
    pub fn load(
        py: Python<'_>,
        config: &Config,
        preloaded: Option<Py<PyAny>>,
        stats: Arc<RequestStats>,
    ) -> Result<WsgiApp, LoadFailed> {
        let name: Arc<str> = config.app.describe().into();
        let app = match preloaded {
            Some(app) => app,
            None => load_app(py, config)?,
        };
        let template = Bound::new(py, ErrorStream::default())
            .and_then(|errors| {
                Template::new(
                    py,
                    errors.into_any(),
                    py.get_type::<FileWrapper>().into_any(),
                    config.threads > 1,
                    config.processes > 1,
                )
            })
            .map_err(|err| {
                error!("cannot build the WSGI environ: {err}");
                LoadFailed
            })?;
        let empty_input = Py::new(py, InputStream::empty()).map_err(|err| {
            error!("cannot build the WSGI environ: {err}");
            LoadFailed
        })?;
        // Asked once, here (it imports sysconfig), not when a keep-alive connection's second
        // request first reuses start_response.
        start_response::counts_are_exact(py);
        Ok(WsgiApp {
            core: Arc::new(Core {
                app,
                template,
                name,
                stats,
                empty_input,
            }),
            slots: Arc::new(Semaphore::new(config.threads)),
            waiting: std::cell::Cell::new(0),
            limits: config.limits.clone(),
            inline: config.threads == 1,
            pool: Pool::new(config.threads),
        })
    }

    /// Stops the app threads once the worker has finished serving.
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }
}

/// Imports the application, logging the traceback and a one-line reason on failure. Used by
/// each worker, or by the master once (`preload`).
pub fn load_app(py: Python<'_>, config: &Config) -> Result<Py<PyAny>, LoadFailed> {
    let name = config.app.describe();
    interp::load_callable(py, &config.app).map_err(|err| {
        log::write_block(
            log::Level::Error,
            format_args!("could not load the WSGI application {name}:"),
            &response::traceback(py, &err),
        );
        error!(
            "could not load the WSGI application {name} ({}): {}",
            config.app.origin,
            one_line(py, &err)
        );
        LoadFailed
    })
}

/// The application could not be loaded; the reason has been logged.
#[derive(Debug)]
pub struct LoadFailed;

/// `ExceptionType: message`, for the one-line summary after a traceback.
fn one_line(py: Python<'_>, err: &PyErr) -> String {
    let kind = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("{kind}: {}", err.value(py))
}

/// How the request body reaches the application.
enum Plan {
    /// No body.
    Empty,
    /// A Content-Length body small enough to read before calling the app.
    Small,
    /// A chunked body: buffered (spooled past a size) so CONTENT_LENGTH can be set.
    Chunked,
    /// Streamed from the socket while the app reads it (needs an app thread).
    Stream,
}

fn plan(parts: &Parts, body: &RequestBody) -> Plan {
    if body.is_end_stream() {
        return Plan::Empty;
    }
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    match body.size_hint().exact() {
        Some(0) => Plan::Empty,
        Some(n) if n <= SMALL_BODY && !expects_continue => Plan::Small,
        Some(_) => Plan::Stream,
        None => Plan::Chunked,
    }
}

/// Why a request body could not be read before the call.
enum BodyProblem {
    TooLarge(u64),
    Idle(Duration),
    Broken(String),
}

impl BodyProblem {
    /// The answer: 413, 408 or 400, closing the connection (the body is not all read).
    fn response(&self) -> Response<Body> {
        let (status, detail) = match self {
            BodyProblem::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than limit-post ({limit} bytes)"),
            ),
            BodyProblem::Idle(t) => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the client sent nothing of the request body for {}s (body-timeout)",
                    t.as_secs()
                ),
            ),
            BodyProblem::Broken(e) => (
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read ({e})"),
            ),
        };
        error_response(status, &detail, true)
    }
}

/// The next piece of a body, waiting at most `idle` for it.
async fn next_data(body: &mut RequestBody, idle: Duration) -> Result<Option<Bytes>, BodyProblem> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyProblem::Idle(idle)),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(BodyProblem::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a small body of known length into memory. A body that came in one piece (the usual
/// case: it arrived with the head) is kept as it is, without a copy.
async fn collect(mut body: RequestBody, idle: Duration) -> Result<Bytes, BodyProblem> {
    let Some(first) = next_data(&mut body, idle).await? else {
        return Ok(Bytes::new());
    };
    if body.is_end_stream() {
        return Ok(first);
    }
    let mut all = BytesMut::from(&first[..]);
    while let Some(data) = next_data(&mut body, idle).await? {
        all.extend_from_slice(&data);
    }
    Ok(all.freeze())
}

/// Reads a chunked body whole: in memory up to [`SPOOL_IN_MEMORY`], then in a temporary file,
/// refusing it past `limit-post`.
async fn spool(mut body: RequestBody, limits: &Limits) -> Result<(Source, u64), BodyProblem> {
    let broken = |what: &str, e: std::io::Error| BodyProblem::Broken(format!("{what}: {e}"));
    let mut memory = BytesMut::new();
    let mut file: Option<std::fs::File> = None;
    let mut total = 0u64;
    while let Some(data) = next_data(&mut body, limits.body_timeout).await? {
        total += data.len() as u64;
        if let Some(limit) = limits.body_bytes.filter(|limit| total > *limit) {
            return Err(BodyProblem::TooLarge(limit));
        }
        if file.is_none() && memory.len() + data.len() > SPOOL_IN_MEMORY {
            let mut f =
                tempfile::tempfile().map_err(|e| broken("cannot create a spool file", e))?;
            f.write_all(&memory)
                .map_err(|e| broken("cannot write the spool file", e))?;
            memory.clear();
            file = Some(f);
        }
        match &mut file {
            Some(f) => f
                .write_all(&data)
                .map_err(|e| broken("cannot write the spool file", e))?,
            None => memory.extend_from_slice(&data),
        }
    }
    let source = match file {
        Some(mut f) => {
            f.rewind()
                .map_err(|e| broken("cannot read the spool file", e))?;
            Source::File {
                reader: std::io::BufReader::with_capacity(64 * 1024, f),
                remaining: total,
            }
        }
        None => Source::Memory(memory.freeze()),
    };
    Ok((source, total))
}

/// Counts a request waiting for an application slot while it exists.
struct Waiting<'a>(&'a std::cell::Cell<usize>);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::cell::Cell<usize>) -> Self {
        count.set(count.get() + 1);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl App for WsgiApp {
    fn call(self: Rc<Self>, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Answer {
        let (parts, body) = req.into_parts();
        // A declared length over the limit is refused before the body is read, so no
        // 100 Continue goes out either.
        if let (Some(limit), Some(len)) = (self.limits.body_bytes, body.size_hint().exact()) {
            if len > limit {
                return Answer::Now(BodyProblem::TooLarge(limit).response());
            }
        }
        let plan = plan(&parts, &body);
        // The usual request: no body, and the app runs on this thread. Its one slot is free
        // unless a streamed response still holds it, so the app is called right here: no
        // future to box, nothing to wait for.
        if self.inline && matches!(plan, Plan::Empty) {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                let request = AppRequest {
                    parts,
                    conn,
                    source: Source::Empty,
                    content_length: None,
                };
                return Answer::Now(Python::attach(|py| {
                    respond_inline(py, &self.core, request, permit)
                }));
            }
        }
        Answer::Later(Box::pin(async move {
            let idle = self.limits.body_timeout;
            let (source, content_length, needs_thread) = match plan {
                Plan::Empty => (Source::Empty, None, false),
                Plan::Small => match collect(body, idle).await {
                    Ok(data) => (Source::Memory(data), None, false),
                    Err(problem) => return problem.response(),
                },
                Plan::Chunked => match spool(body, &self.limits).await {
                    Ok((source, total)) => (source, Some(total), false),
                    Err(problem) => return problem.response(),
                },
                Plan::Stream => (
                    Source::Stream {
                        body,
                        chunk: Bytes::new(),
                        done: false,
                        idle,
                    },
                    None,
                    true,
                ),
            };
            // Every slot busy and the queue full: a 503 now beats a wait without end.
            if self.slots.available_permits() == 0
                && self.waiting.get() >= self.limits.request_queue
            {
                let mut r = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "every application thread is busy and the request queue is full",
                    false,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                return r;
            }
            let waiting = Waiting::new(&self.waiting);
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down", true);
            };
            drop(waiting);
            let request = AppRequest {
                parts,
                conn,
                source,
                content_length,
            };
            if self.inline && !needs_thread {
                Python::attach(|py| respond_inline(py, &self.core, request, permit))
            } else {
                respond_on_thread(&self, request, permit).await
            }
        }))
    }
}

/// Everything about a request an app thread needs; `Send`, unlike the hyper request.
struct AppRequest {
    parts: Parts,
    conn: Arc<ConnInfo>,
    source: Source,
    content_length: Option<u64>,
}

/// Calls the application for one request; shared by both shapes. A failure comes with
/// whether the head already went out (thread-pool write()), which decides 500 or a cut.
fn begin(
    py: Python<'_>,
    core: &Core,
    req: AppRequest,
    sink: Option<Sink>,
) -> Result<Outcome, (Failure, bool)> {
    let raised = |e| (Failure::Raised(e), false);
    let input = match req.source {
        Source::Empty => core.empty_input.bind(py).clone(),
        source => Bound::new(py, InputStream::new(source)).map_err(raised)?,
    };
    let environ = core
        .template
        .build(
            py,
            &req.parts,
            &req.conn,
            input.into_any(),
            req.content_length,
        )
        .map_err(raised)?;
    // A keep-alive connection's previous start_response, when nothing else holds it.
    let kept = req
        .conn
        .app_state
        .get()
        .and_then(|s| s.downcast_ref::<ConnEnviron>())
        .filter(|_| sink.is_none());
    let previous = kept.and_then(|k| k.responder.lock().ok()?.take());
    let responder = match previous.and_then(|r| r.reuse(py)) {
        Some(responder) => responder,
        None => Responder::new(py, sink).map_err(raised)?,
    };
    let start_response = responder.start(py);
    let head_only = req.parts.method == Method::HEAD;
    let outcome = response::start(py, core.app.bind(py), environ, start_response, head_only)
        .map_err(|failure| (failure, start_response.get().delivered()));
    responder.finish(py);
    if let Some(mut slot) = kept.and_then(|k| k.responder.lock().ok()) {
        *slot = Some(responder);
    }
    outcome
}

/// Runs the application on the event-loop thread (threads = 1) and builds the response.
fn respond_inline(
    py: Python<'_>,
    core: &Core,
    req: AppRequest,
    permit: OwnedSemaphorePermit,
) -> Response<Body> {
    let head_request = req.parts.method == Method::HEAD;
    let label = RequestLabel {
        app: core.name.clone(),
        request: RequestLine::of(&req.parts),
        stats: core.stats.clone(),
    };
    let timer = label.begin(0);
    let result = match begin(py, core, req, None) {
        Ok(Outcome::Complete {
            head: Some(head),
            body,
        }) => response::complete_response(head, body, head_request),
        Ok(Outcome::HeadOnly { head: Some(head) }) => Ok(response::head_response(head)),
        Ok(Outcome::File { head, body }) => Ok(response::file_response(head, body)),
        Ok(Outcome::Streaming {
            head: Some(head),
            prefix,
            rest,
        }) => {
            let body = InlineBody::new(&head, prefix, rest, label, timer, permit);
            let mut response = response::head_response(head);
            *response.body_mut() = Body::Stream(Box::pin(body));
            return response;
        }
        // Inline, write() buffers, so the head is never delivered early.
        Ok(_) => Err(Failure::Rule("internal: head delivered early".into())),
        Err((failure, _)) => Err(failure),
    };
    match result {
        Ok(response) => {
            if let Some(n) = response.body().size_hint().exact() {
                core.stats.sent(n as usize);
            }
            response
        }
        Err(failure) => {
            label.report(py, &failure);
            response::internal_error()
        }
    }
}

/// Runs the request on an app thread and relays the response through a bounded channel.
async fn respond_on_thread(
    app: &WsgiApp,
    req: AppRequest,
    permit: OwnedSemaphorePermit,
) -> Response<Body> {
    let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
    let core = app.core.clone();
    let head_request = req.parts.method == Method::HEAD;
    app.pool.submit(Box::new(move |py, thread| {
        run_on_thread(py, &core, req, Sink::new(tx), thread);
        drop(permit);
    }));
    match rx.recv().await {
        Some(Msg::Head {
            head,
            body,
            complete: true,
        }) => response::complete_response(head, body, head_request)
            .unwrap_or_else(|_| response::internal_error()),
        Some(Msg::File { head, body }) => response::file_response(head, body),
        Some(Msg::Head { head, body, .. }) => {
            let mut response = response::head_response(head);
            if !head_request {
                *response.body_mut() = Body::Stream(Box::pin(ChannelBody::new(body, rx)));
            }
            response
        }
        _ => response::internal_error(),
    }
}

/// The app-thread side of [`respond_on_thread`].
fn run_on_thread(py: Python<'_>, core: &Core, req: AppRequest, sink: Sink, thread: usize) {
    let head_request = req.parts.method == Method::HEAD;
    let label = RequestLabel {
        app: core.name.clone(),
        request: RequestLine::of(&req.parts),
        stats: core.stats.clone(),
    };
    let _timer = label.begin(thread);
    // Reports a failure: a 500 if the head has not gone out, else a cut connection.
    let fail = |failure: Failure, delivered: bool| {
        label.report(py, &failure);
        let _ = if delivered {
            sink.send(py, Msg::Abort)
        } else {
            let body = vec![Bytes::from_static(b"500 Internal Server Error\n")];
            sink.head(py, internal_error_head(), body, true)
        };
    };
    let (head, prefix, mut rest) = match begin(py, core, req, Some(sink.clone())) {
        Err((failure, delivered)) => return fail(failure, delivered),
        Ok(Outcome::Complete {
            head: Some(head),
            body,
        }) => {
            match response::check_length(&head, &body) {
                Err(failure) if !head_request => fail(failure, false),
                _ => {
                    core.stats.sent(body.iter().map(Bytes::len).sum());
                    drop(sink.head(py, head, body, true));
                }
            }
            return;
        }
        Ok(Outcome::HeadOnly { head }) => {
            if let Some(head) = head {
                let _ = sink.head(py, head, Vec::new(), true);
            }
            return;
        }
        Ok(Outcome::File { head, body }) => {
            // The event loop sends the file; this thread is free for the next request.
            let _ = sink.send(py, Msg::File { head, body });
            return;
        }
        Ok(Outcome::Complete { head: None, body }) => {
            for chunk in body {
                if sink.data(py, chunk).is_err() {
                    return;
                }
            }
            let _ = sink.send(py, Msg::End);
            return;
        }
        Ok(Outcome::Streaming { head, prefix, rest }) => (head, prefix, rest),
    };
    let mut length = response::LengthCheck::new(head.as_ref());
    if let Some(head) = head {
        if sink.head(py, head, Vec::new(), false).is_err() {
            return; // the client left; `rest` is closed when dropped
        }
    }
    let mut pending: std::collections::VecDeque<Bytes> = prefix.into();
    loop {
        let next = match pending.pop_front() {
            Some(chunk) => Ok(Some(chunk)),
            None => rest.next(py),
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(failure) => return fail(failure, true),
        };
        let chunk = match length.pass(chunk) {
            Ok(chunk) => chunk,
            Err((_, rule)) => return fail(Failure::Rule(rule), true),
        };
        let last = length.is_done() && pending.is_empty();
        if last {
            if let Err(failure) = response::check_exhausted(py, &mut rest) {
                return fail(failure, true);
            }
        }
        core.stats.sent(chunk.len());
        if !chunk.is_empty() && sink.data(py, chunk).is_err() {
            return; // the client left; `rest` is closed when dropped
        }
        if last {
            break;
        }
    }
    if let Some(err) = rest.close(py) {
        return fail(Failure::CloseRaised(err), true);
    }
    match length.finish() {
        Ok(()) => drop(sink.send(py, Msg::End)),
        Err(rule) => fail(Failure::Rule(rule), true),
    }
}

fn internal_error_head() -> start_response::Head {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    start_response::Head {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        reason: None,
        headers,
        content_length: None,
    }
}
