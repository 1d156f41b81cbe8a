//! The stats server: on each connection, one JSON document in the layout of uWSGI's stats
//! server (so uwsgitop, netdata, telegraf and friends read it), then close. Served from the
//! master's loop: accept is non-blocking, the write has a short timeout.

use std::fmt::Write as _;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::net::{Bound, Listener};

/// One worker as the stats show it.
pub struct WorkerView {
    pub id: usize,
    pub pid: i32,
    pub accepting: bool,
    pub requests: u64,
    pub exceptions: u64,
    pub busy: bool,
    pub rss: u64,
    pub vsz: u64,
    pub running_time_us: u64,
    pub avg_rt_us: u64,
    pub tx: u64,
    pub last_spawn: u64,
    pub respawn_count: u64,
    pub harakiri_count: u64,
    pub cores: Vec<CoreView>,
}

/// One application thread of a worker.
pub struct CoreView {
    pub id: usize,
    pub requests: u64,
    pub in_request: bool,
    pub request: String,
}

/// The whole document.
pub struct Overview<'a> {
    pub pid: u32,
    pub listen_queue: u64,
    pub sockets: Vec<(String, &'static str, u64, i32)>,
    pub workers: &'a [WorkerView],
}

/// The stats listener and whether it answers in HTTP (`stats-http`).
pub struct StatsServer {
    pub bound: Bound,
    pub http: bool,
}

impl StatsServer {
    pub fn fd(&self) -> i32 {
        self.bound.listener.fd()
    }

    /// Answers every pending connection with the document `render` produces.
    pub fn serve(&self, render: impl Fn() -> String) {
        loop {
            let accepted: std::io::Result<OwnedFd> = match &self.bound.listener {
                Listener::Tcp(l) => l.accept().map(|(s, _)| s.into()),
                Listener::Unix(l) => l.accept().map(|(s, _)| s.into()),
            };
            let Ok(fd) = accepted else {
                return; // nothing more pending
            };
            // Blocking, with a short timeout: a slow client cannot hold the master long.
            let mut stream = socket2::Socket::from(fd);
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let body = render();
            let _ = if self.http {
                write!(
                    stream,
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                stream.write_all(body.as_bytes())
            };
        }
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders the document.
pub fn render(o: &Overview<'_>) -> String {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut j = String::with_capacity(1024 + o.workers.len() * 512);
    let _ = write!(
        j,
        "{{\"version\":{},\"listen_queue\":{},\"listen_queue_errors\":0,\"signal_queue\":0,\
         \"load\":0,\"pid\":{},\"uid\":{uid},\"gid\":{gid},\"cwd\":{},\"locks\":[],\"sockets\":[",
        quote(concat!("dragoman-", env!("CARGO_PKG_VERSION"))),
        o.listen_queue,
        o.pid,
        quote(&cwd)
    );
    for (i, (name, proto, queue, max_queue)) in o.sockets.iter().enumerate() {
        let _ = write!(
            j,
            "{}{{\"name\":{},\"proto\":{},\"queue\":{queue},\"max_queue\":{max_queue},\"shared\":0,\"can_offload\":0}}",
            if i > 0 { "," } else { "" },
            quote(name),
            quote(proto)
        );
    }
    j.push_str("],\"workers\":[");
    for (i, w) in o.workers.iter().enumerate() {
        let _ = write!(
            j,
            "{}{{\"id\":{},\"pid\":{},\"accepting\":{},\"requests\":{},\"delta_requests\":0,\
             \"exceptions\":{},\"harakiri_count\":{},\"signals\":0,\"signal_queue\":0,\
             \"status\":{},\"rss\":{},\"vsz\":{},\"running_time\":{},\"last_spawn\":{},\
             \"respawn_count\":{},\"tx\":{},\"avg_rt\":{},\"apps\":[],\"cores\":[",
            if i > 0 { "," } else { "" },
            w.id,
            w.pid,
            u8::from(w.accepting),
            w.requests,
            w.exceptions,
            w.harakiri_count,
            quote(if w.busy { "busy" } else { "idle" }),
            w.rss,
            w.vsz,
            w.running_time_us,
            w.last_spawn,
            w.respawn_count,
            w.tx,
            w.avg_rt_us
        );
        for (k, c) in w.cores.iter().enumerate() {
            let _ = write!(
                j,
                "{}{{\"id\":{},\"requests\":{},\"static_requests\":0,\"routed_requests\":0,\
                 \"offloaded_requests\":0,\"write_errors\":0,\"read_errors\":0,\"in_request\":{},\
                 \"vars\":[],\"req_info\":{{\"request\":{}}}}}",
                if k > 0 { "," } else { "" },
                c.id,
                c.requests,
                u8::from(c.in_request),
                quote(&c.request)
            );
        }
        j.push_str("]}");
    }
    j.push_str("]}");
    j
}

/// The current length of a listening TCP socket's accept queue (Linux: `tcpi_unacked` of a
/// socket in LISTEN state), and its maximum.
pub fn accept_queue(bound: &Bound) -> (u64, i32) {
    let Listener::Tcp(l) = &bound.listener else {
        return (0, 0);
    };
    // SAFETY: a zeroed tcp_info is valid; getsockopt fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: l is a live socket; info/len describe a writable buffer.
    let rc = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return (0, 0);
    }
    (u64::from(info.tcpi_unacked), info.tcpi_sacked as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn document_shape() {
        let workers = [WorkerView {
            id: 1,
            pid: 42,
            accepting: true,
            requests: 7,
            exceptions: 1,
            busy: true,
            rss: 1000,
            vsz: 2000,
            running_time_us: 300,
            avg_rt_us: 40,
            tx: 99,
            last_spawn: 1_800_000_000,
            respawn_count: 2,
            harakiri_count: 0,
            cores: vec![CoreView {
                id: 0,
                requests: 7,
                in_request: true,
                request: "GET /\"x\"".into(),
            }],
        }];
        let doc = render(&Overview {
            pid: 1,
            listen_queue: 3,
            sockets: vec![("127.0.0.1:8000".into(), "http", 3, 1024)],
            workers: &workers,
        });
        assert!(doc.starts_with("{\"version\":\"dragoman-"));
        assert!(doc.contains("\"workers\":[{\"id\":1,\"pid\":42,\"accepting\":1,\"requests\":7,"));
        assert!(doc.contains("\"status\":\"busy\""));
        assert!(doc.contains("\"request\":\"GET /\\\"x\\\"\""));
        assert!(doc.ends_with("\"}}]}]}"), "{doc}");
    }
}
