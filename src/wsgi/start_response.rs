//! `start_response(status, headers, exc_info=None)` and the `write()` it returns.
//!
//! The rules of PEP 3333 for status lines and headers are pure functions here. A call that
//! breaks one raises in the application (so its traceback points at the call) and is also
//! remembered, so the response is a 500 even if the application swallows the exception.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::StatusCode;
use hyper::ext::ReasonPhrase;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::channel::Sink;
use super::chunk::{chunk_bytes, short_repr, type_name};
use crate::bridge::head::Head;

/// Parses `"200 OK"`: three digits, a space, a reason phrase.
pub(crate) fn parse_status(status: &str) -> Result<(StatusCode, Option<ReasonPhrase>), String> {
    let bytes = status.as_bytes();
    let well_formed =
        bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b' ';
    if !well_formed {
        return Err(format!(
            "the status must be three digits, a space and a reason phrase, like '200 OK'; got {status:?}"
        ));
    }
    let code = StatusCode::from_bytes(&bytes[..3])
        .ok()
        .filter(|c| (200..=599).contains(&c.as_u16()))
        .ok_or_else(|| format!("the status code must be between 200 and 599; got {status:?}"))?;
    // The usual status ("200 OK") matches as given; only others are trimmed first.
    let canonical = code.canonical_reason();
    let reason = &status[4..];
    let reason = if canonical == Some(reason) {
        reason
    } else {
        reason.trim()
    };
    let reason = if canonical == Some(reason) {
        None
    } else {
        Some(
            ReasonPhrase::try_from(
                latin1_bytes(reason)
                    .ok_or_else(|| {
                        format!("the reason phrase must be latin-1 text; got {status:?}")
                    })?
                    .into_owned(),
            )
            .map_err(|_| {
                format!("the reason phrase has characters not allowed in HTTP; got {status:?}")
            })?,
        )
    };
    Ok((code, reason))
}

/// Encodes text as latin-1 bytes, or `None` if a character is above U+00FF.
fn latin1_bytes(text: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
    if text.is_ascii() {
        return Some(text.as_bytes().into());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Into::into)
}

/// Builds the head from a checked status and header list.
#[cfg(test)]
pub(crate) fn build_head<S: AsRef<str>>(status: &str, headers: &[(S, S)]) -> Result<Head, String> {
    let mut head = HeadBuilder::new(status, headers.len())?;
    for (name, value) in headers {
        head.add(name.as_ref(), value.as_ref())?;
    }
    Ok(head.finish())
}

/// A head built one checked header at a time, straight from the application's list.
pub(crate) struct HeadBuilder {
    head: Head,
}

impl HeadBuilder {
    pub(crate) fn new(status: &str, headers: usize) -> Result<HeadBuilder, String> {
        let (status, reason) = parse_status(status)?;
        Ok(HeadBuilder {
            head: Head::new(status, reason, headers),
        })
    }

    /// Adds a header: the value must be latin-1 text (PEP 3333), then the bridge's rules
    /// apply.
    pub(crate) fn add(&mut self, name: &str, value: &str) -> Result<(), String> {
        // ASCII (nearly every value) is its own latin-1: no conversion to set up.
        if value.is_ascii() {
            return self.head.add(name.as_bytes(), value.as_bytes());
        }
        let bytes = latin1_bytes(value).ok_or_else(|| {
            format!("the value of header {name:?} must be latin-1 text (encode other text first, e.g. RFC 8187); got {value:?}")
        })?;
        self.head.add(name.as_bytes(), &bytes)
    }

    pub(crate) fn finish(self) -> Head {
        self.head
    }
}

/// Where start_response is in its life.
#[derive(Default)]
struct State {
    /// start_response() was called (successfully).
    called: bool,
    head: Option<Head>,
    /// The first rule the application broke, if any: the response becomes a 500.
    violation: Option<String>,
    /// write() was called or the first body bytes were produced: exc_info must now re-raise.
    committed: bool,
    /// The head has gone to the event loop (thread-pool mode only).
    delivered: bool,
    /// Bytes passed to write() that wait for the head (inline mode).
    written: Vec<Bytes>,
    /// The write() callable start_response returns, lent by the [`Responder`] while its
    /// request is in the application (a cycle it breaks when the request is done).
    write: Option<Py<PyAny>>,
}

/// The `start_response` callable of one request.
#[pyclass(frozen, module = "dragoman", name = "StartResponse")]
pub(crate) struct StartResponse {
    state: Mutex<State>,
    /// In thread-pool mode, where write() sends at once; inline, write() buffers.
    sink: Option<Sink>,
}

impl StartResponse {
    pub(crate) fn new(sink: Option<Sink>) -> Self {
        StartResponse {
            state: Mutex::new(State::default()),
            sink,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock can only come from a panic elsewhere; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the head for sending, with bytes written so far; marks the headers as sent.
    /// `Ok(None)`: the head was already delivered by write().
    pub(crate) fn take_head(&self) -> Result<Option<(Head, Vec<Bytes>)>, String> {
        let mut state = self.state();
        if let Some(rule) = &state.violation {
            return Err(rule.clone());
        }
        state.committed = true;
        if state.delivered {
            return Ok(None);
        }
        let head = state.head.take().ok_or_else(|| {
            "the application returned without calling start_response()".to_string()
        })?;
        let written = std::mem::take(&mut state.written);
        Ok(Some((head, written)))
    }

    /// Whether the head has reached the event loop (thread-pool mode).
    pub(crate) fn delivered(&self) -> bool {
        self.state().delivered
    }

    /// Records a broken rule (the response becomes a 500) and makes the exception the
    /// application sees, so its traceback points at the call that broke it.
    fn broken(&self, rule: String, exception: fn(String) -> PyErr) -> PyErr {
        let mut state = self.state();
        if state.violation.is_none() {
            state.violation = Some(rule.clone());
        }
        exception(format!("PEP 3333: {rule}"))
    }
}

/// A request's start_response and the write() it returns. The bound method costs an object
/// per call to make, so the pair is made once and, on a keep-alive connection in inline
/// mode, reused by the next request while nothing else holds either object (reference counts:
/// the pair's own, and write's `__self__`): no one can tell it from a new pair then.
pub(crate) struct Responder {
    start: Py<StartResponse>,
    write: Py<PyAny>,
}

impl Responder {
    pub(crate) fn new(py: Python<'_>, sink: Option<Sink>) -> PyResult<Responder> {
        let start = Bound::new(py, StartResponse::new(sink))?;
        let write = start.getattr(intern!(py, "write"))?.unbind();
        start.get().state().write = Some(write.clone_ref(py));
        Ok(Responder {
            start: start.unbind(),
            write,
        })
    }

    pub(crate) fn start<'py>(&self, py: Python<'py>) -> &Bound<'py, StartResponse> {
        self.start.bind(py)
    }

    /// The request is done with them: start_response no longer holds its write().
    pub(crate) fn finish(&self, py: Python<'_>) {
        let lent = self.start.bind(py).get().state().write.take();
        drop(lent);
    }

    /// The pair, fresh for another request, if nothing but this holds it.
    pub(crate) fn reuse(self, py: Python<'_>) -> Option<Responder> {
        if !counts_are_exact(py) {
            return None;
        }
        // SAFETY: both pointers are live objects this pair owns a reference to, and the GIL
        // (py) is held, so the counts are stable while they are read.
        let (start_refs, write_refs) = unsafe {
            (
                pyo3::ffi::Py_REFCNT(self.start.as_ptr()),
                pyo3::ffi::Py_REFCNT(self.write.as_ptr()),
            )
        };
        if start_refs != 2 || write_refs != 1 {
            return None;
        }
        let this = self.start.bind(py).get();
        if this.sink.is_some() {
            return None;
        }
        *this.state() = State {
            write: Some(self.write.clone_ref(py)),
            ..State::default()
        };
        Some(self)
    }
}

/// Builds the head from the application's status and `headers` argument: a list (or tuple)
/// of (name, value) tuples of `str`, checked and converted one at a time.
fn head_from_python(
    status: &Bound<'_, PyString>,
    headers: &Bound<'_, PyAny>,
) -> Result<Head, String> {
    let status = status
        .to_str()
        .map_err(|_| "the status is not valid text".to_string())?;
    if let Ok(list) = headers.cast::<PyList>() {
        let mut head = HeadBuilder::new(status, list.len())?;
        for item in list.iter() {
            add_header(&mut head, &item)?;
        }
        Ok(head.finish())
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        let mut head = HeadBuilder::new(status, tuple.len())?;
        for item in tuple.iter() {
            add_header(&mut head, &item)?;
        }
        Ok(head.finish())
    } else {
        Err(format!(
            "the headers must be a list of (name, value) tuples; got {}",
            type_name(headers)
        ))
    }
}

/// Checks one item of the headers list, a (name, value) tuple of `str`, and adds it.
fn add_header(head: &mut HeadBuilder, item: &Bound<'_, PyAny>) -> Result<(), String> {
    let pair = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            format!(
                "each header must be a (name, value) tuple; got {}",
                short_repr(item)
            )
        })?;
    // Borrowed from the tuple, which holds them while the head is built: no reference
    // counts to move.
    let text = |index: usize, what: &str| -> Result<Borrowed<'_, '_, PyString>, String> {
        let o = pair.get_borrowed_item(index).map_err(|e| e.to_string())?;
        o.cast::<PyString>().map_err(|_| {
            format!(
                "header {what}s must be str, not {}: {}",
                type_name(&o),
                short_repr(&o)
            )
        })
    };
    let (name, value) = (text(0, "name")?, text(1, "value")?);
    head.add(utf8(&name, "name")?, utf8(&value, "value")?)
}

/// Whether an object's reference count shows every holder. Not on free-threaded CPython,
/// where other threads' references may not have reached the count yet (nor if that cannot
/// be told). The first call imports `sysconfig`; [`super::WsgiApp::load`] makes it, so that
/// no request waits for it.
pub(super) fn counts_are_exact(py: Python<'_>) -> bool {
    static EXACT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXACT.get_or_init(|| {
        let free_threaded = py
            .import("sysconfig")
            .and_then(|m| m.call_method1("get_config_var", ("Py_GIL_DISABLED",)))
            .and_then(|v| v.is_truthy());
        matches!(free_threaded, Ok(false))
    })
}

/// The text of a header string, or the rule it broke. Inlined at its four calls a response
/// (a name and a value per header): 118 instructions less a hello-world request (callgrind).
#[inline(always)]
fn utf8<'a>(s: &'a Bound<'_, PyString>, what: &str) -> Result<&'a str, String> {
    s.to_str()
        .map_err(|_| format!("header {what} {} is not valid text", short_repr(s.as_any())))
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let state = this.state();
            match exc_info {
                Some(info) if state.committed => {
                    // Too late to change the response: re-raise the application's error.
                    drop(state);
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
                Some(_) => {}
                None if state.called => {
                    drop(state);
                    let rule = "start_response() was called a second time without exc_info";
                    return Err(this.broken(rule.into(), PyRuntimeError::new_err));
                }
                None => {}
            }
        }
        let status = status.cast::<PyString>().map_err(|_| {
            let rule = format!("the status must be str, not {}", type_name(status));
            this.broken(rule, PyTypeError::new_err)
        })?;
        let head = head_from_python(status, headers)
            .map_err(|rule| this.broken(rule, PyValueError::new_err))?;
        {
            let mut state = this.state();
            state.called = true;
            state.head = Some(head);
            // A replacement via exc_info clears an earlier broken call.
            if exc_info.is_some() {
                state.violation = None;
            }
        }
        let lent = this.state().write.as_ref().map(|w| w.clone_ref(slf.py()));
        match lent {
            Some(write) => Ok(write.into_bound(slf.py())),
            None => slf.getattr(intern!(slf.py(), "write")),
        }
    }

    /// The legacy imperative `write(data)`.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunk = chunk_bytes(data).map_err(|rule| self.broken(rule, PyTypeError::new_err))?;
        let mut state = self.state();
        if !state.called {
            drop(state);
            let rule = "write() was called before start_response()";
            return Err(self.broken(rule.into(), PyRuntimeError::new_err));
        }
        state.committed = true;
        let Some(sink) = &self.sink else {
            state.written.push(chunk);
            return Ok(());
        };
        let head = if state.delivered {
            None
        } else {
            state.delivered = true;
            let head = state.head.clone();
            let written = std::mem::take(&mut state.written);
            head.map(|h| (h, written))
        };
        drop(state);
        if let Some((head, written)) = head {
            sink.head(py, head, written, false)?;
        }
        if !chunk.is_empty() {
            sink.data(py, chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_LENGTH;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK").unwrap().0, StatusCode::OK);
        assert!(parse_status("200 OK").unwrap().1.is_none());
        let (code, reason) = parse_status("404 Nope").unwrap();
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(reason.unwrap().as_bytes(), b"Nope");
        assert!(parse_status("200").is_err());
        assert!(parse_status("OK 200").is_err());
        assert!(parse_status("2000 OK").is_err());
        assert!(parse_status("100 Continue").is_err());
        assert!(parse_status("200 O\nK").is_err());
    }

    #[test]
    fn header_rules() {
        let head = build_head(
            "200 OK",
            &h(&[("Content-Type", "text/plain"), ("X-A", "caf\u{e9}")]),
        )
        .unwrap();
        assert_eq!(head.headers["x-a"].as_bytes(), b"caf\xe9");
        assert!(build_head("200 OK", &h(&[("Connection", "close")]))
            .unwrap_err()
            .contains("hop-by-hop"));
        assert!(build_head("200 OK", &h(&[("Transfer-Encoding", "chunked")])).is_err());
        assert!(build_head("200 OK", &h(&[("X-A", "\u{263a}")]))
            .unwrap_err()
            .contains("latin-1"));
        assert!(build_head("200 OK", &h(&[("X-A", "a\r\nSet-Cookie: x")]))
            .unwrap_err()
            .contains("control"));
        assert!(build_head("200 OK", &h(&[("Bad Name", "x")])).is_err());
    }

    #[test]
    fn content_length_header() {
        let head = build_head("200 OK", &h(&[("Content-Length", "12")])).unwrap();
        assert_eq!(head.content_length, Some(12));
        assert!(build_head("200 OK", &h(&[("Content-Length", "x")])).is_err());
        assert!(build_head(
            "200 OK",
            &h(&[("Content-Length", "1"), ("Content-Length", "2")])
        )
        .is_err());
        let same = build_head(
            "200 OK",
            &h(&[("Content-Length", "1"), ("Content-Length", "1")]),
        )
        .unwrap();
        assert_eq!(same.content_length, Some(1));
        assert!(!same.headers.contains_key(CONTENT_LENGTH));
        for bad in [
            "+1",
            "-1",
            "1 2",
            "0x10",
            "1\r\n",
            "",
            "18446744073709551616",
        ] {
            assert!(
                build_head("200 OK", &h(&[("Content-Length", bad)])).is_err(),
                "{bad:?}"
            );
        }
        let spaced = build_head("200 OK", &h(&[("content-LENGTH", " 7\t")])).unwrap();
        assert_eq!(spaced.content_length, Some(7));
    }
}
