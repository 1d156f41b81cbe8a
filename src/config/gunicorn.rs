//! gunicorn's settings and what each is in dragoman: the one place that mapping is kept.
//! `docs/options.md` takes its gunicorn column from it, and `docs/migrating-from-gunicorn.md`
//! its table of every setting (`config/reference.rs` generates both; a test fails when either
//! is stale). Where gunicorn's long flag is also a name dragoman's option answers to (an
//! alias in [`super::options`]), the flag works unchanged on dragoman's command line; the
//! generated table says so, and a test checks it.

/// One gunicorn setting (gunicorn 23's settings list, in its order of sections).
pub(crate) struct Setting {
    /// The setting's name in a gunicorn.conf.py (`workers`).
    pub(crate) name: &'static str,
    /// Its command-line flags as gunicorn writes them (`-w, --workers`); empty when the
    /// setting exists only in a configuration file.
    pub(crate) flags: &'static str,
    /// The dragoman option that does its job, if one does.
    pub(crate) dragoman: Option<&'static str>,
    /// What differs, or what to do instead when no option does the job.
    pub(crate) note: &'static str,
}

const fn s(
    name: &'static str,
    flags: &'static str,
    dragoman: Option<&'static str>,
    note: &'static str,
) -> Setting {
    Setting {
        name,
        flags,
        dragoman,
        note,
    }
}

/// gunicorn's settings that a deployment sets, with their dragoman counterparts.
pub(crate) static SETTINGS: &[Setting] = &[
    // Config file.
    s("config", "-c, --config", Some("ini"), "dragoman reads ini files, not Python: write the settings as `name = value` lines under `[uwsgi]` (or `[dragoman]`)"),
    s("wsgi_app", "", Some("module"), "`module = mysite.wsgi:application`, or the positional `MODULE[:CALLABLE]` as with gunicorn; `module = pkg:create_app()` calls a factory as gunicorn's `pkg:create_app()` does"),
    // Debugging.
    s("reload", "--reload", Some("py-autoreload"), "takes seconds between checks (`--py-autoreload 1`); development only, as in gunicorn"),
    s("check_config", "--check-config", None, "`dragoman --check`: every problem of the configuration, then imports the application as the service would"),
    s("print_config", "--print-config", None, "`dragoman --print-config`: each option in effect with where its value comes from, as an ini file"),
    // Logging.
    s("accesslog", "--access-logfile", Some("req-logger"), "`req-logger = file:PATH`; dragoman logs every request by default, to the log (stderr), as `--access-logfile -` does"),
    s("disable_redirect_access_to_syslog", "--disable-redirect-access-to-syslog", None, "no syslog in dragoman"),
    s("access_log_format", "--access-logformat", Some("log-format"), "uWSGI's variables (`%(addr) %(method) %(uri) %(status)`), not gunicorn's (`%(h)s %(r)s %(s)s`), or `json` (docs/logging.md)"),
    s("errorlog", "--error-logfile, --log-file", Some("logto"), "`logto = PATH`; dragoman's log and the application's output go to stderr unless told otherwise"),
    s("loglevel", "--log-level", None, "no levels to choose: dragoman logs what an operator needs (starts, stops, errors, warnings) and nothing per request but the request line"),
    s("capture_output", "--capture-output", None, "always: the application's stdout and stderr are in the log, each line marked with its worker"),
    s("logger_class", "--logger-class", None, "no logger classes"),
    s("logconfig", "--log-config", None, "no logging configuration files; see `logger`, `req-logger`, `logto`"),
    s("logconfig_dict", "", None, "as logconfig"),
    s("syslog", "--log-syslog", None, "no syslog: log to stderr (journald takes it under systemd) or a file"),
    s("statsd_host", "--statsd-host", Some("metrics"), "Prometheus metrics served (`metrics = 127.0.0.1:9100`, scraped), not StatsD pushed (docs/operations.md)"),
    // Process naming.
    s("proc_name", "-n, --name", Some("procname"), "dragoman names its processes only when asked (`auto-procname`, `procname`, `procname-prefix`)"),
    // SSL.
    s("keyfile", "--keyfile", Some("ssl-key"), "with an `https` listener: `--https :443 --ssl-certificate site.crt --ssl-key site.key`, or `https = :443,site.crt,site.key`"),
    s("certfile", "--certfile", Some("ssl-certificate"), "as keyfile; gunicorn turns its one listener into HTTPS, dragoman's `https` is a listener of its own"),
    s("ssl_version", "--ssl-version", Some("ssl-min-version"), "the oldest TLS version offered: 1.2 (default) or 1.3"),
    s("cert_reqs", "--cert-reqs", Some("ssl-client-ca"), "`ssl-client-ca = CA.pem` asks for a client certificate, `!CA.pem` requires one"),
    s("ca_certs", "--ca-certs", Some("ssl-client-ca"), "the CA that signs client certificates"),
    s("ciphers", "--ciphers", Some("https"), "the fourth field of `https = ADDR,CERT,KEY,CIPHERS`; rustls offers forward-secret AEAD suites only (docs/https.md)"),
    s("do_handshake_on_connect", "--do-handshake-on-connect", None, "the handshake is always done first, in the worker's event loop"),
    // Security.
    s("limit_request_line", "--limit-request-line", Some("limit-request-line"), "the same; dragoman's default is gunicorn's, 8190"),
    s("limit_request_fields", "--limit-request-fields", Some("limit-request-fields"), "the same; default 100"),
    s("limit_request_field_size", "--limit-request-field_size", Some("buffer-size"), "dragoman limits the whole request head (32 KiB), not each field"),
    // Server mechanics.
    s("chdir", "--chdir", Some("chdir"), "the same"),
    s("daemon", "-D, --daemon", Some("daemonize"), "`daemonize = LOGFILE` names where the log goes once detached; under systemd or in a container, detach nothing"),
    s("raw_env", "-e, --env", Some("env"), "the same, `KEY=VALUE`, repeatable"),
    s("pidfile", "-p, --pid", Some("pidfile"), "the same"),
    s("worker_tmp_dir", "--worker-tmp-dir", None, "no heartbeat files: the workers report to the master through shared memory"),
    s("user", "-u, --user", Some("uid"), "the same, applied after the sockets are bound"),
    s("group", "-g, --group", Some("gid"), "the same"),
    s("umask", "-m, --umask", Some("umask"), "the same, octal"),
    s("initgroups", "--initgroups", None, "the user's supplementary groups are not set"),
    s("tmp_upload_dir", "", None, "request bodies over `post-buffering` go to unnamed temporary files in the system's temporary directory (TMPDIR, else /tmp)"),
    s("secure_scheme_headers", "", Some("forwarded-allow-ips"), "from a trusted proxy, X-Forwarded-Proto and Forwarded's proto set wsgi.url_scheme; the header names are fixed"),
    s("forwarded_allow_ips", "--forwarded-allow-ips", Some("forwarded-allow-ips"), "the same, and networks (10.0.0.0/8) and `unix` too; the default also trusts unix-socket clients; the client is the first untrusted address from the right"),
    s("pythonpath", "--pythonpath", Some("pythonpath"), "the same (repeat it rather than separate with commas)"),
    s("paste", "--paste, --paster", None, "write a module that calls paste.deploy.loadapp() and name it with `module`"),
    s("proxy_protocol", "--proxy-protocol", Some("proxy-protocol"), "the same, v1 and v2"),
    s("proxy_allow_ips", "--proxy-allow-from", Some("proxy-allow-from"), "the same; from other peers the connection is served as plain HTTP"),
    s("raw_paste_global_conf", "--paste-global", None, "as paste"),
    s("permit_obsolete_folding", "--permit-obsolete-folding", None, "refused: folded header lines are a request-smuggling risk (400)"),
    s("strip_header_spaces", "--strip-header-spaces", None, "refused: whitespace before the colon is a request-smuggling risk (400)"),
    s("permit_unconventional_http_method", "--permit-unconventional-http-method", None, "any token is a method in dragoman already"),
    s("casefold_http_method", "--casefold-http-method", None, "methods are passed as the client wrote them"),
    s("header_map", "--header-map", None, "headers with `_` in their name are dropped, as gunicorn's default `drop` does"),
    // Server socket.
    s("bind", "-b, --bind", Some("http"), "the same addresses (`0.0.0.0:8000`, `unix:/run/site.sock`), repeatable; `fd://N` is systemd's socket activation, which dragoman takes from LISTEN_FDS itself"),
    s("backlog", "--backlog", Some("listen"), "the same; default 1024 (gunicorn's 2048)"),
    // Worker processes.
    s("workers", "-w, --workers", Some("processes"), "the same; default 1"),
    s("worker_class", "-k, --worker-class", Some("threads"), "`sync` is dragoman's default (one request at a time per worker, on its event loop); `gthread` is `threads = N`; `uvicorn.workers.UvicornWorker` is `asgi = MODULE`; gevent and eventlet are refused: the application would block where it expects to yield"),
    s("threads", "--threads", Some("threads"), "the same: a fixed pool of Python threads per worker"),
    s("worker_connections", "--worker-connections", Some("max-connections"), "connections one worker keeps open, whatever the worker class (gunicorn's counts for its gthread and async workers)"),
    s("max_requests", "--max-requests", Some("max-requests"), "the same, a graceful replacement"),
    s("max_requests_jitter", "--max-requests-jitter", Some("max-requests-delta"), "not random: worker N recycles after max-requests + N x delta"),
    s("timeout", "-t, --timeout", Some("harakiri"), "a request running longer is killed, after its traceback is logged; gunicorn's default is 30, dragoman's 0 (never)"),
    s("graceful_timeout", "--graceful-timeout", Some("worker-reload-mercy"), "the same; default 60 (gunicorn's 30)"),
    s("keepalive", "--keep-alive", Some("header-timeout"), "an idle keep-alive connection is closed when the next request's head has not come within header-timeout (15 s; gunicorn's 2)"),
    // Server hooks.
    s("on_starting", "", Some("hook-master-start"), "Python hooks do not exist; `hook-master-start = exec:COMMAND` runs a command as the master starts"),
    s("post_fork", "", None, "no hooks: code that must run in each worker belongs where the application is created (a factory, `module = pkg:create_app()`)"),
    s("preload_app", "--preload", Some("preload"), "the same"),
    s("sendfile", "--no-sendfile", None, "static files over 16 KiB go out with sendfile on plain connections, never over TLS"),
    s("reuse_port", "--reuse-port", None, "the workers share the master's listening sockets"),
];

/// What to say about `name`, an option dragoman does not know, when it is one of gunicorn's
/// flags (without its dashes: `worker-class`) or settings (`preload-app`, as a
/// `DRAGOMAN_PRELOAD_APP` variable reads): the dragoman option that does the job, and what
/// differs.
pub(crate) fn hint(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let (setting, called) = SETTINGS.iter().find_map(|s| {
        if s.flags.split(", ").any(|f| f == flag) {
            Some((s, flag.clone()))
        } else if s.name.replace('_', "-") == name {
            Some((s, s.name.to_string()))
        } else {
            None
        }
    })?;
    Some(match setting.dragoman {
        Some(ours) => format!(
            "gunicorn's {called} is dragoman's --{ours}: {}",
            setting.note
        ),
        None => format!("gunicorn's {called}: {}", setting.note),
    })
}

#[cfg(test)]
mod tests {
    use super::super::options;
    use super::*;

    #[test]
    fn every_named_option_exists() {
        for setting in SETTINGS {
            if let Some(name) = setting.dragoman {
                let spec = options::lookup(name)
                    .unwrap_or_else(|| panic!("{}: no option {name}", setting.name));
                assert_eq!(
                    spec.name, name,
                    "{}: name the option, not an alias",
                    setting.name
                );
            }
            assert!(!setting.note.is_empty(), "{}", setting.name);
        }
    }

    #[test]
    fn gunicorn_flags_dragoman_lacks_get_a_hint() {
        let jitter = hint("max-requests-jitter").unwrap();
        assert!(
            jitter.starts_with(
                "gunicorn's --max-requests-jitter is dragoman's --max-requests-delta: not random"
            ),
            "{jitter}"
        );
        assert!(hint("worker-class").unwrap().contains("`threads = N`"));
        assert!(hint("check-config").unwrap().contains("dragoman --check"));
        assert_eq!(
            hint("preload-app").unwrap(),
            "gunicorn's preload_app is dragoman's --preload: the same"
        );
        assert_eq!(hint("no-such-flag"), None);
    }

    #[test]
    fn settings_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for setting in SETTINGS {
            assert!(seen.insert(setting.name), "{} twice", setting.name);
        }
    }
}
