//! `wsgi.errors` (into the server log) and `wsgi.file_wrapper`.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::log;

/// `wsgi.errors`: a text stream whose complete lines become server log lines.
#[pyclass(frozen, module = "dragoman", name = "ErrorStream")]
#[derive(Default)]
pub(crate) struct ErrorStream {
    pending: Mutex<String>,
}

impl ErrorStream {
    fn emit_lines(&self, flush_all: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            log::write(
                log::Level::Error,
                format_args!("{}", line.trim_end_matches('\n')),
            );
        }
        if flush_all && !pending.is_empty() {
            let line = std::mem::take(&mut *pending);
            log::write(log::Level::Error, format_args!("{line}"));
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &str) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(text);
        self.emit_lines(false);
        text.chars().count()
    }

    fn writelines(&self, lines: Vec<String>) {
        for line in lines {
            self.write(&line);
        }
    }

    fn flush(&self) {
        self.emit_lines(true);
    }
}

/// `wsgi.file_wrapper(filelike, block_size=8192)`: iterates a file in blocks and closes it
/// with the response. Django's FileResponse uses it.
#[pyclass(frozen, module = "dragoman", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    #[pyo3(get)]
    pub(crate) filelike: Py<PyAny>,
    #[pyo3(get)]
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size=8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        FileWrapper {
            filelike,
            block_size: block_size.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.block_size,))?;
        let empty = match block.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => block.len().map(|n| n == 0).unwrap_or(false),
        };
        Ok(if empty { None } else { Some(block) })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if let Some(close) = filelike.getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}
