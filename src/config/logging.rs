//! The logging options (uWSGI's family): which requests are logged and how, and where the
//! server log and the request log go. The runtime is in [`crate::log`].

use std::path::PathBuf;
use std::time::Duration;

use super::resolve::{bad_value, nonempty_path, Resolved};
use super::source::{ConfigError, Setting};
use super::values::parse_bool;
use crate::log::format::AccessFormat;
pub(crate) use crate::log::settings::{LogFile, Logging, Target};

/// Reads the logging family; what dragoman reads differently from uWSGI goes to `warnings`.
pub(crate) fn logging(r: &Resolved<'_>) -> Result<Logging, ConfigError> {
    let warn = |text: String| r.warnings.borrow_mut().push(text);
    let log_date = r.last("log-date").map(|s| match parse_bool(&s.value) {
        Some(true) => Some(String::new()),
        Some(false) => None,
        None if s.value.trim().is_empty() => Some(String::new()),
        None => Some(s.value.trim().to_string()),
    });
    let format = match r.last("log-format") {
        None => AccessFormat::Default,
        Some(s) => {
            let (format, unknown) = AccessFormat::parse(&s.value);
            if !unknown.is_empty() {
                let names: Vec<String> = unknown.iter().map(|n| format!("%({n})")).collect();
                warn(format!(
                    "{}: log-format: {} {} no request variable dragoman can fill (in uWSGI, a \
                     logvar the application sets, or a metric): written as -",
                    s.origin,
                    names.join(", "),
                    if names.len() == 1 { "is" } else { "are" }
                ));
            }
            format
        }
    };
    let max_size = r.optional_count("log-maxsize", "104857600")?;
    let backup = r.path("log-backupname", "/var/log/mysite.log.old")?;
    let file = match (r.last("logto"), r.last("logto2")) {
        (None, None) => None,
        (to, to2) => {
            // logto2 wins when both are set: it is the one meant for after the drop.
            let (s, late) = match to2 {
                Some(s) => (s, true),
                None => (to.expect("one of the two is set"), false),
            };
            logto_file(s, late, max_size, backup.clone(), &warn)?
        }
    };
    if max_size.is_some() && file.is_none() {
        warn(format!(
            "{}: log-maxsize rotates the logto file, and none is set: it does nothing (a `file:` \
             logger takes `file:logfile=PATH,maxsize=N`)",
            r.last("log-maxsize").expect("set").origin
        ));
    }
    Ok(Logging {
        requests: !r.flag("disable-logging", false),
        static_files: r.flag("log-static", true),
        log_4xx: r.flag("log-4xx", false),
        log_5xx: r.flag("log-5xx", false),
        slow: r
            .optional_count("log-slow", "1000")?
            .map(Duration::from_millis),
        zero: r.flag("log-zero", false),
        big: r.optional_count("log-big", "1048576")?,
        sendfile: r.flag("log-sendfile", false),
        x_forwarded_for: r.flag("log-x-forwarded-for", false),
        format,
        date: log_date.flatten(),
        strftime: r.flag("logformat-strftime", false),
        file,
        loggers: targets(r, "logger", &warn)?,
        req_loggers: targets(r, "req-logger", &warn)?,
        master: r.flag("log-master", false),
        reopen: r.flag("log-reopen", false),
        memory_report: match r.last("memory-report") {
            None => 0,
            Some(s) if s.value.trim().is_empty() => 1,
            Some(s) => match parse_bool(&s.value) {
                Some(on) => u8::from(on),
                None => match s.value.trim() {
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(bad_value(s, "1, 2 or true", "1")),
                },
            },
        },
    })
}

/// `logto = PATH`. uWSGI also sends the log to a UDP address (`logto = 10.0.0.5:1717`);
/// dragoman does not, and says so.
fn logto_file(
    s: &Setting,
    late: bool,
    max_size: Option<u64>,
    backup: Option<PathBuf>,
    warn: &impl Fn(String),
) -> Result<Option<LogFile>, ConfigError> {
    let path = nonempty_path(s, "/var/log/mysite.log")?;
    let text = s.value.trim();
    if text.contains(':') && !text.contains('/') {
        warn(format!(
            "{}: {} = {text} is a UDP address in uWSGI; dragoman logs to files and stderr only, \
             so the log stays on stderr (send it on with journald or the container runtime)",
            s.origin, s.spec.name
        ));
        return Ok(None);
    }
    Ok(Some(LogFile {
        path,
        late,
        max_size,
        backup,
        option: s.spec.name,
        origin: s.origin.to_string(),
    }))
}

/// `logger` / `req-logger` values: `[NAME ]PLUGIN[:ARGS]`. dragoman has the `file` and
/// `stdio` plugins; any other is accepted with a warning, its lines going where they would
/// without it.
fn targets(
    r: &Resolved<'_>,
    name: &str,
    warn: &impl Fn(String),
) -> Result<Vec<Target>, ConfigError> {
    let mut out = Vec::new();
    let example = "file:/var/log/mysite.log";
    let instead = if name == "logger" {
        "the server log goes to logto's file or stderr"
    } else {
        "request lines go with the server log"
    };
    for s in r.all(name) {
        let value = s.value.trim();
        // `NAME plugin:args`: a named logger only gets what `log-route` sends it.
        if let Some((id, _)) = value.split_once(' ') {
            if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
                warn(format!(
                    "{}: {name} '{id}' is a named logger, which gets only the lines log-route \
                     sends it; log-route is not in effect in dragoman, so it gets nothing (as \
                     in uWSGI without a matching route)",
                    s.origin
                ));
                continue;
            }
        }
        let (plugin, args) = value.split_once(':').unwrap_or((value, ""));
        match plugin {
            "stdio" => out.push(Target::Stdio),
            "file" => out.push(Target::File(file_logger(s, args, example)?)),
            "" => return Err(bad_value(s, "a logger, file:PATH or stdio", example)),
            other => warn(format!(
                "{}: the '{other}' {name} is not implemented in dragoman (it has `file:PATH` and \
                 `stdio`): {instead}",
                s.origin
            )),
        }
    }
    Ok(out)
}

/// `file:PATH`, or uWSGI's `file:logfile=PATH,maxsize=N,backupname=B`.
fn file_logger(s: &Setting, args: &str, example: &str) -> Result<LogFile, ConfigError> {
    let bad = || bad_value(s, "file:PATH or file:logfile=PATH,maxsize=BYTES", example);
    let keyvals = ["logfile=", "maxsize=", "backupname="]
        .iter()
        .any(|k| args.trim_start().starts_with(k));
    if !keyvals {
        if args.trim().is_empty() {
            return Err(bad());
        }
        return Ok(LogFile {
            path: PathBuf::from(args.trim()),
            late: true,
            max_size: None,
            backup: None,
            option: s.spec.name,
            origin: s.origin.to_string(),
        });
    }
    let mut file = LogFile {
        path: PathBuf::new(),
        late: true,
        max_size: None,
        backup: None,
        option: s.spec.name,
        origin: s.origin.to_string(),
    };
    for pair in args.split(',') {
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let value = value.trim();
        match key.trim() {
            "logfile" => file.path = PathBuf::from(value),
            "maxsize" => {
                file.max_size = Some(value.parse::<u64>().map_err(|_| bad())?).filter(|n| *n > 0)
            }
            "backupname" => file.backup = Some(PathBuf::from(value)),
            _ => return Err(bad()),
        }
    }
    if file.path.as_os_str().is_empty() {
        return Err(bad());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Loaded};
    use std::io::Write;

    fn load_ini(text: &str) -> (crate::config::Config, String) {
        let mut f = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
        f.write_all(format!("[uwsgi]\nmodule = a\n{text}").as_bytes())
            .unwrap();
        let path = f.path().to_str().unwrap().to_string();
        let args = vec!["--ini".to_string(), path.clone()];
        match load(&args, &[]).unwrap() {
            Loaded::Run(c) => (*c, path),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_defaults_log_every_request_to_stderr() {
        let (c, _) = load_ini("");
        assert_eq!(c.logging, Logging::default());
        assert!(c.logging.requests && c.logging.static_files && c.logging.file.is_none());
    }

    #[test]
    fn the_family_as_uwsgi_files_write_it() {
        let (c, p) = load_ini(
            "disable-logging = true\nlog-4xx\nlog-5xx = true\nlog-slow = 500\nlog-big = 1000\n\
             logto = /var/log/site.log\nlog-maxsize = 5000\nlog-backupname = /var/log/old.log\n\
             logger = file:/var/log/a.log\nlogger = file:logfile=/var/log/b.log,maxsize=10,\
             backupname=/var/log/b.old\nreq-logger = stdio\nlogdate = %%Y-%%m-%%d\n\
             logformat = %(addr) %(status)\nmemory-report = 2\nlog-master\n",
        );
        let l = &c.logging;
        assert!(!l.requests && l.log_4xx && l.log_5xx && l.master);
        assert_eq!(l.slow, Some(Duration::from_millis(500)));
        assert_eq!(l.big, Some(1000));
        let file = l.file.as_ref().unwrap();
        assert_eq!(file.path, PathBuf::from("/var/log/site.log"));
        assert_eq!((file.late, file.max_size), (false, Some(5000)));
        assert_eq!(file.backup, Some(PathBuf::from("/var/log/old.log")));
        assert_eq!(file.option, "logto");
        assert!(file.origin.ends_with("line 8"), "{p}: {}", file.origin);
        match &l.loggers[..] {
            [Target::File(a), Target::File(b)] => {
                assert_eq!(a.path, PathBuf::from("/var/log/a.log"));
                assert!(a.late && a.max_size.is_none());
                assert_eq!(b.path, PathBuf::from("/var/log/b.log"));
                assert_eq!(b.max_size, Some(10));
                assert_eq!(b.backup, Some(PathBuf::from("/var/log/b.old")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.req_loggers, [Target::Stdio]);
        assert_eq!(l.date.as_deref(), Some("%Y-%m-%d"));
        assert_eq!(l.memory_report, 2);
        assert!(matches!(l.format, AccessFormat::Custom(_)));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn what_dragoman_reads_differently_is_said() {
        let (c, p) = load_ini(
            "logto = 10.0.0.5:1717\nlogger = syslog:site\nlogger = applog file:/tmp/a.log\n\
             req-logger = python:reqs\nlog-format = %(isotime) %(status) %(level)\n\
             log-maxsize = 10\n",
        );
        assert!(c.logging.file.is_none() && c.logging.loggers.is_empty());
        let w = c.warnings.join("\n");
        assert!(
            w.contains(&format!(
                "{p} line 3: logto = 10.0.0.5:1717 is a UDP address"
            )),
            "{w}"
        );
        assert!(w.contains("the 'syslog' logger is not implemented"), "{w}");
        assert!(w.contains("logger 'applog' is a named logger"), "{w}");
        assert!(
            w.contains("the 'python' req-logger is not implemented"),
            "{w}"
        );
        assert!(
            w.contains("%(isotime), %(level) are no request variable"),
            "{w}"
        );
        assert!(
            w.contains("log-maxsize rotates the logto file, and none is set"),
            "{w}"
        );
        for bad in [
            "logger = file:",
            "logger = file:maxsize=3",
            "memory-report = 3",
        ] {
            let mut f = tempfile::Builder::new().suffix(".ini").tempfile().unwrap();
            write!(f, "[uwsgi]\nmodule = a\n{bad}\n").unwrap();
            let args = vec!["--ini".to_string(), f.path().to_str().unwrap().to_string()];
            let e = load(&args, &[]).unwrap_err();
            assert!(e.0.contains("line 3: option '"), "{e}");
        }
    }
}
