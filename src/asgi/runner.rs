//! The thread an ASGI application runs on: one per worker, owning a Python event loop
//! (asyncio's, or uvloop's), and the way the worker's Rust event loop hands it work.
//!
//! The two loops never wait on each other. The Rust side puts jobs in an [`Inbox`] (a locked
//! vector) and, when the vector was empty, writes to an eventfd that the Python loop watches
//! (`loop.add_reader`): no GIL is taken on the I/O thread, as `call_soon_threadsafe` would
//! need. The Python side runs each batch of jobs in one callback, with the GIL it holds
//! anyway. Answers go back through tokio channels, whose wake-ups of the connections' tasks
//! come in batches too ([`crate::bridge::outbox`]). The loop thread runs in the batch
//! scheduling class ([`batch_scheduling`]), so the handoffs batch up instead of switching
//! threads for every request.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};

use crate::bridge::outbox::Batch;
use crate::config::asgi::EventLoop;
use crate::{error, info, warn};

/// Work for the loop thread: runs with the GIL held, inside a callback of the Python loop.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>, &Arc<Ctx>) + Send>;

/// Jobs for the loop thread, and the eventfd that wakes it (the loop watches it with
/// `add_reader`).
pub(crate) type Inbox = Batch<Job>;

/// The loop thread's Python objects, made once on it, for the jobs.
pub(crate) struct Ctx {
    pub(crate) event_loop: Py<PyAny>,
    create_future: Py<PyAny>,
    /// A future already done (its result None): what `send()` returns when nothing is to
    /// be waited for. Any number of awaits may share it.
    done: Py<PyAny>,
    /// Starts a task for a coroutine: `asyncio.eager_task_factory` where it exists (3.12+),
    /// so a request that needs no wait runs to its end at once, without a trip through the
    /// loop's queue; else `loop.create_task`.
    spawn: Py<PyAny>,
    eager: bool,
    /// [`RUN`]'s coroutine function.
    run: Py<PyAny>,
    pub(crate) inbox: Arc<Inbox>,
}

/// Runs an application call and reports its end to the channel, inside the task: a done
/// callback would cost the request one more trip through the loop's queue.
const RUN: &str = r#"
import asyncio

async def run(app, scope, receive, send, finished):
    try:
        await app(scope, receive, send)
    except BaseException as exc:
        finished(exc)
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
            raise
    else:
        finished(None)
"#;

impl Ctx {
    /// A new pending future of the loop.
    pub(crate) fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.create_future.bind(py).call0()
    }

    /// A future done with `value`.
    pub(crate) fn ready<'py>(
        &self,
        py: Python<'py>,
        value: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = self.future(py)?;
        f.call_method1(pyo3::intern!(py, "set_result"), (value,))?;
        Ok(f)
    }

    /// The shared done future.
    pub(crate) fn done<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.done.bind(py).clone()
    }

    /// Calls the application in a task of its own; `finished` gets the exception it raised,
    /// or None, when it is over.
    pub(crate) fn start(
        &self,
        py: Python<'_>,
        app: &Py<PyAny>,
        scope: Bound<'_, PyAny>,
        channel: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let receive = channel.getattr(pyo3::intern!(py, "receive"))?;
        let send = channel.getattr(pyo3::intern!(py, "send"))?;
        let finished = channel.getattr(pyo3::intern!(py, "_finished"))?;
        let coro = self
            .run
            .bind(py)
            .call1((app.bind(py), scope, receive, send, finished))?;
        self.spawn(py, coro)?;
        Ok(())
    }

    /// A task running `coro`.
    pub(crate) fn spawn<'py>(
        &self,
        py: Python<'py>,
        coro: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if self.eager {
            self.spawn.bind(py).call1((self.event_loop.bind(py), coro))
        } else {
            self.spawn.bind(py).call1((coro,))
        }
    }
}

/// Resolves `future` with `value` unless it is done already (cancelled by the application).
pub(crate) fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) {
    if future
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    if let Err(e) = future.call_method1(pyo3::intern!(py, "set_result"), (value,)) {
        error!("ASGI: cannot resolve a future of the application: {e}");
    }
}

/// Fails `future` with `exception` unless it is done already.
pub(crate) fn fail(py: Python<'_>, future: &Bound<'_, PyAny>, exception: Bound<'_, PyAny>) {
    if future
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let _ = future.call_method1(pyo3::intern!(py, "set_exception"), (exception,));
}

/// The eventfd callback: runs the jobs waiting.
#[pyclass(frozen, module = "dragoman", name = "AsgiInbox")]
struct Drain {
    ctx: Arc<Ctx>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        for job in self.ctx.inbox.take() {
            job(py, &self.ctx);
        }
    }
}

/// The loop thread of a worker.
pub(crate) struct Runner {
    pub(crate) inbox: Arc<Inbox>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Runner {
    /// Starts the loop thread and waits (with the GIL released) until its loop runs.
    pub(crate) fn start(py: Python<'_>, choice: EventLoop) -> Result<Runner, String> {
        // `threading` takes the thread that first imports it for the main thread, and uvloop
        // installs its signal wake-up fd when it believes it runs there (Python refuses, and
        // the loop stops): so it is imported here, on the main thread, before the loop thread
        // starts. (Seen with an application that imports nothing itself.)
        for module in ["threading", "asyncio"] {
            py.import(module)
                .map_err(|e| format!("cannot import {module}: {e}"))?;
        }
        let inbox = Arc::new(Inbox::new().map_err(|e| format!("cannot make an eventfd: {e}"))?);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_inbox = inbox.clone();
        let thread = std::thread::Builder::new()
            .name("dragoman-asgi".into())
            .spawn(move || thread_main(thread_inbox, choice, ready_tx))
            .map_err(|e| format!("cannot start the ASGI loop thread: {e}"))?;
        let started = py.detach(move || ready_rx.recv_timeout(Duration::from_secs(60)));
        match started {
            Ok(Ok(())) => Ok(Runner {
                inbox,
                thread: Mutex::new(Some(thread)),
            }),
            Ok(Err(why)) => {
                let _ = py.detach(|| thread.join());
                Err(why)
            }
            Err(_) => Err("the ASGI loop thread did not start within 60 s".into()),
        }
    }

    /// Stops the loop (tasks still running are cancelled) and joins its thread. Called
    /// without the GIL.
    pub(crate) fn stop(&self) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        self.inbox.push(Box::new(|py, ctx| {
            let _ = ctx.event_loop.bind(py).call_method0("stop");
        }));
        let _ = thread.join();
    }
}

/// Puts the calling thread (the loop thread) in the kernel's batch scheduling class: its
/// wake-ups no longer preempt the thread that woke it. The worker's two threads share a core
/// when it is pinned or busy, and each request crosses between them twice; with normal
/// scheduling the I/O thread's eventfd write switched to the loop thread at once, for one
/// request at a time, and a third of the worker's time went to those switches. Now the I/O
/// thread reads every ready connection before the loop thread runs, and the loop thread runs
/// the whole batch. Its share of the CPU is unchanged (same weight); what it gives up is
/// cutting in, which a thread that runs applications needs least. Threads the application
/// starts from the loop (an executor's) inherit it.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live, initialised sched_param; pid 0 is the calling thread. Moving
    // to SCHED_BATCH needs no privilege.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if done != 0 {
        warn!(
            "ASGI: the loop thread keeps normal scheduling (SCHED_BATCH refused: {}); \
             requests cost more CPU switching threads",
            std::io::Error::last_os_error()
        );
    }
}

/// Makes the loop `choice` asks for.
fn new_loop<'py>(
    py: Python<'py>,
    choice: EventLoop,
) -> Result<(Bound<'py, PyAny>, &'static str), String> {
    let uvloop = match choice {
        EventLoop::Asyncio => None,
        EventLoop::Auto => py.import("uvloop").ok(),
        EventLoop::Uvloop => Some(py.import("uvloop").map_err(|e| {
            format!(
                "`loop = uvloop`, but uvloop cannot be imported ({e}): install it into the \
                 virtualenv (pip install uvloop), or set `loop = asyncio`"
            )
        })?),
    };
    let made = match &uvloop {
        Some(uv) => uv.call_method0("new_event_loop").map(|l| (l, "uvloop")),
        None => py
            .import("asyncio")
            .and_then(|a| a.call_method0("new_event_loop"))
            .map(|l| (l, "asyncio")),
    };
    made.map_err(|e| format!("cannot make the event loop: {e}"))
}

fn thread_main(
    inbox: Arc<Inbox>,
    choice: EventLoop,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    batch_scheduling();
    Python::attach(|py| {
        let setup = || -> Result<(Bound<'_, PyAny>, &'static str), String> {
            let (event_loop, kind) = new_loop(py, choice)?;
            let asyncio = py.import("asyncio").map_err(|e| e.to_string())?;
            let err = |e: PyErr| format!("cannot set up the event loop: {e}");
            asyncio
                .call_method1("set_event_loop", (&event_loop,))
                .map_err(err)?;
            let create_future = event_loop.getattr("create_future").map_err(err)?;
            let done = create_future.call0().map_err(err)?;
            done.call_method1("set_result", (py.None(),)).map_err(err)?;
            let (spawn, eager) = match asyncio.getattr("eager_task_factory") {
                Ok(factory) => (factory, true),
                Err(_) => (event_loop.getattr("create_task").map_err(err)?, false),
            };
            let code = std::ffi::CString::new(RUN).map_err(|e| e.to_string())?;
            let run = PyModule::from_code(py, &code, c"dragoman_asgi_run.py", c"dragoman_asgi_run")
                .and_then(|m| m.getattr("run"))
                .map_err(err)?;
            let ctx = Arc::new(Ctx {
                event_loop: event_loop.clone().unbind(),
                create_future: create_future.unbind(),
                done: done.unbind(),
                spawn: spawn.unbind(),
                eager,
                run: run.unbind(),
                inbox: inbox.clone(),
            });
            let drain = Bound::new(py, Drain { ctx }).map_err(err)?;
            event_loop
                .call_method1("add_reader", (inbox.fd().as_raw_fd(), drain))
                .map_err(err)?;
            Ok((event_loop, kind))
        };
        let event_loop = match setup() {
            Ok((event_loop, kind)) => {
                info!("ASGI: the application runs on an {kind} event loop");
                let _ = ready.send(Ok(()));
                event_loop
            }
            Err(why) => {
                let _ = ready.send(Err(why));
                return;
            }
        };
        if let Err(e) = event_loop.call_method0("run_forever") {
            error!("ASGI: the event loop stopped with an error: {e}");
        }
        if let Err(e) = cancel_all(py, &event_loop) {
            warn!("ASGI: tasks still running at the end could not all be cancelled: {e}");
        }
        let _ = event_loop.call_method0("close");
    });
}

/// Cancels the tasks still running and gives them a moment to finish (their `finally`
/// blocks, a database connection closed).
fn cancel_all(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<()> {
    let asyncio = py.import("asyncio")?;
    let tasks = asyncio.call_method1("all_tasks", (event_loop,))?;
    let tasks: Vec<Bound<'_, PyAny>> = tasks.try_iter()?.collect::<PyResult<_>>()?;
    if tasks.is_empty() {
        return Ok(());
    }
    for task in &tasks {
        task.call_method0("cancel")?;
    }
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("timeout", 5.0)?;
    let wait = asyncio.call_method("wait", (PyTuple::new(py, &tasks)?,), Some(&kwargs))?;
    event_loop.call_method1("run_until_complete", (wait,))?;
    Ok(())
}
