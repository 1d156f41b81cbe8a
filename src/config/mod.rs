//! Configuration: one option table ([`options`]) fed by four sources ([`source`]: command line,
//! `DRAGOMAN_*` environment variables, ini files, and the positional `module:callable`), merged
//! by precedence (CLI > env > ini > defaults) and validated into a typed [`Config`]
//! ([`build`]). Every uWSGI option name is known ([`uwsgi`]); defaults live in [`defaults`].
//!
//! Every error names where the bad value was written and shows a corrected example in that
//! source's syntax.

pub(crate) mod acme;
pub(crate) mod asgi;
pub(crate) mod build;
#[cfg(test)]
mod corpus;
pub(crate) mod daemons;
pub(crate) mod defaults;
pub(crate) mod gunicorn;
pub(crate) mod help;
pub(crate) mod ini;
mod jobs;
pub(crate) mod logging;
mod mounts;
pub(crate) mod options;
pub(crate) mod print;
#[cfg(test)]
mod reference;
mod resolve;
pub(crate) mod source;
pub(crate) mod tls;
pub(crate) mod uwsgi;
pub(crate) mod values;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use asgi::AsgiConfig;
pub(crate) use daemons::Daemon;
pub(crate) use jobs::{Cron, Hook, SignalAction};
pub(crate) use source::{Command, ConfigError, Mode, Origin, Setting};
pub(crate) use tls::TlsConfig;

use options::{OptionSpec, Status};
use values::parse_bool;

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

/// Where the WSGI application comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppSource {
    /// An importable module (`mysite.wsgi`).
    Module(String),
    /// A Python file loaded as a module (`wsgi-file`).
    File(PathBuf),
}

/// The application to serve: where it is and the callable's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppTarget {
    pub(crate) source: AppSource,
    pub(crate) callable: String,
    pub(crate) origin: Origin,
    /// `pkg.mod:create_app()`: the callable is a factory, called once (with no arguments) to
    /// get the WSGI application, as uWSGI and gunicorn allow.
    pub(crate) factory: bool,
}

impl AppTarget {
    /// Stands for the application while the rest of a config with errors is read (never run).
    fn placeholder() -> AppTarget {
        AppTarget {
            source: AppSource::Module(String::new()),
            callable: String::new(),
            origin: Origin::Positional,
            factory: false,
        }
    }

    fn call(&self) -> &'static str {
        if self.factory {
            "()"
        } else {
            ""
        }
    }

    /// `mysite.wsgi:application` or `app.py:application`, as users write it.
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            AppSource::Module(m) => format!("{m}:{}{}", self.callable, self.call()),
            AppSource::File(f) => format!("{}:{}{}", f.display(), self.callable, self.call()),
        }
    }
}

/// The validated configuration the master and workers run with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listeners: Vec<Listen>,
    pub(crate) backlog: i32,
    /// The main application (`module`, `wsgi-file`, `asgi`, or a `mount` at `/`); when
    /// `main_app` is false there is none, and this is the first mount's application, named
    /// here for log lines (it is loaded as that mount).
    pub(crate) app: AppTarget,
    /// Whether `app` is a main application, served at every path no mount takes.
    pub(crate) main_app: bool,
    /// `mount = PREFIX=APP` under a prefix (not `/`), in the order given, first of a prefix
    /// only.
    pub(crate) mounts: Vec<Mount>,
    /// `no-default-app`: without a main application, a request no mount takes is a 404
    /// rather than the first mount's.
    pub(crate) no_default_app: bool,
    pub(crate) chdir: Option<(PathBuf, Origin)>,
    pub(crate) pythonpath: Vec<PathBuf>,
    /// The virtualenv, and where it was set (for the Python-version error).
    pub(crate) home: Option<(PathBuf, Origin)>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) processes: usize,
    pub(crate) threads: usize,
    /// How long a stopping worker may take to finish its requests.
    pub(crate) mercy: Duration,
    /// Load the application in the master before forking.
    pub(crate) preload: bool,
    pub(crate) recycle: Recycle,
    /// A request running longer than this gets its worker killed and replaced.
    pub(crate) harakiri: Option<Duration>,
    pub(crate) touch_reload: Vec<PathBuf>,
    pub(crate) touch_chain_reload: Vec<PathBuf>,
    /// How often a worker checks whether a loaded .py file changed (development).
    pub(crate) py_autoreload: Option<Duration>,
    pub(crate) pidfile: Option<PathBuf>,
    pub(crate) vacuum: bool,
    /// The user and group to run as after binding, as written (name or number).
    pub(crate) uid: Option<(String, Origin)>,
    pub(crate) gid: Option<(String, Origin)>,
    pub(crate) umask: Option<u32>,
    pub(crate) chmod_socket: Option<u32>,
    /// Where the stats server listens, and whether it answers in HTTP.
    pub(crate) stats: Option<Listen>,
    pub(crate) stats_http: bool,
    /// Where the metrics listener is (`metrics`).
    pub(crate) metrics: Option<Listen>,
    /// The health check's path (`health-check`).
    pub(crate) health_check: Option<String>,
    /// How long a SIGTERM keeps serving with the health check failing (`shutdown-delay`).
    pub(crate) shutdown_delay: Duration,
    /// Whose forwarding headers are believed (`forwarded-allow-ips`).
    pub(crate) forwarded_allow_ips: crate::forwarded::TrustedProxies,
    pub(crate) statics: StaticConfig,
    pub(crate) limits: Limits,
    /// The peers whose PROXY protocol headers are believed, when the protocol is on.
    pub(crate) proxy_protocol: Option<Vec<IpAddr>>,
    /// TLS and HTTP/2.
    pub(crate) tls: TlsConfig,
    /// `pyargv`: the application's sys.argv\[1:\] (sys.argv is dragoman's command line
    /// without it).
    pub(crate) pyargv: Option<Vec<String>>,
    /// `daemonize` / `daemonize2`: detach, with stdout and stderr to a file.
    pub(crate) daemonize: Option<Daemonize>,
    /// Process titles (`auto-procname`, `procname*`).
    pub(crate) procname: Procname,
    /// `cheaper`: an adaptive worker count, at least this many, at most `processes`.
    pub(crate) cheaper: Option<Cheaper>,
    /// Attached daemons: commands the master runs beside the workers.
    pub(crate) daemons: Vec<Daemon>,
    /// `cron`, `unique-cron`: commands run at given times.
    pub(crate) crons: Vec<Cron>,
    /// `hook-master-start`: what the master does when it starts.
    pub(crate) hooks_master_start: Vec<Hook>,
    /// `chown-socket`: the owner of the unix sockets dragoman creates, as written (`user`,
    /// `user:group`), and where.
    pub(crate) chown_socket: Option<(String, Origin)>,
    /// What is logged and where (the logging family).
    pub(crate) logging: logging::Logging,
    /// `add-header`: added to every response the routes and the application give.
    pub(crate) add_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// False with `wsgi-disable-file-wrapper`: the environ has no `wsgi.file_wrapper`.
    pub(crate) wsgi_file_wrapper: bool,
    /// The interface the application is called through, and ASGI's options.
    pub(crate) asgi: AsgiConfig,
    /// Lines to log at startup: options accepted but not yet in effect (warnings), and uWSGI
    /// options with nothing to do in dragoman (information).
    pub(crate) notices: Vec<Notice>,
    /// Lines to log at startup as warnings (an unset `$(VAR)` in an ini file, say).
    pub(crate) warnings: Vec<String>,
    /// `strict`: ini keys that are no option were refused.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "recorded for --print-config (issue 26), which will read it"
        )
    )]
    pub(crate) strict: bool,
}

impl Config {
    /// The applications served, for log lines: `mysite.wsgi:application`, followed by the
    /// mounts' (`api.wsgi:application at /api`).
    pub(crate) fn describe_apps(&self) -> String {
        let mut text = match self.main_app {
            true => self.app.describe(),
            false => String::new(),
        };
        for mount in &self.mounts {
            if !text.is_empty() {
                text.push_str(", ");
            }
            text.push_str(&format!("{} at {}", mount.target.describe(), mount.prefix));
        }
        text
    }
}

/// Limits and timeouts that protect a worker from clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) head_bytes: usize,
    pub(crate) line_bytes: usize,
    pub(crate) header_fields: usize,
    /// Largest body (None: no limit).
    pub(crate) body_bytes: Option<u64>,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) request_queue: usize,
    /// Request bodies are read whole before the application is called: in memory up to this
    /// many bytes, then in a temporary file (`post-buffering`); 0: streamed as the app reads.
    pub(crate) post_buffering: u64,
    /// Bytes of request and response bodies a worker may hold in temporary files at once.
    pub(crate) spool_budget: u64,
    /// A request body must arrive at least this fast on average (bytes a second) once the
    /// first `body_timeout` has passed; 0: no minimum.
    pub(crate) body_min_rate: u64,
    /// How far a streamed response may run ahead of its client (bytes).
    pub(crate) response_buffer: u64,
    /// A client behind on a response must take it at least this fast on average (bytes a
    /// second) once `write_timeout` has passed; 0: no minimum.
    pub(crate) write_min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_bytes: defaults::BUFFER_SIZE,
            line_bytes: defaults::LIMIT_REQUEST_LINE,
            header_fields: defaults::LIMIT_REQUEST_FIELDS,
            body_bytes: Some(defaults::LIMIT_POST),
            header_timeout: defaults::HEADER_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            write_timeout: defaults::WRITE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            request_queue: defaults::REQUEST_QUEUE,
            post_buffering: defaults::POST_BUFFERING,
            spool_budget: defaults::SPOOL_BUDGET,
            body_min_rate: defaults::BODY_MIN_RATE,
            response_buffer: defaults::RESPONSE_BUFFER,
            write_min_rate: defaults::WRITE_MIN_RATE,
        }
    }
}

/// A URL prefix served from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticMount {
    /// `/static`, no trailing slash (or `/`).
    pub(crate) prefix: String,
    /// The directory, or the single file, it maps to.
    pub(crate) target: PathBuf,
    pub(crate) origin: Origin,
}

/// Static file serving: the mounts and how their files are served.
#[derive(Debug, Clone, Default)]
pub(crate) struct StaticConfig {
    pub(crate) mounts: Vec<StaticMount>,
    pub(crate) index: Vec<String>,
    /// Directories symlinks may lead into, besides the mount itself.
    pub(crate) safe: Vec<PathBuf>,
    /// (pattern on the file path, seconds) and (pattern on the URL, seconds).
    pub(crate) expires: Vec<(regex::Regex, u64)>,
    pub(crate) expires_uri: Vec<(regex::Regex, u64)>,
    pub(crate) max_age: Option<u64>,
    pub(crate) immutable: bool,
    pub(crate) precompressed: bool,
    pub(crate) dotfiles: bool,
    /// Bytes the per-worker cache of small files may hold.
    pub(crate) cache_bytes: u64,
}

/// When workers are replaced gracefully, besides reloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recycle {
    /// After this many requests (0: never), plus `max_requests_delta` per worker number.
    pub(crate) max_requests: u64,
    pub(crate) max_requests_delta: u64,
    pub(crate) max_lifetime: Option<Duration>,
    /// Resident memory limit in bytes.
    pub(crate) max_rss: Option<u64>,
}

/// A startup line about an option that is set but does nothing (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Logged as a warning: an option not in effect (yet), as opposed to one dragoman never
    /// needs (an info line).
    pub(crate) not_yet: bool,
    pub(crate) text: String,
}

/// `mount = PREFIX=APP`: an application served under a URL prefix (SCRIPT_NAME is the
/// prefix, PATH_INFO the rest of the path; see [`crate::mount`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Starts with `/`, no trailing `/`; `""` only while the config is read (the root).
    pub(crate) prefix: String,
    /// The application; its origin is the `mount` line's.
    pub(crate) target: AppTarget,
}

/// `daemonize = FILE` or `daemonize2 = FILE`: dragoman detaches from the terminal, and its
/// stdout and stderr (the log, the application's output) go to FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Daemonize {
    pub(crate) log: PathBuf,
    /// `daemonize2`: after the application is loaded (and the privileges dropped), rather
    /// than once the sockets are bound.
    pub(crate) after_load: bool,
    pub(crate) origin: Origin,
}

/// Process titles (`auto-procname`, `procname-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Procname {
    pub(crate) auto: bool,
    /// `procname-prefix`, or `procname-prefix-spaced` with its space.
    pub(crate) prefix: Option<String>,
    pub(crate) append: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) master: Option<String>,
}

/// `cheaper`: an adaptive worker count between `min` and `processes`, decided once a second
/// by uWSGI's default algorithm (spare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cheaper {
    /// `cheaper`: the fewest workers.
    pub(crate) min: usize,
    /// `cheaper-initial`: the workers at start (between `min` and `processes`).
    pub(crate) initial: usize,
    /// `cheaper-step`: workers added at a time.
    pub(crate) step: usize,
    /// `cheaper-overload`: seconds (the algorithm's cycles) all workers must be busy before
    /// more are added, and between two removals while they idle.
    pub(crate) overload: u32,
}

/// Reads the configuration from the command line (without argv\[0\]) and the environment.
pub(crate) fn load(args: &[String], env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let lookup_env = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let host = ini::host::System::new(&lookup_env);
    load_with(args, env, &host)
}

/// [`load`], with ini files, `$(VAR)`, `@(...)` and the magic variables read from `host`.
pub(crate) fn load_with(
    args: &[String],
    env: &[(String, String)],
    host: &dyn ini::host::Host,
) -> Result<Loaded, ConfigError> {
    let (cli, mode) = match source::from_cli(args)? {
        Command::Run(settings, mode) => (settings, mode),
        Command::Help => return Ok(Loaded::Help),
        Command::Version => return Ok(Loaded::Version),
    };
    if let Mode::Probe(Some(url)) = mode {
        return Ok(Loaded::Probe(Probe::Url(url)));
    }
    // Every problem of every source, not only the first.
    let (env_settings, mut errors) = source::from_env(env);
    let strict = cli
        .iter()
        .chain(&env_settings)
        .rfind(|s| s.spec.name == "strict")
        .is_some_and(|s| s.value.is_empty() || parse_bool(&s.value) == Some(true));

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
    let mut notices = Vec::new();
    let files: Vec<String> = ini_files.iter().map(|s| s.value.clone()).collect();
    for file in ini_files {
        let from = |e: ConfigError| ConfigError(format!("{} (from {})", e.0, file.origin));
        match source::from_ini(&file.value, host, strict) {
            Ok(read) => {
                all.extend(read.settings);
                warnings.extend(read.warnings);
                notices.extend(read.notices);
                errors.extend(read.errors.into_iter().map(from));
            }
            Err(e) => errors.push(from(e)),
        }
    }
    all.extend(env_settings);
    all.extend(cli);
    let built = match build::build_all(&all) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigError::joined(errors)),
        Err(more) => {
            // A configuration-wide error names the ini files it comes from.
            errors.extend(more.into_iter().map(|e| {
                if e.0.starts_with("no application") && !files.is_empty() {
                    ConfigError(format!("{}: {}", files.join(", "), e.0))
                } else {
                    e
                }
            }));
            Err(ConfigError::joined(errors))
        }
    };
    let built = built.map(|mut config| {
        config.warnings.splice(0..0, warnings);
        config.notices.extend(notices);
        Box::new(config)
    });
    Ok(match mode {
        Mode::Serve => Loaded::Run(built?),
        Mode::Check => Loaded::Check(built),
        Mode::PrintConfig => Loaded::PrintConfig(print::effective(&all, &*built?)),
        Mode::Probe(_) => Loaded::Probe(Probe::Config(built?)),
    })
}

/// What the command line asked for.
#[derive(Debug)]
pub(crate) enum Loaded {
    Help,
    Version,
    Run(Box<Config>),
    /// `--check`: the configuration, or every problem it has.
    Check(Result<Box<Config>, ConfigError>),
    /// `--print-config`: the text to print.
    PrintConfig(String),
    /// `--health-check`: where to ask.
    Probe(Probe),
}

/// Where `--health-check` asks: the URL given, or the configuration's first HTTP listener and
/// its `health-check` path.
#[derive(Debug)]
pub(crate) enum Probe {
    Url(String),
    Config(Box<Config>),
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

/// The option a planned/ignored check refers to; used by `--help`.
pub(crate) fn status_label(spec: &OptionSpec) -> Option<&'static str> {
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
    fn mounts_are_read_as_uwsgi_reads_them() {
        let f = ini_file(
            "[uwsgi]\ncallable = app\nmodule = site.wsgi:application\n\
             mount = /api/=api.wsgi\nmount = /blog=blog/wsgi.py\nmount = /x=x.py:make()\n\
             mount = /api=other:app\nmanage-script-name = true\n",
        );
        let p = f.path().to_str().unwrap();
        let c = load_run(&["--ini", p], &[]).unwrap();
        assert!(c.main_app && !c.no_default_app);
        assert_eq!(c.app.describe(), "site.wsgi:application");
        let mounts: Vec<String> = c
            .mounts
            .iter()
            .map(|m| format!("{} {} {}", m.prefix, m.target.describe(), m.target.origin))
            .collect();
        // A trailing slash is dropped; `callable` applies to a mount without one; a factory.
        assert_eq!(
            mounts,
            [
                format!("/api api.wsgi:app {p} line 4"),
                format!("/blog blog/wsgi.py:app {p} line 5"),
                format!("/x x.py:make() {p} line 6"),
            ]
        );
        // The same prefix again: the first serves it, as in uWSGI.
        assert!(
            c.warnings[0].contains("`mount` gives /api a second application"),
            "{:?}",
            c.warnings
        );
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.describe_apps().ends_with("x.py:make() at /x"),
            "{}",
            c.describe_apps()
        );

        // Mounts alone: the first is the default application, or none with no-default-app.
        let c = load_run(&["--mount", "/a=a:app", "--mount", "/b=b:app"], &[]).unwrap();
        assert!(!c.main_app && c.mounts.len() == 2);
        assert!(c
            .notices
            .iter()
            .any(|n| n.text.contains("a:app at /a (with an empty SCRIPT_NAME)")));
        assert!(
            c.warnings[0].contains("without `manage-script-name = true`"),
            "{:?}",
            c.warnings
        );
        let c = load_run(&["--mount", "/a=a:app", "--no-default-app"], &[]).unwrap();
        assert!(!c.main_app && c.no_default_app);
        assert!(!c
            .notices
            .iter()
            .any(|n| n.text.contains("empty SCRIPT_NAME")));
        // A mount at / is the main application.
        let c = load_run(&["--mount", "/=root:app", "--mount", "/a=a:app"], &[]).unwrap();
        assert!(c.main_app && c.app.describe() == "root:app" && c.mounts.len() == 1);
        // Nothing at all.
        let e = load_run(&["--manage-script-name"], &[]).unwrap_err();
        assert!(e.0.starts_with("no application to serve"), "{e}");
        // Bad values and ASGI.
        for bad in ["api", "api=x", "/api=", "/api=my-api", "/a=paste.ini"] {
            let e = load_run(&["m:app", "--mount", bad], &[]).unwrap_err();
            assert!(e.0.contains("option 'mount' expects"), "{bad}: {e}");
        }
        let e = load_run(&["--asgi", "s:app", "--mount", "/a=a:app"], &[]).unwrap_err();
        assert!(e.0.contains("main application is served as ASGI"), "{e}");
        let e = load_run(
            &["m:app", "--interface", "auto", "--mount", "/a=a:app"],
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("`interface = auto`"), "{e}");
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
        let f = ini_file("[uwsgi]\nmodule = a\nsocket =\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert!(
            e.0.starts_with(&format!("{p} line 3: option 'socket' expects an address")),
            "{e}"
        );
        assert!(e.0.contains("`socket = :3031`; got an empty value"), "{e}");
        let e = load_run(&["app", "--threads", "0"], &[]).unwrap_err();
        assert!(e.0.contains("as in `--threads 4`; got \"0\""), "{e}");
        let e = load_run(&["app"], &[("DRAGOMAN_PROCESSES", "x")]).unwrap_err();
        assert!(e.0.contains("as in `DRAGOMAN_PROCESSES=4`"), "{e}");
        let e = load_run(&["app", "--master=maybe"], &[]).unwrap_err();
        assert!(e.0.contains("expects true or false"), "{e}");
    }

    #[test]
    fn an_empty_http_is_the_default_address_and_says_so() {
        // The seed post's own ini, `http =` as it writes it.
        let f = ini_file("[uwsgi]\nhttp       =\nmodule     = myproj.wsgi\nmaster     = true\n");
        let p = f.path().to_str().unwrap();
        let c = load_run(&["--ini", p], &[]).unwrap();
        let addrs: Vec<String> = c.listeners.iter().map(|l| l.addr.to_string()).collect();
        assert_eq!(addrs, vec![defaults::HTTP]);
        assert!(
            c.notices.iter().any(|n| !n.not_yet
                && n.text
                    .starts_with(&format!("{p} line 2: `http =` names no address"))
                && n.text.contains("the default, 127.0.0.1:8000")),
            "{:?}",
            c.notices
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let f = ini_file(
            "[uwsgi]\nmodule = a\nthreads = many\nharakiri = soon\nstatic-map = static\n\
             gevent = 100\n",
        );
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[("DRAGOMAN_PROCESES", "2")]).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        for (at, what) in [
            ("line 3", "'threads'"),
            ("line 4", "'harakiri'"),
            ("line 5", "'static-map'"),
            ("line 6", "'gevent' is refused"),
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{p} {at}: ")) && l.contains(what)),
                "{at} {what}: {e}"
            );
        }
        assert!(lines.iter().any(|l| l.contains("DRAGOMAN_PROCESES")), "{e}");
    }

    #[test]
    fn unknown_ini_keys_are_placeholders_with_a_typo_warning_and_refused_when_strict() {
        // uWSGI keeps a key that is no option as a placeholder; dragoman says when it looks
        // like a misspelt option.
        let f = ini_file("[uwsgi]\nmodule = a\n\nprocceses = 2\nsite = shop\n");
        let p = f.path().to_str().unwrap();
        let c = load_run(&["--ini", p], &[]).unwrap();
        assert_eq!(c.processes, 1);
        assert_eq!(
            c.warnings,
            vec![format!(
                "{p} line 4: 'procceses' is no option, so it is kept as a placeholder (usable as \
                 %(procceses)), as uWSGI does; did you mean 'processes'?"
            )]
        );
        let f = ini_file("[uwsgi]\nstrict = true\nmodule = a\n\nprocceses = 2\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert!(
            e.0.starts_with(&format!(
                "{p} line 5: unknown option 'procceses'; did you mean 'processes'? `strict` is on"
            )),
            "{e}"
        );
        // Strict from the command line; set-placeholder is the way to a placeholder then.
        let f = ini_file("[uwsgi]\nset-ph = app=a\nmodule = %(app)\nvacum = 1\n");
        let p = f.path().to_str().unwrap();
        let e = load_run(&["--ini", p, "--strict"], &[]).unwrap_err();
        assert!(
            e.0.contains("line 4: unknown option 'vacum'; did you mean 'vacuum'?"),
            "{e}"
        );
        let f = ini_file("[uwsgi]\nset-ph = app=a\nmodule = %(app)\nignore-sigpipe\n");
        let c = load_run(&["--ini", f.path().to_str().unwrap(), "--strict"], &[]).unwrap();
        assert_eq!(c.app.describe(), "a:application");
    }

    #[test]
    fn uwsgi_options_are_covered_warned_or_refused() {
        let f = ini_file(
            "[uwsgi]\nmodule = a\nignore-sigpipe = true\nmaster-fifo = /tmp/f\n\
             route = ^/healthz$ donotlog:\n",
        );
        let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
        let texts: Vec<(bool, &str)> = c
            .notices
            .iter()
            .map(|n| (n.not_yet, n.text.as_str()))
            .collect();
        assert!(
            texts
                .iter()
                .any(|(warn, t)| !warn && t.contains("'ignore-sigpipe'")),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|(warn, t)| *warn
                && t.contains("'master-fifo'")
                && t.contains("send signals")),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|(warn, t)| *warn && t.contains("'route'")),
            "{texts:?}"
        );
        for (line, expected) in [
            ("gevent = 100", "set `threads = N`"),
            (
                "https2 = addr=:443,cert=c.pem,key=k.pem",
                "write the listener with `https`",
            ),
            (
                "route = ^/admin basicauth:Admin,u:p",
                "denies or authenticates",
            ),
            ("chroot = /srv/jail", "run dragoman in a container"),
        ] {
            let f = ini_file(&format!("[uwsgi]\nmodule = a\n{line}\n"));
            let p = f.path().to_str().unwrap();
            let e = load_run(&["--ini", p], &[]).unwrap_err();
            assert!(e.0.starts_with(&format!("{p} line 3: ")), "{e}");
            assert!(e.0.contains(expected), "{e}");
        }
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
        // uWSGI loads both and serves the module's application; dragoman serves the module.
        let c = load_run(&["--wsgi-file", "a.py", "mod"], &[]).unwrap();
        assert_eq!(c.app.describe(), "mod:application");
        assert!(
            c.warnings[0].contains("both module (mod) and wsgi-file (a.py)"),
            "{c:?}"
        );
        let c = load_run(&["pkg.app:create_app()"], &[]).unwrap();
        assert!(c.app.factory && c.app.callable == "create_app");
        assert_eq!(c.app.describe(), "pkg.app:create_app()");
        let e = load_run(&["my-site.wsgi"], &[]).unwrap_err();
        assert!(e.0.contains("a Python module path"), "{e}");
    }

    #[test]
    fn ignored_options_load_with_a_notice_and_none_is_left_planned() {
        let f = ini_file("[uwsgi]\nmodule = a\nhttp = :8000\nprotocol = http\nenable-threads\n");
        let p = f.path().to_str().unwrap();
        let c = load_run(&["--ini", p], &[]).unwrap();
        // `protocol` is in effect: only enable-threads, which dragoman has nothing to do for,
        // gets a notice.
        assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
        assert!(!c.notices[0].not_yet && c.notices[0].text.contains("enable-threads"));
        assert!(options::OPTIONS.iter().all(|o| o.status != Status::Planned));
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
