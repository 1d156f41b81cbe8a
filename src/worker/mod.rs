//! A worker process: loads the application, builds its tokio runtime (only now, after fork),
//! accepts on the listeners it inherited from the master, and serves until told to stop.

mod autoreload;

use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

use crate::access::AccessLog;
use crate::acme::http01::Http01;
use crate::app;
use crate::bridge::Bridge;
use crate::config::Wire;
use crate::conn::driver::Driver;
use crate::conn::registry::Registry;
use crate::conn::transport::RawSocket;
use crate::conn::watch::WriteRules;
use crate::conn::ConnInfo;
use crate::http::server::Http;
use crate::http::service::Routes;
use crate::http::Route;
use crate::ipc::{Event, Sender, WorkerArgs, WORKER_BOOT_ERROR};
use crate::net::{Bound, Listener};
use crate::scoreboard::RequestStats;
use crate::statics::StaticFiles;
use crate::{error, info, warn};

/// How long a stopping worker answers with `Connection: close` before it closes the
/// connections that are left: long enough for busy keep-alive clients to move elsewhere.
const DRAIN_WINDOW: Duration = Duration::from_secs(1);

/// Runs one worker to completion; returns its exit code.
pub(crate) fn run(py: Python<'_>, args: WorkerArgs) -> i32 {
    let WorkerArgs {
        id,
        config,
        listeners,
        slot,
        server,
        events,
        preloaded,
    } = args;
    if config.metrics.is_some() {
        crate::metrics::record::install(&slot.traffic);
    }
    crate::log::enter_worker(id);
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
    let app = match app::load(py, &config, preloaded, stats) {
        Ok(app) => app,
        Err(_) => return WORKER_BOOT_ERROR,
    };
    let mercy = config.mercy;
    let autoreload = config.py_autoreload.filter(|_| id == 1);
    let statics_config = config.statics.clone();
    let limits = config.limits.clone();
    let proxy_protocol = config.proxy_protocol.clone();
    let proxies = config.forwarded_allow_ips.clone();
    let health_check = config.health_check.clone();
    let tls_config = config.tls.clone();
    let logging = config.logging.clone();
    let add_headers = config.add_headers.clone();
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
        let tls = match crate::tls::WorkerTls::new(&tls_config) {
            Ok(tls) => tls,
            Err(e) => {
                error!("worker {id}: cannot set up TLS: {e}");
                return 1;
            }
        };
        let http2 = tls_config.http2.clone();
        let hsts = tls_config.hsts.as_ref();
        let hsts = hsts.and_then(|h| http::HeaderValue::from_str(&h.value()).ok());
        let app: Rc<dyn Bridge + Send> = Rc::from(app);
        let access = AccessLog::new(id, &logging);
        let registry = Registry::new(limits.max_connections);
        let health = health_check
            .map(|path| Rc::new(crate::health::Health::new(path, server)) as Rc<dyn Route>);
        let driver = Rc::new(Driver {
            proxy: proxy_protocol,
            header_timeout: limits.header_timeout,
            write: WriteRules {
                timeout: limits.write_timeout,
                min_rate: limits.write_min_rate,
            },
            h2c: http2.cleartext,
            tls: tls.clone(),
            protocol: Http {
                routes: Rc::new(Routes {
                    app: app.clone(),
                    // ACME's HTTP-01 challenges before anything else, then the health
                    // check (it must answer even under a static mount at `/`), then
                    // static files.
                    before_app: Http01::new(tls_config.acme.as_ref())
                        .map(|a| Rc::new(a) as Rc<dyn Route>)
                        .into_iter()
                        .chain(health)
                        .chain(StaticFiles::new(&statics_config).map(|s| s as Rc<dyn Route>))
                        .collect(),
                    limits,
                    proxies,
                    access: access.clone(),
                    add_headers,
                }),
                http2,
                hsts,
            },
        });

        let worker = Worker {
            id,
            driver,
            registry,
            events,
            mercy,
            autoreload,
            access: access.clone(),
        };
        // `serve` runs as a task of its own so that a bug panicking in it ends this worker with
        // exit code 1 (the master replaces it) instead of unwinding through the interpreter.
        let code = runtime.block_on(async move {
            if let Some(tls) = tls {
                tokio::task::spawn_local(tls.watch(Rc::new(tls_config), id));
            }
            tokio::task::spawn_local(worker.serve(listeners))
                .await
                .unwrap_or(1)
        });
        // Dropping the tasks closes what the app still had open (close() on each response).
        drop(runtime);
        app.shutdown();
        if let Some(access) = &access {
            access.flush();
        }
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

/// A worker's serving half, once its application is loaded.
struct Worker {
    id: usize,
    driver: Rc<Driver<Http>>,
    registry: Rc<Registry>,
    events: Sender,
    mercy: Duration,
    autoreload: Option<Duration>,
    access: Option<Rc<AccessLog>>,
}

impl Worker {
    /// Accepts and serves until SIGTERM/SIGINT (graceful) or SIGQUIT (immediate).
    async fn serve(self, listeners: Vec<Bound>) -> i32 {
        let id = self.id;
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
        for bound in listeners {
            let url = bound.url();
            let wire = bound.wire;
            let (driver, registry) = (self.driver.clone(), self.registry.clone());
            let spawned = match bound.listener {
                Listener::Tcp(l) => TcpListener::from_std(l).map(|l| {
                    tokio::task::spawn_local(accept_loop(l, wire, driver, registry));
                }),
                Listener::Unix(l) => UnixListener::from_std(l).map(|l| {
                    tokio::task::spawn_local(accept_loop(l, wire, driver, registry));
                }),
            };
            if let Err(e) = spawned {
                error!("worker {id}: cannot use the listener on {url}: {e}");
                return 1;
            }
        }
        let header_timeout = self.driver.header_timeout;
        tokio::task::spawn_local(self.registry.clone().expire_slow_heads(header_timeout));
        if let Some(every) = self.autoreload {
            tokio::task::spawn_local(autoreload::watch(every, self.events));
        }
        if let Some(access) = &self.access {
            tokio::task::spawn_local(access.clone().flusher());
        }
        tokio::task::spawn_local(crate::log::reopen_on_signal());
        // Tell the master we are accepting: it may now retire the worker this one replaces.
        self.events.send(Event::Ready);

        // The master forked us: our parent until it dies, when the kernel sends the SIGTERM
        // `die_with_master` asked for and gives us to init (or a subreaper).
        // SAFETY: getppid has no preconditions.
        let master = unsafe { libc::getppid() };
        let immediate = tokio::select! {
            _ = term.recv() => false,
            _ = int.recv() => false,
            _ = quit.recv() => true,
        };
        // SAFETY: as above.
        if unsafe { libc::getppid() } != master {
            warn!(
                "worker {id}: the master (pid {master}) is gone; stopping, as no worker outlives \
                 its master (start dragoman again to serve)"
            );
        }
        if immediate {
            return 0;
        }
        self.stop().await;
        0
    }

    /// A graceful stop: drain, then close what is left, within worker-reload-mercy.
    async fn stop(&self) {
        let (id, registry) = (self.id, &self.registry);
        registry.drain();
        let busy = registry.count();
        if busy > 0 {
            info!("worker {id}: finishing {busy} connection(s) before exiting");
        }
        let finished = async {
            let _ = tokio::time::timeout(DRAIN_WINDOW, registry.drained()).await;
            registry.close_all();
            registry.drained().await;
        };
        if tokio::time::timeout(self.mercy, finished).await.is_err() {
            error!(
                "worker {id}: {} connection(s) still open after {}s (worker-reload-mercy); exiting anyway",
                registry.count(),
                self.mercy.as_secs()
            );
        }
    }
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
            let conn = ConnInfo::new(stream.local_addr().ok(), Some(peer));
            (stream, conn)
        })
    }
}

impl Acceptor for UnixListener {
    type Stream = tokio::net::UnixStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, ConnInfo)>> {
        UnixListener::poll_accept(self, cx)
            .map_ok(|(stream, _)| (stream, ConnInfo::new(None, None)))
    }
}

/// Accepts connections until the worker drains; each is driven by a task of its own.
async fn accept_loop<A: Acceptor>(
    listener: A,
    wire: Wire,
    driver: Rc<Driver<Http>>,
    registry: Rc<Registry>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = registry.draining() => return,
            accepted = async {
                registry.room().await;
                std::future::poll_fn(|cx| listener.poll_accept(cx)).await
            } => accepted,
        };
        match accepted {
            Ok((stream, conn)) => {
                let registered = registry.register();
                let driver = driver.clone();
                tokio::task::spawn_local(async move {
                    driver.drive(stream, wire, conn, registered).await;
                });
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Out of file descriptors and the like: wait a little rather than spin.
async fn accept_failed(e: std::io::Error) {
    error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
