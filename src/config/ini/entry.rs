//! What the reader gives: the configuration's lines, and the problems found in them.

use std::path::PathBuf;

/// One `key = value` line of the configuration, after logic and expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// `None` for a bare key (`master` alone), which means true.
    pub(crate) value: Option<String>,
    pub(crate) line: usize,
    /// The included file the line is in; `None` for the file the reader was asked for.
    pub(crate) file: Option<PathBuf>,
    /// Set with `set-placeholder`/`set-ph`: a placeholder even if it shares an option's name.
    pub(crate) placeholder: bool,
}

impl Entry {
    pub(super) fn error(&self, message: String) -> IniError {
        IniError {
            line: self.line,
            message,
            file: self.file.clone(),
        }
    }
}

/// A problem in an ini file, with the line it is on (0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniError {
    pub(crate) line: usize,
    pub(crate) message: String,
    /// The included file it is in; `None` for the file the reader was asked for.
    pub(crate) file: Option<PathBuf>,
}
