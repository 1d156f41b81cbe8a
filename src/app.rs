//! The application, and which bridge serves it. WSGI is the one bridge today; the ASGI bridge
//! will be chosen here (by `asgi =`, `--interface`, or by looking at the callable), so the
//! worker and the master never name an interface.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::bridge::{Bridge, LoadFailed};
use crate::config::Config;
use crate::scoreboard::RequestStats;
use crate::wsgi;

/// Imports the application named by the config, in the master before forking (`preload`).
/// On failure the traceback and a one-line reason have been logged.
pub(crate) fn preload(py: Python<'_>, config: &Config) -> Result<Py<PyAny>, LoadFailed> {
    wsgi::load_app(py, config)
}

/// Loads the application in a worker (unless the master already imported it: `preloaded`)
/// behind its bridge. On failure the reason has been logged, and the worker must exit.
pub(crate) fn load(
    py: Python<'_>,
    config: &Config,
    preloaded: Option<Py<PyAny>>,
    stats: Arc<RequestStats>,
) -> Result<Box<dyn Bridge + Send>, LoadFailed> {
    let app = wsgi::WsgiApp::load(py, config, preloaded, stats)?;
    Ok(Box::new(app))
}
