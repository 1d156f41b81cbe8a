//! The worker's side of the metrics: where the request path counts. Each call is a load of
//! the worker's slot (set once, after fork, when `metrics` is on) and, when it is set, a few
//! single-writer stores into it ([`crate::scoreboard::Tally`]): nothing is locked, nothing allocated. Without
//! `metrics` every call is one load and a branch.
//!
//! Every call comes from the worker's event-loop thread (the connection tasks, the HTTP
//! service, the static files, the connection registry), which is what makes each slot's
//! counters single-writer; the application threads never call here.

use std::sync::OnceLock;

use http::{Method, StatusCode};

use crate::clock::monotonic_us;
use crate::scoreboard::{Traffic, BUCKETS, CLASSES};

/// Upper bounds of the latency buckets, in microseconds (the last bucket takes the rest).
/// Prometheus' default buckets, with three below 5 ms: most of what dragoman serves (static
/// files, small views) is answered in less.
pub(crate) const BOUNDS_US: [u64; BUCKETS - 1] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The worker's slot, once `metrics` is on.
static TRAFFIC: OnceLock<&'static Traffic> = OnceLock::new();

/// Counts this worker's traffic in `traffic` from now on (called once, after fork).
pub(crate) fn install(traffic: &'static Traffic) {
    let _ = TRAFFIC.set(traffic);
}

#[inline]
fn traffic() -> Option<&'static Traffic> {
    TRAFFIC.get().copied()
}

/// Bytes read from a client.
#[inline]
pub(crate) fn received(n: usize) {
    if let Some(t) = traffic() {
        t.bytes_in.add(n as u64);
    }
}

/// Bytes written to a client.
#[inline]
pub(crate) fn sent(n: usize) {
    if let Some(t) = traffic() {
        t.bytes_out.add(n as u64);
    }
}

/// A connection was accepted.
#[inline]
pub(crate) fn connection_opened() {
    if let Some(t) = traffic() {
        t.connections.add(1);
    }
}

/// A connection closed.
#[inline]
pub(crate) fn connection_closed() {
    if let Some(t) = traffic() {
        t.connections.sub(1);
    }
}

/// A request under a static mount named no file: it goes on to the application.
#[inline]
pub(crate) fn static_miss() {
    if let Some(t) = traffic() {
        t.static_misses.add(1);
    }
}

/// Which route answered a request: a label of the request counters and the latency
/// histogram. The order is the scoreboard's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// The application.
    App = 0,
    /// A static file (or a static mount's own answer: 404, 405, a redirect to the directory).
    Static = 1,
    /// The health check.
    Health = 2,
    /// dragoman itself: a request refused before any route (400, 414, 501), a redirect to
    /// HTTPS, an ACME challenge.
    Server = 3,
}

impl RouteKind {
    /// The label values, in the scoreboard's order.
    pub(crate) const NAMES: [&'static str; crate::scoreboard::KINDS] =
        ["app", "static", "health", "server"];
}

/// One request, from its head to the end of its response: in flight while it lives, counted
/// (by route kind, method and status class) with its latency when it is dropped. A request
/// dropped before it had a response (its client went away) counts in the class of its own.
pub(crate) struct Mark {
    traffic: Option<&'static Traffic>,
    start_us: u64,
    method: u8,
    kind: RouteKind,
    status: u16,
}

impl Mark {
    /// A request with this method has its head.
    #[inline]
    pub(crate) fn begin(method: &Method) -> Mark {
        Mark::on(traffic(), method)
    }

    fn on(traffic: Option<&'static Traffic>, method: &Method) -> Mark {
        let Some(t) = traffic else {
            return Mark {
                traffic: None,
                start_us: 0,
                method: 0,
                kind: RouteKind::App,
                status: 0,
            };
        };
        t.in_flight.add(1);
        Mark {
            traffic,
            start_us: monotonic_us(),
            method: method_index(method),
            kind: RouteKind::App,
            status: 0,
        }
    }

    /// The route that answers it (the application unless said otherwise).
    #[inline]
    pub(crate) fn routed(&mut self, kind: RouteKind) {
        self.kind = kind;
    }

    /// Its response's status.
    #[inline]
    pub(crate) fn answered(&mut self, status: StatusCode) {
        self.status = status.as_u16();
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let Some(t) = self.traffic else {
            return;
        };
        t.in_flight.sub(1);
        let kind = self.kind as usize;
        let class = match self.status {
            100..=599 => usize::from(self.status / 100 - 1),
            _ => CLASSES - 1,
        };
        t.requests[kind][usize::from(self.method)][class].add(1);
        let micros = monotonic_us().saturating_sub(self.start_us);
        t.latency[kind][bucket(micros)].add(1);
        t.latency_us[kind].add(micros);
        if self.kind == RouteKind::Static {
            match self.status {
                200..=299 => t.static_hits.add(1),
                304 => t.static_not_modified.add(1),
                _ => {}
            }
        }
    }
}

/// The method's index among [`super::render`]'s method labels.
fn method_index(method: &Method) -> u8 {
    // In the order of how often they come.
    if *method == Method::GET {
        0
    } else if *method == Method::HEAD {
        1
    } else if *method == Method::POST {
        2
    } else if *method == Method::PUT {
        3
    } else if *method == Method::DELETE {
        4
    } else if *method == Method::PATCH {
        5
    } else if *method == Method::OPTIONS {
        6
    } else {
        7
    }
}

/// The latency bucket of a request that took `micros`.
pub(crate) fn bucket(micros: u64) -> usize {
    BOUNDS_US.partition_point(|bound| *bound < micros)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn buckets_take_their_upper_bound() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(500), 0);
        assert_eq!(bucket(501), 1);
        assert_eq!(bucket(10_000_000), BUCKETS - 2);
        assert_eq!(bucket(10_000_001), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn a_mark_counts_its_request_when_it_goes() {
        let board = Scoreboard::map().unwrap();
        let t = &board.slot(0).traffic;
        let mut a = Mark::on(Some(t), &Method::GET);
        let mut b = Mark::on(Some(t), &Method::from_bytes(b"PROPFIND").unwrap());
        assert_eq!(t.in_flight.get(), 2);
        a.routed(RouteKind::Static);
        a.answered(StatusCode::NOT_MODIFIED);
        drop(a);
        b.answered(StatusCode::INTERNAL_SERVER_ERROR);
        drop(b);
        // Cut before its response: counted apart.
        drop(Mark::on(Some(t), &Method::POST));
        assert_eq!(t.in_flight.get(), 0);
        assert_eq!(t.requests[1][0][2].get(), 1, "static GET 3xx");
        assert_eq!(t.requests[0][7][4].get(), 1, "app, other method, 5xx");
        assert_eq!(t.requests[0][2][CLASSES - 1].get(), 1, "app POST cut");
        assert_eq!(t.static_not_modified.get(), 1);
        assert_eq!(t.static_hits.get(), 0);
        let counted: u64 = t.latency.iter().flatten().map(Tally::get).sum();
        assert_eq!(counted, 3);
        // Without metrics, nothing is counted.
        drop(Mark::on(None, &Method::GET));
        let total: u64 = t.requests.iter().flatten().flatten().map(Tally::get).sum();
        assert_eq!(total, 3);
        t.clear();
        assert_eq!(t.requests[1][0][2].get(), 0);
    }

    use crate::scoreboard::Tally;
}
