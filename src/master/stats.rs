//! The stats server: on each connection, one JSON document in the layout of uWSGI's stats
//! server (so uwsgitop, netdata, telegraf and friends read it), then close.
//!
//! It runs inside the master's loop, so it must never make the master wait: a client that does
//! not read, reads slowly or sends without end would otherwise hold up reaping, respawning and
//! harakiri. Everything is non-blocking and bounded: at most `MAX_CLIENTS` clients at once
//! (more wait in the listen queue), each with its document and a deadline
//! (`CLIENT_DEADLINE`), after which it is cut. The master's `poll` watches the listener and
//! the clients' sockets with the rest.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::ListenAddr;
use crate::net::{Bound, Listener};

/// Clients served at once; more wait in the listen queue until one is done.
const MAX_CLIENTS: usize = 16;
/// How long a client has to take its document (and close); then it is cut.
const CLIENT_DEADLINE: Duration = Duration::from_secs(3);
/// What a client may send (an HTTP request, for `stats-http`) before it is cut: it is read and
/// dropped, so that closing does not reset the connection under the unread document.
const MAX_RECEIVED: usize = 64 * 1024;

/// One worker as the stats show it.
pub(crate) struct WorkerView {
    pub(crate) id: usize,
    pub(crate) pid: i32,
    pub(crate) accepting: bool,
    pub(crate) requests: u64,
    pub(crate) exceptions: u64,
    pub(crate) busy: bool,
    pub(crate) rss: u64,
    pub(crate) vsz: u64,
    pub(crate) running_time_us: u64,
    pub(crate) avg_rt_us: u64,
    pub(crate) tx: u64,
    pub(crate) last_spawn: u64,
    pub(crate) respawn_count: u64,
    pub(crate) harakiri_count: u64,
    pub(crate) cores: Vec<CoreView>,
}

/// One application thread of a worker.
pub(crate) struct CoreView {
    pub(crate) id: usize,
    pub(crate) requests: u64,
    pub(crate) in_request: bool,
    pub(crate) request: String,
}

/// The whole document.
pub(crate) struct Overview<'a> {
    pub(crate) pid: u32,
    pub(crate) listen_queue: u64,
    pub(crate) sockets: Vec<(String, &'static str, u64, i32)>,
    pub(crate) workers: &'a [WorkerView],
}

/// The stats listener, whether it answers in HTTP (`stats-http`), and the clients being
/// served.
pub(crate) struct StatsServer {
    pub(crate) bound: Bound,
    http: bool,
    clients: Vec<Client>,
}

/// One connection being served: its document and how far it got.
struct Client {
    socket: socket2::Socket,
    /// The whole response, shared by the clients accepted at one wake-up.
    response: Rc<[u8]>,
    sent: usize,
    /// Everything is sent and the write side shut: waiting for the client to close.
    done_sending: bool,
    received: usize,
    deadline: Instant,
}

/// What became of a client after a step.
#[derive(PartialEq, Eq)]
enum Progress {
    Pending,
    Finished,
}

impl Client {
    /// Sends what the socket takes, then reads (and drops) what the client sends until it
    /// closes; never blocks.
    fn step(&mut self) -> io::Result<Progress> {
        while !self.done_sending {
            match self
                .socket
                .send_with_flags(&self.response[self.sent..], libc::MSG_NOSIGNAL)
            {
                Ok(n) => {
                    self.sent += n;
                    if self.sent == self.response.len() {
                        self.socket.shutdown(std::net::Shutdown::Write)?;
                        self.done_sending = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.read(&mut buf) {
                Ok(0) => return Ok(Progress::Finished),
                Ok(n) => {
                    self.received += n;
                    if self.received > MAX_RECEIVED {
                        return Err(io::Error::other("it sends without end"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl StatsServer {
    pub(crate) fn new(bound: Bound, http: bool) -> StatsServer {
        StatsServer {
            bound,
            http,
            clients: Vec::new(),
        }
    }

    /// The descriptors the master's `poll` watches for the stats: the listener while there is
    /// room for a client, and each client's socket (writable while it is sent its document,
    /// readable after).
    pub(crate) fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        if self.clients.len() < MAX_CLIENTS {
            fds.push(libc::pollfd {
                fd: self.bound.listener.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for client in &self.clients {
            fds.push(libc::pollfd {
                fd: client.socket.as_raw_fd(),
                events: if client.done_sending {
                    libc::POLLIN
                } else {
                    libc::POLLOUT
                },
                revents: 0,
            });
        }
    }

    /// When the next client is due to be cut, if any is being served.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Takes new clients (their document rendered once, by `render`, if there are any), moves
    /// every client along as far as its socket allows, and cuts those past their deadline.
    pub(crate) fn serve(&mut self, now: Instant, render: impl FnOnce() -> String) {
        let mut accepted = Vec::new();
        while self.clients.len() + accepted.len() < MAX_CLIENTS {
            let fd: OwnedFd = match &self.bound.listener {
                Listener::Tcp(l) => match l.accept() {
                    Ok((s, _)) => s.into(),
                    Err(_) => break, // nothing more pending (or a transient error)
                },
                Listener::Unix(l) => match l.accept() {
                    Ok((s, _)) => s.into(),
                    Err(_) => break,
                },
            };
            let socket = socket2::Socket::from(fd);
            if socket.set_nonblocking(true).is_ok() {
                accepted.push(socket);
            }
        }
        if !accepted.is_empty() {
            let response: Rc<[u8]> = self.response(&render()).into();
            self.clients
                .extend(accepted.into_iter().map(|socket| Client {
                    socket,
                    response: response.clone(),
                    sent: 0,
                    done_sending: false,
                    received: 0,
                    deadline: now + CLIENT_DEADLINE,
                }));
        }
        self.clients.retain_mut(|client| {
            matches!(client.step(), Ok(Progress::Pending)) && now < client.deadline
        });
    }

    /// The bytes sent for a document: as is, or as an HTTP response (`stats-http`).
    fn response(&self, body: &str) -> Vec<u8> {
        if !self.http {
            return body.as_bytes().to_vec();
        }
        let mut out = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// A warning when the stats server is reachable from other machines: the document shows the
/// request line each worker is serving (paths and query strings, which may carry tokens).
pub(crate) fn exposure_warning(addr: &ListenAddr) -> Option<String> {
    let ListenAddr::Tcp(socket) = addr else {
        return None; // a unix socket: its file permissions say who may connect
    };
    let ip = socket.ip();
    let loopback = match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    (!loopback).then(|| {
        format!(
            "stats on {socket} can be reached from other machines, and it shows the request \
             line each worker is serving (paths, query strings) to anyone who connects; bind it \
             to 127.0.0.1:{} or a unix socket, or keep the port behind a firewall",
            socket.port()
        )
    })
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
pub(crate) fn render(o: &Overview<'_>) -> String {
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
pub(crate) fn accept_queue(bound: &Bound) -> (u64, i32) {
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

    #[test]
    fn only_a_stats_server_other_machines_can_reach_is_warned_about() {
        let warned = |addr: &str| exposure_warning(&ListenAddr::Tcp(addr.parse().unwrap()));
        for public in [
            "0.0.0.0:9191",
            "[::]:9191",
            "10.1.2.3:9191",
            "[2001:db8::1]:9191",
        ] {
            let text = warned(public).unwrap_or_default();
            assert!(
                text.contains("can be reached from other machines"),
                "{public}"
            );
            assert!(text.contains("127.0.0.1:9191"), "{text}");
        }
        for private in [
            "127.0.0.1:9191",
            "127.0.0.2:1",
            "[::1]:9191",
            "[::ffff:127.0.0.1]:9",
        ] {
            assert_eq!(warned(private), None, "{private}");
        }
        let unix = ListenAddr::Unix(std::path::PathBuf::from("/run/stats.sock"));
        assert_eq!(exposure_warning(&unix), None);
    }
}
