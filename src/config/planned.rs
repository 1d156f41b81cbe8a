//! The options issue 28 asks dragoman to implement whose runtime lives outside `config/`:
//! parsed and checked here into [`Planned`], announced at startup as not in effect yet, for the
//! runtime to read when it implements them.

use super::resolve::{bad_value, Resolved};
use super::*;

/// The options accepted and parsed whose runtime is not there yet (see [`Planned`]).
pub(crate) fn planned(r: &Resolved<'_>) -> Result<Planned, ConfigError> {
    Ok(Planned {
        socket_timeout: r.seconds("socket-timeout")?,
        http_timeout: r.seconds("http-timeout")?,
        manage_script_name: r.flag("manage-script-name", false),
        mounts: mounts(r)?,
        add_headers: add_headers(r)?,
        wsgi_file_wrapper: !r.flag("wsgi-disable-file-wrapper", false),
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
