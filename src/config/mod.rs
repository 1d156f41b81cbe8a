//! Configuration: one option table ([`options`]) fed by four sources ([`source`]: command line,
//! `DRAGOMAN_*` environment variables, ini files, and the positional `module:callable`), merged
//! by precedence (CLI > env > ini > defaults) and validated into a typed [`Config`] ([`build`];
//! the types are in [`model`], [`listen`] and [`app`]). Every uWSGI option name is known
//! ([`uwsgi`]); defaults live in [`defaults`].
//!
//! This file holds the entry points ([`load`]) and re-exports what the rest of the crate uses;
//! its children import from each other, never from it.
//!
//! Every error names where the bad value was written and shows a corrected example in that
//! source's syntax.

pub(crate) mod acme;
mod app;
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
mod listen;
pub(crate) mod logging;
pub(crate) mod model;
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

pub(crate) use app::{AppSource, AppTarget};
pub(crate) use daemons::Daemon;
pub(crate) use jobs::{Cron, Hook, SignalAction};
pub(crate) use listen::{Listen, ListenAddr, Wire};
pub(crate) use model::{Config, Daemonize, Limits, Procname, Recycle, StaticConfig};
pub(crate) use source::{Command, ConfigError, Mode, Origin, Setting};
pub(crate) use tls::TlsConfig;

use values::parse_bool;

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
    let source::Cli {
        settings: cli,
        mode,
        placeholders,
        notices: cli_notices,
    } = match source::from_cli(args)? {
        Command::Run(run) => run,
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
    let mut notices = cli_notices;
    let files: Vec<String> = ini_files.iter().map(|s| s.value.clone()).collect();
    for file in ini_files {
        let from = |e: ConfigError| ConfigError(format!("{} (from {})", e.0, file.origin));
        match source::from_ini(&file.value, host, strict, &placeholders) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use options::Status;
    use std::io::Write;
    use std::path::PathBuf;
    use std::time::Duration;

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
    fn command_line_placeholders_reach_the_ini_files() {
        // As a site's start script runs uWSGI: `--ini etc/uwsgi.ini --set-placeholder ...`.
        let f = ini_file(
            "[uwsgi]\nhttp = %(http_host):%(http_port)\nset-ph = http_port=1\n\
             module = %(app)\nprocesses = %(n + 1)\n",
        );
        let p = f.path().to_str().unwrap();
        let c = load_run(
            &[
                "--ini",
                p,
                "--set-placeholder",
                "http_host=127.0.0.1",
                "--set-ph=http_port=53683",
                "--set",
                "app=site.wsgi",
                "--set-placeholder",
                "n=2",
            ],
            &[],
        )
        .unwrap();
        // The command line wins over the file's own `set-ph`, as it does for options.
        assert_eq!(c.listeners[0].addr.to_string(), "127.0.0.1:53683");
        assert_eq!(c.app.describe(), "site.wsgi:application");
        assert_eq!(c.processes, 3);
        // `--set` on an option's name sets the option too.
        let c = load_run(&["--set", "processes=5", "app"], &[]).unwrap();
        assert_eq!(c.processes, 5);
        // Without them, the refusal says what is missing.
        let e = load_run(&["--ini", p], &[]).unwrap_err();
        assert!(e.0.contains("%(http_host)"), "{e}");
        let e = load_run(&["--ini", p, "--set-placeholder", "http_host"], &[]).unwrap_err();
        assert!(e.0.contains("expects NAME=VALUE"), "{e}");
    }

    #[test]
    fn uwsgi_options_on_the_command_line_are_read_as_in_an_ini_file() {
        // A flag of uWSGI's takes no value: the application after it stays the application.
        let c = load_run(
            &["--ignore-sigpipe", "--offload-threads", "4", "app:wsgi"],
            &[],
        )
        .unwrap();
        assert_eq!(c.app.describe(), "app:wsgi");
        let notices: Vec<&str> = c.notices.iter().map(|n| n.text.as_str()).collect();
        assert!(
            notices.iter().any(|n| n.contains(
                "'ignore-sigpipe' (command line option --ignore-sigpipe) has nothing to do"
            )),
            "{notices:?}"
        );
        assert!(
            notices.iter().any(|n| n.contains("'offload-threads'")),
            "{notices:?}"
        );
        // Refused as in an ini file, with the reason.
        let e = load_run(&["--gevent", "100", "app"], &[]).unwrap_err();
        assert!(e.0.contains("uWSGI option 'gevent' is refused"), "{e}");
        let e = load_run(&["--route", "^/admin basicauth:x,y:z", "app"], &[]).unwrap_err();
        assert!(e.0.contains("is refused"), "{e}");
        // Config logic belongs in the file.
        let e = load_run(&["--if-env", "X", "app"], &[]).unwrap_err();
        assert!(e.0.contains("is read inside ini files"), "{e}");
        // A name that is nobody's option is still an error with a suggestion.
        let e = load_run(&["--proceses", "2", "app"], &[]).unwrap_err();
        assert!(e.0.contains("did you mean 'processes'"), "{e}");
        // uWSGI's optional-value options stand alone before another argument.
        let c = load_run(&["--memory-report", "--log-date", "app:wsgi"], &[]).unwrap();
        assert_eq!(c.app.describe(), "app:wsgi");
        let c = load_run(&["--chmod-socket", "--socket", "/tmp/x.sock", "app"], &[]).unwrap();
        assert_eq!(c.chmod_socket, Some(0o666));
        let c = load_run(&["--chmod-socket=660", "app"], &[]).unwrap();
        assert_eq!(c.chmod_socket, Some(0o660));
        // dragoman's own spelling, the value as the next argument, keeps working.
        let c = load_run(&["--chmod-socket", "660", "app:wsgi"], &[]).unwrap();
        assert_eq!(
            (c.chmod_socket, c.app.describe()),
            (Some(0o660), "app:wsgi".into())
        );
        let c = load_run(&["--chmod-socket", "app:wsgi"], &[]).unwrap();
        assert_eq!(
            (c.chmod_socket, c.app.describe()),
            (Some(0o666), "app:wsgi".into())
        );
        let c = load_run(
            &[
                "--log-date",
                "%Y/%m/%d-%H:%M:%S",
                "--memory-report",
                "2",
                "app",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.logging.date.as_deref(), Some("%Y/%m/%d-%H:%M:%S"));
        assert_eq!(c.logging.memory_report, 2);
    }

    #[test]
    fn proxy_allow_from_takes_networks_lists_and_any_peer() {
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let c = load_run(&["app", "--proxy-protocol"], &[]).unwrap();
        let trusted = c.proxy_protocol.unwrap();
        assert!(trusted.trusts(ip("127.0.0.1")) && trusted.trusts(ip("::1")));
        assert!(!trusted.trusts(ip("127.0.0.2")) && !trusted.trusts(ip("10.0.0.1")));
        // As gunicorn (24.1) takes them: networks, comma-separated lists; and repeated.
        let c = load_run(
            &[
                "app",
                "--proxy-protocol",
                "--proxy-allow-from",
                "10.0.0.0/8, 192.0.2.7",
                "--proxy-allow-from",
                "2001:db8::/32",
            ],
            &[],
        )
        .unwrap();
        let trusted = c.proxy_protocol.unwrap();
        for peer in ["10.1.2.3", "::ffff:10.1.2.3", "192.0.2.7", "2001:db8::5"] {
            assert!(trusted.trusts(ip(peer)), "{peer}");
        }
        for peer in ["127.0.0.1", "192.0.2.8", "2001:db9::5"] {
            assert!(!trusted.trusts(ip(peer)), "{peer}");
        }
        let c = load_run(
            &["app", "--proxy-protocol"],
            &[("DRAGOMAN_PROXY_ALLOW_FROM", "*")],
        )
        .unwrap();
        assert!(c.proxy_protocol.unwrap().trusts(ip("203.0.113.9")));
        let e = load_run(
            &["app", "--proxy-protocol", "--proxy-allow-from", "lb.local"],
            &[],
        )
        .unwrap_err();
        assert!(
            e.0.contains("--proxy-allow-from") && e.0.contains("\"lb.local\" is no address"),
            "{e}"
        );
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
        // uWSGI reads a bare `chmod-socket` (and `= 1`) as 666, not as the mask 001.
        for line in ["chmod-socket", "chmod-socket = 1", "chmod-socket = true"] {
            let f = ini_file(&format!("[uwsgi]\nmodule = a\n{line}\n"));
            let c = load_run(&["--ini", f.path().to_str().unwrap()], &[]).unwrap();
            assert_eq!(c.chmod_socket, Some(0o666), "{line}");
        }
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
}
