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

pub(crate) use record::{Mark, RouteKind};
