//! The application, and which bridge serves it: WSGI ([`crate::wsgi`]) or ASGI
//! ([`crate::asgi`]), as `module`/`asgi` and `interface` say (with `interface = auto`, by
//! looking at the callable), so the worker and the master never name an interface.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::bridge::{Bridge, LoadFailed, Loaded};
use crate::config::asgi::Interface;
use crate::config::Config;
use crate::scoreboard::RequestStats;
use crate::{asgi, info, wsgi};

/// Imports the applications named by the config, in the master before forking (`preload`).
/// On failure the traceback and a one-line reason have been logged.
pub(crate) fn preload(py: Python<'_>, config: &Config) -> Result<Loaded, LoadFailed> {
    match config.asgi.interface {
        Interface::Wsgi => wsgi::load_apps(py, config),
        Interface::Asgi | Interface::Auto => Ok(Loaded {
            main: Some(asgi::load_app(py, config)?),
            mounts: Vec::new(),
        }),
    }
}

/// Loads the applications in a worker (unless the master already imported them: `preloaded`)
/// behind its bridge. On failure the reason has been logged, and the worker must exit.
pub(crate) fn load(
    py: Python<'_>,
    config: &Config,
    preloaded: Option<Loaded>,
    stats: Arc<RequestStats>,
) -> Result<Box<dyn Bridge + Send>, LoadFailed> {
    let interface = config.asgi.interface;
    if interface == Interface::Wsgi {
        let app = wsgi::WsgiApp::load(py, config, preloaded, stats)?;
        return Ok(Box::new(app));
    }
    // The config refuses mounts beside an ASGI (or auto) application: there is only the main.
    let app = match preloaded.and_then(|loaded| loaded.main) {
        Some(app) => app,
        None => asgi::load_app(py, config)?,
    };
    if interface == Interface::Auto && !asgi::looks_like_asgi(py, app.bind(py)) {
        info!(
            "interface = auto: {} is served as a WSGI application (its callable is not a \
             coroutine function)",
            config.app.describe()
        );
        let loaded = Loaded {
            main: Some(app),
            mounts: Vec::new(),
        };
        let app = wsgi::WsgiApp::load(py, config, Some(loaded), stats)?;
        return Ok(Box::new(app));
    }
    let app = asgi::AsgiApp::load(py, config, app, stats)?;
    Ok(Box::new(app))
}
