//! dragoman: one program that turns a Python web application into a production HTTP service.
//!
//! The Python package's entry point calls [`run`] with `sys.argv`. From there: the config is
//! loaded ([`config`]), the interpreter prepared ([`interp`]), the listeners bound ([`net`]),
//! and the master ([`master`]) forks workers ([`worker`]) that serve HTTP ([`http`]) and call
//! the application through its bridge ([`wsgi`]). The master and its workers share a contract
//! ([`ipc`]) and a scoreboard ([`scoreboard`]), and neither imports the other.

// The crate is the engine of a Python package, read with `cargo doc --document-private-items`:
// its docs link to its private modules.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod access;
pub(crate) mod acme;
mod app;
pub(crate) mod asgi;
pub(crate) mod bridge;
mod check;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod interp;
pub(crate) mod ipc;
pub(crate) mod log;
pub(crate) mod master;
pub(crate) mod metrics;
pub(crate) mod mount;
pub(crate) mod net;
mod probe;
pub(crate) mod rules;
pub(crate) mod scoreboard;
pub(crate) mod statics;
pub(crate) mod tls;
pub(crate) mod uwsgi;
pub(crate) mod worker;
pub(crate) mod wsgi;

use std::path::PathBuf;

use pyo3::prelude::*;

use config::{Config, Loaded};
use ipc::Role;
use master::stats::StatsServer;
use metrics::server::MetricsServer;

/// mimalloc for the Rust side (requests, headers, bodies, futures): about 30 allocations per
/// request, where glibc's malloc and free cost about 950 instructions more per hello-world
/// request (callgrind, 21,140 -> 20,190). CPython keeps its own allocators. Forking is safe:
/// the master forks from its only thread (src/master/fork.rs). Without transparent huge pages
/// (`no_thp`): with them a worker's RSS at rest went from 11.1 to 17.1 MiB; without, 11.4.
/// Not under cargo-fuzz, whose sanitizers must see every allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Python extension module `dragoman._native`.
#[pymodule]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    #[allow(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// Runs dragoman with a full argv (`argv[0]` is the program name); returns the exit code.
    #[pyfunction]
    fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
        super::run(py, &argv)
    }
}

/// Runs dragoman: the master's exit code in the master, the worker's in each worker.
pub fn run(py: Python<'_>, argv: &[String]) -> i32 {
    let args = argv.get(1..).unwrap_or_default();
    if args.first().map(String::as_str) == Some("compress") {
        return statics::compress::run(&args[1..]);
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = match load_config(py, args, &env) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(message) = log::setup(py, &config.logging) {
        eprintln!("dragoman: error: {message}");
        return 1;
    }
    log_startup_notes(&config);
    let vacuum = config.vacuum;
    let source = master::Source {
        args: args.to_vec(),
        env,
    };
    let mut made = Made::default();
    // The one exit of the master, whether it served or failed to start: `vacuum` removes what
    // this process made. A worker returns from its own run and never vacuums.
    let code = match start(py, config, source, &mut made) {
        Ok(Role::Worker(args)) => return worker::run(py, *args),
        Ok(Role::Master(code)) => code,
        Err(failure) => {
            if let Some(message) = failure.message {
                eprintln!("dragoman: error: {message}");
            }
            failure.code
        }
    };
    if vacuum {
        made.remove();
    }
    code
}

/// The configuration to run with, or the exit code when there is nothing to serve (`--help`,
/// `--version`, `--check`, `--print-config`, `--health-check`, or errors, which are printed
/// one a line).
fn load_config(py: Python<'_>, args: &[String], env: &[(String, String)]) -> Result<Config, i32> {
    match config::load(args, env) {
        Ok(Loaded::Run(config)) => Ok(*config),
        Ok(Loaded::Check(loaded)) => Err(check::run(py, loaded)),
        Ok(Loaded::PrintConfig(text)) => {
            print!("{text}");
            Err(0)
        }
        Ok(Loaded::Probe(probe)) => Err(probe::run(probe)),
        Ok(Loaded::Help) => {
            print!("{}", config::help::text());
            Err(0)
        }
        Ok(Loaded::Version) => {
            println!(
                "dragoman {} (Python {})",
                env!("CARGO_PKG_VERSION"),
                python_version(py)
            );
            Err(0)
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("dragoman: error: {line}");
            }
            Err(2)
        }
    }
}

/// Why dragoman could not start: the exit code, and the message for stderr (`None` when the
/// log already said it).
struct Failure {
    code: i32,
    message: Option<String>,
}

impl Failure {
    /// A startup error (exit code 1) with its message.
    fn new(message: String) -> Failure {
        Failure {
            code: 1,
            message: Some(message),
        }
    }
}

/// The files this process made, which `vacuum` removes at exit: the pidfile once written, the
/// unix sockets once bound. Never a file it did not make (another instance's pidfile, say).
#[derive(Default)]
struct Made {
    files: Vec<PathBuf>,
}

impl Made {
    fn remove(&self) {
        for path in &self.files {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Startup, in order: the process (umask, open-files limit, systemd), the interpreter (nothing of the application
/// run yet), the sockets, the pidfile, the privilege drop, the import paths (the virtualenv's
/// .pth files run), the preloaded application; then the master, until it stops.
fn start(
    py: Python<'_>,
    mut config: Config,
    source: master::Source,
    made: &mut Made,
) -> Result<Role, Failure> {
    if let Some(mask) = config.umask {
        master::privileges::set_umask(mask);
    }
    match master::nofile::raise_soft_limit() {
        Ok(Some((before, after))) => {
            info!("open files: raised the soft limit from {before} to the hard limit, {after}")
        }
        Ok(None) => {}
        Err(e) => warn!("open files: cannot raise the soft limit to the hard one: {e}"),
    }
    // systemd's variables are for the master alone: read them, then hide them from the
    // workers and the application.
    let notifier = master::systemd::Notifier::from_env().unwrap_or_else(|e| {
        warn!("NOTIFY_SOCKET is set but unusable: {e}");
        None
    });
    let prepared = interp::prepare(py, &config).map_err(|message| Failure {
        code: 2,
        message: Some(message),
    })?;
    let (listeners, stats, metrics) = bind_sockets(py, &config, made)?;
    if let Some(warning) = master::nofile::fit_connections(&mut config) {
        warn!("{warning}");
    }
    // Certificates are read while still root (a key readable by root alone is usual).
    tls::prepare(&config).map_err(Failure::new)?;
    // The command that started dragoman returns once `detached` is ready (just before the
    // master's loop), so the pidfile is right when it does.
    let mut detached = None;
    if let Some(d) = config.daemonize.as_ref().filter(|d| !d.after_load) {
        detached = Some(detach(py, d)?);
    }
    let mut pidfile = write_pidfile(&config, made)?;
    drop_privileges(&config)?;
    log::open_late().map_err(Failure::new)?;
    // Only now: the virtualenv's .pth files run code, which must not run as root.
    interp::set_import_paths(py, &config, &prepared).map_err(|message| Failure {
        code: 2,
        message: Some(message),
    })?;
    let preloaded = preload(py, &config)?;
    if let Some(d) = config.daemonize.as_ref().filter(|d| d.after_load) {
        detached = Some(detach(py, d)?);
        if let Some(file) = &mut pidfile {
            master::pidfile::rewrite(file, std::process::id()).map_err(|e| {
                Failure::new(format!("cannot rewrite the pidfile after daemonize2: {e}"))
            })?;
        }
    }
    if let Some(detached) = detached {
        detached.ready();
    }
    let setup = master::Setup {
        source,
        listeners,
        stats,
        metrics,
        notifier,
        preloaded,
    };
    Ok(master::run(py, config, setup))
}

/// The startup lines about the configuration: warnings, mounts that do not exist yet, options
/// with nothing to do.
fn log_startup_notes(config: &Config) {
    for line in &config.warnings {
        warn!("{line}");
    }
    for mount in &config.statics.mounts {
        if !mount.target.exists() {
            warn!(
                "{}: {} does not exist (yet); requests under {} go to the application until it does",
                mount.origin,
                mount.target.display(),
                mount.prefix
            );
        }
    }
    for notice in &config.notices {
        if notice.not_yet {
            warn!("{}", notice.text);
        } else {
            info!("{}", notice.text);
        }
    }
}

/// What `bind_sockets` binds: the listeners, the stats server's and the metrics'.
type Sockets = (Vec<net::Bound>, Option<StatsServer>, Option<MetricsServer>);

/// The listeners (systemd's, then the ones left to bind) and the stats and metrics servers'
/// sockets.
fn bind_sockets(py: Python<'_>, config: &Config, made: &mut Made) -> Result<Sockets, Failure> {
    let (mut listeners, to_bind, unused) = net::adopt_systemd(&config.listeners).map_err(|e| {
        Failure::new(format!(
            "cannot use the sockets systemd passed (LISTEN_FDS): {e}"
        ))
    })?;
    // `ListenStream=8000` is [::]:8000 and `http = :8000` is 0.0.0.0:8000: a socket that
    // looks configured and is not. Say so, with the fix, rather than close it silently.
    for addr in unused {
        let wanted: Vec<String> = to_bind.iter().map(|l| l.addr.to_string()).collect();
        match wanted.first() {
            Some(first) => warn!(
                "systemd passed a socket on {addr} that no listener of the configuration names \
                 ({}); it is closed, not used: give the socket unit the configuration's address \
                 (ListenStream={}), or the configuration the socket's, or leave http out to \
                 take every socket systemd passes",
                wanted.join(", "),
                first.trim_start_matches("unix:")
            ),
            None => warn!(
                "systemd passed a socket on {addr} that no listener of the configuration names; \
                 it is closed, not used"
            ),
        }
    }
    forget_env(
        py,
        &[
            "NOTIFY_SOCKET",
            "LISTEN_PID",
            "LISTEN_FDS",
            "LISTEN_FDNAMES",
        ],
    );
    let file = net::SocketFile {
        mode: config.chmod_socket,
        owner: socket_owner(config)?,
    };
    let mut bind = |listen: &config::Listen, backlog: i32| {
        let bound = net::bind(listen, backlog, file)
            .map_err(|e| Failure::new(net::explain_bind_error(listen, &e)))?;
        made.files.extend(bound.created.clone());
        Ok::<_, Failure>(bound)
    };
    for listen in &to_bind {
        listeners.push(bind(listen, config.backlog)?);
    }
    let stats = match &config.stats {
        Some(listen) => Some(StatsServer::new(bind(listen, 64)?, config.stats_http)),
        None => None,
    };
    let metrics = match &config.metrics {
        Some(listen) => Some(MetricsServer::new(bind(listen, 64)?)),
        None => None,
    };
    for bound in &listeners {
        info!("listening on {}", bound.url());
    }
    if let Some(s) = &stats {
        info!("stats on {}", s.bound.addr);
        if let Some(warning) = master::stats::exposure_warning(&s.bound.addr) {
            warn!("{warning}");
        }
    }
    if let Some(m) = &metrics {
        match &m.bound.addr {
            config::ListenAddr::Tcp(addr) => info!("metrics on http://{addr}/metrics"),
            unix => info!("metrics on {unix}, at /metrics"),
        }
    }
    Ok((listeners, stats, metrics))
}

/// `chown-socket = user[:group]`, looked up: the uid and gid to give the unix sockets.
fn socket_owner(config: &Config) -> Result<Option<net::Owner>, Failure> {
    let Some((value, origin)) = &config.chown_socket else {
        return Ok(None);
    };
    let (user, group) = match value.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (value.as_str(), None),
    };
    let unknown = |what: &str, name: &str| {
        Failure::new(format!(
            "{origin}: option 'chown-socket' names {name:?}, which is no {what} on this machine; \
             give a {what} name or number, as in `chown-socket = www-data:www-data`"
        ))
    };
    let uid = master::privileges::resolve_user(user)
        .ok_or_else(|| unknown("user", user))?
        .0;
    let gid = match group {
        Some(group) => {
            Some(master::privileges::resolve_group(group).ok_or_else(|| unknown("group", group))?)
        }
        None => None,
    };
    Ok(Some((Some(uid), gid)))
}

/// Writes the master's pid to `pidfile` (as root, often: see master/pidfile.rs); returns the
/// open file, which `daemonize2` rewrites.
fn write_pidfile(config: &Config, made: &mut Made) -> Result<Option<std::fs::File>, Failure> {
    let Some(pidfile) = &config.pidfile else {
        return Ok(None);
    };
    let file = master::pidfile::write(pidfile, std::process::id()).map_err(Failure::new)?;
    made.files.push(pidfile.clone());
    Ok(Some(file))
}

/// `daemonize` / `daemonize2`: from here on this process is the detached master, writing to
/// the file. The file is opened first, so that an error about it reaches the terminal.
fn detach(py: Python<'_>, d: &config::Daemonize) -> Result<master::daemonize::Detached, Failure> {
    let option = if d.after_load {
        "daemonize2"
    } else {
        "daemonize"
    };
    let log = master::daemonize::open_log(&d.log, option)
        .map_err(|e| Failure::new(format!("{}: {e}", d.origin)))?;
    info!(
        "{option}: detaching; the log goes to {} from now on",
        d.log.display()
    );
    let detached = master::daemonize::detach(py, &log, &d.log).map_err(Failure::new)?;
    log::output::follow_stdio();
    info!(
        "{option}: detached, master pid {} (log file {})",
        std::process::id(),
        d.log.display()
    );
    Ok(detached)
}

/// `uid` and `gid`: from here on the master runs as the service user.
fn drop_privileges(config: &Config) -> Result<(), Failure> {
    if config.uid.is_none() && config.gid.is_none() {
        return Ok(());
    }
    master::privileges::drop_to(config.uid.as_ref(), config.gid.as_ref()).map_err(Failure::new)?;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    info!("running as uid {uid}, gid {gid}");
    Ok(())
}

/// `preload`: the application, loaded once in the master (after the privilege drop).
fn preload(py: Python<'_>, config: &Config) -> Result<Option<bridge::Loaded>, Failure> {
    if !config.preload {
        return Ok(None);
    }
    match app::preload(py, config) {
        Ok(loaded) => Ok(Some(loaded)),
        Err(_) => {
            error!("could not preload the application; exiting");
            Err(Failure {
                code: 1,
                message: None,
            })
        }
    }
}

/// Removes variables from the process environment and from Python's `os.environ`.
fn forget_env(py: Python<'_>, names: &[&str]) {
    let environ = py.import("os").and_then(|os| os.getattr("environ"));
    for name in names {
        if let Ok(environ) = &environ {
            let _ = environ.call_method1("pop", (*name, py.None()));
        }
    }
}

fn python_version(py: Python<'_>) -> String {
    let _ = py;
    Python::version_str()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}
