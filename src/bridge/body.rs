//! How a request body reaches the application, whatever its interface: read before the call
//! (small bodies in memory, chunked ones spooled past a size so their length is known), or
//! streamed while the application reads. The limits are enforced here: 413 past `limit-post`
//! (before the body and any `100 Continue` when the length is declared), 408 when the client
//! stops sending, 400 when the body cannot be read.

use std::fs::File;
use std::io::{Seek, Write};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use crate::config::Limits;
use crate::http::{error_response, Body, RequestBody};

/// Bodies up to this size are read before the app is called, so the app's `read()` never has
/// to wait on the socket.
const SMALL_BODY: u64 = 64 * 1024;
/// A chunked body is kept in memory up to this size, then spooled to a temporary file.
const SPOOL_IN_MEMORY: usize = 1024 * 1024;

/// How the request body reaches the application.
pub(crate) enum Plan {
    /// No body.
    Empty,
    /// A Content-Length body small enough to read before calling the app.
    Small,
    /// A chunked body: buffered (spooled past a size) so its length can be given.
    Chunked,
    /// Streamed from the socket while the app reads it.
    Stream,
}

/// The plan for a request's body.
pub(crate) fn plan(parts: &Parts, body: &RequestBody) -> Plan {
    if body.is_end_stream() {
        return Plan::Empty;
    }
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    match body.size_hint().exact() {
        Some(0) => Plan::Empty,
        Some(n) if n <= SMALL_BODY && !expects_continue => Plan::Small,
        Some(_) => Plan::Stream,
        None => Plan::Chunked,
    }
}

/// A body read before the call.
pub(crate) enum Buffered {
    Empty,
    Memory(Bytes),
    /// Spooled to an unnamed temporary file, rewound; `len` bytes.
    File {
        file: File,
        len: u64,
    },
}

/// Why a request body could not be read before the call.
pub(crate) enum BodyProblem {
    TooLarge(u64),
    Idle(Duration),
    Broken(String),
}

impl BodyProblem {
    /// The answer: 413, 408 or 400, closing the connection (the body is not all read).
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
            BodyProblem::Broken(e) => (
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read ({e})"),
            ),
        };
        error_response(status, &detail, true)
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

/// The next piece of a body, waiting at most `idle` for it.
async fn next_data(body: &mut RequestBody, idle: Duration) -> Result<Option<Bytes>, BodyProblem> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyProblem::Idle(idle)),
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

/// Reads a small body of known length into memory. A body that came in one piece (the usual
/// case: it arrived with the head) is kept as it is, without a copy.
pub(crate) async fn collect(mut body: RequestBody, idle: Duration) -> Result<Bytes, BodyProblem> {
    let Some(first) = next_data(&mut body, idle).await? else {
        return Ok(Bytes::new());
    };
    if body.is_end_stream() {
        return Ok(first);
    }
    let mut all = BytesMut::from(&first[..]);
    while let Some(data) = next_data(&mut body, idle).await? {
        all.extend_from_slice(&data);
    }
    Ok(all.freeze())
}

/// Reads a chunked body whole: in memory up to [`SPOOL_IN_MEMORY`], then in a temporary file,
/// refusing it past `limit-post`.
pub(crate) async fn spool(mut body: RequestBody, limits: &Limits) -> Result<Buffered, BodyProblem> {
    let broken = |what: &str, e: std::io::Error| BodyProblem::Broken(format!("{what}: {e}"));
    let mut memory = BytesMut::new();
    let mut file: Option<File> = None;
    let mut total = 0u64;
    while let Some(data) = next_data(&mut body, limits.body_timeout).await? {
        total += data.len() as u64;
        if let Some(limit) = limits.body_bytes.filter(|limit| total > *limit) {
            return Err(BodyProblem::TooLarge(limit));
        }
        if file.is_none() && memory.len() + data.len() > SPOOL_IN_MEMORY {
            let mut f =
                tempfile::tempfile().map_err(|e| broken("cannot create a spool file", e))?;
            f.write_all(&memory)
                .map_err(|e| broken("cannot write the spool file", e))?;
            memory.clear();
            file = Some(f);
        }
        match &mut file {
            Some(f) => f
                .write_all(&data)
                .map_err(|e| broken("cannot write the spool file", e))?,
            None => memory.extend_from_slice(&data),
        }
    }
    match file {
        Some(mut f) => {
            f.rewind()
                .map_err(|e| broken("cannot read the spool file", e))?;
            Ok(Buffered::File {
                file: f,
                len: total,
            })
        }
        None if memory.is_empty() => Ok(Buffered::Empty),
        None => Ok(Buffered::Memory(memory.freeze())),
    }
}
