//! Configuration: one option table ([`options`]) fed by four sources ([`source`]: command line,
//! `DRAGOMAN_*` environment variables, ini files, and the positional `module:callable`), merged
//! by precedence (CLI > env > ini > defaults) and validated into a typed [`Config`].
//!
//! Every error names where the bad value was written and shows a corrected example in that
//! source's syntax.

pub mod help;
pub mod ini;
pub mod options;
pub mod source;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use source::{Command, ConfigError, Origin, Setting};

use options::{Kind, OptionSpec, Status};

/// An address to listen on: TCP, or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
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
pub enum Wire {
    /// HTTP/1.1 (`http`).
    Http,
    /// The uwsgi protocol, from nginx's `uwsgi_pass` (`socket`).
    Uwsgi,
}

/// One address to listen on, with the setting that asked for it (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: ListenAddr,
    pub wire: Wire,
    pub origin: Option<Origin>,
}

/// Where the WSGI application comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// An importable module (`mysite.wsgi`).
    Module(String),
    /// A Python file loaded as a module (`wsgi-file`).
    File(PathBuf),
}

/// The application to serve: where it is and the callable's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTarget {
    pub source: AppSource,
    pub callable: String,
    pub origin: Origin,
}

impl AppTarget {
    /// `mysite.wsgi:application` or `app.py:application`, as users write it.
    pub fn describe(&self) -> String {
        match &self.source {
            AppSource::Module(m) => format!("{m}:{}", self.callable),
            AppSource::File(f) => format!("{}:{}", f.display(), self.callable),
        }
    }
}

/// The validated configuration the master and workers run with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<Listen>,
    pub backlog: i32,
    pub app: AppTarget,
    pub chdir: Option<(PathBuf, Origin)>,
    pub pythonpath: Vec<PathBuf>,
    /// The virtualenv, and where it was set (for the Python-version error).
    pub home: Option<(PathBuf, Origin)>,
    pub env: Vec<(String, String)>,
    pub processes: usize,
    pub threads: usize,
    /// How long a stopping worker may take to finish its requests.
    pub mercy: Duration,
    /// Load the application in the master before forking.
    pub preload: bool,
    pub recycle: Recycle,
    /// A request running longer than this gets its worker killed and replaced.
    pub harakiri: Option<Duration>,
    pub touch_reload: Vec<PathBuf>,
    pub touch_chain_reload: Vec<PathBuf>,
    /// How often a worker checks whether a loaded .py file changed (development).
    pub py_autoreload: Option<Duration>,
    pub pidfile: Option<PathBuf>,
    pub vacuum: bool,
    /// The user and group to run as after binding, as written (name or number).
    pub uid: Option<(String, Origin)>,
    pub gid: Option<(String, Origin)>,
    pub umask: Option<u32>,
    pub chmod_socket: Option<u32>,
    /// Where the stats server listens, and whether it answers in HTTP.
    pub stats: Option<Listen>,
    pub stats_http: bool,
    pub statics: StaticConfig,
    pub limits: Limits,
    /// The peers whose PROXY protocol headers are believed, when the protocol is on.
    pub proxy_protocol: Option<Vec<IpAddr>>,
    /// Lines to log at startup: options accepted but not yet in effect (warnings), and uWSGI
    /// options with nothing to do in dragoman (information).
    pub notices: Vec<Notice>,
    /// Lines to log at startup as warnings (an unset `$(VAR)` in an ini file, say).
    pub warnings: Vec<String>,
}

/// Limits and timeouts that protect a worker from clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub head_bytes: usize,
    pub line_bytes: usize,
    pub header_fields: usize,
    /// Largest body (None: no limit).
    pub body_bytes: Option<u64>,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub request_queue: usize,
    /// Request bodies are read whole before the application is called: in memory up to this
    /// many bytes, then in a temporary file (`post-buffering`); 0: streamed as the app reads.
    pub post_buffering: u64,
    /// Bytes of request bodies a worker may hold in temporary files at once.
    pub body_spool_budget: u64,
    /// A request body must arrive at least this fast on average (bytes a second) once the
    /// first `body_timeout` has passed; 0: no minimum.
    pub body_min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_bytes: 32768,
            line_bytes: 8190,
            header_fields: 100,
            body_bytes: Some(1 << 30),
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 1024,
            request_queue: 128,
            post_buffering: 64 * 1024,
            body_spool_budget: 1 << 30,
            body_min_rate: 500,
        }
    }
}

/// A URL prefix served from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMount {
    /// `/static`, no trailing slash (or `/`).
    pub prefix: String,
    /// The directory, or the single file, it maps to.
    pub target: PathBuf,
    pub origin: Origin,
}

/// Static file serving: the mounts and how their files are served.
#[derive(Debug, Clone, Default)]
pub struct StaticConfig {
    pub mounts: Vec<StaticMount>,
    pub index: Vec<String>,
    /// Directories symlinks may lead into, besides the mount itself.
    pub safe: Vec<PathBuf>,
    /// (pattern on the file path, seconds) and (pattern on the URL, seconds).
    pub expires: Vec<(regex::Regex, u64)>,
    pub expires_uri: Vec<(regex::Regex, u64)>,
    pub max_age: Option<u64>,
    pub immutable: bool,
    pub precompressed: bool,
    pub dotfiles: bool,
    /// Bytes the per-worker cache of small files may hold.
    pub cache_bytes: u64,
}

/// When workers are replaced gracefully, besides reloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recycle {
    /// After this many requests (0: never), plus `max_requests_delta` per worker number.
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub max_lifetime: Option<Duration>,
    /// Resident memory limit in bytes.
    pub max_rss: Option<u64>,
}

/// A startup line about an option that is set but does nothing (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// A planned option (not yet in effect), as opposed to one dragoman never needs.
    pub not_yet: bool,
    pub text: String,
}

/// Reads the configuration from the command line (without argv\[0\]) and the environment.
pub fn load(args: &[String], env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let cli = match source::from_cli(args)? {
        Command::Run(settings) => settings,
        Command::Help => return Ok(Loaded::Help),
        Command::Version => return Ok(Loaded::Version),
    };
    let env_settings = source::from_env(env)?;
    let lookup_env = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    // The ini files to read come from the highest source that names any.
    let ini_files: Vec<&Setting> = [&cli, &env_settings]
        .into_iter()
        .map(|layer| {
            layer
                .iter()
                .filter(|s| s.spec.name == "ini")
                .collect::<Vec<_>>()
        })
        .find(|found| !found.is_empty())
        .unwrap_or_default();
    let mut all = Vec::new();
    let mut warnings = Vec::new();
    for file in ini_files {
        let (settings, w) = source::from_ini(&file.value, &lookup_env)
            .map_err(|e| ConfigError(format!("{} (from {})", e.0, file.origin)))?;
        all.extend(settings);
        warnings.extend(w);
    }
    all.extend(env_settings);
    all.extend(cli);
    let mut config = build(&all)?;
    config.warnings.splice(0..0, warnings);
    Ok(Loaded::Run(Box::new(config)))
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Loaded {
    Help,
    Version,
    Run(Box<Config>),
}

/// The settings that win for each option: those of the highest-ranked source that set it.
struct Resolved<'a> {
    by_option: HashMap<&'static str, Vec<&'a Setting>>,
}

impl<'a> Resolved<'a> {
    fn new(settings: &'a [Setting]) -> Self {
        let mut by_option: HashMap<&'static str, Vec<&'a Setting>> = HashMap::new();
        for s in settings {
            by_option.entry(s.spec.name).or_default().push(s);
        }
        for values in by_option.values_mut() {
            let top = values.iter().map(|s| s.origin.rank()).max().unwrap_or(0);
            values.retain(|s| s.origin.rank() == top);
        }
        Resolved { by_option }
    }

    /// Every winning value of a repeatable option, in order.
    fn all(&self, name: &str) -> &[&'a Setting] {
        self.by_option.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The winning value of a single-valued option: the last one written.
    fn last(&self, name: &str) -> Option<&'a Setting> {
        self.all(name).last().copied()
    }
}

/// An error about one setting's value: where, what was expected, an example, what was given.
fn bad_value(s: &Setting, expected: &str, example: &str) -> ConfigError {
    let got = if s.value.is_empty() {
        "got an empty value".to_string()
    } else {
        format!("got {:?}", s.value)
    };
    ConfigError(format!(
        "{}: option '{}' expects {expected}, as in {}; {got}",
        s.origin,
        s.spec.name,
        s.origin.example(s.spec, example)
    ))
}

/// Reads true/false, yes/no, on/off, 1/0 (any case).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn count(s: &Setting, min: usize, example: &str) -> Result<usize, ConfigError> {
    s.value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| bad_value(s, &format!("a whole number of at least {min}"), example))
}

/// Parses a listen address as uWSGI writes it: `:8000`, `*:8000`, `127.0.0.1:8000`,
/// `[::1]:8000`, `localhost:8000` (every address the name resolves to), or a unix socket path
/// (`/run/site.sock`, `./site.sock`, `unix:site.sock`).
pub fn parse_listen(value: &str) -> Result<Vec<ListenAddr>, String> {
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

/// Validates the merged settings into a [`Config`].
pub fn build(settings: &[Setting]) -> Result<Config, ConfigError> {
    let r = Resolved::new(settings);

    // Flags of every status must at least be booleans.
    for s in settings.iter().filter(|s| s.spec.kind == Kind::Flag) {
        if !s.value.is_empty() && parse_bool(&s.value).is_none() {
            return Err(bad_value(
                s,
                "true or false (also yes/no, on/off, 1/0)",
                "true",
            ));
        }
    }

    let mut listeners: Vec<Listen> = Vec::new();
    for (option, wire, example) in [
        ("http", Wire::Http, ":8000"),
        ("socket", Wire::Uwsgi, ":3031"),
    ] {
        for s in r.all(option) {
            let addrs = parse_listen(&s.value).map_err(|why| {
                bad_value(s, &format!("an address to listen on ({why})"), example)
            })?;
            for addr in addrs {
                // The same address twice is one listener; port 0 asks for a new port each time.
                let ephemeral = matches!(addr, ListenAddr::Tcp(a) if a.port() == 0);
                match listeners.iter().find(|l| l.addr == addr) {
                    Some(taken) if !ephemeral && taken.wire != wire => {
                        return Err(ConfigError(format!(
                            "{}: {addr} is already {} listener ({}); one address speaks one \
                             protocol: give `socket` (uwsgi) and `http` different addresses",
                            s.origin,
                            if taken.wire == Wire::Http {
                                "an http"
                            } else {
                                "a uwsgi"
                            },
                            taken
                                .origin
                                .as_ref()
                                .map_or_else(|| "the default".to_string(), |o| o.to_string()),
                        )))
                    }
                    Some(_) if !ephemeral => {}
                    _ => listeners.push(Listen {
                        addr,
                        wire,
                        origin: Some(s.origin.clone()),
                    }),
                }
            }
        }
    }
    if listeners.is_empty() {
        listeners.push(Listen {
            addr: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8000))),
            wire: Wire::Http,
            origin: None,
        });
    }

    let app = app_target(&r)?;
    let nonempty_path = |s: &Setting, example: &str| -> Result<PathBuf, ConfigError> {
        if s.value.trim().is_empty() {
            Err(bad_value(s, "a path", example))
        } else {
            Ok(PathBuf::from(s.value.trim()))
        }
    };
    let chdir = r
        .last("chdir")
        .map(|s| nonempty_path(s, "/srv/mysite").map(|p| (p, s.origin.clone())))
        .transpose()?;
    let pythonpath = r
        .all("pythonpath")
        .iter()
        .map(|s| nonempty_path(s, "/srv/mysite/lib"))
        .collect::<Result<_, _>>()?;
    let home = r
        .last("home")
        .map(|s| nonempty_path(s, "/srv/mysite/venv").map(|p| (p, s.origin.clone())))
        .transpose()?;
    let env = r
        .all("env")
        .iter()
        .map(|s| match s.value.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(bad_value(
                s,
                "KEY=VALUE",
                "DJANGO_SETTINGS_MODULE=mysite.settings",
            )),
        })
        .collect::<Result<_, _>>()?;

    let processes = r
        .last("processes")
        .map(|s| count(s, 1, "4"))
        .transpose()?
        .unwrap_or(1);
    let threads = r
        .last("threads")
        .map(|s| count(s, 1, "4"))
        .transpose()?
        .unwrap_or(1);
    let backlog = r
        .last("listen")
        .map(|s| count(s, 1, "1024"))
        .transpose()?
        .unwrap_or(1024)
        .min(i32::MAX as usize) as i32;
    let mercy = r
        .last("worker-reload-mercy")
        .map(|s| count(s, 0, "30"))
        .transpose()?
        .unwrap_or(60);

    let flag = |name: &str, default: bool| -> bool {
        r.last(name)
            .map(|s| s.value.is_empty() || parse_bool(&s.value).unwrap_or(default))
            .unwrap_or(default)
    };
    let number = |name: &str, example: &str| -> Result<u64, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, 0, example))
            .transpose()?
            .unwrap_or(0) as u64)
    };
    let seconds = |name: &str| -> Result<Option<Duration>, ConfigError> {
        Ok(Some(number(name, "30")?)
            .filter(|n| *n > 0)
            .map(Duration::from_secs))
    };
    let recycle = Recycle {
        max_requests: number("max-requests", "1000")?,
        max_requests_delta: number("max-requests-delta", "10")?,
        max_lifetime: seconds("max-worker-lifetime")?,
        max_rss: Some(number("reload-on-rss", "512")?)
            .filter(|n| *n > 0)
            .map(|mib| mib * 1024 * 1024),
    };
    let py_autoreload = match r.last("py-autoreload") {
        None => None,
        Some(s) => match parse_bool(&s.value) {
            Some(on) => on.then(|| Duration::from_secs(1)),
            None => Some(count(s, 0, "1")? as u64)
                .filter(|n| *n > 0)
                .map(Duration::from_secs),
        },
    };
    let octal = |name: &str, example: &str| -> Result<Option<u32>, ConfigError> {
        r.last(name)
            .map(|s| {
                u32::from_str_radix(s.value.trim(), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| bad_value(s, "an octal permission mask", example))
            })
            .transpose()
    };
    let stats = r
        .last("stats")
        .map(|s| match parse_listen(&s.value) {
            Ok(addrs) => Ok(Listen {
                addr: addrs
                    .into_iter()
                    .next()
                    .expect("parse_listen returns at least one"),
                wire: Wire::Http,
                origin: Some(s.origin.clone()),
            }),
            Err(why) => Err(bad_value(
                s,
                &format!("an address ({why})"),
                "127.0.0.1:9191",
            )),
        })
        .transpose()?;
    let named = |name: &str| {
        r.last(name)
            .map(|s| (s.value.trim().to_string(), s.origin.clone()))
    };
    let paths = |name: &str| -> Vec<PathBuf> {
        r.all(name)
            .iter()
            .map(|s| PathBuf::from(s.value.trim()))
            .collect()
    };
    let statics = static_config(&r, &flag)?;
    let limits = limits(&r)?;
    let proxy_protocol = if flag("proxy-protocol", false) {
        let allowed = r
            .all("proxy-allow-from")
            .iter()
            .map(|s| {
                s.value
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| bad_value(s, "an IP address", "10.0.0.5"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some(if allowed.is_empty() {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ]
        } else {
            allowed
        })
    } else {
        None
    };

    Ok(Config {
        preload: flag("preload", false) || !flag("lazy-apps", true),
        recycle,
        harakiri: seconds("harakiri")?,
        touch_reload: paths("touch-reload"),
        touch_chain_reload: paths("touch-chain-reload"),
        py_autoreload,
        pidfile: r.last("pidfile").map(|s| PathBuf::from(s.value.trim())),
        vacuum: flag("vacuum", false),
        uid: named("uid"),
        gid: named("gid"),
        umask: octal("umask", "022")?,
        chmod_socket: octal("chmod-socket", "660")?,
        stats,
        stats_http: flag("stats-http", false),
        statics,
        limits,
        proxy_protocol,
        listeners,
        backlog,
        app,
        chdir,
        pythonpath,
        home,
        env,
        processes,
        threads,
        mercy: Duration::from_secs(mercy as u64),
        notices: notices(&r),
        warnings: Vec::new(),
    })
}

/// The limits and timeouts, each checked for a sensible value.
fn limits(r: &Resolved<'_>) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let n = |name: &str, min: usize, example: &str, default: usize| -> Result<usize, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, min, example))
            .transpose()?
            .unwrap_or(default))
    };
    let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, 1, "30"))
            .transpose()?
            .map_or(default, |n| Duration::from_secs(n as u64)))
    };
    let byte_count = |name: &str, example: &str, default: u64| -> Result<u64, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, 0, example))
            .transpose()?
            .map_or(default, |n| n as u64))
    };
    let head_bytes = n("buffer-size", 1024, "32768", d.head_bytes)?;
    // The request line is part of the head: unless set, its limit shrinks to fit (uWSGI's
    // default buffer-size of 4096 must load).
    let line_bytes = match r.last("limit-request-line") {
        None => d.line_bytes.min(head_bytes),
        Some(s) => count(s, 64, "8190")?,
    };
    if line_bytes > head_bytes {
        let s = r
            .last("limit-request-line")
            .expect("set, or it would have been clamped");
        return Err(ConfigError(format!(
            "{}: limit-request-line ({line_bytes}) cannot be larger than buffer-size ({head_bytes}), \
             which the request line is part of; raise buffer-size or lower limit-request-line",
            s.origin
        )));
    }
    Ok(Limits {
        head_bytes,
        line_bytes,
        header_fields: n("limit-request-fields", 1, "100", d.header_fields)?,
        body_bytes: r
            .last("limit-post")
            .map(|s| count(s, 0, "10485760"))
            .transpose()?
            .map_or(d.body_bytes, |n| Some(n as u64).filter(|n| *n > 0)),
        header_timeout: secs("header-timeout", d.header_timeout)?,
        body_timeout: secs("body-timeout", d.body_timeout)?,
        write_timeout: secs("write-timeout", d.write_timeout)?,
        max_connections: n("max-connections", 1, "1024", d.max_connections)?,
        request_queue: n("request-queue", 0, "128", d.request_queue)?,
        post_buffering: byte_count("post-buffering", "65536", d.post_buffering)?,
        body_spool_budget: byte_count("body-spool-budget", "1073741824", d.body_spool_budget)?,
        body_min_rate: byte_count("body-min-rate", "500", d.body_min_rate)?,
    })
}

/// The static-file options: mounts, caching and the rest.
fn static_config(
    r: &Resolved<'_>,
    flag: &dyn Fn(&str, bool) -> bool,
) -> Result<StaticConfig, ConfigError> {
    let mut mounts = Vec::new();
    for (name, appended) in [("static-map", false), ("static-map2", true)] {
        for s in r.all(name) {
            let example = "/static=/srv/mysite/static";
            let (prefix, target) = s
                .value
                .split_once('=')
                .map(|(p, t)| (p.trim(), t.trim()))
                .filter(|(p, t)| p.starts_with('/') && !t.is_empty())
                .ok_or_else(|| bad_value(s, "MOUNT=PATH, the mount starting with /", example))?;
            let prefix = match prefix.trim_end_matches('/') {
                "" => "/".to_string(),
                p => p.to_string(),
            };
            let mut target = PathBuf::from(target);
            if appended {
                target.push(prefix.trim_start_matches('/'));
            }
            mounts.push(StaticMount {
                prefix,
                target,
                origin: s.origin.clone(),
            });
        }
    }
    for s in r.all("check-static") {
        if s.value.trim().is_empty() {
            return Err(bad_value(s, "a directory", "/srv/mysite/public"));
        }
        mounts.push(StaticMount {
            prefix: "/".into(),
            target: PathBuf::from(s.value.trim()),
            origin: s.origin.clone(),
        });
    }
    let expires = |name: &str, example: &str| -> Result<Vec<(regex::Regex, u64)>, ConfigError> {
        r.all(name)
            .iter()
            .map(|s| {
                let expected = "a regular expression and a number of seconds";
                let (pattern, secs) = s
                    .value
                    .trim()
                    .rsplit_once(char::is_whitespace)
                    .ok_or_else(|| bad_value(s, expected, example))?;
                let secs = secs
                    .parse::<u64>()
                    .map_err(|_| bad_value(s, expected, example))?;
                let re = regex::Regex::new(pattern.trim()).map_err(|e| {
                    bad_value(
                        s,
                        &format!("{expected} (the pattern does not compile: {e})"),
                        example,
                    )
                })?;
                Ok((re, secs))
            })
            .collect()
    };
    let cache_mib = r
        .last("static-cache")
        .map(|s| count(s, 0, "64"))
        .transpose()?
        .unwrap_or(64) as u64;
    Ok(StaticConfig {
        mounts,
        index: r
            .all("static-index")
            .iter()
            .map(|s| s.value.trim().to_string())
            .collect(),
        safe: r
            .all("static-safe")
            .iter()
            .map(|s| PathBuf::from(s.value.trim()))
            .collect(),
        expires: expires("static-expires", "/srv/mysite/static/.*\\.css 86400")?,
        expires_uri: expires("static-expires-uri", "^/static/.*\\.css 86400")?,
        max_age: r
            .last("static-max-age")
            .map(|s| count(s, 0, "3600"))
            .transpose()?
            .map(|n| n as u64),
        immutable: flag("static-immutable", true),
        precompressed: flag("static-gzip-all", true),
        dotfiles: flag("static-dotfiles", false),
        cache_bytes: cache_mib * 1024 * 1024,
    })
}

fn app_target(r: &Resolved<'_>) -> Result<AppTarget, ConfigError> {
    let module = r.last("module");
    let file = r.last("wsgi-file");
    let callable = r.last("callable");
    if let Some(c) = callable {
        if !is_identifier(c.value.trim()) {
            return Err(bad_value(c, "a Python identifier", "application"));
        }
    }
    let default_callable = callable.map_or("application", |c| c.value.trim());
    match (module, file) {
        (Some(m), Some(f)) => Err(ConfigError(format!(
            "both module ({}) and wsgi-file ({}) are set; dragoman serves one application, so \
             keep one of them",
            m.origin, f.origin
        ))),
        (Some(m), None) => {
            let text = m.value.trim();
            let (module, name) = match text.split_once(':') {
                Some((module, name)) => (module, name),
                None => (text, default_callable),
            };
            let valid_module = !module.is_empty() && module.split('.').all(is_identifier);
            if !valid_module || !is_identifier(name) {
                return Err(bad_value(
                    m,
                    "a Python module path, optionally with :callable",
                    "mysite.wsgi:application",
                ));
            }
            Ok(AppTarget {
                source: AppSource::Module(module.to_string()),
                callable: name.to_string(),
                origin: m.origin.clone(),
            })
        }
        (None, Some(f)) => {
            if f.value.trim().is_empty() {
                return Err(bad_value(f, "the path of a Python file", "mysite/wsgi.py"));
            }
            Ok(AppTarget {
                source: AppSource::File(PathBuf::from(f.value.trim())),
                callable: default_callable.to_string(),
                origin: f.origin.clone(),
            })
        }
        (None, None) => Err(ConfigError(
            "no application to serve: name it on the command line (`dragoman mysite.wsgi:application`), \
             or in the ini file (`module = mysite.wsgi`), or with --wsgi-file app.py"
                .into(),
        )),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Startup notices for options that are set but planned or ignored.
fn notices(r: &Resolved<'_>) -> Vec<Notice> {
    let mut planned = Vec::new();
    let mut lines = Vec::new();
    for spec in options::OPTIONS {
        let Some(s) = r.all(spec.name).first() else {
            continue;
        };
        match spec.status {
            Status::Active => {}
            Status::Planned => planned.push(format!("{} ({})", spec.name, s.origin)),
            Status::Ignored(why) => lines.push(Notice {
                not_yet: false,
                text: format!(
                    "option '{}' ({}) has nothing to do in dragoman: {why}",
                    spec.name, s.origin
                ),
            }),
        }
    }
    if !planned.is_empty() {
        lines.insert(
            0,
            Notice {
                not_yet: true,
                text: format!(
                    "not yet in effect in dragoman {}, accepted and ignored for now: {}",
                    env!("CARGO_PKG_VERSION"),
                    planned.join(", ")
                ),
            },
        );
    }
    lines
}

/// The option a planned/ignored check refers to; used by `--help`.
pub fn status_label(spec: &OptionSpec) -> Option<&'static str> {
    match spec.status {
        Status::Active => None,
        Status::Planned => Some("not yet in effect"),
        Status::Ignored(why) => Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match load(&args, &env)? {
            Loaded::Run(c) => Ok(*c),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn ini_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn precedence_cli_over_env_over_ini() {
        let f = ini_file("[uwsgi]\nmodule = a.wsgi\nthreads = 2\nprocesses = 3\nhttp = :7000\n");
        let path = f.path().to_str().unwrap();
        let c = load_run(&["--ini", path], &[]).unwrap();
        assert_eq!((c.threads, c.processes), (2, 3));
        let c = load_run(&["--ini", path], &[("DRAGOMAN_THREADS", "5")]).unwrap();
        assert_eq!((c.threads, c.processes), (5, 3));
        let c = load_run(
            &["--ini", path, "--threads", "7", "b.wsgi:app"],
            &[("DRAGOMAN_THREADS", "5")],
        )
        .unwrap();
        assert_eq!((c.threads, c.processes), (7, 3));
        assert_eq!(c.app.describe(), "b.wsgi:app");
        assert_eq!(
            c.listeners[0].addr,
            ListenAddr::Tcp("0.0.0.0:7000".parse().unwrap())
        );
        // The ini file can come from the environment too.
        let c = load_run(&[], &[("DRAGOMAN_INI", path)]).unwrap();
        assert_eq!(c.app.describe(), "a.wsgi:application");
    }

    #[test]
    fn repeated_keys_accumulate_and_defaults_apply() {
        let f = ini_file("[uwsgi]\nmodule = a\nhttp = 127.0.0.1:1\nhttp = [::1]:2\npythonpath = /x\npythonpath = /y\n");
        let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
        let addrs: Vec<String> = c.listeners.iter().map(|l| l.addr.to_string()).collect();
        assert!(!c.vacuum && c.harakiri.is_none() && c.recycle == Recycle::default());
        assert_eq!(addrs, vec!["127.0.0.1:1", "[::1]:2"]);
        assert_eq!(c.pythonpath, vec![PathBuf::from("/x"), PathBuf::from("/y")]);
        assert_eq!((c.threads, c.processes, c.backlog), (1, 1, 1024));
        let c = load_run(&["app"], &[]).unwrap();
        assert_eq!(c.listeners[0].addr.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn value_errors_name_file_line_option_expectation_and_example() {
        let f = ini_file("[uwsgi]\nmodule = a\nthreads = many\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert_eq!(
            e.0,
            format!(
                "{p} line 3: option 'threads' expects a whole number of at least 1, as in \
                 `threads = 4`; got \"many\""
            )
        );
        let f = ini_file("[uwsgi]\nmodule = a\nhttp =\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert!(
            e.0.starts_with(&format!("{p} line 3: option 'http' expects an address")),
            "{e}"
        );
        assert!(e.0.contains("`http = :8000`; got an empty value"), "{e}");
        let e = load_run(&["app", "--threads", "0"], &[]).unwrap_err();
        assert!(e.0.contains("as in `--threads 4`; got \"0\""), "{e}");
        let e = load_run(&["app"], &[("DRAGOMAN_PROCESSES", "x")]).unwrap_err();
        assert!(e.0.contains("as in `DRAGOMAN_PROCESSES=4`"), "{e}");
        let e = load_run(&["app", "--master=maybe"], &[]).unwrap_err();
        assert!(e.0.contains("expects true or false"), "{e}");
    }

    #[test]
    fn unknown_ini_option_names_line_and_suggests() {
        let f = ini_file("[uwsgi]\nmodule = a\n\nprocceses = 2\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert_eq!(
            e.0,
            format!("{p} line 4: unknown option 'procceses'; did you mean 'processes'? (from command line option --ini)")
        );
    }

    #[test]
    fn placeholder_keys_are_not_unknown_options() {
        let f = ini_file("[uwsgi]\nproject = shop\nmodule = %(project).wsgi\n");
        let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
        assert_eq!(c.app.describe(), "shop.wsgi:application");
    }

    #[test]
    fn app_forms() {
        let c = load_run(&["--module", "pkg.mod", "--callable", "app"], &[]).unwrap();
        assert_eq!(c.app.describe(), "pkg.mod:app");
        let c = load_run(&["--wsgi-file", "x/app.py"], &[]).unwrap();
        assert_eq!(c.app.source, AppSource::File("x/app.py".into()));
        let e = load_run(&[], &[]).unwrap_err();
        assert!(e.0.starts_with("no application to serve"), "{e}");
        let e = load_run(&["--wsgi-file", "a.py", "mod"], &[]).unwrap_err();
        assert!(e.0.contains("both module"), "{e}");
        let e = load_run(&["my-site.wsgi"], &[]).unwrap_err();
        assert!(e.0.contains("a Python module path"), "{e}");
    }

    #[test]
    fn planned_and_ignored_options_load_with_notices() {
        let f = ini_file("[uwsgi]\nmodule = a\nhttp = :8000\nhttps = :443,c,k\nenable-threads\n");
        let p = f.path().to_str().unwrap();
        let c = load_run(&["--ini", p], &[]).unwrap();
        assert!(c.notices[0].not_yet && c.notices[0].text.contains("not yet in effect"));
        assert!(c.notices[0].text.contains(&format!("https ({p} line 4)")));
        assert!(!c.notices[1].not_yet && c.notices[1].text.contains("enable-threads"));
    }

    #[test]
    fn process_management_options() {
        let f = ini_file(
            "[uwsgi]\nmodule = a\nmax-requests = 1000\nmax-requests-delta = 10\n\
             max-worker-lifetime = 3600\nreload-on-rss = 256\nharakiri = 30\n\
             touch-reload = /tmp/reload\npy-autoreload = 2\npidfile = /tmp/d.pid\nvacuum\n\
             uid = www-data\ngid = 33\numask = 022\nchmod-socket = 660\n\
             stats = 127.0.0.1:9191\nlazy-apps = false\n",
        );
        let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
        assert_eq!(c.recycle.max_requests, 1000);
        assert_eq!(c.recycle.max_requests_delta, 10);
        assert_eq!(c.recycle.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(c.recycle.max_rss, Some(256 * 1024 * 1024));
        assert_eq!(c.harakiri, Some(Duration::from_secs(30)));
        assert_eq!(c.touch_reload, vec![PathBuf::from("/tmp/reload")]);
        assert_eq!(c.py_autoreload, Some(Duration::from_secs(2)));
        assert_eq!(c.pidfile, Some(PathBuf::from("/tmp/d.pid")));
        assert!(c.vacuum && c.preload);
        assert_eq!(c.uid.unwrap().0, "www-data");
        assert_eq!(c.gid.unwrap().0, "33");
        assert_eq!((c.umask, c.chmod_socket), (Some(0o22), Some(0o660)));
        assert_eq!(
            c.stats.unwrap().addr,
            ListenAddr::Tcp("127.0.0.1:9191".parse().unwrap())
        );
        let e = load_run(&["app", "--umask", "9"], &[]).unwrap_err();
        assert!(e.0.contains("expects an octal permission mask"), "{e}");
        let c = load_run(&["app", "--py-autoreload", "true"], &[]).unwrap();
        assert_eq!(c.py_autoreload, Some(Duration::from_secs(1)));
    }

    #[test]
    fn static_options() {
        let f = ini_file(
            "[uwsgi]\nmodule = a\nstatic-map = /static/=/srv/s\nstatic-map = /favicon.ico=/srv/f.ico\n\
             static-map2 = /media=/srv\ncheck-static = /srv/public\nstatic-index = index.html\n\
             static-expires = /srv/.*\\.css 3600\nstatic-max-age = 60\nstatic-immutable = false\n",
        );
        let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
        let m: Vec<(String, PathBuf)> = c
            .statics
            .mounts
            .iter()
            .map(|m| (m.prefix.clone(), m.target.clone()))
            .collect();
        assert_eq!(
            m,
            vec![
                ("/static".into(), "/srv/s".into()),
                ("/favicon.ico".into(), "/srv/f.ico".into()),
                ("/media".into(), "/srv/media".into()),
                ("/".into(), "/srv/public".into()),
            ]
        );
        assert_eq!(c.statics.index, vec!["index.html"]);
        assert_eq!(c.statics.expires[0].1, 3600);
        assert!(c.statics.expires[0].0.is_match("/srv/x/a.css"));
        assert_eq!(c.statics.max_age, Some(60));
        assert!(!c.statics.immutable && c.statics.precompressed && !c.statics.dotfiles);
        let e = load_run(&["a", "--static-map", "static=/x"], &[]).unwrap_err();
        assert!(e.0.contains("expects MOUNT=PATH"), "{e}");
        let e = load_run(&["a", "--static-expires", "([ 10"], &[]).unwrap_err();
        assert!(e.0.contains("does not compile"), "{e}");
    }

    #[test]
    fn limit_options() {
        let c = load_run(&["a"], &[]).unwrap();
        assert_eq!(c.limits, Limits::default());
        let c = load_run(
            &[
                "a",
                "--buffer-size",
                "65536",
                "--limit-post",
                "1000",
                "--header-timeout",
                "5",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.limits.head_bytes, 65536);
        assert_eq!(c.limits.body_bytes, Some(1000));
        assert_eq!(c.limits.header_timeout, Duration::from_secs(5));
        let c = load_run(&["a", "--buffer-size", "4096"], &[]).unwrap();
        assert_eq!(c.limits.line_bytes, 4096);
        let e = load_run(
            &["a", "--buffer-size", "4096", "--limit-request-line", "8000"],
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("cannot be larger than buffer-size"), "{e}");
        let e = load_run(&["a", "--header-timeout", "0"], &[]).unwrap_err();
        assert!(e.0.contains("at least 1"), "{e}");
    }

    #[test]
    fn listen_addresses() {
        let tcp = |s: &str| vec![ListenAddr::Tcp(s.parse().unwrap())];
        assert_eq!(parse_listen(":80").unwrap(), tcp("0.0.0.0:80"));
        assert_eq!(parse_listen("*:80").unwrap(), tcp("0.0.0.0:80"));
        assert_eq!(parse_listen("[::]:80").unwrap(), tcp("[::]:80"));
        assert_eq!(parse_listen("10.1.2.3:9").unwrap(), tcp("10.1.2.3:9"));
        assert!(parse_listen("localhost:80")
            .unwrap()
            .iter()
            .all(|a| matches!(a, ListenAddr::Tcp(a) if a.ip().is_loopback())));
        assert!(parse_listen("8000").is_err());
        assert!(parse_listen(":http").is_err());
        let unix = |s: &str| vec![ListenAddr::Unix(PathBuf::from(s))];
        assert_eq!(parse_listen("/tmp/x.sock").unwrap(), unix("/tmp/x.sock"));
        assert_eq!(parse_listen("unix:x.sock").unwrap(), unix("x.sock"));
    }
}
