//! A worker process: loads the application, builds its tokio runtime (only now, after fork),
//! accepts on the listeners it inherited from the master, and serves until told to stop.

mod autoreload;
pub(crate) mod connections;
mod shutdown;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use pyo3::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Limits, Wire};
use crate::http::fast;
use crate::http::io::{GuardedIo, RawSocket};
use crate::http::proxy::{self, Parsed};
use crate::http::service::HttpService;
use crate::http::{App, ConnInfo};
use crate::ipc::{Event, Sender, WorkerArgs, WORKER_BOOT_ERROR};
use crate::net::{Bound, Listener};
use crate::scoreboard::RequestStats;
use crate::statics::StaticFiles;
use crate::uwsgi;
use crate::wsgi::WsgiApp;
use crate::{error, info, warn};
use bytes::{Bytes, BytesMut};
use connections::{Connections, Order, Registered};
pub use shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a stopping worker answers with `Connection: close` before it closes the
/// connections that are left: long enough for busy keep-alive clients to move elsewhere.
const DRAIN_WINDOW: Duration = Duration::from_secs(1);

/// Runs one worker to completion; returns its exit code.
pub fn run(py: Python<'_>, args: WorkerArgs) -> i32 {
    let WorkerArgs {
        id,
        config,
        listeners,
        slot,
        events,
        preloaded,
    } = args;
    // On SIGUSR2 (sent by the master before a harakiri kill) Python prints every thread's
    // stack to stderr: the log shows where the stuck request was.
    if let Err(e) = register_traceback_dump(py) {
        error!("worker {id}: cannot register the harakiri traceback dump: {e}");
    }
    let recycle_after = match config.recycle.max_requests {
        0 => 0,
        n => n + config.recycle.max_requests_delta * id as u64,
    };
    let stats = RequestStats::new(
        slot,
        recycle_after,
        Box::new(move || events.send(Event::Recycle)),
    );
    let app = match WsgiApp::load(py, &config, preloaded, stats) {
        Ok(app) => app,
        Err(_) => return WORKER_BOOT_ERROR,
    };
    let mercy = config.mercy;
    let autoreload = config.py_autoreload.filter(|_| id == 1);
    let statics_config = config.statics.clone();
    let limits = config.limits.clone();
    let proxy_protocol = config.proxy_protocol.clone();
    // The event loop runs with the GIL released; the app bridge attaches when it calls Python.
    py.detach(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build_local(tokio::runtime::LocalOptions::default())
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("worker {id}: cannot start its event loop: {e}");
                return 1;
            }
        };
        let app = Rc::new(app);
        let statics = StaticFiles::new(&statics_config);
        let routes = Routes {
            app: app.clone(),
            statics,
            connections: Connections::new(limits.max_connections),
            limits: Rc::new(limits),
            proxy: proxy_protocol.map(Rc::new),
        };
        // `serve` runs as a task of its own so that a bug panicking in it ends this worker with
        // exit code 1 (the master replaces it) instead of unwinding through the interpreter.
        let code = runtime.block_on(async move {
            tokio::task::spawn_local(serve(id, listeners, routes, events, mercy, autoreload))
                .await
                .unwrap_or(1)
        });
        // Dropping the tasks closes what the app still had open (close() on each response).
        drop(runtime);
        app.shutdown();
        code
    })
}

/// `faulthandler.register(SIGUSR2, all_threads=True)`. faulthandler is built into CPython, so
/// this imports no file (a worker that dropped privileges may not read the stdlib any more).
fn register_traceback_dump(py: Python<'_>) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("all_threads", true)?;
    py.import("faulthandler")?
        .call_method("register", (libc::SIGUSR2,), Some(&kwargs))?;
    Ok(())
}

/// Accepts and serves until SIGTERM/SIGINT (graceful) or SIGQUIT (immediate).
async fn serve(
    id: usize,
    listeners: Vec<Bound>,
    routes: Routes,
    events: Sender,
    mercy: Duration,
    autoreload: Option<Duration>,
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
    for bound in listeners {
        let url = bound.url();
        let wire = bound.wire;
        let spawned = match bound.listener {
            Listener::Tcp(l) => TcpListener::from_std(l).map(|l| {
                tokio::task::spawn_local(accept_loop(l, wire, routes.clone(), shutdown.clone()));
            }),
            Listener::Unix(l) => UnixListener::from_std(l).map(|l| {
                tokio::task::spawn_local(accept_loop(l, wire, routes.clone(), shutdown.clone()));
            }),
        };
        if let Err(e) = spawned {
            error!("worker {id}: cannot use the listener on {url}: {e}");
            return 1;
        }
    }
    tokio::task::spawn_local(
        routes
            .connections
            .clone()
            .expire_slow_heads(routes.limits.header_timeout),
    );
    if let Some(every) = autoreload {
        tokio::task::spawn_local(autoreload::watch(every, events));
    }
    // Tell the master we are accepting: it may now retire the worker this one replaces.
    events.send(Event::Ready);

    let immediate = tokio::select! {
        _ = term.recv() => false,
        _ = int.recv() => false,
        _ = quit.recv() => true,
    };
    if immediate {
        return 0;
    }
    shutdown.drain();
    let busy = shutdown.connections();
    if busy > 0 {
        info!("worker {id}: finishing {busy} connection(s) before exiting");
    }
    let finished = async {
        let _ = tokio::time::timeout(DRAIN_WINDOW, shutdown.drained()).await;
        routes.connections.close_all();
        shutdown.drained().await;
    };
    if tokio::time::timeout(mercy, finished).await.is_err() {
        error!(
            "worker {id}: {} connection(s) still open after {}s (worker-reload-mercy); exiting anyway",
            shutdown.connections(),
            mercy.as_secs()
        );
    }
    0
}

/// A listening socket the accept loop can take connections from.
trait Acceptor {
    type Stream: RawSocket + 'static;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, ConnInfo)>>;
}

impl Acceptor for TcpListener {
    type Stream = tokio::net::TcpStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, ConnInfo)>> {
        TcpListener::poll_accept(self, cx).map_ok(|(stream, peer)| {
            let _ = stream.set_nodelay(true);
            let conn = ConnInfo {
                local: stream.local_addr().ok(),
                peer: Some(peer),
                scheme: "http",
                extra_environ: Vec::new(),
                remote_text: Default::default(),
                one_request: false,
                app_state: Default::default(),
            };
            (stream, conn)
        })
    }
}

impl Acceptor for UnixListener {
    type Stream = tokio::net::UnixStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, ConnInfo)>> {
        UnixListener::poll_accept(self, cx).map_ok(|(stream, _)| {
            let conn = ConnInfo {
                local: None,
                peer: None,
                scheme: "http",
                extra_environ: Vec::new(),
                remote_text: Default::default(),
                one_request: false,
                app_state: Default::default(),
            };
            (stream, conn)
        })
    }
}

/// What a worker's connections share: where requests go (static files, then the
/// application), the limits, and the connection registry.
#[derive(Clone)]
struct Routes {
    app: Rc<dyn App>,
    statics: Option<Rc<StaticFiles>>,
    limits: Rc<Limits>,
    connections: Rc<Connections>,
    /// With the PROXY protocol on: the peers whose headers are believed.
    proxy: Option<Rc<Vec<IpAddr>>>,
}

/// Accepts connections until the worker drains.
async fn accept_loop<A: Acceptor>(listener: A, wire: Wire, routes: Routes, shutdown: Shutdown) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.draining() => return,
            accepted = async {
                routes.connections.room().await;
                std::future::poll_fn(|cx| listener.poll_accept(cx)).await
            } => accepted,
        };
        match accepted {
            Ok((stream, conn)) => spawn_connection(stream, conn, wire, &routes, &shutdown),
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Out of file descriptors and the like: wait a little rather than spin.
async fn accept_failed(e: std::io::Error) {
    error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn spawn_connection<S>(
    mut stream: S,
    mut conn: ConnInfo,
    wire: Wire,
    routes: &Routes,
    shutdown: &Shutdown,
) where
    S: RawSocket + 'static,
{
    let guard = shutdown.track();
    let registered = routes.connections.register();
    let routes = routes.clone();
    let shutdown = shutdown.clone();
    tokio::task::spawn_local(async move {
        let prefix = match wire {
            Wire::Http => proxy_preamble(&mut stream, &mut conn, &routes).await,
            Wire::Uwsgi => uwsgi_preamble(&mut stream, &mut conn, &routes).await,
        };
        let Some(prefix) = prefix else {
            return;
        };
        // The preamble had a header-timeout of its own: the request head gets a fresh one.
        registered
            .waiting
            .set(connections::waiting_since(crate::clock::coarse_ms()));
        let mut io = GuardedIo::new(
            stream,
            prefix,
            routes.limits.write_timeout,
            registered.activity.clone(),
            registered.waiting.clone(),
            describe(&conn),
        );
        let service = HttpService::new(
            routes.app.clone(),
            routes.statics.clone(),
            routes.limits.clone(),
            conn,
            shutdown.clone(),
            io.zero_copy(),
            registered.waiting.clone(),
        );
        // A uwsgi connection carries one request.
        let keep_alive = wire == Wire::Http;
        serve_connection(io, service, &routes.limits, keep_alive, &registered).await;
        drop(registered);
        drop(guard);
    });
}

/// The peer as log lines name it.
fn describe(conn: &ConnInfo) -> String {
    conn.peer
        .map_or_else(|| "a unix socket client".to_string(), |p| p.to_string())
}

/// On an http listener with the PROXY protocol on, a trusted peer's PROXY header: the client
/// it names becomes the connection's peer. Returns the bytes read past the header, or `None`
/// when the connection is over (refused, or gone).
async fn proxy_preamble<S>(stream: &mut S, conn: &mut ConnInfo, routes: &Routes) -> Option<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Unix socket peers are trusted: the socket's permissions say who may connect.
    let trusted = routes
        .proxy
        .as_ref()
        .is_some_and(|ips| conn.peer.is_none_or(|peer| ips.contains(&peer.ip())));
    if !trusted {
        return Some(Bytes::new());
    }
    match read_proxy_header(stream, routes.limits.header_timeout).await {
        Ok((source, rest)) => {
            conn.peer = source.or(conn.peer);
            Some(rest)
        }
        Err(PreambleError::Invalid(why)) => {
            warn!(
                "refused the connection from {}: {why} (proxy-protocol is on)",
                describe(conn)
            );
            refuse(stream, &why, routes.limits.write_timeout).await;
            None
        }
        Err(PreambleError::Gone(why)) => {
            if let Some(why) = why {
                info!("closed the connection from {}: {why}", describe(conn));
            }
            None
        }
    }
}

/// On a uwsgi listener, the request packet, translated to an HTTP/1.0 head for hyper (see
/// [`crate::uwsgi::request`]); the variables the environ takes as sent go into `conn`.
async fn uwsgi_preamble<S>(stream: &mut S, conn: &mut ConnInfo, routes: &Routes) -> Option<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match uwsgi::read_request(stream, routes.limits.header_timeout).await {
        Ok((request, rest)) => {
            conn.peer = request.remote.or(conn.peer);
            if request.https {
                conn.scheme = "https";
            }
            conn.extra_environ = request.environ;
            conn.one_request = true;
            let mut prefix = BytesMut::with_capacity(request.head.len() + rest.len());
            prefix.extend_from_slice(&request.head);
            prefix.extend_from_slice(&rest);
            Some(prefix.freeze())
        }
        Err(uwsgi::RequestError::Invalid(why)) => {
            warn!("refused a uwsgi request from {}: {why}", describe(conn));
            refuse(stream, &why, routes.limits.write_timeout).await;
            None
        }
        Err(uwsgi::RequestError::Gone(why)) => {
            if let Some(why) = why {
                info!("closed the uwsgi connection from {}: {why}", describe(conn));
            }
            None
        }
    }
}

/// Answers 400 with the reason, before hyper has the connection, and closes it.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, why: &str, write_timeout: Duration) {
    let body = format!("400 Bad Request: {why}\n");
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let reply = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(write_timeout, reply).await;
}

/// The longest PROXY header read (v2 may carry TLVs; they are skipped).
const PROXY_HEADER_MAX: usize = 4096;

/// Reads the PROXY protocol header a trusted load balancer sends first: the client it names,
/// and the bytes read past the header (the start of the first request).
async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Option<SocketAddr>, Bytes), PreambleError> {
    let read = async {
        let mut buf = BytesMut::with_capacity(512);
        loop {
            match proxy::parse(&buf) {
                Parsed::Header { len, source } => return Ok((source, buf.split_off(len).freeze())),
                Parsed::Absent => return Ok((None, buf.freeze())),
                Parsed::Invalid(why) => return Err(PreambleError::Invalid(why.to_string())),
                Parsed::Incomplete if buf.len() >= PROXY_HEADER_MAX => {
                    return Err(PreambleError::Invalid(
                        "the PROXY header is too long".into(),
                    ))
                }
                Parsed::Incomplete => {}
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Err(PreambleError::Gone(None)),
                Ok(0) => {
                    return Err(PreambleError::Gone(Some(
                        "it closed in the middle of its PROXY header".into(),
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(PreambleError::Gone(Some(e.to_string()))),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| PreambleError::Gone(Some("no PROXY header within header-timeout".into())))?
}

/// Why a connection ended before hyper took it over.
enum PreambleError {
    /// The bytes are not what the listener expects: answered with a 400 that says so.
    Invalid(String),
    /// The peer went away (silently: `None`, as a health check that only connects does) or
    /// stayed silent too long.
    Gone(Option<String>),
}

/// Serves one HTTP/1.1 connection. When the worker closes its connections, or the
/// connection is evicted at the cap, the request in flight finishes and it closes.
async fn serve_connection<S>(
    mut io: GuardedIo<S>,
    service: HttpService,
    limits: &Limits,
    keep_alive: bool,
    registered: &Registered,
) where
    S: RawSocket + 'static,
{
    // The usual request (no body) is served by the connection's own HTTP/1 path; the first
    // one it does not take, and all after it, by hyper.
    if keep_alive {
        match fast::serve(&mut io, &service, limits, &registered.orders).await {
            fast::Outcome::Done => return,
            fast::Outcome::Hyper => {}
        }
    }
    let mut builder = http1::Builder::new();
    // pipeline_flush stays off: with it, hyper 1.12 drops the 400 it writes for a malformed
    // request (the connection closes unanswered). Pipelined requests are still answered in
    // order, one flush per response.
    // writev(true): frames are queued as they are, never copied into one buffer, which the
    // zero-copy file bodies rely on (their frames only stand in for the file's bytes).
    // header-timeout is not hyper's: the connection registry's sweep enforces it (see
    // connections.rs), without a timer per request.
    builder
        .header_read_timeout(None::<Duration>)
        .writev(true)
        // A client may shut its write side once its request is sent (nc -N, some health
        // checks): it still gets its response.
        .half_close(true)
        .keep_alive(keep_alive)
        .max_header_size(limits.head_bytes)
        .max_headers(limits.header_fields);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // One check of the connection's orders per wake-up: a close (evicted at the cap, or the
    // worker closing) lets the request in flight finish; a drop (no request head within
    // header-timeout) closes it at once, unanswered, as hyper's own header timeout did.
    let orders = &registered.orders;
    let mut seen = Order::Serve;
    loop {
        let order = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => orders.poll_above(seen, cx).map(Some),
        })
        .await;
        match order {
            None | Some(Order::Drop) => return,
            Some(order) => {
                seen = order;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
