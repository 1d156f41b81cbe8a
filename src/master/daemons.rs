//! Attached daemons at run time (`attach-daemon`, `smart-attach-daemon`, `attach-daemon2`):
//! the master starts them beside the workers, starts them again when they die (at once, or
//! after a back-off while they keep dying: `decide::daemons`), restarts them when a `touch`
//! file changes or dragoman reloads (or sends them their `reloadsignal`), and stops them with
//! itself: the stop signal, then SIGKILL at the deadline. Nothing here waits: the loop calls
//! [`Daemons::supervise`] at each wake-up, hands over the exits it reaps, and sleeps no longer
//! than [`Daemons::deadline`].
//!
//! A smart daemon is governed by its pidfile, as in uWSGI: it may detach, it is checked once
//! a second (the pid its pidfile names must live) and started again when gone, and it outlives
//! the master (a database, memcached); a new master finds it running and adopts it.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::command::{self, Launch};
use super::decide::daemons::{after_exit, judge_exit, smart_check, DaemonExit, Smart};
use super::output::Outputs;
use super::privileges::{resolve_group, resolve_user};
use super::signals;
use super::worker::describe_exit;
use crate::config;
use crate::{error, info, warn};

/// How often smart daemons' pidfiles and `touch` files are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// After a failure to start one (fork, an unknown user), the next try waits this long.
const START_RETRY: Duration = Duration::from_secs(5);

/// One daemon and what the master knows of it.
struct Daemon {
    spec: config::Daemon,
    /// The process the master started and has not reaped: an attached daemon, or the command
    /// a smart daemon was started with, until it exits.
    child: Option<libc::pid_t>,
    started: Instant,
    /// When to start it (again); `None` while it runs or is not wanted.
    start_at: Option<Instant>,
    /// Quick deaths in a row (the back-off).
    quick: u32,
    /// Told to stop: SIGKILL at the deadline; whether it starts again afterwards.
    stopping: Option<(Instant, bool)>,
    /// A smart daemon: the live pid its pidfile names, once seen; checks since its start
    /// without one; and whether it was said that it does not detach.
    watched: Option<libc::pid_t>,
    checks: u32,
    /// Its `touch` files and their modification times.
    touched: Vec<(PathBuf, Option<SystemTime>)>,
    /// No longer in the configuration (a reload): forgotten once it has exited.
    retired: bool,
}

/// Every attached daemon.
pub(super) struct Daemons {
    list: Vec<Daemon>,
    /// The environment they run with (the virtualenv first on PATH).
    env: Vec<CString>,
    /// How long a daemon may take to stop before it is killed.
    mercy: Duration,
    next_check: Instant,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Daemon {
    fn new(spec: config::Daemon, now: Instant) -> Daemon {
        let touched = spec
            .touch
            .iter()
            .map(|p| (p.clone(), modified(p)))
            .collect();
        Daemon {
            spec,
            child: None,
            started: now,
            start_at: Some(now),
            quick: 0,
            stopping: None,
            watched: None,
            checks: 0,
            touched,
            retired: false,
        }
    }

    /// `"name"`, for log lines.
    fn quoted(&self) -> String {
        format!("\"{}\"", self.spec.name)
    }

    /// Signals it: its process group, or the pid its pidfile names.
    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.child.or(self.watched) {
            command::signal_group(pid, sig);
        }
    }

    /// Tells it to stop (its stop signal), to start again afterwards or not.
    fn stop(&mut self, deadline: Instant, restart: bool) {
        self.start_at = None;
        if self.child.is_some() && self.spec.smart.is_none() {
            self.stopping = Some((deadline, restart));
            self.signal(self.spec.stop_signal);
        }
    }
}

impl Daemons {
    /// The daemons of the configuration; they start at the first [`Daemons::supervise`].
    pub(crate) fn new(specs: &[config::Daemon], env: Vec<CString>, mercy: Duration) -> Daemons {
        let now = Instant::now();
        Daemons {
            list: specs.iter().map(|s| Daemon::new(s.clone(), now)).collect(),
            env,
            mercy,
            next_check: now,
        }
    }

    /// Starts the daemons that are due, checks smart daemons' pidfiles and `touch` files, and
    /// kills the ones that outstay their stop deadline.
    pub(crate) fn supervise(&mut self, now: Instant, outputs: &mut Outputs) {
        let check = now >= self.next_check;
        if check {
            self.next_check = now + CHECK_EVERY;
        }
        for index in 0..self.list.len() {
            if check {
                self.check_touched(index, now);
                if self.list[index].spec.smart.is_some() {
                    self.check_smart(index, now);
                }
            }
            let d = &self.list[index];
            if d.child.is_none() && d.start_at.is_some_and(|at| now >= at) {
                self.start(index, now, outputs);
            }
        }
        self.kill_overdue(now);
    }

    /// A `touch` file changed: the daemon is restarted with its stop signal.
    fn check_touched(&mut self, index: usize, now: Instant) {
        let mercy = self.mercy;
        let d = &mut self.list[index];
        let mut touched = None;
        for (path, stamp) in &mut d.touched {
            let current = modified(path);
            if current.is_some() && current != *stamp {
                *stamp = current;
                touched = Some(path.clone());
            }
        }
        if let (Some(path), Some(pid)) = (touched, d.child.or(d.watched)) {
            info!(
                "daemon {} (pid {pid}): {} was touched; restarting it ({})",
                d.quoted(),
                path.display(),
                signals::name(d.spec.stop_signal)
            );
            if d.spec.smart.is_some() {
                d.signal(d.spec.stop_signal);
            } else {
                d.stop(now + mercy, true);
            }
        }
    }

    /// A smart daemon's check: does its pidfile name a live process?
    fn check_smart(&mut self, index: usize, now: Instant) {
        let d = &mut self.list[index];
        let Some(smart) = d.spec.smart.clone() else {
            return;
        };
        if d.start_at.is_some() || d.stopping.is_some() || d.retired {
            return;
        }
        let live = read_pid(&smart.pidfile).filter(|&pid| alive(pid));
        let checks = if live.is_some() { 0 } else { d.checks + 1 };
        match smart_check(
            live,
            d.watched.is_some(),
            d.child.is_some(),
            checks,
            smart.freq,
        ) {
            Smart::Running(pid) => {
                if d.watched != Some(pid) {
                    info!(
                        "daemon {}: running, pid {pid} (from {})",
                        d.quoted(),
                        smart.pidfile.display()
                    );
                }
                d.watched = Some(pid);
                d.checks = 0;
            }
            Smart::Wait => d.checks = checks,
            Smart::NotDaemonized => {
                warn!(
                    "daemon {} (pid {}) has not written a live pid to {} after {} checks: a \
                     smart daemon must detach and write its pidfile (use attach-daemon for one \
                     that stays in the foreground, or smart-attach-daemon2 to have dragoman \
                     detach it)",
                    d.quoted(),
                    d.child.unwrap_or(0),
                    smart.pidfile.display(),
                    smart.freq
                );
                d.checks = 0;
            }
            Smart::Start if d.child.is_some() => d.checks = checks,
            Smart::Start => {
                let (quick, delay) =
                    after_exit(d.quick, now - d.started, false, d.spec.max_throttle);
                d.quick = quick;
                d.start_at = Some(now + delay);
                match d.watched.take() {
                    Some(pid) => warn!(
                        "daemon {} (pid {pid}) is gone (its pidfile {} names no live process); \
                         {}",
                        d.quoted(),
                        smart.pidfile.display(),
                        restarting(delay)
                    ),
                    None => warn!(
                        "daemon {} did not write a live pid to {}; {}",
                        d.quoted(),
                        smart.pidfile.display(),
                        restarting(delay)
                    ),
                }
            }
        }
    }

    /// Starts daemon `index` (a smart one only when its pidfile names no live process).
    fn start(&mut self, index: usize, now: Instant, outputs: &mut Outputs) {
        let d = &mut self.list[index];
        d.start_at = None;
        d.stopping = None;
        if let Some(smart) = &d.spec.smart {
            if let Some(pid) = read_pid(&smart.pidfile).filter(|&pid| alive(pid)) {
                info!(
                    "daemon {}: found it running (pid {pid}), as {} says; not starting another",
                    d.quoted(),
                    smart.pidfile.display()
                );
                d.watched = Some(pid);
                return;
            }
        }
        let owner = match ids(&d.spec) {
            Ok(owner) => owner,
            Err(why) => {
                error!("daemon {}: {why}", d.quoted());
                d.start_at = Some(now + START_RETRY);
                return;
            }
        };
        let launch = Launch {
            command: &d.spec.command,
            env: &self.env,
            stdin: d.spec.stdin,
            die_with_master: d.spec.smart.is_none(),
            gid: owner.1,
            uid: owner.0,
            chdir: d.spec.chdir.as_deref(),
            detach_to: d
                .spec
                .smart
                .as_ref()
                .filter(|s| s.daemonize)
                .map(|s| s.pidfile.as_path()),
            inherit_output: d.spec.smart.is_some(),
        };
        match command::spawn(&launch) {
            Ok(started) => {
                info!(
                    "daemon {} (pid {}) started: {}",
                    d.quoted(),
                    started.pid,
                    d.spec.command
                );
                if let Some(output) = started.output {
                    outputs.add(output, format!("{}[{}]", d.spec.name, started.pid));
                }
                d.child = Some(started.pid);
                d.started = now;
                d.watched = None;
                d.checks = 0;
            }
            Err(e) => {
                error!(
                    "daemon {} ({}, {}): cannot start it: {e}",
                    d.quoted(),
                    d.spec.option,
                    d.spec.origin
                );
                d.start_at = Some(now + START_RETRY);
            }
        }
    }

    /// A child the loop reaped: if it is a daemon's, what follows. Returns `None` when the
    /// pid is no daemon's, `Some(None)` when it is, and `Some(Some(why))` when a control
    /// daemon died and dragoman must stop.
    pub(crate) fn exited(
        &mut self,
        pid: libc::pid_t,
        status: libc::c_int,
        now: Instant,
    ) -> Option<Option<String>> {
        let index = self.list.iter().position(|d| d.child == Some(pid))?;
        let d = &mut self.list[index];
        d.child = None;
        let how = describe_exit(status);
        if d.spec.smart.is_some() {
            // The command a smart daemon was started with: it detached, or it was the daemon
            // and the next pidfile check says so.
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                info!("daemon {}: the command (pid {pid}) {how}", d.quoted());
            }
            if d.retired {
                self.list.remove(index);
            }
            return Some(None);
        }
        let stopping = d.stopping.take().map(|(_, restart)| restart);
        let lived = now - d.started;
        match judge_exit(
            d.retired,
            stopping,
            d.spec.control,
            d.quick,
            lived,
            d.spec.max_throttle,
        ) {
            DaemonExit::Forget => {
                info!("daemon {} (pid {pid}) {how}", d.quoted());
                self.list.remove(index);
                Some(None)
            }
            DaemonExit::Stay => {
                info!("daemon {} (pid {pid}) {how}", d.quoted());
                Some(None)
            }
            DaemonExit::Control => Some(Some(format!(
                "control daemon {} (pid {pid}) {how}: stopping dragoman",
                d.quoted()
            ))),
            DaemonExit::Restart {
                quick,
                delay,
                asked,
            } => {
                d.quick = quick;
                d.start_at = Some(now + delay);
                if asked {
                    info!(
                        "daemon {} (pid {pid}) {how}; {}",
                        d.quoted(),
                        restarting(delay)
                    );
                } else {
                    warn!(
                        "daemon {} (pid {pid}) {how}; {}",
                        d.quoted(),
                        restarting(delay)
                    );
                }
                Some(None)
            }
        }
    }

    /// dragoman stops: the attached daemons get their stop signal (SIGKILL at `deadline`);
    /// smart ones are left running (told with `notifypid`).
    pub(crate) fn stop_all(&mut self, deadline: Instant) {
        for d in &mut self.list {
            d.start_at = None;
            match &d.spec.smart {
                None if d.child.is_some() => {
                    info!(
                        "daemon {} (pid {}): stopping it ({})",
                        d.quoted(),
                        d.child.unwrap_or(0),
                        signals::name(d.spec.stop_signal)
                    );
                    d.stop(deadline, false);
                }
                Some(smart) if smart.notify && d.watched.is_some() => {
                    d.signal(d.spec.stop_signal);
                }
                _ => {}
            }
        }
    }

    /// A reload with the daemons of the new configuration: one that is the same runs on, and
    /// is restarted (an attached one; or sent its `reloadsignal`, if it has one); one no longer
    /// there is stopped (a smart one is no longer watched); a new one starts.
    pub(crate) fn reload(&mut self, specs: &[config::Daemon], env: Vec<CString>, mercy: Duration) {
        let now = Instant::now();
        self.env = env;
        self.mercy = mercy;
        let mut new: Vec<Option<&config::Daemon>> = specs.iter().map(Some).collect();
        for d in &mut self.list {
            let matching = new
                .iter_mut()
                .find(|n| n.is_some_and(|n| n.same_as(&d.spec)))
                .and_then(Option::take);
            match (matching, &d.spec.smart) {
                (Some(spec), _) => {
                    d.spec = spec.clone();
                    if d.spec.smart.is_some() || d.child.is_none() {
                        continue;
                    }
                    let pid = d.child.unwrap_or(0);
                    match d.spec.reload_signal {
                        Some(sig) => {
                            info!(
                                "daemon {} (pid {pid}): reload, sending it {} (reloadsignal)",
                                d.quoted(),
                                signals::name(sig)
                            );
                            d.signal(sig);
                        }
                        None => {
                            info!(
                                "daemon {} (pid {pid}): reload, restarting it ({})",
                                d.quoted(),
                                signals::name(d.spec.stop_signal)
                            );
                            d.stop(now + mercy, true);
                        }
                    }
                }
                (None, Some(_)) => {
                    info!(
                        "daemon {} is no longer in the configuration: no longer watched (it runs on)",
                        d.quoted()
                    );
                    d.retired = true;
                }
                (None, None) => {
                    info!(
                        "daemon {} is no longer in the configuration: stopping it",
                        d.quoted()
                    );
                    d.retired = true;
                    d.stop(now + mercy, false);
                }
            }
        }
        self.list.retain(|d| !(d.retired && d.child.is_none()));
        for spec in new.into_iter().flatten() {
            self.list.push(Daemon::new(spec.clone(), now));
        }
    }

    /// Daemons told to stop that outstay their deadline are killed.
    fn kill_overdue(&mut self, now: Instant) {
        for d in &mut self.list {
            if let Some((deadline, restart)) = d.stopping {
                if now >= deadline {
                    warn!(
                        "daemon {} (pid {}) still running at its stop deadline: killing it",
                        d.quoted(),
                        d.child.unwrap_or(0)
                    );
                    d.signal(libc::SIGKILL);
                    // Killed once; reaped soon.
                    d.stopping = Some((now + Duration::from_secs(3600), restart));
                }
            }
        }
    }

    /// While dragoman stops: kills the daemons past their deadline. True once every attached
    /// daemon has exited.
    pub(crate) fn stopped(&mut self, now: Instant) -> bool {
        self.kill_overdue(now);
        self.list
            .iter()
            .all(|d| d.child.is_none() || d.spec.smart.is_some())
    }

    /// The next time something is due: a start, a stop deadline, a check.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let checks = self
            .list
            .iter()
            .any(|d| d.spec.smart.is_some() || !d.touched.is_empty())
            .then_some(self.next_check);
        self.list
            .iter()
            .flat_map(|d| [d.start_at, d.stopping.map(|(at, _)| at)])
            .flatten()
            .chain(checks)
            .min()
    }
}

/// "restarting" or "restarting in 4s".
fn restarting(delay: Duration) -> String {
    if delay.is_zero() {
        "restarting".into()
    } else {
        format!("restarting in {}s", delay.as_secs())
    }
}

/// The uid and gid a daemon runs as (`uid`, `gid` of attach-daemon2).
fn ids(spec: &config::Daemon) -> Result<(Option<libc::uid_t>, Option<libc::gid_t>), String> {
    let uid = match &spec.uid {
        Some(name) => Some(
            resolve_user(name)
                .ok_or_else(|| format!("uid {name:?} is no user on this machine"))?
                .0,
        ),
        None => None,
    };
    let gid = match &spec.gid {
        Some(name) => Some(
            resolve_group(name)
                .ok_or_else(|| format!("gid {name:?} is no group on this machine"))?,
        ),
        None => None,
    };
    Ok((uid, gid))
}

/// The pid a pidfile names, if it holds one. Opened without blocking and read only if it is a
/// regular file: a FIFO left at the path must not make the master wait for a writer.
fn read_pid(path: &PathBuf) -> Option<libc::pid_t> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse::<libc::pid_t>().ok().filter(|p| *p > 1)
}

/// Whether `pid` runs: it exists and is no zombie (a detached daemon's parent is init, which
/// may take a moment to reap it).
fn alive(pid: libc::pid_t) -> bool {
    if !command::exists(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfiles_are_read_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        std::fs::write(&path, "4242\n").unwrap();
        assert_eq!(read_pid(&path), Some(4242));
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(read_pid(&path), None);
        std::fs::write(&path, "nope").unwrap();
        assert_eq!(read_pid(&path), None);
        let fifo = dir.path().join("fifo.pid");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(read_pid(&fifo), None);
        assert!(alive(std::process::id() as libc::pid_t));
    }
}
