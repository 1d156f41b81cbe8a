//! The server log's lines, in the shape gunicorn users already grep for:
//! `[2026-11-21 10:00:00 +0000] [1234] [INFO] message`. A worker's lines also say which worker
//! wrote them (`[1235] [worker 1] [INFO] ...`), and so do the lines its Python code prints
//! ([`super::python`]) and its request lines ([`crate::access`]): one stream, each line marked.
//!
//! Each line (or block, a traceback) is handed to the output in one piece ([`super::output`]),
//! which writes it with one `write` call: lines from different processes do not interleave.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{output, stamp};

/// How bad an event is; printed in the brackets after the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// This process's worker number (1-based); 0 in the master.
static WORKER: AtomicUsize = AtomicUsize::new(0);

/// Marks this process's lines as worker `id`'s (called once, right after the fork).
pub(crate) fn set_worker(id: usize) {
    WORKER.store(id, Ordering::Relaxed);
}

/// This process's worker number, 0 in the master.
pub(crate) fn worker() -> usize {
    WORKER.load(Ordering::Relaxed)
}

/// `[stamp] [pid] ` and, in a worker, `[worker N] `: what every line starts with.
pub(crate) fn push_prefix(out: &mut String) {
    use fmt::Write as _;
    let _ = write!(out, "[{}] [{}] ", stamp::header_now(), std::process::id());
    match worker() {
        0 => {}
        id => {
            let _ = write!(out, "[worker {id}] ");
        }
    }
}

/// Writes one log line. Use the `info!`, `warn!` and `error!` macros rather than calling this.
pub(crate) fn write(level: Level, args: fmt::Arguments<'_>) {
    use fmt::Write as _;
    let mut line = String::with_capacity(128);
    push_prefix(&mut line);
    let _ = write!(line, "[{}] {}", level.label(), args);
    if !line.ends_with('\n') {
        line.push('\n');
    }
    output::deliver(libc::STDERR_FILENO, line.as_bytes());
}

/// Writes text that is already formatted (a Python traceback, say) with a header line, so that
/// multi-line blocks stay together in the log.
pub(crate) fn write_block(level: Level, header: fmt::Arguments<'_>, block: &str) {
    let mut text = format!("{header}\n{block}");
    if text.ends_with('\n') {
        text.pop();
    }
    write(level, format_args!("{text}"));
}

/// Writes complete lines of text some code printed (Python's `sys.stdout` and `sys.stderr`),
/// each with the line prefix, in one piece, to `fd` (1 or 2).
pub(crate) fn write_printed(fd: i32, text: &str) {
    let mut prefix = String::with_capacity(64);
    push_prefix(&mut prefix);
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        out.push_str(&prefix);
        out.push_str(line);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    output::deliver(fd, out.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_names_the_process_and_in_a_worker_the_worker() {
        let mut out = String::new();
        push_prefix(&mut out);
        let pid = std::process::id();
        assert!(out.starts_with('['), "{out}");
        assert!(out.ends_with(&format!("] [{pid}] ")), "{out}");
        // Worker numbers are per process; the unit tests run in one, so set and put back.
        set_worker(3);
        let mut out = String::new();
        push_prefix(&mut out);
        set_worker(0);
        assert!(out.ends_with(&format!("] [{pid}] [worker 3] ")), "{out}");
    }
}
