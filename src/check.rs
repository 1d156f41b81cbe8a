//! `dragoman --check`: everything dragoman would find wrong at startup, all of it rather than
//! the first thing, without serving: the configuration (every bad value, refused or unknown
//! key, in every source), the users and groups named, the certificates, the interpreter's
//! paths and virtualenv, and the application itself, imported as the service user would
//! import it. Exit 0 when nothing is wrong, 1 otherwise. Nothing is bound and nothing is
//! started.

use pyo3::prelude::*;

use crate::config::{Config, ConfigError};
use crate::master::privileges;
use crate::{app, interp, tls};

/// Runs the check; the exit code.
pub(crate) fn run(py: Python<'_>, loaded: Result<Box<Config>, ConfigError>) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut imported = None;
    match loaded {
        Err(e) => {
            problems.extend(e.lines().map(str::to_string));
            warnings
                .push("the application was not imported: the configuration has errors".to_string());
        }
        Ok(config) => {
            warnings.extend(config.warnings.iter().cloned());
            warnings.extend(
                config
                    .notices
                    .iter()
                    .filter(|n| n.not_yet)
                    .map(|n| n.text.clone()),
            );
            for mount in &config.statics.mounts {
                if !mount.target.exists() {
                    warnings.push(format!(
                        "{}: {} does not exist (requests under {} go to the application)",
                        mount.origin,
                        mount.target.display(),
                        mount.prefix
                    ));
                }
            }
            problems.extend(users(&config));
            if let Err(why) = tls::prepare(&config) {
                problems.push(why);
            }
            match import(py, &config, &mut warnings) {
                Ok(()) => imported = Some(config.app.describe()),
                Err(why) => problems.push(why),
            }
        }
    }
    for w in &warnings {
        eprintln!("dragoman: warning: {w}");
    }
    for p in &problems {
        eprintln!("dragoman: error: {p}");
    }
    match (problems.len(), imported) {
        (0, Some(app)) => {
            println!("dragoman: the configuration is valid and the application {app} loads");
            0
        }
        (n, _) => {
            eprintln!(
                "dragoman: {n} problem{} found",
                if n == 1 { "" } else { "s" }
            );
            1
        }
    }
}

/// The users and groups named (`uid`, `gid`, `chown-socket`) exist.
fn users(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let missing = |what: &str, option: &str, name: &str, origin: &dyn std::fmt::Display| {
        format!(
            "{origin}: option '{option}' names {name:?}, which is no {what} on this machine; give \
             a {what} name or number"
        )
    };
    if let Some((name, origin)) = &config.uid {
        if privileges::resolve_user(name).is_none() {
            problems.push(missing("user", "uid", name, origin));
        }
    }
    if let Some((name, origin)) = &config.gid {
        if privileges::resolve_group(name).is_none() {
            problems.push(missing("group", "gid", name, origin));
        }
    }
    if let Some((value, origin)) = &config.chown_socket {
        let (user, group) = value.split_once(':').unwrap_or((value, ""));
        if privileges::resolve_user(user).is_none() {
            problems.push(missing("user", "chown-socket", user, origin));
        }
        if !group.is_empty() && privileges::resolve_group(group).is_none() {
            problems.push(missing("group", "chown-socket", group, origin));
        }
    }
    problems
}

/// Prepares the interpreter as startup does and imports the application: as the service
/// user when run as root with `uid`/`gid` (nothing of the application runs as root), as the
/// current user otherwise (with a warning when they differ).
fn import(py: Python<'_>, config: &Config, warnings: &mut Vec<String>) -> Result<(), String> {
    let prepared = interp::prepare(py, config)?;
    if config.uid.is_some() || config.gid.is_some() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            privileges::drop_to(config.uid.as_ref(), config.gid.as_ref())?;
        } else {
            warnings.push(format!(
                "not root: the application is imported as the current user, not as {}",
                config
                    .uid
                    .as_ref()
                    .or(config.gid.as_ref())
                    .map_or("", |(name, _)| name.as_str())
            ));
        }
    }
    interp::set_import_paths(py, config, &prepared)?;
    app::preload(py, config).map(|_| ()).map_err(|_| {
        if config.mounts.is_empty() {
            format!(
                "{}: the application {} does not load (the traceback is above)",
                config.app.origin,
                config.app.describe()
            )
        } else {
            format!(
                "the applications {} do not all load (the one that does not, with its line and \
                 traceback, is above)",
                config.describe_apps()
            )
        }
    })
}
