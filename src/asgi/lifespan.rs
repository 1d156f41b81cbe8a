//! The ASGI lifespan protocol, once per worker: `lifespan.startup` before the worker serves
//! (a failure ends the worker as an import error does, and dragoman stops at startup), and
//! `lifespan.shutdown` after its last request. The scope's `state` dict is what the
//! application put there at startup; every request's scope gets a copy of it.
//!
//! With `lifespan = auto`, an application that raises on the lifespan scope (Django's does:
//! it serves HTTP and WebSockets only) is served without lifespan events, as the spec asks.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::message;
use super::runner::{resolve, Ctx, Inbox};
use super::scope::ASGI_VERSION;
use crate::config::asgi::Lifespan;
use crate::{info, log, warn};

/// How startup ended.
enum Started {
    Complete,
    Failed(String),
    /// The application raised or returned before it answered (not an error under `auto`).
    Unsupported(String),
}

/// What the lifespan's two sides share.
#[derive(Default)]
struct Shared {
    /// The application's `receive()` waiting for `lifespan.shutdown`.
    waiter: Option<Py<PyAny>>,
    shutdown_asked: bool,
    /// The application's lifespan task is over.
    ended: bool,
    startup: Option<mpsc::Sender<Started>>,
    shutdown: Option<mpsc::Sender<Result<(), String>>>,
}

/// The lifespan of a worker whose application takes part in it.
pub(crate) struct Running {
    shared: Arc<Mutex<Shared>>,
    inbox: Arc<Inbox>,
}

/// Runs the startup; `Ok(None)` when the application does not take part. The error is the
/// line to log. Called with the GIL, which is released while the loop thread works.
pub(crate) fn startup(
    py: Python<'_>,
    app: &Py<PyAny>,
    inbox: &Arc<Inbox>,
    mode: Lifespan,
    state_out: &std::sync::OnceLock<Py<PyDict>>,
) -> Result<Option<Running>, String> {
    if mode == Lifespan::Off {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Mutex::new(Shared {
        startup: Some(tx),
        ..Shared::default()
    }));
    let state = PyDict::new(py).unbind();
    let app = app.clone_ref(py);
    let job_shared = shared.clone();
    let job_state = state.clone_ref(py);
    inbox.push(Box::new(move |py, ctx| {
        let started = || -> PyResult<()> {
            let scope = PyDict::new(py);
            scope.set_item("type", "lifespan")?;
            let asgi = PyDict::new(py);
            asgi.set_item("version", ASGI_VERSION)?;
            asgi.set_item("spec_version", "2.0")?;
            scope.set_item("asgi", asgi)?;
            scope.set_item("state", job_state.bind(py))?;
            let channel = Bound::new(
                py,
                LifespanChannel {
                    shared: job_shared.clone(),
                    ctx: ctx.clone(),
                    started: false,
                },
            )?;
            let receive = channel.getattr("receive")?;
            let send = channel.getattr("send")?;
            let coro = app.bind(py).call1((scope, receive, send))?;
            let task = ctx.spawn(py, coro)?;
            let finished = channel.getattr("_finished")?;
            if task.call_method0("done")?.is_truthy()? {
                finished.call1((&task,))?;
            } else {
                task.call_method1("add_done_callback", (finished,))?;
            }
            Ok(())
        };
        if let Err(e) = started() {
            let text = raised(py, &e);
            if let Some(tx) = job_shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .startup
                .take()
            {
                let _ = tx.send(Started::Unsupported(text));
            }
        }
    }));
    let outcome = py.detach(move || {
        // Startup may be slow (connections, caches, migrations): no deadline, a word now
        // and then.
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(outcome) => return Some(outcome),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    info!("ASGI lifespan: still waiting for the application's startup")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    });
    match outcome {
        Some(Started::Complete) => {
            let _ = state_out.set(state);
            Ok(Some(Running {
                shared,
                inbox: inbox.clone(),
            }))
        }
        Some(Started::Failed(why)) => {
            Err(format!("the application's lifespan startup failed: {why}"))
        }
        Some(Started::Unsupported(why)) if mode == Lifespan::Auto => {
            info!(
                "ASGI lifespan: the application does not take part ({}); serving without \
                 lifespan events (lifespan = auto)",
                why.lines().last().unwrap_or("").trim()
            );
            Ok(None)
        }
        Some(Started::Unsupported(why)) => Err(format!(
            "lifespan = on, but the application did not complete its lifespan startup: {why}"
        )),
        None => Err("the ASGI loop thread ended during the lifespan startup".into()),
    }
}

impl Running {
    /// Sends `lifespan.shutdown` and waits for the answer, at most `within`. Called without
    /// the GIL.
    pub(crate) fn shutdown(&self, within: Duration) {
        let (tx, rx) = mpsc::channel();
        {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            if shared.ended {
                return;
            }
            shared.shutdown = Some(tx);
            shared.shutdown_asked = true;
        }
        let shared = self.shared.clone();
        self.inbox.push(Box::new(move |py, _ctx| {
            let waiter = shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiter
                .take();
            if let Some(f) = waiter {
                if let Ok(msg) = event(py, "lifespan.shutdown") {
                    resolve(py, f.bind(py), msg.into_any());
                }
            }
        }));
        match rx.recv_timeout(within) {
            Ok(Ok(())) => info!("ASGI lifespan: shutdown complete"),
            Ok(Err(why)) => warn!("ASGI lifespan: the application's shutdown failed: {why}"),
            Err(_) => warn!(
                "ASGI lifespan: the application did not complete its shutdown within {}s \
                 (worker-reload-mercy)",
                within.as_secs()
            ),
        }
    }
}

fn event<'py>(py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), kind)?;
    Ok(msg)
}

/// An exception's traceback, logged, and its one-line form returned.
fn raised(py: Python<'_>, err: &PyErr) -> String {
    let tb = message::traceback(py, err);
    let last = tb.lines().last().unwrap_or("").to_string();
    log::write_block(
        log::Level::Info,
        format_args!("ASGI lifespan: the application raised on the lifespan scope:"),
        &tb,
    );
    last
}

/// The lifespan's `receive` and `send`.
#[pyclass(module = "dragoman", name = "LifespanChannel")]
struct LifespanChannel {
    shared: Arc<Mutex<Shared>>,
    ctx: Arc<Ctx>,
    /// `lifespan.startup` was handed out.
    started: bool,
}

impl LifespanChannel {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl LifespanChannel {
    fn receive<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if !self.started {
            self.started = true;
            return self
                .ctx
                .ready(py, event(py, "lifespan.startup")?.into_any());
        }
        let mut shared = self.shared();
        if shared.shutdown_asked {
            drop(shared);
            return self
                .ctx
                .ready(py, event(py, "lifespan.shutdown")?.into_any());
        }
        let f = self.ctx.future(py)?;
        shared.waiter = Some(f.clone().unbind());
        Ok(f)
    }

    fn send<'py>(
        &mut self,
        py: Python<'py>,
        message: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = message::kind(&message).map_err(PyValueError::new_err)?;
        let text = message::text(&message, intern!(py, "message"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut shared = self.shared();
        match kind.to_str()? {
            "lifespan.startup.complete" => {
                if let Some(tx) = shared.startup.take() {
                    let _ = tx.send(Started::Complete);
                }
            }
            "lifespan.startup.failed" => {
                if let Some(tx) = shared.startup.take() {
                    let _ = tx.send(Started::Failed(text));
                }
            }
            "lifespan.shutdown.complete" => {
                if let Some(tx) = shared.shutdown.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            "lifespan.shutdown.failed" => {
                if let Some(tx) = shared.shutdown.take() {
                    let _ = tx.send(Err(text));
                }
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "ASGI: unknown lifespan message type {other:?}"
                )))
            }
        }
        drop(shared);
        Ok(self.ctx.done(py))
    }

    fn _finished(&mut self, py: Python<'_>, task: Bound<'_, PyAny>) {
        let cancelled = task
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false);
        let exception = if cancelled {
            None
        } else {
            task.call_method0("exception").ok().filter(|e| !e.is_none())
        };
        let mut shared = self.shared();
        shared.ended = true;
        if let Some(tx) = shared.startup.take() {
            let why = match &exception {
                Some(e) => {
                    let err = PyErr::from_value(e.clone());
                    drop(shared);
                    let why = raised(py, &err);
                    shared = self.shared();
                    why
                }
                None => "it returned without answering lifespan.startup".into(),
            };
            let _ = tx.send(Started::Unsupported(why));
        }
        if let Some(tx) = shared.shutdown.take() {
            let _ = tx.send(match exception {
                Some(e) => Err(PyErr::from_value(e).to_string()),
                None => Ok(()),
            });
        }
    }
}
