//! What a connection's protocol runs over, and what that transport can do.
//!
//! Every protocol (the own HTTP/1 path, hyper's HTTP/1, later HTTP/2) takes any
//! [`Transport`]: a plain socket, a socket with bytes given back in front
//! ([`super::rewind::Rewind`]), later TLS over one. Sending a file with `sendfile(2)` is not
//! something every transport can do: the file's bytes go to the socket as they are, so on a
//! TLS connection they would go out in plaintext. It is a capability, [`RawSocket`], that only
//! plain sockets have, and the only way to send files with zero copies is a
//! [`super::zerocopy::FileSender`], which can only be built over one. A TLS stream will
//! implement [`Transport`] and never [`RawSocket`], so the types rule out sendfile under TLS.

use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest};

/// A byte stream a connection's protocol runs over. `'static`: an upgraded connection (a
/// WebSocket) is handed to its session as a boxed transport.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Makes the coming close a reset (`SO_LINGER` 0) instead of a graceful close: used when
    /// a client stopped reading, so the kernel does not go on trickling megabytes of queued
    /// response to it.
    fn reset_on_close(&self);
}

/// A transport whose writes go to the kernel socket as they are: it can send a file by
/// itself (sendfile, sendmsg with its own flags). Plain TCP and unix sockets; never TLS.
pub(crate) trait RawSocket: Transport + AsFd {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Runs a non-blocking write; a `WouldBlock` from it clears the write readiness.
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket_transport {
    ($t:ty) => {
        impl Transport for $t {
            fn reset_on_close(&self) {
                let _ = socket2::SockRef::from(self).set_linger(Some(std::time::Duration::ZERO));
            }
        }

        impl RawSocket for $t {
            fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_write_ready(cx)
            }
            fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, f)
            }
        }
    };
}
socket_transport!(tokio::net::TcpStream);
socket_transport!(tokio::net::UnixStream);

/// In-memory pipes (tests): a transport, never a raw socket.
#[cfg(test)]
impl Transport for tokio::io::DuplexStream {
    fn reset_on_close(&self) {}
}
