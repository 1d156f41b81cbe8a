//! What a request's line is made of: what was kept of the request when it started
//! ([`Facts`]) and what its end said ([`Finished`]).

use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::{Authority, PathAndQuery};
use http::{Method, Version};

use crate::conn::ConnInfo;

/// What a request's line needs from the request, kept when it starts.
pub(crate) struct Facts {
    pub(super) start_us: u64,
    pub(super) method: Method,
    /// The request target's path and query (the rest of a `Uri` is only kept, in `kept`,
    /// when the format reads the host: a smaller value to move and drop on every request).
    pub(super) target: Option<PathAndQuery>,
    pub(super) version: Version,
    pub(super) conn: Arc<ConnInfo>,
    /// The headers the format reads, and X-Forwarded-For: `None` for dragoman's line without
    /// `log-x-forwarded-for`, which reads none (so the usual request moves and drops less).
    pub(super) kept: Option<Box<Kept>>,
    pub(super) is_static: bool,
    /// A request refused before it was parsed (a malformed head): no method or target.
    pub(super) unparsed: bool,
}

/// An address for a line: text dragoman made or a header checked, or text a uwsgi peer
/// passed (escaped when written).
pub(crate) enum Addr<'a> {
    Checked(&'a [u8]),
    Passed(&'a [u8]),
    None,
}

impl<'a> Addr<'a> {
    pub(crate) fn bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Addr::Checked(b) | Addr::Passed(b) => Some(b),
            Addr::None => None,
        }
    }
}

/// The request headers a line reads.
pub(super) struct Kept {
    /// The format's, in its order (`None`: not sent).
    pub(super) headers: Vec<Option<HeaderValue>>,
    /// X-Forwarded-For, with `log-x-forwarded-for`.
    pub(super) forwarded: Option<HeaderValue>,
    /// The client a trusted proxy named (`forwarded-allow-ips`).
    pub(super) client: Option<String>,
    /// The target's authority (absolute-form), for the host when the Host header is absent.
    pub(super) authority: Option<Authority>,
}

/// What a request's line needs from its end.
pub(crate) struct Finished {
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    /// The response head's size, when the format needs it (else 0).
    pub(crate) head_bytes: u64,
    pub(crate) header_count: usize,
    /// The response body failed part way.
    pub(crate) cut: bool,
    /// From the request head to the end of the response.
    pub(crate) micros: u64,
    pub(crate) end_wall_us: u64,
    pub(crate) end_wall_secs: u64,
}

impl Facts {
    /// The client: X-Forwarded-For's value with `log-x-forwarded-for`, else the address a
    /// uwsgi peer passed (nginx's REMOTE_ADDR), else the peer's (after a PROXY header, the
    /// one it names); none for a unix-socket client.
    pub(crate) fn addr(&self) -> Addr<'_> {
        match self.kept.as_ref().and_then(|k| k.forwarded.as_ref()) {
            Some(forwarded) => Addr::Checked(forwarded.as_bytes()),
            None => self.peer_addr(),
        }
    }

    /// REMOTE_ADDR as the application sees it.
    pub(crate) fn peer_addr(&self) -> Addr<'_> {
        if let Some(client) = self.kept.as_ref().and_then(|k| k.client.as_ref()) {
            return Addr::Checked(client.as_bytes());
        }
        match self.passed("REMOTE_ADDR") {
            Some(passed) => Addr::Passed(passed),
            None => match self.conn.remote_text() {
                ("", _) => Addr::None,
                (addr, _) => Addr::Checked(addr.as_bytes()),
            },
        }
    }

    pub(crate) fn peer_port(&self) -> Addr<'_> {
        match self.passed("REMOTE_PORT") {
            Some(passed) => Addr::Passed(passed),
            None => match self.conn.remote_text() {
                (_, "") => Addr::None,
                (_, port) => Addr::Checked(port.as_bytes()),
            },
        }
    }

    pub(crate) fn server_port(&self) -> Option<u16> {
        self.conn.local.map(|a| a.port())
    }

    /// A variable a uwsgi peer sent (nginx's uwsgi_params); none on HTTP connections.
    pub(crate) fn passed(&self, name: &str) -> Option<&[u8]> {
        self.conn
            .extra_environ
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes())
    }

    pub(crate) fn method(&self) -> &str {
        match self.unparsed {
            true => "-",
            false => self.method.as_str(),
        }
    }

    /// The request target as sent: path and query (`*` for `OPTIONS *`).
    pub(crate) fn uri(&self) -> &str {
        match self.unparsed {
            true => "-",
            false => self.target.as_ref().map_or("", PathAndQuery::as_str),
        }
    }

    pub(crate) fn path(&self) -> &str {
        self.target.as_ref().map_or("", PathAndQuery::path)
    }

    pub(crate) fn query(&self) -> Option<&[u8]> {
        self.target
            .as_ref()
            .and_then(PathAndQuery::query)
            .map(str::as_bytes)
    }

    pub(crate) fn proto(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        }
    }

    /// The `i`th header the format reads.
    pub(crate) fn header(&self, i: usize) -> Option<&[u8]> {
        self.kept
            .as_ref()
            .and_then(|k| k.headers.get(i))
            .and_then(Option::as_ref)
            .map(HeaderValue::as_bytes)
    }

    /// The Host header (the format's `i`th), else the target's authority.
    pub(crate) fn host(&self, i: usize) -> Option<&[u8]> {
        self.header(i).or_else(|| {
            let kept = self.kept.as_ref()?;
            kept.authority.as_ref().map(|a| a.as_str().as_bytes())
        })
    }
}
