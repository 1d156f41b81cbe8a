//! The applications to serve: the main one, and those mounted under a URL prefix.

use std::path::PathBuf;

use super::source::Origin;

/// Where the WSGI application comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppSource {
    /// An importable module (`mysite.wsgi`).
    Module(String),
    /// A Python file loaded as a module (`wsgi-file`).
    File(PathBuf),
}

/// The application to serve: where it is and the callable's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppTarget {
    pub(crate) source: AppSource,
    pub(crate) callable: String,
    pub(crate) origin: Origin,
    /// `pkg.mod:create_app()`: the callable is a factory, called once (with no arguments) to
    /// get the WSGI application, as uWSGI and gunicorn allow.
    pub(crate) factory: bool,
}

impl AppTarget {
    /// Stands for the application while the rest of a config with errors is read (never run).
    pub(super) fn placeholder() -> AppTarget {
        AppTarget {
            source: AppSource::Module(String::new()),
            callable: String::new(),
            origin: Origin::Positional,
            factory: false,
        }
    }

    fn call(&self) -> &'static str {
        if self.factory {
            "()"
        } else {
            ""
        }
    }

    /// `mysite.wsgi:application` or `app.py:application`, as users write it.
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            AppSource::Module(m) => format!("{m}:{}{}", self.callable, self.call()),
            AppSource::File(f) => format!("{}:{}{}", f.display(), self.callable, self.call()),
        }
    }
}

/// `mount = PREFIX=APP`: an application served under a URL prefix (SCRIPT_NAME is the
/// prefix, PATH_INFO the rest of the path; see [`crate::mount`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Starts with `/`, no trailing `/`; `""` only while the config is read (the root).
    pub(crate) prefix: String,
    /// The application; its origin is the `mount` line's.
    pub(crate) target: AppTarget,
}
