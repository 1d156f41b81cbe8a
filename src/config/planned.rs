//! The options issue 28 asks dragoman to implement whose runtime lives outside `config/`:
//! parsed and checked here into [`Planned`], announced at startup as not in effect yet, for the
//! runtime to read when it implements them.

use std::time::Duration;

use super::resolve::{bad_value, Resolved};
use super::*;

/// The options accepted and parsed whose runtime is not there yet (see [`Planned`]).
pub(crate) fn planned(r: &Resolved<'_>) -> Result<Planned, ConfigError> {
    Ok(Planned {
        logging: logging(r)?,
        socket_timeout: r.seconds("socket-timeout")?,
        http_timeout: r.seconds("http-timeout")?,
        manage_script_name: r.flag("manage-script-name", false),
        mounts: mounts(r)?,
        add_headers: add_headers(r)?,
        wsgi_file_wrapper: !r.flag("wsgi-disable-file-wrapper", false),
    })
}

/// The logging family.
fn logging(r: &Resolved<'_>) -> Result<Logging, ConfigError> {
    let millis = |name: &str| -> Result<Option<Duration>, ConfigError> {
        Ok(r.optional_count(name, "1000")?.map(Duration::from_millis))
    };
    let log_date = r.last("log-date").map(|s| match parse_bool(&s.value) {
        Some(true) => Some(String::new()),
        Some(false) => None,
        None if s.value.trim().is_empty() => Some(String::new()),
        None => Some(s.value.trim().to_string()),
    });
    Ok(Logging {
        disabled: r.flag("disable-logging", false),
        to: r.path("logto", "/var/log/mysite.log")?,
        to2: r.path("logto2", "/var/log/mysite.log")?,
        loggers: r.texts("logger"),
        req_loggers: r.texts("req-logger"),
        format: r.last("log-format").map(|s| s.value.clone()),
        log_4xx: r.flag("log-4xx", false),
        log_5xx: r.flag("log-5xx", false),
        slow: millis("log-slow")?,
        date: log_date.flatten(),
        master: r.flag("log-master", false),
        max_size: r.optional_count("log-maxsize", "104857600")?,
        backup_name: r.path("log-backupname", "/var/log/mysite.log.1")?,
        x_forwarded_for: r.flag("log-x-forwarded-for", false),
        reopen: r.flag("log-reopen", false),
        memory_report: match r.last("memory-report") {
            None => 0,
            Some(s) if s.value.trim().is_empty() => 1,
            Some(s) => match parse_bool(&s.value) {
                Some(on) => u8::from(on),
                None => match s.value.trim() {
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(bad_value(s, "1, 2 or true", "1")),
                },
            },
        },
    })
}

/// `add-header = Name: value`.
fn add_headers(r: &Resolved<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut add_headers = Vec::new();
    for s in r.all("add-header") {
        let (name, value) = s
            .value
            .split_once(':')
            .filter(|(n, _)| !n.trim().is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| bad_value(s, "NAME: VALUE", "X-Frame-Options: DENY"))?;
        add_headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(add_headers)
}

/// `mount = PREFIX=APP`.
fn mounts(r: &Resolved<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut mounts = Vec::new();
    for s in r.all("mount") {
        let (prefix, app) = s
            .value
            .split_once('=')
            .filter(|(p, a)| !p.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| {
                bad_value(
                    s,
                    "PREFIX=APP (a module, module:callable or file)",
                    "/api=api.wsgi:application",
                )
            })?;
        mounts.push((prefix.trim().to_string(), app.trim().to_string()));
    }
    Ok(mounts)
}
