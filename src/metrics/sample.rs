//! The master's side of the metrics: a plain copy of a worker's counters ([`Counts`]), the
//! totals of the workers that have exited ([`Totals`]), and what one scrape shows
//! ([`Scrape`]). Counters that only grow must keep growing while workers come and go: a
//! worker's counters are folded into the totals when it is reaped, and its slot is cleared
//! before another worker takes it, so a scrape never counts a request twice or loses one.

use crate::scoreboard::{Phase, Tally, Traffic, BUCKETS, CLASSES, KINDS, METHODS};

/// A copy of a worker's counters (not its gauges), as plain numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) requests: [[[u64; CLASSES]; METHODS]; KINDS],
    pub(crate) latency: [[u64; BUCKETS]; KINDS],
    pub(crate) latency_us: [u64; KINDS],
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) static_hits: u64,
    pub(crate) static_not_modified: u64,
    pub(crate) static_misses: u64,
}

impl Counts {
    /// Reads a worker's counters. A scrape while the worker counts may see one request in
    /// the request counters and not yet in the histogram: the next scrape agrees.
    pub(crate) fn of(t: &Traffic) -> Counts {
        let mut c = Counts::default();
        let pairs = c
            .requests
            .iter_mut()
            .flatten()
            .flatten()
            .zip(t.requests.iter().flatten().flatten())
            .chain(
                c.latency
                    .iter_mut()
                    .flatten()
                    .zip(t.latency.iter().flatten()),
            )
            .chain(c.latency_us.iter_mut().zip(&t.latency_us));
        for (out, tally) in pairs {
            *out = tally.get();
        }
        c.bytes_in = t.bytes_in.get();
        c.bytes_out = t.bytes_out.get();
        c.static_hits = t.static_hits.get();
        c.static_not_modified = t.static_not_modified.get();
        c.static_misses = t.static_misses.get();
        c
    }

    /// Adds `other` to these counts.
    pub(crate) fn add(&mut self, other: &Counts) {
        let pairs = self
            .requests
            .iter_mut()
            .flatten()
            .flatten()
            .zip(other.requests.iter().flatten().flatten())
            .chain(
                self.latency
                    .iter_mut()
                    .flatten()
                    .zip(other.latency.iter().flatten()),
            )
            .chain(self.latency_us.iter_mut().zip(&other.latency_us))
            .chain([
                (&mut self.bytes_in, &other.bytes_in),
                (&mut self.bytes_out, &other.bytes_out),
                (&mut self.static_hits, &other.static_hits),
                (&mut self.static_not_modified, &other.static_not_modified),
                (&mut self.static_misses, &other.static_misses),
            ]);
        for (sum, n) in pairs {
            *sum = sum.wrapping_add(*n);
        }
    }
}

/// Why a worker was replaced: the label of `dragoman_worker_restarts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restart {
    /// It died unasked (or could not load the application).
    Crash = 0,
    Harakiri = 1,
    MaxRequests = 2,
    Lifetime = 3,
    Rss = 4,
    /// A reload (SIGHUP, touch-reload, py-autoreload), chained or not.
    Reload = 5,
}

impl Restart {
    pub(crate) const NAMES: [&'static str; 6] = [
        "crash",
        "harakiri",
        "max-requests",
        "lifetime",
        "rss",
        "reload",
    ];
}

/// What the master keeps for the metrics: the counters of the workers that have exited, and
/// the restarts by reason.
#[derive(Clone, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) retired: Counts,
    pub(crate) restarts: [u64; Restart::NAMES.len()],
}

impl Totals {
    /// A worker exited (and no longer writes `traffic`): its counters go into the totals, and
    /// its slot is cleared for the next worker.
    pub(crate) fn retire(&mut self, traffic: &Traffic) {
        self.retired.add(&Counts::of(traffic));
        traffic.clear();
    }

    pub(crate) fn restarted(&mut self, why: Restart) {
        self.restarts[why as usize] += 1;
    }
}

/// One live worker in a scrape.
#[derive(Clone, Debug, Default)]
pub(crate) struct WorkerSample {
    /// Its position (1-based), stable across replacements: the `worker` label.
    pub(crate) id: usize,
    pub(crate) pid: i32,
    pub(crate) rss: u64,
    pub(crate) counts: Counts,
    pub(crate) in_flight: u64,
    pub(crate) connections: u64,
}

impl WorkerSample {
    /// Worker `pid` at position `id` whose slot holds `traffic`, with resident memory `rss`.
    pub(crate) fn of(id: usize, pid: i32, rss: u64, traffic: &Traffic) -> WorkerSample {
        let gauge = |t: &Tally| t.get();
        WorkerSample {
            id,
            pid,
            rss,
            counts: Counts::of(traffic),
            in_flight: gauge(&traffic.in_flight),
            connections: gauge(&traffic.connections),
        }
    }
}

/// A listening socket in a scrape: its name, and its accept queue now and at most.
#[derive(Clone, Debug)]
pub(crate) struct ListenerSample {
    pub(crate) name: String,
    pub(crate) queue: u64,
    pub(crate) max_queue: u64,
}

/// Everything one scrape shows.
pub(crate) struct Scrape<'a> {
    pub(crate) workers: Vec<WorkerSample>,
    pub(crate) listeners: Vec<ListenerSample>,
    pub(crate) totals: &'a Totals,
    pub(crate) phase: Phase,
    /// When the master started, in seconds since the epoch.
    pub(crate) started_unix: u64,
}

impl Scrape<'_> {
    /// The counters of every worker that ever ran: the live ones and the totals.
    pub(crate) fn sum(&self) -> Counts {
        let mut sum = self.totals.retired.clone();
        for w in &self.workers {
            sum.add(&w.counts);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn a_retired_worker_counts_once_and_its_slot_starts_from_zero() {
        let board = Scoreboard::map().unwrap();
        let t = &board.slot(5).traffic;
        t.requests[0][0][1].add(3);
        t.bytes_out.add(100);
        t.latency[0][2].add(3);
        t.in_flight.add(1); // a gauge: never folded
        let mut totals = Totals::default();
        totals.retire(t);
        assert_eq!(totals.retired.requests[0][0][1], 3);
        assert_eq!(totals.retired.bytes_out, 100);
        assert_eq!(Counts::of(t), Counts::default());
        assert_eq!(t.in_flight.get(), 0);
        t.requests[0][0][1].add(2);
        let scrape = Scrape {
            workers: vec![WorkerSample::of(1, 7, 0, t)],
            listeners: vec![],
            totals: &totals,
            phase: Phase::Ready,
            started_unix: 0,
        };
        assert_eq!(scrape.sum().requests[0][0][1], 5);
        assert_eq!(scrape.sum().latency[0][2], 3);
    }
}
