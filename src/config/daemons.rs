//! Attached daemons as uWSGI writes them (`attach-daemon`, `attach-control-daemon`,
//! `smart-attach-daemon`, `smart-attach-daemon2`, `attach-daemon2`), read into [`Daemon`]s;
//! the master runs them (`master/daemons.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::resolve::{bad_value, Resolved};
use super::source::{ConfigError, Origin, Setting};
use super::values::parse_bool;

/// One attached daemon: a shell command the master starts, restarts when it dies (with a
/// back-off when it keeps dying), and stops with itself.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// Run with `/bin/sh -c`, as uWSGI runs it.
    pub(crate) command: String,
    /// Its lines in the log are `NAME[PID]: ...` (`name=` in attach-daemon2).
    pub(crate) name: String,
    /// `None`: attached (a child of the master that does not detach). `Some`: governed by
    /// this pidfile (smart: it may detach, it survives the master).
    pub(crate) smart: Option<Smart>,
    /// `control`: when it dies, dragoman stops.
    pub(crate) control: bool,
    /// Files whose modification restarts it (`touch`).
    pub(crate) touch: Vec<PathBuf>,
    /// Signal that stops it (`stopsignal`, SIGTERM by default).
    pub(crate) stop_signal: i32,
    /// Signal sent on a reload instead of restarting it (`reloadsignal`).
    pub(crate) reload_signal: Option<i32>,
    /// `stdin`: keep the master's stdin (otherwise /dev/null).
    pub(crate) stdin: bool,
    /// The longest wait between restarts while it keeps dying (`max_throttle`).
    pub(crate) max_throttle: Duration,
    /// `uid` and `gid` to run as (names or numbers; the master must be root).
    pub(crate) uid: Option<String>,
    pub(crate) gid: Option<String>,
    pub(crate) chdir: Option<PathBuf>,
    /// The option it was written with, and where.
    pub(crate) option: &'static str,
    pub(crate) origin: Origin,
}

/// A pidfile-governed daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Smart {
    pub(crate) pidfile: PathBuf,
    /// `smart-attach-daemon2`, `daemonize=`: dragoman detaches it and writes the pidfile.
    pub(crate) daemonize: bool,
    /// Checks (one a second) a just-started daemon has to write its pidfile (`freq`).
    pub(crate) freq: u32,
    /// `notifypid`: send it the stop signal when dragoman stops, though it survives otherwise.
    pub(crate) notify: bool,
}

/// Default `max_throttle`: uWSGI grows its wait by a second a restart up to 5 minutes;
/// dragoman doubles it from 1 s up to this.
pub(crate) const MAX_THROTTLE: Duration = Duration::from_secs(60);

impl Daemon {
    /// Whether `other` runs the same thing the same way (a reload keeps such a daemon).
    pub(crate) fn same_as(&self, other: &Daemon) -> bool {
        let key = |d: &Daemon| {
            (
                d.command.clone(),
                d.name.clone(),
                d.smart.clone(),
                d.control,
                d.touch.clone(),
                d.stop_signal,
                d.reload_signal,
                d.stdin,
                d.max_throttle,
                d.uid.clone(),
                d.gid.clone(),
                d.chdir.clone(),
            )
        };
        key(self) == key(other)
    }
}

/// Every attached daemon, in the order of the options.
pub(crate) fn daemons(r: &Resolved<'_>) -> Result<Vec<Daemon>, ConfigError> {
    let mut out = Vec::new();
    for s in r.all("attach-daemon") {
        out.push(plain(s, s.value.trim(), None)?);
    }
    for (option, daemonize) in [
        ("smart-attach-daemon", false),
        ("smart-attach-daemon2", true),
    ] {
        for s in r.all(option) {
            out.push(smart(s, daemonize)?);
        }
    }
    for s in r.all("attach-control-daemon") {
        let mut daemon = plain(s, s.value.trim(), None)?;
        daemon.control = true;
        out.push(daemon);
    }
    for s in r.all("attach-daemon2") {
        out.push(keyval(s)?);
    }
    if r.flag("daemons-honour-stdin", false) {
        for daemon in &mut out {
            daemon.stdin = true;
        }
    }
    Ok(out)
}

/// `attach-daemon = COMMAND`.
fn plain(s: &Setting, command: &str, smart: Option<Smart>) -> Result<Daemon, ConfigError> {
    if command.is_empty() {
        return Err(bad_value(s, "a command", "python manage.py process_tasks"));
    }
    Ok(Daemon {
        command: command.to_string(),
        name: default_name(command),
        smart,
        control: false,
        touch: Vec::new(),
        stop_signal: libc::SIGTERM,
        reload_signal: None,
        stdin: false,
        max_throttle: MAX_THROTTLE,
        uid: None,
        gid: None,
        chdir: None,
        option: s.spec.name,
        origin: s.origin.clone(),
    })
}

/// `smart-attach-daemon = PIDFILE[,FREQ] COMMAND`.
fn smart(s: &Setting, daemonize: bool) -> Result<Daemon, ConfigError> {
    let example = "/run/celery.pid celery -A mysite worker --pidfile=/run/celery.pid";
    let expected = "a pidfile, then the command";
    let (head, command) = s
        .value
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| bad_value(s, expected, example))?;
    let (pidfile, freq) = match head.split_once(',') {
        Some((p, f)) => (
            p,
            f.parse::<u32>().ok().filter(|f| *f > 0).ok_or_else(|| {
                bad_value(s, "PIDFILE,FREQ with FREQ a number of seconds", example)
            })?,
        ),
        None => (head, 10),
    };
    let smart = Smart {
        pidfile: PathBuf::from(pidfile),
        daemonize,
        freq,
        notify: false,
    };
    plain(s, command.trim(), Some(smart))
}

/// The keys of attach-daemon2 dragoman knows (uWSGI's, and `name`).
const KEYS: &str = "cmd (or command, exec), name, pidfile, daemonize, freq, control, touch, \
                    stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle, notifypid";

/// `attach-daemon2 = cmd=COMMAND,key=value,...` (a `\` escapes a comma in a value).
fn keyval(s: &Setting) -> Result<Daemon, ConfigError> {
    let example = "cmd=celery -A mysite worker,stopsignal=15,touch=/srv/mysite/reload";
    let mut values: Vec<(String, String)> = Vec::new();
    for item in split_escaped(s.value.trim(), ',') {
        if item.trim().is_empty() {
            continue;
        }
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad_value(s, "key=value pairs separated by commas", example))?;
        values.push((key.trim().to_string(), value.to_string()));
    }
    let get = |names: &[&str]| {
        values
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.clone())
    };
    let wrong = |key: &str, expected: &str| {
        ConfigError(format!(
            "{}: option 'attach-daemon2': `{key}` expects {expected}; got {:?}",
            s.origin,
            get(&[key]).unwrap_or_default()
        ))
    };
    let flag = |key: &str, also: &[&str]| -> Result<bool, ConfigError> {
        let names: Vec<&str> = std::iter::once(key).chain(also.iter().copied()).collect();
        match get(&names) {
            None => Ok(false),
            Some(v) if v.trim().is_empty() => Ok(true),
            Some(v) => parse_bool(&v).ok_or_else(|| wrong(key, "true or false")),
        }
    };
    for (key, _) in &values {
        let refused = match key.as_str() {
            "ns_pid" => Some(
                "dragoman does not start daemons in their own pid namespace; run the command \
                 under `unshare --pid --fork` or a container instead",
            ),
            "legion" => Some(
                "dragoman has no legions: the daemon would run on every node instead of one; \
                 run it from one node's service manager",
            ),
            _ => None,
        };
        if let Some(why) = refused {
            return Err(ConfigError(format!(
                "{}: option 'attach-daemon2': key `{key}`: {why}",
                s.origin
            )));
        }
        let known = [
            "command",
            "cmd",
            "exec",
            "name",
            "pidfile",
            "daemonize",
            "daemon",
            "freq",
            "control",
            "touch",
            "stopsignal",
            "stop_signal",
            "reloadsignal",
            "reload_signal",
            "stdin",
            "uid",
            "gid",
            "chdir",
            "max_throttle",
            "notifypid",
        ];
        if !known.contains(&key.as_str()) {
            return Err(ConfigError(format!(
                "{}: option 'attach-daemon2': unknown key `{key}`; the keys are {KEYS}, as in \
                 `attach-daemon2 = {example}`",
                s.origin
            )));
        }
    }
    let command = get(&["command", "cmd", "exec"])
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ConfigError(format!(
                "{}: option 'attach-daemon2' needs the command to run, as `cmd=...`: as in \
                 `attach-daemon2 = {example}`",
                s.origin
            ))
        })?;
    let number = |key: &str, also: &[&str]| -> Result<Option<u64>, ConfigError> {
        let names: Vec<&str> = std::iter::once(key).chain(also.iter().copied()).collect();
        get(&names)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| wrong(key, "a whole number"))
            })
            .transpose()
    };
    let signal = |key: &str, also: &[&str]| -> Result<Option<i32>, ConfigError> {
        let names: Vec<&str> = std::iter::once(key).chain(also.iter().copied()).collect();
        get(&names)
            .map(|v| {
                signal_number(&v)
                    .ok_or_else(|| wrong(key, "a signal, as a number or a name (15, TERM)"))
            })
            .transpose()
    };
    let smart = match get(&["pidfile"]).filter(|p| !p.trim().is_empty()) {
        Some(pidfile) => Some(Smart {
            pidfile: PathBuf::from(pidfile.trim()),
            daemonize: flag("daemonize", &["daemon"])?,
            freq: number("freq", &[])?
                .filter(|f| *f > 0)
                .map_or(10, |f| f.min(u64::from(u32::MAX)) as u32),
            notify: flag("notifypid", &[])?,
        }),
        None if flag("daemonize", &["daemon"])? => {
            return Err(ConfigError(format!(
                "{}: option 'attach-daemon2': `daemonize` needs a `pidfile` to find the daemon \
                 by once it is detached",
                s.origin
            )))
        }
        None => None,
    };
    let mut daemon = plain(s, &command, smart)?;
    if let Some(name) = get(&["name"]).map(|n| n.trim().to_string()) {
        if name.is_empty() {
            return Err(wrong("name", "a name for the log"));
        }
        daemon.name = name;
    }
    daemon.control = flag("control", &[])?;
    daemon.touch = get(&["touch"])
        .map(|t| {
            t.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    daemon.stop_signal = signal("stopsignal", &["stop_signal"])?.unwrap_or(libc::SIGTERM);
    daemon.reload_signal = signal("reloadsignal", &["reload_signal"])?.filter(|s| *s > 0);
    daemon.stdin = flag("stdin", &[])?;
    if let Some(secs) = number("max_throttle", &[])?.filter(|s| *s > 0) {
        daemon.max_throttle = Duration::from_secs(secs);
    }
    daemon.uid = get(&["uid"])
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    daemon.gid = get(&["gid"])
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    daemon.chdir = get(&["chdir"])
        .map(|c| PathBuf::from(c.trim()))
        .filter(|c| !c.as_os_str().is_empty());
    Ok(daemon)
}

/// Splits `text` on `separator`, a backslash escaping the next character (uWSGI's kvlist).
fn split_escaped(text: &str, separator: char) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        let item = items.last_mut().expect("never empty");
        if escaped {
            item.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            items.push(String::new());
        } else {
            item.push(c);
        }
    }
    items
}

/// A signal written as a number (`15`, as uWSGI reads it) or a name (`TERM`, `SIGTERM`).
pub(crate) fn signal_number(text: &str) -> Option<i32> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = text.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// The name a daemon's (or a cron job's) lines carry when none is given: its first words up
/// to the first option or shell operator (at most three), each path cut to its last part:
/// `python manage.py sendalerts`, `celery`, `redis-server`.
pub(crate) fn default_name(command: &str) -> String {
    let simple = command
        .split([';', '|', '&', '>', '<', '(', ')'])
        .next()
        .unwrap_or_default();
    let words: Vec<&str> = simple
        .split_whitespace()
        .take_while(|w| !w.starts_with('-'))
        .take(3)
        .map(|w| w.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(w))
        .collect();
    if words.is_empty() {
        command
            .split_whitespace()
            .next()
            .unwrap_or("daemon")
            .to_string()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Config, Loaded};

    fn load_run(args: &[&str]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match load(&args, &[])? {
            Loaded::Run(c) => Ok(*c),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn names_come_from_the_first_words() {
        assert_eq!(
            default_name("python manage.py sendalerts --skip-checks"),
            "python manage.py sendalerts"
        );
        assert_eq!(default_name("celery -A mysite worker"), "celery");
        assert_eq!(
            default_name("/srv/venv/bin/python /srv/app/ticker.py one two"),
            "python ticker.py one"
        );
        assert_eq!(default_name("redis-server"), "redis-server");
        assert_eq!(default_name("-x"), "-x");
        assert_eq!(default_name("echo hello; sleep 30"), "echo hello");
        assert_eq!(
            default_name("./manage.py runjobs daily"),
            "manage.py runjobs daily"
        );
    }

    #[test]
    fn the_three_forms() {
        let c = load_run(&[
            "app",
            "--attach-daemon",
            "memcached -p 11311",
            "--smart-attach-daemon",
            "/tmp/celery.pid celery -A x worker --pidfile=/tmp/celery.pid",
            "--smart-attach-daemon2",
            "/tmp/t.pid,3 python ticker.py",
        ])
        .unwrap();
        let d = &c.daemons;
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].command.as_str(), d[0].name.as_str()),
            ("memcached -p 11311", "memcached")
        );
        assert!(d[0].smart.is_none() && d[0].stop_signal == libc::SIGTERM);
        let smart = d[1].smart.as_ref().unwrap();
        assert_eq!(smart.pidfile, PathBuf::from("/tmp/celery.pid"));
        assert!(!smart.daemonize && smart.freq == 10);
        assert_eq!(d[1].command, "celery -A x worker --pidfile=/tmp/celery.pid");
        let smart2 = d[2].smart.as_ref().unwrap();
        assert!(smart2.daemonize && smart2.freq == 3);
        let c = load_run(&[
            "app",
            "--attach-control-daemon",
            "x",
            "--daemons-honour-stdin",
        ])
        .unwrap();
        assert!(c.daemons[0].control && c.daemons[0].stdin);
        let e = load_run(&["app", "--smart-attach-daemon", "/tmp/only-a-pidfile"]).unwrap_err();
        assert!(e.0.contains("expects a pidfile, then the command"), "{e}");
    }

    #[test]
    fn attach_daemon2_keys() {
        let c = load_run(&[
            "app",
            "--attach-daemon2",
            "cmd=sh -c 'a\\,b',name=ab,stopsignal=INT,reloadsignal=1,touch=/a;/b,control=1,\
             stdin=true,max_throttle=5,uid=33,chdir=/srv",
        ])
        .unwrap();
        let d = &c.daemons[0];
        assert_eq!(d.command, "sh -c 'a,b'");
        assert_eq!(d.name, "ab");
        assert_eq!(
            (d.stop_signal, d.reload_signal),
            (libc::SIGINT, Some(libc::SIGHUP))
        );
        assert_eq!(d.touch, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(d.control && d.stdin && d.smart.is_none());
        assert_eq!(d.max_throttle, Duration::from_secs(5));
        assert_eq!(
            (d.uid.as_deref(), d.chdir.as_deref()),
            (Some("33"), Some(std::path::Path::new("/srv")))
        );
        let c = load_run(&[
            "app",
            "--attach-daemon2",
            "exec=x,pidfile=/tmp/x.pid,daemonize=true,freq=2,notifypid=1",
        ])
        .unwrap();
        let smart = c.daemons[0].smart.clone().unwrap();
        assert!(smart.daemonize && smart.notify && smart.freq == 2);
        for (value, expected) in [
            (
                "pidfile=/tmp/x.pid",
                "needs the command to run, as `cmd=...`",
            ),
            ("cmd=x,stopsignal=NOPE", "`stopsignal` expects a signal"),
            ("cmd=x,stopsinal=2", "unknown key `stopsinal`"),
            ("cmd=x,daemonize=1", "needs a `pidfile`"),
            ("cmd=x,ns_pid=1", "pid namespace"),
            ("cmd=x,legion=l", "no legions"),
        ] {
            let e = load_run(&["app", "--attach-daemon2", value]).unwrap_err();
            assert!(
                e.0.contains("attach-daemon2") && e.0.contains(expected),
                "{e}"
            );
        }
    }

    #[test]
    fn same_daemons_are_recognised_across_a_reload() {
        let a = load_run(&["app", "--attach-daemon", "x -y"]).unwrap();
        let b = load_run(&["app", "--attach-daemon2", "cmd=x -y"]).unwrap();
        let c = load_run(&["app", "--attach-daemon", "x -z"]).unwrap();
        assert!(a.daemons[0].same_as(&b.daemons[0]));
        assert!(!a.daemons[0].same_as(&c.daemons[0]));
    }
}
