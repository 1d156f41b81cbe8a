//! Reading the application's messages (dicts) into Rust values, each check naming the rule
//! of the ASGI spec it enforces.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::bridge::head::Head;

/// A broken rule: the text says which.
pub(crate) type Rule = String;

/// The message's `type`.
pub(crate) fn kind<'py>(message: &Bound<'py, PyAny>) -> Result<Bound<'py, PyString>, Rule> {
    let py = message.py();
    let dict = message
        .cast::<PyDict>()
        .map_err(|_| format!("a message must be a dict; got {}", type_name(message)))?;
    let kind = dict
        .get_item(intern!(py, "type"))
        .ok()
        .flatten()
        .ok_or_else(|| "a message must have a \"type\" key".to_string())?;
    kind.cast_into::<PyString>().map_err(|e| {
        format!(
            "a message's \"type\" must be str; got {}",
            type_name(&e.into_inner())
        )
    })
}

/// `message[key]`, or `None` when missing (or None).
pub(crate) fn get<'py>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    let dict = message.cast::<PyDict>().ok()?;
    dict.get_item(key).ok().flatten().filter(|v| !v.is_none())
}

/// A boolean key, `false` when missing.
pub(crate) fn flag(message: &Bound<'_, PyAny>, key: &Bound<'_, PyString>) -> bool {
    get(message, key).is_some_and(|v| v.is_truthy().unwrap_or(false))
}

/// Bytes of a `body` or `bytes` key: a bytes object is lent, not copied, when large.
pub(crate) fn body(message: &Bound<'_, PyAny>, key: &Bound<'_, PyString>) -> Result<Bytes, Rule> {
    match get(message, key) {
        None => Ok(Bytes::new()),
        Some(value) => bytes_of(&value).ok_or_else(|| {
            format!(
                "\"{}\" must be a byte string; got {}",
                key.to_string_lossy(),
                type_name(&value)
            )
        }),
    }
}

/// Chunks at least this long are sent from the application's `bytes` object itself; shorter
/// ones are copied, which costs less than handing the object back to Python later.
const LEND_FROM: usize = 1024;

/// An application's `bytes` object lent to a response body.
struct Lent {
    data: *const u8,
    len: usize,
    _object: Py<PyBytes>,
}

// SAFETY: `data` points into the `bytes` object that `_object` keeps alive; that memory is
// never written after the object is created, so it may be read from any thread.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data` and `len` were read from the live, immutable `bytes` object that
        // `_object` holds for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// The bytes of a `bytes`, `bytearray` or `memoryview`-like object.
pub(crate) fn bytes_of(value: &Bound<'_, PyAny>) -> Option<Bytes> {
    if let Ok(b) = value.cast::<PyBytes>() {
        let data = b.as_bytes();
        if data.len() < LEND_FROM {
            return Some(Bytes::copy_from_slice(data));
        }
        return Some(Bytes::from_owner(Lent {
            data: data.as_ptr(),
            len: data.len(),
            _object: b.clone().unbind(),
        }));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Some(Bytes::from(b.to_vec()));
    }
    if value.is_instance_of::<PyString>() {
        return None;
    }
    // memoryview and other buffers.
    value
        .py()
        .get_type::<PyBytes>()
        .call1((value,))
        .ok()
        .and_then(|b| b.cast_into::<PyBytes>().ok())
        .map(|b| Bytes::copy_from_slice(b.as_bytes()))
}

/// The `status` of a response start: an int from 200 to 599 (`informational` allows 1xx for
/// nothing: ASGI has no message for them here).
pub(crate) fn status(message: &Bound<'_, PyAny>) -> Result<StatusCode, Rule> {
    let py = message.py();
    let value = get(message, intern!(py, "status"))
        .ok_or_else(|| "http.response.start must have a \"status\"".to_string())?;
    let code: u16 = value
        .extract()
        .map_err(|_| format!("\"status\" must be an int; got {}", short_repr(&value)))?;
    StatusCode::from_u16(code)
        .ok()
        .filter(|c| (200..=599).contains(&c.as_u16()))
        .ok_or_else(|| format!("\"status\" must be between 200 and 599; got {code}"))
}

/// Reads the `headers` key (an iterable of [name, value] byte strings) into `head`: names
/// are checked and lowered, values checked, hop-by-hop headers refused (Transfer-Encoding is
/// ignored, as the spec says servers must). With `trailers` (the application will send
/// trailers), the `Trailer` header that announces them is kept.
pub(crate) fn headers_into(
    message: &Bound<'_, PyAny>,
    head: &mut Head,
    trailers: bool,
) -> Result<(), Rule> {
    for_each_header(message, |name, value| {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Ok(());
        }
        if trailers && name.eq_ignore_ascii_case(b"trailer") {
            let value = HeaderValue::from_bytes(value)
                .map_err(|_| "the value of the Trailer header is not valid".to_string())?;
            head.headers.append(http::header::TRAILER, value);
            return Ok(());
        }
        head.add(name, value)
    })
}

/// Reads the `headers` key into a map (trailers, the WebSocket accept's headers), with the
/// same checks as a head's but for hop-by-hop rules; `refuse` names headers not allowed.
pub(crate) fn header_map(message: &Bound<'_, PyAny>, refuse: &[&str]) -> Result<HeaderMap, Rule> {
    let mut map = HeaderMap::new();
    for_each_header(message, |name, value| {
        let shown = String::from_utf8_lossy(name);
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("{shown:?} is not a valid header name"))?;
        if refuse.contains(&name.as_str()) {
            return Err(format!("the header {shown:?} is not allowed here"));
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            format!("the value of header {shown:?} contains control characters (CR, LF, NUL...)")
        })?;
        map.append(name, value);
        Ok(())
    })?;
    Ok(map)
}

fn for_each_header(
    message: &Bound<'_, PyAny>,
    mut add: impl FnMut(&[u8], &[u8]) -> Result<(), Rule>,
) -> Result<(), Rule> {
    let py = message.py();
    let Some(headers) = get(message, intern!(py, "headers")) else {
        return Ok(());
    };
    let items = headers.try_iter().map_err(|_| {
        format!(
            "\"headers\" must be an iterable of [name, value] pairs; got {}",
            type_name(&headers)
        )
    })?;
    for item in items {
        let item = item.map_err(|e| e.to_string())?;
        let pair: Vec<Bound<'_, PyAny>> = item
            .try_iter()
            .and_then(|i| i.collect::<PyResult<Vec<_>>>())
            .ok()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| {
                format!(
                    "each header must be a [name, value] pair; got {}",
                    short_repr(&item)
                )
            })?;
        let name = bytes_of(&pair[0]).ok_or_else(|| {
            format!(
                "header names must be byte strings; got {}",
                short_repr(&pair[0])
            )
        })?;
        let value = bytes_of(&pair[1]).ok_or_else(|| {
            format!(
                "header values must be byte strings; got {}",
                short_repr(&pair[1])
            )
        })?;
        if name.starts_with(b":") {
            return Err(format!(
                "pseudo-headers are not allowed in a response; got {:?}",
                String::from_utf8_lossy(&name)
            ));
        }
        add(&name, &value)?;
    }
    Ok(())
}

/// A text key (`subprotocol`, `reason`, `path`), or `None`.
pub(crate) fn text(
    message: &Bound<'_, PyAny>,
    key: &Bound<'_, PyString>,
) -> Result<Option<String>, Rule> {
    match get(message, key) {
        None => Ok(None),
        Some(value) => value
            .cast::<PyString>()
            .map_err(|_| {
                format!(
                    "\"{}\" must be str; got {}",
                    key.to_string_lossy(),
                    type_name(&value)
                )
            })?
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| format!("\"{}\" is not valid text", key.to_string_lossy())),
    }
}

pub(crate) fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn short_repr(o: &Bound<'_, PyAny>) -> String {
    let text = o
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    match text.char_indices().nth(77) {
        Some((i, _)) if text.len() > 80 => format!("{}...", &text[..i]),
        _ => text,
    }
}

/// A Python exception formatted as the interpreter prints it.
pub(crate) fn traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}
