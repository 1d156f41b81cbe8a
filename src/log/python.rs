//! Python's `sys.stdout` and `sys.stderr`, put in the log's shape: what the application prints,
//! logs with `logging` (whose handlers write to `sys.stderr`) or leaves as a traceback comes
//! out as lines marked like the server's own (`[stamp] [pid] [worker N] ...`), in the same
//! stream as the request lines, so a line says which worker wrote it.
//!
//! Each stream keeps a partial line until its newline (or a flush), and writes complete lines
//! in one piece, so lines from the application's threads and from other workers do not
//! interleave. Anything else a stream has (`encoding`, `isatty()`, `buffer`, ...) is the
//! original stream's: code that writes bytes to `sys.stdout.buffer` still can, unmarked.

use std::sync::Mutex;

use pyo3::prelude::*;

use super::line;

/// A partial line longer than this is written without waiting for its newline.
const LONGEST_PENDING: usize = 64 * 1024;

/// `sys.stdout` or `sys.stderr` in a dragoman process.
#[pyclass(frozen, module = "dragoman", name = "LogStream")]
pub(crate) struct LogStream {
    /// 1 or 2: where the lines go.
    fd: i32,
    /// The stream this one replaced.
    original: Py<PyAny>,
    /// Text written since the last complete line.
    pending: Mutex<String>,
}

impl LogStream {
    /// Takes the complete lines out of `pending` (all of it when `all`).
    fn take_lines(&self, all: bool) -> Option<String> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return None;
        }
        if all || pending.len() > LONGEST_PENDING {
            return Some(std::mem::take(&mut *pending));
        }
        let end = pending.rfind('\n')? + 1;
        let rest = pending.split_off(end);
        Some(std::mem::replace(&mut *pending, rest))
    }

    fn emit(&self, py: Python<'_>, all: bool) {
        if let Some(lines) = self.take_lines(all) {
            let fd = self.fd;
            // A write can block (a full pipe, a slow terminal): not with the GIL held.
            py.detach(|| line::write_printed(fd, &lines));
        }
    }
}

#[pymethods]
impl LogStream {
    fn write(&self, py: Python<'_>, text: &str) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(text);
        if text.contains('\n') || text.len() > LONGEST_PENDING {
            self.emit(py, false);
        }
        text.chars().count()
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line: String = line?.extract()?;
            self.write(py, &line);
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) {
        self.emit(py, true);
    }

    fn fileno(&self) -> i32 {
        self.fd
    }

    /// Everything else is the original stream's.
    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        self.original.getattr(py, name)
    }
}

/// Puts the streams in place (in the master, before the application is loaded, so that
/// logging handlers made while it loads, or before a fork with `preload`, hold them).
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    for (name, fd) in [
        ("stdout", libc::STDOUT_FILENO),
        ("stderr", libc::STDERR_FILENO),
    ] {
        let original = sys.getattr(name)?;
        if original.is_none() || original.is_instance_of::<LogStream>() {
            continue;
        }
        let stream = LogStream {
            fd,
            original: original.unbind(),
            pending: Mutex::new(String::new()),
        };
        sys.setattr(name, Py::new(py, stream)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> LogStream {
        Python::initialize();
        Python::attach(|py| LogStream {
            fd: 2,
            original: py.None(),
            pending: Mutex::new(String::new()),
        })
    }

    #[test]
    fn complete_lines_go_out_and_a_partial_one_waits() {
        let s = stream();
        s.pending.lock().unwrap().push_str("a\nb\nc");
        assert_eq!(s.take_lines(false).as_deref(), Some("a\nb\n"));
        assert_eq!(s.take_lines(false), None);
        assert_eq!(s.take_lines(true).as_deref(), Some("c"));
        assert_eq!(s.take_lines(true), None);
    }
}
