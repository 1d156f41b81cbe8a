//! Kernel TLS (kTLS): with it, the kernel encrypts what is written to a socket, and
//! `sendfile(2)` could send static files over HTTPS with no copy. Whether this kernel has it
//! is checked once at startup, on a loopback socket pair: `setsockopt(TCP_ULP, "tls")` loads
//! the module if there is one. dragoman does not hand its TLS sessions to the kernel yet:
//! over TLS a file is read into memory in large blocks and encrypted by rustls (the
//! connection has no zero-copy queue, see [`crate::conn::zerocopy`]), which is correct on
//! every kernel. The check says which case a machine is in, so the log tells why static
//! files over HTTPS cost what they cost.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Whether the kernel offers TLS offload, and why not when it does not.
pub(crate) fn probe() -> Result<(), String> {
    let on_loopback = || -> io::Result<io::Result<()>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let _server = listener.accept()?;
        let name = b"tls";
        // SAFETY: a valid socket fd and a buffer of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_ULP,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        Ok(if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        })
    };
    match on_loopback() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
            Err("the kernel has no `tls` module".into())
        }
        Ok(Err(e)) => Err(format!("the kernel refused it: {e}")),
        Err(e) => Err(format!("no loopback socket to check it on: {e}")),
    }
}
