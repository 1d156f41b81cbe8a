//! What every application bridge needs, whatever the interface: WSGI today ([`crate::wsgi`]),
//! ASGI next. A bridge is an [`App`] (a request in, a response out, the seam `http` calls)
//! that a worker loads, serves with, and stops ([`Bridge`]). The pieces here are the parts of
//! that work that do not depend on the interface:
//! - [`admission`]: the application's slots and the bounded queue before them (503 beyond);
//! - [`body`]: how a request body reaches the application (read first, spooled, streamed)
//!   and its limits (413, 408, 400);
//! - [`head`]: a response head as the application gives it, and the rules it must keep
//!   (no hop-by-hop headers, a body that matches its Content-Length);
//! - [`label`]: how a request is named in log lines and the worker's stats;
//! - [`outbox`]: the application threads' wake-ups of the connections' tasks, in batches.

pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod head;
pub(crate) mod label;
pub(crate) mod outbox;
pub(crate) mod pipe;
pub(crate) mod spool;

use pyo3::prelude::*;

use crate::http::App;

/// An application behind its bridge, as a worker holds it.
pub(crate) trait Bridge: App {
    /// Stops what the bridge started (its application threads), after the worker has
    /// served its last request.
    fn shutdown(&self);
}

/// The application could not be loaded (or started); the reason has been logged.
#[derive(Debug)]
pub(crate) struct LoadFailed;

/// The application callables a process has imported: the main one (when the config has one)
/// and one per `mount`, in the config's order (only a WSGI application has mounts).
pub(crate) struct Loaded {
    pub(crate) main: Option<Py<PyAny>>,
    pub(crate) mounts: Vec<Py<PyAny>>,
}

impl Loaded {
    /// The same callables, for a worker the master forks (`preload`).
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Loaded {
        Loaded {
            main: self.main.as_ref().map(|app| app.clone_ref(py)),
            mounts: self.mounts.iter().map(|app| app.clone_ref(py)).collect(),
        }
    }
}
