//! Process titles (`auto-procname`, `procname*`), so that `ps` and `top` tell the master from
//! the workers: `dragoman master`, `dragoman worker 2`, as uWSGI names them (`uWSGI master`,
//! `uWSGI worker 2`), with its prefix, suffix and name options.
//!
//! Linux keeps two names for a process. The kernel's (`comm`, 15 bytes, what `top` and
//! `pgrep` show) is set with `prctl(PR_SET_NAME)`. The command line (`/proc/PID/cmdline`, what
//! `ps` shows) is the memory the kernel placed the program's arguments in; it is rewritten in
//! place, as setproctitle does. The title must fit in the space of the original command line
//! (any `dragoman --ini site.ini` has room for `dragoman worker 12`); a longer one is cut. The
//! environment that follows it is not used: C code reads it through `environ` (Python's
//! `os.environ` is a copy), and moving it is not worth a longer title.

use crate::config::Procname;

/// What a process is, for its title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Master,
    /// The worker at this position.
    Worker(usize),
}

/// The title of a process in `role`, or `None` when no procname option is set (the command
/// line is then left as it was). As in uWSGI: `procname-master` names the master, `procname`
/// the workers (and the master without `procname-master`), both within the prefix and suffix.
pub(super) fn title(names: &Procname, role: Role) -> Option<String> {
    let enabled = names.auto
        || names.prefix.is_some()
        || names.append.is_some()
        || names.name.is_some()
        || names.master.is_some();
    if !enabled {
        return None;
    }
    let base = match role {
        Role::Master => names
            .master
            .clone()
            .or_else(|| names.name.clone())
            .unwrap_or_else(|| "dragoman master".into()),
        Role::Worker(id) => names
            .name
            .clone()
            .unwrap_or_else(|| format!("dragoman worker {id}")),
    };
    Some(format!(
        "{}{base}{}",
        names.prefix.as_deref().unwrap_or_default(),
        names.append.as_deref().unwrap_or_default()
    ))
}

/// Names this process `title`: the kernel's name and the command line.
pub(super) fn set(title: &str) {
    #[cfg(target_os = "linux")]
    {
        if let Ok(name) = std::ffi::CString::new(title.replace('\0', " ")) {
            // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel copies at most 16
            // bytes of it); `name` lives across the call.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        }
        if let Some((start, end)) = command_line_area() {
            write_command_line(start, end, title.as_bytes());
        }
    }
}

/// Where this process's original command line is in memory: fields 48 and 49 of
/// `/proc/self/stat` (`arg_start`, `arg_end`; Linux 3.5 and later).
#[cfg(target_os = "linux")]
fn command_line_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The name in parentheses may hold spaces and parentheses: count from the last one.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (the state), so field N is fields[N - 3].
    let start: usize = fields.get(45)?.parse().ok()?;
    let end: usize = fields.get(46)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// Writes `title` over the command line area `[start, end)`: the title, NULs, and a space in
/// the last byte. The kernel reads a command line whose last byte is not a NUL as one string
/// up to its first NUL (the setproctitle convention), so `/proc/PID/cmdline` is the title
/// alone, not the title followed by empty arguments.
#[cfg(target_os = "linux")]
fn write_command_line(start: usize, end: usize, title: &[u8]) {
    let len = end - start;
    if len < 3 {
        return;
    }
    let n = title.len().min(len - 2);
    let area = start as *mut u8;
    // SAFETY: [start, end) is the command line the kernel copied onto this process's stack
    // at exec, mapped read-write for the life of the process (fork gives each process its own
    // copy). Nothing holds a Rust reference into it: CPython copied its arguments at startup;
    // glibc's `program_invocation_name` points into it and simply reads the title from then
    // on. The writes stay within [start, end).
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, len - n);
        *area.add(len - 1) = b' ';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: impl FnOnce(&mut Procname)) -> Procname {
        let mut n = Procname::default();
        f(&mut n);
        n
    }

    #[test]
    fn titles_follow_uwsgi() {
        assert_eq!(title(&Procname::default(), Role::Master), None);
        let auto = names(|n| n.auto = true);
        assert_eq!(title(&auto, Role::Master).unwrap(), "dragoman master");
        assert_eq!(title(&auto, Role::Worker(3)).unwrap(), "dragoman worker 3");
        // Any procname option turns the titles on (uWSGI's UWSGI_OPT_PROCNAME).
        let prefixed = names(|n| n.prefix = Some("mysite ".into()));
        assert_eq!(
            title(&prefixed, Role::Worker(1)).unwrap(),
            "mysite dragoman worker 1"
        );
        let all = names(|n| {
            n.prefix = Some("mysite ".into());
            n.append = Some("-prod".into());
            n.name = Some("wk".into());
        });
        // procname names the master too, unless procname-master does.
        assert_eq!(title(&all, Role::Master).unwrap(), "mysite wk-prod");
        assert_eq!(title(&all, Role::Worker(2)).unwrap(), "mysite wk-prod");
        let master = names(|n| n.master = Some("boss".into()));
        assert_eq!(title(&master, Role::Master).unwrap(), "boss");
        assert_eq!(
            title(&master, Role::Worker(2)).unwrap(),
            "dragoman worker 2"
        );
    }

    #[test]
    fn the_title_is_cut_to_the_area_and_ends_in_a_space() {
        let mut area = *b"python3\0-m\0dragoman\0";
        let (start, end) = (
            area.as_mut_ptr() as usize,
            area.as_ptr() as usize + area.len(),
        );
        write_command_line(start, end, b"dragoman worker 1");
        assert_eq!(&area, b"dragoman worker 1\0\0 ");
        write_command_line(
            start,
            end,
            b"a much longer title than the area has room for",
        );
        assert_eq!(&area, b"a much longer titl\0 ");
        write_command_line(start, end, b"m");
        assert_eq!(&area, b"m\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0 ");
    }
}
