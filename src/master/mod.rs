//! The master: forks the workers and supervises them, in the Python main thread, with no tokio
//! runtime and no threads (a runtime or thread in the parent would be broken in every child).
//!
//! The whole supervisor is [`Arbiter::run`], one loop to read top to bottom, as in gunicorn's
//! arbiter: sleep until a signal, a worker event or a stats client arrives (or a second
//! passes); handle the queued signals in order, then the worker events; reap dead workers;
//! kill stuck ones (harakiri); recycle the ones that are due; and finally bring the workers
//! back to what they should be.
//!
//! Every replacement is graceful: the new worker is started first, and the old one is told to
//! stop only when the new one accepts connections. That one rule gives reloads (SIGHUP,
//! touch-reload), chain reloads, max-requests, max-worker-lifetime and reload-on-rss.

mod fork;
pub mod privileges;
pub mod signals;
pub mod stats;
pub mod systemd;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use crate::clock::monotonic_ms;
use crate::config::{self, Config, Loaded};
use crate::ipc::{Event, EventPipe, Role, WorkerArgs, WORKER_BOOT_ERROR};
use crate::net::Bound;
use crate::scoreboard::Scoreboard;
use crate::{error, info, interp, warn};
use signals::SignalQueue;
use stats::{CoreView, StatsServer, WorkerView};
use systemd::Notifier;

/// A worker that dies unasked sooner than this after it started counts toward a crash loop.
const QUICK_DEATH: Duration = Duration::from_secs(5);
/// That many quick deaths in a row, with no worker serving, and the master gives up.
const CRASH_LOOP_LIMIT: u32 = 8;
/// The longest wait between respawns while workers keep dying.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Between a harakiri's traceback request (SIGUSR2) and the kill.
const HARAKIRI_GRACE: Duration = Duration::from_millis(500);

/// Why a worker is replaced or stopped.
#[derive(Clone, Debug, PartialEq)]
enum Reason {
    Reload,
    ChainReload,
    MaxRequests(u64),
    Lifetime(Duration),
    Rss(u64),
    /// Fewer workers wanted (SIGTTOU, or a reload with fewer processes).
    Scale,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Reload => write!(f, "replaced by a reload"),
            Reason::ChainReload => write!(f, "replaced by a chain reload"),
            Reason::MaxRequests(n) => write!(f, "recycled after {n} requests (max-requests)"),
            Reason::Lifetime(d) => {
                write!(f, "recycled after {}s (max-worker-lifetime)", d.as_secs())
            }
            Reason::Rss(bytes) => write!(
                f,
                "recycled at {} MiB resident memory (reload-on-rss)",
                bytes / (1024 * 1024)
            ),
            Reason::Scale => write!(f, "stopped: fewer workers wanted"),
        }
    }
}

/// What is to become of a worker.
#[derive(Clone, Debug, PartialEq)]
enum Fate {
    Serving,
    /// A replacement is starting (in slot `by`, once forked); this worker serves until the
    /// replacement accepts connections.
    Replace {
        reason: Reason,
        by: Option<usize>,
    },
    /// Told to stop (SIGTERM): finishing its requests; killed at the deadline.
    Retire {
        reason: Reason,
        deadline: Instant,
    },
    /// A request ran past harakiri: its traceback was requested; killed at the deadline.
    Harakiri {
        deadline: Instant,
        killed: bool,
    },
}

/// One forked worker as the master sees it.
struct Worker {
    /// 1-based position, stable across respawns and reloads; shown in logs and stats.
    id: usize,
    /// Its scoreboard slot.
    slot: usize,
    pid: libc::pid_t,
    generation: u32,
    started: Instant,
    started_unix: u64,
    ready: bool,
    fate: Fate,
}

impl Worker {
    /// Sends `sig` to this worker. The pid is still this worker's: a worker stays in the
    /// master's list until `reap` has collected its exit status, and until then the kernel
    /// keeps the pid (a zombie at worst), so the signal cannot reach a recycled pid.
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) takes plain numbers (a pid we forked and have not reaped, a valid
        // signal); no memory is involved.
        unsafe { libc::kill(self.pid, sig) };
    }
}

/// Why the master is stopping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Graceful(Instant),
    Immediate,
}

/// What the master needs to re-read its configuration on SIGHUP.
pub struct Source {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Counters that outlive a worker: per position.
#[derive(Default, Clone, Copy)]
struct History {
    respawns: u64,
    harakiris: u64,
}

/// A file whose modification triggers a reload.
struct Watched {
    path: PathBuf,
    modified: Option<SystemTime>,
    chain: bool,
}

/// The supervisor's state.
struct Arbiter<'a> {
    source: &'a Source,
    config: Config,
    listeners: &'a [Bound],
    board: Scoreboard,
    events: EventPipe,
    signals: SignalQueue,
    stats: Option<StatsServer>,
    notifier: Option<Notifier>,
    preloaded: Option<Py<PyAny>>,
    workers: Vec<Worker>,
    /// How many workers there should be (SIGTTIN/SIGTTOU and reloads change it).
    target: usize,
    generation: u32,
    /// A chain reload is in progress: replace one worker at a time.
    chain: bool,
    /// A reload is in progress (for systemd's READY after RELOADING).
    reloading: bool,
    /// The first READY went out (to systemd and the log).
    announced: bool,
    stop: Option<Stop>,
    /// Whether any worker has ever loaded the app; until then a boot failure is fatal.
    booted_once: bool,
    /// Set when the master must exit non-zero.
    failure: Option<String>,
    /// Workers that died unasked soon after starting, in a row.
    quick_deaths: u32,
    spawn_after: Option<Instant>,
    watched: Vec<Watched>,
    history: HashMap<usize, History>,
}

/// Everything the master starts with, besides the config.
pub struct Setup {
    pub source: Source,
    pub listeners: Vec<Bound>,
    pub stats: Option<StatsServer>,
    pub notifier: Option<Notifier>,
    pub preloaded: Option<Py<PyAny>>,
}

/// Runs the master until it stops; in a forked child, returns the worker's arguments instead.
pub fn run(py: Python<'_>, config: Config, setup: Setup) -> Role {
    let Setup {
        source,
        listeners,
        stats,
        notifier,
        preloaded,
    } = setup;
    let (signals, events, board) =
        match (SignalQueue::install(), EventPipe::new(), Scoreboard::map()) {
            (Ok(s), Ok(e), Ok(b)) => (s, e, b),
            (s, e, b) => {
                let why = s.err().or(e.err()).or(b.err()).map(|e| e.to_string());
                error!("cannot set up the master: {}", why.unwrap_or_default());
                return Role::Master(1);
            }
        };
    let watched = watch_list(&config);
    let mut arbiter = Arbiter {
        source: &source,
        target: config.processes,
        config,
        listeners: &listeners,
        board,
        events,
        signals,
        stats,
        notifier,
        preloaded,
        workers: Vec::new(),
        generation: 0,
        chain: false,
        reloading: false,
        announced: false,
        stop: None,
        booted_once: false,
        failure: None,
        quick_deaths: 0,
        spawn_after: None,
        watched,
        history: HashMap::new(),
    };
    let role = arbiter.run(py);
    drop(arbiter);
    match role {
        Role::Worker(mut args) => {
            // The child owns the listeners now; the master's other state was dropped above.
            args.listeners = listeners;
            Role::Worker(args)
        }
        master => master,
    }
}

fn watch_list(config: &Config) -> Vec<Watched> {
    let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let plain = config.touch_reload.iter().map(|p| (p, false));
    let chain = config.touch_chain_reload.iter().map(|p| (p, true));
    plain
        .chain(chain)
        .map(|(path, chain)| Watched {
            path: path.clone(),
            modified: stamp(path),
            chain,
        })
        .collect()
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
            let (signals, dropped) = self.signals.take();
            if dropped > 0 {
                warn!("{dropped} signal(s) dropped: more arrived than the queue holds while the master was busy");
            }
            for sig in signals {
                self.handle_signal(py, sig);
            }
            for (slot, event) in self.events.drain() {
                self.handle_event(py, slot, event);
            }
            self.reap();
            if let Some(stop) = self.stop {
                if self.workers.is_empty() {
                    break;
                }
                if let Stop::Graceful(deadline) = stop {
                    if Instant::now() >= deadline {
                        warn!(
                            "{} worker(s) still busy after worker-reload-mercy ({}s): killing them",
                            self.workers.len(),
                            self.config.mercy.as_secs()
                        );
                        self.signal_all(libc::SIGKILL);
                        self.stop = Some(Stop::Immediate);
                    }
                }
                continue;
            }
            self.murder();
            self.recycle_due();
            self.kill_overdue_retirees();
            self.watch_files(py);
            self.track_crash_loop();
            if let Some(args) = self.manage(py) {
                return Role::Worker(args);
            }
            self.report_ready();
        }
        self.notify("STOPPING=1");
        match self.failure.take() {
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

    /// Sleeps until a signal, a worker event or a stats client arrives, or a timer is due.
    fn wait_for_events(&mut self) {
        let stats_fd = self.stats.as_ref().map(StatsServer::fd);
        let mut fds = vec![
            libc::pollfd {
                fd: self.signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.events.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Some(fd) = stats_fd {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: fds is a valid, initialised array of pollfd whose length we pass.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, self.tick()) };
        if n > 0 && fds.get(2).is_some_and(|p| p.revents != 0) {
            let doc = self.stats_document();
            if let Some(server) = &self.stats {
                server.serve(|| doc.clone());
            }
        }
    }

    /// How long to sleep: a second, less when a deadline is close.
    fn tick(&self) -> libc::c_int {
        let mut next = Instant::now() + Duration::from_secs(1);
        let deadlines = self.workers.iter().filter_map(|w| match w.fate {
            Fate::Harakiri { deadline, .. } | Fate::Retire { deadline, .. } => Some(deadline),
            _ => None,
        });
        for at in deadlines.chain(self.spawn_after) {
            next = next.min(at);
        }
        if let Some(Stop::Graceful(deadline)) = self.stop {
            next = next.min(deadline);
        }
        next.saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(10, 1000) as libc::c_int
    }

    fn handle_signal(&mut self, py: Python<'_>, sig: libc::c_int) {
        match sig {
            libc::SIGCHLD => {} // reap() runs after every wake-up
            libc::SIGTERM | libc::SIGINT if self.stop.is_none() => {
                info!(
                    "{}: stopping gracefully (up to {}s for requests in flight)",
                    signals::name(sig),
                    self.config.mercy.as_secs()
                );
                self.notify("STOPPING=1");
                self.stop = Some(Stop::Graceful(Instant::now() + self.config.mercy));
                self.signal_all(libc::SIGTERM);
            }
            libc::SIGQUIT => {
                info!("SIGQUIT: stopping now");
                self.notify("STOPPING=1");
                self.stop = Some(Stop::Immediate);
                self.signal_all(libc::SIGKILL);
            }
            libc::SIGHUP if self.stop.is_none() => {
                info!("SIGHUP: reloading gracefully");
                self.reload(py, false);
            }
            libc::SIGTTIN if self.stop.is_none() => {
                self.target += 1;
                info!("SIGTTIN: now {} worker(s)", self.target);
            }
            libc::SIGTTOU if self.stop.is_none() && self.target > 1 => {
                self.target -= 1;
                info!("SIGTTOU: now {} worker(s)", self.target);
            }
            _ => {}
        }
    }

    fn handle_event(&mut self, py: Python<'_>, slot: usize, event: Event) {
        let Some(index) = self.workers.iter().position(|w| w.slot == slot) else {
            return;
        };
        match event {
            Event::Ready => {
                let w = &mut self.workers[index];
                if w.ready {
                    return;
                }
                w.ready = true;
                self.booted_once = true;
                info!("worker {} (pid {}) ready", w.id, w.pid);
                // The worker it replaces may stop now.
                if let Some(old) = self.workers.iter().position(
                    |o| matches!(&o.fate, Fate::Replace { by: Some(s), .. } if *s == slot),
                ) {
                    let Fate::Replace { reason, .. } = self.workers[old].fate.clone() else {
                        return;
                    };
                    self.retire(old, reason);
                }
            }
            Event::Recycle => {
                let requests = self
                    .board
                    .slot(slot)
                    .requests
                    .load(std::sync::atomic::Ordering::Relaxed);
                self.replace(index, Reason::MaxRequests(requests));
            }
            Event::Reload if self.stop.is_none() => {
                let w = &self.workers[index];
                info!(
                    "worker {} (pid {}) saw a module change (py-autoreload): reloading gracefully",
                    w.id, w.pid
                );
                self.reload(py, false);
            }
            Event::Reload => {}
        }
    }

    /// Starts replacing a serving worker; it stops once its replacement is ready.
    fn replace(&mut self, index: usize, reason: Reason) {
        let w = &mut self.workers[index];
        if w.fate == Fate::Serving {
            w.fate = Fate::Replace { reason, by: None };
        }
    }

    /// Tells a worker to stop gracefully.
    fn retire(&mut self, index: usize, reason: Reason) {
        let deadline = Instant::now() + self.config.mercy;
        let w = &mut self.workers[index];
        w.signal(libc::SIGTERM);
        w.fate = Fate::Retire { reason, deadline };
    }

    /// A graceful reload: re-read the config, then replace every worker, all at once or (chain)
    /// one at a time. A config that does not load leaves everything as it is.
    fn reload(&mut self, py: Python<'_>, chain: bool) {
        let config = match config::load(&self.source.args, &self.source.env) {
            Ok(Loaded::Run(config)) => *config,
            Ok(_) => return,
            Err(e) => {
                error!("reload cancelled, the configuration has an error: {e}");
                return;
            }
        };
        if let Err(e) = interp::prepare(py, &config) {
            error!("reload cancelled: {e}");
            return;
        }
        if config.listeners != self.config.listeners {
            warn!("reload: the listen addresses changed; they take effect at the next restart");
        }
        if self.preloaded.is_some() {
            warn!("reload: with preload the application stays as the master loaded it; restart dragoman to load new code");
        }
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            monotonic_ms() * 1000
        ));
        self.reloading = true;
        self.target = config.processes;
        self.config = config;
        self.generation += 1;
        self.chain = chain;
        let reason = if chain {
            Reason::ChainReload
        } else {
            Reason::Reload
        };
        for index in 0..self.workers.len() {
            let w = &self.workers[index];
            if w.generation == self.generation || w.fate != Fate::Serving {
                continue;
            }
            if w.id <= self.target {
                self.replace(index, reason.clone());
            } else {
                self.retire(index, Reason::Scale);
            }
        }
    }

    /// Collects every exited worker, logs how it died, and decides what follows.
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
            self.board
                .slot(w.slot)
                .pid
                .store(0, std::sync::atomic::Ordering::Release);
            let how = describe_exit(status);
            let boot_failure = !w.ready
                && libc::WIFEXITED(status)
                && libc::WEXITSTATUS(status) == WORKER_BOOT_ERROR;
            match (&w.fate, self.stop) {
                (_, Some(_)) => info!("worker {} (pid {pid}) {how}", w.id),
                (Fate::Retire { reason, .. }, None) => {
                    info!("worker {} (pid {pid}) {reason}: {how}", w.id)
                }
                (Fate::Harakiri { .. }, None) => {
                    error!(
                        "worker {} (pid {pid}) killed by harakiri; starting a new one",
                        w.id
                    );
                    self.history.entry(w.id).or_default().respawns += 1;
                }
                (_, None) if boot_failure => self.boot_failed(&w),
                (_, None) => {
                    warn!("worker {} (pid {pid}) {how}; starting a new one", w.id);
                    self.history.entry(w.id).or_default().respawns += 1;
                    if w.started.elapsed() < QUICK_DEATH {
                        self.died_quickly(&how);
                    }
                }
            }
        }
    }

    /// A worker exited because the application would not load.
    fn boot_failed(&mut self, w: &Worker) {
        if !self.booted_once {
            self.failure = Some(format!(
                "worker {} could not load the application {} (the traceback is above); exiting",
                w.id,
                self.config.app.describe()
            ));
            self.stop = Some(Stop::Immediate);
            self.signal_all(libc::SIGKILL);
            return;
        }
        let older_serving = self.workers.iter().any(|o| {
            o.ready && o.generation < w.generation && !matches!(o.fate, Fate::Retire { .. })
        });
        if w.generation == self.generation && older_serving {
            // The new code does not load: keep the workers that run the old code.
            error!(
                "reload failed: worker {} could not load the application (the traceback is above); \
                 the workers of the previous load keep serving",
                w.id
            );
            for o in &mut self.workers {
                if matches!(o.fate, Fate::Replace { .. }) {
                    o.fate = Fate::Serving;
                }
                if o.generation == self.generation && !o.ready {
                    o.signal(libc::SIGKILL);
                }
            }
            self.generation -= 1;
            self.chain = false;
            self.reloading = false;
            self.notify("READY=1\nSTATUS=reload failed; serving the previous load");
            return;
        }
        error!(
            "worker {} could not load the application (the traceback is above)",
            w.id
        );
        self.died_quickly("could not load the application");
    }

    /// Counts a quick death and backs off; gives up when nothing serves any more.
    fn died_quickly(&mut self, how: &str) {
        self.quick_deaths += 1;
        let backoff = Duration::from_millis(100 << self.quick_deaths.min(5)).min(MAX_BACKOFF);
        self.spawn_after = Some(Instant::now() + backoff);
        let serving = self.workers.iter().any(|w| w.ready);
        if self.quick_deaths >= CRASH_LOOP_LIMIT && !serving {
            self.failure = Some(format!(
                "workers keep dying right after they start ({} times in a row, the last one {how}); \
                 giving up",
                self.quick_deaths
            ));
            self.stop = Some(Stop::Immediate);
            self.signal_all(libc::SIGKILL);
        }
    }

    /// A worker that has stayed up for a while ends a crash loop.
    fn track_crash_loop(&mut self) {
        if self.quick_deaths > 0
            && self
                .workers
                .iter()
                .any(|w| w.ready && w.started.elapsed() >= QUICK_DEATH)
        {
            self.quick_deaths = 0;
        }
    }

    /// harakiri: a request past the limit gets its worker's threads' tracebacks logged
    /// (SIGUSR2 to the worker, which Python's faulthandler answers), then the worker killed.
    fn murder(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if let Fate::Harakiri {
                deadline,
                killed: false,
            } = w.fate
            {
                if now >= deadline {
                    w.signal(libc::SIGKILL);
                    w.fate = Fate::Harakiri {
                        deadline,
                        killed: true,
                    };
                }
            }
        }
        let Some(limit) = self.config.harakiri else {
            return;
        };
        let now_ms = monotonic_ms();
        let limit_ms = limit.as_millis() as u64;
        let threads = self.config.threads;
        for w in &mut self.workers {
            if matches!(w.fate, Fate::Harakiri { .. }) {
                continue;
            }
            let slot = self.board.slot(w.slot);
            let stuck = slot.cores[..threads.min(slot.cores.len())]
                .iter()
                .find_map(|core| {
                    let started = core.started_ms()?;
                    (now_ms.saturating_sub(started) > limit_ms)
                        .then(|| (now_ms - started, core.line()))
                });
            let Some((ran_ms, line)) = stuck else {
                continue;
            };
            error!(
                "HARAKIRI: worker {} (pid {}) has been serving \"{line}\" for {}s (harakiri = {}s); \
                 the tracebacks of its threads follow, then it is killed",
                w.id,
                w.pid,
                ran_ms / 1000,
                limit.as_secs()
            );
            w.signal(libc::SIGUSR2);
            w.fate = Fate::Harakiri {
                deadline: now + HARAKIRI_GRACE,
                killed: false,
            };
            self.history.entry(w.id).or_default().harakiris += 1;
        }
    }

    /// max-worker-lifetime and reload-on-rss: replace workers that are due.
    fn recycle_due(&mut self) {
        let recycle = self.config.recycle.clone();
        for index in 0..self.workers.len() {
            let w = &self.workers[index];
            if w.fate != Fate::Serving || !w.ready {
                continue;
            }
            if let Some(max) = recycle.max_lifetime {
                if w.started.elapsed() >= max {
                    self.replace(index, Reason::Lifetime(max));
                    continue;
                }
            }
            if let Some(max) = recycle.max_rss {
                let (rss, _) = memory(w.pid);
                if rss > max {
                    self.replace(index, Reason::Rss(rss));
                }
            }
        }
    }

    /// Retiring workers that outstay worker-reload-mercy are killed.
    fn kill_overdue_retirees(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if let Fate::Retire { deadline, reason } = &w.fate {
                if now >= *deadline {
                    warn!(
                        "worker {} (pid {}) still busy after worker-reload-mercy ({}s) while {reason}: killing it",
                        w.id,
                        w.pid,
                        self.config.mercy.as_secs()
                    );
                    w.signal(libc::SIGKILL);
                    w.fate = Fate::Harakiri {
                        deadline: now,
                        killed: true,
                    };
                }
            }
        }
    }

    /// touch-reload and touch-chain-reload.
    fn watch_files(&mut self, py: Python<'_>) {
        let mut trigger = None;
        for watched in &mut self.watched {
            let now = std::fs::metadata(&watched.path)
                .and_then(|m| m.modified())
                .ok();
            if now.is_some() && now != watched.modified {
                watched.modified = now;
                trigger = Some((watched.path.clone(), watched.chain));
            }
        }
        if let Some((path, chain)) = trigger {
            let kind = if chain {
                "touch-chain-reload"
            } else {
                "touch-reload"
            };
            info!("{kind}: {} was touched; reloading", path.display());
            self.reload(py, chain);
        }
    }

    /// Brings the workers back to what they should be: replacements for workers being replaced,
    /// a worker for every position up to the target, none beyond it. The first worker boots
    /// alone, so an application that cannot load fails once, with one traceback.
    fn manage(&mut self, py: Python<'_>) -> Option<Box<WorkerArgs>> {
        // Positions beyond the target (SIGTTOU) stop.
        for index in 0..self.workers.len() {
            let w = &self.workers[index];
            if w.id > self.target && matches!(w.fate, Fate::Serving | Fate::Replace { .. }) {
                self.retire(index, Reason::Scale);
            }
        }
        if self.spawn_after.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        self.spawn_after = None;
        if !self.booted_once && !self.workers.is_empty() {
            return None;
        }
        loop {
            let id = self.next_to_spawn()?;
            let slot = match self.fork_worker(py, id) {
                Ok(Ok(spawned)) => spawned,
                Ok(Err(args)) => return Some(args),
                Err(e) => {
                    error!("cannot fork worker {id}: {e}");
                    self.spawn_after = Some(Instant::now() + Duration::from_secs(1));
                    return None;
                }
            };
            if let Some(old) = self
                .workers
                .iter_mut()
                .find(|o| o.id == id && matches!(o.fate, Fate::Replace { by: None, .. }))
            {
                if let Fate::Replace { by, .. } = &mut old.fate {
                    *by = Some(slot);
                }
            }
            if !self.booted_once {
                return None;
            }
        }
    }

    /// The position that needs a new worker next, if any: one whose worker is being replaced
    /// (in a chain reload, only when no other replacement is under way), or one with no worker.
    fn next_to_spawn(&self) -> Option<usize> {
        let replacing_busy = self.workers.iter().any(|w| {
            matches!(&w.fate, Fate::Replace { by: Some(_), .. })
                || matches!(
                    &w.fate,
                    Fate::Retire {
                        reason: Reason::ChainReload,
                        ..
                    }
                )
        });
        let wanting = self
            .workers
            .iter()
            .filter(|w| matches!(w.fate, Fate::Replace { by: None, .. }))
            .map(|w| w.id)
            .min();
        if let Some(id) = wanting {
            if !(self.chain && replacing_busy) {
                return Some(id);
            }
        }
        (1..=self.target).find(|id| {
            !self
                .workers
                .iter()
                .any(|w| w.id == *id && matches!(w.fate, Fate::Serving | Fate::Replace { .. }))
        })
    }

    /// Forks a worker for position `id`. In the master: Ok(Ok(its slot)); in the child:
    /// Ok(Err(the worker's arguments)).
    fn fork_worker(
        &mut self,
        py: Python<'_>,
        id: usize,
    ) -> std::io::Result<Result<usize, Box<WorkerArgs>>> {
        let in_use: Vec<usize> = self.workers.iter().map(|w| w.slot).collect();
        let slot = self
            .board
            .free_slot(|s| in_use.contains(&s))
            .ok_or_else(|| std::io::Error::other("no free scoreboard slot"))?;
        match fork::spawn(py, &self.signals)? {
            fork::Spawned::Child => {
                let board_slot = self.board.slot(slot);
                board_slot.reset(std::process::id() as i32);
                Ok(Err(Box::new(WorkerArgs {
                    id,
                    config: self.config.clone(),
                    listeners: Vec::new(),
                    slot: board_slot,
                    events: self.events.sender_for_child(slot),
                    preloaded: self.preloaded.as_ref().map(|app| app.clone_ref(py)),
                })))
            }
            fork::Spawned::Parent(pid) => {
                self.board
                    .slot(slot)
                    .pid
                    .store(pid, std::sync::atomic::Ordering::Release);
                self.workers.push(Worker {
                    id,
                    slot,
                    pid,
                    generation: self.generation,
                    started: Instant::now(),
                    started_unix: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    ready: false,
                    fate: Fate::Serving,
                });
                Ok(Ok(slot))
            }
        }
    }

    /// Tells systemd (and the log) when all workers are up after a start or a reload.
    fn report_ready(&mut self) {
        let all_up = self
            .workers
            .iter()
            .filter(|w| w.ready && w.fate == Fate::Serving)
            .count()
            >= self.target
            && self.workers.iter().all(|w| matches!(w.fate, Fate::Serving));
        if !all_up {
            return;
        }
        if self.reloading {
            info!("reload finished: {} worker(s) serving", self.target);
            self.reloading = false;
            self.chain = false;
            self.notify(&format!(
                "READY=1\nSTATUS=serving, {} worker(s)",
                self.target
            ));
        } else if !self.announced {
            self.announced = true;
            info!("all {} worker(s) ready", self.target);
            self.notify(&format!(
                "READY=1\nMAINPID={}\nSTATUS=serving, {} worker(s)",
                std::process::id(),
                self.target
            ));
        }
    }

    fn notify(&self, message: &str) {
        if let Some(notifier) = &self.notifier {
            if let Err(e) = notifier.send(message) {
                warn!("cannot notify systemd: {e}");
            }
        }
    }

    fn signal_all(&self, sig: libc::c_int) {
        for w in &self.workers {
            w.signal(sig);
        }
    }

    /// The stats document, in uWSGI's layout.
    fn stats_document(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut workers: Vec<&Worker> = self.workers.iter().collect();
        workers.sort_by_key(|w| (w.id, w.generation));
        let views: Vec<WorkerView> = workers
            .iter()
            .map(|w| {
                let slot = self.board.slot(w.slot);
                let cores: Vec<CoreView> = slot.cores[..self.config.threads.min(slot.cores.len())]
                    .iter()
                    .enumerate()
                    .map(|(id, c)| CoreView {
                        id,
                        requests: c.requests.load(Relaxed),
                        in_request: c.started_ms().is_some(),
                        request: if c.started_ms().is_some() {
                            c.line()
                        } else {
                            String::new()
                        },
                    })
                    .collect();
                let history = self.history.get(&w.id).copied().unwrap_or_default();
                let (rss, vsz) = memory(w.pid);
                WorkerView {
                    id: w.id,
                    pid: w.pid,
                    accepting: w.ready && matches!(w.fate, Fate::Serving | Fate::Replace { .. }),
                    requests: slot.requests.load(Relaxed),
                    exceptions: slot.exceptions.load(Relaxed),
                    busy: cores.iter().any(|c| c.in_request),
                    rss,
                    vsz,
                    running_time_us: slot.running_time_us.load(Relaxed),
                    avg_rt_us: slot.avg_rt_us.load(Relaxed),
                    tx: slot.tx.load(Relaxed),
                    last_spawn: w.started_unix,
                    respawn_count: history.respawns,
                    harakiri_count: history.harakiris,
                    cores,
                }
            })
            .collect();
        let sockets: Vec<(String, &'static str, u64, i32)> = self
            .listeners
            .iter()
            .map(|b| {
                let (queue, max) = stats::accept_queue(b);
                (b.addr.to_string(), "http", queue, max)
            })
            .collect();
        stats::render(&stats::Overview {
            pid: std::process::id(),
            listen_queue: sockets.iter().map(|s| s.2).sum(),
            sockets,
            workers: &views,
        })
    }
}

/// Resident and virtual memory of a process, in bytes (0 when unknown).
fn memory(pid: libc::pid_t) -> (u64, u64) {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return (0, 0);
    };
    let mut fields = statm
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (size, resident) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    (resident * page, size * page)
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
