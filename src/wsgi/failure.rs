//! Why a request ended in a 500 (or a cut connection), and how it is logged.

use pyo3::prelude::*;

use crate::bridge::label::RequestLabel;
use crate::{error, log};

/// Why a request ended in a 500 (or, after the head was sent, a cut connection).
pub(crate) enum Failure {
    /// The application raised.
    Raised(PyErr),
    /// The `close()` of what the application returned raised.
    CloseRaised(PyErr),
    /// The application broke a rule of PEP 3333; the text names it.
    Rule(String),
}

impl Failure {
    /// Logs the failure and counts it as an exception in the worker's stats.
    pub(crate) fn report(&self, py: Python<'_>, label: &RequestLabel) {
        label.stats.exception();
        self.log(py, &label.app, &label.request.to_string());
    }

    /// Logs the failure: the traceback, or the rule, with the app and the request line.
    pub(crate) fn log(&self, py: Python<'_>, app: &str, request: &str) {
        match self {
            Failure::Raised(err) => log::write_block(
                log::Level::Error,
                format_args!("error in the application {app} while serving {request}:"),
                &traceback(py, err),
            ),
            Failure::CloseRaised(err) => log::write_block(
                log::Level::Error,
                format_args!(
                    "the application {app} broke PEP 3333 while serving {request}: close() of its \
                     response raised"
                ),
                &traceback(py, err),
            ),
            Failure::Rule(rule) => {
                error!("the application {app} broke PEP 3333 while serving {request}: {rule}")
            }
        }
    }
}

/// A Python exception formatted as the interpreter would print it.
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
