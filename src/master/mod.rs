//! The master: forks the workers and supervises them, in the Python main thread, with no tokio
//! runtime and no threads (a runtime or thread in the parent would be broken in every child).
//!
//! The whole supervisor is `Arbiter::run`, one loop to read top to bottom, as in gunicorn's
//! arbiter: sleep until a signal, a worker event, a stats client or a child's output arrives
//! (or a deadline is due); handle the queued signals in order, then the worker events; reap
//! dead workers and other children; kill stuck workers (harakiri); recycle the ones that are
//! due; start the other children that are due (attached daemons, cron jobs, hooks); let
//! `cheaper` move the worker count; and finally bring the workers back to what they should
//! be. What to do at each step is decided by the functions of `decide.rs`, which know no
//! processes; the loop carries their answers out. Nothing in it waits for a child or a
//! client: the other children are started with fork and exec and heard of when reaped, and
//! their output is read from pipes in the same `poll`.
//!
//! Every replacement is graceful: the new worker is started first, and the old one is told to
//! stop only when the new one accepts connections. That one rule gives reloads (SIGHUP,
//! touch-reload), chain reloads, max-requests, max-worker-lifetime and reload-on-rss.

mod command;
mod crons;
pub(crate) mod daemonize;
mod daemons;
mod decide;
mod fork;
mod hooks;
pub(crate) mod nofile;
mod output;
pub(crate) mod pidfile;
pub(crate) mod privileges;
mod procname;
mod service;
pub(crate) mod signals;
pub(crate) mod stats;
pub(crate) mod systemd;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use crate::clock::monotonic_ms;
use crate::config::{self, Config, Loaded};
use crate::ipc::{Event, EventPipe, Role, WorkerArgs};
use crate::metrics::render::{self, Format};
use crate::metrics::sample::{ListenerSample, Restart, Scrape, Totals, WorkerSample};
use crate::metrics::server::MetricsServer;
use crate::net::Bound;
use crate::scoreboard::{Phase, Scoreboard};
use crate::{error, info, interp, warn};
use crons::Crons;
use daemons::Daemons;
use decide::cheaper::{Change, Limits, Spare};
use decide::{AfterBootFailure, CrashLoop, Exit, OnSignal, Step};
use hooks::Hooks;
use output::Outputs;
use procname::Role as Title;
use signals::SignalQueue;
use stats::{accept_queue, CoreView, StatsServer, WorkerView};
use systemd::Notifier;
use worker::{describe_exit, memory, Fate, Reason, Worker};

/// Between a harakiri's traceback request (SIGUSR2) and the kill.
const HARAKIRI_GRACE: Duration = Duration::from_millis(500);
/// After a failed fork, the next try waits this long.
const FORK_RETRY: Duration = Duration::from_secs(1);
/// How often `cheaper` looks at the load (uWSGI's master cycle).
const CHEAPER_CYCLE: Duration = Duration::from_secs(1);
/// On an immediate stop (SIGQUIT), how long attached daemons have to stop before SIGKILL.
const DAEMON_QUICK_STOP: Duration = Duration::from_secs(3);

/// Why the master is stopping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Graceful(Instant),
    Immediate,
}

/// What the master needs to re-read its configuration on SIGHUP.
pub(crate) struct Source {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
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
    /// The metrics listener (`metrics`), and the counters of the workers gone.
    metrics: Option<MetricsServer>,
    totals: Totals,
    started_unix: u64,
    notifier: Option<Notifier>,
    preloaded: Option<crate::bridge::Loaded>,
    workers: Vec<Worker>,
    /// How many workers there should be (SIGTTIN/SIGTTOU, `cheaper` and reloads change it).
    target: usize,
    /// `cheaper`: the spare algorithm's counters, and when it looks next.
    spare: Spare,
    next_cycle: Instant,
    generation: u32,
    /// A chain reload is in progress: replace one worker at a time.
    chain: bool,
    /// A reload is in progress (for systemd's READY after RELOADING).
    reloading: bool,
    /// The first READY went out (to systemd and the log).
    announced: bool,
    stop: Option<Stop>,
    /// SIGTERM with `shutdown-delay`: the health check fails, and the graceful stop begins at
    /// this time.
    stop_at: Option<Instant>,
    /// Whether any worker has ever loaded the app; until then a boot failure is fatal.
    booted_once: bool,
    /// Set when the master must exit non-zero.
    failure: Option<String>,
    crash_loop: CrashLoop,
    watched: Vec<Watched>,
    history: HashMap<usize, History>,
    /// The commands run beside the workers, and their output on its way to the log.
    daemons: Daemons,
    crons: Crons,
    hooks: Hooks,
    outputs: Outputs,
    /// The ACME certificate manager, with acme-domain.
    service: service::ServiceChild,
}

/// Everything the master starts with, besides the config.
pub(crate) struct Setup {
    pub(crate) source: Source,
    pub(crate) listeners: Vec<Bound>,
    pub(crate) stats: Option<StatsServer>,
    pub(crate) metrics: Option<MetricsServer>,
    pub(crate) notifier: Option<Notifier>,
    pub(crate) preloaded: Option<crate::bridge::Loaded>,
}

/// Runs the master until it stops; in a forked child, returns the worker's arguments instead.
pub(crate) fn run(py: Python<'_>, config: Config, setup: Setup) -> Role {
    let Setup {
        source,
        listeners,
        stats,
        metrics,
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
    let env = command::environment(interp::venv_bin(py, &config).as_deref());
    let daemons = Daemons::new(&config.daemons, env.clone(), config.mercy);
    let crons = Crons::new(&config.crons, env.clone());
    let hooks = Hooks::new(&config.hooks_master_start, env);
    let mut arbiter = Arbiter {
        source: &source,
        target: config
            .cheaper
            .as_ref()
            .map_or(config.processes, |c| c.initial),
        spare: Spare::default(),
        next_cycle: Instant::now() + CHEAPER_CYCLE,
        config,
        listeners: &listeners,
        board,
        events,
        signals,
        stats,
        metrics,
        totals: Totals::default(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        notifier,
        preloaded,
        workers: Vec::new(),
        generation: 0,
        chain: false,
        reloading: false,
        announced: false,
        stop: None,
        stop_at: None,
        booted_once: false,
        failure: None,
        crash_loop: CrashLoop::default(),
        watched,
        history: HashMap::new(),
        daemons,
        crons,
        hooks,
        outputs: Outputs::default(),
        service: service::ServiceChild::acme(),
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
    /// The supervisor loop.
    fn run(&mut self, py: Python<'_>) -> Role {
        self.name_process();
        info!(
            "master {} started: {} worker(s) x {} thread(s), app {}",
            std::process::id(),
            self.target,
            self.config.threads,
            self.config.describe_apps()
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
            if self.stop_at.is_some_and(|at| Instant::now() >= at) {
                self.stop_at = None;
                info!("shutdown-delay is over: stopping gracefully");
                self.stop_gracefully();
            }
            self.reap();
            if let Some(stop) = self.stop {
                let children_done = self.daemons.stopped(Instant::now());
                if self.workers.is_empty() && children_done {
                    break;
                }
                self.hurry_stop(stop);
                continue;
            }
            self.murder();
            self.recycle_due();
            self.kill_overdue_retirees();
            self.watch_files(py);
            crate::tls::tick(&self.config);
            self.run_children();
            self.crash_loop.settle(&self.workers, Instant::now());
            self.adapt_workers();
            self.service.supervise(py, &self.signals, &self.config);
            if let Some(args) = self.manage(py) {
                return Role::Worker(args);
            }
            self.report_ready();
        }
        self.outputs.serve_all();
        self.service.stop();
        self.notify("STOPPING=1");
        // log-master: what the workers wrote before they exited.
        crate::log::output::master_pump();
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

    /// Sleeps until a signal, a worker event or a stats client arrives, or a deadline is due;
    /// then serves the stats clients as far as they let it, without waiting for any.
    fn wait_for_events(&mut self) {
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
        if let Some(server) = &self.stats {
            server.poll_fds(&mut fds);
        }
        let metrics_from = fds.len();
        if let Some(server) = &self.metrics {
            server.poll_fds(&mut fds);
        }
        let outputs_from = fds.len();
        self.outputs.poll_fds(&mut fds);
        // log-master: the workers' lines (see log/output.rs).
        let logs_at = fds.len();
        fds.extend(
            crate::log::output::master_fds()
                .into_iter()
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        let stop = match self.stop {
            Some(Stop::Graceful(deadline)) => Some(deadline),
            _ => None,
        };
        let stats = self.stats.as_ref().and_then(StatsServer::deadline);
        let metrics = self.metrics.as_ref().and_then(MetricsServer::deadline);
        let deadlines = [
            self.crash_loop.deadline(),
            stop,
            self.stop_at,
            stats,
            metrics,
            self.daemons.deadline(),
            self.crons.deadline(Instant::now()),
            self.config.cheaper.as_ref().map(|_| self.next_cycle),
        ]
        .into_iter()
        .flatten();
        let timeout = decide::sleep_for(&self.workers, deadlines, Instant::now());
        // SAFETY: fds is a valid, initialised array of pollfd whose length we pass.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as libc::c_int,
            )
        };
        if n > 0 {
            self.outputs.serve(&fds[outputs_from..logs_at]);
        }
        if fds[logs_at..].iter().any(|p| p.revents != 0) {
            crate::log::output::master_pump();
        }
        let stats_ready = fds[2..metrics_from].iter().any(|p| p.revents != 0);
        let due = stats.is_some_and(|at| Instant::now() >= at);
        if (n > 0 && stats_ready) || due {
            if let Some(mut server) = self.stats.take() {
                server.serve(Instant::now(), || self.stats_document());
                self.stats = Some(server);
            }
        }
        let metrics_ready = fds[metrics_from..outputs_from]
            .iter()
            .any(|p| p.revents != 0);
        if (n > 0 && metrics_ready) || metrics.is_some_and(|at| Instant::now() >= at) {
            if let Some(mut server) = self.metrics.take() {
                server.serve(Instant::now(), |format| self.metrics_document(format));
                self.metrics = Some(server);
            }
        }
    }

    fn handle_signal(&mut self, py: Python<'_>, sig: libc::c_int) {
        let name = signals::name(sig);
        let running = self.stop.is_none();
        match decide::on_signal(sig, &self.config.hooks_master_start) {
            OnSignal::Nothing => {} // SIGCHLD: reap() runs after every wake-up
            OnSignal::GracefulStop if running => {
                self.board.server().set(Phase::Draining);
                let delay = decide::shutdown_delay(sig, self.config.shutdown_delay, self.stop_at);
                if let Some(delay) = delay {
                    let health = match self.config.health_check {
                        Some(_) => "the health check answers 503 from now on; ",
                        None => "",
                    };
                    info!(
                        "{name}: {health}stopping gracefully in {}s (shutdown-delay; SIGTERM \
                         again to stop now)",
                        delay.as_secs()
                    );
                    self.stop_at = Some(Instant::now() + delay);
                } else {
                    info!(
                        "{name}: stopping gracefully (up to {}s for requests in flight)",
                        self.config.mercy.as_secs()
                    );
                    self.stop_at = None;
                    self.stop_gracefully();
                }
            }
            OnSignal::ImmediateStop => {
                info!("{name}: stopping now");
                self.stop_now();
            }
            OnSignal::Reload if running => {
                info!("{name}: reloading gracefully");
                if self.config.logging.reopen {
                    crate::log::reopen("SIGHUP with log-reopen");
                }
                self.reload(py, false);
            }
            OnSignal::ReopenLogs => {
                crate::log::reopen(&name);
                self.signal_all(libc::SIGUSR1);
            }
            OnSignal::MoreWorkers if running => {
                self.target += 1;
                info!("{name}: now {} worker(s)", self.target);
            }
            OnSignal::FewerWorkers if running && self.target > 1 => {
                self.target -= 1;
                info!("{name}: now {} worker(s)", self.target);
            }
            _ => {}
        }
    }

    /// The other children: attached daemons due to start, cron jobs whose time has come, the
    /// next hook-master-start command. A failed hook stops dragoman.
    fn run_children(&mut self) {
        self.daemons.supervise(Instant::now(), &mut self.outputs);
        self.crons.supervise(&mut self.outputs);
        if let Err(why) = self.hooks.supervise(&mut self.outputs) {
            self.fail(why);
        }
    }

    /// Stops gracefully with an error: dragoman exits 1 once everything has stopped.
    fn fail(&mut self, why: String) {
        if self.stop.is_none() {
            error!("{why}");
            self.failure = Some(why);
            self.stop_gracefully();
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
                if let Some(old) = decide::replaced_by(&self.workers, slot) {
                    if let Fate::Replace { reason, .. } = self.workers[old].fate.clone() {
                        self.retire(old, reason);
                    }
                }
            }
            Event::Recycle => {
                let requests = self.board.slot(slot).requests.load(Ordering::Relaxed);
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

    /// Stops gracefully: workers finish their requests, daemons get their stop signal, all
    /// within worker-reload-mercy.
    fn stop_gracefully(&mut self) {
        self.board.server().set(Phase::Draining);
        self.notify("STOPPING=1");
        let deadline = Instant::now() + self.config.mercy;
        self.stop = Some(Stop::Graceful(deadline));
        self.signal_all(libc::SIGTERM);
        self.daemons.stop_all(deadline);
        self.crons.stop_all();
        self.hooks.stop();
    }

    /// Stops now: workers are killed, daemons get their stop signal and a few seconds.
    fn stop_now(&mut self) {
        self.board.server().set(Phase::Draining);
        self.notify("STOPPING=1");
        self.stop = Some(Stop::Immediate);
        self.signal_all(libc::SIGKILL);
        self.daemons
            .stop_all(Instant::now() + DAEMON_QUICK_STOP.min(self.config.mercy));
        self.crons.stop_all();
        self.hooks.stop();
    }

    /// While stopping: past the graceful deadline, the workers still busy are killed.
    fn hurry_stop(&mut self, stop: Stop) {
        let Stop::Graceful(deadline) = stop else {
            return;
        };
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
        let mut config = match config::load(&self.source.args, &self.source.env) {
            Ok(Loaded::Run(config)) => *config,
            Ok(_) => return,
            Err(e) => {
                error!("reload cancelled, the configuration has an error: {e}");
                return;
            }
        };
        let prepared = interp::prepare(py, &config)
            .and_then(|prepared| interp::set_import_paths(py, &config, &prepared));
        if let Err(e) = prepared {
            error!("reload cancelled: {e}");
            return;
        }
        if let Some(warning) = nofile::fit_connections(&mut config) {
            warn!("{warning}");
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
        crate::tls::reload(&config);
        self.service.restart();
        self.reloading = true;
        // With `cheaper`, the count it reached stands (within the new bounds).
        self.target = match &config.cheaper {
            Some(c) => self.target.clamp(c.min, config.processes),
            None => config.processes,
        };
        self.spare = Spare::default();
        let env = command::environment(interp::venv_bin(py, &config).as_deref());
        self.daemons
            .reload(&config.daemons, env.clone(), config.mercy);
        self.crons.reload(&config.crons, env);
        self.config = config;
        self.name_process();
        self.generation += 1;
        self.chain = chain;
        let reason = if chain {
            Reason::ChainReload
        } else {
            Reason::Reload
        };
        for (index, step) in decide::reload_plan(&self.workers, self.generation, self.target) {
            match step {
                Step::Replace => self.replace(index, reason.clone()),
                Step::Retire => self.retire(index, Reason::Scale),
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
            if self.service.reaped(pid, status) {
                continue;
            }
            let Some(index) = self.workers.iter().position(|w| w.pid == pid) else {
                self.child_exited(pid, status);
                continue;
            };
            let w = self.workers.swap_remove(index);
            self.board.slot(w.slot).pid.store(0, Ordering::Release);
            let how = describe_exit(status);
            let now = Instant::now();
            let exit = decide::judge_exit(&w, status, self.stop.is_some(), now);
            self.count_exit(&w, &exit);
            match exit {
                Exit::Stopping => info!("worker {} (pid {pid}) {how}", w.id),
                Exit::Retired(reason) => info!("worker {} (pid {pid}) {reason}: {how}", w.id),
                Exit::Harakiri => {
                    error!(
                        "worker {} (pid {pid}) killed by harakiri; starting a new one",
                        w.id
                    );
                    self.history.entry(w.id).or_default().respawns += 1;
                }
                Exit::BootFailure => self.boot_failed(&w),
                Exit::Died { quick } => {
                    warn!("worker {} (pid {pid}) {how}; starting a new one", w.id);
                    self.history.entry(w.id).or_default().respawns += 1;
                    if quick {
                        self.died_quickly(&how);
                    }
                }
            }
        }
    }

    /// A child that is no worker exited: a daemon, a cron job or a hook (a control daemon's
    /// death, or a failed hook, stops dragoman).
    fn child_exited(&mut self, pid: libc::pid_t, status: libc::c_int) {
        if let Some(death) = self.daemons.exited(pid, status, Instant::now()) {
            if let Some(why) = death {
                self.fail(why);
            }
            return;
        }
        if self.crons.exited(pid, status) {
            return;
        }
        if let Some(Err(why)) = self.hooks.exited(pid, status) {
            self.fail(why);
        }
    }

    /// A worker exited because the application would not load.
    fn boot_failed(&mut self, w: &Worker) {
        let verdict =
            decide::after_boot_failure(&self.workers, w, self.generation, self.booted_once);
        match verdict {
            AfterBootFailure::GiveUp => {
                self.failure = Some(format!(
                    "worker {} could not load the application {} (the traceback is above); exiting",
                    w.id,
                    self.config.describe_apps()
                ));
                self.stop_now();
            }
            AfterBootFailure::RollBack(rollback) => {
                // The new code does not load: keep the workers that run the old code.
                error!(
                    "reload failed: worker {} could not load the application (the traceback is above); \
                     the workers of the previous load keep serving",
                    w.id
                );
                for index in rollback.keep {
                    self.workers[index].fate = Fate::Serving;
                }
                let deadline = Instant::now() + self.config.mercy;
                for index in rollback.kill {
                    let o = &mut self.workers[index];
                    o.signal(libc::SIGKILL);
                    o.fate = Fate::Retire {
                        reason: Reason::ReloadFailed,
                        deadline,
                    };
                }
                self.generation -= 1;
                self.chain = false;
                self.reloading = false;
                self.notify("READY=1\nSTATUS=reload failed; serving the previous load");
            }
            AfterBootFailure::Retry => {
                error!(
                    "worker {} could not load the application (the traceback is above)",
                    w.id
                );
                self.died_quickly("could not load the application");
            }
        }
    }

    /// Counts a quick death and backs off; gives up when nothing serves any more.
    fn died_quickly(&mut self, how: &str) {
        let serving = self.workers.iter().any(|w| w.ready);
        if self.crash_loop.died_quickly(Instant::now(), serving) {
            self.failure = Some(format!(
                "workers keep dying right after they start ({} times in a row, the last one {how}); \
                 giving up",
                self.crash_loop.quick_deaths()
            ));
            self.stop_now();
        }
    }

    /// harakiri: a request past the limit gets its worker's threads' tracebacks logged
    /// (SIGUSR2 to the worker, which Python's faulthandler answers), then the worker killed.
    fn murder(&mut self) {
        let now = Instant::now();
        for index in decide::harakiri_due(&self.workers, now) {
            let w = &mut self.workers[index];
            w.signal(libc::SIGKILL);
            w.fate = Fate::Harakiri {
                deadline: now,
                killed: true,
            };
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
                    let ran_ms = decide::overran(core.started_ms()?, now_ms, limit_ms)?;
                    Some((ran_ms, core.line()))
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
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let w = &self.workers[index];
            let due = decide::recycle_reason(w, now, &self.config.recycle, || memory(w.pid).0);
            if let Some(reason) = due {
                self.replace(index, reason);
            }
        }
    }

    /// Retiring workers that outstay worker-reload-mercy are killed.
    fn kill_overdue_retirees(&mut self) {
        let now = Instant::now();
        for index in decide::overdue_retirees(&self.workers, now) {
            let w = &mut self.workers[index];
            if let Fate::Retire { reason, .. } = &w.fate {
                warn!(
                    "worker {} (pid {}) still busy after worker-reload-mercy ({}s) while {reason}: killing it",
                    w.id,
                    w.pid,
                    self.config.mercy.as_secs()
                );
            }
            w.signal(libc::SIGKILL);
            w.fate = Fate::Harakiri {
                deadline: now,
                killed: true,
            };
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

    /// `cheaper`: once a cycle (a second), the spare algorithm looks at how many workers are
    /// in a request and moves the target: more while all are busy, fewer while several idle.
    /// Not while starting, reloading or stopping.
    fn adapt_workers(&mut self) {
        let Some(cheaper) = self.config.cheaper.clone() else {
            return;
        };
        let now = Instant::now();
        if now < self.next_cycle {
            return;
        }
        self.next_cycle = now + CHEAPER_CYCLE;
        if !self.announced || self.reloading || self.stop.is_some() {
            return;
        }
        let holders: Vec<&Worker> = self.workers.iter().filter(|w| w.holds_position()).collect();
        let active = holders.len();
        let busy = holders.iter().filter(|w| self.busy(w)).count();
        let limits = Limits {
            min: cheaper.min,
            max: self.config.processes,
            step: cheaper.step,
            overload: u64::from(cheaper.overload),
        };
        match self.spare.cycle(active, busy, limits) {
            Change::Keep => {}
            Change::Add(n) => {
                let before = self.target;
                self.target = (self.target + n).min(self.config.processes).max(before);
                info!(
                    "cheaper: all {active} worker(s) busy for {}s: starting {} more ({} of {})",
                    cheaper.overload,
                    self.target - before,
                    self.target,
                    self.config.processes
                );
            }
            Change::Remove if self.target > cheaper.min => {
                self.target -= 1;
                info!(
                    "cheaper: {busy} of {active} worker(s) busy: stopping worker {} ({} left)",
                    self.target + 1,
                    self.target
                );
            }
            Change::Remove => {}
        }
    }

    /// Whether a thread of worker `w` is in a request (the scoreboard says).
    fn busy(&self, w: &Worker) -> bool {
        let slot = self.board.slot(w.slot);
        slot.cores[..self.config.threads.min(slot.cores.len())]
            .iter()
            .any(|core| core.started_ms().is_some())
    }

    /// Brings the workers back to what they should be: replacements for workers being replaced,
    /// a worker for every position up to the target, none beyond it.
    fn manage(&mut self, py: Python<'_>) -> Option<Box<WorkerArgs>> {
        for index in decide::beyond_target(&self.workers, self.target) {
            self.retire(index, Reason::Scale);
        }
        if !self.crash_loop.may_spawn(Instant::now())
            || !decide::may_spawn(self.booted_once, &self.workers)
        {
            return None;
        }
        while let Some(id) = decide::next_to_spawn(&self.workers, self.target, self.chain) {
            let slot = match self.fork_worker(py, id) {
                Ok(Ok(slot)) => slot,
                Ok(Err(args)) => return Some(args),
                Err(e) => {
                    error!("cannot fork worker {id}: {e}");
                    self.crash_loop.hold(Instant::now() + FORK_RETRY);
                    return None;
                }
            };
            if let Some(old) = decide::awaiting_replacement(&self.workers, id) {
                if let Fate::Replace { by, .. } = &mut self.workers[old].fate {
                    *by = Some(slot);
                }
            }
            if !decide::may_spawn(self.booted_once, &self.workers) {
                return None;
            }
        }
        None
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
                if let Some(title) = procname::title(&self.config.procname, Title::Worker(id)) {
                    procname::set(&title);
                }
                let board_slot = self.board.slot(slot);
                board_slot.reset(std::process::id() as i32);
                Ok(Err(Box::new(WorkerArgs {
                    id,
                    config: self.config.clone(),
                    listeners: Vec::new(),
                    slot: board_slot,
                    server: self.board.server(),
                    events: self.events.sender_for_child(slot),
                    preloaded: self.preloaded.as_ref().map(|loaded| loaded.clone_ref(py)),
                })))
            }
            fork::Spawned::Parent(pid) => {
                self.board.slot(slot).pid.store(pid, Ordering::Release);
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
        if !decide::all_up(&self.workers, self.target) {
            return;
        }
        // The health check answers 200 from now on (never again once stopping).
        self.board.server().set(Phase::Ready);
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

    /// The master's title (`auto-procname`, `procname*`), if any is asked for.
    fn name_process(&self) {
        if let Some(title) = procname::title(&self.config.procname, Title::Master) {
            procname::set(&title);
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
        self.service.signal(sig);
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

/// The master's part of the metrics (`metrics`): the scrape, and the totals a worker leaves.
impl Arbiter<'_> {
    /// The metrics exposition, from the scoreboard, the master's totals and the listeners.
    fn metrics_document(&self, format: Format) -> String {
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let traffic = &self.board.slot(w.slot).traffic;
                WorkerSample::of(w.id, w.pid, memory(w.pid).0, traffic)
            })
            .collect();
        let listeners = self
            .listeners
            .iter()
            .map(|b| {
                let (queue, max) = accept_queue(b);
                ListenerSample {
                    name: b.addr.to_string(),
                    queue,
                    max_queue: max.max(0) as u64,
                }
            })
            .collect();
        let scrape = Scrape {
            workers,
            listeners,
            totals: &self.totals,
            phase: self.board.server().phase(),
            started_unix: self.started_unix,
        };
        render::render(&scrape, format)
    }

    /// A worker exited: its counters join the totals (its slot is cleared for the next one),
    /// and a restart is counted by its reason.
    fn count_exit(&mut self, w: &Worker, exit: &Exit) {
        self.totals.retire(&self.board.slot(w.slot).traffic);
        if let Some(why) = restart_reason(exit) {
            self.totals.restarted(why);
        }
    }
}

/// Why a worker that exited is replaced, if it is: not when the master stops, nor when
/// fewer workers are wanted.
fn restart_reason(exit: &Exit) -> Option<Restart> {
    Some(match exit {
        Exit::Stopping => return None,
        Exit::Retired(reason) => match reason {
            Reason::Reload | Reason::ChainReload => Restart::Reload,
            Reason::MaxRequests(_) => Restart::MaxRequests,
            Reason::Lifetime(_) => Restart::Lifetime,
            Reason::Rss(_) => Restart::Rss,
            Reason::Scale | Reason::ReloadFailed => return None,
        },
        Exit::Harakiri => Restart::Harakiri,
        Exit::BootFailure | Exit::Died { .. } => Restart::Crash,
    })
}
