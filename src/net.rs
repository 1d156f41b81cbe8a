//! Listening sockets. The master binds them once (so a worker crash or reload never closes the
//! port) and every worker inherits them across fork.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Listen;

/// A socket the master bound, ready for workers to accept on.
#[derive(Debug)]
pub struct Bound {
    pub listener: TcpListener,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

impl Bound {
    /// `http://127.0.0.1:8000`, `http://[::1]:8000`, as users type it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds one listening socket: SO_REUSEADDR so a restart does not wait out TIME_WAIT, IPv6
/// sockets IPv6-only so `[::]` and `0.0.0.0` can be listened on side by side, non-blocking
/// because every worker drives it from an event loop.
pub fn bind(listen: &Listen, backlog: i32) -> io::Result<Bound> {
    let domain = Domain::for_address(listen.addr);
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if listen.addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&listen.addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr()?;
    Ok(Bound { listener, addr })
}

/// A bind error in words a user can act on.
pub fn explain_bind_error(listen: &Listen, err: &io::Error) -> String {
    let from = listen
        .origin
        .as_ref()
        .map(|o| format!(" (from {o})"))
        .unwrap_or_else(|| " (the default address)".into());
    let hint = match err.kind() {
        io::ErrorKind::AddrInUse => {
            "another process is listening there; stop it or choose another port".to_string()
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root (dragoman binds before it drops privileges)".to_string()
        }
        io::ErrorKind::AddrNotAvailable => "this machine has no such address".to_string(),
        _ => "check the address".to_string(),
    };
    format!("cannot listen on {}{from}: {err}; {hint}", listen.addr)
}
