//! dragoman: one program that turns a Python web application into a production HTTP service.
//!
//! The Python package's entry point calls [`run`] with `sys.argv`. From there: the config is
//! loaded ([`config`]), the interpreter prepared ([`interp`]), the listeners bound ([`net`]),
//! and the master ([`master`]) forks workers ([`worker`]) that serve HTTP ([`http`]) and call
//! the application through its bridge ([`wsgi`]).

pub mod config;
pub mod http;
pub mod interp;
pub mod log;
pub mod master;
pub mod net;
pub mod worker;
pub mod wsgi;

use pyo3::prelude::*;

use config::Loaded;
use master::Role;

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
    for notice in &config.notices {
        if notice.not_yet {
            warn!("{}", notice.text);
        } else {
            info!("{}", notice.text);
        }
    }
    if let Err(e) = interp::prepare(py, &config) {
        eprintln!("dragoman: error: {e}");
        return 2;
    }
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for listen in &config.listeners {
        match net::bind(listen, config.backlog) {
            Ok(bound) => listeners.push(bound),
            Err(e) => {
                eprintln!("dragoman: error: {}", net::explain_bind_error(listen, &e));
                return 1;
            }
        }
    }
    for bound in &listeners {
        info!("listening on {}", bound.url());
    }
    match master::run(py, &config, listeners) {
        Role::Master(code) => code,
        Role::Worker(args) => worker::run(py, *args),
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
