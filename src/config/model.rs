//! The typed configuration [`build`](super::build) validates the settings into: [`Config`],
//! and the parts of it `build` reads itself (limits, static files, recycling, daemonizing,
//! process titles, `cheaper`). The listeners ([`listen`](super::listen)), the applications
//! ([`app`](super::app)) and the option families with a file of their own (TLS, ASGI, daemons,
//! jobs, logging) keep their parts there.

use std::path::PathBuf;
use std::time::Duration;

use super::app::{AppTarget, Mount};
use super::asgi::AsgiConfig;
use super::daemons::Daemon;
use super::defaults;
use super::jobs::{Cron, Hook};
use super::listen::Listen;
use super::logging;
use super::source::{Notice, Origin};
use super::tls::TlsConfig;

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
    pub(crate) proxy_protocol: Option<crate::forwarded::TrustedProxies>,
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
