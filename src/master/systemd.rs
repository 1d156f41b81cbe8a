//! systemd's notify protocol (`Type=notify`): datagrams of `KEY=VALUE` lines to the socket
//! named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). No thread, no
//! library: one `sendto` per message.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Where to send notifications, if systemd asked for them.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`; the caller removes it from the environment afterwards, so the
    /// workers and the application do not notify systemd in the master's name.
    pub(crate) fn from_env() -> io::Result<Option<Notifier>> {
        let Ok(name) = std::env::var("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let target = match name.strip_prefix('@') {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(&name)?,
        };
        Ok(Some(Notifier {
            socket: UnixDatagram::unbound()?,
            target,
        }))
    }

    /// Sends one notification; a failure is logged by the caller's choice, never fatal.
    pub(crate) fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.target)?;
        Ok(())
    }
}
