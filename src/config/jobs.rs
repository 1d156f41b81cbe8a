//! Cron jobs (`cron`, `unique-cron`) and `hook-master-start`, as uWSGI writes them; the master
//! runs them (`master/crons.rs`, `master/hooks.rs`).

use super::daemons::signal_number;
use super::resolve::{bad_value, Resolved};
use super::source::{ConfigError, Origin, Setting};

/// `cron`/`unique-cron = MINUTE HOUR DAY MONTH WEEKDAY COMMAND`, as uWSGI writes it: each
/// field a number, `-1` for any, `-N` for every N (minutes 0, N, 2N ... of the hour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    pub(crate) minute: i32,
    pub(crate) hour: i32,
    pub(crate) day: i32,
    pub(crate) month: i32,
    pub(crate) weekday: i32,
    pub(crate) command: String,
    /// `unique-cron`: not started again while the previous run goes on.
    pub(crate) unique: bool,
    pub(crate) origin: Origin,
}

/// Every cron job, `cron` then `unique-cron`.
pub(crate) fn crons(r: &Resolved<'_>) -> Result<Vec<Cron>, ConfigError> {
    let mut crons = Vec::new();
    for (name, unique) in [("cron", false), ("unique-cron", true)] {
        for s in r.all(name) {
            crons.push(cron(s, unique)?);
        }
    }
    Ok(crons)
}

/// One cron line. The command is the rest of the line as written (quotes and spaces kept).
fn cron(s: &Setting, unique: bool) -> Result<Cron, ConfigError> {
    let example = "0 3 -1 -1 -1 /srv/mysite/bin/nightly";
    let fields = ["minute", "hour", "day", "month", "weekday"];
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let mut rest = s.value.trim_start();
    let mut times = [0i32; 5];
    for (i, time) in times.iter_mut().enumerate() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        let expected = "five time fields (minute hour day month weekday, each a number, -1 for \
                        any, -N for every N) and a command";
        *time = word
            .parse::<i32>()
            .map_err(|_| bad_value(s, expected, example))?;
        let (low, high) = ranges[i];
        if *time == 0 && low > 0 || *time > high {
            return Err(ConfigError(format!(
                "{}: option '{}': the {} field is {time}, which never comes ({low} to {high}, \
                 -1 for any, -N for every N); as in `{} = {example}`",
                s.origin, s.spec.name, fields[i], s.spec.name
            )));
        }
        rest = rest[end..].trim_start();
    }
    let command = rest.trim_end();
    if command.is_empty() {
        return Err(bad_value(
            s,
            "a command after the five time fields",
            example,
        ));
    }
    Ok(Cron {
        minute: times[0],
        hour: times[1],
        day: times[2],
        month: times[3],
        weekday: times[4],
        command: command.to_string(),
        unique,
        origin: s.origin.clone(),
    })
}

/// One `hook-master-start` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hook {
    /// `exec:COMMAND` (a failure stops dragoman, as in uWSGI) or `safeexec:COMMAND` (a
    /// failure is logged).
    Exec { command: String, fatal: bool },
    /// `unix_signal:N FUNCTION`: what the master does on signal N.
    Signal { signal: i32, action: SignalAction },
}

/// What the master does on a signal, as uWSGI's master functions name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignalAction {
    /// `gracefully_kill_them_all`: stop, letting requests finish.
    GracefulStop,
    /// `kill_them_all`: stop now.
    ImmediateStop,
    /// `grace_them_all` (and `reap_them_all`): reload gracefully.
    Reload,
}

/// Every `hook-master-start` line. dragoman runs `exec:` and `safeexec:` commands and takes
/// `unix_signal:` remappings of the signals its master handles; any other action is refused,
/// since ignoring it would leave undone what the site needs done before it serves.
pub(crate) fn hooks(r: &Resolved<'_>) -> Result<Vec<Hook>, ConfigError> {
    r.all("hook-master-start").iter().map(|s| hook(s)).collect()
}

fn hook(s: &Setting) -> Result<Hook, ConfigError> {
    let value = s.value.trim();
    let (action, arg) = value.split_once(':').unwrap_or((value, ""));
    let refuse =
        |why: String| ConfigError(format!("{}: option 'hook-master-start': {why}", s.origin));
    match action.trim() {
        "exec" | "safeexec" if arg.trim().is_empty() => Err(refuse(format!(
            "`{action}:` needs a command, as in `exec:mkdir -p /run/mysite`"
        ))),
        "exec" => Ok(Hook::Exec {
            command: arg.trim().to_string(),
            fatal: true,
        }),
        "safeexec" => Ok(Hook::Exec {
            command: arg.trim().to_string(),
            fatal: false,
        }),
        "unix_signal" => {
            let (number, function) =
                arg.trim().split_once(char::is_whitespace).ok_or_else(|| {
                    refuse(
                        "`unix_signal:` expects a signal and a function, as in \
                        `unix_signal:15 gracefully_kill_them_all`"
                            .into(),
                    )
                })?;
            let signal = signal_number(number)
                .filter(|n| {
                    [
                        libc::SIGHUP,
                        libc::SIGINT,
                        libc::SIGQUIT,
                        libc::SIGTERM,
                        libc::SIGTTIN,
                        libc::SIGTTOU,
                    ]
                    .contains(n)
                })
                .ok_or_else(|| {
                    refuse(format!(
                        "`unix_signal:{number}`: dragoman's master acts on SIGHUP (1), SIGINT \
                         (2), SIGQUIT (3), SIGTERM (15), SIGTTIN and SIGTTOU only; send one of \
                         those"
                    ))
                })?;
            let action = match function.trim() {
                "gracefully_kill_them_all" => SignalAction::GracefulStop,
                "kill_them_all" => SignalAction::ImmediateStop,
                "grace_them_all" | "reap_them_all" => SignalAction::Reload,
                other => {
                    return Err(refuse(format!(
                        "`unix_signal:` function `{other}` is not one dragoman has: \
                         gracefully_kill_them_all (stop gracefully), kill_them_all (stop now), \
                         grace_them_all (reload)"
                    )))
                }
            };
            Ok(Hook::Signal { signal, action })
        }
        other => Err(refuse(format!(
            "the `{other}:` action is not implemented in dragoman, which runs `exec:COMMAND` \
             (`safeexec:` to go on when it fails) and takes `unix_signal:N FUNCTION`; write the \
             action as a command (`exec:mkdir -p /run/mysite`), or run it from the service \
             manager (ExecStartPre= in systemd)"
        ))),
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
    fn cron_lines_keep_their_command_and_check_their_fields() {
        let c = load_run(&[
            "app",
            "--cron",
            "-15 -1 -1 -1 -1 sh -c 'find /x  -name \"*.tmp\"'",
            "--unique-cron",
            "0 3 1 12 7 ./manage.py runjobs yearly",
        ])
        .unwrap();
        assert_eq!(c.crons.len(), 2);
        let (a, b) = (&c.crons[0], &c.crons[1]);
        assert_eq!(
            (a.minute, a.hour, a.day, a.month, a.weekday),
            (-15, -1, -1, -1, -1)
        );
        assert_eq!(a.command, "sh -c 'find /x  -name \"*.tmp\"'");
        assert!(!a.unique && b.unique);
        assert_eq!(
            (b.minute, b.hour, b.day, b.month, b.weekday),
            (0, 3, 1, 12, 7)
        );
        for (line, expected) in [
            ("0 3 -1 -1", "five time fields"),
            ("0 3 -1 -1 -1", "a command after the five time fields"),
            ("x 3 -1 -1 -1 cmd", "five time fields"),
            (
                "60 -1 -1 -1 -1 cmd",
                "the minute field is 60, which never comes",
            ),
            ("0 0 0 -1 -1 cmd", "the day field is 0"),
            ("0 0 -1 13 -1 cmd", "the month field is 13"),
        ] {
            let e = load_run(&["app", "--cron", line]).unwrap_err();
            assert!(e.0.contains(expected), "{line}: {e}");
        }
    }

    #[test]
    fn hooks_run_commands_and_remap_signals_and_refuse_the_rest() {
        let c = load_run(&[
            "app",
            "--hook-master-start",
            "exec:mkdir -p /run/x",
            "--hook-master-start",
            "safeexec:false",
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            "--hook-master-start",
            "unix_signal:3 gracefully_kill_them_all",
            "--hook-master-start",
            "unix_signal:HUP grace_them_all",
        ])
        .unwrap();
        assert_eq!(
            c.hooks_master_start,
            vec![
                Hook::Exec {
                    command: "mkdir -p /run/x".into(),
                    fatal: true
                },
                Hook::Exec {
                    command: "false".into(),
                    fatal: false
                },
                Hook::Signal {
                    signal: libc::SIGTERM,
                    action: SignalAction::GracefulStop
                },
                Hook::Signal {
                    signal: libc::SIGQUIT,
                    action: SignalAction::GracefulStop
                },
                Hook::Signal {
                    signal: libc::SIGHUP,
                    action: SignalAction::Reload
                },
            ]
        );
        for (value, expected) in [
            ("mkdir:/run/x", "the `mkdir:` action is not implemented"),
            ("exec:", "needs a command"),
            (
                "unix_signal:10 gracefully_kill_them_all",
                "acts on SIGHUP (1)",
            ),
            (
                "unix_signal:15 simple_goodbye_cruel_world",
                "function `simple_goodbye_cruel_world`",
            ),
            ("unix_signal:15", "expects a signal and a function"),
        ] {
            let e = load_run(&["app", "--hook-master-start", value]).unwrap_err();
            assert!(
                e.0.contains("hook-master-start") && e.0.contains(expected),
                "{e}"
            );
        }
    }
}
