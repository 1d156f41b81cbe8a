//! The WSGI bridge (PEP 3333): an [`App`] that calls a Python WSGI application.
//!
//! Two shapes, chosen by `threads`:
//! - `threads = 1`: the application runs on the event-loop thread itself, inside the request's
//!   future, as bjoern does: no thread hand-off and no GIL hand-off per request. Request bodies
//!   are read before the call ([`crate::bridge::body`]); with `post-buffering = 0`, those
//!   streamed in while the app runs go to a single app thread, since the loop thread cannot
//!   wait for the socket while it runs Python. One app slot keeps it one request at a time
//!   either way.
//! - `threads = N`: every request runs on a fixed pool of N Python threads; the event loop
//!   never takes the GIL.

mod channel;
mod chunk;
pub(crate) mod environ;
mod failure;
mod input;
mod iteration;
mod pool;
mod response;
mod start_response;
mod streams;

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{header, Method, Request, Response, StatusCode};
use http_body::Body as _;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tokio::sync::mpsc;

use crate::bridge::admission::{Admission, Slot};
use crate::bridge::body::{self, Plan};
use crate::bridge::head::{self as heads, Head};
use crate::bridge::label::{RequestLabel, RequestLine};
use crate::bridge::outbox::{Outbox, Relayed};
use crate::bridge::pipe::pipe;
use crate::bridge::spool::Spool;
use crate::bridge::Loaded;
use crate::bridge::{Bridge, LoadFailed};
use crate::config::{AppTarget, Config, Limits};
use crate::conn::ConnInfo;
use crate::http::{Answer, App, Body, RequestBody};
use crate::scoreboard::RequestStats;
use crate::{error, interp, log};
use channel::{Msg, Sink};
use environ::{ConnEnviron, Template};
use failure::Failure;
use input::{InputStream, Source};
use pool::Pool;
use response::Produced;
use start_response::Responder;
pub(crate) use streams::{ErrorStream, FileWrapper};

/// Chunks in flight between an app thread and the event loop, per response.
const CHANNEL_DEPTH: usize = 4;

/// An application the bridge calls, with its name for log lines.
struct Served {
    app: Py<PyAny>,
    /// `mysite.wsgi:application`, or `api.wsgi:application (mount /api)`.
    name: Arc<str>,
}

/// A `mount`: an application under a URL prefix.
struct Mounted {
    /// Starts with `/`, no trailing `/`; compared with the percent-decoded path.
    prefix: Box<[u8]>,
    /// SCRIPT_NAME: the prefix as a latin-1 string (PEP 3333), made once.
    script_name: Py<PyString>,
    served: Served,
}

/// Which application serves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The main application (or, without one, the first mount's as uWSGI's default app),
    /// SCRIPT_NAME empty.
    Main,
    /// `mounts[i]`, SCRIPT_NAME its prefix (u32: the route rides in every request).
    Mount(u32),
}

/// What the app threads share: the applications, the environ template, the worker's stats.
struct Core {
    /// For requests no mount takes; `None` only with mounts and `no-default-app` (a 404).
    main: Option<Served>,
    /// Empty for most sites, which then pay one length check per request for the feature.
    mounts: Vec<Mounted>,
    template: Template,
    stats: Arc<RequestStats>,
    /// The `wsgi.input` of every request without a body: it holds no state, so one serves all.
    empty_input: Py<InputStream>,
    /// The bytes this worker's request and response bodies hold in temporary files.
    spool: Arc<Spool>,
    /// How far a streamed response may run ahead of its client (`response-buffer`).
    response_buffer: u64,
}

/// A loaded WSGI application, ready to serve requests.
pub(crate) struct WsgiApp {
    core: Arc<Core>,
    /// One slot per request allowed in the application at once (`threads`).
    admission: Admission,
    limits: Limits,
    inline: bool,
    pool: Pool,
    /// The app threads' wake-ups of the connections' tasks, in batches.
    outbox: Arc<Outbox>,
}

impl Core {
    /// The route of a request for `path` (its target's path), `None` when nothing serves it
    /// (mounts, no main application and `no-default-app`). Called only when there are mounts:
    /// kept out of line, so the request path of a site without them stays as it was.
    #[inline(never)]
    fn route(&self, path: &str) -> Option<Route> {
        // Decoded as PATH_INFO is, but not through `environ::decode_path`: a second caller
        // made LLVM move that one out of line, 39 instructions a request for every site.
        let decoded: std::borrow::Cow<'_, [u8]> = match path.contains('%') {
            true => percent_encoding::percent_decode_str(path)
                .collect::<Vec<u8>>()
                .into(),
            false => path.as_bytes().into(),
        };
        match crate::mount::longest(self.mounts.iter().map(|m| &*m.prefix), &decoded) {
            Some(i) => u32::try_from(i).ok().map(Route::Mount),
            None => self.main.as_ref().map(|_| Route::Main),
        }
    }

    /// The application of a route, and its mount.
    fn served(&self, route: Route) -> (Option<&Served>, Option<&Mounted>) {
        match route {
            Route::Main => (self.main.as_ref(), None),
            Route::Mount(i) => {
                let mount = self.mounts.get(i as usize);
                (mount.map(|m| &m.served), mount)
            }
        }
    }

    /// The name of a route's application, for log lines.
    fn name(&self, route: Route) -> Arc<str> {
        match self.served(route).0 {
            Some(served) => served.name.clone(),
            None => Arc::from("(no application)"),
        }
    }
}

impl WsgiApp {
    /// Imports the applications named by the config (unless the master already did:
    /// `preloaded`). On failure the traceback and a one-line reason are logged, and the worker
    /// must exit.
    pub(crate) fn load(
        py: Python<'_>,
        config: &Config,
        preloaded: Option<Loaded>,
        stats: Arc<RequestStats>,
    ) -> Result<WsgiApp, LoadFailed> {
        let loaded = match preloaded {
            Some(loaded) => loaded,
            None => load_apps(py, config)?,
        };
        let mut mounts = Vec::with_capacity(config.mounts.len());
        for (mount, app) in config.mounts.iter().zip(loaded.mounts) {
            mounts.push(Mounted {
                prefix: mount.prefix.as_bytes().into(),
                script_name: environ::latin1(py, mount.prefix.as_bytes()).unbind(),
                served: Served {
                    app,
                    name: format!("{} (mount {})", mount.target.describe(), mount.prefix).into(),
                },
            });
        }
        let main = match loaded.main {
            Some(app) => Some(Served {
                app,
                name: config.app.describe().into(),
            }),
            // uWSGI's default app: the first mount serves what no mount takes.
            None if !config.no_default_app => mounts.first().map(|m| Served {
                app: m.served.app.clone_ref(py),
                name: m.served.name.clone(),
            }),
            None => None,
        };
        let template = Bound::new(py, ErrorStream::default())
            .and_then(|errors| {
                Template::new(
                    py,
                    errors.into_any(),
                    config
                        .wsgi_file_wrapper
                        .then(|| py.get_type::<FileWrapper>().into_any()),
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
        let outbox = Outbox::new().map_err(|err| {
            error!("cannot make an eventfd for the application threads: {err}");
            LoadFailed
        })?;
        Ok(WsgiApp {
            core: Arc::new(Core {
                main,
                mounts,
                template,
                stats,
                empty_input,
                spool: Spool::new(config.limits.spool_budget),
                response_buffer: config.limits.response_buffer,
            }),
            admission: Admission::new(config.threads, config.limits.request_queue),
            limits: config.limits.clone(),
            inline: config.threads == 1,
            pool: Pool::new(config.threads),
            outbox,
        })
    }
}

/// Imports the applications: the main one, then each mount's, in the order given (as uWSGI
/// loads them); the first that fails stops the loading, its traceback and a one-line reason
/// logged. Used by each worker, or by the master once (`preload`).
pub(crate) fn load_apps(py: Python<'_>, config: &Config) -> Result<Loaded, LoadFailed> {
    let main = match config.main_app {
        true => Some(load_app(py, &config.app, None)?),
        false => None,
    };
    let mut mounts = Vec::with_capacity(config.mounts.len());
    for mount in &config.mounts {
        mounts.push(load_app(py, &mount.target, Some(&mount.prefix))?);
    }
    Ok(Loaded { main, mounts })
}

/// Imports one application (`mount`: the prefix it is mounted at).
fn load_app(
    py: Python<'_>,
    target: &AppTarget,
    mount: Option<&str>,
) -> Result<Py<PyAny>, LoadFailed> {
    let name = match mount {
        Some(prefix) => format!("{} (mount {prefix})", target.describe()),
        None => target.describe(),
    };
    interp::load_callable(py, target).map_err(|err| {
        log::write_block(
            log::Level::Error,
            format_args!("could not load the WSGI application {name}:"),
            &failure::traceback(py, &err),
        );
        error!(
            "could not load the WSGI application {name} ({}): {}",
            target.origin,
            one_line(py, &err)
        );
        LoadFailed
    })
}

/// `ExceptionType: message`, for the one-line summary after a traceback.
fn one_line(py: Python<'_>, err: &PyErr) -> String {
    let kind = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("{kind}: {}", err.value(py))
}

impl App for WsgiApp {
    fn call(self: Rc<Self>, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Answer {
        // A site without mounts pays this length check and carries the route (38 instructions
        // of a hello-world request's 17,700 in all, with bench/callgrind.py), no allocation.
        let route = if self.core.mounts.is_empty() {
            Route::Main
        } else {
            match self.core.route(req.uri().path()) {
                Some(route) => route,
                None => return not_found(),
            }
        };
        let (parts, body) = req.into_parts();
        if let Err(problem) = body::check_declared(&self.limits, &body) {
            return Answer::Now(problem.response());
        }
        let plan = Plan::of(&parts, &body, &self.limits);
        // The usual request: no body, or a small one read with its head, and the app runs on
        // this thread. Its one slot is free unless a streamed response still holds it, so
        // the app is called right here: no future to box, nothing to wait for.
        if self.inline && plan.is_ready(&body, &self.limits) {
            if let Some(slot) = self.admission.try_now() {
                let request = AppRequest {
                    parts,
                    conn,
                    source: match plan {
                        Plan::Empty => Source::Empty,
                        _ => Source::from(body::take_ready(body)),
                    },
                    content_length: None,
                    route,
                };
                return Answer::Now(Python::attach(|py| {
                    respond_inline(py, &self.core, request, slot)
                }));
            }
        }
        let memory = match plan {
            Plan::Empty => None,
            Plan::Buffer { memory } => Some(memory),
            // A streamed body is read by the application as it comes: on a thread.
            Plan::Stream => {
                let source = Source::Stream {
                    body,
                    chunk: Bytes::new(),
                    done: false,
                    idle: self.limits.body_timeout,
                };
                return Answer::Later(Box::pin(async move {
                    let slot = match self.admission.admit().await {
                        Ok(slot) => slot,
                        Err(refused) => return refused,
                    };
                    let request = AppRequest::new(parts, conn, source, None, route);
                    respond_on_thread(&self, request, slot).await
                }));
            }
        };
        // One future for each place the app runs, so that the inline one (a POST's usual
        // way) does not carry the thread's states: it is 992 bytes, moved into its box
        // whole (105 instructions less for a 4 KiB JSON echo, by bench/callgrind.py).
        if self.inline {
            return Answer::Later(Box::pin(async move {
                let (source, content_length, slot) = match self.admit(body, memory).await {
                    Ok(admitted) => admitted,
                    Err(answer) => return answer,
                };
                let request = AppRequest::new(parts, conn, source, content_length, route);
                Python::attach(|py| respond_inline(py, &self.core, request, slot))
            }));
        }
        Answer::Later(Box::pin(async move {
            let (source, content_length, slot) = match self.admit(body, memory).await {
                Ok(admitted) => admitted,
                Err(answer) => return answer,
            };
            let request = AppRequest::new(parts, conn, source, content_length, route);
            respond_on_thread(&self, request, slot).await
        }))
    }
}

impl WsgiApp {
    /// The request's body, read into memory (or a spool file) when it has one, with its
    /// length if it came chunked, and then a slot: the body is read before the request asks
    /// for one, so a slow upload holds only its own connection. Or the answer that ends the
    /// request.
    async fn admit(
        &self,
        body: RequestBody,
        memory: Option<u64>,
    ) -> Result<(Source, Option<u64>, Slot), Response<Body>> {
        let (source, content_length) = match memory {
            None => (Source::Empty, None),
            Some(memory) => {
                let chunked = body.size_hint().exact().is_none();
                match body::buffer(body, memory, &self.limits, &self.core.spool).await {
                    // A chunked body's length is known now: Django reads exactly
                    // CONTENT_LENGTH bytes.
                    Ok(buffered) => {
                        let len = chunked.then(|| buffered.len());
                        (Source::from(buffered), len)
                    }
                    Err(problem) => return Err(problem.response()),
                }
            }
        };
        let slot = self.admission.admit().await?;
        Ok((source, content_length, slot))
    }
}

impl Bridge for WsgiApp {
    fn shutdown(&self) {
        self.pool.shutdown();
    }
}

/// The answer to a request no mount takes, on a site with no main application.
#[cold]
#[inline(never)]
fn not_found() -> Answer {
    Answer::Now(crate::http::error_response(
        StatusCode::NOT_FOUND,
        "",
        false,
    ))
}

/// Everything about a request an app thread needs; `Send`, unlike the hyper request.
struct AppRequest {
    parts: Parts,
    conn: Arc<ConnInfo>,
    source: Source,
    content_length: Option<u64>,
    route: Route,
}

impl AppRequest {
    fn new(
        parts: Parts,
        conn: Arc<ConnInfo>,
        source: Source,
        content_length: Option<u64>,
        route: Route,
    ) -> AppRequest {
        AppRequest {
            parts,
            conn,
            source,
            content_length,
            route,
        }
    }
}

/// Calls the application for one request; shared by both shapes. A failure comes with
/// whether the head already went out (thread-pool write()), which decides 500 or a cut.
fn begin(
    py: Python<'_>,
    core: &Core,
    req: AppRequest,
    sink: Option<Sink>,
) -> Result<Produced, (Failure, bool)> {
    let raised = |e| (Failure::Raised(e), false);
    let (Some(served), mount) = core.served(req.route) else {
        return Err((
            Failure::Rule("internal: no application for the route".into()),
            false,
        ));
    };
    // A body's stream is let go when the response is over; the shared empty one never is.
    let (input, body) = match req.source {
        Source::Empty => (core.empty_input.bind(py).clone(), None),
        source => {
            let input = Bound::new(py, InputStream::new(source)).map_err(raised)?;
            (input.clone(), Some(input.unbind()))
        }
    };
    let environ = core
        .template
        .build(
            py,
            &req.parts,
            &req.conn,
            input.into_any(),
            req.content_length,
            mount.map(|m| (m.script_name.bind(py), m.prefix.len())),
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
    let app = served.app.bind(py);
    let outcome = response::start(py, app, environ, start_response, head_only, body)
        .map_err(|failure| (failure, start_response.get().delivered()));
    responder.finish(py);
    if let Some(mut slot) = kept.and_then(|k| k.responder.lock().ok()) {
        *slot = Some(responder);
    }
    outcome
}

/// Runs the application on the event-loop thread (threads = 1) and builds the response.
fn respond_inline(py: Python<'_>, core: &Core, req: AppRequest, permit: Slot) -> Response<Body> {
    let head_request = req.parts.method == Method::HEAD;
    let label = RequestLabel {
        app: core.name(req.route),
        request: RequestLine::of(&req.parts),
        stats: core.stats.clone(),
    };
    let timer = label.begin(0);
    let result = match begin(py, core, req, None) {
        Ok(Produced::Complete {
            head: Some(head),
            body,
        }) => complete_response(head, body, head_request),
        Ok(Produced::HeadOnly { head: Some(head) }) => Ok(heads::head_response(head)),
        Ok(Produced::File { head, body }) => Ok(response::file_response(head, body)),
        Ok(Produced::Streaming {
            head: Some(head),
            prefix,
            rest,
        }) => {
            let pipe = pipe(core.response_buffer, &core.spool);
            let body = response::stream_inline(&head, prefix, rest, label, timer, permit, pipe);
            let mut response = heads::head_response(head);
            *response.body_mut() = body;
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
            failure.report(py, &label);
            heads::internal_error()
        }
    }
}

/// Runs the request on an app thread and relays the response through a bounded channel.
async fn respond_on_thread(app: &WsgiApp, req: AppRequest, permit: Slot) -> Response<Body> {
    let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
    let core = app.core.clone();
    let head_request = req.parts.method == Method::HEAD;
    app.pool.submit(Box::new(move |py, thread| {
        run_on_thread(py, &core, req, Sink::new(tx), thread);
        drop(permit);
    }));
    let relayed = Relayed::new(&app.outbox);
    let first = std::future::poll_fn(|cx| relayed.poll(cx, |cx| rx.poll_recv(cx))).await;
    match first {
        Some(Msg::Head {
            head,
            body,
            complete: true,
        }) => {
            complete_response(head, body, head_request).unwrap_or_else(|_| heads::internal_error())
        }
        Some(Msg::File { head, body }) => response::file_response(head, body),
        Some(Msg::Head { head, body, .. }) => {
            let mut response = heads::head_response(head);
            if !head_request {
                let pipe = pipe(app.core.response_buffer, &app.core.spool);
                *response.body_mut() = channel::stream_channel(body, rx, pipe);
            }
            response
        }
        _ => heads::internal_error(),
    }
}

/// The app-thread side of [`respond_on_thread`].
fn run_on_thread(py: Python<'_>, core: &Core, req: AppRequest, sink: Sink, thread: usize) {
    let head_request = req.parts.method == Method::HEAD;
    let label = RequestLabel {
        app: core.name(req.route),
        request: RequestLine::of(&req.parts),
        stats: core.stats.clone(),
    };
    let _timer = label.begin(thread);
    // Reports a failure: a 500 if the head has not gone out, else a cut connection.
    let fail = |failure: Failure, delivered: bool| {
        failure.report(py, &label);
        let _ = if delivered {
            sink.send(py, Msg::Abort)
        } else {
            let body = vec![Bytes::from_static(b"500 Internal Server Error\n")];
            sink.head(py, internal_error_head(), body, true)
        };
    };
    let (head, prefix, mut rest) = match begin(py, core, req, Some(sink.clone())) {
        Err((failure, delivered)) => return fail(failure, delivered),
        Ok(Produced::Complete {
            head: Some(head),
            body,
        }) => {
            match heads::check_length(&head, &body).map_err(Failure::Rule) {
                Err(failure) if !head_request => fail(failure, false),
                _ => {
                    core.stats.sent(body.iter().map(Bytes::len).sum());
                    drop(sink.head(py, head, body, true));
                }
            }
            return;
        }
        Ok(Produced::HeadOnly { head }) => {
            if let Some(head) = head {
                let _ = sink.head(py, head, Vec::new(), true);
            }
            return;
        }
        Ok(Produced::File { head, body }) => {
            // The event loop sends the file; this thread is free for the next request.
            let _ = sink.send(py, Msg::File { head, body });
            return;
        }
        Ok(Produced::Complete { head: None, body }) => {
            for chunk in body {
                if sink.data(py, chunk).is_err() {
                    return;
                }
            }
            let _ = sink.send(py, Msg::End);
            return;
        }
        Ok(Produced::Streaming { head, prefix, rest }) => (head, prefix, rest),
    };
    let mut length = heads::LengthCheck::new(head.as_ref());
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

fn internal_error_head() -> Head {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut head = Head::new(StatusCode::INTERNAL_SERVER_ERROR, None, 1);
    head.headers = headers;
    head
}

/// [`heads::complete_response`], a broken rule reported as the application's failure.
fn complete_response(
    head: Head,
    body: Vec<Bytes>,
    head_request: bool,
) -> Result<Response<Body>, Failure> {
    heads::complete_response(head, body, head_request).map_err(Failure::Rule)
}
