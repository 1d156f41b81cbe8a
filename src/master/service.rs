//! A service child: a process the master forks and supervises like a worker, but which runs
//! no Python and serves no client: the ACME certificate manager ([`crate::acme::run`]). It
//! exists so that the master keeps no async runtime and never waits on the network: the child
//! builds its own runtime after the fork.
//!
//! The master starts it when the configuration asks for it, starts it again when it dies
//! (after 1 second, doubling up to a minute while it keeps dying within 10 seconds of its
//! start), restarts it on a reload (so it runs with the new configuration), and stops it with
//! the workers. Its hooks in the supervisor loop are [`ServiceChild::supervise`],
//! [`ServiceChild::reaped`], [`ServiceChild::signal`], [`ServiceChild::restart`] and
//! [`ServiceChild::stop`].

use std::time::{Duration, Instant};

use pyo3::Python;

use super::fork;
use super::signals::SignalQueue;
use super::worker::describe_exit;
use crate::config::Config;
use crate::{error, info, warn};

/// A run shorter than this counts as dying quickly.
const QUICK: Duration = Duration::from_secs(10);
/// The longest wait before starting it again.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// One supervised service process.
pub(super) struct ServiceChild {
    /// For the log: `ACME certificate manager`.
    name: &'static str,
    /// What it runs, in the child, with the configuration; returns the exit code.
    body: fn(&Config) -> Option<i32>,
    /// Whether the configuration asks for it.
    wanted: fn(&Config) -> bool,
    pid: Option<libc::pid_t>,
    started: Instant,
    /// Quick deaths in a row.
    quick_deaths: u32,
    /// Not started again before this.
    not_before: Instant,
    /// Told to stop for a reload: started again at once, not counted as a death.
    restarting: bool,
}

/// How long to wait before starting a service again after `quick_deaths` quick deaths in a
/// row: 1 second, doubling, at most a minute.
pub(super) fn restart_delay(quick_deaths: u32) -> Duration {
    let doubled = Duration::from_secs(1u64 << quick_deaths.min(6));
    doubled.min(MAX_DELAY)
}

impl ServiceChild {
    /// The ACME certificate manager, when `acme-domain` is set.
    pub(super) fn acme() -> ServiceChild {
        ServiceChild {
            name: "ACME certificate manager",
            body: |config| config.tls.acme.clone().map(crate::acme::run),
            wanted: |config| config.tls.acme.is_some(),
            pid: None,
            started: Instant::now(),
            quick_deaths: 0,
            not_before: Instant::now(),
            restarting: false,
        }
    }

    /// Starts the service when it should run and does not. In the child this never returns:
    /// the service runs, then the process exits (the master's Python is never run again
    /// there, nor its exit handlers).
    pub(super) fn supervise(&mut self, py: Python<'_>, signals: &SignalQueue, config: &Config) {
        if self.pid.is_some() || !(self.wanted)(config) || Instant::now() < self.not_before {
            return;
        }
        match fork::spawn(py, signals) {
            Ok(fork::Spawned::Child) => {
                // The master's descriptors (listeners, the stats socket, its pipes) are not
                // the service's: closed, so that none outlives the master through it.
                // SAFETY: close_range on descriptors this process owns and will not use;
                // stdin, stdout and stderr (the log) stay.
                unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                let code = (self.body)(config).unwrap_or(0);
                // SAFETY: _exit ends the process without running the master's Python
                // finalisation, which is not this process's to run.
                unsafe { libc::_exit(code) }
            }
            Ok(fork::Spawned::Parent(pid)) => {
                info!("{} started (pid {pid})", self.name);
                self.pid = Some(pid);
                self.started = Instant::now();
            }
            Err(e) => {
                error!("cannot fork the {}: {e}", self.name);
                self.not_before = Instant::now() + restart_delay(self.quick_deaths);
            }
        }
    }

    /// Whether `pid` was this service's (its exit is then said, and a restart planned).
    pub(super) fn reaped(&mut self, pid: libc::pid_t, status: libc::c_int) -> bool {
        if self.pid != Some(pid) {
            return false;
        }
        self.pid = None;
        if std::mem::take(&mut self.restarting) {
            info!("{} (pid {pid}) stopped for the reload", self.name);
            self.not_before = Instant::now();
            return true;
        }
        if self.started.elapsed() < QUICK {
            self.quick_deaths += 1;
        } else {
            self.quick_deaths = 0;
        }
        let delay = restart_delay(self.quick_deaths);
        self.not_before = Instant::now() + delay;
        let how = describe_exit(status);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            info!("{} (pid {pid}) {how}", self.name);
        } else {
            warn!(
                "{} (pid {pid}) {how}; starting it again in {}s",
                self.name,
                delay.as_secs()
            );
        }
        true
    }

    /// Sends `sig` to the service, if it runs.
    pub(super) fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid {
            // SAFETY: kill(2) on a child of ours not reaped yet (its pid cannot be reused).
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// On a reload: stopped, and started again (with the new configuration) once reaped.
    pub(super) fn restart(&mut self) {
        if self.pid.is_some() {
            self.signal(libc::SIGTERM);
            self.restarting = true;
        }
        self.quick_deaths = 0;
    }

    /// When the master exits: the service is told to stop, then killed if it has not within
    /// two seconds, and reaped.
    pub(super) fn stop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        // SAFETY: as in `signal`.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child; status is a valid out-pointer.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done != 0 {
                return;
            }
            if Instant::now() >= deadline {
                // SAFETY: as above; then reaped, blocking (SIGKILL cannot be refused).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
