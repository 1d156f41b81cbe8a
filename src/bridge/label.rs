//! How a request is named while an application serves it: in log lines about its failures,
//! and in the worker's stats (the scoreboard, which harakiri and uwsgitop read).

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::Method;

use crate::scoreboard::{RequestStats, RequestTimer};

/// Names a request in log lines (the application and the request line), and counts it in
/// the worker's stats.
#[derive(Clone)]
pub(crate) struct RequestLabel {
    pub(crate) app: Arc<str>,
    pub(crate) request: RequestLine,
    pub(crate) stats: Arc<RequestStats>,
}

impl RequestLabel {
    /// Marks the request as running on application thread `core` in the worker's stats.
    pub(crate) fn begin(&self, core: usize) -> RequestTimer {
        let line = &self.request;
        self.stats
            .begin(core, &[line.method.as_str(), " ", line.target()])
    }
}

/// "GET /path?query" of a request, for the scoreboard and log lines: the method and the
/// request's own target (a shared slice of what was read), written out only when needed.
#[derive(Clone)]
pub(crate) struct RequestLine {
    method: Method,
    target: Option<PathAndQuery>,
}

impl RequestLine {
    pub(crate) fn of(parts: &Parts) -> RequestLine {
        RequestLine {
            method: parts.method.clone(),
            target: parts.uri.path_and_query().cloned(),
        }
    }

    /// [`RequestLine::of`] with the target copied: for a label kept as long as a connection
    /// (a WebSocket), since the request's target shares the buffer its head was read into.
    pub(crate) fn detached(parts: &Parts) -> RequestLine {
        RequestLine {
            method: parts.method.clone(),
            target: parts.uri.path_and_query().and_then(|pq| {
                PathAndQuery::from_maybe_shared(bytes::Bytes::copy_from_slice(
                    pq.as_str().as_bytes(),
                ))
                .ok()
            }),
        }
    }

    /// The target, cut to at most 200 bytes (at a character boundary).
    fn target(&self) -> &str {
        let target = self.target.as_ref().map_or("/", |pq| pq.as_str());
        let mut end = target.len().min(200);
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        &target[..end]
    }
}

impl fmt::Display for RequestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target())
    }
}
