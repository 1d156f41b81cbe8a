//! `daemonize` and `daemonize2`: dragoman leaves the terminal and its session, as uWSGI does
//! (fork, setsid, fork again), and from then on stdin is `/dev/null` and stdout and stderr,
//! where every log line and the application's own output go, are the given file, opened for
//! appending. The command that started it returns once the daemon is about to serve (its
//! pidfile written): 0, or 1 if it exited first.
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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use pyo3::prelude::*;

use super::fork::{fork_plain, Spawned};

/// Opens the file the detached process writes to: appended to, created with mode 0640. Often
/// as root (with `daemonize`), so as the pidfile: a symbolic link at the path is not followed
/// and a file with another name (a hard link) is refused, since appending log lines to the file
/// a link leads to would change that file. A character device (`/dev/null`) is accepted.
pub(crate) fn open_log(path: &Path, option: &str) -> Result<File, String> {
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

/// The detached daemon's word to the command that started it: [`Detached::ready`] once the
/// pidfile names it and it is about to serve. The command waits for that word, so that when it
/// returns the pidfile is right; if the daemon exits first, the command says so and exits 1.
pub(crate) struct Detached {
    ready: OwnedFd,
}

impl Detached {
    /// Lets the starting command exit 0.
    pub(crate) fn ready(self) {
        let byte = 1u8;
        // SAFETY: writing one byte from a local to a pipe we own; a command already gone
        // (EPIPE, SIGPIPE ignored by Python) changes nothing.
        unsafe { libc::write(self.ready.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }
}

/// Detaches this process, which goes on as the daemon: forks, starts a new session, forks again
/// (so the daemon leads no session and can never get a controlling terminal back), then points
/// stdin at /dev/null and stdout and stderr at `log`. The first process waits for the daemon's
/// [`Detached::ready`] (exit 0) or its end (exit 1, naming `log`); the second exits at once.
pub(crate) fn detach(py: Python<'_>, log: &File, log_path: &Path) -> Result<Detached, String> {
    let devnull = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let (waiting, ready) = ready_pipe().map_err(|e| format!("cannot detach (pipe): {e}"))?;
    // What Python buffered would be written twice (by the parent at exit and the daemon).
    flush_python(py);
    for round in 0..2 {
        match fork_plain(py).map_err(|e| format!("cannot detach (fork): {e}"))? {
            // The parents leave without Python's finalisation or `vacuum`: the daemon owns the
            // pidfile and the sockets now.
            Spawned::Parent(_) if round == 0 => {
                drop(ready);
                let ok = wait_ready(&waiting);
                if !ok {
                    eprintln!(
                        "dragoman: error: the server exited while starting, after it detached; \
                         its log is {}",
                        log_path.display()
                    );
                }
                // SAFETY: _exit ends this process without running anything of it.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            // SAFETY: as above.
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
    drop(waiting);
    Ok(Detached { ready })
}

/// The pipe the daemon says it is ready on: both ends close-on-exec (no command the server
/// runs keeps it), and the daemon closes it before the first worker is forked.
fn ready_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded; we own both descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the starting command: waits for the daemon's byte (true) or the end of the pipe, when
/// the daemon exited without it (false).
fn wait_ready(waiting: &OwnedFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: a blocking read of one byte into a local from a pipe we own.
        let n = unsafe { libc::read(waiting.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 => return true,
            0 => return false,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
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
