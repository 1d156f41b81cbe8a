//! The options issue 28 asks dragoman to implement whose runtime lives outside `config/`:
//! parsed and checked here into [`Planned`], announced at startup as not in effect yet, for the
//! runtime to read when it implements them.

use std::time::Duration;

use super::defaults as d;
use super::resolve::{bad_value, count, Resolved};
use super::*;

/// The options accepted and parsed whose runtime is not there yet (see [`Planned`]).
pub(crate) fn planned(r: &Resolved<'_>) -> Result<Planned, ConfigError> {
    Ok(Planned {
        daemonize: r.path("daemonize", "/var/log/mysite.log")?,
        procname: procname(r),
        socket_timeout: r.seconds("socket-timeout")?,
        http_timeout: r.seconds("http-timeout")?,
        chown_socket: r.text("chown-socket").map(|v| match v.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (v, None),
        }),
        manage_script_name: r.flag("manage-script-name", false),
        mounts: mounts(r)?,
        add_headers: add_headers(r)?,
        attach_daemons: r.texts("attach-daemon"),
        cheaper: cheaper(r)?,
        crons: crons(r)?,
        hook_master_start: r.texts("hook-master-start"),
        pyargv: r
            .text("pyargv")
            .map(|a| a.split_whitespace().map(str::to_string).collect()),
        wsgi_file_wrapper: !r.flag("wsgi-disable-file-wrapper", false),
    })
}

/// Process titles.
fn procname(r: &Resolved<'_>) -> Procname {
    Procname {
        auto: r.flag("auto-procname", false),
        prefix: r
            .text("procname-prefix-spaced")
            .map(|p| format!("{p} "))
            .or_else(|| r.text("procname-prefix")),
        append: r.text("procname-append"),
        name: r.text("procname"),
        master: r.text("procname-master"),
    }
}

/// `cheaper` and its family; like uWSGI, a floor at or above `processes` is an error.
fn cheaper(r: &Resolved<'_>) -> Result<Option<Cheaper>, ConfigError> {
    Ok(match r.last("cheaper") {
        None => None,
        Some(s) => {
            let min = count(s, 0, "2")?;
            let processes = r.count("processes", 1, "4", d::PROCESSES)?;
            if min >= processes {
                return Err(ConfigError(format!(
                    "{}: cheaper ({min}) must be lower than processes ({processes}): it is the \
                     fewest workers to keep, and processes the most",
                    s.origin
                )));
            }
            Some(Cheaper {
                min,
                initial: r.count("cheaper-initial", 1, "2", min.max(1))?,
                step: r.count("cheaper-step", 1, "1", 1)?,
                overload: r
                    .seconds("cheaper-overload")?
                    .unwrap_or(Duration::from_secs(3)),
                algo: r.text("cheaper-algo").unwrap_or_else(|| "spare".into()),
            })
        }
    })
}

fn crons(r: &Resolved<'_>) -> Result<Vec<Cron>, ConfigError> {
    let mut crons = Vec::new();
    for (name, unique) in [("cron", false), ("unique-cron", true)] {
        for s in r.all(name) {
            crons.push(cron(s, unique)?);
        }
    }
    Ok(crons)
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

/// `cron = MIN HOUR DAY MONTH WEEKDAY COMMAND`, each field a number or -1 (any), as uWSGI
/// writes it; uWSGI's `-N` (every N) is kept as a negative number.
fn cron(s: &Setting, unique: bool) -> Result<Cron, ConfigError> {
    let example = "0 3 -1 -1 -1 /srv/mysite/bin/nightly";
    let mut fields = s.value.split_whitespace();
    let mut times = [0i32; 5];
    for t in times.iter_mut() {
        *t = fields
            .next()
            .and_then(|f| f.parse::<i32>().ok())
            .ok_or_else(|| {
                bad_value(
                    s,
                    "five time fields (minute hour day month weekday, -1 for any) and a command",
                    example,
                )
            })?;
    }
    let command: Vec<&str> = fields.collect();
    if command.is_empty() {
        return Err(bad_value(
            s,
            "a command after the five time fields",
            example,
        ));
    }
    Ok(Cron {
        minute: times[0],
        hour: times[1],
        day: times[2],
        month: times[3],
        weekday: times[4],
        command: command.join(" "),
        unique,
    })
}
