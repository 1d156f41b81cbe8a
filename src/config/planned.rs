//! The options issue 28 asks dragoman to implement whose runtime lives outside `config/`:
//! parsed and checked here into [`Planned`], announced at startup as not in effect yet, for the
//! runtime to read when it implements them.

use super::resolve::{bad_value, Resolved};
use super::*;

/// The options accepted and parsed whose runtime is not there yet (see [`Planned`]).
pub(crate) fn planned(r: &Resolved<'_>) -> Result<Planned, ConfigError> {
    Ok(Planned {
        manage_script_name: r.flag("manage-script-name", false),
        mounts: mounts(r)?,
    })
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
