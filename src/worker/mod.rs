//! A worker process: loads the application, builds its tokio runtime (only now, after fork),
//! accepts on the listeners it inherited from the master, and serves until told to stop.

mod shutdown;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use pyo3::Python;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::http::service::HttpService;
use crate::http::{App, ConnInfo};
use crate::master::WORKER_BOOT_ERROR;
use crate::net::Bound;
use crate::wsgi::WsgiApp;
use crate::{error, info};
pub use shutdown::Shutdown;

/// What the master hands a freshly forked worker.
pub struct WorkerArgs {
    /// 1-based worker slot, for logs.
    pub id: usize,
    /// Written to (one byte) once the worker accepts connections.
    pub ready_pipe: OwnedFd,
    pub config: Config,
    pub listeners: Vec<Bound>,
    pub master_pid: libc::pid_t,
}

/// Runs one worker to completion; returns its exit code.
pub fn run(py: Python<'_>, args: WorkerArgs) -> i32 {
    let WorkerArgs {
        id,
        ready_pipe,
        config,
        listeners,
        master_pid: _,
    } = args;
    let app = match WsgiApp::load(py, &config) {
        Ok(app) => app,
        Err(_) => return WORKER_BOOT_ERROR,
    };
    let mercy = config.mercy;
    // The event loop runs with the GIL released; the app bridge attaches when it calls Python.
    let code = py.detach(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("worker {id}: cannot start its event loop: {e}");
                return 1;
            }
        };
        let app = Rc::new(app);
        let local = tokio::task::LocalSet::new();
        let code = local.block_on(
            &runtime,
            serve(id, listeners, app.clone(), ready_pipe, mercy),
        );
        // Dropping the tasks closes what the app still had open (close() on each response).
        drop(local);
        drop(runtime);
        app.shutdown();
        code
    });
    code
}

/// Accepts and serves until SIGTERM/SIGINT (graceful) or SIGQUIT (immediate).
async fn serve(
    id: usize,
    listeners: Vec<Bound>,
    app: Rc<WsgiApp>,
    ready_pipe: OwnedFd,
    mercy: Duration,
) -> i32 {
    let (mut term, mut int, mut quit) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) {
        (Ok(t), Ok(i), Ok(q)) => (t, i, q),
        _ => {
            error!("worker {id}: cannot install its signal handlers");
            return 1;
        }
    };
    let shutdown = Shutdown::new();
    let app: Rc<dyn App> = app;
    for bound in listeners {
        let local = bound.addr;
        let listener = match TcpListener::from_std(bound.listener) {
            Ok(l) => l,
            Err(e) => {
                error!("worker {id}: cannot use the listener on {local}: {e}");
                return 1;
            }
        };
        tokio::task::spawn_local(accept_loop(listener, app.clone(), shutdown.clone()));
    }
    // Tell the master we are accepting; it may now start the other workers.
    let _ = std::fs::File::from(ready_pipe).write_all(b"R");

    let immediate = tokio::select! {
        _ = term.recv() => false,
        _ = int.recv() => false,
        _ = quit.recv() => true,
    };
    if immediate {
        return 0;
    }
    shutdown.begin();
    let busy = shutdown.connections();
    if busy > 0 {
        info!("worker {id}: finishing {busy} connection(s) before exiting");
    }
    if tokio::time::timeout(mercy, shutdown.drained())
        .await
        .is_err()
    {
        error!(
            "worker {id}: {} connection(s) still open after {}s; exiting anyway",
            shutdown.connections(),
            mercy.as_secs()
        );
    }
    0
}

/// Accepts connections on one listener until shutdown begins.
async fn accept_loop(listener: TcpListener, app: Rc<dyn App>, shutdown: Shutdown) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.begun() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let conn = ConnInfo {
                    local: stream.local_addr().ok().or(local).unwrap_or(peer),
                    peer,
                    scheme: "http",
                };
                let guard = shutdown.track();
                let service = HttpService::new(app.clone(), conn);
                let shutdown = shutdown.clone();
                tokio::task::spawn_local(async move {
                    serve_connection(stream, service, shutdown).await;
                    drop(guard);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one HTTP/1.1 connection; on shutdown, lets the request in flight finish and closes.
async fn serve_connection(stream: tokio::net::TcpStream, service: HttpService, shutdown: Shutdown) {
    let mut builder = http1::Builder::new();
    // pipeline_flush stays off: with it, hyper 1.12 drops the 400 it writes for a malformed
    // request (the connection closes unanswered). Pipelined requests are still answered in
    // order, one flush per response.
    builder.timer(TokioTimer::new()).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.begun() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
