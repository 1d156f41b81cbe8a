//! The metrics listener, in the master's loop: it reads a scraper's request (for its path and
//! its Accept header), answers it with the exposition in the format asked for, and closes.
//!
//! Like the stats server, it must never make the master wait: everything is non-blocking and
//! bounded. At most [`MAX_CLIENTS`] scrapers at once (more wait in the listen queue), each
//! with a request head of at most [`MAX_HEAD`] bytes and a deadline ([`CLIENT_DEADLINE`]) for
//! the whole exchange, after which it is cut. The master's `poll` watches the listener and the
//! clients' sockets with the rest; a scrape is rendered once per format per wake-up, however
//! many scrapers it serves.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::render::Format;
use crate::net::{Bound, Listener};

/// Scrapers served at once; more wait in the listen queue until one is done.
const MAX_CLIENTS: usize = 16;
/// How long a scraper has to send its request and take the answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// The longest request head read; longer is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// What a client may send after its request before it is cut (read and dropped, so that
/// closing does not reset the connection under an answer it has not read).
const MAX_AFTER: usize = 64 * 1024;

/// The listener and the scrapers being served.
pub(crate) struct MetricsServer {
    pub(crate) bound: Bound,
    clients: Vec<Client>,
}

/// Where a scraper is.
enum Stage {
    /// Reading its request head.
    Reading(Vec<u8>),
    /// Sending it the answer: the bytes, and how many went out.
    Sending(Rc<[u8]>, usize),
    /// All sent and the write side shut: reading (and dropping) until it closes.
    Closing(usize),
}

struct Client {
    socket: socket2::Socket,
    stage: Stage,
    deadline: Instant,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics {
        format: Format,
        head_only: bool,
    },
    /// An answer that is not the metrics: status line and text.
    Other(&'static str, &'static str),
}

impl MetricsServer {
    pub(crate) fn new(bound: Bound) -> MetricsServer {
        MetricsServer {
            bound,
            clients: Vec::new(),
        }
    }

    /// The descriptors the master's `poll` watches: the listener while there is room, and
    /// each scraper's socket (readable while its request comes and after its answer,
    /// writable while the answer goes out).
    pub(crate) fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        if self.clients.len() < MAX_CLIENTS {
            fds.push(pollfd(self.bound.listener.fd(), libc::POLLIN));
        }
        for c in &self.clients {
            let events = match c.stage {
                Stage::Sending(..) => libc::POLLOUT,
                _ => libc::POLLIN,
            };
            fds.push(pollfd(c.socket.as_raw_fd(), events));
        }
    }

    /// When the next scraper is due to be cut, if any is being served.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Takes new scrapers, moves every scraper along as far as its socket allows (rendering
    /// the exposition with `render` when one needs it, once per format), and cuts those past
    /// their deadline.
    pub(crate) fn serve(&mut self, now: Instant, mut render: impl FnMut(Format) -> String) {
        while self.clients.len() < MAX_CLIENTS {
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
                self.clients.push(Client {
                    socket,
                    stage: Stage::Reading(Vec::new()),
                    deadline: now + CLIENT_DEADLINE,
                });
            }
        }
        let mut rendered: [Option<Rc<[u8]>>; 2] = [None, None];
        let mut answer = |asked: Asked| -> Rc<[u8]> {
            match asked {
                Asked::Metrics { format, head_only } => {
                    let index = usize::from(format == Format::OpenMetrics);
                    let body = rendered[index]
                        .get_or_insert_with(|| render(format).into_bytes().into())
                        .clone();
                    response("200 OK", format.content_type(), &body, head_only).into()
                }
                Asked::Other(status, text) => {
                    response(status, "text/plain; charset=utf-8", text.as_bytes(), false).into()
                }
            }
        };
        self.clients.retain_mut(|c| {
            let going = matches!(c.step(&mut answer), Ok(true));
            going && now < c.deadline
        });
    }
}

impl Client {
    /// Moves the exchange along without blocking; `Ok(false)` once it is over.
    fn step(&mut self, answer: &mut impl FnMut(Asked) -> Rc<[u8]>) -> io::Result<bool> {
        loop {
            match &mut self.stage {
                Stage::Reading(head) => {
                    let mut buf = [0u8; 2048];
                    match self.socket.read(&mut buf) {
                        Ok(0) => return Ok(false),
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                    let asked = match head.windows(4).position(|w| w == b"\r\n\r\n") {
                        Some(end) => parse(&head[..end]),
                        None if head.len() > MAX_HEAD => Asked::Other(
                            "431 Request Header Fields Too Large",
                            "request head too large\n",
                        ),
                        None => continue,
                    };
                    self.stage = Stage::Sending(answer(asked), 0);
                }
                Stage::Sending(bytes, sent) => {
                    match self
                        .socket
                        .send_with_flags(&bytes[*sent..], libc::MSG_NOSIGNAL)
                    {
                        Ok(n) => {
                            *sent += n;
                            if *sent == bytes.len() {
                                self.socket.shutdown(std::net::Shutdown::Write)?;
                                self.stage = Stage::Closing(0);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Stage::Closing(received) => {
                    let mut buf = [0u8; 4096];
                    match self.socket.read(&mut buf) {
                        Ok(0) => return Ok(false),
                        Ok(n) => {
                            *received += n;
                            if *received > MAX_AFTER {
                                return Ok(false);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

/// What a request head asks for: `GET /metrics` (or HEAD), in the format its Accept header
/// names.
fn parse(head: &[u8]) -> Asked {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (method, target) = (request.next().unwrap_or(""), request.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Asked::Other("404 Not Found", "the metrics are at /metrics\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Asked::Other("405 Method Not Allowed", "GET or HEAD\n"),
    };
    let accept = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    Asked::Metrics {
        format: Format::from_accept(accept),
        head_only,
    }
}

/// An HTTP/1.1 response that closes its connection.
fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let om = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\n";
        assert_eq!(
            parse(om.as_bytes()),
            Asked::Metrics {
                format: Format::OpenMetrics,
                head_only: false
            }
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0"),
            Asked::Metrics {
                format: Format::Prometheus,
                head_only: true
            }
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1"),
            Asked::Other("404 Not Found", _)
        ));
        assert!(matches!(
            parse(b"POST /metrics HTTP/1.1"),
            Asked::Other("405 Method Not Allowed", _)
        ));
        assert!(matches!(
            parse(b"\xff\xfe"),
            Asked::Other("404 Not Found", _)
        ));
    }
}
