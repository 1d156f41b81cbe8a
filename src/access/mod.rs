//! The access log: a line per request, static and application alike, on by default (as uWSGI
//! and uvicorn do).
//!
//! Its cost is the point of its shape. A hello-world request costs a worker about 6 µs; a
//! `write` per request would cost more than a tenth of that, and a line formatted through
//! `format!` several hundred instructions. So:
//! - when a request starts, the service keeps what its line needs ([`Facts`]: the method,
//!   the target, the connection, the headers the format reads), since the request itself goes
//!   to the application; when its response is done (the body handed over whole, or the
//!   connection gone), the line is appended to the worker's buffer ([`AccessLog::finish`]),
//!   its pieces written straight in (integers by `itoa`, the stamp made once a second);
//! - the buffer goes out with one `write` when it passes [`FLUSH_AT`], and at most
//!   [`FLUSH_EVERY`] after its first line by a task on the worker's event loop, and when the
//!   worker stops: lines appear promptly without a system call per request.
//!
//! Measured (callgrind, hello world): 844 instructions a request, 5.1% of the worker's 16,524
//! with the log off; the figures and where they go are in docs/logging.md.
//!
//! Which requests are logged follows uWSGI: all of them, or with `disable-logging` only those
//! `log-4xx`, `log-5xx`, `log-slow`, `log-zero`, `log-big` or `log-sendfile` ask for.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Method, Request, Version};

use crate::clock::monotonic_us;
use crate::conn::ConnInfo;
use crate::log::format::AccessFormat;
use crate::log::settings::Logging;
use crate::log::{output, stamp};

mod facts;
mod render;

use facts::{Facts, Finished, Kept};
use render::Context;

/// The buffer goes out once it holds this much: below the largest piece the output writes
/// at once ([`output::MAX_PIECE`]) by more than a line, so that a batch is one `write` (at
/// 64 KiB, the line that crossed it went out in a second one: twice the system calls).
pub(crate) const FLUSH_AT: usize = output::MAX_PIECE - 8 * 1024;
/// ... and at most this long after its first line.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A worker's access log: its format, which requests it logs, and the buffer of lines not
/// yet written.
pub(crate) struct AccessLog {
    format: AccessFormat,
    /// Request headers kept for the format, in the order it reads them.
    headers: Vec<HeaderName>,
    rules: Rules,
    static_files: bool,
    x_forwarded_for: bool,
    /// Lines need the response head's size (`%(hsize)`, `%(size)`).
    head_size: bool,
    /// Lines show the worker's memory: it is sampled at each flush.
    memory: Option<bool>,
    state: RefCell<State>,
    /// Where the lines go: stderr, the request log's file, or the log-master's pipe.
    fd: RawFd,
    /// Wakes the flush task when the buffer gets its first line.
    wake: tokio::sync::Notify,
}

/// uWSGI's rule: everything when logging is on; otherwise only what a condition asks for.
#[derive(Debug, Clone, Copy)]
struct Rules {
    all: bool,
    e4xx: bool,
    e5xx: bool,
    slow_us: Option<u64>,
    zero: bool,
    big: Option<u64>,
    sendfile: bool,
}

impl Rules {
    fn from(l: &Logging) -> Rules {
        Rules {
            all: l.requests,
            e4xx: l.log_4xx,
            e5xx: l.log_5xx,
            slow_us: l.slow.map(|d| d.as_micros() as u64),
            zero: l.zero,
            big: l.big,
            sendfile: l.sendfile,
        }
    }

    /// Whether any request can be logged at all.
    fn any(&self) -> bool {
        self.all
            || self.e4xx
            || self.e5xx
            || self.slow_us.is_some()
            || self.zero
            || self.big.is_some()
            || self.sendfile
    }

    fn wants(&self, status: u16, micros: u64, body: u64, is_static: bool) -> bool {
        self.all
            || (self.e4xx && (400..500).contains(&status))
            || (self.e5xx && (500..600).contains(&status))
            || self.slow_us.is_some_and(|slow| micros >= slow)
            || (self.zero && body == 0)
            || self.big.is_some_and(|big| body >= big)
            || (self.sendfile && is_static)
    }
}

/// The buffer and what lines are made with.
struct State {
    buf: Vec<u8>,
    ctx: Context,
    /// The wall clock less the monotonic one, in µs, as of the batch's first line.
    wall_offset_us: i64,
}

/// The status logged for a request whose response never started: the client went away, or
/// the worker stopped, while the application ran (nginx's "client closed request").
pub(crate) const UNANSWERED: u16 = 499;

impl AccessLog {
    /// The access log of worker `worker`, or `None` when no request can be logged (so the
    /// service keeps nothing per request).
    pub(crate) fn new(worker: usize, logging: &Logging) -> Option<Rc<AccessLog>> {
        let rules = Rules::from(logging);
        if !rules.any() {
            return None;
        }
        let format = logging.format.clone();
        let strftime = logging
            .strftime
            .then(|| logging.date.clone())
            .flatten()
            .and_then(|f| std::ffi::CString::new(f).ok());
        let memory = (logging.memory_report > 0 || format.needs_memory())
            .then_some(logging.memory_report >= 2);
        let mut ctx = Context::new(std::process::id(), worker, strftime, logging.memory_report);
        if let Some(private) = memory {
            ctx.memory.refresh(private);
        }
        Some(Rc::new(AccessLog {
            headers: format.headers(),
            head_size: format.needs_head_size(),
            format,
            rules,
            static_files: logging.static_files || logging.sendfile,
            x_forwarded_for: logging.x_forwarded_for,
            memory,
            state: RefCell::new(State {
                buf: Vec::with_capacity(FLUSH_AT + 4096),
                ctx,
                wall_offset_us: 0,
            }),
            fd: output::requests_fd(),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// A request starts: keeps what its line will need.
    pub(crate) fn begin<B>(
        self: &Rc<Self>,
        req: &Request<B>,
        conn: &Arc<ConnInfo>,
    ) -> Box<Pending> {
        // The client a trusted proxy named (forwarded-allow-ips), as the application sees it.
        let client = crate::forwarded::named_client(req.extensions());
        let kept =
            (!self.headers.is_empty() || self.x_forwarded_for || client.is_some()).then(|| {
                Box::new(Kept {
                    client: client.map(|c| c.ip().to_string()),
                    headers: self
                        .headers
                        .iter()
                        .map(|name| req.headers().get(name).cloned())
                        .collect(),
                    forwarded: match self.x_forwarded_for {
                        true => req.headers().get("x-forwarded-for").cloned(),
                        false => None,
                    },
                    authority: req.uri().authority().cloned(),
                })
            });
        Box::new(Pending {
            log: self.clone(),
            facts: Facts {
                start_us: monotonic_us(),
                method: req.method().clone(),
                target: req.uri().path_and_query().cloned(),
                version: req.version(),
                conn: conn.clone(),
                kept,
                is_static: false,
                unparsed: false,
            },
            done: false,
        })
    }

    /// A request refused with `status` before it could be parsed (hyper answered a malformed
    /// head): its line has `-` for the method and the target.
    pub(crate) fn refused(&self, conn: &Arc<ConnInfo>, status: u16) {
        let facts = Facts {
            start_us: monotonic_us(),
            method: Method::GET,
            target: None,
            version: Version::HTTP_11,
            conn: conn.clone(),
            kept: None,
            is_static: false,
            unparsed: true,
        };
        self.finish(
            &facts,
            End {
                status,
                body_bytes: 0,
                head_bytes: 0,
                header_count: 0,
                cut: false,
            },
        );
    }

    /// Writes the buffered lines out.
    pub(crate) fn flush(&self) {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        if !state.buf.is_empty() {
            output::write_lines(self.fd, &state.buf);
            state.buf.clear();
        }
        if let Some(private) = self.memory {
            state.ctx.memory.refresh(private);
        }
    }

    /// The worker's flush task: writes the buffer out [`FLUSH_EVERY`] after its first line.
    pub(crate) async fn flusher(self: Rc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(FLUSH_EVERY).await;
            self.flush();
        }
    }

    fn finish(&self, facts: &Facts, end: End) {
        let now = monotonic_us();
        let micros = now.saturating_sub(facts.start_us);
        if !self
            .rules
            .wants(end.status, micros, end.body_bytes, facts.is_static)
        {
            return;
        }
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        let state = &mut *state;
        let was_empty = state.buf.is_empty();
        // The wall clock is read once a batch: a line's time is the monotonic clock's (read
        // above anyway) plus the difference between the two, taken at the batch's first line.
        if was_empty {
            state.wall_offset_us = stamp::wall_us() as i64 - monotonic_us() as i64;
        }
        let end_wall_us = (now as i64).saturating_add(state.wall_offset_us).max(0) as u64;
        let done = Finished {
            status: end.status,
            body_bytes: end.body_bytes,
            head_bytes: end.head_bytes,
            header_count: end.header_count,
            cut: end.cut,
            micros,
            end_wall_us,
            end_wall_secs: end_wall_us / 1_000_000,
        };
        self.format
            .render(&mut state.buf, facts, &done, &mut state.ctx);
        if state.buf.len() >= FLUSH_AT {
            output::write_lines(self.fd, &state.buf);
            state.buf.clear();
        } else if was_empty {
            self.wake.notify_one();
        }
    }
}

/// How a response ended, as the protocol saw it.
pub(crate) struct End {
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    pub(crate) head_bytes: u64,
    pub(crate) header_count: usize,
    pub(crate) cut: bool,
}

/// A request on its way: its line is written when [`Pending::finish`] is called with how its
/// response ended, or, if it is dropped first (the response never started), with
/// [`UNANSWERED`].
pub(crate) struct Pending {
    log: Rc<AccessLog>,
    facts: Facts,
    done: bool,
}

impl Pending {
    /// The request was answered with a static file: `None` when those are not logged.
    pub(crate) fn for_static(mut self: Box<Self>) -> Option<Box<Pending>> {
        if !self.log.static_files {
            self.done = true;
            return None;
        }
        self.facts.is_static = true;
        Some(self)
    }

    /// Whether lines need the response head's size.
    pub(crate) fn wants_head_size(&self) -> bool {
        self.log.head_size
    }

    /// The response is done: writes the request's line (when the rules want it).
    pub(crate) fn finish(&mut self, end: End) {
        if !self.done {
            self.done = true;
            self.log.finish(&self.facts, end);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish(End {
            status: UNANSWERED,
            body_bytes: 0,
            head_bytes: 0,
            header_count: 0,
            cut: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(target: &str, headers: &[(&str, &str)], format: &AccessFormat) -> Facts {
        let mut req = Request::get(target);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).unwrap();
        let conn = ConnInfo::new(
            Some("127.0.0.1:8000".parse().unwrap()),
            Some("192.0.2.4:50000".parse().unwrap()),
        );
        Facts {
            start_us: 0,
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            version: req.version(),
            conn: Arc::new(conn),
            kept: Some(Box::new(Kept {
                headers: format
                    .headers()
                    .iter()
                    .map(|h| req.headers().get(h).cloned())
                    .collect(),
                forwarded: None,
                client: None,
                authority: None,
            })),
            is_static: false,
            unparsed: false,
        }
    }

    fn finished(status: u16, body_bytes: u64, micros: u64) -> Finished {
        // 2024-02-29 12:00:00.250 UTC.
        let end_wall_us = 1_709_208_000_250_000;
        Finished {
            status,
            body_bytes,
            head_bytes: 120,
            header_count: 3,
            cut: false,
            micros,
            end_wall_us,
            end_wall_secs: end_wall_us / 1_000_000,
        }
    }

    fn line(format: &AccessFormat, facts: &Facts, done: &Finished) -> String {
        let mut ctx = Context::new(42, 3, None, 0);
        let mut out = Vec::new();
        format.render(&mut out, facts, done, &mut ctx);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_default_line() {
        let f = AccessFormat::Default;
        let text = line(&f, &facts("/a?b=1", &[], &f), &finished(200, 13, 1_234));
        assert_eq!(
            text,
            "[2024-02-29 12:00:00 +0000] [42] [worker 3] 192.0.2.4 \"GET /a?b=1 HTTP/1.1\" 200 \
             13 bytes in 1.234 ms\n"
        );
        let text = line(&f, &facts("/", &[], &f), &finished(500, 0, 45));
        assert!(
            text.ends_with("\"GET / HTTP/1.1\" 500 0 bytes in 0.045 ms\n"),
            "{text}"
        );
    }

    #[test]
    fn the_default_line_with_memory_and_a_passed_address() {
        let f = AccessFormat::Default;
        let mut facts = facts("/", &[], &f);
        let mut conn = ConnInfo::new(None, None);
        conn.extra_environ = vec![("REMOTE_ADDR".into(), "198.51.100.1\nforged".into())];
        facts.conn = Arc::new(conn);
        let mut ctx = Context::new(42, 3, None, 1);
        ctx.memory.rss = 3 * 1024 * 1024;
        let mut out = b"earlier line\n".to_vec();
        f.render(&mut out, &facts, &finished(200, 1, 1), &mut ctx);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("earlier line\n[2024-02-29 12:00:00 +0000] [42] [worker 3] "),
            "{text}"
        );
        assert!(
            text.ends_with(
                "{rss usage: 3145728 bytes/3MB} 198.51.100.1\\x0aforged \"GET / HTTP/1.1\" \
                 200 1 bytes in 0.001 ms\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_json_line() {
        let f = AccessFormat::Json;
        let headers = [("host", "a.test"), ("user-agent", "ua \"1\"")];
        let text = line(&f, &facts("/x", &headers, &f), &finished(404, 9, 2_500));
        assert_eq!(
            text,
            "{\"time\": \"2024-02-29T12:00:00.250Z\", \"pid\": 42, \"worker\": 3, \"addr\": \
             \"192.0.2.4\", \"method\": \"GET\", \"uri\": \"/x\", \"proto\": \"HTTP/1.1\", \
             \"status\": 404, \"size\": 9, \"micros\": 2500, \"msecs\": 2, \"host\": \"a.test\", \
             \"referer\": null, \"uagent\": \"ua \\\"1\\\"\"}\n"
        );
    }

    #[test]
    fn uwsgi_variables() {
        let (f, unknown) = AccessFormat::parse(
            "%(addr) %(method) %(uri) %(proto) %(status) %(rsize) %(hsize) %(size) %(micros) \
             %(msecs) %(secs) %(time) %(tmsecs) %(epoch) %(pid) %(wid) %(headers) %(cl) \
             %(host) %(referer) %(user) %(var.PATH_INFO) %(var.QUERY_STRING) \
             %(var.HTTP_X_ID) %(var.REMOTE_PORT) %(var.SERVER_PORT) %(var.DOCUMENT_ROOT) %(core)",
        );
        assert!(unknown.is_empty(), "{unknown:?}");
        let headers = [("content-length", "7"), ("x-id", "abc"), ("host", "h.test")];
        let text = line(
            &f,
            &facts("/p/q?r=s", &headers, &f),
            &finished(201, 10, 1_500_000),
        );
        assert_eq!(
            text,
            "192.0.2.4 GET /p/q?r=s HTTP/1.1 201 10 120 130 1500000 1500 1.500000 1709207998 \
             1709207998750 1709208000 42 3 3 7 h.test - - /p/q r=s abc 50000 8000 - 0\n"
        );
    }

    #[test]
    fn uwsgis_rules_for_which_requests_are_logged() {
        let off = Logging {
            requests: false,
            ..Logging::default()
        };
        assert!(!Rules::from(&off).any());
        let rules = Rules::from(&Logging {
            log_4xx: true,
            slow: Some(Duration::from_millis(200)),
            big: Some(1000),
            ..off.clone()
        });
        assert!(rules.any());
        assert!(rules.wants(404, 0, 10, false));
        assert!(!rules.wants(500, 0, 10, false));
        assert!(rules.wants(200, 200_000, 10, false));
        assert!(!rules.wants(200, 199_999, 999, false));
        assert!(rules.wants(200, 0, 1000, false));
        assert!(Rules::from(&Logging::default()).wants(200, 0, 0, false));
        let sendfile = Rules::from(&Logging {
            sendfile: true,
            zero: true,
            ..off
        });
        assert!(sendfile.wants(200, 0, 5, true) && sendfile.wants(200, 0, 0, false));
        assert!(!sendfile.wants(200, 0, 5, false));
    }
}
