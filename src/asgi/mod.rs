//! The ASGI bridge (asgiref's ASGI 3, HTTP and WebSocket spec 2.5, lifespan 2.0): an [`App`]
//! that calls a Python ASGI application.
//!
//! The application runs on a Python event loop (asyncio's, or uvloop's) that one thread of
//! the worker owns ([`runner`]); the worker's Rust event loop keeps every socket, and never
//! takes the GIL. A request goes from one loop to the other as a job (its scope is built on
//! the Python side), and its response comes back through a channel ([`exchange`]):
//! - a request body is read whole first (post-buffering, as for WSGI), then handed out as
//!   `http.request` messages ([`http`]);
//! - a response body goes out complete (one buffer), streamed through the response pipe
//!   (the application may run ahead of a slow client up to `response-buffer`; past that its
//!   `send()` waits), or as a file (`http.response.pathsend`, sent with sendfile where the
//!   transport can);
//! - a WebSocket is accepted or denied by the application, then served by a session on the
//!   worker's loop ([`websocket`]);
//! - lifespan events run once per worker ([`lifespan`]).

pub(crate) mod exchange;
mod http;
mod lifespan;
mod message;
pub(crate) mod runner;
mod scope;
mod shared;
mod websocket;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::http::Request;
use pyo3::prelude::*;

use crate::bridge::admission::Admission;
use crate::bridge::body::{self, Buffered, Plan};
use crate::bridge::outbox::Outbox;
use crate::bridge::spool::Spool;
use crate::bridge::{Bridge, LoadFailed};
use crate::config::{Config, Limits};
use crate::conn::ConnInfo;
use crate::http::upgrade::Handoff;
use crate::http::{Answer, App, RequestBody};
use crate::scoreboard::{RequestStats, MAX_CORES};
use crate::{error, info, log};
use runner::Runner;
use scope::Templates;
use shared::{Core, CoreLease, Cores, Held};

/// A loaded ASGI application, its loop thread running.
pub(crate) struct AsgiApp {
    core: Arc<Core>,
    runner: Runner,
    lifespan: Option<lifespan::Running>,
    admission: Admission,
    limits: Limits,
    mercy: Duration,
    /// Scoreboard entries ("cores") free for requests in the application: each request
    /// running has its own, so harakiri and the stats see every one.
    cores: RefCell<Vec<usize>>,
}

/// Imports the application named by the config, logging the traceback and a one-line reason
/// on failure.
pub(crate) fn load_app(py: Python<'_>, config: &Config) -> Result<Py<PyAny>, LoadFailed> {
    let name = config.app.describe();
    crate::interp::load_callable(py, &config.app).map_err(|err| {
        log::write_block(
            log::Level::Error,
            format_args!("could not load the application {name}:"),
            &message::traceback(py, &err),
        );
        let kind = err
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        error!(
            "could not load the application {name} ({}): {kind}: {}",
            config.app.origin,
            err.value(py)
        );
        LoadFailed
    })
}

/// Whether a callable is an ASGI 3 application: a coroutine function, or an object whose
/// `__call__` is one (Django's `get_asgi_application()`, Starlette's apps).
pub(crate) fn looks_like_asgi(py: Python<'_>, app: &Bound<'_, PyAny>) -> bool {
    let check = || -> PyResult<bool> {
        let inspect = py.import("inspect")?;
        let asyncio = py.import("asyncio")?;
        let is_coroutine_function = |o: &Bound<'_, PyAny>| -> PyResult<bool> {
            Ok(inspect
                .call_method1("iscoroutinefunction", (o,))?
                .is_truthy()?
                || asyncio
                    .call_method1("iscoroutinefunction", (o,))?
                    .is_truthy()?)
        };
        if is_coroutine_function(app)? {
            return Ok(true);
        }
        if inspect.call_method1("isroutine", (app,))?.is_truthy()? {
            return Ok(false);
        }
        match app.get_type().getattr("__call__") {
            Ok(call) => is_coroutine_function(&call),
            Err(_) => Ok(false),
        }
    };
    check().unwrap_or(false)
}

impl AsgiApp {
    /// Starts the loop thread and the lifespan; on failure the reason is logged and the
    /// worker must exit.
    pub(crate) fn load(
        py: Python<'_>,
        config: &Config,
        app: Py<PyAny>,
        stats: Arc<RequestStats>,
    ) -> Result<AsgiApp, LoadFailed> {
        let name: Arc<str> = config.app.describe().into();
        let runner = Runner::start(py, config.asgi.event_loop).map_err(|why| {
            error!("could not start the ASGI application {name}: {why}");
            LoadFailed
        })?;
        let core = Arc::new(Core {
            app,
            name: name.clone(),
            stats,
            state: OnceLock::new(),
            templates: Templates::default(),
            inbox: runner.inbox.clone(),
            outbox: Outbox::new().map_err(|e| {
                error!("could not start the ASGI application {name}: cannot make an eventfd: {e}");
                LoadFailed
            })?,
            spool: Spool::new(config.limits.spool_budget),
            response_buffer: config.limits.response_buffer,
            websocket: config.asgi.websocket.clone(),
        });
        let lifespan = match lifespan::startup(
            py,
            &core.app,
            &core.inbox,
            config.asgi.lifespan,
            &core.state,
        ) {
            Ok(lifespan) => lifespan,
            Err(why) => {
                error!("could not start the ASGI application {name}: {why}");
                py.detach(|| runner.stop());
                return Err(LoadFailed);
            }
        };
        info!("serving {name} as an ASGI application");
        // ASGI requests wait on the network, not on threads: as many may be in the
        // application at once as the worker holds connections; the queue is the same.
        let slots = config.limits.max_connections.max(1);
        Ok(AsgiApp {
            core,
            runner,
            lifespan,
            admission: Admission::new(slots, config.limits.request_queue),
            limits: config.limits.clone(),
            mercy: config.mercy,
            cores: RefCell::new((0..MAX_CORES).rev().collect()),
        })
    }
}

impl AsgiApp {
    /// The request body, read first, and the request's hold on the application; or the
    /// answer that ends the request. Its declared length was checked by the caller.
    async fn admit(
        self: &Rc<Self>,
        parts: &::http::request::Parts,
        body: RequestBody,
    ) -> Result<(Buffered, Held), ::http::Response<crate::http::Body>> {
        let memory = match Plan::of(parts, &body, &self.limits) {
            Plan::Empty => None,
            Plan::Buffer { memory } => Some(memory),
            // post-buffering = 0: an ASGI body still arrives whole (see docs/asgi.md).
            Plan::Stream => Some(64 * 1024),
        };
        let buffered = match memory {
            None => Buffered::Empty,
            Some(memory) => body::buffer(body, memory, &self.limits, &self.core.spool)
                .await
                .map_err(|p| p.response())?,
        };
        let slot = self.admission.admit().await?;
        Ok((
            buffered,
            Held {
                _slot: slot,
                core: CoreLease::new(self.clone()),
            },
        ))
    }
}

impl Cores for AsgiApp {
    fn take(&self) -> Option<usize> {
        self.cores.borrow_mut().pop()
    }

    fn give_back(&self, index: usize) {
        self.cores.borrow_mut().push(index);
    }
}

impl App for AsgiApp {
    fn call(self: Rc<Self>, req: Request<RequestBody>, conn: Arc<ConnInfo>) -> Answer {
        let (parts, body) = req.into_parts();
        if let Err(problem) = body::check_declared(&self.limits, &body) {
            return Answer::Now(problem.response());
        }
        // The usual request: no body, or a small one read with its head, and a slot free.
        // Straight to the application, in a future without the admission's and the body's
        // states (288 bytes against 1,136 with them: a future is moved into its box whole).
        if Plan::of(&parts, &body, &self.limits).is_ready(&body, &self.limits) {
            if let Some(slot) = self.admission.try_now() {
                let held = Held {
                    _slot: slot,
                    core: CoreLease::new(self.clone()),
                };
                let core = self.core.clone();
                let buffered = body::take_ready(body);
                let response = http::respond(core, parts, conn, buffered, held);
                return Answer::Later(Box::pin(response));
            }
        }
        Answer::Later(Box::pin(async move {
            let (buffered, held) = match self.admit(&parts, body).await {
                Ok(admitted) => admitted,
                Err(answer) => return answer,
            };
            http::respond(self.core.clone(), parts, conn, buffered, held).await
        }))
    }

    fn serves_websockets(&self) -> bool {
        true
    }

    fn websocket(
        self: Rc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
        handoff: Handoff,
    ) -> Answer {
        websocket::handshake(self.core.clone(), req, conn, handoff)
    }
}

impl Bridge for AsgiApp {
    fn shutdown(&self) {
        if let Some(lifespan) = &self.lifespan {
            lifespan.shutdown(self.mercy);
        }
        self.runner.stop();
    }
}
