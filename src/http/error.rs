//! The error a streaming body stops with, in a file of its own: the body kinds
//! ([`super::body`]) hold the file body ([`super::file`]), and both name it, as do the
//! bridges' streams.

use std::fmt;

/// Why a streaming body stopped early. hyper closes the connection when it sees one, so the
/// client can tell the response is incomplete.
#[derive(Debug)]
pub(crate) struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}
