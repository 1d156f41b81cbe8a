//! How a request body reaches the application, whatever its interface, and its limits.
//!
//! By default a body is read whole before the application is called and before the request
//! takes an application slot, as nginx in front used to do: in memory up to `post-buffering`
//! bytes, past that in an unnamed temporary file. So a client that uploads slowly holds its own
//! connection and a little memory, never an application slot, and the application's reads
//! never wait on the network. `Expect: 100-continue` is answered then, by dragoman, once the
//! request is known to be acceptable (a declared length over `limit-post` gets its 413 first,
//! with no 100).
//!
//! What a buffered body may cost is bounded: `limit-post` (413, as soon as it is known), the
//! worker's `spool-budget` for bytes in temporary files at once (503, the client may come
//! back), `body-timeout` for each wait for more, and `body-min-rate` on average once the first
//! `body-timeout` has passed (408 either way).
//!
//! `post-buffering = 0` streams instead (uWSGI's meaning of 0): small bodies are still read
//! first, chunked ones spooled (their length must be known), and a larger body, or one sent
//! after a `100 Continue`, is read as the application asks for it.

use std::fs::File;
use std::io::{Seek, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use super::spool::{Spool, SpoolLease};
use crate::config::Limits;
use crate::http::{error_response, Body, RequestBody};

/// With `post-buffering = 0`: bodies up to this size are still read before the call, so the
/// application's `read()` never has to wait on the socket.
const SMALL_BODY: u64 = 64 * 1024;
/// With `post-buffering = 0`: a chunked body is kept in memory up to this size, then spooled.
const CHUNKED_IN_MEMORY: u64 = 1024 * 1024;

/// How the request body reaches the application.
pub(crate) enum Plan {
    /// No body.
    Empty,
    /// Read whole before the call: in memory up to this many bytes, then in a file.
    Buffer { memory: u64 },
    /// Streamed from the socket while the app reads it.
    Stream,
}

impl Plan {
    /// The plan for a request's body under `limits`.
    pub(crate) fn of(parts: &Parts, body: &RequestBody, limits: &Limits) -> Plan {
        if body.is_end_stream() {
            return Plan::Empty;
        }
        let declared = body.size_hint().exact();
        if declared == Some(0) {
            return Plan::Empty;
        }
        if limits.post_buffering > 0 {
            return Plan::Buffer {
                memory: limits.post_buffering,
            };
        }
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        match declared {
            Some(n) if n <= SMALL_BODY && !expects_continue => Plan::Buffer { memory: n },
            Some(_) => Plan::Stream,
            None => Plan::Buffer {
                memory: CHUNKED_IN_MEMORY,
            },
        }
    }

    /// Whether the body is there already, to hand to the application at once: none, or one
    /// [`is_ready`] to buffer.
    pub(crate) fn is_ready(&self, body: &RequestBody, limits: &Limits) -> bool {
        match *self {
            Plan::Empty => true,
            Plan::Buffer { memory } => is_ready(body, memory, limits),
            Plan::Stream => false,
        }
    }
}

/// A body read before the call.
pub(crate) enum Buffered {
    Empty,
    Memory(Bytes),
    /// Spooled to an unnamed temporary file, rewound; `len` bytes. The lease keeps its bytes
    /// counted against the worker's spool budget until the file is dropped.
    File {
        file: File,
        len: u64,
        lease: SpoolLease,
    },
}

impl Buffered {
    /// The body's length.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Buffered::Empty => 0,
            Buffered::Memory(data) => data.len() as u64,
            Buffered::File { len, .. } => *len,
        }
    }
}

/// Why a request body could not be read before the call.
pub(crate) enum BodyProblem {
    TooLarge(u64),
    Idle(Duration),
    /// Slower on average than this many bytes a second, past the grace period.
    TooSlow(u64),
    /// The worker's spool budget (bytes) is spent.
    SpoolFull(u64),
    Broken(String),
}

impl BodyProblem {
    /// The answer: 413, 408, 503 or 400, closing the connection (the body is not all read).
    pub(crate) fn response(&self) -> Response<Body> {
        let (status, detail) = match self {
            BodyProblem::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than limit-post ({limit} bytes)"),
            ),
            BodyProblem::Idle(t) => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the client sent nothing of the request body for {}s (body-timeout)",
                    t.as_secs()
                ),
            ),
            BodyProblem::TooSlow(rate) => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the client sent the request body at less than {rate} bytes a second \
                     (body-min-rate)"
                ),
            ),
            BodyProblem::SpoolFull(budget) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the worker holds as many request bodies in temporary files as it may \
                     ({budget} bytes, spool-budget); try again shortly"
                ),
            ),
            BodyProblem::Broken(e) => (
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read ({e})"),
            ),
        };
        let mut response = error_response(status, &detail, true);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A declared length over `limit-post` is refused before the body is read, so no
/// `100 Continue` goes out either.
pub(crate) fn check_declared(limits: &Limits, body: &RequestBody) -> Result<(), BodyProblem> {
    match (limits.body_bytes, body.size_hint().exact()) {
        (Some(limit), Some(len)) if len > limit => Err(BodyProblem::TooLarge(limit)),
        _ => Ok(()),
    }
}

/// Whether `body` was read with its head by the connection's own HTTP/1 path and fits in
/// `memory` bytes and `limit-post`: [`buffer`] would have nothing to wait for, so a bridge may
/// hand it to the application at once ([`take_ready`]).
pub(crate) fn is_ready(body: &RequestBody, memory: u64, limits: &Limits) -> bool {
    match body {
        RequestBody::Full(Some(data)) => {
            let len = data.len() as u64;
            len <= memory && limits.body_bytes.is_none_or(|limit| len <= limit)
        }
        _ => false,
    }
}

/// A body [`is_ready`] said is ready, as [`buffer`] would have read it.
pub(crate) fn take_ready(body: RequestBody) -> Buffered {
    match body {
        RequestBody::Full(Some(data)) => Buffered::Memory(data),
        _ => Buffered::Empty,
    }
}

/// The pace a body must keep: each wait for more at most `body-timeout`, and on average at
/// least `body-min-rate` bytes a second once the first `body-timeout` has passed.
struct Pace {
    start: Instant,
    idle: Duration,
    min_rate: u64,
}

impl Pace {
    fn new(limits: &Limits) -> Pace {
        Pace {
            start: Instant::now(),
            idle: limits.body_timeout,
            min_rate: limits.body_min_rate,
        }
    }

    /// How long to wait for more after `received` bytes, and what it means if nothing comes.
    fn wait(&self, received: u64) -> (Duration, BodyProblem) {
        if self.min_rate == 0 {
            return (self.idle, BodyProblem::Idle(self.idle));
        }
        // The time by which `received` bytes were due at the minimum rate, after the grace.
        let due = self.idle + Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        let left = due.saturating_sub(self.start.elapsed());
        if left < self.idle {
            (left, BodyProblem::TooSlow(self.min_rate))
        } else {
            (self.idle, BodyProblem::Idle(self.idle))
        }
    }
}

/// The next piece of a body, or the problem if it does not come in time.
async fn next_data(
    body: &mut RequestBody,
    (wait, late): (Duration, BodyProblem),
) -> Result<Option<Bytes>, BodyProblem> {
    loop {
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(late),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(BodyProblem::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Counts `n` more bytes of a body against the spool budget: a 503 when it is spent.
fn take(lease: &mut SpoolLease, n: u64) -> Result<(), BodyProblem> {
    lease
        .take(n)
        .map_err(|()| BodyProblem::SpoolFull(lease.budget()))
}

/// Reads a body whole: in memory up to `memory` bytes, then in an unnamed temporary file,
/// within the limits. A body that came in one piece (the usual small one: it arrived with the
/// head) is kept as it is, without a copy.
pub(crate) async fn buffer(
    mut body: RequestBody,
    memory: u64,
    limits: &Limits,
    spool: &Arc<Spool>,
) -> Result<Buffered, BodyProblem> {
    if is_ready(&body, memory, limits) {
        return Ok(take_ready(body));
    }
    let broken = |what: &str, e: std::io::Error| BodyProblem::Broken(format!("{what}: {e}"));
    let pace = Pace::new(limits);
    let declared = body.size_hint().exact();
    let mut lease = spool.lease();
    // A declared body that will not fit in memory takes its share of the budget at once: a
    // 503 now, before any 100 Continue, rather than after part of an upload.
    if let Some(len) = declared.filter(|len| *len > memory) {
        take(&mut lease, len)?;
    }
    let Some(first) = next_data(&mut body, pace.wait(0)).await? else {
        return Ok(Buffered::Empty);
    };
    if body.is_end_stream() && first.len() as u64 <= memory {
        return Ok(Buffered::Memory(first));
    }
    let capacity = declared.unwrap_or(0).min(memory) as usize;
    let mut in_memory = BytesMut::with_capacity(capacity.max(first.len()));
    let mut file: Option<File> = None;
    let mut total = 0u64;
    let mut next = Some(first);
    while let Some(data) = next {
        let n = data.len() as u64;
        total = total.saturating_add(n);
        if let Some(limit) = limits.body_bytes.filter(|limit| total > *limit) {
            return Err(BodyProblem::TooLarge(limit));
        }
        if file.is_none() && total > memory {
            let mut f =
                tempfile::tempfile().map_err(|e| broken("cannot create a spool file", e))?;
            f.write_all(&in_memory)
                .map_err(|e| broken("cannot write the spool file", e))?;
            in_memory = BytesMut::new();
            file = Some(f);
        }
        match &mut file {
            Some(f) => {
                // A declared length was counted whole; a chunked body counts as it comes.
                let counted = lease.bytes();
                if total > counted {
                    take(&mut lease, total - counted)?;
                }
                f.write_all(&data)
                    .map_err(|e| broken("cannot write the spool file", e))?;
            }
            None => in_memory.extend_from_slice(&data),
        }
        next = next_data(&mut body, pace.wait(total)).await?;
    }
    match file {
        Some(mut f) => {
            f.rewind()
                .map_err(|e| broken("cannot read the spool file", e))?;
            Ok(Buffered::File {
                file: f,
                len: total,
                lease,
            })
        }
        None if in_memory.is_empty() => Ok(Buffered::Empty),
        None => Ok(Buffered::Memory(in_memory.freeze())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_allows_the_grace_then_the_minimum_rate() {
        let limits = Limits {
            body_timeout: Duration::from_secs(10),
            body_min_rate: 100,
            ..Limits::default()
        };
        let mut pace = Pace::new(&limits);
        let (wait, _) = pace.wait(0);
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        // 20 s in with 500 bytes: due by 10 + 5 = 15 s, so late already.
        pace.start -= Duration::from_secs(20);
        let (wait, late) = pace.wait(500);
        assert_eq!(wait, Duration::ZERO);
        assert!(matches!(late, BodyProblem::TooSlow(100)));
        // With 5,000 bytes it is due by 60 s: a full idle wait is allowed.
        let (wait, late) = pace.wait(5_000);
        assert_eq!(wait, Duration::from_secs(10));
        assert!(matches!(late, BodyProblem::Idle(_)));
        let off = Pace::new(&Limits {
            body_min_rate: 0,
            ..limits
        });
        assert!(matches!(off.wait(0).1, BodyProblem::Idle(_)));
    }
}
