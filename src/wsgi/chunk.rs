//! A chunk of a WSGI response body: it must be `bytes` (PEP 3333), and a large one is lent
//! to the response rather than copied.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The type name of a Python object, for the rule a value broke.
pub(crate) fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A Python object's repr, cut to about 80 characters, for the rule a value broke.
pub(crate) fn short_repr(o: &Bound<'_, PyAny>) -> String {
    let text = o
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    if text.len() > 80 {
        format!(
            "{}...",
            &text[..text.char_indices().nth(77).map_or(text.len(), |(i, _)| i)]
        )
    } else {
        text
    }
}

/// Chunks at least this long are sent from the application's `bytes` object itself; shorter
/// ones are copied, which costs less than handing the object back to Python later.
const LEND_FROM: usize = 1024;

/// An application's `bytes` object lent to the response body, so a large chunk is not copied.
/// Its data stays where CPython put it: a `bytes` object is immutable and never moves while a
/// reference holds it alive. When the body drops it without the GIL, PyO3 queues the
/// reference and releases it the next time a thread attaches to the interpreter.
struct Lent {
    data: *const u8,
    len: usize,
    _object: Py<PyBytes>,
}

// SAFETY: `data` points into the `bytes` object that `_object` keeps alive, and that memory is
// never written after the object is created, so reading it from any thread is sound; the
// `Py` reference itself is `Send`.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data` and `len` were read from the live `bytes` object that `_object`
        // holds; its buffer is immutable and outlives `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// Converts one chunk of response body: it must be `bytes` (PEP 3333).
pub(crate) fn chunk_bytes(chunk: &Bound<'_, PyAny>) -> Result<Bytes, String> {
    match chunk.cast::<PyBytes>() {
        Ok(b) => {
            let data = b.as_bytes();
            if data.len() < LEND_FROM {
                return Ok(Bytes::copy_from_slice(data));
            }
            Ok(Bytes::from_owner(Lent {
                data: data.as_ptr(),
                len: data.len(),
                _object: b.clone().unbind(),
            }))
        }
        Err(_) => Err(format!(
            "the response body must be bytes, but the application produced {}: {}",
            type_name(chunk),
            short_repr(chunk)
        )),
    }
}
