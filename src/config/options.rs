//! The option table: the one list of every option dragoman knows. The command line, ini files,
//! `DRAGOMAN_*` environment variables and `--help` are all derived from it, so an option exists
//! in all four places or in none.
//!
//! Names follow uWSGI, so a site's existing `uwsgi.ini` loads unchanged; gunicorn names are
//! aliases where they do not clash.

/// The sections of `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Config,
    Application,
    Server,
    Processes,
    Static,
    Logging,
    Limits,
    Compat,
}

impl Group {
    pub(crate) const ALL: [Group; 8] = [
        Group::Config,
        Group::Application,
        Group::Server,
        Group::Processes,
        Group::Logging,
        Group::Static,
        Group::Limits,
        Group::Compat,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Group::Config => "Configuration files",
            Group::Application => "Application",
            Group::Server => "Listeners and HTTP",
            Group::Processes => "Processes and workers",
            Group::Static => "Static files",
            Group::Logging => "Logging",
            Group::Limits => "Limits and timeouts",
            Group::Compat => "uWSGI compatibility (accepted, nothing to do in dragoman)",
        }
    }
}

/// How an option's value is written; decides how a bare `--flag` or `key` line is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// true/false, yes/no, on/off, 1/0; a bare name means true.
    Flag,
    /// Anything else: the typed parsing happens when the config is built.
    Value,
}

/// Whether an option does something in this version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Implemented.
    Active,
    /// Parsed and validated so existing configs load, but not yet in effect; startup says so.
    Planned,
    /// A uWSGI option that has no job to do in dragoman; the reason is logged at startup.
    Ignored(&'static str),
}

/// An option's default, typed: the values come from [`super::defaults`], which `build` uses
/// too, so `--help` cannot show another default than the one in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    None,
    Text(&'static str),
    Count(usize),
    Secs(u64),
    Flag(bool),
}

impl DefaultValue {
    /// As `--help` shows it; empty for none.
    pub(crate) fn shown(self) -> String {
        match self {
            DefaultValue::None => String::new(),
            DefaultValue::Text(t) => t.to_string(),
            DefaultValue::Count(n) => n.to_string(),
            DefaultValue::Secs(n) => n.to_string(),
            DefaultValue::Flag(b) => b.to_string(),
        }
    }
}

/// One option: everything the sources, the validator and `--help` need to know about it.
#[derive(Debug)]
pub(crate) struct OptionSpec {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) group: Group,
    pub(crate) kind: Kind,
    pub(crate) repeatable: bool,
    /// Shown in `--help`.
    pub(crate) default: DefaultValue,
    /// The placeholder shown in `--help` (`ADDR`, `N`); empty for flags.
    pub(crate) metavar: &'static str,
    pub(crate) status: Status,
    pub(crate) help: &'static str,
}

const fn opt(
    name: &'static str,
    group: Group,
    metavar: &'static str,
    default: DefaultValue,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases: &[],
        group,
        kind: Kind::Value,
        repeatable: false,
        default,
        metavar,
        status: Status::Active,
        help,
    }
}

const fn flag(
    name: &'static str,
    group: Group,
    default: DefaultValue,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases: &[],
        group,
        kind: Kind::Flag,
        repeatable: false,
        default,
        metavar: "",
        status: Status::Active,
        help,
    }
}

impl OptionSpec {
    const fn aka(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn many(mut self) -> Self {
        self.repeatable = true;
        self
    }
    #[expect(
        dead_code,
        reason = "no option is waiting for its runtime today; the next one accepted before it works is marked with it"
    )]
    const fn planned(mut self) -> Self {
        self.status = Status::Planned;
        self
    }
    const fn ignored(mut self, why: &'static str) -> Self {
        self.status = Status::Ignored(why);
        self
    }

    /// The environment variable that sets this option: `DRAGOMAN_` + upper-cased name, `-` as `_`.
    pub(crate) fn env_var(&self) -> String {
        format!(
            "DRAGOMAN_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Whether `name` (as written by a user, any source) names this option.
    pub(crate) fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

use super::defaults as d;
use DefaultValue::{Count, Flag, Secs, Text};
use Group::*;

/// No default (the option is off or empty unless set).
const N: DefaultValue = DefaultValue::None;

/// Every option, in `--help` order within each group.
pub(crate) static OPTIONS: &[OptionSpec] = &[
    // Configuration files.
    opt("ini", Config, "FILE[:SECTION]", N, "read options from an ini file: its [uwsgi] and [dragoman] sections (or a named one), or the whole file if it has no sections").many(),
    flag("strict", Config, Flag(false), "refuse ini keys that are no option (uWSGI's strict mode); placeholders are then set with set-placeholder"),
    // Application.
    opt("module", Application, "MODULE[:CALLABLE]", N, "import the WSGI application from MODULE; the attribute is `application` unless CALLABLE (or --callable) names another; `pkg:create_app()` calls a factory").aka(&["wsgi"]),
    opt("callable", Application, "NAME", Text(d::CALLABLE), "name of the WSGI callable in the module or wsgi-file"),
    opt("wsgi-file", Application, "FILE", N, "load the WSGI application from a Python file instead of a module").aka(&["file"]),
    opt("chdir", Application, "DIR", N, "change to DIR before loading the application (it is also put first on sys.path)"),
    opt("pythonpath", Application, "DIR", N, "add DIR to the front of sys.path (repeatable)").aka(&["python-path", "pp"]).many(),
    opt("home", Application, "VENV", N, "import the application's packages from this virtualenv (it must be for the same Python version as dragoman)").aka(&["virtualenv", "venv", "pyhome"]),
    opt("env", Application, "KEY=VALUE", N, "set an environment variable before the application loads (repeatable)").many(),
    flag("lazy-apps", Application, Flag(d::LAZY_APPS), "load the application in each worker after fork; `lazy-apps = false` is the same as --preload"),
    flag("preload", Application, Flag(d::PRELOAD), "load the application once in the master before forking workers (a reload then restarts workers without re-importing the code)"),
    opt("mount", Application, "PREFIX=APP", N, "serve another WSGI application under a URL prefix, as uWSGI's mount: `/api=api.wsgi:application` or `/blog=blog/wsgi.py`; the longest prefix on a segment boundary wins, SCRIPT_NAME is the prefix and PATH_INFO the rest (repeatable)").many(),
    flag("manage-script-name", Application, Flag(false), "uWSGI's switch for routing mounts by the path prefix (SCRIPT_NAME from the mount); dragoman routes by prefix with or without it, and warns without it"),
    flag("no-default-app", Application, Flag(false), "with mounts and no main application, answer a request no mount takes with 404 (uWSGI's default: the first mount serves it)"),
    opt("pyargv", Application, "ARGS", N, "sys.argv[1:] for the application, split on spaces (sys.argv[0] stays dragoman's program)"),
    flag("wsgi-disable-file-wrapper", Application, Flag(false), "offer no wsgi.file_wrapper to the application"),
    // ASGI (docs/asgi.md).
    opt("asgi", Application, "MODULE[:CALLABLE]", N, "serve an ASGI 3 application from MODULE (the attribute `application` unless CALLABLE names another), with lifespan events and WebSockets; the same as `module` with `interface = asgi`"),
    opt("interface", Application, "wsgi|asgi|auto", Text(d::INTERFACE), "how the application is called: WSGI, ASGI 3, or auto (ASGI when the callable is a coroutine function or has an async __call__, as Django's get_asgi_application() does); `asgi` sets asgi"),
    opt("lifespan", Application, "auto|on|off", Text(d::LIFESPAN), "ASGI lifespan events in each worker: auto sends them and goes on without them when the application raises on them; on requires them (a startup failure stops dragoman); off sends none"),
    opt("loop", Application, "auto|asyncio|uvloop", Text(d::LOOP), "the event loop an ASGI application runs on (one per worker, on a thread of its own): uvloop when it is installed (auto), or asyncio's"),
    // Listeners and HTTP.
    opt("http", Server, "ADDR", Text(d::HTTP), "serve HTTP on ADDR: `:8000` (all IPv4 interfaces), `127.0.0.1:8000`, `[::1]:8000`, or a unix socket path; repeatable").aka(&["http-socket", "bind", "http11-socket"]).many(),
    opt("listen", Server, "N", Count(d::LISTEN_BACKLOG), "the listen queue (backlog) of each listening socket"),
    flag("proxy-protocol", Server, Flag(d::PROXY_PROTOCOL), "every connection on the http listeners starts with a PROXY protocol header (v1 or v2) naming the real client; it becomes REMOTE_ADDR").aka(&["enable-proxy-protocol", "http-enable-proxy-protocol"]),
    opt("proxy-allow-from", Server, "ADDRS", Text(d::PROXY_ALLOW_FROM), "peers whose PROXY headers are believed: addresses and networks (10.0.0.0/8), `*` for any peer, separated by commas (repeatable); others are served as plain HTTP, and unix-socket peers are always believed").many(),
    opt("forwarded-allow-ips", Server, "ADDRS", Text(d::FORWARDED_ALLOW_IPS), "proxies whose X-Forwarded-For/-Proto/-Host/-Port and Forwarded headers set REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST and SERVER_PORT: addresses and networks (10.0.0.0/8), `unix` for unix-socket clients, `*` for any peer; the client is the first untrusted address from the right; empty: none (repeatable)").many(),
    opt("socket", Server, "ADDR", N, "serve the uwsgi protocol (for nginx's uwsgi_pass) on ADDR: `:3031`, `127.0.0.1:3031` or a unix socket path (`app.sock` too); repeatable").aka(&["uwsgi-socket"]).many(),
    opt("protocol", Server, "uwsgi|http", N, "what clients of the `socket` listeners speak").aka(&["socket-protocol"]),
    opt("chmod-socket", Server, "MODE", N, "permissions of unix sockets dragoman creates (octal, e.g. 660)").aka(&["chmod"]),
    opt("chown-socket", Server, "USER[:GROUP]", N, "give the unix sockets dragoman creates to this user (and group): made in a private directory, given, then moved into place"),
    opt("socket-timeout", Server, "SECONDS", N, "uWSGI's longest wait on a client: sets body-timeout and write-timeout unless they are set"),
    opt("http-timeout", Server, "SECONDS", N, "uWSGI's longest wait on an HTTP client: sets body-timeout and write-timeout unless they are set"),
    opt("add-header", Server, "NAME: VALUE", N, "add a header to every response of the application and the static files (repeatable)").many(),
    // TLS and HTTP/2 (docs/https.md).
    opt("https", Server, "ADDR,CERT,KEY[,CIPHERS[,CLIENT_CA]]", N, "serve HTTPS on ADDR with this certificate chain and key (PEM), as uWSGI writes it; CIPHERS may be empty; CLIENT_CA asks clients for a certificate (`!` in front: required); `https = ADDR` alone takes ssl-certificate and ssl-key; repeatable").aka(&["https-socket"]).many(),
    opt("ssl-certificate", Server, "FILE", N, "the certificate chain (PEM, the site's certificate first) of https listeners that name none"),
    opt("ssl-key", Server, "FILE", N, "the private key (PEM: PKCS#8, PKCS#1 or SEC1) of https listeners that name none"),
    opt("ssl-key-password", Server, "PASSWORD", N, "decrypts an encrypted (PKCS#8) private key"),
    opt("ssl-client-ca", Server, "[!]FILE", N, "ask clients for a certificate signed by this CA (PEM) on https listeners that name none; `!` in front: required"),
    opt("ssl-min-version", Server, "1.2|1.3", Text("1.2"), "the oldest TLS version offered"),
    opt("sni", Server, "NAME,CERT,KEY[,CIPHERS[,CLIENT_CA]]", N, "another certificate, for clients asking for NAME (`*.example.com` for any one label) on the https listeners; repeatable").many(),
    flag("https-export-cert", Server, Flag(false), "pass the client certificate (PEM) to the application as HTTPS_CC"),
    opt("http-to-https", Server, "ADDR[,PORT]", N, "a plain HTTP listener that answers every request with a 308 redirect to https:// (PORT: the HTTPS port, if not 443); ACME challenges are served; repeatable").many(),
    opt("hsts", Server, "SECONDS", N, "send Strict-Transport-Security with this max-age on HTTPS responses (0: none)"),
    flag("hsts-include-subdomains", Server, Flag(false), "add includeSubDomains to Strict-Transport-Security"),
    flag("hsts-preload", Server, Flag(false), "add preload to Strict-Transport-Security"),
    flag("http2", Server, Flag(true), "offer HTTP/2 (ALPN h2) on https listeners; false offers HTTP/1.1 only"),
    flag("http2-cleartext", Server, Flag(false), "speak HTTP/2 with prior knowledge (h2c) on http listeners too, for proxies that do"),
    opt("http2-max-concurrent-streams", Server, "N", Count(d::HTTP2_MAX_CONCURRENT_STREAMS as usize), "streams one HTTP/2 connection may have open at once"),
    opt("http2-max-header-list-size", Server, "BYTES", N, "largest HTTP/2 request header list (default: buffer-size)"),
    opt("http2-stream-window", Server, "BYTES", Count(d::HTTP2_STREAM_WINDOW as usize), "HTTP/2 flow-control window of each stream"),
    opt("http2-connection-window", Server, "BYTES", Count(d::HTTP2_CONNECTION_WINDOW as usize), "HTTP/2 flow-control window of each connection"),
    // Certificates by ACME (docs/https.md).
    opt("acme-domain", Server, "NAME[,NAME...]", N, "get a certificate for these names from an ACME CA (Let's Encrypt unless acme-directory says another), serve it on the https listeners and renew it; one certificate per line; repeatable").many(),
    opt("acme-email", Server, "ADDRESS", N, "the ACME account's contact address, for the CA's notices"),
    opt("acme-directory", Server, "URL", Text(d::LETS_ENCRYPT), "the ACME directory to order certificates from"),
    flag("acme-staging", Server, Flag(false), "order from Let's Encrypt's staging directory (untrusted certificates, for trying a setup out)"),
    opt("acme-ca-root", Server, "FILE", N, "trust this CA bundle (PEM) for the directory's HTTPS instead of the system's, for a private ACME CA"),
    opt("acme-cache", Server, "DIR", N, "where the account, the certificates and the locks are kept (mode 0700), across restarts and by every instance sharing it (default: ~/.local/share/dragoman/acme)"),
    opt("acme-eab-kid", Server, "KID", N, "external account binding: the key id the CA gave"),
    opt("acme-eab-hmac", Server, "KEY", N, "external account binding: the HMAC key the CA gave (base64url)"),
    opt("acme-challenge", Server, "TYPE[,TYPE]", N, "the challenges to answer, in order of preference: http-01 (on a plain listener) and tls-alpn-01 (on the https listeners); default: both, http-01 only with a plain listener"),
    // Processes and workers.
    opt("processes", Processes, "N", Count(d::PROCESSES), "number of worker processes").aka(&["workers"]),
    opt("threads", Processes, "N", Count(d::THREADS), "Python threads per worker that run the application; with 1 the app runs on the worker's event-loop thread"),
    opt("worker-reload-mercy", Processes, "SECONDS", Secs(d::WORKER_RELOAD_MERCY_SECS), "on stop, how long workers may take to finish their requests before they are killed").aka(&["graceful-timeout"]),
    opt("max-requests", Processes, "N", Count(0), "recycle a worker gracefully after N requests (0: never)"),
    opt("max-requests-delta", Processes, "N", Count(0), "add N times the worker number to max-requests, so workers do not recycle together"),
    opt("max-worker-lifetime", Processes, "SECONDS", Secs(0), "recycle a worker gracefully after it has run this long (0: never)"),
    opt("reload-on-rss", Processes, "MIB", Count(0), "recycle a worker gracefully when its resident memory exceeds this (0: never)"),
    opt("harakiri", Processes, "SECONDS", Secs(0), "kill and replace a worker whose request runs longer than this, after logging the stuck thread's traceback (0: never)").aka(&["timeout"]),
    flag("harakiri-verbose", Processes, Flag(true), "log the Python traceback of the stuck thread before a harakiri kill (always done)"),
    opt("touch-reload", Processes, "FILE", N, "reload gracefully when FILE is touched (repeatable)").many(),
    opt("touch-chain-reload", Processes, "FILE", N, "replace workers one at a time when FILE is touched (repeatable)").many(),
    opt("py-autoreload", Processes, "SECONDS", Secs(0), "development: check every SECONDS whether a loaded .py file changed, and reload if so (0: never)").aka(&["py-auto-reload", "python-autoreload", "python-auto-reload"]),
    opt("pidfile", Processes, "FILE", N, "write the master's PID to FILE").aka(&["pid"]),
    flag("vacuum", Processes, Flag(d::VACUUM), "remove the pidfile and unix sockets on exit"),
    opt("uid", Processes, "USER", N, "run as this user (name or number) after binding the sockets").aka(&["user"]),
    opt("gid", Processes, "GROUP", N, "run as this group (name or number) after binding the sockets").aka(&["group"]),
    opt("umask", Processes, "MASK", N, "set the process umask (octal, e.g. 022)"),
    opt("stats", Processes, "ADDR", N, "serve uWSGI-compatible JSON stats (as uwsgitop reads them) on ADDR: host:port or a unix socket path"),
    flag("stats-http", Processes, Flag(d::STATS_HTTP), "serve the stats as an HTTP response"),
    opt("metrics", Processes, "ADDR", N, "serve Prometheus metrics (OpenMetrics when asked) at http://ADDR/metrics: requests, latency, bytes, connections, static files, worker restarts and memory, listen queues; ADDR is host:port or a unix socket path"),
    opt("health-check", Processes, "PATH", N, "answer GET PATH (e.g. /healthz) before static files and the application: 200 once every worker accepts, 503 while starting and from SIGTERM on; on the command line, `--health-check` alone or with a URL checks a running server once (exit 0 or 1)"),
    opt("shutdown-delay", Processes, "SECONDS", N, "on SIGTERM, keep serving this long with the health check failing before stopping, so a load balancer stops sending first (default with health-check: 5; 0: off)"),
    opt("daemonize", Processes, "LOGFILE", N, "detach from the terminal once the sockets are bound; stdout and stderr (the log) go to LOGFILE"),
    opt("daemonize2", Processes, "LOGFILE", N, "like daemonize, once the application is loaded and the privileges dropped (LOGFILE is opened as the service user)"),
    flag("auto-procname", Processes, Flag(false), "name the processes in ps and top: `dragoman master`, `dragoman worker N`"),
    opt("procname-prefix", Processes, "TEXT", N, "put TEXT before every process name (turns the names on)"),
    opt("procname-prefix-spaced", Processes, "TEXT", N, "put TEXT and a space before every process name (turns the names on)"),
    opt("procname-append", Processes, "TEXT", N, "put TEXT after every process name (turns the names on)"),
    opt("procname", Processes, "NAME", N, "the workers' process name (and the master's, without procname-master)"),
    opt("procname-master", Processes, "NAME", N, "the master's process name"),
    opt("cheaper", Processes, "N", N, "adapt the worker count to the load, between N and `processes` (uWSGI's spare algorithm: a worker more while all are busy, one less while more than one idles); 0 is off"),
    opt("cheaper-initial", Processes, "N", N, "workers at start when `cheaper` is set (default: cheaper)"),
    opt("cheaper-step", Processes, "N", N, "workers added at a time when `cheaper` is set (default: 1)"),
    opt("cheaper-overload", Processes, "SECONDS", N, "with `cheaper`: seconds all workers must be busy before more are added, and between removals while they idle (default: 3)"),
    opt("cheaper-algo", Processes, "NAME", N, "the `cheaper` algorithm: spare, the only one (others fall back to it, with a warning)"),
    opt("attach-daemon", Processes, "COMMAND", N, "run COMMAND (with /bin/sh) beside the workers: restarted when it dies (with a back-off when it keeps dying), restarted by a reload, stopped with dragoman; its output goes to the log (repeatable)").many(),
    opt("smart-attach-daemon", Processes, "PIDFILE COMMAND", N, "run COMMAND, which detaches and writes PIDFILE; started again when the pid in PIDFILE is gone; it outlives dragoman (repeatable)").many(),
    opt("smart-attach-daemon2", Processes, "PIDFILE COMMAND", N, "like smart-attach-daemon, for a COMMAND that does not detach: dragoman detaches it and writes PIDFILE (repeatable)").many(),
    opt("attach-control-daemon", Processes, "COMMAND", N, "like attach-daemon, and when it dies dragoman stops (exit code 1) (repeatable)").many(),
    flag("daemons-honour-stdin", Processes, Flag(false), "attached daemons read dragoman's stdin (otherwise /dev/null)"),
    opt("attach-daemon2", Processes, "KEY=VALUE,...", N, "an attached daemon with uWSGI's keys: cmd, name, pidfile, daemonize, freq, control, touch, stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle, notifypid (repeatable)").many(),
    opt("cron", Processes, "M H D MON WD COMMAND", N, "run COMMAND (with /bin/sh) at the local times given: minute hour day month weekday, -1 for any, -N for every N; its output goes to the log (repeatable)").many(),
    opt("unique-cron", Processes, "M H D MON WD COMMAND", N, "like cron, not started again while the previous run goes on (repeatable)").many(),
    opt("hook-master-start", Processes, "ACTION", N, "when the master starts: exec:COMMAND (dragoman stops if it fails), safeexec:COMMAND, or unix_signal:N FUNCTION (gracefully_kill_them_all, kill_them_all, grace_them_all: what signal N does) (repeatable)").many(),
    // Logging.
    flag("disable-logging", Logging, Flag(false), "write no request lines (the access log), but those log-4xx, log-5xx, log-slow, log-zero, log-big and log-sendfile ask for"),
    flag("log-static", Logging, Flag(true), "log requests answered with a static file too (false: only the application's)"),
    opt("log-format", Logging, "FORMAT", N, "the request line: a uWSGI logformat with its %(var) variables, or `json` for one JSON object per line").aka(&["logformat"]),
    flag("log-4xx", Logging, Flag(false), "with disable-logging, still log requests answered 4xx"),
    flag("log-5xx", Logging, Flag(false), "with disable-logging, still log requests answered 5xx"),
    opt("log-slow", Logging, "MS", N, "with disable-logging, still log requests that took at least MS milliseconds"),
    flag("log-zero", Logging, Flag(false), "with disable-logging, still log responses with an empty body"),
    opt("log-big", Logging, "BYTES", N, "with disable-logging, still log responses with a body of at least BYTES"),
    flag("log-sendfile", Logging, Flag(false), "with disable-logging, still log requests answered with a static file"),
    flag("log-x-forwarded-for", Logging, Flag(false), "log the X-Forwarded-For header's value as the client address"),
    opt("log-date", Logging, "[STRFTIME]", N, "stamp log lines with this strftime format, in local time (true: the default UTC stamp)").aka(&["logdate"]),
    flag("logformat-strftime", Logging, Flag(false), "%(ftime) in log-format uses log-date's format").aka(&["log-format-strftime"]),
    opt("memory-report", Logging, "[1|2]", N, "start request lines with the worker's address space and RSS (2: also USS and PSS), sampled every 100 ms"),
    opt("logto", Logging, "FILE", N, "write the log (dragoman's, the requests', Python's output) to FILE instead of stderr; opened before the privilege drop"),
    opt("logto2", Logging, "FILE", N, "like logto, opened after the privilege drop (so the service user owns it)"),
    opt("logger", Logging, "PLUGIN[:ARGS]", N, "where the log goes instead of logto: file:PATH (or file:logfile=PATH,maxsize=N,backupname=B) or stdio; repeatable").many(),
    opt("req-logger", Logging, "PLUGIN[:ARGS]", N, "where request lines go instead of the log: file:PATH or stdio; repeatable").aka(&["logger-req"]).many(),
    flag("log-master", Logging, Flag(false), "workers send their lines to the master, which writes them (on by itself with several loggers or log-maxsize)"),
    opt("log-maxsize", Logging, "BYTES", N, "rotate the logto file when it grows past BYTES (turns log-master on)"),
    opt("log-backupname", Logging, "FILE", N, "the rotated log file's name (default: the file's name and the time, FILE.UNIXTIME)"),
    flag("log-reopen", Logging, Flag(false), "reopen the log files on a reload (SIGHUP) too; SIGUSR1 always reopens them"),
    // Static files.
    opt("static-map", Static, "MOUNT=PATH", N, "serve the files under PATH (or the one file PATH) at URL prefix MOUNT, without calling the app; a missing file goes to the app").many(),
    opt("static-map2", Static, "MOUNT=DIR", N, "like static-map, with MOUNT appended to DIR (uWSGI semantics: /static=/srv serves /srv/static)").many(),
    opt("check-static", Static, "DIR", N, "serve a file from DIR when the request path names one (static-map /=DIR)").many(),
    opt("static-index", Static, "NAME", N, "file served for a directory request, e.g. index.html (repeatable)").many(),
    opt("static-safe", Static, "DIR", N, "allow symlinks that lead into DIR (by default a symlink must stay inside its mount)").many(),
    opt("static-expires", Static, "REGEX SECONDS", N, "Cache-Control max-age and Expires for files whose full path matches REGEX").many(),
    opt("static-expires-uri", Static, "REGEX SECONDS", N, "Cache-Control max-age and Expires for URLs matching REGEX").many(),
    opt("static-max-age", Static, "SECONDS", N, "Cache-Control max-age for the other static files"),
    flag("static-immutable", Static, Flag(d::STATIC_IMMUTABLE), "files whose name carries a content hash (app.3f2a9c1b7e4d.css, as Django's ManifestStaticFilesStorage writes) get `Cache-Control: public, max-age=31536000, immutable`"),
    flag("static-gzip-all", Static, Flag(d::STATIC_GZIP_ALL), "serve x.br, x.zst or x.gz instead of x when the client accepts it (write them with `dragoman compress DIR`)"),
    flag("static-dotfiles", Static, Flag(d::STATIC_DOTFILES), "serve files and directories whose name starts with a dot"),
    opt("static-cache", Static, "MIB", Count(d::STATIC_CACHE_MIB as usize), "memory for the per-worker cache of small files (files up to 1 MiB); 0 turns it off"),
    // Limits and timeouts.
    opt("buffer-size", Limits, "BYTES", Count(d::BUFFER_SIZE), "largest request head (request line and headers) accepted; beyond it, 431"),
    opt("limit-request-line", Limits, "BYTES", Count(d::LIMIT_REQUEST_LINE), "longest request line accepted; beyond it, 414"),
    opt("limit-request-fields", Limits, "N", Count(d::LIMIT_REQUEST_FIELDS), "most header fields in a request; beyond it, 431"),
    opt("limit-post", Limits, "BYTES", Count(d::LIMIT_POST as usize), "largest request body accepted (1 GiB), answered 413 before the body is read when its length is declared, else as soon as it grows past (0: no limit)"),
    opt("post-buffering", Limits, "BYTES", Count(d::POST_BUFFERING as usize), "request bodies are read whole before the application is called (so a slow upload holds no application thread): in memory up to this size, then in a temporary file; 0 streams larger bodies to the application as it reads"),
    opt("spool-budget", Limits, "BYTES", Count(d::SPOOL_BUDGET as usize), "bytes of request and response bodies one worker may hold in temporary files at once (1 GiB); a request body beyond it gets 503 with Retry-After, a response waits for its client"),
    opt("body-min-rate", Limits, "BYTES", Count(d::BODY_MIN_RATE as usize), "slowest average rate, in bytes a second, at which a request body may arrive once the first body-timeout has passed; slower, 408 (0: no minimum)"),
    opt("header-timeout", Limits, "SECONDS", Secs(d::HEADER_TIMEOUT.as_secs()), "time a client has to send a complete request head, counted from when the connection is ready for one (so it also closes idle keep-alive connections)").aka(&["http-headers-timeout"]),
    opt("body-timeout", Limits, "SECONDS", Secs(d::BODY_TIMEOUT.as_secs()), "longest wait for more of a request body (408)"),
    opt("response-buffer", Limits, "BYTES", Count(d::RESPONSE_BUFFER as usize), "how far a streamed response may run ahead of a client that reads slowly (64 MiB: the first MiB in memory, the rest in a temporary file), so the client does not hold the application; beyond it the client's pace reaches the application"),
    opt("write-min-rate", Limits, "BYTES", Count(d::WRITE_MIN_RATE as usize), "slowest average rate, in bytes a second, at which a client that has fallen behind a response must take it, once write-timeout has passed; slower, the connection is cut (0: no minimum)"),
    opt("write-timeout", Limits, "SECONDS", Secs(d::WRITE_TIMEOUT.as_secs()), "longest wait for a client to take more of a response"),
    opt("max-connections", Limits, "N", Count(d::MAX_CONNECTIONS), "connections one worker keeps open; at the cap the least recently active is closed (when idle) for the new one"),
    opt("request-queue", Limits, "N", Count(d::REQUEST_QUEUE), "requests one worker lets wait for an application thread; beyond it, 503 with Retry-After"),
    opt("websocket-max-message", Limits, "BYTES", Count(d::WEBSOCKET_MAX_MESSAGE as usize), "largest WebSocket message (decompressed) an ASGI application is given; a larger one closes the connection with 1009"),
    opt("websocket-ping-interval", Limits, "SECONDS", Secs(d::WEBSOCKET_PING_INTERVAL.as_secs()), "ping a WebSocket client that has sent nothing for this long (0: never)").aka(&["websocket-ping-freq", "websockets-ping-freq"]),
    opt("websocket-ping-timeout", Limits, "SECONDS", Secs(d::WEBSOCKET_PING_TIMEOUT.as_secs()), "a WebSocket client that sends nothing for this long after a ping is dropped (close 1011)").aka(&["websocket-pong-tolerance", "websockets-pong-tolerance"]),
    opt("websocket-idle-timeout", Limits, "SECONDS", Secs(0), "close (1001) a WebSocket on which no message went either way for this long (0: never)"),
    opt("websocket-handshake-timeout", Limits, "SECONDS", Secs(d::WEBSOCKET_HANDSHAKE_TIMEOUT.as_secs()), "how long an ASGI application may take to accept or deny a WebSocket; then 503"),
    flag("websocket-compression", Limits, Flag(d::WEBSOCKET_COMPRESSION), "accept permessage-deflate (RFC 7692) from WebSocket clients that offer it"),
    // uWSGI compatibility.
    flag("master", Compat, Flag(true), "").ignored("dragoman always runs a master process"),
    flag("die-on-term", Compat, Flag(true), "").ignored("SIGTERM always stops dragoman gracefully (SIGHUP reloads)"),
    opt("plugins", Compat, "LIST", N, "").aka(&["plugin"]).many().ignored("dragoman needs no plugins; Python is built in"),
    flag("enable-threads", Compat, Flag(true), "").ignored("Python threads are always enabled"),
    flag("single-interpreter", Compat, Flag(true), "").ignored("dragoman always uses one interpreter per process"),
    flag("need-app", Compat, Flag(true), "").ignored("dragoman always exits when the application cannot be loaded"),
    flag("thunder-lock", Compat, Flag(false), "").ignored("accept is serialised by the kernel"),
    flag("no-orphans", Compat, Flag(true), "").ignored("workers always exit when the master dies"),
    flag("lazy", Compat, Flag(false), "").ignored("workers load the application after fork already (lazy-apps), and a reload replaces them"),
];

/// Finds the option a user-written name refers to (name or alias).
pub(crate) fn lookup(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.answers_to(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            for n in std::iter::once(o.name).chain(o.aliases.iter().copied()) {
                assert!(seen.insert(n), "duplicate option name {n}");
                assert_eq!(n, n.to_ascii_lowercase());
            }
        }
    }

    #[test]
    fn gunicorn_names_are_aliases() {
        for (gunicorn, ours) in [
            ("bind", "http"),
            ("workers", "processes"),
            ("timeout", "harakiri"),
            ("graceful-timeout", "worker-reload-mercy"),
            ("pid", "pidfile"),
            ("user", "uid"),
            ("group", "gid"),
        ] {
            assert_eq!(lookup(gunicorn).unwrap().name, ours);
        }
    }

    #[test]
    fn lookup_finds_aliases() {
        assert_eq!(lookup("workers").unwrap().name, "processes");
        assert_eq!(lookup("http-socket").unwrap().name, "http");
        assert_eq!(lookup("virtualenv").unwrap().name, "home");
        assert!(lookup("nope").is_none());
    }

    #[test]
    fn env_var_names() {
        assert_eq!(lookup("wsgi-file").unwrap().env_var(), "DRAGOMAN_WSGI_FILE");
    }
}
