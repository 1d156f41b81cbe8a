//! The master: forks the workers and supervises them, in the Python main thread, with no tokio
//! runtime and no threads (a runtime or thread in the parent would be broken in every child).
//!
//! The whole supervisor is [`Arbiter::run`], one loop to read top to bottom, as in gunicorn's
//! arbiter: sleep until a signal or a worker's readiness byte arrives; handle the queued signals
//! in order; reap dead workers; then bring the number of workers back to what it should be.

mod fork;
pub mod signals;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use pyo3::Python;

use crate::config::Config;
use crate::net::Bound;
use crate::worker::WorkerArgs;
use crate::{error, info, warn};
use signals::SignalQueue;

/// Exit code of a worker that could not load the application (gunicorn uses the same number).
pub const WORKER_BOOT_ERROR: i32 = 3;

/// One forked worker as the master sees it.
struct Worker {
    /// 1-based slot number, stable across respawns; shown in logs.
    id: usize,
    pid: libc::pid_t,
    /// Read end of the pipe the worker writes one byte to when it is accepting.
    ready_pipe: Option<OwnedFd>,
    ready: bool,
    started: Instant,
    /// Sent SIGTERM because there are more workers than wanted; not counted any more.
    retiring: bool,
}

/// Why the master is stopping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    /// Finish in-flight requests, until the deadline.
    Graceful(Instant),
    /// Kill everything now.
    Immediate,
}

/// What `run` returns in each process after a fork.
pub enum Role {
    /// The master finished; exit with this code.
    Master(i32),
    /// This process is a freshly forked worker: run it.
    Worker(Box<WorkerArgs>),
}

/// The supervisor's state.
struct Arbiter<'a> {
    config: &'a Config,
    signals: SignalQueue,
    workers: Vec<Worker>,
    /// How many workers there should be (SIGTTIN/SIGTTOU change it).
    target: usize,
    stop: Option<Stop>,
    /// Whether any worker has ever loaded the app; until then a boot failure is fatal.
    booted_once: bool,
    /// Set when the master must exit non-zero.
    failure: Option<String>,
    /// Workers that died soon after starting, in a row: a crash loop backs off.
    quick_deaths: u32,
    respawn_after: Option<Instant>,
}

/// Runs the master until it stops; in a forked child, returns the worker's arguments instead.
pub fn run(py: Python<'_>, config: &Config, listeners: Vec<Bound>) -> Role {
    let signals = match SignalQueue::install() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return Role::Master(1);
        }
    };
    let mut arbiter = Arbiter {
        config,
        signals,
        workers: Vec::new(),
        target: config.processes,
        stop: None,
        booted_once: false,
        failure: None,
        quick_deaths: 0,
        respawn_after: None,
    };
    let role = arbiter.run(py);
    if let Role::Worker(mut args) = role {
        // The child owns the listeners now; the master's other state is dropped with it.
        args.listeners = listeners;
        return Role::Worker(args);
    }
    role
}

impl Arbiter<'_> {
    fn run(&mut self, py: Python<'_>) -> Role {
        info!(
            "master {} started: {} worker(s) x {} thread(s), app {}",
            std::process::id(),
            self.target,
            self.config.threads,
            self.config.app.describe()
        );
        loop {
            self.wait_for_events();
            for sig in self.signals.take() {
                self.handle_signal(sig);
            }
            self.reap();
            match self.stop {
                Some(stop) => {
                    if self.workers.is_empty() {
                        break;
                    }
                    if let Stop::Graceful(deadline) = stop {
                        if Instant::now() >= deadline {
                            warn!(
                                "{} worker(s) still busy after worker-reload-mercy ({}s): killing",
                                self.workers.len(),
                                self.config.mercy.as_secs()
                            );
                            self.kill_all(libc::SIGKILL);
                            self.stop = Some(Stop::Immediate);
                        }
                    }
                }
                None => {
                    if let Some(args) = self.manage(py) {
                        return Role::Worker(args);
                    }
                }
            }
        }
        match &self.failure {
            Some(why) => {
                error!("{why}");
                Role::Master(1)
            }
            None => {
                info!("master {} exiting", std::process::id());
                Role::Master(0)
            }
        }
    }

    /// Sleeps until a signal arrives, a worker reports ready, or a timer is due.
    fn wait_for_events(&mut self) {
        let mut fds = vec![libc::pollfd {
            fd: self.signals.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for w in &self.workers {
            if let Some(pipe) = &w.ready_pipe {
                fds.push(libc::pollfd {
                    fd: pipe.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        let timeout_ms = match (self.stop, self.respawn_after) {
            (Some(Stop::Graceful(deadline)), _) | (None, Some(deadline)) => deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(1, 1000)
                as libc::c_int,
            _ => 1000,
        };
        // SAFETY: fds is a valid, initialised array of pollfd whose length we pass.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            return;
        }
        for pfd in &fds[1..] {
            if pfd.revents == 0 {
                continue;
            }
            if let Some(w) = self.workers.iter_mut().find(|w| {
                w.ready_pipe
                    .as_ref()
                    .is_some_and(|p| p.as_raw_fd() == pfd.fd)
            }) {
                // One byte means ready; EOF means it died before being ready (reap says why).
                let mut byte = 0u8;
                // SAFETY: reading one byte from our own pipe fd into a local.
                let got = unsafe { libc::read(pfd.fd, (&mut byte as *mut u8).cast(), 1) };
                if got == 1 && !w.ready {
                    w.ready = true;
                    self.booted_once = true;
                    self.quick_deaths = 0;
                    info!("worker {} (pid {}) ready", w.id, w.pid);
                }
                w.ready_pipe = None;
            }
        }
    }

    fn handle_signal(&mut self, sig: libc::c_int) {
        match sig {
            libc::SIGCHLD => {} // reap() runs after every wake-up
            libc::SIGTERM | libc::SIGINT if self.stop.is_none() => {
                info!(
                    "{}: stopping gracefully (up to {}s for requests in flight)",
                    signals::name(sig),
                    self.config.mercy.as_secs()
                );
                self.stop = Some(Stop::Graceful(Instant::now() + self.config.mercy));
                self.kill_all(libc::SIGTERM);
            }
            libc::SIGQUIT => {
                info!("SIGQUIT: stopping now");
                self.stop = Some(Stop::Immediate);
                self.kill_all(libc::SIGKILL);
            }
            libc::SIGTTIN => {
                self.target += 1;
                info!("SIGTTIN: now {} worker(s)", self.target);
            }
            libc::SIGTTOU if self.target > 1 => {
                self.target -= 1;
                info!("SIGTTOU: now {} worker(s)", self.target);
            }
            libc::SIGHUP => {
                warn!("SIGHUP: graceful reload is not implemented in this version; ignoring");
            }
            _ => {}
        }
    }

    /// Collects every exited worker and logs how it died.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG on any child; status is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.swap_remove(index);
            let how = describe_exit(status);
            let expected = self.stop.is_some() || w.retiring;
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == WORKER_BOOT_ERROR && !w.ready
            {
                if !self.booted_once {
                    self.failure = Some(format!(
                        "worker {} could not load the application {} (the traceback is above); exiting",
                        w.id,
                        self.config.app.describe()
                    ));
                    self.stop = Some(Stop::Immediate);
                    self.kill_all(libc::SIGKILL);
                    continue;
                }
                error!("worker {} (pid {pid}) could not load the application", w.id);
            } else if expected {
                info!("worker {} (pid {pid}) {how}", w.id);
                continue;
            } else {
                warn!("worker {} (pid {pid}) {how}; starting a new one", w.id);
            }
            if w.started.elapsed() < Duration::from_secs(1) {
                self.quick_deaths += 1;
                let delay = Duration::from_millis(100 << self.quick_deaths.min(6));
                self.respawn_after = Some(Instant::now() + delay);
            }
        }
    }

    /// Brings the worker count back to the target. The first worker boots alone, so an
    /// application that cannot load fails once, with one traceback.
    fn manage(&mut self, py: Python<'_>) -> Option<Box<WorkerArgs>> {
        // Retire surplus workers (after SIGTTOU), highest slot first.
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.id > self.target && !w.retiring)
        {
            w.retiring = true;
            // SAFETY: sending a signal to a child we forked and have not reaped.
            unsafe { libc::kill(w.pid, libc::SIGTERM) };
        }
        if let Some(at) = self.respawn_after {
            if Instant::now() < at {
                return None;
            }
            self.respawn_after = None;
        }
        if !self.booted_once && !self.workers.is_empty() {
            return None; // wait for the first worker to come up
        }
        loop {
            let id = (1..=self.target).find(|id| self.workers.iter().all(|w| w.id != *id))?;
            match fork::spawn(py, &self.signals) {
                Ok(fork::Spawned::Parent { pid, ready_pipe }) => {
                    self.workers.push(Worker {
                        id,
                        pid,
                        ready_pipe: Some(ready_pipe),
                        ready: false,
                        started: Instant::now(),
                        retiring: false,
                    });
                }
                Ok(fork::Spawned::Child {
                    ready_pipe,
                    master_pid,
                }) => {
                    return Some(Box::new(WorkerArgs {
                        id,
                        ready_pipe,
                        config: self.config.clone(),
                        listeners: Vec::new(),
                        master_pid,
                    }));
                }
                Err(e) => {
                    error!("cannot fork worker {id}: {e}");
                    self.respawn_after = Some(Instant::now() + Duration::from_secs(1));
                    return None;
                }
            }
            if !self.booted_once {
                return None;
            }
        }
    }

    fn kill_all(&self, sig: libc::c_int) {
        for w in &self.workers {
            // SAFETY: sending a signal to a child we forked and have not reaped.
            unsafe { libc::kill(w.pid, sig) };
        }
    }
}

/// "exited with code 1", "was killed by SIGKILL", for log lines.
fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by {}", signals::name(libc::WTERMSIG(status)))
    } else {
        format!("stopped (status {status})")
    }
}
