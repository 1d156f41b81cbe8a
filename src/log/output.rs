//! Where the log's lines go: for now each process's stderr (or stdout), each line (or block)
//! with one `write`, so that lines from different processes do not interleave.

use std::os::fd::RawFd;

/// The longest piece written at once.
const MAX_PIECE: usize = 64 * 1024;

/// The fd a worker's request lines go to.
pub(crate) fn requests_fd() -> RawFd {
    libc::STDERR_FILENO
}

/// Writes lines a process logs to `fd` (1 or 2).
pub(crate) fn deliver(fd: RawFd, bytes: &[u8]) {
    write_lines(fd, bytes);
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
