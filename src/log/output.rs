//! Where the logs go, and keeping them there across logrotate: `logto`/`logto2`, `logger`,
//! `req-logger`, `log-master`, `log-maxsize` rotation and reopening (SIGUSR1, `log-reopen`).
//!
//! Two ways to write, as in uWSGI:
//! - **direct** (the default): every process writes its own lines. The server log's file is
//!   opened in the master and put on stdout and stderr (fd 1 and 2), which the workers
//!   inherit, so Python's output, C libraries' and subprocesses' end up there too; a separate
//!   request log (`req-logger = file:...`) is an fd of its own. Files are opened with
//!   O_APPEND, and each line (or batch of lines) is one `write`: lines from different
//!   processes do not interleave. To reopen after logrotate renamed the file, each process
//!   reopens it (SIGUSR1 to the master, which passes it on) onto the same fd numbers.
//! - **log-master** (`log-master`, or as soon as one process must write for all: several
//!   targets, or `log-maxsize` rotation, which needs a single writer): workers write to a
//!   `SOCK_SEQPACKET` socket pair (one message per line or batch, so messages stay whole) and
//!   the master, in its loop, writes what they send to the targets, rotating on the way.
//!
//! Everything here happens at startup, in the master's loop, or on a signal; the per-request
//! path only reads [`requests_fd`] once and calls [`write_lines`] once a batch.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use super::settings::{LogFile, Logging, Target};
use super::stamp;

/// The longest piece written at once: a message on the log master's socket pair must fit its
/// send buffer (about 208 KiB by default); the access log's batches are no bigger.
pub(crate) const MAX_PIECE: usize = 64 * 1024;
/// The socket pair's buffers, asked for (the kernel caps them at `net.core.{r,w}mem_max`).
const PIPE_BUFFER: libc::c_int = 1 << 20;

/// The outputs of this process, once [`setup`] ran (a copy of the master's in each worker).
static OUTPUTS: Mutex<Option<Outputs>> = Mutex::new(None);
/// Where this worker's request lines go.
static REQUESTS_FD: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);
/// This process is the log master: its own lines go to the targets, not to fd 2.
static FAN_OUT: AtomicBool = AtomicBool::new(false);

/// Everything this process knows about where lines go.
struct Outputs {
    /// dragoman's stderr as it was at startup (`stdio` targets, and a last resort).
    stdio: RawFd,
    /// The server log's targets, and the request log's (empty: with the server log).
    main: Vec<Sink>,
    requests: Vec<Sink>,
    /// log-master: the socket pairs the workers write to.
    pipes: Option<Pipes>,
    /// The master's read buffer.
    buf: Vec<u8>,
}

struct Pipes {
    main: Pipe,
    requests: Option<Pipe>,
}

struct Pipe {
    /// The master's end; closed in the workers.
    read: Option<OwnedFd>,
    write: OwnedFd,
}

enum Sink {
    Stdio,
    File(FileSink),
}

struct FileSink {
    spec: LogFile,
    /// `None` until opened (a late file before the privilege drop).
    fd: Option<OwnedFd>,
    /// Other fds that must show the same file: stdout and stderr, for the server log's file.
    mirrors: Vec<RawFd>,
    /// Bytes in the file, for `log-maxsize` (counted in the log master only).
    size: u64,
}

/// After `daemonize` put the log file on stdout and stderr: the copy of the original stderr
/// kept for `stdio` targets follows it, so nothing of the detached master keeps the
/// terminal, or the pipe of whoever started dragoman, open.
pub(crate) fn follow_stdio() {
    let outputs = OUTPUTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = outputs.as_ref().filter(|o| o.stdio != libc::STDERR_FILENO) {
        // SAFETY: both descriptors are open (fd 2 was just pointed at the log file; `stdio`
        // is this module's own copy); dup3 replaces `stdio` atomically and keeps it
        // close-on-exec.
        unsafe { libc::dup3(libc::STDERR_FILENO, out.stdio, libc::O_CLOEXEC) };
    }
}

/// Sets the outputs up in the master, at startup: the stamp's format, the targets, the
/// log-master's socket pairs, and the files that are opened first (`logto`; `logto2` and
/// `file:` loggers wait for [`open_late`]). An error names the option and the file.
pub(crate) fn setup(logging: &Logging) -> Result<(), String> {
    stamp::set_date_format(logging.date.as_deref());
    // SAFETY: F_DUPFD_CLOEXEC on fd 2 (open in any process started normally); a failure is
    // -1, checked.
    let stdio = match unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, 3) } {
        -1 => libc::STDERR_FILENO,
        fd => fd,
    };
    let main_targets: Vec<Target> = if !logging.loggers.is_empty() {
        logging.loggers.clone()
    } else if let Some(file) = &logging.file {
        vec![Target::File(file.clone())]
    } else {
        vec![Target::Stdio]
    };
    let rotates = main_targets
        .iter()
        .chain(&logging.req_loggers)
        .any(|t| matches!(t, Target::File(f) if f.max_size.is_some()));
    let master =
        logging.master || main_targets.len() > 1 || logging.req_loggers.len() > 1 || rotates;
    let sinks = |targets: &[Target]| -> Vec<Sink> {
        targets
            .iter()
            .map(|t| match t {
                Target::Stdio => Sink::Stdio,
                Target::File(f) => Sink::File(FileSink {
                    spec: absolute(f),
                    fd: None,
                    mirrors: Vec::new(),
                    size: 0,
                }),
            })
            .collect()
    };
    let mut main = sinks(&main_targets);
    if let [Sink::File(file)] = main.as_mut_slice() {
        file.mirrors = vec![libc::STDOUT_FILENO, libc::STDERR_FILENO];
    }
    let pipes = if master {
        Some(Pipes {
            main: Pipe::new()
                .map_err(|e| format!("log-master: cannot make its socket pair: {e}"))?,
            requests: match logging.req_loggers.is_empty() {
                true => None,
                false => Some(
                    Pipe::new()
                        .map_err(|e| format!("log-master: cannot make its socket pair: {e}"))?,
                ),
            },
        })
    } else {
        None
    };
    let outputs = Outputs {
        stdio,
        main,
        requests: sinks(&logging.req_loggers),
        pipes,
        buf: Vec::new(),
    };
    *lock() = Some(outputs);
    FAN_OUT.store(master, Ordering::Relaxed);
    open(false)
}

/// Opens the files meant to be opened after the privileges are dropped (`logto2`, `file:`
/// loggers), so the service user owns them.
pub(crate) fn open_late() -> Result<(), String> {
    open(true)
}

fn open(late: bool) -> Result<(), String> {
    let mut guard = lock();
    let Some(outputs) = guard.as_mut() else {
        return Ok(());
    };
    let stdio = outputs.stdio;
    for sink in outputs.main.iter_mut().chain(outputs.requests.iter_mut()) {
        if let Sink::File(file) = sink {
            if file.spec.late == late && file.fd.is_none() {
                file.reopen().map_err(|e| {
                    format!(
                        "{}: cannot open {}'s file {}: {e}; create its directory, or let \
                         dragoman's user write there (or use logto2, opened after the user \
                         switch)",
                        file.spec.origin,
                        file.spec.option,
                        file.spec.path.display()
                    )
                })?;
            }
        }
    }
    // Outside log-master a separate request log is written by the workers themselves.
    if outputs.pipes.is_none() {
        let fd = match outputs.requests.first() {
            None => libc::STDERR_FILENO,
            Some(Sink::Stdio) => stdio,
            Some(Sink::File(f)) => f.fd.as_ref().map_or(stdio, |fd| fd.as_raw_fd()),
        };
        REQUESTS_FD.store(fd, Ordering::Relaxed);
    }
    Ok(())
}

/// In a freshly forked worker: with log-master, its stdout, stderr and request lines go to
/// the master's socket pairs, and the files are the master's alone.
pub(crate) fn enter_worker() {
    FAN_OUT.store(false, Ordering::Relaxed);
    let mut guard = lock();
    let Some(outputs) = guard.as_mut() else {
        return;
    };
    let Some(pipes) = &mut outputs.pipes else {
        return;
    };
    let main = pipes.main.write.as_raw_fd();
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 between fds this process has open; on failure the fd stays as it was
        // (the file, which still works without rotation).
        unsafe { libc::dup2(main, fd) };
    }
    let requests = pipes
        .requests
        .as_ref()
        .map_or(libc::STDERR_FILENO, |p| p.write.as_raw_fd());
    REQUESTS_FD.store(requests, Ordering::Relaxed);
    pipes.main.read = None;
    if let Some(p) = &mut pipes.requests {
        p.read = None;
    }
    outputs.main.clear();
    outputs.requests.clear();
}

/// The fd this worker's request lines go to.
pub(crate) fn requests_fd() -> RawFd {
    REQUESTS_FD.load(Ordering::Relaxed)
}

/// Writes lines a process logs (a server line, Python's output) to `fd` (1 or 2), or, in the
/// log master, to the server log's targets.
pub(crate) fn deliver(fd: RawFd, bytes: &[u8]) {
    if FAN_OUT.load(Ordering::Relaxed) {
        // try_lock: a line logged while this thread holds the outputs (it never does, but a
        // deadlock in the logger would be the worst bug) goes to the fd instead.
        if let Ok(mut guard) = OUTPUTS.try_lock() {
            if let Some(outputs) = guard.as_mut() {
                outputs.write_main(bytes);
                return;
            }
        }
    }
    write_lines(fd, bytes);
}

/// The master's socket-pair ends to wait on (none without log-master).
pub(crate) fn master_fds() -> Vec<RawFd> {
    let guard = lock();
    let Some(pipes) = guard.as_ref().and_then(|o| o.pipes.as_ref()) else {
        return Vec::new();
    };
    [Some(&pipes.main), pipes.requests.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|p| p.read.as_ref().map(|fd| fd.as_raw_fd()))
        .collect()
}

/// In the log master: writes out what the workers sent, without waiting for more.
pub(crate) fn master_pump() {
    let mut guard = lock();
    let Some(outputs) = guard.as_mut() else {
        return;
    };
    let Some(pipes) = &outputs.pipes else {
        return;
    };
    let main = pipes.main.read.as_ref().map(|fd| fd.as_raw_fd());
    let requests = pipes
        .requests
        .as_ref()
        .and_then(|p| p.read.as_ref())
        .map(|fd| fd.as_raw_fd());
    let mut buf = std::mem::take(&mut outputs.buf);
    buf.resize(4 * MAX_PIECE, 0);
    for (fd, is_main) in [(main, true), (requests, false)] {
        let Some(fd) = fd else { continue };
        loop {
            // SAFETY: reading into our own buffer, of its length, from our socket.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n <= 0 {
                break;
            }
            let message = &buf[..n as usize];
            if is_main {
                outputs.write_main(message);
            } else {
                outputs.write_requests(message);
            }
        }
    }
    outputs.buf = buf;
}

/// Reopens the log files (after logrotate renamed them): SIGUSR1, or a reload with
/// `log-reopen`. In every process outside log-master, in the master alone with it. Returns
/// what happened, for the caller to log (the outputs are locked meanwhile).
pub(crate) fn reopen() -> Vec<Result<PathBuf, String>> {
    let mut guard = lock();
    let Some(outputs) = guard.as_mut() else {
        return Vec::new();
    };
    if outputs.pipes.is_some() && !FAN_OUT.load(Ordering::Relaxed) {
        return Vec::new(); // a log-master worker: its lines go to the master
    }
    outputs
        .files()
        .filter(|f| f.fd.is_some())
        .map(|f| match f.reopen() {
            Ok(()) => Ok(f.spec.path.clone()),
            Err(e) => Err(format!(
                "cannot reopen {} ({}): {e}; still writing to the file it had open",
                f.spec.path.display(),
                f.spec.option
            )),
        })
        .collect()
}

/// Reopens the files whose path now names another file (or none): a worker that started
/// while its master reopened them, before it could take the signal, catches up here.
pub(crate) fn reopen_moved() {
    let mut guard = lock();
    let Some(outputs) = guard.as_mut() else {
        return;
    };
    if outputs.pipes.is_some() {
        return;
    }
    for file in outputs.files() {
        let Some(fd) = &file.fd else { continue };
        // SAFETY: stat is plain data; all-zero is a valid value for fstat to overwrite.
        let mut open: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open, and `open` a live stat for fstat to fill.
        let opened = unsafe { libc::fstat(fd.as_raw_fd(), &mut open) } == 0;
        let same = match std::fs::metadata(&file.spec.path) {
            Ok(m) if opened => m.dev() == open.st_dev && m.ino() == open.st_ino,
            _ => false,
        };
        if !same {
            let _ = file.reopen();
        }
    }
}

/// The file with absolute paths: reopening and rotating happen after `chdir`, and must find
/// the files named relative to where dragoman started.
fn absolute(file: &LogFile) -> LogFile {
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    LogFile {
        path: abs(&file.path),
        backup: file.backup.as_ref().map(abs),
        ..file.clone()
    }
}

impl Outputs {
    fn files(&mut self) -> impl Iterator<Item = &mut FileSink> {
        self.main
            .iter_mut()
            .chain(self.requests.iter_mut())
            .filter_map(|s| match s {
                Sink::File(f) => Some(f),
                Sink::Stdio => None,
            })
    }

    fn write_main(&mut self, bytes: &[u8]) {
        let stdio = self.stdio;
        for sink in &mut self.main {
            sink.write(stdio, bytes);
        }
    }

    fn write_requests(&mut self, bytes: &[u8]) {
        if self.requests.is_empty() {
            return self.write_main(bytes);
        }
        let stdio = self.stdio;
        for sink in &mut self.requests {
            sink.write(stdio, bytes);
        }
    }
}

impl Sink {
    fn write(&mut self, stdio: RawFd, bytes: &[u8]) {
        match self {
            Sink::Stdio => write_lines(stdio, bytes),
            Sink::File(file) => {
                let fd = file.fd.as_ref().map_or(stdio, |fd| fd.as_raw_fd());
                write_lines(fd, bytes);
                file.size += bytes.len() as u64;
                if file.spec.max_size.is_some_and(|max| file.size > max) {
                    file.rotate(stdio);
                }
            }
        }
    }
}

impl FileSink {
    /// Opens the file (again), onto the fd numbers it had, so nothing that holds them needs
    /// telling.
    fn reopen(&mut self) -> std::io::Result<()> {
        let fresh = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.spec.path)?;
        self.size = fresh.metadata().map_or(0, |m| m.len());
        let fresh = OwnedFd::from(fresh);
        let own = match &self.fd {
            Some(fd) => {
                // SAFETY: both fds are open in this process; dup3 puts the new file on fd's
                // number (closing the old one), so nothing that holds the number needs
                // telling, and keeps it close-on-exec.
                if unsafe { libc::dup3(fresh.as_raw_fd(), fd.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                fd.as_raw_fd()
            }
            None => self.fd.insert(fresh).as_raw_fd(),
        };
        for &mirror in &self.mirrors {
            // SAFETY: as above; stdout and stderr take the file too (inherited on exec, as
            // stdout and stderr should be).
            unsafe { libc::dup2(own, mirror) };
        }
        Ok(())
    }

    /// `log-maxsize`: renames the file to its backup name (or `PATH.UNIXTIME`, uWSGI's
    /// default) and starts a new one, saying so in the old one as uWSGI does.
    fn rotate(&mut self, stdio: RawFd) {
        let to = self.spec.backup.clone().unwrap_or_else(|| {
            let mut name = self.spec.path.clone().into_os_string();
            name.push(format!(".{}", stamp::coarse_secs()));
            PathBuf::from(name)
        });
        let fd = self.fd.as_ref().map_or(stdio, |fd| fd.as_raw_fd());
        let note = format!(
            "[{}] [{}] [INFO] logsize: {}, triggering rotation to {}\n",
            stamp::header_now(),
            std::process::id(),
            self.size,
            to.display()
        );
        write_lines(fd, note.as_bytes());
        let failed = std::fs::rename(&self.spec.path, &to)
            .and_then(|()| self.reopen())
            .err();
        self.size = 0;
        if let Some(e) = failed {
            let note = format!(
                "[{}] [{}] [ERROR] cannot rotate {} to {}: {e}; writing on in the same file\n",
                stamp::header_now(),
                std::process::id(),
                self.spec.path.display(),
                to.display()
            );
            write_lines(fd, note.as_bytes());
        }
    }
}

impl Pipe {
    fn new() -> std::io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds is a valid array of two ints for socketpair to fill.
        let made = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if made != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: socketpair succeeded: both fds are open and ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for (fd, option) in [(&read, libc::SO_RCVBUF), (&write, libc::SO_SNDBUF)] {
            // SAFETY: setsockopt with an int option and its size; a refusal is harmless.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&PIPE_BUFFER as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Pipe {
            read: Some(read),
            write,
        })
    }
}

/// Writes lines to `fd` in pieces of at most [`MAX_PIECE`] that end at a line's end (a line
/// longer than that is cut), each piece with as few `write` calls as the fd takes.
pub(crate) fn write_lines(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let piece = if bytes.len() <= MAX_PIECE {
            bytes.len()
        } else {
            match memchr::memrchr(b'\n', &bytes[..MAX_PIECE]) {
                Some(end) => end + 1,
                None => MAX_PIECE,
            }
        };
        write_all(fd, &bytes[..piece]);
        bytes = &bytes[piece..];
    }
}

/// Writes all of `bytes`, retrying on interruption and waiting (a second at most) when the
/// fd is full; what cannot be written is dropped: logging never takes the server down.
fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a live slice of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 1000) } <= 0 {
                    return;
                }
            }
            _ => return,
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Outputs>> {
    OUTPUTS.lock().unwrap_or_else(|e| e.into_inner())
}
