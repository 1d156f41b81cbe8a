//! uWSGI's `mount = PREFIX=APP`, `manage-script-name` and `no-default-app`: which applications
//! a process serves, and under which URL prefixes (the routing itself is [`crate::mount`]).
//!
//! What uWSGI 2.0 does, and what dragoman does with it:
//! - uWSGI loads the main application (`module`, `wsgi-file`) first, then each mount in order.
//!   A mount at `/` (or an empty prefix) is the main application's place: it is the main
//!   application when there is no other, and is not loaded when there is (as in uWSGI, where
//!   it would never be reached).
//! - With `manage-script-name`, uWSGI routes by the longest prefix of PATH_INFO on a segment
//!   boundary. Without it, uWSGI picks the application by the SCRIPT_NAME a front server sends
//!   (its http router sends none, so every request reaches the default application).
//!   dragoman is its own front: it routes by prefix either way, and says at startup that
//!   uWSGI would need `manage-script-name` for that.
//! - A request no mount takes goes to the main application; without one, uWSGI's "default
//!   app" is the first mount loaded (its SCRIPT_NAME then empty), unless `no-default-app`,
//!   where uWSGI answers an error and dragoman a 404.

use std::path::PathBuf;

use super::app::{AppSource, AppTarget, Mount};
use super::asgi::Interface;
use super::resolve::{bad_value, Resolved};
use super::source::{ConfigError, Notice, Setting};

/// Which applications a config serves (see [`Config::app`], [`Config::mounts`]).
///
/// [`Config::app`]: super::model::Config::app
/// [`Config::mounts`]: super::model::Config::mounts
pub(crate) struct Served {
    pub(crate) app: AppTarget,
    pub(crate) main_app: bool,
    pub(crate) mounts: Vec<Mount>,
}

/// Every `mount` line, parsed and checked, in the order given; a root mount has the prefix `""`.
/// A prefix that is an unset `$(VAR)` or `%(name)` is left out with a warning: uWSGI keeps it
/// as written, a mount point no path starts with, which it never serves.
pub(crate) fn mounts(
    r: &Resolved<'_>,
    default_callable: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<Mount>, ConfigError> {
    let mut mounts = Vec::new();
    for s in r.all("mount") {
        let example = "/api=api.wsgi:application";
        let expected = "PREFIX=APP: a URL prefix starting with `/`, then `=` and the application \
                        (a module, module:callable or a Python file)";
        let (prefix, app) = s
            .value
            .split_once('=')
            .filter(|(_, a)| !a.trim().is_empty())
            .ok_or_else(|| bad_value(s, expected, example))?;
        let unresolved = prefix.trim().starts_with("$(") || prefix.trim().starts_with("%(");
        if unresolved && prefix.trim().ends_with(')') {
            warnings.push(format!(
                "{}: `mount = {}`: the prefix {} names nothing set, so, as in uWSGI (where no \
                 path would ever reach it), {} is not mounted; set it (as the deployment this \
                 file comes from does) to mount it",
                s.origin,
                s.value.trim(),
                prefix.trim(),
                app.trim()
            ));
            continue;
        }
        let prefix = crate::mount::normalize(prefix)
            .ok_or_else(|| bad_value(s, expected, example))?
            .to_string();
        mounts.push(Mount {
            prefix,
            target: target(s, app.trim(), default_callable)?,
        });
    }
    Ok(mounts)
}

/// The application a mount names: a file when it looks like a path (`app.py`, `site/wsgi.py`,
/// `x.wsgi`, optionally `:callable`), else `module[:callable]`; the callable is `callable`'s
/// (as uWSGI's mount loader uses it) unless given.
fn target(s: &Setting, app: &str, default_callable: &str) -> Result<AppTarget, ConfigError> {
    let example = "/api=api.wsgi:application";
    if app.ends_with(".ini") {
        return Err(bad_value(
            s,
            "a WSGI module or Python file after `=` (dragoman does not load PasteDeploy .ini \
             applications)",
            example,
        ));
    }
    let split_factory = |name: &str| match name.strip_suffix("()") {
        Some(n) => (n.to_string(), true),
        None => (name.to_string(), false),
    };
    let (source, name) = if app.contains('/') || app.ends_with(".py") || app.ends_with(".wsgi") {
        let (file, name) = match app.rsplit_once(':') {
            Some((f, n)) if is_identifier(n.trim().trim_end_matches("()")) => (f, n.trim()),
            _ => (app, default_callable),
        };
        (AppSource::File(PathBuf::from(file)), name)
    } else {
        let (module, name) = app.split_once(':').unwrap_or((app, default_callable));
        let (module, name) = (module.trim(), name.trim());
        if module.is_empty()
            || !module.split('.').all(is_identifier)
            || !is_identifier(name.trim_end_matches("()"))
        {
            return Err(bad_value(
                s,
                "PREFIX=APP, the application a module, module:callable or a Python file",
                example,
            ));
        }
        (AppSource::Module(module.to_string()), name)
    };
    let (callable, factory) = split_factory(name);
    Ok(AppTarget {
        source,
        callable,
        origin: s.origin.clone(),
        factory,
    })
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Decides what is served: the main application (a root mount is one when nothing else is),
/// and the mounts under a prefix. `None` when there is no application at all.
pub(crate) fn arrange(
    r: &Resolved<'_>,
    main: Option<AppTarget>,
    all: Vec<Mount>,
    interface: Interface,
    warnings: &mut Vec<String>,
    notices: &mut Vec<Notice>,
) -> Result<Option<Served>, ConfigError> {
    let mut main = main;
    let mut mounts: Vec<Mount> = Vec::new();
    for m in all {
        if m.prefix.is_empty() {
            match &main {
                None => main = Some(m.target),
                Some(first)
                    if first.source == m.target.source && first.callable == m.target.callable => {}
                Some(first) => warnings.push(format!(
                    "{}: `mount` puts {} at /, where the main application {} ({}) already is; \
                     as in uWSGI, the main application serves / and {} is not loaded; remove \
                     one of the two",
                    m.target.origin,
                    m.target.describe(),
                    first.describe(),
                    first.origin,
                    m.target.describe()
                )),
            }
        } else if let Some(first) = mounts.iter().find(|x| x.prefix == m.prefix) {
            warnings.push(format!(
                "{}: `mount` gives {} a second application ({}; the first is {}, {}); as in \
                 uWSGI, the first serves it and {} is not loaded; remove one of the two",
                m.target.origin,
                m.prefix,
                m.target.describe(),
                first.target.describe(),
                first.target.origin,
                m.target.describe()
            ));
        } else {
            mounts.push(m);
        }
    }
    if let Some(first) = mounts.first() {
        if interface != Interface::Wsgi {
            let why = match (r.last("asgi"), r.last("interface")) {
                (Some(a), _) => format!("`asgi = {}` at {}", a.value.trim(), a.origin),
                (None, Some(i)) => format!("`interface = {}` at {}", i.value.trim(), i.origin),
                (None, None) => "the interface option".to_string(),
            };
            return Err(ConfigError(format!(
                "{}: option 'mount' ({}={}) serves a WSGI application under a prefix, but the \
                 main application is served as ASGI ({why}); dragoman mounts applications only \
                 beside a WSGI one. Fix: serve the ASGI application alone and route {} inside \
                 it (Starlette's and FastAPI's `Mount`, Django's URLconf), or serve both as \
                 WSGI (`module =` with `interface = wsgi`)",
                first.target.origin,
                first.prefix,
                first.target.describe(),
                first.prefix
            )));
        }
        if !r.flag("manage-script-name", false) {
            warnings.push(format!(
                "{}: `mount` without `manage-script-name = true`: uWSGI would pick the \
                 application by the SCRIPT_NAME a front server sends (its own http router sends \
                 none, so every request would reach the main application); dragoman is its \
                 own front and routes by the path prefix anyway. Add `manage-script-name = \
                 true` to say so, and to keep the file meaning the same under uWSGI",
                first.target.origin
            ));
        }
    }
    let Some(first) = mounts.first() else {
        return Ok(main.map(|app| Served {
            app,
            main_app: true,
            mounts,
        }));
    };
    if let Some(app) = main {
        return Ok(Some(Served {
            app,
            main_app: true,
            mounts,
        }));
    }
    if !r.flag("no-default-app", false) {
        notices.push(Notice {
            not_yet: false,
            text: format!(
                "no main application: a request no mount takes goes to the first mount, {} at \
                 {} (with an empty SCRIPT_NAME), as uWSGI's default application; \
                 `no-default-app = true` answers it with 404 instead",
                first.target.describe(),
                first.prefix
            ),
        });
    }
    Ok(Some(Served {
        app: first.target.clone(),
        main_app: false,
        mounts,
    }))
}
