//! The option table: the one list of every option dragoman knows. The command line, ini files,
//! `DRAGOMAN_*` environment variables and `--help` are all derived from it, so an option exists
//! in all four places or in none.
//!
//! Names follow uWSGI, so a site's existing `uwsgi.ini` loads unchanged; gunicorn names are
//! aliases where they do not clash.

/// The sections of `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Config,
    Application,
    Server,
    Processes,
    Static,
    Limits,
    Compat,
}

impl Group {
    pub const ALL: [Group; 7] = [
        Group::Config,
        Group::Application,
        Group::Server,
        Group::Processes,
        Group::Static,
        Group::Limits,
        Group::Compat,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Config => "Configuration files",
            Group::Application => "Application",
            Group::Server => "Listeners and HTTP",
            Group::Processes => "Processes and workers",
            Group::Static => "Static files",
            Group::Limits => "Limits and timeouts",
            Group::Compat => "uWSGI compatibility (accepted, nothing to do in dragoman)",
        }
    }
}

/// How an option's value is written; decides how a bare `--flag` or `key` line is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// true/false, yes/no, on/off, 1/0; a bare name means true.
    Flag,
    /// Anything else: the typed parsing happens when the config is built.
    Value,
}

/// Whether an option does something in this version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented.
    Active,
    /// Parsed and validated so existing configs load, but not yet in effect; startup says so.
    Planned,
    /// A uWSGI option that has no job to do in dragoman; the reason is logged at startup.
    Ignored(&'static str),
}

/// One option: everything the sources, the validator and `--help` need to know about it.
#[derive(Debug)]
pub struct OptionSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub group: Group,
    pub kind: Kind,
    pub repeatable: bool,
    /// Shown in `--help`; empty when there is no default.
    pub default: &'static str,
    /// The placeholder shown in `--help` (`ADDR`, `N`); empty for flags.
    pub metavar: &'static str,
    pub status: Status,
    pub help: &'static str,
}

const fn opt(
    name: &'static str,
    group: Group,
    metavar: &'static str,
    default: &'static str,
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
    default: &'static str,
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
    const fn planned(mut self) -> Self {
        self.status = Status::Planned;
        self
    }
    const fn ignored(mut self, why: &'static str) -> Self {
        self.status = Status::Ignored(why);
        self
    }

    /// The environment variable that sets this option: `DRAGOMAN_` + upper-cased name, `-` as `_`.
    pub fn env_var(&self) -> String {
        format!(
            "DRAGOMAN_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Whether `name` (as written by a user, any source) names this option.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

use Group::*;

/// Every option, in `--help` order within each group.
pub static OPTIONS: &[OptionSpec] = &[
    // Configuration files.
    opt("ini", Config, "FILE[:SECTION]", "", "read options from an ini file: its [uwsgi] and [dragoman] sections (or a named one), or the whole file if it has no sections").many(),
    // Application.
    opt("module", Application, "MODULE[:CALLABLE]", "", "import the WSGI application from MODULE; the attribute is `application` unless CALLABLE (or --callable) names another").aka(&["wsgi"]),
    opt("callable", Application, "NAME", "application", "name of the WSGI callable in the module or wsgi-file"),
    opt("wsgi-file", Application, "FILE", "", "load the WSGI application from a Python file instead of a module"),
    opt("chdir", Application, "DIR", "", "change to DIR before loading the application (it is also put first on sys.path)"),
    opt("pythonpath", Application, "DIR", "", "add DIR to the front of sys.path (repeatable)").aka(&["python-path", "pp"]).many(),
    opt("home", Application, "VENV", "", "import the application's packages from this virtualenv (it must be for the same Python version as dragoman)").aka(&["virtualenv", "venv", "pyhome"]),
    opt("env", Application, "KEY=VALUE", "", "set an environment variable before the application loads (repeatable)").many(),
    flag("lazy-apps", Application, "true", "load the application in each worker after fork; `lazy-apps = false` is the same as --preload"),
    flag("preload", Application, "false", "load the application once in the master before forking workers (a reload then restarts workers without re-importing the code)"),
    // Listeners and HTTP.
    opt("http", Server, "ADDR", "127.0.0.1:8000", "serve HTTP on ADDR: `:8000` (all IPv4 interfaces), `127.0.0.1:8000`, `[::1]:8000`, or a unix socket path; repeatable").aka(&["http-socket", "bind"]).many(),
    opt("listen", Server, "N", "1024", "the listen queue (backlog) of each listening socket"),
    flag("proxy-protocol", Server, "false", "every connection on the http listeners starts with a PROXY protocol header (v1 or v2) naming the real client; it becomes REMOTE_ADDR").aka(&["enable-proxy-protocol"]),
    opt("proxy-allow-from", Server, "IP", "127.0.0.1, ::1", "peers whose PROXY headers are believed (repeatable); others are served as plain HTTP").many(),
    opt("socket", Server, "ADDR", "", "serve the uwsgi protocol (for nginx's uwsgi_pass) on ADDR: `:3031`, `127.0.0.1:3031` or a unix socket path; repeatable").aka(&["uwsgi-socket"]).many(),
    opt("https", Server, "ADDR,CERT,KEY", "", "serve HTTPS on ADDR with a certificate and key").many().planned(),
    // Processes and workers.
    opt("processes", Processes, "N", "1", "number of worker processes").aka(&["workers"]),
    opt("threads", Processes, "N", "1", "Python threads per worker that run the application; with 1 the app runs on the worker's event-loop thread"),
    opt("worker-reload-mercy", Processes, "SECONDS", "60", "on stop, how long workers may take to finish their requests before they are killed").aka(&["graceful-timeout"]),
    opt("max-requests", Processes, "N", "0", "recycle a worker gracefully after N requests (0: never)"),
    opt("max-requests-delta", Processes, "N", "0", "add N times the worker number to max-requests, so workers do not recycle together"),
    opt("max-worker-lifetime", Processes, "SECONDS", "0", "recycle a worker gracefully after it has run this long (0: never)"),
    opt("reload-on-rss", Processes, "MIB", "0", "recycle a worker gracefully when its resident memory exceeds this (0: never)"),
    opt("harakiri", Processes, "SECONDS", "0", "kill and replace a worker whose request runs longer than this, after logging the stuck thread's traceback (0: never)").aka(&["timeout"]),
    flag("harakiri-verbose", Processes, "true", "log the Python traceback of the stuck thread before a harakiri kill (always done)"),
    opt("touch-reload", Processes, "FILE", "", "reload gracefully when FILE is touched (repeatable)").many(),
    opt("touch-chain-reload", Processes, "FILE", "", "replace workers one at a time when FILE is touched (repeatable)").many(),
    opt("py-autoreload", Processes, "SECONDS", "0", "development: check every SECONDS whether a loaded .py file changed, and reload if so (0: never)"),
    opt("pidfile", Processes, "FILE", "", "write the master's PID to FILE").aka(&["pid"]),
    flag("vacuum", Processes, "false", "remove the pidfile and unix sockets on exit"),
    opt("uid", Processes, "USER", "", "run as this user (name or number) after binding the sockets").aka(&["user"]),
    opt("gid", Processes, "GROUP", "", "run as this group (name or number) after binding the sockets").aka(&["group"]),
    opt("umask", Processes, "MASK", "", "set the process umask (octal, e.g. 022)"),
    opt("chmod-socket", Server, "MODE", "", "permissions of unix sockets dragoman creates (octal, e.g. 660)"),
    opt("stats", Processes, "ADDR", "", "serve uWSGI-compatible JSON stats (as uwsgitop reads them) on ADDR: host:port or a unix socket path"),
    flag("stats-http", Processes, "false", "serve the stats as an HTTP response"),
    // Static files.
    opt("static-map", Static, "MOUNT=PATH", "", "serve the files under PATH (or the one file PATH) at URL prefix MOUNT, without calling the app; a missing file goes to the app").many(),
    opt("static-map2", Static, "MOUNT=DIR", "", "like static-map, with MOUNT appended to DIR (uWSGI semantics: /static=/srv serves /srv/static)").many(),
    opt("check-static", Static, "DIR", "", "serve a file from DIR when the request path names one (static-map /=DIR)").many(),
    opt("static-index", Static, "NAME", "", "file served for a directory request, e.g. index.html (repeatable)").many(),
    opt("static-safe", Static, "DIR", "", "allow symlinks that lead into DIR (by default a symlink must stay inside its mount)").many(),
    opt("static-expires", Static, "REGEX SECONDS", "", "Cache-Control max-age and Expires for files whose full path matches REGEX").many(),
    opt("static-expires-uri", Static, "REGEX SECONDS", "", "Cache-Control max-age and Expires for URLs matching REGEX").many(),
    opt("static-max-age", Static, "SECONDS", "", "Cache-Control max-age for the other static files"),
    flag("static-immutable", Static, "true", "files whose name carries a content hash (app.3f2a9c1b7e4d.css, as Django's ManifestStaticFilesStorage writes) get `Cache-Control: public, max-age=31536000, immutable`"),
    flag("static-gzip-all", Static, "true", "serve x.br, x.zst or x.gz instead of x when the client accepts it (write them with `dragoman compress DIR`)"),
    flag("static-dotfiles", Static, "false", "serve files and directories whose name starts with a dot"),
    opt("static-cache", Static, "MIB", "64", "memory for the per-worker cache of small files (files up to 1 MiB); 0 turns it off"),
    // Limits and timeouts.
    opt("buffer-size", Limits, "BYTES", "32768", "largest request head (request line and headers) accepted; beyond it, 431"),
    opt("limit-request-line", Limits, "BYTES", "8190", "longest request line accepted; beyond it, 414"),
    opt("limit-request-fields", Limits, "N", "100", "most header fields in a request; beyond it, 431"),
    opt("limit-post", Limits, "BYTES", "1073741824", "largest request body accepted (1 GiB), answered 413 before the body is read when its length is declared, else as soon as it grows past (0: no limit)"),
    opt("post-buffering", Limits, "BYTES", "65536", "request bodies are read whole before the application is called (so a slow upload holds no application thread): in memory up to this size, then in a temporary file; 0 streams larger bodies to the application as it reads"),
    opt("body-spool-budget", Limits, "BYTES", "1073741824", "bytes of request bodies one worker may hold in temporary files at once (1 GiB); beyond it, 503 with Retry-After"),
    opt("body-min-rate", Limits, "BYTES", "500", "slowest average rate, in bytes a second, at which a request body may arrive once the first body-timeout has passed; slower, 408 (0: no minimum)"),
    opt("header-timeout", Limits, "SECONDS", "15", "time a client has to send a complete request head, counted from when the connection is ready for one (so it also closes idle keep-alive connections)"),
    opt("body-timeout", Limits, "SECONDS", "60", "longest wait for more of a request body (408)"),
    opt("write-timeout", Limits, "SECONDS", "60", "longest wait for a client to take more of a response"),
    opt("max-connections", Limits, "N", "1024", "connections one worker keeps open; at the cap the least recently active is closed (when idle) for the new one"),
    opt("request-queue", Limits, "N", "128", "requests one worker lets wait for an application thread; beyond it, 503 with Retry-After"),
    // uWSGI compatibility.
    flag("master", Compat, "true", "").ignored("dragoman always runs a master process"),
    flag("die-on-term", Compat, "true", "").ignored("SIGTERM always stops dragoman gracefully (SIGHUP reloads)"),
    opt("plugins", Compat, "LIST", "", "").aka(&["plugin"]).many().ignored("dragoman needs no plugins; Python is built in"),
    flag("enable-threads", Compat, "true", "").ignored("Python threads are always enabled"),
    flag("single-interpreter", Compat, "true", "").ignored("dragoman always uses one interpreter per process"),
    flag("need-app", Compat, "true", "").ignored("dragoman always exits when the application cannot be loaded"),
    flag("thunder-lock", Compat, "false", "").ignored("accept is serialised by the kernel"),
    flag("no-orphans", Compat, "true", "").ignored("workers always exit when the master dies"),
];

/// Finds the option a user-written name refers to (name or alias).
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.answers_to(name))
}

/// The known option name closest to a misspelt one, if any is close enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase().replace('_', "-");
    OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
        .map(|candidate| (strsim::damerau_levenshtein(&name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| lookup(candidate).map_or(candidate, |o| o.name))
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
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("thread"), Some("threads"));
        assert_eq!(suggest("static_map"), Some("static-map"));
        assert_eq!(suggest("modul"), Some("module"));
        assert_eq!(suggest("completely-unrelated"), None);
    }

    #[test]
    fn env_var_names() {
        assert_eq!(lookup("wsgi-file").unwrap().env_var(), "DRAGOMAN_WSGI_FILE");
    }
}
