//! What the ASGI bridge's files share: the application's side both loops see ([`Core`]), a
//! request's hold on it ([`Held`]), and the exception `send()` raises once the client is gone.

use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::exchange::{Exchange, Out};
use super::message;
use super::runner::Inbox;
use super::scope::Templates;
use crate::bridge::admission::Slot;
use crate::bridge::label::RequestLabel;
use crate::bridge::outbox::Outbox;
use crate::bridge::spool::Spool;
use crate::config::asgi::WebSocketConfig;
use crate::log;
use crate::scoreboard::{RequestStats, MAX_CORES};

pyo3::create_exception!(
    dragoman,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "Raised by an ASGI send() once the client has gone (ASGI spec 2.4)."
);

/// What the worker's loop and the application's loop share about the application.
pub(crate) struct Core {
    pub(super) app: Py<PyAny>,
    /// `mysite.asgi:application`, for log lines.
    pub(super) name: Arc<str>,
    pub(super) stats: Arc<RequestStats>,
    /// The lifespan's `state`, copied into every scope.
    pub(super) state: OnceLock<Py<PyDict>>,
    pub(super) templates: Templates,
    pub(super) inbox: Arc<Inbox>,
    /// Wake-ups of the connections' tasks from the loop thread, batched.
    pub(super) outbox: Arc<Outbox>,
    pub(super) spool: Arc<Spool>,
    pub(super) response_buffer: u64,
    pub(super) websocket: WebSocketConfig,
}

/// A request's hold on the application: its slot and its scoreboard entry.
pub(crate) struct Held {
    pub(super) _slot: Slot,
    pub(super) core: CoreLease,
}

impl Held {
    pub(crate) fn core(&self) -> usize {
        self.core.index
    }
}

/// Where scoreboard entries ("cores") are taken from and given back: the application.
pub(super) trait Cores {
    fn take(&self) -> Option<usize>;
    fn give_back(&self, index: usize);
}

/// A scoreboard entry, given back when dropped; the last one is shared when all are taken.
pub(super) struct CoreLease {
    pool: Rc<dyn Cores>,
    index: usize,
    owned: bool,
}

impl CoreLease {
    pub(super) fn new(pool: Rc<dyn Cores>) -> CoreLease {
        let taken = pool.take();
        CoreLease {
            pool,
            index: taken.unwrap_or(MAX_CORES - 1),
            owned: taken.is_some(),
        }
    }
}

impl Drop for CoreLease {
    fn drop(&mut self) {
        if self.owned {
            self.pool.give_back(self.index);
        }
    }
}

/// The application could not be started on a request or a WebSocket (its scope, its channel
/// or its call failed): the error with its traceback in the log, counted in the stats, and the
/// exchange ended as failed. `serving` says what it was doing (`serving the WebSocket`).
pub(super) fn start_failed(
    py: Python<'_>,
    label: &RequestLabel,
    exchange: &Exchange,
    serving: &str,
    err: &PyErr,
) {
    log::write_block(
        log::Level::Error,
        format_args!(
            "error in the application {} while {serving} {}:",
            label.app, label.request
        ),
        &message::traceback(py, err),
    );
    label.stats.exception();
    let _ = exchange.send(Out::Ended { failed: true });
}
