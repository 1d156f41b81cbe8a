//! Starting a shell command as a child of the master (an attached daemon, a cron job, a hook),
//! with its stdout and stderr on a pipe the master reads from its loop (`output.rs`).
//!
//! fork(2) then execve(2) of `/bin/sh -c COMMAND`, as uWSGI does it. Everything the child needs
//! is made before the fork (the C strings, the pipe, /dev/null), so that between fork and exec
//! it only makes system calls: the master may hold Python's and the allocator's locks at the
//! fork, and a child that took one would wait forever. Signals are blocked across the fork,
//! as for workers, and the child puts every handler back to its default before it unblocks
//! them: a signal sent to a child that had not yet exec'd would otherwise run the master's
//! handler in the child and be lost. The child starts a session of its own (so the master
//! signals the command and everything it started as one process group) and keeps no
//! descriptor of the master's.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How to start a command.
#[derive(Debug, Default)]
pub(super) struct Launch<'a> {
    pub(crate) command: &'a str,
    /// The environment, as `KEY=VALUE` (see [`environment`]).
    pub(crate) env: &'a [CString],
    /// Keep the master's stdin (otherwise /dev/null).
    pub(crate) stdin: bool,
    /// SIGKILL the command when the master dies (PR_SET_PDEATHSIG), as uWSGI does for
    /// attached daemons and cron jobs: none outlives a master killed with -9.
    pub(crate) die_with_master: bool,
    /// Run as this group and user (the master must be root).
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    pub(crate) chdir: Option<&'a Path>,
    /// Detach the command (fork once more; the first child exits) and write the detached
    /// process's pid to this file: smart-attach-daemon2.
    pub(crate) detach_to: Option<&'a Path>,
    /// Write to the master's own stdout and stderr rather than to a pipe the master reads:
    /// for a command that outlives the master (a smart daemon), whose writes to a pipe
    /// nobody reads any more would fail (SIGPIPE) and end it.
    pub(crate) inherit_output: bool,
}

/// A started command: its pid, and the read end of its output pipe (non-blocking), unless it
/// writes to the master's stdout and stderr.
pub(super) struct Started {
    pub(crate) pid: libc::pid_t,
    pub(crate) output: Option<OwnedFd>,
}

/// Starts `launch.command` with `/bin/sh -c`.
pub(super) fn spawn(launch: &Launch<'_>) -> io::Result<Started> {
    let cstr = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::other("the command holds a NUL byte"))
    };
    let sh = cstr(b"/bin/sh")?;
    let dash_c = cstr(b"-c")?;
    let command = cstr(shell_line(launch.command).as_bytes())?;
    let argv = [
        sh.as_ptr(),
        dash_c.as_ptr(),
        command.as_ptr(),
        std::ptr::null(),
    ];
    let mut envp: Vec<*const libc::c_char> = launch.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let chdir = launch
        .chdir
        .map(|p| cstr(p.as_os_str().as_bytes()))
        .transpose()?;
    let pidfile = launch
        .detach_to
        .map(|p| cstr(p.as_os_str().as_bytes()))
        .transpose()?;
    let devnull = File::open("/dev/null")?;
    let (read, write) = pipe()?;
    let master = std::process::id() as libc::pid_t;

    // SAFETY: the master is single-threaded; the child makes only async-signal-safe system
    // calls on memory prepared above (see `child`), then execs or _exits. Signals are blocked
    // across the fork and restored in the parent at once.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut saved);
        let pid = libc::fork();
        if pid == 0 {
            child(&ChildSetup {
                launch,
                master,
                argv: &argv,
                envp: &envp,
                stdin: devnull.as_raw_fd(),
                output: write.as_raw_fd(),
                chdir: chdir.as_ref(),
                pidfile: pidfile.as_ref(),
            });
        }
        let fork_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
        if pid < 0 {
            return Err(fork_error);
        }
        pid
    };
    drop(write);
    Ok(Started {
        pid,
        output: (!launch.inherit_output).then_some(read),
    })
}

/// The line given to `sh -c`: a simple command (words, no shell syntax) is prefixed with
/// `exec`, so that the program replaces the shell. Its pid is then the one the master started
/// (the one `ps` shows, the one in the log), its exit status its own (`killed by SIGKILL`, not
/// the shell's 137), and no shell lingers beside it. (Debian's dash does not do this by
/// itself.) Anything with shell syntax (`;`, `&&`, pipes, redirections, variables, quotes,
/// `VAR=value`) is left to the shell as written.
fn shell_line(command: &str) -> String {
    // Words the shell itself runs (builtins with no program of that name, keywords).
    const SHELL_ONLY: &[&str] = &[
        "exit", "cd", "export", "set", "unset", "source", ".", "eval", "exec", "return", "shift",
        "trap", "readonly", "times", "wait", "alias", "unalias", "ulimit", "umask", "read",
        "getopts", "hash", "type", "command", "jobs", "fg", "bg", "break", "continue", "local",
        "if", "for", "while", "until", "case", "function",
    ];
    let plain = command
        .split_whitespace()
        .next()
        .is_some_and(|first| !SHELL_ONLY.contains(&first))
        && command
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" \t-_./,:+%@".contains(&b));
    if plain {
        format!("exec {command}")
    } else {
        command.to_string()
    }
}

/// What the child uses, all of it made before the fork.
struct ChildSetup<'a> {
    launch: &'a Launch<'a>,
    master: libc::pid_t,
    argv: &'a [*const libc::c_char; 4],
    envp: &'a [*const libc::c_char],
    stdin: RawFd,
    output: RawFd,
    chdir: Option<&'a CString>,
    pidfile: Option<&'a CString>,
}

/// In the child, between fork and exec: only system calls, no allocation, no lock.
///
/// # Safety
/// Call only in a freshly forked child of a single-threaded process; never returns.
unsafe fn child(setup: &ChildSetup<'_>) -> ! {
    // SAFETY: each call below is an async-signal-safe system call on descriptors and C
    // strings made before the fork; on any failure the child writes a fixed message to the
    // output pipe (the master logs it) and _exits.
    unsafe {
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::setsid();
        let launch = setup.launch;
        if launch.die_with_master {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != setup.master {
                libc::_exit(1);
            }
        }
        if !launch.stdin {
            libc::dup2(setup.stdin, 0);
        }
        if !launch.inherit_output {
            libc::dup2(setup.output, 1);
            libc::dup2(setup.output, 2);
        }
        if let Some(gid) = launch.gid {
            if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 {
                fail(b"dragoman: cannot switch to the daemon's gid (the master must be root)\n");
            }
        }
        if let Some(uid) = launch.uid {
            if libc::setuid(uid) != 0 {
                fail(b"dragoman: cannot switch to the daemon's uid (the master must be root)\n");
            }
        }
        if let Some(dir) = setup.chdir {
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(b"dragoman: cannot enter the daemon's chdir directory\n");
            }
        }
        // Every other descriptor: dragoman's are close-on-exec, the application's (a preload
        // may have opened some) may not be.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        if let Some(pidfile) = setup.pidfile {
            match libc::fork() {
                -1 => fail(b"dragoman: cannot detach the daemon (fork)\n"),
                0 => {}
                _ => libc::_exit(0),
            }
            write_pid(pidfile);
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(setup.argv[0], setup.argv.as_ptr(), setup.envp.as_ptr());
        fail(b"dragoman: cannot run /bin/sh\n");
    }
}

/// Writes a fixed message to stderr (the output pipe) and exits 127.
///
/// # Safety
/// Only in the forked child.
unsafe fn fail(message: &[u8]) -> ! {
    // SAFETY: write(2) of a static buffer, then _exit.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(127)
    }
}

/// Writes this process's pid and a newline to `pidfile`, without allocating.
///
/// # Safety
/// Only in the forked child.
unsafe fn write_pid(pidfile: &CString) {
    let mut digits = [0u8; 24];
    // SAFETY: getpid has no preconditions.
    let mut pid = unsafe { libc::getpid() } as u32;
    let mut at = digits.len() - 1;
    digits[at] = b'\n';
    loop {
        at -= 1;
        digits[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    // SAFETY: open/write/close on a C string made before the fork and a local buffer.
    unsafe {
        let fd = libc::open(
            pidfile.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            fail(b"dragoman: cannot write the daemon's pidfile\n");
        }
        libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
        libc::close(fd);
    }
}

/// A pipe: the read end non-blocking, both close-on-exec (the child's copies become its
/// stdout and stderr with dup2, which clears the flag).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded; we own both descriptors.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    Ok((read, write))
}

/// The environment commands run with: the master's, with the application's virtualenv first
/// on PATH (`bin/` of `home`, or of the virtualenv dragoman runs from), so that `python`,
/// `celery` or a script's `#!/usr/bin/env python` is the application's, as in an activated
/// virtualenv; and PYTHONUNBUFFERED=1 unless it is set, so that what a Python program prints
/// reaches the log as it happens rather than in 8 KiB blocks (its stdout is a pipe).
pub(super) fn environment(venv_bin: Option<&Path>) -> Vec<CString> {
    let mut env: Vec<CString> = Vec::new();
    let mut path_seen = false;
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        env.push(c"PYTHONUNBUFFERED=1".to_owned());
    }
    for (key, value) in std::env::vars_os() {
        let mut entry = key.as_bytes().to_vec();
        entry.push(b'=');
        if key == "PATH" {
            path_seen = true;
            if let Some(bin) = venv_bin {
                entry.extend_from_slice(bin.as_os_str().as_bytes());
                entry.push(b':');
            }
        }
        entry.extend_from_slice(value.as_bytes());
        if let Ok(c) = CString::new(entry) {
            env.push(c);
        }
    }
    if !path_seen {
        let mut entry = b"PATH=".to_vec();
        if let Some(bin) = venv_bin {
            entry.extend_from_slice(bin.as_os_str().as_bytes());
            entry.push(b':');
        }
        entry.extend_from_slice(b"/usr/local/bin:/usr/bin:/bin");
        if let Ok(c) = CString::new(entry) {
            env.push(c);
        }
    }
    env
}

/// Sends `sig` to the process group a command leads (it and what it started), or to the
/// process alone when it leads none (a smart daemon's pid, read from its pidfile).
pub(super) fn signal_group(pid: libc::pid_t, sig: libc::c_int) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) with plain numbers; pid > 1, so never every process (-1) nor init.
    unsafe {
        if libc::kill(-pid, sig) != 0 {
            libc::kill(pid, sig);
        }
    }
}

/// Whether a process with this pid exists (and this process may signal it).
pub(super) fn exists(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 only checks.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn read_all(fd: &OwnedFd) -> String {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            // SAFETY: reading into a local buffer from a descriptor we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => break,
                n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn wait(pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        // SAFETY: waiting for a child we started.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    }

    #[test]
    fn a_command_runs_with_sh_its_own_session_and_its_output_on_the_pipe() {
        let env = environment(Some(Path::new("/opt/venv/bin")));
        let started = spawn(&Launch {
            command: "echo out; echo err >&2; echo $PATH; ps -o sid= -p $$; read x || echo no-stdin; exit 3",
            env: &env,
            ..Launch::default()
        })
        .unwrap();
        let text = read_all(started.output.as_ref().unwrap());
        let status = wait(started.pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["out", "err"]);
        assert!(lines[2].starts_with("/opt/venv/bin:"), "{text}");
        assert_eq!(lines[3].trim(), started.pid.to_string(), "its own session");
        assert_eq!(lines[4], "no-stdin");
    }

    #[test]
    fn simple_commands_replace_the_shell() {
        assert_eq!(
            shell_line("/venv/bin/python manage.py tick --every 2"),
            "exec /venv/bin/python manage.py tick --every 2"
        );
        assert_eq!(
            shell_line("celery -A mysite worker -l info"),
            "exec celery -A mysite worker -l info"
        );
        for compound in [
            "cd /srv; ./worker",
            "a && b",
            "a | b",
            "a > log",
            "echo $HOME",
            "sh -c 'x'",
            "FOO=1 worker",
            "sleep 1 &",
            "exit 4",
            "cd /srv",
            "",
        ] {
            assert_eq!(shell_line(compound), compound);
        }
        let env = environment(None);
        let started = spawn(&Launch {
            command: "sleep 5",
            env: &env,
            ..Launch::default()
        })
        .unwrap();
        // The pid started is sleep's (no shell in between).
        let comm = format!("/proc/{}/comm", started.pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
            assert!(Instant::now() < deadline, "the shell did not exec sleep");
            std::thread::sleep(Duration::from_millis(10));
        }
        command_kill(started.pid);
        let status = wait(started.pid);
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    }

    fn command_kill(pid: libc::pid_t) {
        // SAFETY: killing a child this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    #[test]
    fn a_detached_command_writes_its_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("d.pid");
        let env = environment(None);
        let started = spawn(&Launch {
            command: "echo $$; sleep 0.2",
            env: &env,
            detach_to: Some(&pidfile),
            ..Launch::default()
        })
        .unwrap();
        // The first child exits at once; the detached one writes the pidfile and runs on.
        let status = wait(started.pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let text = read_all(started.output.as_ref().unwrap());
        let written = std::fs::read_to_string(&pidfile).unwrap();
        assert_eq!(written.trim(), text.trim());
        assert_ne!(written.trim(), started.pid.to_string());
    }
}
