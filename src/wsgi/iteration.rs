//! Iterating over what a WSGI application returned, and `close()` on it exactly once: when
//! the iteration ends, fails, or the client goes away (it is dropped). A `wsgi.file_wrapper`
//! over a real file is sent by Rust instead ([`WrappedFile`]), its `close()` run when the
//! transfer ends.

use bytes::Bytes;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::chunk::chunk_bytes;
use super::failure::{traceback, Failure};
use super::input::InputStream;
use crate::log;

/// The iteration over an application's return value.
pub(crate) struct Iteration {
    /// What the application returned, kept for its `close()`.
    returned: Option<Py<PyAny>>,
    /// The request's `wsgi.input`, when it holds a body: released when the response is over
    /// (at `close()`), so a body spooled to a file does not keep its descriptor until the
    /// garbage collector frees the request (Django's request objects are in cycles).
    input: Option<Py<InputStream>>,
    kind: Kind,
}

enum Kind {
    /// A list or tuple that iterates as the built-in one does: indexed directly, no iterator
    /// object. (A subclass with its own `__iter__` is iterated.)
    Sequence {
        items: Py<PyAny>,
        index: usize,
        len: usize,
    },
    Iterator(Py<PyAny>),
    Done,
}

/// Whether a list or tuple iterates as the built-in type does: it is one, or its subclass
/// keeps the built-in `__iter__`.
fn builtin_iter<T: pyo3::PyTypeInfo>(sequence: &Bound<'_, PyAny>) -> bool {
    let py = sequence.py();
    if sequence.is_exact_instance_of::<T>() {
        return true;
    }
    let iter = intern!(py, "__iter__");
    match (
        sequence.get_type().getattr(iter),
        T::type_object(py).getattr(iter),
    ) {
        (Ok(own), Ok(builtin)) => own.is(&builtin),
        _ => false,
    }
}

impl Iteration {
    pub(crate) fn new(returned: Bound<'_, PyAny>) -> Result<Iteration, Failure> {
        let kind = if let Some(list) = returned
            .cast::<PyList>()
            .ok()
            .filter(|_| builtin_iter::<PyList>(&returned))
        {
            Kind::Sequence {
                len: list.len(),
                items: list.clone().into_any().unbind(),
                index: 0,
            }
        } else if let Some(tuple) = returned
            .cast::<PyTuple>()
            .ok()
            .filter(|_| builtin_iter::<PyTuple>(&returned))
        {
            Kind::Sequence {
                len: tuple.len(),
                items: tuple.clone().into_any().unbind(),
                index: 0,
            }
        } else {
            match returned.try_iter() {
                Ok(iter) => Kind::Iterator(iter.into_any().unbind()),
                Err(_) => {
                    let what = returned
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    let mut it = Iteration {
                        returned: Some(returned.unbind()),
                        input: None,
                        kind: Kind::Done,
                    };
                    Python::attach(|py| it.close(py));
                    return Err(Failure::Rule(format!(
                        "the application must return an iterable of bytes, but returned {what}"
                    )));
                }
            }
        };
        // A plain list or tuple has no close(), and looking for one costs a raised and
        // cleared AttributeError (before Python 3.13): nothing to keep for it.
        let plain =
            returned.is_exact_instance_of::<PyList>() || returned.is_exact_instance_of::<PyTuple>();
        Ok(Iteration {
            returned: (!plain).then(|| returned.unbind()),
            input: None,
            kind,
        })
    }

    /// Whether the whole body is already in memory (a list or tuple).
    pub(crate) fn is_sequence(&self) -> bool {
        matches!(self.kind, Kind::Sequence { .. })
    }

    /// What the application returned, kept only for its `close()` (a wrapped file that Rust
    /// sends: nothing is iterated).
    pub(crate) fn closer(returned: Bound<'_, PyAny>) -> Iteration {
        Iteration {
            returned: Some(returned.unbind()),
            input: None,
            kind: Kind::Done,
        }
    }

    /// The next chunk, or `None` at the end.
    pub(crate) fn next(&mut self, py: Python<'_>) -> Result<Option<Bytes>, Failure> {
        let item = match &mut self.kind {
            Kind::Done => return Ok(None),
            Kind::Sequence { items, index, len } => {
                if *index >= *len {
                    self.kind = Kind::Done;
                    return Ok(None);
                }
                let items = items.bind(py);
                let item = match items.cast::<PyList>() {
                    Ok(list) => list.get_item(*index),
                    Err(_) => items
                        .cast::<PyTuple>()
                        .map_or_else(|_| items.get_item(*index), |tuple| tuple.get_item(*index)),
                }
                .map_err(Failure::Raised)?;
                *index += 1;
                item
            }
            Kind::Iterator(iter) => {
                // SAFETY: iter is a live iterator object (from try_iter) and we hold the GIL;
                // PyIter_Next returns a new reference, or NULL at the end or on an error.
                let ptr = unsafe { pyo3::ffi::PyIter_Next(iter.as_ptr()) };
                if ptr.is_null() {
                    self.kind = Kind::Done;
                    return match PyErr::take(py) {
                        Some(err) => Err(Failure::Raised(err)),
                        None => Ok(None),
                    };
                }
                // SAFETY: a non-null PyIter_Next result is a new, owned reference.
                unsafe { Bound::from_owned_ptr(py, ptr) }
            }
        };
        chunk_bytes(&item).map(Some).map_err(Failure::Rule)
    }

    /// Calls the returned object's `close()`, once. An error from it is logged.
    /// Releases the request's body when the response is over (see [`Iteration::close`]).
    pub(crate) fn release_at_close(&mut self, input: Option<Py<InputStream>>) {
        self.input = input;
    }

    pub(crate) fn close(&mut self, py: Python<'_>) -> Option<PyErr> {
        self.kind = Kind::Done;
        if let Some(input) = self.input.take() {
            input.borrow(py).release();
        }
        let returned = self.returned.take()?;
        let returned = returned.bind(py);
        match returned.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close.call0().err(),
            Ok(None) => None,
            Err(e) => Some(e),
        }
    }
}

impl Drop for Iteration {
    fn drop(&mut self) {
        if self.returned.is_some() || self.input.is_some() {
            Python::attach(|py| {
                if let Some(err) = self.close(py) {
                    log::write_block(
                        log::Level::Error,
                        format_args!("close() of the response raised:"),
                        &traceback(py, &err),
                    );
                }
            });
        }
    }
}

/// A file sent by Rust on the application's behalf: `len` bytes from `offset`. Once the
/// response is made, the body keeps `closer`, so dropping it calls the application's `close()`
/// (Django releases its database connection there).
pub(crate) struct WrappedFile {
    pub(crate) file: std::fs::File,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) closer: Iteration,
}

/// Closes after a failure; the failure is what gets reported, a close() error is just logged.
pub(crate) fn close_logged(py: Python<'_>, iteration: &mut Iteration) {
    if let Some(err) = iteration.close(py) {
        log::write_block(
            log::Level::Error,
            format_args!("close() of the response raised:"),
            &traceback(py, &err),
        );
    }
}
