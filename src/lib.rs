//! dragoman: one program that turns a Python web application into a production HTTP service.
//!
//! The Python package's entry point calls [`run`] with `sys.argv`. From there: the config is
//! loaded ([`config`]), the interpreter prepared ([`interp`]), the listeners bound ([`net`]),
//! and the master ([`master`]) forks workers ([`worker`]) that serve HTTP ([`http`]) and call
//! the application through its bridge ([`wsgi`]).

pub mod clock;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod interp;
pub mod ipc;
pub mod log;
pub mod master;
pub mod net;
pub mod scoreboard;
pub mod statics;
pub mod uwsgi;
pub mod worker;
pub mod wsgi;

use pyo3::prelude::*;

use config::Loaded;

/// mimalloc for the Rust side (requests, headers, bodies, futures): about 30 allocations per
/// request, where glibc's malloc and free cost about 950 instructions more per hello-world
/// request (callgrind, 21,140 -> 20,190). CPython keeps its own allocators. Forking is safe:
/// the master forks from its only thread (src/master/fork.rs). Without transparent huge pages
/// (`no_thp`): with them a worker's RSS at rest went from 11.1 to 17.1 MiB; without, 11.4.
/// Not under cargo-fuzz, whose sanitizers must see every allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ipc::Role;

/// The Python extension module `dragoman._native`.
#[pymodule]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    #[allow(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// Runs dragoman with a full argv (argv[0] is the program name); returns the exit code.
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
    let config = match config::load(args, &env) {
        Ok(Loaded::Run(config)) => *config,
        Ok(Loaded::Help) => {
            print!("{}", config::help::text());
            return 0;
        }
        Ok(Loaded::Version) => {
            println!(
                "dragoman {} (Python {})",
                env!("CARGO_PKG_VERSION"),
                python_version(py)
            );
            return 0;
        }
        Err(e) => {
            eprintln!("dragoman: error: {e}");
            return 2;
        }
    };
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
    if let Some(mask) = config.umask {
        master::privileges::set_umask(mask);
    }
    // systemd's variables are for the master alone: read them, then hide them from the
    // workers and the application.
    let notifier = match master::systemd::Notifier::from_env() {
        Ok(n) => n,
        Err(e) => {
            warn!("NOTIFY_SOCKET is set but unusable: {e}");
            None
        }
    };
    if let Err(e) = interp::prepare(py, &config) {
        eprintln!("dragoman: error: {e}");
        return 2;
    }
    let (mut listeners, to_bind) = match net::adopt_systemd(&config.listeners) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("dragoman: error: cannot use the sockets systemd passed (LISTEN_FDS): {e}");
            return 1;
        }
    };
    forget_env(
        py,
        &[
            "NOTIFY_SOCKET",
            "LISTEN_PID",
            "LISTEN_FDS",
            "LISTEN_FDNAMES",
        ],
    );
    for listen in &to_bind {
        match net::bind(listen, config.backlog, config.chmod_socket) {
            Ok(bound) => listeners.push(bound),
            Err(e) => {
                eprintln!("dragoman: error: {}", net::explain_bind_error(listen, &e));
                vacuum(&config, &listeners, None);
                return 1;
            }
        }
    }
    let stats = match &config.stats {
        Some(listen) => match net::bind(listen, 64, config.chmod_socket) {
            Ok(bound) => Some(master::stats::StatsServer {
                bound,
                http: config.stats_http,
            }),
            Err(e) => {
                eprintln!("dragoman: error: {}", net::explain_bind_error(listen, &e));
                vacuum(&config, &listeners, None);
                return 1;
            }
        },
        None => None,
    };
    for bound in &listeners {
        info!("listening on {}", bound.url());
    }
    if let Some(s) = &stats {
        info!("stats on {}", s.bound.addr);
    }
    if let Some(pidfile) = &config.pidfile {
        if let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id())) {
            eprintln!(
                "dragoman: error: cannot write the pidfile {}: {e}",
                pidfile.display()
            );
            vacuum(&config, &listeners, stats.as_ref());
            return 1;
        }
    }
    if config.uid.is_some() || config.gid.is_some() {
        if let Err(e) = master::privileges::drop_to(config.uid.as_ref(), config.gid.as_ref()) {
            eprintln!("dragoman: error: {e}");
            vacuum(&config, &listeners, stats.as_ref());
            return 1;
        }
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        info!("running as uid {uid}, gid {gid}");
    }
    let preloaded = if config.preload {
        match wsgi::load_app(py, &config) {
            Ok(app) => Some(app),
            Err(_) => {
                error!("could not preload the application; exiting");
                vacuum(&config, &listeners, stats.as_ref());
                return 1;
            }
        }
    } else {
        None
    };
    let created: Vec<std::path::PathBuf> = listeners
        .iter()
        .chain(stats.as_ref().map(|s| &s.bound))
        .filter_map(|b| b.created.clone())
        .collect();
    let setup = master::Setup {
        source: master::Source {
            args: args.to_vec(),
            env,
        },
        listeners,
        stats,
        notifier,
        preloaded,
    };
    let vacuum_config = config.clone();
    match master::run(py, config, setup) {
        Role::Master(code) => {
            if vacuum_config.vacuum {
                remove_files(vacuum_config.pidfile.iter().chain(created.iter()));
            }
            code
        }
        Role::Worker(args) => worker::run(py, *args),
    }
}

/// With `vacuum`, removes the pidfile and the unix sockets dragoman created.
fn vacuum(
    config: &config::Config,
    listeners: &[net::Bound],
    stats: Option<&master::stats::StatsServer>,
) {
    if !config.vacuum {
        return;
    }
    let created = listeners
        .iter()
        .chain(stats.map(|s| &s.bound))
        .filter_map(|b| b.created.as_ref());
    remove_files(config.pidfile.iter().chain(created));
}

fn remove_files<'a>(paths: impl Iterator<Item = &'a std::path::PathBuf>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
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
