//! `daemonize` and `daemonize2`: dragoman leaves the terminal and its session, as uWSGI does
//! (fork, setsid, fork again; the first two processes exit 0), and from then on stdin is
//! `/dev/null` and stdout and stderr, where every log line and the application's own output
//! go, are the given file, opened for appending.
//!
//! Where uWSGI detaches first of all, dragoman detaches once the sockets are bound (with
//! `daemonize`) or the application is preloaded (with `daemonize2`, opening the file as the
//! service user): a configuration error, an address in use or a virtualenv that does not fit
//! is still printed on the terminal, with a non-zero exit code. The pidfile names the detached
//! master (with `daemonize2`, it is rewritten through the descriptor it was written with), and
//! `vacuum` is done by that master when it exits. uWSGI also sets the umask to 0 when it
//! detaches; dragoman keeps it (`umask` sets it), so sockets and files are not made world-
//! writable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use pyo3::prelude::*;

use super::fork::{fork_plain, Spawned};

/// Opens the file the detached process writes to: appended to, created with mode 0640. Often
/// as root (with `daemonize`), so as the pidfile: a symbolic link at the path is not followed
/// and a file with another name (a hard link) is refused, since appending log lines to the file
/// a link leads to would change that file. A character device (`/dev/null`) is accepted.
pub fn open_log(path: &Path, option: &str) -> Result<File, String> {
    let refuse = |why: &str| {
        format!(
            "cannot open the log file {} (option '{option}'): {why}",
            path.display()
        )
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse(
                "it is a symbolic link, which dragoman does not write through; give the real path",
            ),
            _ => refuse(&format!(
                "{e}; check that its directory exists and is writable"
            )),
        })?;
    let meta = file.metadata().map_err(|e| refuse(&e.to_string()))?;
    if meta.file_type().is_char_device() {
        return Ok(file);
    }
    if !meta.is_file() {
        return Err(refuse(
            "it is not a regular file; remove it, or name another path",
        ));
    }
    if meta.nlink() > 1 {
        return Err(refuse(
            "the file has another name (a hard link), and appending to it would change that \
             file too; remove it, or name another path",
        ));
    }
    Ok(file)
}

/// Detaches this process, which goes on as the daemon: forks (the parent exits 0), starts a
/// new session, forks again (so the daemon leads no session and can never get a controlling
/// terminal back), then points stdin at /dev/null and stdout and stderr at `log`.
pub fn detach(py: Python<'_>, log: &File) -> Result<(), String> {
    let devnull = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    // What Python buffered would be written twice (by the parent at exit and the daemon).
    flush_python(py);
    for round in 0..2 {
        match fork_plain(py).map_err(|e| format!("cannot detach (fork): {e}"))? {
            // The parent leaves at once: no Python finalisation, no `vacuum` (the daemon owns
            // the pidfile and the sockets now).
            // SAFETY: _exit ends this process without running anything of it.
            Spawned::Parent(_) => unsafe { libc::_exit(0) },
            Spawned::Child if round == 0 => {
                // SAFETY: setsid has no preconditions; this child leads no group yet.
                if unsafe { libc::setsid() } < 0 {
                    return Err(format!(
                        "cannot detach (setsid): {}",
                        io::Error::last_os_error()
                    ));
                }
            }
            Spawned::Child => {}
        }
    }
    for (from, to) in [
        (devnull.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 between descriptors this process owns; the standard ones are replaced.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(format!(
                "cannot detach (dup2): {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Flushes Python's sys.stdout and sys.stderr.
fn flush_python(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            if let Ok(stream) = sys.getattr(name) {
                let _ = stream.call_method0("flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_is_appended_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.log");
        std::fs::write(&path, "before\n").unwrap();
        let mut f = open_log(&path, "daemonize").unwrap();
        io::Write::write_all(&mut f, b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\nafter\n");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let sym = dir.path().join("sym.log");
        std::os::unix::fs::symlink(&victim, &sym).unwrap();
        assert!(open_log(&sym, "daemonize")
            .unwrap_err()
            .contains("symbolic link"));
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&victim, &hard).unwrap();
        assert!(open_log(&hard, "daemonize")
            .unwrap_err()
            .contains("hard link"));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(open_log(Path::new("/dev/null"), "daemonize").is_ok());
        assert!(open_log(dir.path(), "daemonize").is_err());
    }
}
