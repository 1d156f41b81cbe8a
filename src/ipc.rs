//! The contract between the master and its workers, in one place so that neither side imports
//! the other: what the master hands a freshly forked worker ([`WorkerArgs`]), what `run`
//! becomes in each process after a fork ([`Role`]), what a worker tells the master ([`Event`],
//! over one [`EventPipe`]) and what its exit code means ([`WORKER_BOOT_ERROR`]).
//!
//! The event pipe is shared by all workers (created before the first fork). A message is 4
//! bytes, so concurrent writes never interleave (writes up to PIPE_BUF are atomic), and the
//! master reads them in its `poll` loop like signals.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::config::Config;
use crate::net::Bound;
use crate::scoreboard::{ServerState, Slot};

/// Exit code of a worker that could not load the application (gunicorn uses the same number).
pub(crate) const WORKER_BOOT_ERROR: i32 = 3;

/// What `run` returns in each process after a fork.
pub(crate) enum Role {
    /// The master finished; exit with this code.
    Master(i32),
    /// This process is a freshly forked worker: run it.
    Worker(Box<WorkerArgs>),
}

/// What the master hands a freshly forked worker.
pub(crate) struct WorkerArgs {
    /// 1-based worker number, for logs and max-requests-delta.
    pub(crate) id: usize,
    pub(crate) config: Config,
    pub(crate) listeners: Vec<Bound>,
    /// The worker's part of the scoreboard, and its way to tell the master things.
    pub(crate) slot: &'static Slot,
    /// The server's phase, which the health check answers.
    pub(crate) server: &'static ServerState,
    pub(crate) events: Sender,
    /// The applications, when the master loaded them before forking (`preload`).
    pub(crate) preloaded: Option<crate::bridge::Loaded>,
}

/// What a worker tells the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The worker accepts connections.
    Ready,
    /// The worker reached max-requests and asks to be replaced.
    Recycle,
    /// A loaded module changed (py-autoreload): reload every worker.
    Reload,
}

impl Event {
    fn code(self) -> u8 {
        match self {
            Event::Ready => 1,
            Event::Recycle => 2,
            Event::Reload => 3,
        }
    }

    fn from_code(code: u8) -> Option<Event> {
        [Event::Ready, Event::Recycle, Event::Reload]
            .into_iter()
            .find(|e| e.code() == code)
    }
}

/// The pipe workers tell the master things on: the master's end (read) and the end workers
/// inherit (write).
pub(crate) struct EventPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl EventPipe {
    pub(crate) fn new() -> io::Result<EventPipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds is a valid array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded; we own both fds.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The master must never block reading; workers may block briefly if it is full.
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Ok(EventPipe { read, write })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// A sender for the worker in `slot`, on the master's own end (tests).
    #[cfg(test)]
    pub(crate) fn sender(&self, slot: usize) -> Sender {
        Sender {
            fd: self.write.as_raw_fd(),
            slot: slot as u16,
        }
    }

    /// In a freshly forked worker: a sender on its own copy of the write end, which stays open
    /// for the worker's whole life (the master's copies close with the rest of its state).
    pub(crate) fn sender_for_child(&self, slot: usize) -> Sender {
        // Close-on-exec, as every descriptor of dragoman's: the worker keeps it (it is forked,
        // not exec'd), the application's subprocesses do not inherit it.
        // SAFETY: F_DUPFD_CLOEXEC of a pipe fd we own; the new fd is deliberately never closed.
        let fd = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        Sender {
            fd,
            slot: slot as u16,
        }
    }

    /// Every event waiting in the pipe: (slot, event).
    pub(crate) fn drain(&self) -> Vec<(usize, Event)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4 * 64];
        loop {
            // SAFETY: reading into a local buffer from our own non-blocking pipe.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            for msg in buf[..n as usize].chunks_exact(4) {
                let slot = u16::from_le_bytes([msg[0], msg[1]]) as usize;
                if let Some(event) = Event::from_code(msg[2]) {
                    out.push((slot, event));
                }
            }
        }
    }
}

/// A worker's way to send events. The fd is the pipe's write end, inherited at fork and kept
/// open by the master for as long as it runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sender {
    fd: RawFd,
    slot: u16,
}

impl Sender {
    pub(crate) fn send(&self, event: Event) {
        let [a, b] = self.slot.to_le_bytes();
        let msg = [a, b, event.code(), 0];
        // SAFETY: writing 4 bytes from a local array to the inherited pipe; a failure (the
        // master gone) is ignored, the worker dies with it anyway.
        unsafe { libc::write(self.fd, msg.as_ptr().cast(), msg.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pipe = EventPipe::new().unwrap();
        pipe.sender(7).send(Event::Ready);
        pipe.sender(300).send(Event::Recycle);
        pipe.sender(1).send(Event::Reload);
        assert_eq!(
            pipe.drain(),
            vec![(7, Event::Ready), (300, Event::Recycle), (1, Event::Reload)]
        );
        assert!(pipe.drain().is_empty());
    }
}
