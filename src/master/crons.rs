//! Cron jobs at run time (`cron`, `unique-cron`): checked at every wake-up of the master's
//! loop (at least once a second), started as children of the master when their time comes
//! (`decide::cron`), their output logged. The master never waits for one: a job runs as long
//! as it runs. Jobs die with the master (PR_SET_PDEATHSIG, as in uWSGI) and get SIGTERM when
//! it stops.

use std::ffi::CString;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::command::{self, Launch};
use super::decide::cron::{due, LocalTime};
use super::output::Outputs;
use super::worker::describe_exit;
use crate::config::{self, Cron};
use crate::{error, info, warn};

/// One job and its runs.
struct Job {
    spec: Cron,
    name: String,
    /// When a run last started, in seconds since the epoch.
    last: Option<i64>,
    /// Runs still going.
    running: Vec<libc::pid_t>,
}

/// Every cron job.
pub(super) struct Crons {
    jobs: Vec<Job>,
    env: Vec<CString>,
}

impl Crons {
    pub(crate) fn new(specs: &[Cron], env: Vec<CString>) -> Crons {
        Crons {
            jobs: specs
                .iter()
                .map(|spec| Job {
                    name: config::daemons::default_name(&spec.command),
                    spec: spec.clone(),
                    last: None,
                    running: Vec::new(),
                })
                .collect(),
            env,
        }
    }

    /// Starts the jobs whose time has come.
    pub(crate) fn supervise(&mut self, outputs: &mut Outputs) {
        if self.jobs.is_empty() {
            return;
        }
        let Some((now, t)) = local_now() else {
            return;
        };
        for job in &mut self.jobs {
            if !due(&job.spec, t, now, job.last, !job.running.is_empty()) {
                continue;
            }
            job.last = Some(now);
            let launch = Launch {
                command: &job.spec.command,
                env: &self.env,
                die_with_master: true,
                ..Launch::default()
            };
            match command::spawn(&launch) {
                Ok(started) => {
                    info!(
                        "cron \"{}\" (pid {}) started: {}",
                        job.name, started.pid, job.spec.command
                    );
                    if let Some(output) = started.output {
                        outputs.add(output, format!("cron {}[{}]", job.name, started.pid));
                    }
                    job.running.push(started.pid);
                }
                Err(e) => error!("cron \"{}\": cannot start it: {e}", job.name),
            }
        }
    }

    /// A child the loop reaped: true if it was a cron job's run.
    pub(crate) fn exited(&mut self, pid: libc::pid_t, status: libc::c_int) -> bool {
        for job in &mut self.jobs {
            if let Some(at) = job.running.iter().position(|p| *p == pid) {
                job.running.swap_remove(at);
                let how = describe_exit(status);
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    info!("cron \"{}\" (pid {pid}) {how}", job.name);
                } else {
                    warn!("cron \"{}\" (pid {pid}) {how}", job.name);
                }
                return true;
            }
        }
        false
    }

    /// dragoman stops: the runs still going get SIGTERM (and die with the master).
    pub(crate) fn stop_all(&mut self) {
        for job in &mut self.jobs {
            for pid in &job.running {
                command::signal_group(*pid, libc::SIGTERM);
            }
        }
    }

    /// A reload: the jobs of the new configuration (runs going on are left to finish).
    pub(crate) fn reload(&mut self, specs: &[Cron], env: Vec<CString>) {
        let mut old = std::mem::take(&mut self.jobs);
        *self = Crons::new(specs, env);
        for job in &mut self.jobs {
            if let Some(at) = old.iter().position(|o| o.spec.command == job.spec.command) {
                let o = old.swap_remove(at);
                job.last = o.last;
                job.running = o.running;
            }
        }
    }

    /// The next time the jobs are looked at: the next second.
    pub(crate) fn deadline(&self, now: Instant) -> Option<Instant> {
        if self.jobs.is_empty() {
            return None;
        }
        let into_second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Some(now + Duration::from_secs(1) - Duration::from_nanos(u64::from(into_second)))
    }
}

/// The time now, in seconds since the epoch and as local time (crons run in the local time
/// zone, as in uWSGI: TZ, or /etc/localtime).
fn local_now() -> Option<(i64, LocalTime)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as libc::time_t;
    // SAFETY: localtime_r fills the tm we pass from a time_t we own; both live across the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some((
        now as i64,
        LocalTime {
            minute: tm.tm_min,
            hour: tm.tm_hour,
            day: tm.tm_mday,
            month: tm.tm_mon + 1,
            weekday: tm.tm_wday,
        },
    ))
}
