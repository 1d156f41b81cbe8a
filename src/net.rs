//! Listening sockets. The master binds them once (so a worker crash or a reload never closes
//! the port), or adopts them from systemd (socket activation), and every worker inherits them
//! across fork.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::{Listen, ListenAddr, Wire};

/// A listening socket of either family.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

/// A socket the master bound or adopted, ready for workers to accept on.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) listener: Listener,
    /// The address actually bound (port 0 resolved).
    pub(crate) addr: ListenAddr,
    /// What its clients speak.
    pub(crate) wire: Wire,
    /// A unix socket file dragoman created (so `vacuum` removes it); not for adopted sockets.
    pub(crate) created: Option<PathBuf>,
}

impl Bound {
    /// `http://127.0.0.1:8000`, `http://[::1]:8000`, `unix:/run/site.sock`, as users type it;
    /// uwsgi listeners say so (`uwsgi://127.0.0.1:3031`, `uwsgi unix:/run/site.sock`).
    pub(crate) fn url(&self) -> String {
        match (&self.addr, self.wire) {
            (ListenAddr::Tcp(addr), Wire::Http) => format!("http://{addr}"),
            (ListenAddr::Tcp(addr), Wire::Uwsgi) => format!("uwsgi://{addr}"),
            (ListenAddr::Unix(path), Wire::Http) => format!("unix:{}", path.display()),
            (ListenAddr::Unix(path), Wire::Uwsgi) => format!("uwsgi unix:{}", path.display()),
            (ListenAddr::Tcp(addr), Wire::Https(_)) => format!("https://{addr}"),
            (ListenAddr::Unix(path), Wire::Https(_)) => format!("https unix:{}", path.display()),
            (addr, Wire::Redirect(_)) => format!("{addr} (http-to-https)"),
        }
    }
}

/// A file owner to set: user and group, `None` leaving that one as it is.
pub(crate) type Owner = (Option<libc::uid_t>, Option<libc::gid_t>);

/// How the unix socket files dragoman creates are made: their mode (`chmod-socket`) and
/// owner (`chown-socket`). Both are set without a path the service user could redirect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SocketFile {
    pub(crate) mode: Option<u32>,
    /// User and group to give the file; `None` leaves that one as bind(2) made it.
    pub(crate) owner: Option<Owner>,
}

/// Binds one listening socket. TCP: SO_REUSEADDR so a restart does not wait out TIME_WAIT,
/// IPv6 sockets IPv6-only so `[::]` and `0.0.0.0` can be listened on side by side. Unix: a
/// stale socket file left by a crash is replaced, a live one is an error. All non-blocking,
/// because every worker drives them from an event loop.
pub(crate) fn bind(listen: &Listen, backlog: i32, file: SocketFile) -> io::Result<Bound> {
    match &listen.addr {
        ListenAddr::Tcp(addr) => {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_tcp_nodelay(true)?;
            socket.bind(&(*addr).into())?;
            socket.listen(backlog)?;
            socket.set_nonblocking(true)?;
            let listener: TcpListener = socket.into();
            let addr = ListenAddr::Tcp(listener.local_addr()?);
            Ok(Bound {
                listener: Listener::Tcp(listener),
                addr,
                wire: listen.wire,
                created: None,
            })
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            match file.owner {
                None => bind_unix(&socket, path, file.mode)?,
                Some((uid, gid)) => bind_unix_owned(&socket, path, file.mode, uid, gid)?,
            }
            socket.listen(backlog)?;
            socket.set_nonblocking(true)?;
            Ok(Bound {
                listener: Listener::Unix(UnixListener::from(OwnedFd::from(socket))),
                addr: ListenAddr::Unix(path.clone()),
                wire: listen.wire,
                created: Some(path.clone()),
            })
        }
    }
}

/// Binds a unix socket; with `chmod-socket`, the kernel creates its file with that mode. Setting
/// the mode by path after bind(2) would follow whatever the path is by then, and a symbolic link
/// swapped in meanwhile would have the master (root, often) chmod any file. The file bind(2)
/// creates gets the socket inode's mode (0777 on Linux; BSDs alike) less the umask, so for that
/// one call the umask is the mode's complement. (fchmod on the socket before bind also reaches
/// that inode on Linux, but the umask would still be taken off it: only the umask gives the exact
/// mode.)
fn bind_unix(socket: &Socket, path: &Path, mode: Option<u32>) -> io::Result<()> {
    let addr = SockAddr::unix(path)?;
    let Some(mode) = mode else {
        return socket.bind(&addr);
    };
    // SAFETY: umask only swaps this process's file-creation mask. The master binds before it
    // forks or starts anything, from its only thread, so no other file is created meanwhile.
    let saved = unsafe { libc::umask(!mode as libc::mode_t & 0o777) };
    let bound = socket.bind(&addr);
    // SAFETY: as above; the mask in force before is restored.
    unsafe { libc::umask(saved) };
    bound
}

/// Binds a unix socket whose file belongs to another user (`chown-socket`). Changing the
/// owner by path after bind(2), as uWSGI does, would follow whatever the path names by then: in
/// a directory the service user can write, a hard link to another file swapped in meanwhile
/// would have the master (root) give that file away. So the socket is bound in a private
/// directory made beside the final name (mode 0700, root's: nobody else can enter it), its owner
/// changed there, and the file then renamed into place; rename(2) replaces the final name
/// itself and follows no link. The socket stays bound to the file it created (connect(2) finds
/// a socket by its file, wherever the file is); only getsockname still reports the first path.
/// The directory is removed afterwards, whatever happened.
fn bind_unix_owned(
    socket: &Socket,
    path: &Path,
    mode: Option<u32>,
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // A short name: a unix socket path has at most 107 bytes.
    let private = tempfile::Builder::new()
        .prefix(".dg")
        .rand_bytes(6)
        .tempdir_in(parent)?;
    let inside = private.path().join("s");
    bind_unix(socket, &inside, mode)?;
    std::os::unix::fs::lchown(&inside, uid, gid).map_err(|e| {
        io::Error::other(format!(
            "chown-socket: cannot give the socket to uid {} gid {}: {e}",
            uid.map_or("(unchanged)".into(), |u| u.to_string()),
            gid.map_or("(unchanged)".into(), |g| g.to_string()),
        ))
    })?;
    std::fs::rename(&inside, path)
}

/// Removes a unix socket file nobody listens on (left by a crash); refuses a live one.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if !meta.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process listens there",
            )),
            Err(_) => std::fs::remove_file(path),
        },
    }
}

/// A bind error in words a user can act on.
pub(crate) fn explain_bind_error(listen: &Listen, err: &io::Error) -> String {
    let from = listen
        .origin
        .as_ref()
        .map(|o| format!(" (from {o})"))
        .unwrap_or_else(|| " (the default address)".into());
    let hint = match err.kind() {
        io::ErrorKind::AddrInUse => {
            "another process is listening there; stop it or choose another address".to_string()
        }
        io::ErrorKind::PermissionDenied => match listen.addr {
            ListenAddr::Tcp(_) => {
                "ports below 1024 need root (dragoman binds before it drops privileges)".into()
            }
            ListenAddr::Unix(_) => "the directory is not writable for this user".into(),
        },
        io::ErrorKind::AddrNotAvailable => "this machine has no such address".to_string(),
        io::ErrorKind::NotFound => "the directory does not exist".to_string(),
        _ if err.to_string().starts_with("chown-socket") => {
            "only root can give a file to another user: start dragoman as root (it drops to \
             `uid` after binding), or remove chown-socket"
                .to_string()
        }
        _ => "check the address".to_string(),
    };
    format!("cannot listen on {}{from}: {err}; {hint}", listen.addr)
}

/// What [`adopt_systemd`] made of systemd's sockets: those adopted, the configured addresses
/// left to bind, and the addresses of the sockets no configured address named (closed; the
/// caller says so, since `ListenStream=8000`, which is `[::]:8000`, and `http = :8000`, which
/// is `0.0.0.0:8000`, look alike and are not).
pub(crate) type Adopted = (Vec<Bound>, Vec<Listen>, Vec<ListenAddr>);

/// Sockets passed by systemd socket activation (`LISTEN_FDS`), matched to the configured
/// addresses. Returns them with the listen entries they stand for; the caller binds the rest.
/// When no address was configured, every inherited socket is used.
pub(crate) fn adopt_systemd(listens: &[Listen]) -> io::Result<Adopted> {
    let fds = systemd_fds();
    if fds.is_empty() {
        return Ok((Vec::new(), listens.to_vec(), Vec::new()));
    }
    let mut unused = Vec::new();
    let only_default = listens.iter().all(|l| l.origin.is_none());
    let mut adopted = Vec::new();
    let mut remaining: Vec<Listen> = if only_default {
        Vec::new()
    } else {
        listens.to_vec()
    };
    for fd in fds {
        // SAFETY: systemd passes these fds to this process (LISTEN_PID checked); we take
        // ownership of each exactly once.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        socket.set_nonblocking(true)?;
        // systemd passes them inheritable: the workers keep them across fork, but the
        // application's subprocesses must not get the listening socket.
        socket.set_cloexec(true)?;
        let local = socket.local_addr()?;
        let addr = match (local.as_socket(), local.as_pathname()) {
            (Some(tcp), _) => ListenAddr::Tcp(tcp),
            (None, Some(path)) => ListenAddr::Unix(path.to_path_buf()),
            _ => continue,
        };
        let wanted = remaining.iter().position(|l| same_address(&l.addr, &addr));
        if !only_default && wanted.is_none() {
            unused.push(addr); // an inherited socket nobody asked for; dropped, so closed
            continue;
        }
        let wire = wanted.map_or(Wire::Http, |i| remaining.remove(i).wire);
        let listener = match addr {
            ListenAddr::Tcp(_) => Listener::Tcp(socket.into()),
            ListenAddr::Unix(_) => Listener::Unix(UnixListener::from(OwnedFd::from(socket))),
        };
        adopted.push(Bound {
            listener,
            addr,
            wire,
            created: None,
        });
    }
    Ok((adopted, remaining, unused))
}

/// Whether a configured address names an inherited socket (`:8000` matches 0.0.0.0:8000).
fn same_address(configured: &ListenAddr, actual: &ListenAddr) -> bool {
    match (configured, actual) {
        (ListenAddr::Tcp(a), ListenAddr::Tcp(b)) => a == b,
        (ListenAddr::Unix(a), ListenAddr::Unix(b)) => a == b,
        _ => false,
    }
}

/// The fds systemd passed, if `LISTEN_PID` is this process.
fn systemd_fds() -> Vec<RawFd> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<RawFd>().ok())
        .unwrap_or(0);
    if !pid_matches || count <= 0 {
        return Vec::new();
    }
    (3..3 + count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_socket_stale_file_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listen = Listen {
            addr: ListenAddr::Unix(path.clone()),
            wire: Wire::Http,
            origin: None,
        };
        // (chmod-socket changes the process umask for a moment: tests/e2e/test_privileges.py
        // checks it, outside this multi-threaded test binary.)
        let first = bind(&listen, 16, SocketFile::default()).unwrap();
        let err = bind(&listen, 16, SocketFile::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first); // the file stays, nobody listens: stale
        assert!(path.exists());
        bind(&listen, 16, SocketFile::default()).unwrap();
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        let plain = Listen {
            addr: ListenAddr::Unix(dir.path().join("plain")),
            wire: Wire::Http,
            origin: None,
        };
        assert!(bind(&plain, 16, SocketFile::default()).is_err());
    }

    #[test]
    fn an_owned_unix_socket_is_made_aside_and_moved_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned.sock");
        let listen = Listen {
            addr: ListenAddr::Unix(path.clone()),
            wire: Wire::Http,
            origin: None,
        };
        // (Giving it to another user needs root: tests/e2e/test_procname.py does.)
        let file = SocketFile {
            mode: None,
            owner: Some((None, None)),
        };
        let bound = bind(&listen, 16, file).unwrap();
        assert_eq!(bound.created, Some(path.clone()));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("owned.sock")]);
        // Still the listening socket, at its new name.
        UnixStream::connect(&path).unwrap();
    }
}
