//! Every option uWSGI accepts, and what dragoman does with it. A site's `uwsgi.ini` uses
//! uWSGI's names; dragoman knows them all (`uwsgi-option-names.txt`, extracted from uWSGI's
//! option tables), so a name is never mistaken for a typo or silently dropped. Each one is:
//!
//! - a dragoman option ([`super::options`]), in effect or accepted and not yet in effect;
//! - read by the ini reader itself (includes, config logic, placeholders);
//! - covered by design: accepted with one info line, dragoman already behaves that way;
//! - not implemented: accepted with a startup warning that says what dragoman does instead;
//! - refused: ignoring it would change who can reach what (TLS, authentication, routing rules
//!   that deny, isolation) or how the application runs (gevent and async loops).
//!
//! `docs/configuration.md` carries the generated table (`markdown_table`, a test helper); a test fails
//! when it is stale.

use super::options;

/// Every option name uWSGI accepts (long names from its option tables).
const NAMES: &str = include_str!("uwsgi-option-names.txt");

/// The uWSGI options that take no value on the command line (or one only as `--name=value`).
const FLAG_NAMES: &str = include_str!("uwsgi-flag-names.txt");

/// What dragoman does with one uWSGI option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A dragoman option answers to this name; its status in [`options`] says the rest.
    Option,
    /// The ini reader handles it (includes, `if-...`/`for`, placeholders, `strict`).
    Reader,
    /// Accepted with an info line: the reason dragoman needs nothing.
    ByDesign(&'static str),
    /// Accepted with a warning: what dragoman does instead.
    Warned(&'static str),
    /// Refused at startup, with what to change.
    Refused(&'static str),
}

/// The uWSGI option names, in the order of the list.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    NAMES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Whether uWSGI's `--name` stands alone on its command line: the next argument is not its
/// value (uWSGI declares it `no_argument` or `optional_argument`).
pub(crate) fn takes_no_value(name: &str) -> bool {
    FLAG_NAMES
        .lines()
        .any(|l| !l.starts_with('#') && l.trim() == name)
}

/// Keys the ini reader consumes (see `ini::Reader`): they never reach the option table.
pub(crate) const READER_KEYS: &[&str] = &[
    "ini",
    "include",
    "inherit",
    "set",
    "set-placeholder",
    "set-ph",
    "for",
    "for-glob",
    "for-times",
    "for-readline",
    "endfor",
    "end-for",
    "if-env",
    "ifenv",
    "if-not-env",
    "if-opt",
    "if-not-opt",
    "if-exists",
    "ifexists",
    "if-not-exists",
    "if-file",
    "if-not-file",
    "if-dir",
    "ifdir",
    "if-directory",
    "if-not-dir",
    "if-reload",
    "if-not-reload",
    "if-hostname",
    "if-not-hostname",
    "if-hostname-match",
    "if-not-hostname-match",
    "if-plugin",
    "ifplugin",
    "if-not-plugin",
    "else",
    "end",
    "endif",
    "end-if",
];

const TLS: &str = "this TLS option of uWSGI is not implemented in dragoman: ignoring it would \
                   change what clients get over TLS; write the listener with `https`, `sni` and \
                   the `ssl-*` options (docs/https.md), or terminate TLS in a proxy in front";
const ASYNC: &str = "dragoman runs WSGI applications on threads, not on gevent or another async \
                     loop: the application would block where it expects to yield; remove this \
                     option and set `threads = N` (blocking code scales with threads), or serve \
                     an async application through ASGI (`asgi = mysite.asgi:application`)";
const ISOLATION: &str = "dragoman does not confine itself (chroot, jails, namespaces, \
                         capabilities): ignoring this would give the application more access \
                         than the file asks for; run dragoman in a container or under systemd \
                         (RootDirectory=, PrivateTmp=, CapabilityBoundingSet=) and remove it";
const AUTH: &str = "dragoman does not authenticate requests: ignoring this would let anyone in; \
                    authenticate in the application or in a proxy in front";
const OTHER_FORMAT: &str = "dragoman reads ini files only: write these options as `name = value` \
                            lines under [uwsgi] (or include an .ini file)";
const PASTE: &str = "dragoman loads a WSGI callable, not a Paste Deploy file: add a module that \
                     calls paste.deploy.loadapp('config:/path/to/file.ini') and name it with \
                     `module = thatmodule:application`";
const OTHER_LANGUAGE: &str = "dragoman serves Python WSGI applications only: this option belongs \
                              to another uWSGI language plugin; serve that application with \
                              uWSGI";
const EMPEROR: &str = "dragoman runs one application per process tree; it has no Emperor, vassals \
                       or subscriptions: run one dragoman per site (one systemd unit each)";
const ROUTERS: &str = "dragoman has no uWSGI routers (fastrouter, rawrouter, forkpty, tuntap, \
                       zerg pools, legions): it serves HTTP and the uwsgi protocol itself; put a \
                       load balancer in front to spread load over several dragomans";
const ROUTING: &str = "dragoman has no internal routing yet: this rule is not applied; put it in \
                       the proxy in front or in the application (rules that deny or authenticate \
                       are refused)";
const CACHE: &str = "dragoman has no uWSGI cache, queue or shared area: the application gets no \
                     uwsgi.cache_* API; use Redis or memcached from the application";
const HOOKS: &str = "dragoman runs no uWSGI hooks or exec/call stages but hook-master-start: run \
                     the command from the service manager (ExecStartPre= in systemd), the \
                     container's entrypoint, or hook-master-start = exec:COMMAND";
const MULES: &str = "dragoman has no mules, spooler or signal framework: run background work with \
                     a task queue (Celery, RQ) or attach it to the service manager";
const METRICS: &str = "dragoman has no uWSGI metrics, alarms or pushers: `metrics = ADDR` \
                       serves Prometheus metrics, and its stats server (`stats`) gives worker \
                       figures for uwsgitop";
const PLUGINS: &str = "dragoman has no plugins: Python, HTTP, static files and the uwsgi \
                       protocol are built in";
const TUNING: &str = "dragoman sizes this itself: the option has nothing to set";
const PY_TUNING: &str = "a Python-plugin detail dragoman does not offer: the application runs \
                         in dragoman's one interpreter per worker process";
const LOGS: &str = "not implemented in dragoman: its log goes to stderr, or to `logto` / `logger` \
                    (see docs/logging.md)";
const WHOLE_LINES: &str =
    "the log master's socket pair keeps each line (or batch of lines) in one message, whole";
const NOT_YET: &str = "not implemented in dragoman: the option is accepted and has no effect";

/// The classes of uWSGI's options that are not dragoman options, by exact name or by prefix
/// (`name*`); the longest match wins.
const RULES: &[(&str, Class)] = &[
    // TLS, authentication, isolation, async loops: refused.
    ("https*", Class::Refused(TLS)),
    ("ssl-*", Class::Refused(TLS)),
    ("sslrouter*", Class::Refused(TLS)),
    ("sni*", Class::Refused(TLS)),
    ("suwsgi-socket", Class::Refused(TLS)),
    ("pam*", Class::Refused(AUTH)),
    ("chroot", Class::Refused(ISOLATION)),
    ("jail*", Class::Refused(ISOLATION)),
    ("jid*", Class::Refused(ISOLATION)),
    ("libjail", Class::Refused(ISOLATION)),
    ("namespace*", Class::Refused(ISOLATION)),
    ("ns", Class::Refused(ISOLATION)),
    ("ns-net", Class::Refused(ISOLATION)),
    ("unshare*", Class::Refused(ISOLATION)),
    ("pivot*", Class::Refused(ISOLATION)),
    ("setns*", Class::Refused(ISOLATION)),
    ("cap", Class::Refused(ISOLATION)),
    ("vassal-cap", Class::Refused(ISOLATION)),
    ("vassals-cap", Class::Refused(ISOLATION)),
    ("emperor-cap", Class::Refused(ISOLATION)),
    ("gevent*", Class::Refused(ASYNC)),
    ("async", Class::Refused(ASYNC)),
    ("asyncio", Class::Refused(ASYNC)),
    ("ugreen*", Class::Refused(ASYNC)),
    ("greenlet", Class::Refused(ASYNC)),
    ("tornado", Class::Refused(ASYNC)),
    ("fiber", Class::Refused(ASYNC)),
    ("coroae", Class::Refused(ASYNC)),
    ("stackless", Class::Refused(ASYNC)),
    ("goroutines", Class::Refused(ASYNC)),
    // Other configuration formats and loaders.
    ("xml", Class::Refused(OTHER_FORMAT)),
    ("xmlconfig", Class::Refused(OTHER_FORMAT)),
    ("yaml", Class::Refused(OTHER_FORMAT)),
    ("yml", Class::Refused(OTHER_FORMAT)),
    ("json", Class::Refused(OTHER_FORMAT)),
    ("js", Class::Refused(OTHER_FORMAT)),
    ("sqlite", Class::Refused(OTHER_FORMAT)),
    ("sqlite3", Class::Refused(OTHER_FORMAT)),
    ("ldap*", Class::Refused(OTHER_FORMAT)),
    ("config", Class::Refused(OTHER_FORMAT)),
    ("config-py", Class::Refused(OTHER_FORMAT)),
    ("paste", Class::Refused(PASTE)),
    ("ini-paste*", Class::Refused(PASTE)),
    ("paste-*", Class::Refused(PASTE)),
    // Other languages' plugins.
    ("pypy*", Class::Refused(OTHER_LANGUAGE)),
    ("psgi*", Class::Refused(OTHER_LANGUAGE)),
    ("perl*", Class::Refused(OTHER_LANGUAGE)),
    ("early-perl*", Class::Refused(OTHER_LANGUAGE)),
    ("early-psgi", Class::Refused(OTHER_LANGUAGE)),
    ("php*", Class::Refused(OTHER_LANGUAGE)),
    ("early-php*", Class::Refused(OTHER_LANGUAGE)),
    ("rack", Class::Refused(OTHER_LANGUAGE)),
    ("rails", Class::Refused(OTHER_LANGUAGE)),
    ("rb*", Class::Refused(OTHER_LANGUAGE)),
    ("ruby*", Class::Refused(OTHER_LANGUAGE)),
    ("rvm*", Class::Refused(OTHER_LANGUAGE)),
    ("gemset", Class::Refused(OTHER_LANGUAGE)),
    ("shared-rb*", Class::Refused(OTHER_LANGUAGE)),
    ("shared-ruby*", Class::Refused(OTHER_LANGUAGE)),
    ("rubyrequire", Class::Refused(OTHER_LANGUAGE)),
    ("lua*", Class::Refused(OTHER_LANGUAGE)),
    ("jvm*", Class::Refused(OTHER_LANGUAGE)),
    ("jwsgi", Class::Refused(OTHER_LANGUAGE)),
    ("ring-*", Class::Refused(OTHER_LANGUAGE)),
    ("clojure-load", Class::Refused(OTHER_LANGUAGE)),
    ("mono-*", Class::Refused(OTHER_LANGUAGE)),
    ("go-*", Class::Refused(OTHER_LANGUAGE)),
    ("gccgo-*", Class::Refused(OTHER_LANGUAGE)),
    ("cgi*", Class::Refused(OTHER_LANGUAGE)),
    ("plshell*", Class::Refused(OTHER_LANGUAGE)),
    ("mongrel2", Class::Refused(OTHER_LANGUAGE)),
    ("symcall*", Class::Refused(OTHER_LANGUAGE)),
    ("dumbloop-*", Class::Refused(OTHER_LANGUAGE)),
    ("xslt-*", Class::Refused(OTHER_LANGUAGE)),
    ("webdav-*", Class::Refused(OTHER_LANGUAGE)),
    ("rados-*", Class::Refused(OTHER_LANGUAGE)),
    ("glusterfs-*", Class::Refused(OTHER_LANGUAGE)),
    ("eval", Class::Refused(
        "dragoman loads the application from a module or a file, not from code in the \
         configuration: put this code in a file (ending with `application = ...`) and name it \
         with `wsgi-file = thatfile.py`",
    )),
    ("web3", Class::Refused(OTHER_LANGUAGE)),
    ("pump", Class::Refused(OTHER_LANGUAGE)),
    ("wsgi-lite", Class::Refused(OTHER_LANGUAGE)),
    ("pecan", Class::Refused(OTHER_LANGUAGE)),
    // Emperor, routers, clustering.
    ("emperor*", Class::Warned(EMPEROR)),
    ("early-emperor", Class::Warned(EMPEROR)),
    ("vassal*", Class::Warned(EMPEROR)),
    ("subscribe*", Class::Warned(EMPEROR)),
    ("subscription*", Class::Warned(EMPEROR)),
    ("start-unsubscribed", Class::Warned(EMPEROR)),
    ("unsubscribe-on-graceful-reload", Class::Warned(EMPEROR)),
    ("exec-as-emperor", Class::Warned(EMPEROR)),
    ("exec-as-vassal", Class::Warned(EMPEROR)),
    ("call-as-emperor*", Class::Warned(EMPEROR)),
    ("call-as-vassal*", Class::Warned(EMPEROR)),
    ("hook-as-emperor*", Class::Warned(EMPEROR)),
    ("hook-as-vassal*", Class::Warned(EMPEROR)),
    ("hook-as-on-*", Class::Warned(EMPEROR)),
    ("hook-emperor-*", Class::Warned(EMPEROR)),
    ("mount-as-emperor", Class::Warned(EMPEROR)),
    ("mount-as-vassal", Class::Warned(EMPEROR)),
    ("umount-as-emperor", Class::Warned(EMPEROR)),
    ("umount-as-vassal", Class::Warned(EMPEROR)),
    ("fastrouter*", Class::Warned(ROUTERS)),
    ("rawrouter*", Class::Warned(ROUTERS)),
    ("httprouter", Class::Warned(ROUTERS)),
    ("forkpty*", Class::Warned(ROUTERS)),
    ("pty-*", Class::Warned(ROUTERS)),
    ("tuntap-*", Class::Warned(ROUTERS)),
    ("zerg*", Class::Warned(ROUTERS)),
    ("legion*", Class::Warned(ROUTERS)),
    ("unique-legion-cron", Class::Warned(ROUTERS)),
    ("unique-cron-legion", Class::Warned(ROUTERS)),
    ("cron-legion", Class::Warned(ROUTERS)),
    ("cron-curl-legion", Class::Warned(ROUTERS)),
    ("curl-cron-legion", Class::Warned(ROUTERS)),
    ("farm", Class::Warned(ROUTERS)),
    ("fork-server", Class::Warned(ROUTERS)),
    ("fork-socket", Class::Warned(ROUTERS)),
    ("force-gateway", Class::Warned(ROUTERS)),
    ("multicast*", Class::Warned(ROUTERS)),
    ("udp", Class::Warned(ROUTERS)),
    ("snmp*", Class::Warned(METRICS)),
    ("zeromq*", Class::Warned(ROUTERS)),
    ("zmq*", Class::Warned(ROUTERS)),
    ("zeus", Class::Warned(ROUTERS)),
    // Internal routing.
    ("route*", Class::Warned(ROUTING)),
    ("final-route*", Class::Warned(ROUTING)),
    ("error-route*", Class::Warned(ROUTING)),
    ("response-route*", Class::Warned(ROUTING)),
    ("router-list", Class::ByDesign(PLUGINS)),
    ("routers-list", Class::ByDesign(PLUGINS)),
    ("error-page-*", Class::Warned(ROUTING)),
    ("del-header", Class::Warned(ROUTING)),
    ("rem-header", Class::Warned(ROUTING)),
    ("collect-header", Class::Warned(ROUTING)),
    ("pull-header", Class::Warned(ROUTING)),
    ("response-header-collect", Class::Warned(ROUTING)),
    ("vhost*", Class::Warned(ROUTING)),
    ("remap-modifier", Class::ByDesign(TUNING)),
    ("allowed-modifiers", Class::ByDesign(TUNING)),
    // Caches, queues, shared areas.
    ("cache*", Class::Warned(CACHE)),
    ("add-cache-item", Class::Warned(CACHE)),
    ("check-cache", Class::Warned(CACHE)),
    ("load-file-in-cache*", Class::Warned(CACHE)),
    ("queue*", Class::Warned(CACHE)),
    ("sharedarea", Class::Warned(CACHE)),
    ("py-sharedarea", Class::Warned(CACHE)),
    ("static-cache-paths*", Class::Warned(CACHE)),
    ("persistent-ipcsem", Class::ByDesign(TUNING)),
    ("ftok", Class::ByDesign(TUNING)),
    // Hooks and stages.
    ("hook-*", Class::Warned(HOOKS)),
    ("exec-*", Class::Warned(HOOKS)),
    ("call-*", Class::Warned(HOOKS)),
    ("mount-*", Class::Warned(HOOKS)),
    ("umount-*", Class::Warned(HOOKS)),
    ("worker-mount", Class::Warned(HOOKS)),
    ("after-request-*", Class::Warned(HOOKS)),
    ("touch-exec", Class::Warned(HOOKS)),
    ("touch-signal", Class::Warned(MULES)),
    ("touch-logreopen", Class::Warned(NOT_YET)),
    ("touch-logrotate", Class::Warned(NOT_YET)),
    ("touch-mules-reload", Class::Warned(MULES)),
    ("touch-spoolers-reload", Class::Warned(MULES)),
    ("touch-workers-reload", Class::Warned(NOT_YET)),
    ("propagate-touch", Class::Warned(NOT_YET)),
    ("fs-*", Class::Warned(NOT_YET)),
    ("wait-for-*", Class::Warned(HOOKS)),
    ("wait-iface*", Class::Warned(HOOKS)),
    ("wait-interface*", Class::Warned(HOOKS)),
    ("worker-exec*", Class::Warned(HOOKS)),
    ("master-fifo", Class::Warned(
        "dragoman has no master FIFO: send signals instead (SIGHUP reloads, SIGTERM stops, \
         SIGTTIN/SIGTTOU add or remove a worker)",
    )),
    // Mules, spooler, signals, timers, RPC.
    ("mule*", Class::Warned(MULES)),
    ("mules", Class::Warned(MULES)),
    ("spooler*", Class::Warned(MULES)),
    ("signal*", Class::Warned(MULES)),
    ("timer", Class::Warned(MULES)),
    ("rbtimer", Class::Warned(MULES)),
    ("rpc-max", Class::Warned(MULES)),
    ("lock-engine", Class::ByDesign(TUNING)),
    ("locks", Class::ByDesign(TUNING)),
    ("flock*", Class::Warned(NOT_YET)),
    ("cron2", Class::Warned(NOT_YET)),
    ("cron-harakiri", Class::Warned(NOT_YET)),
    ("cron-curl", Class::Warned(NOT_YET)),
    ("curl-cron", Class::Warned(NOT_YET)),
    // Metrics, alarms, stats pushers.
    ("metric*", Class::Warned(METRICS)),
    ("enable-metrics", Class::Warned(METRICS)),
    ("alarm*", Class::Warned(METRICS)),
    ("not-alarm-log", Class::Warned(METRICS)),
    ("not-log-alarm", Class::Warned(METRICS)),
    ("log-alarm", Class::Warned(METRICS)),
    ("backlog-alarm", Class::Warned(METRICS)),
    ("lq-alarm", Class::Warned(METRICS)),
    ("listen-queue-alarm", Class::Warned(METRICS)),
    ("segfault-alarm", Class::Warned(METRICS)),
    ("carbon*", Class::Warned(METRICS)),
    ("statsd-*", Class::Warned(METRICS)),
    ("stats-push*", Class::Warned(METRICS)),
    ("stats-pusher*", Class::Warned(METRICS)),
    ("rrdtool*", Class::Warned(METRICS)),
    ("zabbix-template", Class::Warned(METRICS)),
    ("nagios", Class::Warned(METRICS)),
    ("ping*", Class::Warned(METRICS)),
    ("stats-server", Class::Warned(
        "`stats-server` is not implemented: use `stats` (the same JSON, as uwsgitop reads it)",
    )),
    ("stats-min*", Class::ByDesign("the stats are always sent minified")),
    ("stats-no-*", Class::ByDesign("the stats have no cores or metrics sections to leave out")),
    ("geoip-*", Class::Warned(NOT_YET)),
    ("log-*", Class::Warned(LOGS)),
    ("logfile-*", Class::Warned(LOGS)),
    ("log-master-bufsize", Class::ByDesign(TUNING)),
    ("log-master-stream", Class::ByDesign(WHOLE_LINES)),
    ("log-master-req-stream", Class::ByDesign(WHOLE_LINES)),
    ("rsyslog-*", Class::Warned(LOGS)),
    ("threaded-logger", Class::ByDesign(TUNING)),
    ("command-mode", Class::Warned(NOT_YET)),
    ("disable-async-warn-on-queue-full", Class::ByDesign(TUNING)),
    ("pcre-jit", Class::ByDesign(TUNING)),
    ("st", Class::Warned(NOT_YET)),
    ("upload-progress", Class::Warned(NOT_YET)),
    // Plugins and the build.
    ("plugin-dir", Class::ByDesign(PLUGINS)),
    ("plugins-dir", Class::ByDesign(PLUGINS)),
    ("plugins-list", Class::ByDesign(PLUGINS)),
    ("plugin-list", Class::ByDesign(PLUGINS)),
    ("need-plugin*", Class::ByDesign(PLUGINS)),
    ("autoload", Class::ByDesign(PLUGINS)),
    ("dlopen", Class::ByDesign(PLUGINS)),
    ("build-plugin", Class::ByDesign(PLUGINS)),
    ("cflags", Class::ByDesign(PLUGINS)),
    ("dot-h", Class::ByDesign(PLUGINS)),
    ("binary-append-data", Class::ByDesign(PLUGINS)),
    ("binary-path", Class::ByDesign(PLUGINS)),
    ("privileged-binary-patch*", Class::ByDesign(PLUGINS)),
    ("unprivileged-binary-patch*", Class::ByDesign(PLUGINS)),
    ("loop-list", Class::ByDesign(PLUGINS)),
    ("loops-list", Class::ByDesign(PLUGINS)),
    ("clock-list", Class::ByDesign(PLUGINS)),
    ("clocks-list", Class::ByDesign(PLUGINS)),
    ("cheaper-algo-list", Class::ByDesign(PLUGINS)),
    ("cheaper-algos-list", Class::ByDesign(PLUGINS)),
    ("cheaper-list", Class::ByDesign(PLUGINS)),
    ("logger-list", Class::ByDesign(PLUGINS)),
    ("loggers-list", Class::ByDesign(PLUGINS)),
    ("alarms-list", Class::ByDesign(PLUGINS)),
    ("imperial-monitor-list", Class::ByDesign(PLUGINS)),
    ("imperial-monitors-list", Class::ByDesign(PLUGINS)),
    ("print-sym*", Class::ByDesign(PLUGINS)),
    // Commands of the uwsgi binary that make no sense in a config file.
    ("help", Class::ByDesign("`dragoman --help` lists the options")),
    ("usage", Class::ByDesign("`dragoman --help` lists the options")),
    ("version", Class::ByDesign("`dragoman --version` prints the version")),
    ("dump-options", Class::ByDesign("`dragoman --help` lists the options")),
    ("show-config", Class::ByDesign(
        "dragoman logs what it does not apply; the effective options are in the log at start",
    )),
    ("print", Class::Warned(NOT_YET)),
    ("iprint", Class::Warned(NOT_YET)),
    ("get", Class::Warned(NOT_YET)),
    ("stop", Class::Warned("send SIGTERM to the master (its PID is in `pidfile`)")),
    ("reload", Class::Warned("send SIGHUP to the master (its PID is in `pidfile`)")),
    ("pause", Class::Warned(NOT_YET)),
    ("suspend", Class::Warned(NOT_YET)),
    ("resume", Class::Warned(NOT_YET)),
    ("connect-and-read", Class::Warned(NOT_YET)),
    ("extract", Class::Warned(NOT_YET)),
    ("test", Class::Warned(NOT_YET)),
    ("exit", Class::Warned(NOT_YET)),
    ("fallback-config", Class::Warned(NOT_YET)),
    ("declare-option*", Class::Warned(
        "dragoman does not define custom options: write the options the custom one stands for",
    )),
    ("inject-*", Class::Warned(
        "dragoman does not inject text into ini files: put those options in an included ini \
         (`include = file.ini`)",
    )),
    ("blacklist", Class::Warned(NOT_YET)),
    ("whitelist", Class::Warned(NOT_YET)),
    ("end-blacklist", Class::Warned(NOT_YET)),
    ("end-whitelist", Class::Warned(NOT_YET)),
    ("resolve", Class::Warned(NOT_YET)),
    // Behaviour dragoman has by design.
    ("ignore-sigpipe", Class::ByDesign(
        "a client that goes away is not an error in dragoman's log",
    )),
    ("ignore-write-errors", Class::ByDesign(
        "a client that goes away is not an error in dragoman's log",
    )),
    ("disable-write-exception", Class::ByDesign(
        "a client that goes away does not raise in the application",
    )),
    ("write-errors-*", Class::ByDesign(
        "a client that goes away does not raise in the application",
    )),
    ("offload-thread*", Class::ByDesign(
        "responses are written by the event loop (files with sendfile), never by an \
         application thread",
    )),
    ("http-auto-chunked", Class::ByDesign(
        "responses without a length are sent chunked to HTTP/1.1 clients",
    )),
    ("http-keepalive", Class::ByDesign(
        "HTTP/1.1 connections are kept alive; idle ones close after `header-timeout`",
    )),
    ("http-chunked-input", Class::ByDesign("chunked request bodies are read")),
    ("http-manage-expect", Class::ByDesign("`Expect: 100-continue` is answered")),
    ("http-raw-body", Class::ByDesign("request bodies are passed as they come")),
    ("http-post-buffering*", Class::ByDesign(
        "bodies are buffered by dragoman before the application runs",
    )),
    ("http-buffer-size", Class::ByDesign(
        "the HTTP server is the worker: `buffer-size` is its limit",
    )),
    ("http-processes", Class::ByDesign("every worker serves HTTP: there is no separate router")),
    ("http-workers", Class::ByDesign("every worker serves HTTP: there is no separate router")),
    ("http-events", Class::ByDesign(TUNING)),
    ("http-cheap", Class::ByDesign("every worker serves HTTP: there is no separate router")),
    ("http-gracetime", Class::ByDesign("`worker-reload-mercy` bounds a graceful stop")),
    ("http-harakiri", Class::ByDesign("`harakiri` covers requests on every listener")),
    ("http-connect-timeout", Class::ByDesign(
        "the HTTP server is the worker: there is no backend to connect to",
    )),
    ("http-uid", Class::ByDesign("every worker runs as `uid`")),
    ("http-gid", Class::ByDesign("every worker runs as `gid`")),
    ("http-quiet", Class::ByDesign(TUNING)),
    ("http-modifier*", Class::ByDesign(TUNING)),
    ("http-socket-modifier*", Class::ByDesign(TUNING)),
    ("http-stud-prefix", Class::ByDesign(TUNING)),
    ("http-manage-rtsp", Class::ByDesign("RTSP is refused with 400")),
    ("http-backend-http", Class::ByDesign(
        "the HTTP server is the worker: there is no backend to speak to",
    )),
    ("http-ss", Class::Warned(ROUTERS)),
    ("http-stats*", Class::Warned(METRICS)),
    ("http-zerg", Class::Warned(ROUTERS)),
    ("http-to", Class::Warned(ROUTERS)),
    ("http-fallback", Class::Warned(ROUTERS)),
    ("http-resubscribe*", Class::Warned(EMPEROR)),
    ("http-subscription-*", Class::Warned(EMPEROR)),
    ("http-use-*", Class::Warned(EMPEROR)),
    ("http-var", Class::Warned(ROUTING)),
    ("http-server-name-as-http-host", Class::Warned(ROUTING)),
    ("http-path-info-no-decode-slashes", Class::Warned(NOT_YET)),
    ("http-manage-source", Class::Warned(NOT_YET)),
    ("http-auto-gzip", Class::Warned(
        "dragoman does not compress responses on the fly: precompressed static files \
         (`dragoman compress`) are served, and the application may compress",
    )),
    ("http-websockets", Class::ByDesign(
        "WebSockets are served to ASGI applications (`asgi =`, docs/asgi.md); a WSGI \
         application gets upgrade requests as plain requests",
    )),
    ("websocket*", Class::Warned(
        "WebSockets are served to ASGI applications (docs/asgi.md): the largest message is \
         `websocket-max-message`, in bytes",
    )),
    ("fastcgi-*", Class::Warned(
        "dragoman speaks HTTP and the uwsgi protocol, not FastCGI: point the proxy at `http` or \
         `socket`",
    )),
    ("scgi-*", Class::Warned(
        "dragoman speaks HTTP and the uwsgi protocol, not SCGI: point the proxy at `http` or \
         `socket`",
    )),
    ("raw-*", Class::Warned(
        "dragoman speaks HTTP and the uwsgi protocol: point the client at `http` or `socket`",
    )),
    ("puwsgi-socket", Class::Warned(
        "dragoman's uwsgi listeners (`socket`) are not persistent-connection ones: nginx's \
         uwsgi_pass works as with `socket`",
    )),
    ("shared-socket", Class::Warned(NOT_YET)),
    ("undeferred-shared-socket", Class::Warned(NOT_YET)),
    ("map-socket", Class::Warned(NOT_YET)),
    ("abstract-socket", Class::Warned(NOT_YET)),
    ("https-socket-*", Class::Refused(TLS)),
    ("socket-protocol", Class::Option),
    ("so-*", Class::Warned(NOT_YET)),
    ("socket-*", Class::Warned(NOT_YET)),
    ("tcp-*", Class::Warned(NOT_YET)),
    ("reuse-port", Class::Warned(NOT_YET)),
    ("freebind", Class::Warned(NOT_YET)),
    ("no-defer-accept", Class::ByDesign(TUNING)),
    ("close-on-exec*", Class::ByDesign("dragoman's sockets are close-on-exec")),
    ("fd-safe", Class::ByDesign(TUNING)),
    ("safe-fd", Class::ByDesign(TUNING)),
    ("no-fd-passing", Class::ByDesign(TUNING)),
    ("skip-zero", Class::ByDesign(TUNING)),
    ("max-fd", Class::Warned("set the open-file limit in the service manager (LimitNOFILE=)")),
    ("max-vars", Class::ByDesign(TUNING)),
    ("max-apps", Class::ByDesign("dragoman serves one application per process tree")),
    ("wsgi-accept-buffer*", Class::ByDesign(TUNING)),
    ("wsgi-env-behav*", Class::ByDesign(
        "the environ is built fresh for each request (uWSGI's 'cheat' is not needed)",
    )),
    ("wsgi-strict", Class::ByDesign("dragoman checks PEP 3333 always")),
    ("wsgi-manage-chunked-input", Class::ByDesign(
        "chunked bodies are read whole and CONTENT_LENGTH set",
    )),
    ("chunked-input-*", Class::ByDesign("chunked bodies are bounded by `limit-post`")),
    ("honour-range", Class::ByDesign("static files honour Range")),
    ("honour-stdin", Class::ByDesign(TUNING)),
    ("catch-exceptions", Class::Warned(
        "tracebacks are not sent to clients: they go to the log, and the client gets a 500",
    )),
    ("reload-on-exception*", Class::Warned(NOT_YET)),
    ("exception-handler", Class::Warned(NOT_YET)),
    ("body-read-warning", Class::ByDesign(TUNING)),
    ("post-buffering-bufsize", Class::ByDesign(TUNING)),
    ("response-headers-limit", Class::ByDesign(TUNING)),
    ("disable-sendfile", Class::Warned(NOT_YET)),
    ("file-serve-mode", Class::Warned(
        "dragoman serves files itself (with sendfile): there is no X-Sendfile mode",
    )),
    ("fileserve-mode", Class::Warned(
        "dragoman serves files itself (with sendfile): there is no X-Sendfile mode",
    )),
    ("check-static-docroot", Class::Warned(NOT_YET)),
    ("static-check", Class::Warned("use `check-static` (the same, by dragoman's name)")),
    ("static-expires-mtime", Class::Warned(NOT_YET)),
    ("static-expires-path-info*", Class::Warned(NOT_YET)),
    ("static-expires-type*", Class::Warned(NOT_YET)),
    ("static-expires-uri-mtime", Class::Warned(NOT_YET)),
    ("static-skip-ext", Class::Warned(NOT_YET)),
    ("static-gzip", Class::Warned("use `static-gzip-all` (variants made by `dragoman compress`)")),
    ("static-gzip-*", Class::Warned("use `static-gzip-all` (variants made by `dragoman compress`)")),
    ("mime-file", Class::ByDesign("dragoman carries its own table of types")),
    ("mimefile", Class::ByDesign("dragoman carries its own table of types")),
    ("file", Class::Warned(NOT_YET)),
    ("file-write", Class::Warned(NOT_YET)),
    ("cgroup*", Class::Warned("set resource limits in the service manager (systemd slices)")),
    ("limit-as", Class::Warned("set the limit in the service manager (LimitAS=)")),
    ("limit-nproc", Class::Warned("set the limit in the service manager (LimitNPROC=)")),
    ("reload-on-as", Class::Warned("use `reload-on-rss`")),
    ("evil-reload-on-as", Class::Warned("use `reload-on-rss`")),
    ("evil-reload-on-rss", Class::Warned("use `reload-on-rss` (a graceful recycle)")),
    ("reload-on-uss", Class::Warned("use `reload-on-rss`")),
    ("reload-on-pss", Class::Warned("use `reload-on-rss`")),
    ("reload-on-fd", Class::Warned(NOT_YET)),
    ("brutal-reload-on-fd", Class::Warned(NOT_YET)),
    ("reload-os-env", Class::ByDesign("a reload re-reads the configuration and the environment")),
    ("reload-mercy", Class::Warned("use `worker-reload-mercy`")),
    ("mule-reload-mercy", Class::Warned(MULES)),
    ("exit-on-reload", Class::Warned(NOT_YET)),
    ("min-worker-lifetime", Class::Warned(NOT_YET)),
    ("max-worker-lifetime-delta", Class::Warned(NOT_YET)),
    ("harakiri-*", Class::Warned("`harakiri` logs the stuck traceback and kills the worker")),
    ("no-harakiri-*", Class::ByDesign("there is no after-request hook for harakiri to cover")),
    ("backtrace-depth", Class::ByDesign(TUNING)),
    ("die-on-idle", Class::Warned(NOT_YET)),
    ("die-on-no-workers", Class::ByDesign("the master exits when workers cannot start")),
    ("idle", Class::Warned(NOT_YET)),
    ("cheap", Class::Warned(NOT_YET)),
    ("cheaper-*", Class::Warned(NOT_YET)),
    ("forkbomb-delay", Class::ByDesign("crash loops get an exponential back-off")),
    ("heartbeat", Class::Warned(EMPEROR)),
    ("auto-weight", Class::Warned(EMPEROR)),
    ("weight", Class::Warned(EMPEROR)),
    ("master-as-root", Class::Warned(NOT_YET)),
    ("add-gid", Class::Warned(NOT_YET)),
    ("immediate-uid", Class::Warned(NOT_YET)),
    ("immediate-gid", Class::Warned(NOT_YET)),
    ("no-initgroups", Class::Warned(NOT_YET)),
    ("safe-pidfile*", Class::Warned("use `pidfile` (written by the master)")),
    ("pidfile2", Class::Warned("use `pidfile` (written by the master)")),
    ("force-cwd", Class::Warned("use `chdir`")),
    ("chdir2", Class::Warned("use `chdir`")),
    ("binsh", Class::ByDesign("commands run with /bin/sh")),
    ("cpu-affinity", Class::Warned(
        "pin workers with the service manager (CPUAffinity=) or taskset",
    )),
    ("prio", Class::Warned("set the priority in the service manager (Nice=)")),
    ("ksm", Class::Warned(NOT_YET)),
    ("never-swap", Class::Warned(NOT_YET)),
    ("thread-stack*", Class::Warned(NOT_YET)),
    ("threads-stack*", Class::Warned(NOT_YET)),
    ("thunder-lock-watchdog", Class::ByDesign("accept is serialised by the kernel")),
    ("clock", Class::ByDesign(TUNING)),
    ("mode", Class::Warned(NOT_YET)),
    ("envdir", Class::Warned("set the variables with `env` or in the service manager")),
    ("early-envdir", Class::Warned("set the variables with `env` or in the service manager")),
    ("unenv", Class::Warned(NOT_YET)),
    ("ienv", Class::Warned(NOT_YET)),
    ("dynamic-apps", Class::ByDesign("dragoman serves one application, named in the config")),
    ("ignore-script-name", Class::Warned(NOT_YET)),
    ("no-server", Class::Warned(NOT_YET)),
    ("no-threads-wait", Class::ByDesign(TUNING)),
    ("skip-atexit*", Class::ByDesign(TUNING)),
    ("drop-after-*", Class::Warned(NOT_YET)),
    ("re-fork*", Class::Warned(NOT_YET)),
    ("refork*", Class::Warned(NOT_YET)),
    ("reaper", Class::ByDesign("the master always reaps its children")),
    ("check-interval", Class::ByDesign(TUNING)),
    ("check-mount*", Class::Warned(NOT_YET)),
    ("mountpoint-check", Class::Warned(NOT_YET)),
    ("use-abort", Class::ByDesign(TUNING)),
    ("optimize", Class::Warned("set PYTHONOPTIMIZE with `env`")),
    ("profiler", Class::Warned(NOT_YET)),
    ("notify-socket", Class::ByDesign("dragoman notifies systemd through NOTIFY_SOCKET")),
    ("notfound-log", Class::Warned(NOT_YET)),
    ("start_response-nodelay", Class::ByDesign(TUNING)),
    ("worker-log*", Class::Warned(NOT_YET)),
    ("worker-logger*", Class::Warned(NOT_YET)),
    ("mem-collector-freq", Class::ByDesign(TUNING)),
    ("import", Class::Warned(
        "import the module from the application (or its wsgi.py) instead",
    )),
    // The Python plugin.
    ("py-tracebacker", Class::ByDesign(
        "harakiri logs the stuck thread's traceback; faulthandler is available to the app",
    )),
    ("python-raw", Class::Warned(NOT_YET)),
    ("py-auto-reload-ignore", Class::Warned(NOT_YET)),
    ("py-call-osafterfork", Class::ByDesign(
        "os.register_at_fork handlers run in each worker after fork",
    )),
    ("py-call-uwsgi-fork-hooks", Class::ByDesign(
        "there is no uwsgi module to register fork hooks with",
    )),
    ("py-master-check-signals", Class::ByDesign(TUNING)),
    ("py-executable", Class::ByDesign(
        "sys.executable is the Python dragoman runs on (its virtualenv's with `home`)",
    )),
    ("py-sys-executable", Class::ByDesign(
        "sys.executable is the Python dragoman runs on (its virtualenv's with `home`)",
    )),
    ("py-program-name", Class::ByDesign(PY_TUNING)),
    ("py-programname", Class::ByDesign(PY_TUNING)),
    ("python-version", Class::ByDesign(PY_TUNING)),
    ("python-worker-override", Class::Warned(NOT_YET)),
    ("pymodule-alias", Class::Warned(NOT_YET)),
    ("post-pymodule-alias", Class::Warned(NOT_YET)),
    ("pyrun", Class::Warned(NOT_YET)),
    ("pyshell*", Class::Warned(NOT_YET)),
    ("luashell*", Class::Refused(OTHER_LANGUAGE)),
    ("rbshell*", Class::Refused(OTHER_LANGUAGE)),
    ("py-import", Class::Warned("import the module from the application instead")),
    ("pyimport", Class::Warned("import the module from the application instead")),
    ("python-import", Class::Warned("import the module from the application instead")),
    ("shared-*", Class::Warned("import the module from the application instead")),
    ("early-py*", Class::Warned("import the module from the application instead")),
    ("early-python*", Class::Warned("import the module from the application instead")),
    ("require", Class::Refused(OTHER_LANGUAGE)),
    ("shared-require", Class::Refused(OTHER_LANGUAGE)),
    ("spooler-py*", Class::Warned(MULES)),
    ("spooler-python-import", Class::Warned(MULES)),
    ("no-site", Class::Warned(NOT_YET)),
    ("py", Class::Warned("use `wsgi-file` or `module`")),
    ("python", Class::Warned("use `wsgi-file` or `module`")),
    ("callable", Class::Option),
];

/// What dragoman does with the uWSGI option `name`, or `None` when uWSGI has no such option
/// and dragoman none either.
pub(crate) fn classify(name: &str) -> Option<Class> {
    if options::lookup(name).is_some() {
        return Some(Class::Option);
    }
    if READER_KEYS.contains(&name) {
        return Some(Class::Reader);
    }
    rule_for(name).map(|(_, class)| class)
}

/// The rule that classifies `name`: an exact one, else the longest prefix.
fn rule_for(name: &str) -> Option<(&'static str, Class)> {
    if let Some((pattern, class)) = RULES.iter().find(|(p, _)| *p == name) {
        return Some((pattern, *class));
    }
    RULES
        .iter()
        .filter(|(p, _)| {
            p.strip_suffix('*')
                .is_some_and(|prefix| name.starts_with(prefix))
        })
        .max_by_key(|(p, _)| p.len())
        .map(|(p, c)| (*p, *c))
}

/// A refusal that depends on the value: routing rules that deny or authenticate. `None` when
/// the value is accepted as the option's class says.
pub(crate) fn refused_value(name: &str, value: &str) -> Option<String> {
    let routing = ["route", "final-route", "error-route", "response-route"]
        .iter()
        .any(|p| name.starts_with(p));
    if !routing {
        return None;
    }
    // `route = REGEXP ACTION:ARGS`, `route-if = COND ACTION:ARGS`: uWSGI splits the value at
    // its first space, and the action is all the rest, spaces included (`basicauth:Staff
    // only,user:pass`, `break:403 Forbidden`); `route-run = ACTION:ARGS` has no regexp.
    let value = value.trim();
    let action = if name.ends_with("-run") {
        value
    } else {
        value
            .split_once(char::is_whitespace)
            .map_or("", |(_, action)| action.trim_start())
    };
    let verb = action.split(':').next().unwrap_or_default();
    let status = action
        .split_once(':')
        .and_then(|(_, a)| a.split_whitespace().next())
        .and_then(|s| s.parse::<u16>().ok());
    let denies = matches!(
        verb,
        "basicauth" | "basicauth-next" | "ldapauth" | "ldapauth-next" | "htpasswd"
    ) || (matches!(verb, "break" | "return") && status.is_some_and(|s| s >= 400));
    denies.then(|| {
        format!(
            "this routing rule ({action}) denies or authenticates requests, and dragoman has no \
             internal routing yet: ignoring it would let through what the rule stops; enforce \
             it in the proxy in front or in the application, then remove the line"
        )
    })
}

/// The row of the generated table for each uWSGI option: name, class, reason.
#[cfg(test)]
pub(crate) fn table_rows() -> Vec<(String, &'static str, String)> {
    names()
        .map(|name| {
            let (class, reason) = match classify(name) {
                Some(Class::Option) => {
                    let spec = options::lookup(name).expect("classified as an option");
                    let same = if spec.name == name {
                        String::new()
                    } else {
                        format!("dragoman's `{}`; ", spec.name)
                    };
                    match spec.status {
                        options::Status::Active => ("implemented", format!("{same}{}", spec.help)),
                        options::Status::Planned => (
                            "accepted, not in effect yet",
                            format!("{same}{}", spec.help),
                        ),
                        options::Status::Ignored(why) => {
                            ("covered by design", format!("{same}{why}"))
                        }
                    }
                }
                Some(Class::Reader) => (
                    "implemented",
                    "read by the ini reader (includes, config logic, placeholders), as in uWSGI"
                        .to_string(),
                ),
                Some(Class::ByDesign(why)) => ("covered by design", why.to_string()),
                Some(Class::Warned(why)) => ("not implemented (warning)", why.to_string()),
                Some(Class::Refused(why)) => ("refused", why.to_string()),
                None => ("unclassified", String::new()),
            };
            (name.to_string(), class, reason)
        })
        .collect()
}

/// The markdown table of every uWSGI option, as docs/configuration.md carries it.
#[cfg(test)]
pub(crate) fn markdown_table() -> String {
    let mut out =
        String::from("| uWSGI option | in dragoman | why, or what instead |\n|---|---|---|\n");
    for (name, class, reason) in table_rows() {
        out.push_str(&format!(
            "| `{name}` | {class} | {} |\n",
            reason.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- uwsgi-options:begin -->\n";
    const END: &str = "<!-- uwsgi-options:end -->";

    #[test]
    fn uwsgi_doc_table_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let doc = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
        let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = doc.find(END).expect("the end marker");
        let table = markdown_table();
        if std::env::var_os("DRAGOMAN_WRITE_DOCS").is_some() {
            let new = format!("{}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, new).expect("docs/configuration.md is writable");
            return;
        }
        assert!(
            doc[start..end] == table,
            "docs/configuration.md's table of uWSGI options is stale: run \
             `DRAGOMAN_WRITE_DOCS=1 cargo test --lib uwsgi_doc` and commit the result"
        );
    }

    #[test]
    fn every_uwsgi_option_has_a_class() {
        let missing: Vec<&str> = names().filter(|n| classify(n).is_none()).collect();
        assert!(
            missing.is_empty(),
            "unclassified uWSGI options: {missing:?}"
        );
        assert!(names().count() > 1300);
    }

    #[test]
    fn every_rule_classifies_a_uwsgi_option() {
        for (pattern, _) in RULES {
            assert!(
                names().any(|n| rule_for(n).is_some_and(|(p, _)| p == *pattern)),
                "the rule {pattern} classifies no uWSGI option"
            );
        }
    }

    #[test]
    fn the_classes_the_issue_names() {
        for name in [
            "ignore-sigpipe",
            "offload-threads",
            "disable-write-exception",
            "ignore-write-errors",
            "http-auto-chunked",
            "http-keepalive",
        ] {
            assert!(matches!(classify(name), Some(Class::ByDesign(_))), "{name}");
        }
        for name in ["gevent", "async", "https2", "ssl-option", "pam", "chroot"] {
            assert!(matches!(classify(name), Some(Class::Refused(_))), "{name}");
        }
        assert!(matches!(classify("route"), Some(Class::Warned(_))));
        for name in [
            "https",
            "https-socket",
            "sni",
            "http-to-https",
            "https-export-cert",
        ] {
            assert_eq!(classify(name), Some(Class::Option), "{name}");
        }
        assert!(refused_value("route", "^/admin basicauth:Realm,user:pass").is_some());
        assert!(refused_value("route-if", "equal:${PATH_INFO};/x break:403").is_some());
        // The action is everything after the regexp or condition, as uWSGI splits the value
        // (at its first space): a realm or a message with spaces in it is still the action.
        assert!(refused_value("route", "^/admin/ basicauth:Staff only,admin:secret").is_some());
        assert!(refused_value("route-uri", "^/private break:403 Forbidden").is_some());
        assert!(refused_value("route-if", "equal:${PATH_INFO};/x return:403 Go away").is_some());
        // Those with no regexp or condition are all action.
        assert!(refused_value("route-run", "basicauth:Staff only,admin:secret").is_some());
        assert!(refused_value("final-route-run", "break:401 No").is_some());
        assert!(refused_value("route", "^/old/ redirect-301:https://example.com/new/ x").is_none());
        assert!(refused_value("route", "^/healthz$ donotlog:").is_none());
        assert!(refused_value("route", "/static/(.*) static:/src/static/$1").is_none());
        assert_eq!(classify("for-glob"), Some(Class::Reader));
        assert_eq!(classify("vaccum"), None);
    }
}
