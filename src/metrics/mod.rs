//! Prometheus metrics (`metrics = ADDR`): what every worker counts on its request path, summed
//! by the master from the scoreboard and served by it, in the Prometheus text format or in
//! OpenMetrics when the scraper asks for it. No Python runs on the way, and the master serves
//! scrapers like the stats clients: without ever waiting for one.
//!
//! - [`record`]: the worker's side, a few stores into its scoreboard slot per request;
//! - [`sample`]: the master's side, the sums over live workers and the totals of dead ones
//!   (so counters never go back when a worker is replaced);
//! - [`render`]: the two text formats;
//! - [`server`]: the listener in the master's loop.

pub(crate) mod record;
pub(crate) mod render;
pub(crate) mod sample;
pub(crate) mod server;

pub(crate) use record::Mark;

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
