//! Running as another user: `umask`, and `uid`/`gid` applied after the sockets are bound, so
//! a site can bind port 80 as root and serve as www-data.

use std::ffi::CString;

use crate::config::Origin;

/// Sets the process umask.
pub(crate) fn set_umask(mask: u32) {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// A user written by name or number: its uid and primary group.
pub(crate) fn resolve_user(name: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    if let Ok(uid) = name.parse::<libc::uid_t>() {
        // SAFETY: getpwuid returns a pointer to static storage or null; read at once.
        let pw = unsafe { libc::getpwuid(uid) };
        let gid = if pw.is_null() {
            uid
        } else {
            // SAFETY: non-null means a valid passwd record.
            unsafe { (*pw).pw_gid }
        };
        return Some((uid, gid));
    }
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid C string; the result is static storage or null, read at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null means a valid passwd record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A group written by name or number.
pub(crate) fn resolve_group(name: &str) -> Option<libc::gid_t> {
    if let Ok(gid) = name.parse::<libc::gid_t>() {
        return Some(gid);
    }
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid C string; the result is static storage or null, read at once.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    // SAFETY: non-null means a valid group record.
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

/// Switches to the configured group and user (group first: after setuid it is not allowed).
/// Without `gid`, the user's primary group is used.
pub(crate) fn drop_to(
    uid: Option<&(String, Origin)>,
    gid: Option<&(String, Origin)>,
) -> Result<(), String> {
    let user = match uid {
        Some((name, origin)) => Some(resolve_user(name).ok_or_else(|| {
            format!("{origin}: option 'uid' names {name:?}, which is no user on this machine; give a user name or number")
        })?),
        None => None,
    };
    let group = match gid {
        Some((name, origin)) => Some(resolve_group(name).ok_or_else(|| {
            format!("{origin}: option 'gid' names {name:?}, which is no group on this machine; give a group name or number")
        })?),
        None => user.map(|(_, primary)| primary),
    };
    if let Some(gid) = group {
        // SAFETY: setgroups with one valid gid; setgid with a plain number.
        let ok = unsafe { libc::setgroups(1, &gid) == 0 && libc::setgid(gid) == 0 };
        if !ok {
            return Err(format!(
                "cannot switch to group {gid}: {}; only root can change groups",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some((uid, _)) = user {
        // SAFETY: setuid with a plain number; checked.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!(
                "cannot switch to user {uid}: {}; only root can change users",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
