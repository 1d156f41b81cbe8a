//! The two text formats a scrape is answered in: Prometheus' text format 0.0.4 (what every
//! scraper reads) and OpenMetrics 1.0.0 (when the scraper's Accept header asks for it, as
//! Prometheus does). They differ in the counter families' names (OpenMetrics names the family
//! without `_total`), units, the info type and the closing `# EOF`.

use std::fmt::Write as _;

use super::record::RouteKind;
use super::sample::{Counts, Restart, Scrape};
use crate::scoreboard::{Phase, BUCKETS, CLASSES, KINDS, METHODS};

/// The latency buckets' `le` labels, in seconds, as written (the record side's bounds).
const LE: [&str; BUCKETS] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
    "2.5", "5.0", "10.0", "+Inf",
];
/// The method labels, in the record side's order.
const METHOD_NAMES: [&str; METHODS] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// The status-class labels; `none`: the request ended with no response (its client left).
const CLASS_NAMES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Which text format to answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it is named (and not refused
    /// with `q=0`), as Prometheus sends it; otherwise the text format.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        let asked = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        });
        if asked {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Writes metric families in one format.
struct Out {
    text: String,
    format: Format,
}

impl Out {
    /// The family's header lines. `name` is the family name without `_total`; `unit`, if
    /// any, is its name's last word (OpenMetrics writes it out).
    fn family(&mut self, name: &str, kind: &str, unit: Option<&str>, help: &str) {
        let om = self.format == Format::OpenMetrics;
        let shown = if kind == "counter" && !om {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        let _ = writeln!(self.text, "# HELP {shown} {help}");
        let _ = writeln!(self.text, "# TYPE {shown} {kind}");
        if let (true, Some(unit)) = (om, unit) {
            let _ = writeln!(self.text, "# UNIT {shown} {unit}");
        }
    }

    /// One sample: `name{labels} value`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, unit: Option<&str>, help: &str, value: u64) {
        self.family(name, "counter", unit, help);
        self.sample(&format!("{name}_total"), &[], value);
    }

    fn gauge(&mut self, name: &str, unit: Option<&str>, help: &str, value: u64) {
        self.family(name, "gauge", unit, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the formats write it: backslash, double quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// Seconds from microseconds, as a float literal.
fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// The whole exposition of one scrape.
pub(crate) fn render(scrape: &Scrape<'_>, format: Format) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
        format,
    };
    let sum = scrape.sum();
    let version = env!("CARGO_PKG_VERSION");
    match format {
        Format::Prometheus => {
            out.family("dragoman_build_info", "gauge", None, "dragoman's version");
            out.sample("dragoman_build_info", &[("version", version)], 1);
        }
        Format::OpenMetrics => {
            out.family("dragoman_build", "info", None, "dragoman's version");
            out.sample("dragoman_build_info", &[("version", version)], 1);
        }
    }
    out.gauge(
        "dragoman_start_time_seconds",
        Some("seconds"),
        "when the master started, in seconds since the epoch",
        scrape.started_unix,
    );
    out.gauge(
        "dragoman_ready",
        None,
        "1 while the health check answers 200 (every worker accepted; not stopping)",
        u64::from(scrape.phase == Phase::Ready),
    );
    out.gauge(
        "dragoman_workers",
        None,
        "worker processes alive (during a reload, old and new)",
        scrape.workers.len() as u64,
    );
    requests(&mut out, &sum);
    latency(&mut out, &sum);
    out.gauge(
        "dragoman_http_requests_in_flight",
        None,
        "requests between their head and the end of their response",
        scrape.workers.iter().map(|w| w.in_flight).sum(),
    );
    out.counter(
        "dragoman_http_received_bytes",
        Some("bytes"),
        "bytes read from clients (above TLS)",
        sum.bytes_in,
    );
    out.counter(
        "dragoman_http_sent_bytes",
        Some("bytes"),
        "bytes written to clients (above TLS; files sent with sendfile included)",
        sum.bytes_out,
    );
    out.gauge(
        "dragoman_connections_open",
        None,
        "client connections open in the workers",
        scrape.workers.iter().map(|w| w.connections).sum(),
    );
    out.counter(
        "dragoman_static_hits",
        None,
        "static files served (2xx)",
        sum.static_hits,
    );
    out.counter(
        "dragoman_static_not_modified",
        None,
        "static files answered 304 Not Modified",
        sum.static_not_modified,
    );
    out.counter(
        "dragoman_static_misses",
        None,
        "requests under a static mount that named no file (passed to the application)",
        sum.static_misses,
    );
    out.family(
        "dragoman_worker_restarts",
        "counter",
        None,
        "workers replaced, by reason",
    );
    for (reason, n) in Restart::NAMES.iter().zip(scrape.totals.restarts) {
        out.sample("dragoman_worker_restarts_total", &[("reason", reason)], n);
    }
    out.family(
        "dragoman_worker_resident_memory_bytes",
        "gauge",
        Some("bytes"),
        "resident memory of each worker",
    );
    for w in &scrape.workers {
        let id = w.id.to_string();
        out.sample(
            "dragoman_worker_resident_memory_bytes",
            &[("worker", &id), ("pid", &w.pid.to_string())],
            w.rss,
        );
    }
    out.family(
        "dragoman_listen_queue",
        "gauge",
        None,
        "connections waiting in a listener's accept queue",
    );
    for l in &scrape.listeners {
        out.sample("dragoman_listen_queue", &[("listener", &l.name)], l.queue);
    }
    out.family(
        "dragoman_listen_queue_max",
        "gauge",
        None,
        "the size of a listener's accept queue (its backlog)",
    );
    for l in &scrape.listeners {
        out.sample(
            "dragoman_listen_queue_max",
            &[("listener", &l.name)],
            l.max_queue,
        );
    }
    if format == Format::OpenMetrics {
        out.text.push_str("# EOF\n");
    }
    out.text
}

/// `dragoman_http_requests_total`: the combinations that happened.
fn requests(out: &mut Out, sum: &Counts) {
    out.family(
        "dragoman_http_requests",
        "counter",
        None,
        "requests answered, by route (app, static, health, server), method and status class",
    );
    for kind in 0..KINDS {
        for (method, by_class) in sum.requests[kind].iter().enumerate() {
            for (class, n) in by_class.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                out.sample(
                    "dragoman_http_requests_total",
                    &[
                        ("route", RouteKind::NAMES[kind]),
                        ("method", METHOD_NAMES[method]),
                        ("status", CLASS_NAMES[class]),
                    ],
                    n,
                );
            }
        }
    }
}

/// `dragoman_http_request_duration_seconds`, per route that had requests.
fn latency(out: &mut Out, sum: &Counts) {
    let name = "dragoman_http_request_duration_seconds";
    out.family(
        name,
        "histogram",
        Some("seconds"),
        "time from a request's head to the end of its response",
    );
    for kind in 0..KINDS {
        let count: u64 = sum.latency[kind].iter().sum();
        if count == 0 {
            continue;
        }
        let route = RouteKind::NAMES[kind];
        let mut cumulative = 0;
        for (le, n) in LE.iter().zip(sum.latency[kind]) {
            cumulative += n;
            out.sample(
                &format!("{name}_bucket"),
                &[("route", route), ("le", le)],
                cumulative,
            );
        }
        out.sample(
            &format!("{name}_sum"),
            &[("route", route)],
            seconds(sum.latency_us[kind]),
        );
        out.sample(&format!("{name}_count"), &[("route", route)], count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::{ListenerSample, Totals, WorkerSample};

    fn scrape(totals: &Totals) -> Scrape<'_> {
        let mut counts = Counts::default();
        counts.requests[0][0][1] = 7;
        counts.requests[1][1][2] = 2;
        counts.latency[0][0] = 5;
        counts.latency[0][3] = 2;
        counts.latency[1][0] = 2;
        counts.latency_us[0] = 1_500;
        counts.bytes_out = 4096;
        Scrape {
            workers: vec![WorkerSample {
                id: 1,
                pid: 42,
                rss: 12 << 20,
                counts,
                in_flight: 1,
                connections: 3,
            }],
            listeners: vec![ListenerSample {
                name: "127.0.0.1:8000".into(),
                queue: 0,
                max_queue: 1024,
            }],
            totals,
            phase: Phase::Ready,
            started_unix: 1_800_000_000,
        }
    }

    #[test]
    fn the_text_format() {
        let mut totals = Totals::default();
        totals.restarted(Restart::Harakiri);
        totals.retired.requests[0][0][1] = 3;
        let text = render(&scrape(&totals), Format::Prometheus);
        for line in [
            "# TYPE dragoman_http_requests_total counter",
            "dragoman_http_requests_total{route=\"app\",method=\"GET\",status=\"2xx\"} 10",
            "dragoman_http_requests_total{route=\"static\",method=\"HEAD\",status=\"3xx\"} 2",
            "dragoman_http_request_duration_seconds_bucket{route=\"app\",le=\"0.0005\"} 5",
            "dragoman_http_request_duration_seconds_bucket{route=\"app\",le=\"0.0025\"} 5",
            "dragoman_http_request_duration_seconds_bucket{route=\"app\",le=\"0.005\"} 7",
            "dragoman_http_request_duration_seconds_bucket{route=\"app\",le=\"+Inf\"} 7",
            "dragoman_http_request_duration_seconds_sum{route=\"app\"} 0.0015",
            "dragoman_http_request_duration_seconds_count{route=\"app\"} 7",
            "dragoman_http_sent_bytes_total 4096",
            "dragoman_worker_restarts_total{reason=\"harakiri\"} 1",
            "dragoman_worker_restarts_total{reason=\"crash\"} 0",
            "dragoman_worker_resident_memory_bytes{worker=\"1\",pid=\"42\"} 12582912",
            "dragoman_listen_queue_max{listener=\"127.0.0.1:8000\"} 1024",
            "dragoman_http_requests_in_flight 1",
            "dragoman_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        assert!(
            !text.contains("route=\"health\""),
            "no series for routes never taken"
        );
    }

    #[test]
    fn openmetrics() {
        let totals = Totals::default();
        let text = render(&scrape(&totals), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"));
        for line in [
            "# TYPE dragoman_http_requests counter",
            "dragoman_http_requests_total{route=\"app\",method=\"GET\",status=\"2xx\"} 7",
            "# UNIT dragoman_http_request_duration_seconds seconds",
            "# TYPE dragoman_build info",
            "# UNIT dragoman_http_sent_bytes bytes",
            "dragoman_http_sent_bytes_total 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0")),
            Format::Prometheus
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }
}
