//! What a connection may send before its first request: a PROXY protocol header from a
//! trusted load balancer (on `http` listeners with `proxy-protocol`), or a uwsgi packet (on
//! `socket` listeners, from nginx's `uwsgi_pass`). Both are read here, in blocks, within
//! header-timeout; the bytes read past them are given back for the layer above
//! ([`super::rewind::Rewind`]).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::proxy;
use super::ConnInfo;
use crate::forwarded::TrustedProxies;
use crate::uwsgi::{codec, request};

/// What a listener expects before the protocol starts.
pub(crate) enum Preamble<'a> {
    /// Nothing: the protocol starts with the first byte.
    None,
    /// A PROXY header, believed from these peers only (unix socket peers are trusted: the
    /// socket's permissions say who may connect).
    Proxy(&'a TrustedProxies),
    /// A uwsgi request packet, translated to an HTTP/1.0 head for the HTTP side
    /// ([`crate::uwsgi::request`]).
    Uwsgi,
}

/// Why a connection ended before its protocol started.
pub(crate) enum PreambleError {
    /// The bytes are not what the listener expects: answered with a 400 that says so.
    Invalid(String),
    /// The peer went away (silently: `None`, as a health check that only connects does) or
    /// stayed silent too long.
    Gone(Option<String>),
}

/// The longest PROXY header read (v2 may carry TLVs; they are skipped).
const PROXY_HEADER_MAX: usize = 4096;

impl Preamble<'_> {
    /// Reads the preamble within `timeout`; what it says goes into `conn`. Returns the bytes
    /// read past it: the start of what follows, for the protocol.
    pub(crate) async fn read<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        conn: &mut ConnInfo,
        timeout: Duration,
    ) -> Result<Bytes, PreambleError> {
        match self {
            Preamble::None => Ok(Bytes::new()),
            Preamble::Proxy(trusted) => {
                if conn
                    .peer
                    .is_some_and(|peer| !trusted.trusts(Some(peer.ip())))
                {
                    return Ok(Bytes::new());
                }
                let (source, rest) = read_until(stream, timeout, "PROXY header", |buf| {
                    match proxy::parse(buf) {
                        proxy::Parsed::Header { len, source } => {
                            Step::Done((source, buf.split_off(len).freeze()))
                        }
                        proxy::Parsed::Absent => Step::Done((None, std::mem::take(buf).freeze())),
                        proxy::Parsed::Invalid(why) => Step::Invalid(why.to_string()),
                        proxy::Parsed::Incomplete if buf.len() >= PROXY_HEADER_MAX => {
                            Step::Invalid("the PROXY header is too long".into())
                        }
                        proxy::Parsed::Incomplete => Step::More(0),
                    }
                })
                .await?;
                conn.peer = source.or(conn.peer);
                Ok(rest)
            }
            Preamble::Uwsgi => {
                let (translated, rest) = read_until(stream, timeout, "uwsgi packet", |buf| {
                    match codec::parse(buf) {
                        codec::Parsed::Packet(packet) => match request::translate(&packet) {
                            Ok(translated) => {
                                let len = packet.len;
                                Step::Done((translated, buf.split_off(len).freeze()))
                            }
                            Err(why) => Step::Invalid(why),
                        },
                        codec::Parsed::Invalid(why) => Step::Invalid(why.to_string()),
                        codec::Parsed::Incomplete { need } => Step::More(need.unwrap_or(0)),
                    }
                })
                .await?;
                conn.peer = translated.remote.or(conn.peer);
                if translated.https {
                    conn.scheme = "https";
                }
                conn.extra_environ = translated.environ;
                conn.one_request = true;
                let mut prefix = BytesMut::with_capacity(translated.head.len() + rest.len());
                prefix.extend_from_slice(&translated.head);
                prefix.extend_from_slice(&rest);
                Ok(prefix.freeze())
            }
        }
    }
}

/// What a preamble parser says of the bytes read so far.
enum Step<T> {
    Done(T),
    /// Not complete: read more (the buffer should hold at least this many bytes).
    More(usize),
    Invalid(String),
}

/// Reads blocks into a buffer until `parse` is done with it, within `timeout`.
async fn read_until<S, T>(
    stream: &mut S,
    timeout: Duration,
    what: &str,
    mut parse: impl FnMut(&mut BytesMut) -> Step<T>,
) -> Result<T, PreambleError>
where
    S: AsyncRead + Unpin,
{
    let read = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            match parse(&mut buf) {
                Step::Done(found) => return Ok(found),
                Step::Invalid(why) => return Err(PreambleError::Invalid(why)),
                Step::More(need) => buf.reserve(need.saturating_sub(buf.len())),
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Err(PreambleError::Gone(None)),
                Ok(0) => {
                    return Err(PreambleError::Gone(Some(format!(
                        "it closed in the middle of its {what}"
                    ))))
                }
                Ok(_) => {}
                Err(e) => return Err(PreambleError::Gone(Some(e.to_string()))),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        PreambleError::Gone(Some(format!("no complete {what} within header-timeout")))
    })?
}
