//! `dragoman --help`, generated from the option table so it cannot drift from what is accepted.

use std::fmt::Write;

use super::options::{Group, Kind, OptionSpec, Status, OPTIONS};

const WIDTH: usize = 100;
const COLUMN: usize = 34;
/// Joins words that must not be wrapped apart; printed as a space.
const NBSP: char = '\u{1}';

/// The full help text.
pub(crate) fn text() -> String {
    let mut out = format!(
        "dragoman {}: serves a Python WSGI application (Django, Flask, ...) over HTTP.\n\n\
         Usage:\n  dragoman [OPTIONS] [MODULE[:CALLABLE]]\n  dragoman --ini site.ini\n  \
         dragoman compress DIR...     write .br and .gz siblings of static files\n\n\
         Every option can also be written in an ini file (`name = value` in a [uwsgi] or\n\
         [dragoman] section) or set in the environment (DRAGOMAN_NAME=value). Precedence:\n\
         command line, then environment, then ini files, then the default.\n",
        env!("CARGO_PKG_VERSION")
    );
    for group in Group::ALL {
        let _ = write!(out, "\n{}:\n", group.title());
        for spec in OPTIONS.iter().filter(|o| o.group == group) {
            let mut left = format!("  --{}", spec.name);
            if spec.kind == Kind::Value && !spec.metavar.is_empty() {
                let _ = write!(left, " {}", spec.metavar);
            }
            let mut words = match spec.status {
                Status::Ignored(why) => format!("accepted; {why}"),
                _ => spec.help.to_string(),
            };
            let default = spec.default.shown();
            if !default.is_empty() && !matches!(spec.status, Status::Ignored(_)) {
                // A non-breaking joiner keeps "(default: X)" on one line; see `columns`.
                let _ = write!(words, " (default:{NBSP}{default})");
            }
            if !spec.aliases.is_empty() {
                let names: Vec<String> = spec.aliases.iter().map(|a| format!("--{a}")).collect();
                let _ = write!(words, " [also {}]", names.join(", "));
            }
            if spec.status == Status::Planned {
                let _ = write!(words, " [{}]", status_label(spec).unwrap_or_default());
            }
            out.push_str(&columns(&left, &words));
        }
    }
    out.push_str("\nOther:\n");
    out.push_str(&columns("  -h, --help", "show this help and exit"));
    out.push_str(&columns("  -V, --version", "show the version and exit"));
    out
}

/// Lays out an option and its description in two columns, wrapping the description.
fn columns(left: &str, words: &str) -> String {
    let mut out = String::new();
    let mut line = format!("{left:<COLUMN$}");
    if left.len() >= COLUMN {
        out.push_str(left);
        out.push('\n');
        line = " ".repeat(COLUMN);
    }
    let mut first = true;
    for word in words.split(' ').filter(|w| !w.is_empty()) {
        if !first && line.len() + 1 + word.len() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(COLUMN);
            first = true;
        }
        if !first {
            line.push(' ');
        }
        line.push_str(word);
        first = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out.replace(NBSP, " ")
}

/// The option a planned/ignored check refers to; used by `--help`.
fn status_label(spec: &OptionSpec) -> Option<&'static str> {
    match spec.status {
        Status::Active => None,
        Status::Planned => Some("not yet in effect"),
        Status::Ignored(why) => Some(why),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_lists_every_group_and_defaults() {
        let text = super::text();
        assert!(text.contains("Listeners and HTTP:"));
        assert!(text.contains("--threads N"));
        assert!(text.contains("(default: 1)"));
        assert!(text.contains("(default: 127.0.0.1:8000)"));
        assert!(text.contains("[also --workers]"));
        assert!(
            !text.contains("[not yet in effect]"),
            "no option is planned any more"
        );
        assert!(
            text.lines().all(|l| l.len() <= super::WIDTH),
            "a line is too long"
        );
    }
}

#[cfg(test)]
mod defaults_tests {
    use super::super::options::{lookup, DefaultValue, OPTIONS};
    use super::super::{load, Loaded};

    /// What a config built from nothing has, as `--help` would show it.
    fn in_effect(name: &str) -> Option<String> {
        let args = vec!["app".to_string()];
        let Ok(Loaded::Run(c)) = load(&args, &[]) else {
            panic!("a config with only an application loads");
        };
        let l = &c.limits;
        Some(match name {
            "callable" => c.app.callable.clone(),
            "http" => c.listeners[0].addr.to_string(),
            "listen" => c.backlog.to_string(),
            "proxy-protocol" => c.proxy_protocol.is_some().to_string(),
            "proxy-allow-from" => {
                // Used when the PROXY protocol is on.
                let args = vec!["app".to_string(), "--proxy-protocol".to_string()];
                let Ok(Loaded::Run(c)) = load(&args, &[]) else {
                    panic!("the PROXY protocol alone loads");
                };
                c.proxy_protocol.expect("on").to_string()
            }
            // Always done: the flag has nothing to switch.
            "harakiri-verbose" => "true".into(),
            "processes" => c.processes.to_string(),
            "threads" => c.threads.to_string(),
            "worker-reload-mercy" => c.mercy.as_secs().to_string(),
            "max-requests" => c.recycle.max_requests.to_string(),
            "max-requests-delta" => c.recycle.max_requests_delta.to_string(),
            "max-worker-lifetime" => c
                .recycle
                .max_lifetime
                .map_or(0, |d| d.as_secs())
                .to_string(),
            "reload-on-rss" => (c.recycle.max_rss.unwrap_or(0) / 1024 / 1024).to_string(),
            "harakiri" => c.harakiri.map_or(0, |d| d.as_secs()).to_string(),
            "py-autoreload" => c.py_autoreload.map_or(0, |d| d.as_secs()).to_string(),
            "vacuum" => c.vacuum.to_string(),
            "stats-http" => c.stats_http.to_string(),
            "lazy-apps" => (!c.preload).to_string(),
            "preload" => c.preload.to_string(),
            "strict" => c.strict.to_string(),
            // Read only for a warning: mounts are routed by prefix with or without it.
            "manage-script-name" => "false".into(),
            "no-default-app" => c.no_default_app.to_string(),
            "wsgi-disable-file-wrapper" => (!c.wsgi_file_wrapper).to_string(),
            "auto-procname" => c.procname.auto.to_string(),
            "daemons-honour-stdin" => c.daemons.iter().any(|d| d.stdin).to_string(),
            "disable-logging" => (!c.logging.requests).to_string(),
            "log-static" => c.logging.static_files.to_string(),
            "log-4xx" => c.logging.log_4xx.to_string(),
            "log-5xx" => c.logging.log_5xx.to_string(),
            "log-zero" => c.logging.zero.to_string(),
            "log-sendfile" => c.logging.sendfile.to_string(),
            "logformat-strftime" => c.logging.strftime.to_string(),
            "log-master" => c.logging.master.to_string(),
            "log-x-forwarded-for" => c.logging.x_forwarded_for.to_string(),
            "log-reopen" => c.logging.reopen.to_string(),
            "static-immutable" => c.statics.immutable.to_string(),
            "static-gzip-all" => c.statics.precompressed.to_string(),
            "static-dotfiles" => c.statics.dotfiles.to_string(),
            "static-cache" => (c.statics.cache_bytes / 1024 / 1024).to_string(),
            "buffer-size" => l.head_bytes.to_string(),
            "limit-request-line" => l.line_bytes.to_string(),
            "limit-request-fields" => l.header_fields.to_string(),
            "limit-post" => l.body_bytes.unwrap_or(0).to_string(),
            "header-timeout" => l.header_timeout.as_secs().to_string(),
            "body-timeout" => l.body_timeout.as_secs().to_string(),
            "write-timeout" => l.write_timeout.as_secs().to_string(),
            "max-connections" => l.max_connections.to_string(),
            "request-queue" => l.request_queue.to_string(),
            "post-buffering" => l.post_buffering.to_string(),
            "spool-budget" => l.spool_budget.to_string(),
            "body-min-rate" => l.body_min_rate.to_string(),
            "response-buffer" => l.response_buffer.to_string(),
            "write-min-rate" => l.write_min_rate.to_string(),
            "ssl-min-version" => match c.tls.min_version {
                crate::config::tls::TlsVersion::Tls12 => "1.2".to_string(),
                crate::config::tls::TlsVersion::Tls13 => "1.3".to_string(),
            },
            "https-export-cert" => c.tls.export_cert.to_string(),
            "hsts-include-subdomains" | "hsts-preload" => {
                // Meaningful with `hsts` set.
                let args = ["app", "--hsts", "60"].map(String::from).to_vec();
                let Ok(Loaded::Run(c)) = load(&args, &[]) else {
                    panic!("hsts alone loads");
                };
                let hsts = c.tls.hsts.expect("on");
                match name {
                    "hsts-preload" => hsts.preload,
                    _ => hsts.include_subdomains,
                }
                .to_string()
            }
            "forwarded-allow-ips" => c.forwarded_allow_ips.to_string(),
            "http2" => c.tls.http2.enabled.to_string(),
            "http2-cleartext" => c.tls.http2.cleartext.to_string(),
            "http2-max-concurrent-streams" => c.tls.http2.max_concurrent_streams.to_string(),
            "http2-stream-window" => c.tls.http2.stream_window.to_string(),
            "http2-connection-window" => c.tls.http2.connection_window.to_string(),
            "interface" => format!("{:?}", c.asgi.interface).to_lowercase(),
            "lifespan" => format!("{:?}", c.asgi.lifespan).to_lowercase(),
            "loop" => format!("{:?}", c.asgi.event_loop).to_lowercase(),
            "websocket-max-message" => c.asgi.websocket.max_message.to_string(),
            "websocket-ping-interval" => c
                .asgi
                .websocket
                .ping_interval
                .map_or(0, |d| d.as_secs())
                .to_string(),
            "websocket-ping-timeout" => c.asgi.websocket.ping_timeout.as_secs().to_string(),
            "websocket-idle-timeout" => c
                .asgi
                .websocket
                .idle_timeout
                .map_or(0, |d| d.as_secs())
                .to_string(),
            "websocket-handshake-timeout" => {
                c.asgi.websocket.handshake_timeout.as_secs().to_string()
            }
            "websocket-compression" => c.asgi.websocket.compression.to_string(),
            "acme-directory" | "acme-staging" => {
                // Meaningful with `acme-domain` set.
                let args = ["app", "--acme-domain", "a.test", "--acme-cache", "/c"];
                let Ok(Loaded::Run(c)) = load(&args.map(String::from), &[]) else {
                    panic!("acme-domain alone loads");
                };
                let acme = c.tls.acme.expect("on");
                match name {
                    "acme-staging" => {
                        (acme.directory == super::super::defaults::LETS_ENCRYPT_STAGING).to_string()
                    }
                    _ => acme.directory,
                }
            }
            // Accepted for uWSGI compatibility: `--help` shows no default for them.
            _ if lookup(name).is_some_and(|o| {
                !matches!(o.status, super::Status::Active | super::Status::Planned)
            }) =>
            {
                return None
            }
            other => panic!("--help shows a default for {other}; say here what it is in effect"),
        })
    }

    #[test]
    fn help_shows_the_defaults_in_effect() {
        let text = super::text();
        for spec in OPTIONS.iter().filter(|o| o.default != DefaultValue::None) {
            let Some(actual) = in_effect(spec.name) else {
                continue;
            };
            let shown = spec.default.shown();
            assert_eq!(
                shown, actual,
                "--{}: --help says {shown}, the config has {actual}",
                spec.name
            );
            if !matches!(spec.status, super::Status::Ignored(_)) {
                assert!(
                    text.contains(&format!("(default: {shown})")),
                    "--help does not show --{}'s default",
                    spec.name
                );
            }
        }
    }
}
