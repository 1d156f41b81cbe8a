//! Where to listen: addresses as uWSGI writes them, and what each listener's clients speak.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::source::Origin;

/// An address to listen on: TCP, or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What a listener's clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Wire {
    /// HTTP/1.1 (`http`).
    Http,
    /// The uwsgi protocol, from nginx's `uwsgi_pass` (`socket`).
    Uwsgi,
    /// HTTP over TLS (`https`), with the certificate of `TlsConfig::listeners[i]`.
    Https(u16),
    /// Plain HTTP answered with a redirect to HTTPS (`http-to-https`), to this port (`None`:
    /// the default, 443).
    Redirect(Option<u16>),
}

/// One address to listen on, with the setting that asked for it (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    pub(crate) addr: ListenAddr,
    pub(crate) wire: Wire,
    pub(crate) origin: Option<Origin>,
}

/// Parses a listen address as uWSGI writes it: `:8000`, `*:8000`, `127.0.0.1:8000`,
/// `[::1]:8000`, `localhost:8000` (every address the name resolves to), or a unix socket path
/// (`/run/site.sock`, `./site.sock`, `unix:site.sock`, `app.sock`).
pub(crate) fn parse_listen(value: &str) -> Result<Vec<ListenAddr>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty".into());
    }
    if let Some(path) = value.strip_prefix("unix:") {
        return Ok(vec![ListenAddr::Unix(PathBuf::from(path))]);
    }
    if value.contains('/') {
        return Ok(vec![ListenAddr::Unix(PathBuf::from(value))]);
    }
    // uWSGI takes any address without a `:` as a unix socket path (`socket = app.sock`, and
    // `socket = 8000` too: `build` warns about that one).
    if !value.contains(':') {
        return Ok(vec![ListenAddr::Unix(PathBuf::from(value))]);
    }
    parse_tcp(value).map(|addrs| addrs.into_iter().map(ListenAddr::Tcp).collect())
}

fn parse_tcp(value: &str) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| "no port (write host:port, or :port for every interface)".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host == "*" || host == "0.0.0.0" {
        return Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
        .collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("host {host:?} has no addresses"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let unix = |s: &str| vec![ListenAddr::Unix(PathBuf::from(s))];
        let tcp = |s: &str| vec![ListenAddr::Tcp(s.parse().unwrap())];
        assert_eq!(parse_listen(":80").unwrap(), tcp("0.0.0.0:80"));
        assert_eq!(parse_listen("*:80").unwrap(), tcp("0.0.0.0:80"));
        assert_eq!(parse_listen("[::]:80").unwrap(), tcp("[::]:80"));
        assert_eq!(parse_listen("10.1.2.3:9").unwrap(), tcp("10.1.2.3:9"));
        assert!(parse_listen("localhost:80")
            .unwrap()
            .iter()
            .all(|a| matches!(a, ListenAddr::Tcp(a) if a.ip().is_loopback())));
        // As uWSGI: no `:` is a unix socket file (build warns when it looks like a port).
        assert_eq!(parse_listen("8000").unwrap(), unix("8000"));
        assert_eq!(parse_listen("app.sock").unwrap(), unix("app.sock"));
        assert!(parse_listen(":http").is_err());
        assert_eq!(parse_listen("/tmp/x.sock").unwrap(), unix("/tmp/x.sock"));
        assert_eq!(parse_listen("unix:x.sock").unwrap(), unix("x.sock"));
    }
}
