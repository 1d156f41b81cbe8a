//! What the master's other children write (attached daemons, cron jobs, hooks): read from
//! their pipes in the master's loop, never waiting, and logged line by line with the child's
//! name and pid (`celery[4242]: ...`).
//!
//! Bounded both ways: at most [`READ_BUDGET`] bytes a pipe at each wake-up, so a child that
//! writes without pause slows itself (its pipe fills and its writes wait) rather than the
//! master; and a line longer than [`MAX_LINE`] is logged in pieces. A pipe is dropped at end
//! of file, which comes once the command and everything it started that kept the pipe have
//! exited.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::info;

/// Longest line logged as one; longer ones are cut into pieces of this size.
const MAX_LINE: usize = 4096;
/// Bytes read from one pipe at each wake-up of the loop.
const READ_BUDGET: usize = 64 * 1024;

/// One child's pipe and the line it has started.
struct Pipe {
    fd: OwnedFd,
    label: String,
    partial: Vec<u8>,
}

/// The pipes of the children whose output the master logs.
#[derive(Default)]
pub(super) struct Outputs {
    pipes: Vec<Pipe>,
}

impl Outputs {
    /// Logs what arrives on `fd`, each line as `LABEL: line`.
    pub(crate) fn add(&mut self, fd: OwnedFd, label: String) {
        self.pipes.push(Pipe {
            fd,
            label,
            partial: Vec::new(),
        });
    }

    /// Adds a pollfd for each pipe to `fds`, in order: [`Outputs::serve`] takes them back.
    pub(crate) fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        fds.extend(self.pipes.iter().map(|p| libc::pollfd {
            fd: p.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
    }

    /// Reads the pipes `poll` found ready (`ready`: their pollfds, as [`Outputs::poll_fds`]
    /// added them) and logs their complete lines; drops the pipes that reached end of file.
    pub(crate) fn serve(&mut self, ready: &[libc::pollfd]) {
        let mut index = 0;
        self.pipes.retain_mut(|pipe| {
            let revents = ready.get(index).map_or(0, |p| p.revents);
            index += 1;
            if revents == 0 {
                return true;
            }
            let open = read_some(pipe);
            if !open && !pipe.partial.is_empty() {
                let rest = std::mem::take(&mut pipe.partial);
                log_line(&pipe.label, &rest);
            }
            open
        });
    }

    /// Reads what every pipe holds now (the master is about to exit).
    pub(crate) fn serve_all(&mut self) {
        let ready: Vec<libc::pollfd> = self
            .pipes
            .iter()
            .map(|p| libc::pollfd {
                fd: p.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: libc::POLLIN,
            })
            .collect();
        self.serve(&ready);
    }
}

/// Reads up to [`READ_BUDGET`] bytes and logs the complete lines; false at end of file.
fn read_some(pipe: &mut Pipe) -> bool {
    let mut buf = [0u8; 8192];
    let mut budget = READ_BUDGET;
    while budget > 0 {
        // SAFETY: reading into a local buffer from a non-blocking pipe we own.
        let n = unsafe { libc::read(pipe.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return false,
            n if n > 0 => {
                let n = n as usize;
                budget = budget.saturating_sub(n);
                take_lines(&mut pipe.partial, &buf[..n], |line| {
                    log_line(&pipe.label, line)
                });
            }
            _ => {
                let err = std::io::Error::last_os_error();
                return matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                );
            }
        }
    }
    true
}

/// Appends `data` to the started line `partial` and hands every complete line (without its
/// newline) to `emit`, cutting lines longer than [`MAX_LINE`].
fn take_lines(partial: &mut Vec<u8>, data: &[u8], mut emit: impl FnMut(&[u8])) {
    for &byte in data {
        if byte == b'\n' {
            emit(partial);
            partial.clear();
        } else {
            partial.push(byte);
            if partial.len() >= MAX_LINE {
                emit(partial);
                partial.clear();
            }
        }
    }
}

fn log_line(label: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    info!("{label}: {}", line.trim_end_matches('\r'));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_limit() {
        let mut partial = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        let mut emit = |l: &[u8]| lines.push(String::from_utf8_lossy(l).into_owned());
        take_lines(&mut partial, b"one\ntw", &mut emit);
        take_lines(&mut partial, b"o\n\nthree", &mut emit);
        assert_eq!(lines, ["one", "two", ""]);
        assert_eq!(partial, b"three");
        let long = vec![b'x'; MAX_LINE + 10];
        let mut partial = Vec::new();
        let mut sizes = Vec::new();
        take_lines(&mut partial, &long, |l| sizes.push(l.len()));
        assert_eq!(sizes, [MAX_LINE]);
        assert_eq!(partial.len(), 10);
    }
}
