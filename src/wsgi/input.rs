//! `wsgi.input`: `read(n)`, `read()`, `readline(limit)`, `readlines(hint)` and iteration over
//! one of four sources: nothing, a buffer read before the call (small bodies), a spooled file
//! (chunked bodies), or the live request body streamed from the socket with backpressure (hyper
//! reads more from the client only as the app asks; `Expect: 100-continue` is answered then).

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::pin::pin;
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::bridge::body::Buffered;
use crate::bridge::spool::SpoolLease;
use crate::http::RequestBody;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// Where the body bytes come from.
pub(crate) enum Source {
    Empty,
    /// Let go when the response was over: reading raises.
    Released,
    Memory(Bytes),
    File {
        reader: BufReader<File>,
        remaining: u64,
        /// Keeps the file's bytes counted against the worker's spool budget.
        _lease: SpoolLease,
    },
    Stream {
        body: RequestBody,
        chunk: Bytes,
        done: bool,
        /// The longest wait for more of the body (body-timeout).
        idle: Duration,
    },
}

impl From<Buffered> for Source {
    fn from(buffered: Buffered) -> Source {
        match buffered {
            Buffered::Empty => Source::Empty,
            Buffered::Memory(data) => Source::Memory(data),
            Buffered::File { file, len, lease } => Source::File {
                reader: BufReader::with_capacity(64 * 1024, file),
                remaining: len,
                _lease: lease,
            },
        }
    }
}

impl Source {
    /// The bytes available without consuming them; empty at the end of the body. May block
    /// (with the GIL released) until the client sends more.
    fn fill(&mut self, py: Python<'_>) -> PyResult<&[u8]> {
        match self {
            Source::Empty => Ok(&[]),
            Source::Released => Err(pyo3::exceptions::PyValueError::new_err(
                "wsgi.input was released when the response to its request was over",
            )),
            Source::Memory(data) => Ok(&data[..]),
            Source::File {
                reader, remaining, ..
            } => {
                if *remaining == 0 {
                    return Ok(&[]);
                }
                let buf = reader.fill_buf().map_err(|e| {
                    PyOSError::new_err(format!("reading the spooled request body: {e}"))
                })?;
                let n = buf.len().min(*remaining as usize);
                Ok(&buf[..n])
            }
            Source::Stream {
                body,
                chunk,
                done,
                idle,
            } => {
                while chunk.is_empty() && !*done {
                    let wait = *idle;
                    let Some(frame) = py.detach(|| block_on(body.frame(), wait)) else {
                        *done = true;
                        return Err(PyOSError::new_err(format!(
                            "the client sent nothing of the request body for {}s (body-timeout)",
                            wait.as_secs()
                        )));
                    };
                    match frame {
                        None => *done = true,
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                *chunk = data;
                            }
                        }
                        Some(Err(e)) => {
                            *done = true;
                            return Err(PyOSError::new_err(format!(
                                "the client stopped sending the request body: {e}"
                            )));
                        }
                    }
                }
                Ok(&chunk[..])
            }
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            Source::Empty | Source::Released => {}
            Source::Memory(data) | Source::Stream { chunk: data, .. } => data.advance(n),
            Source::File {
                reader, remaining, ..
            } => {
                reader.consume(n);
                *remaining -= n as u64;
            }
        }
    }

    /// Reads up to `limit` bytes; with `until_newline`, stops after the first `\n`.
    fn read(&mut self, py: Python<'_>, limit: usize, until_newline: bool) -> PyResult<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < limit {
            let available = self.fill(py)?;
            if available.is_empty() {
                break;
            }
            let mut take = available.len().min(limit - out.len());
            let mut found = false;
            if until_newline {
                if let Some(i) = memchr::memchr(b'\n', &available[..take]) {
                    take = i + 1;
                    found = true;
                }
            }
            out.extend_from_slice(&available[..take]);
            self.consume(take);
            if found {
                break;
            }
        }
        Ok(out)
    }
}

/// `wsgi.input`.
#[pyclass(frozen, module = "dragoman", name = "InputStream")]
pub(crate) struct InputStream {
    source: Mutex<Source>,
    /// The stream shared by every request without a body: it reads as empty without taking
    /// the lock, so threads reading it at once never collide.
    shared_empty: bool,
}

impl InputStream {
    /// The request is over: its body (a spooled file, a buffer, the live stream) is let go
    /// now; a later read raises.
    pub(crate) fn release(&self) {
        if self.shared_empty {
            return;
        }
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        *source = Source::Released;
    }

    pub(crate) fn new(source: Source) -> Self {
        InputStream {
            source: Mutex::new(source),
            shared_empty: false,
        }
    }

    /// The one empty stream a worker gives every request that has no body.
    pub(crate) fn empty() -> Self {
        InputStream {
            source: Mutex::new(Source::Empty),
            shared_empty: true,
        }
    }

    fn with_source<T>(&self, f: impl FnOnce(&mut Source) -> PyResult<T>) -> PyResult<T> {
        if self.shared_empty {
            return f(&mut Source::Empty);
        }
        match self.source.try_lock() {
            Ok(mut source) => f(&mut source),
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "wsgi.input is being read by another thread at the same time",
            )),
            Err(TryLockError::Poisoned(_)) => {
                Err(PyRuntimeError::new_err("wsgi.input is unusable"))
            }
        }
    }
}

/// A size argument: `None` or a negative number means "no limit".
fn limit(size: Option<isize>) -> usize {
    match size {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    }
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = limit(size);
        self.with_source(|source| {
            // One buffer that already holds everything asked for: no intermediate copy.
            if let Source::Memory(data) = source {
                let take = data.len().min(n);
                let out = PyBytes::new(py, &data[..take]);
                data.advance(take);
                return Ok(out);
            }
            Ok(PyBytes::new(py, &source.read(py, n, false)?))
        })
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = limit(size);
        self.with_source(|source| Ok(PyBytes::new(py, &source.read(py, n, true)?)))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint);
        self.with_source(|source| {
            let lines = PyList::empty(py);
            let mut total = 0usize;
            loop {
                let line = source.read(py, usize::MAX, true)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.append(PyBytes::new(py, &line))?;
                if total >= hint {
                    break;
                }
            }
            Ok(lines)
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok(if line.as_bytes().is_empty() {
            None
        } else {
            Some(line)
        })
    }
}

/// Runs a future to completion on the current (non-async) thread: the app thread waiting for
/// the event loop to deliver more of the request body. `None` if it takes longer than `limit`.
pub(crate) fn block_on<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + limit;
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::park_timeout(left);
    }
}
