//! From the merged settings to a typed [`Config`], one part of the configuration per function.
//! Every check names the setting's origin, what was expected and an example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::app::{AppSource, AppTarget};
use super::defaults as d;
use super::listen::{parse_listen, Listen, ListenAddr, Wire};
use super::model::{
    Cheaper, Config, Daemonize, Limits, Procname, Recycle, StaticConfig, StaticMount,
};
use super::options::{self, Kind, Status};
use super::resolve::{self, bad_value, count, Resolved};
use super::source::{ConfigError, Notice, Origin, Setting};
use super::values::parse_bool;

/// Every problem [`build_all`] finds, not only the first: each part of the configuration is
/// read even when another part is wrong (a wrong part reads as its default meanwhile, and no
/// config is returned).
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    /// The value, or the default after noting the problem.
    fn ok<T: Default>(&mut self, read: Result<T, ConfigError>) -> T {
        read.unwrap_or_else(|e| {
            self.0.push(e);
            T::default()
        })
    }
}

/// Validates the merged settings into a [`Config`], or every problem found.
pub(crate) fn build_all(settings: &[Setting]) -> Result<Config, Vec<ConfigError>> {
    let r = Resolved::new(settings);
    let mut p = Problems::default();
    p.0.extend(check_flags(settings));
    let mut warnings = Vec::new();
    let mut notices = Vec::new();
    let main = app_target(&r, &mut warnings).map_err(|e| p.0.push(e)).ok();
    let asgi = p.ok(super::asgi::asgi(&r, &mut warnings));
    let default_callable = r.last("callable").map_or(d::CALLABLE, |c| c.value.trim());
    let mounts =
        super::mounts::mounts(&r, default_callable, &mut warnings).map_err(|e| p.0.push(e));
    let served = match (main, mounts) {
        (Some(main), Ok(mounts)) => super::mounts::arrange(
            &r,
            main,
            mounts,
            asgi.interface,
            &mut warnings,
            &mut notices,
        )
        .map_err(|e| p.0.push(e))
        .ok()
        .and_then(|served| {
            served.or_else(|| {
                p.0.push(ConfigError(
                    "no application to serve: name it on the command line \
                     (`dragoman mysite.wsgi:application`), or in the ini file \
                     (`module = mysite.wsgi`), or with --wsgi-file app.py"
                        .into(),
                ));
                None
            })
        }),
        _ => None,
    };
    let mut listeners = p.ok(listeners(&r, &mut warnings, &mut notices));
    let tls = p.ok(super::tls::tls(&r, &mut listeners, &mut warnings));
    default_listener(&mut listeners);
    let backlog = p.ok(r.count("listen", 1, "1024", d::LISTEN_BACKLOG));
    let mercy = p.ok(r.count(
        "worker-reload-mercy",
        0,
        "30",
        d::WORKER_RELOAD_MERCY_SECS as usize,
    ));
    let pythonpath = r
        .all("pythonpath")
        .iter()
        .map(|s| p.ok(resolve::nonempty_path(s, "/srv/mysite/lib")))
        .collect();
    let mut config = Config {
        listeners,
        backlog: backlog.min(i32::MAX as usize) as i32,
        app: AppTarget::placeholder(),
        main_app: true,
        mounts: Vec::new(),
        no_default_app: r.flag("no-default-app", false),
        chdir: p.ok(r.path_at("chdir", "/srv/mysite")),
        pythonpath,
        home: p.ok(r.path_at("home", "/srv/mysite/venv")),
        env: p.ok(env_vars(&r)),
        processes: p.ok(r.count("processes", 1, "4", d::PROCESSES)),
        threads: p.ok(r.count("threads", 1, "4", d::THREADS)),
        mercy: Duration::from_secs(mercy as u64),
        preload: r.flag("preload", d::PRELOAD) || !r.flag("lazy-apps", d::LAZY_APPS),
        recycle: p.ok(recycle(&r)),
        harakiri: p.ok(r.seconds("harakiri")),
        touch_reload: r.paths("touch-reload"),
        touch_chain_reload: r.paths("touch-chain-reload"),
        py_autoreload: p.ok(py_autoreload(&r)),
        pidfile: r.last("pidfile").map(|s| PathBuf::from(s.value.trim())),
        vacuum: r.flag("vacuum", d::VACUUM),
        uid: named(&r, "uid"),
        gid: named(&r, "gid"),
        umask: p.ok(r.octal("umask", "022")),
        chmod_socket: p.ok(chmod_socket(&r)),
        stats: p.ok(stats(&r)),
        stats_http: r.flag("stats-http", d::STATS_HTTP),
        metrics: p.ok(metrics(&r)),
        health_check: p.ok(health_check(&r)),
        shutdown_delay: p.ok(shutdown_delay(&r)),
        forwarded_allow_ips: p.ok(forwarded_allow_ips(&r)),
        statics: p.ok(static_config(&r)),
        limits: p.ok(limits(&r)),
        proxy_protocol: p.ok(proxy_protocol(&r)),
        tls,
        asgi,
        pyargv: r
            .text("pyargv")
            .map(|a| a.split_whitespace().map(str::to_string).collect()),
        daemonize: p.ok(daemonize(&r)),
        procname: procname(&r),
        cheaper: p.ok(cheaper(&r)),
        daemons: p.ok(super::daemons::daemons(&r)),
        crons: p.ok(super::jobs::crons(&r)),
        hooks_master_start: p.ok(super::jobs::hooks(&r)),
        chown_socket: p.ok(chown_socket(&r)),
        logging: p.ok(super::logging::logging(&r)),
        add_headers: p.ok(add_headers(&r)),
        wsgi_file_wrapper: !r.flag("wsgi-disable-file-wrapper", false),
        strict: r.flag("strict", false),
        notices,
        warnings,
    };
    let (Some(served), true) = (served, p.0.is_empty()) else {
        return Err(p.0);
    };
    config.app = served.app;
    config.main_app = served.main_app;
    config.mounts = served.mounts;
    config.notices.extend(notices_of(&r));
    config.warnings.extend(r.warnings.take());
    Ok(config)
}

/// Flags of every status must at least be booleans.
fn check_flags(settings: &[Setting]) -> Vec<ConfigError> {
    settings
        .iter()
        .filter(|s| s.spec.kind == Kind::Flag)
        .filter(|s| !s.value.is_empty() && parse_bool(&s.value).is_none())
        .map(|s| bad_value(s, "true or false (also yes/no, on/off, 1/0)", "true"))
        .collect()
}

/// The `http` and `socket` listeners (`protocol = http` makes the `socket` ones speak HTTP).
/// An empty `http =` (as the post that started this project writes it) is the default
/// address, with a line that says so.
fn listeners(
    r: &Resolved<'_>,
    warnings: &mut Vec<String>,
    notices: &mut Vec<Notice>,
) -> Result<Vec<Listen>, ConfigError> {
    let socket_wire = match r.last("protocol") {
        None => Wire::Uwsgi,
        Some(s) => match s.value.trim() {
            "uwsgi" => Wire::Uwsgi,
            "http" => Wire::Http,
            _ => {
                return Err(bad_value(
                    s,
                    "uwsgi or http (dragoman speaks no other protocol)",
                    "uwsgi",
                ))
            }
        },
    };
    let mut listeners: Vec<Listen> = Vec::new();
    for (option, wire, example) in [
        ("http", Wire::Http, ":8000"),
        ("socket", socket_wire, ":3031"),
    ] {
        for s in r.all(option) {
            let empty_http = option == "http" && s.value.trim().is_empty();
            let value = if empty_http {
                d::HTTP
            } else {
                s.value.as_str()
            };
            if empty_http {
                notices.push(Notice {
                    not_yet: false,
                    text: format!(
                        "{}: `{} =` names no address, so dragoman listens on the default, {} \
                         (write `{} = :8000` to listen on every interface)",
                        s.origin,
                        s.spec.name,
                        d::HTTP,
                        s.spec.name
                    ),
                });
            }
            let addrs = parse_listen(value).map_err(|why| {
                bad_value(s, &format!("an address to listen on ({why})"), example)
            })?;
            let v = value.trim();
            // `8000` or `localhost` with no `:` is more often a forgotten `:` than a socket file.
            if !v.contains([':', '/', '.']) {
                warnings.push(format!(
                    "{}: `{} = {v}` has no `:`, so it is a unix socket file named {v} (in the \
                     `chdir` directory, if set), as uWSGI reads it; for a port, write \
                     `{} = :{v}`",
                    s.origin, s.spec.name, s.spec.name
                ));
            }
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
    Ok(listeners)
}

/// With no listener of any kind (http, socket, https, http-to-https): the default address.
fn default_listener(listeners: &mut Vec<Listen>) {
    if listeners.is_empty() {
        let addr: SocketAddr = d::HTTP.parse().expect("the default address parses");
        listeners.push(Listen {
            addr: ListenAddr::Tcp(addr),
            wire: Wire::Http,
            origin: None,
        });
    }
}

fn env_vars(r: &Resolved<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    r.all("env")
        .iter()
        .map(|s| match s.value.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(bad_value(
                s,
                "KEY=VALUE",
                "DJANGO_SETTINGS_MODULE=mysite.settings",
            )),
        })
        .collect()
}

fn recycle(r: &Resolved<'_>) -> Result<Recycle, ConfigError> {
    Ok(Recycle {
        max_requests: r.count("max-requests", 0, "1000", 0)? as u64,
        max_requests_delta: r.count("max-requests-delta", 0, "10", 0)? as u64,
        max_lifetime: r.seconds("max-worker-lifetime")?,
        max_rss: r
            .optional_count("reload-on-rss", "512")?
            .map(|mib| mib * 1024 * 1024),
    })
}

fn py_autoreload(r: &Resolved<'_>) -> Result<Option<Duration>, ConfigError> {
    Ok(match r.last("py-autoreload") {
        None => None,
        Some(s) => match parse_bool(&s.value) {
            Some(on) => on.then(|| Duration::from_secs(1)),
            None => Some(count(s, 0, "1")? as u64)
                .filter(|n| *n > 0)
                .map(Duration::from_secs),
        },
    })
}

/// `cheaper` and its family, as uWSGI reads them: `cheaper = 0` is off; a floor at or above
/// `processes` is an error; `cheaper-initial` outside the floor and `processes` is brought
/// within, with a warning; an algorithm other than spare falls back to spare, with a warning.
fn cheaper(r: &Resolved<'_>) -> Result<Option<Cheaper>, ConfigError> {
    let Some(s) = r.last("cheaper") else {
        return Ok(None);
    };
    let min = count(s, 0, "2")?;
    if min == 0 {
        return Ok(None);
    }
    let processes = r.count("processes", 1, "4", d::PROCESSES)?;
    if min >= processes {
        return Err(ConfigError(format!(
            "{}: cheaper ({min}) must be lower than processes ({processes}): it is the fewest \
             workers to keep, and processes the most",
            s.origin
        )));
    }
    let mut initial = r.count("cheaper-initial", 1, "2", min)?;
    if let Some(i) = r.last("cheaper-initial") {
        let within = initial.clamp(min, processes);
        if within != initial {
            r.warnings.borrow_mut().push(format!(
                "{}: cheaper-initial ({initial}) must be between cheaper ({min}) and processes \
                 ({processes}); starting {within} worker(s), as uWSGI does",
                i.origin
            ));
            initial = within;
        }
    }
    if let Some(a) = r.last("cheaper-algo") {
        let algo = a.value.trim();
        if !algo.is_empty() && algo != "spare" {
            r.warnings.borrow_mut().push(format!(
                "{}: cheaper-algo {algo:?} is not implemented in dragoman; it uses spare, uWSGI's \
                 default (workers added while all are busy, removed while more than one idles), \
                 as uWSGI falls back to it",
                a.origin
            ));
        }
    }
    Ok(Some(Cheaper {
        min,
        initial,
        step: r.count("cheaper-step", 1, "1", 1)?,
        overload: r
            .count("cheaper-overload", 1, "3", 3)?
            .min(u32::MAX as usize) as u32,
    }))
}

/// `daemonize` or `daemonize2` (not both: they detach at different times).
fn daemonize(r: &Resolved<'_>) -> Result<Option<Daemonize>, ConfigError> {
    let (early, late) = (r.last("daemonize"), r.last("daemonize2"));
    if let (Some(a), Some(b)) = (early, late) {
        return Err(ConfigError(format!(
            "{}: daemonize2 is set, and daemonize too ({}); one detaches once the sockets are \
             bound, the other once the application is loaded: keep one",
            b.origin, a.origin
        )));
    }
    let Some(s) = late.or(early) else {
        return Ok(None);
    };
    let log = resolve::nonempty_path(s, "/var/log/mysite.log")?;
    if parse_bool(&s.value).is_some() {
        r.warnings.borrow_mut().push(format!(
            "{}: `{} = {}` names a log file called {:?}, as uWSGI reads it (the value is the \
             file the detached server writes to, not a switch); give a path, as in `{} = \
             /var/log/mysite.log`",
            s.origin,
            s.spec.name,
            s.value.trim(),
            s.value.trim(),
            s.spec.name
        ));
    }
    Ok(Some(Daemonize {
        log,
        after_load: s.spec.name == "daemonize2",
        origin: s.origin.clone(),
    }))
}

/// Process titles.
fn procname(r: &Resolved<'_>) -> Procname {
    Procname {
        auto: r.flag("auto-procname", false),
        prefix: r
            .text("procname-prefix-spaced")
            .map(|p| format!("{p} "))
            .or_else(|| r.text("procname-prefix")),
        append: r.text("procname-append"),
        name: r.text("procname"),
        master: r.text("procname-master"),
    }
}

/// `chmod-socket`: an octal mask; alone (or `1`, or `true`) it means 666, as in uWSGI
/// (core/uwsgi.c `uwsgi_opt_chmod_socket`), not the mask 001.
fn chmod_socket(r: &Resolved<'_>) -> Result<Option<u32>, ConfigError> {
    match r.last("chmod-socket").map(|s| s.value.trim()) {
        Some("" | "1" | "true") => Ok(Some(0o666)),
        _ => r.octal("chmod-socket", "660"),
    }
}

/// `chown-socket = user[:group]`; the names are looked up when the sockets are bound.
fn chown_socket(r: &Resolved<'_>) -> Result<Option<(String, Origin)>, ConfigError> {
    let Some(s) = r.last("chown-socket") else {
        return Ok(None);
    };
    let value = s.value.trim();
    let (user, group) = value.split_once(':').unwrap_or((value, "x"));
    if user.is_empty() || group.is_empty() {
        return Err(bad_value(s, "a user, or user:group", "www-data:www-data"));
    }
    Ok(Some((value.to_string(), s.origin.clone())))
}

fn named(r: &Resolved<'_>, name: &str) -> Option<(String, Origin)> {
    r.last(name)
        .map(|s| (s.value.trim().to_string(), s.origin.clone()))
}

fn stats(r: &Resolved<'_>) -> Result<Option<Listen>, ConfigError> {
    one_address(r, "stats", "127.0.0.1:9191")
}

fn metrics(r: &Resolved<'_>) -> Result<Option<Listen>, ConfigError> {
    one_address(r, "metrics", "127.0.0.1:9100")
}

/// `health-check = /healthz`: a path.
fn health_check(r: &Resolved<'_>) -> Result<Option<String>, ConfigError> {
    let Some(s) = r.last("health-check") else {
        return Ok(None);
    };
    let path = s.value.trim();
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return Err(bad_value(s, "a URL path starting with /", "/healthz"));
    }
    Ok(Some(path.to_string()))
}

/// `shutdown-delay`: seconds; by default a few with a health check, none without.
fn shutdown_delay(r: &Resolved<'_>) -> Result<Duration, ConfigError> {
    let default = match r.last("health-check") {
        Some(_) => d::SHUTDOWN_DELAY_WITH_HEALTH_CHECK,
        None => 0,
    };
    Ok(Duration::from_secs(match r.last("shutdown-delay") {
        Some(s) => count(s, 0, "10")? as u64,
        None => default,
    }))
}

/// `forwarded-allow-ips`: the default (loopback and unix sockets) unless set; an empty value
/// trusts no one.
fn forwarded_allow_ips(r: &Resolved<'_>) -> Result<crate::forwarded::TrustedProxies, ConfigError> {
    trusted_peers(
        r,
        "forwarded-allow-ips",
        d::FORWARDED_ALLOW_IPS,
        "addresses and networks (CIDR), `unix` or `*`, separated by commas",
        "10.0.0.0/8, 127.0.0.1",
    )
}

/// The peers a list option names (`forwarded-allow-ips`, `proxy-allow-from`): `default`
/// unless the option is set; each value checked, a wrong entry named.
fn trusted_peers(
    r: &Resolved<'_>,
    name: &str,
    default: &str,
    expected: &str,
    example: &str,
) -> Result<crate::forwarded::TrustedProxies, ConfigError> {
    let mut trusted = crate::forwarded::TrustedProxies::default();
    let settings = r.all(name);
    if settings.is_empty() {
        trusted.add(default).expect("the default list parses");
    }
    for s in settings {
        trusted
            .add(&s.value)
            .map_err(|why| bad_value(s, &format!("{expected} ({why})"), example))?;
    }
    Ok(trusted)
}

/// A single-address option (`stats`, `metrics`).
fn one_address(r: &Resolved<'_>, name: &str, example: &str) -> Result<Option<Listen>, ConfigError> {
    r.last(name)
        .map(|s| match parse_listen(&s.value) {
            Ok(addrs) => Ok(Listen {
                addr: addrs
                    .into_iter()
                    .next()
                    .expect("parse_listen returns at least one"),
                wire: Wire::Http,
                origin: Some(s.origin.clone()),
            }),
            Err(why) => Err(bad_value(s, &format!("an address ({why})"), example)),
        })
        .transpose()
}

/// `proxy-protocol` and the peers whose headers are believed (`proxy-allow-from`: addresses,
/// networks and `*`, as gunicorn takes them; loopback unless set).
fn proxy_protocol(
    r: &Resolved<'_>,
) -> Result<Option<crate::forwarded::TrustedProxies>, ConfigError> {
    if !r.flag("proxy-protocol", d::PROXY_PROTOCOL) {
        return Ok(None);
    }
    trusted_peers(
        r,
        "proxy-allow-from",
        d::PROXY_ALLOW_FROM,
        "IP addresses and networks (CIDR) or `*`, separated by commas",
        "10.0.0.0/8, 192.0.2.7",
    )
    .map(Some)
}

/// The limits and timeouts, each checked for a sensible value.
fn limits(r: &Resolved<'_>) -> Result<Limits, ConfigError> {
    // uWSGI's socket-timeout and http-timeout (the longest wait on a client, its default 4 s
    // and 60 s) are what dragoman's body-timeout and write-timeout are: they set those two
    // unless those are set themselves (the larger of the two, when both are written).
    let uwsgi_timeout = match (r.seconds("socket-timeout")?, r.seconds("http-timeout")?) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(r.last(name)
            .map(|s| count(s, 1, "30"))
            .transpose()?
            .map_or(default, |n| Duration::from_secs(n as u64)))
    };
    let head_bytes = r.count("buffer-size", 1024, "32768", d::BUFFER_SIZE)?;
    // The request line is part of the head: unless set, its limit shrinks to fit (uWSGI's
    // default buffer-size of 4096 must load).
    let line_bytes = match r.last("limit-request-line") {
        None => d::LIMIT_REQUEST_LINE.min(head_bytes),
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
        header_fields: r.count("limit-request-fields", 1, "100", d::LIMIT_REQUEST_FIELDS)?,
        body_bytes: match r.last("limit-post") {
            None => Some(d::LIMIT_POST),
            Some(_) => r.optional_count("limit-post", "10485760")?,
        },
        header_timeout: secs("header-timeout", d::HEADER_TIMEOUT)?,
        body_timeout: secs("body-timeout", uwsgi_timeout.unwrap_or(d::BODY_TIMEOUT))?,
        write_timeout: secs("write-timeout", uwsgi_timeout.unwrap_or(d::WRITE_TIMEOUT))?,
        max_connections: r.count("max-connections", 1, "1024", d::MAX_CONNECTIONS)?,
        request_queue: r.count("request-queue", 0, "128", d::REQUEST_QUEUE)?,
        post_buffering: r.count("post-buffering", 0, "65536", d::POST_BUFFERING as usize)? as u64,
        spool_budget: r.count("spool-budget", 0, "1073741824", d::SPOOL_BUDGET as usize)? as u64,
        body_min_rate: r.count("body-min-rate", 0, "500", d::BODY_MIN_RATE as usize)? as u64,
        response_buffer: r.count(
            "response-buffer",
            0,
            "67108864",
            d::RESPONSE_BUFFER as usize,
        )? as u64,
        write_min_rate: r.count("write-min-rate", 0, "500", d::WRITE_MIN_RATE as usize)? as u64,
    })
}

/// The static-file options: mounts, caching and the rest.
fn static_config(r: &Resolved<'_>) -> Result<StaticConfig, ConfigError> {
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
    let cache_mib = r.count("static-cache", 0, "64", d::STATIC_CACHE_MIB as usize)? as u64;
    Ok(StaticConfig {
        mounts,
        index: r.texts("static-index"),
        safe: r.paths("static-safe"),
        expires: expires("static-expires", "/srv/mysite/static/.*\\.css 86400")?,
        expires_uri: expires("static-expires-uri", "^/static/.*\\.css 86400")?,
        max_age: r
            .last("static-max-age")
            .map(|s| count(s, 0, "3600"))
            .transpose()?
            .map(|n| n as u64),
        immutable: r.flag("static-immutable", d::STATIC_IMMUTABLE),
        precompressed: r.flag("static-gzip-all", d::STATIC_GZIP_ALL),
        dotfiles: r.flag("static-dotfiles", d::STATIC_DOTFILES),
        cache_bytes: cache_mib * 1024 * 1024,
    })
}

/// The main application: `module` (with `:callable` or `:factory()`), or `wsgi-file`; `None`
/// without one (`mount` may then name the applications). uWSGI loads both when both are set
/// and serves the module's; so does dragoman, with a warning.
fn app_target(
    r: &Resolved<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<AppTarget>, ConfigError> {
    let valid = |module: &str, name: &str| {
        !module.is_empty() && module.split('.').all(is_identifier) && is_identifier(name)
    };
    if let Some(target) = super::asgi::target(r, warnings, valid)? {
        return Ok(Some(target));
    }
    let module = r.last("module");
    let file = r.last("wsgi-file");
    let callable = r.last("callable");
    if let Some(c) = callable {
        if !is_identifier(c.value.trim().trim_end_matches("()")) {
            return Err(bad_value(c, "a Python identifier", "application"));
        }
    }
    let default_callable = callable.map_or(d::CALLABLE, |c| c.value.trim());
    let split_factory = |name: &str| match name.strip_suffix("()") {
        Some(n) => (n.to_string(), true),
        None => (name.to_string(), false),
    };
    match (module, file) {
        (Some(m), f) => {
            if let Some(f) = f {
                warnings.push(format!(
                    "{}: both module ({}) and wsgi-file ({}) are set; as uWSGI, dragoman serves \
                     the module's application and does not load {}; remove one of the two lines",
                    m.origin,
                    m.value.trim(),
                    f.value.trim(),
                    f.value.trim()
                ));
            }
            let text = m.value.trim();
            let (module, name) = match text.split_once(':') {
                Some((module, name)) => (module, name),
                None => (text, default_callable),
            };
            let (name, factory) = split_factory(name.trim());
            let valid_module = !module.is_empty() && module.split('.').all(is_identifier);
            if !valid_module || !is_identifier(&name) {
                return Err(bad_value(
                    m,
                    "a Python module path, optionally with :callable (or :factory())",
                    "mysite.wsgi:application",
                ));
            }
            Ok(Some(AppTarget {
                source: AppSource::Module(module.to_string()),
                callable: name,
                origin: m.origin.clone(),
                factory,
            }))
        }
        (None, Some(f)) => {
            if f.value.trim().is_empty() {
                return Err(bad_value(f, "the path of a Python file", "mysite/wsgi.py"));
            }
            let (callable, factory) = split_factory(default_callable);
            Ok(Some(AppTarget {
                source: AppSource::File(PathBuf::from(f.value.trim())),
                callable,
                origin: f.origin.clone(),
                factory,
            }))
        }
        (None, None) => Ok(None),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Startup notices for options that are set but planned or ignored.
fn notices_of(r: &Resolved<'_>) -> Vec<Notice> {
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

/// `add-header = Name: value`, checked now: a header HTTP allows, and no hop-by-hop one.
fn add_headers(
    r: &Resolved<'_>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigError> {
    let mut add_headers = Vec::new();
    for s in r.all("add-header") {
        let parsed = s.value.split_once(':').and_then(|(name, value)| {
            let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        });
        let (name, value) = parsed
            .ok_or_else(|| bad_value(s, "a header as NAME: VALUE", "X-Frame-Options: DENY"))?;
        // The framing and the connection's own headers follow HTTP/1.1's rules and the
        // response, whatever a config says: real inis add `Connection: close` or
        // `Connection: Keep-Alive` for uWSGI's router. Those lines are skipped, with a warning.
        let hop = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "te",
        ];
        if hop.contains(&name.as_str()) || name == http::header::CONTENT_LENGTH {
            r.warnings.borrow_mut().push(format!(
                "{}: add-header {}: not added: dragoman sets the framing and connection \
                 headers itself, by HTTP/1.1's rules (keep-alive unless the client or the \
                 response asks to close); remove the line",
                s.origin, name
            ));
            continue;
        }
        add_headers.push((name, value));
    }
    Ok(add_headers)
}
