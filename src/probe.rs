//! `dragoman --health-check [URL]`: asks a running server's health check once, for a
//! container's HEALTHCHECK or a script: exit 0 on a 2xx answer, 1 on anything else (another
//! status, no answer within [`TIMEOUT`], a refused connection). Without a URL, the
//! configuration says where: its first plain HTTP listener (a wildcard address asked on
//! loopback) and its `health-check` path. Plain blocking sockets: this process does nothing
//! else.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{Config, ListenAddr, Probe, Wire};

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    addr: Addr,
    /// The Host header.
    host: String,
    path: String,
    /// As the messages show it.
    shown: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// Runs the probe; the exit code.
pub(crate) fn run(probe: Probe) -> i32 {
    let target = match probe {
        Probe::Url(url) => from_url(&url),
        Probe::Config(config) => from_config(&config),
    };
    let target = match target {
        Ok(t) => t,
        Err(why) => {
            eprintln!("dragoman: error: --health-check: {why}");
            return 1;
        }
    };
    match ask(&target) {
        Ok(line) if line.split(' ').nth(1).is_some_and(|s| s.starts_with('2')) => {
            println!("dragoman: {}: {line}", target.shown);
            0
        }
        Ok(line) => {
            eprintln!("dragoman: {}: {line}", target.shown);
            1
        }
        Err(e) => {
            eprintln!("dragoman: {}: {e}", target.shown);
            1
        }
    }
}

/// `http://host[:port]/path`.
fn from_url(url: &str) -> Result<Target, String> {
    if url.starts_with("https://") {
        return Err(format!(
            "{url}: HTTPS is not asked; ask a plain HTTP listener, as in \
             `--health-check http://127.0.0.1:8000/healthz`"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: expected an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url}: {p:?} is no port number"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Target {
        addr: Addr::Tcp(host.trim_matches(['[', ']']).to_string(), port),
        host: authority.to_string(),
        path: path.to_string(),
        shown: url.to_string(),
    })
}

/// The configuration's first plain HTTP listener and its health-check path.
fn from_config(config: &Config) -> Result<Target, String> {
    let path = config.health_check.clone().ok_or(
        "the configuration sets no health-check path: set `health-check = /healthz`, or give \
         the URL to ask (`--health-check http://127.0.0.1:8000/healthz`)",
    )?;
    let listen = config
        .listeners
        .iter()
        .find(|l| l.wire == Wire::Http)
        .ok_or(
            "the configuration has no plain HTTP listener to ask; give the URL \
             (`--health-check http://127.0.0.1:8000/healthz`)",
        )?;
    Ok(match &listen.addr {
        ListenAddr::Tcp(addr) => {
            let ip = match addr.ip() {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            if addr.port() == 0 {
                return Err(format!(
                    "the listener {addr} has port 0 (a new port each start); give the URL"
                ));
            }
            let at = SocketAddr::new(ip, addr.port());
            Target {
                addr: Addr::Tcp(ip.to_string(), addr.port()),
                host: at.to_string(),
                path: path.clone(),
                shown: format!("http://{at}{path}"),
            }
        }
        ListenAddr::Unix(file) => Target {
            addr: Addr::Unix(file.clone()),
            host: "localhost".into(),
            path: path.clone(),
            shown: format!("unix:{}{path}", file.display()),
        },
    })
}

/// The status line of the answer.
fn ask(target: &Target) -> std::io::Result<String> {
    let deadline = Instant::now() + TIMEOUT;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dragoman-health-check\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    let mut stream: Box<dyn ReadWrite> = match &target.addr {
        Addr::Tcp(host, port) => {
            let addrs: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
            let mut last = std::io::Error::other("the host has no address");
            let mut connected = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, TIMEOUT) {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = connected.ok_or(last)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Box::new(s)
        }
        Addr::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Box::new(s)
        }
    };
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if Instant::now() > deadline || head.len() > 8192 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no status line in time",
            ));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection without answering",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split("\r\n").next().unwrap_or("").to_string())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = from_url("http://127.0.0.1:8000/healthz").unwrap();
        assert_eq!(t.addr, Addr::Tcp("127.0.0.1".into(), 8000));
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8000", "/healthz")
        );
        let t = from_url("http://[::1]:9/h?x=1").unwrap();
        assert_eq!(t.addr, Addr::Tcp("::1".into(), 9));
        assert_eq!(t.path, "/h?x=1");
        let t = from_url("http://example.com").unwrap();
        assert_eq!(
            (t.addr, t.path.as_str()),
            (Addr::Tcp("example.com".into(), 80), "/")
        );
        assert!(from_url("https://x/healthz").unwrap_err().contains("HTTPS"));
        assert!(from_url("http://x:port/").is_err());
    }
}
