//! The supervisor's decisions, as functions of what it knows: its workers, the target, the
//! generation, and the time (passed in, never read here). The loop in `mod.rs` gathers the
//! facts, asks, and carries the answer out (fork, signal, log), so every rule below is tested
//! without a process: what to spawn, what a worker's exit means, what a failed reload rolls
//! back, when workers are recycled or killed, and how a crash loop backs off.

pub(super) mod cheaper;
pub(super) mod cron;
pub(super) mod daemons;

use std::time::{Duration, Instant};

use super::worker::{Fate, Reason, Worker};
use crate::config::{Hook, Recycle, SignalAction};
use crate::ipc::WORKER_BOOT_ERROR;

/// A worker that dies unasked sooner than this after it started counts toward a crash loop.
pub(super) const QUICK_DEATH: Duration = Duration::from_secs(5);
/// That many quick deaths in a row, with no worker serving, and the master gives up.
pub(super) const CRASH_LOOP_LIMIT: u32 = 8;
/// The longest wait between respawns while workers keep dying.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The loop wakes at least this often (files to watch, workers to recycle).
const TICK: Duration = Duration::from_secs(1);
/// And never sooner than this after its last wake-up, whatever is due.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Whether workers may be forked now: the first worker boots alone, so an application that
/// cannot load fails once, with one traceback, rather than once per worker.
pub(super) fn may_spawn(booted_once: bool, workers: &[Worker]) -> bool {
    booted_once || workers.is_empty()
}

/// The position that needs a new worker next, if any: one whose worker is being replaced (in a
/// chain reload, only when no other replacement is under way), or one with no worker.
pub(super) fn next_to_spawn(workers: &[Worker], target: usize, chain: bool) -> Option<usize> {
    let replacing_busy = workers.iter().any(|w| {
        matches!(&w.fate, Fate::Replace { by: Some(_), .. })
            || matches!(
                &w.fate,
                Fate::Retire {
                    reason: Reason::ChainReload,
                    ..
                }
            )
    });
    let wanting = workers
        .iter()
        .filter(|w| matches!(w.fate, Fate::Replace { by: None, .. }))
        .map(|w| w.id)
        .min();
    if let Some(id) = wanting {
        if !(chain && replacing_busy) {
            return Some(id);
        }
    }
    (1..=target).find(|id| !workers.iter().any(|w| w.id == *id && w.holds_position()))
}

/// The worker at position `id` waiting for the replacement just forked, if any.
pub(super) fn awaiting_replacement(workers: &[Worker], id: usize) -> Option<usize> {
    workers
        .iter()
        .position(|w| w.id == id && matches!(w.fate, Fate::Replace { by: None, .. }))
}

/// The worker that the worker in `slot`, now ready, replaces: it may stop now.
pub(super) fn replaced_by(workers: &[Worker], slot: usize) -> Option<usize> {
    workers
        .iter()
        .position(|w| matches!(&w.fate, Fate::Replace { by: Some(s), .. } if *s == slot))
}

/// The workers at positions beyond the target (SIGTTOU, or a reload with fewer processes):
/// they stop.
pub(super) fn beyond_target(workers: &[Worker], target: usize) -> Vec<usize> {
    (0..workers.len())
        .filter(|&i| workers[i].id > target && workers[i].holds_position())
        .collect()
}

/// What a reload does to a worker of an older generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Replace it (the new worker first, then it stops).
    Replace,
    /// Stop it: its position is beyond the new target.
    Retire,
}

/// The reload that starts `generation` with `target` workers: what becomes of each serving
/// worker of an earlier generation (by index).
pub(super) fn reload_plan(
    workers: &[Worker],
    generation: u32,
    target: usize,
) -> Vec<(usize, Step)> {
    workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.generation != generation && w.fate == Fate::Serving)
        .map(|(i, w)| {
            (
                i,
                if w.id <= target {
                    Step::Replace
                } else {
                    Step::Retire
                },
            )
        })
        .collect()
}

/// What a worker's exit means.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Exit {
    /// The master is stopping: every exit is expected.
    Stopping,
    /// It was told to stop, for this reason.
    Retired(Reason),
    /// It was killed by harakiri: it is replaced.
    Harakiri,
    /// It could not load the application (and never served).
    BootFailure,
    /// It died unasked; `quick` when sooner than [`QUICK_DEATH`] after it started.
    Died { quick: bool },
}

/// Judges the exit of `w` with wait status `status`.
pub(super) fn judge_exit(w: &Worker, status: libc::c_int, stopping: bool, now: Instant) -> Exit {
    let boot_failure =
        !w.ready && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == WORKER_BOOT_ERROR;
    match &w.fate {
        _ if stopping => Exit::Stopping,
        Fate::Retire { reason, .. } => Exit::Retired(reason.clone()),
        Fate::Harakiri { .. } => Exit::Harakiri,
        _ if boot_failure => Exit::BootFailure,
        _ => Exit::Died {
            quick: now.saturating_duration_since(w.started) < QUICK_DEATH,
        },
    }
}

/// What follows a worker that could not load the application.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AfterBootFailure {
    /// No worker ever loaded it: the master stops with an error (one traceback, not a loop).
    GiveUp,
    /// A reload's code does not load while workers of the previous load serve: keep those.
    RollBack(Rollback),
    /// Start another one, after a back-off (a crash loop is counted).
    Retry,
}

/// Undoing a reload whose code does not load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Rollback {
    /// Workers being replaced: they serve on (by index).
    pub(crate) keep: Vec<usize>,
    /// Workers of the failed load still starting: they are killed (by index).
    pub(crate) kill: Vec<usize>,
}

/// Decides what follows `failed`'s boot failure (`failed` is no longer in `workers`).
pub(super) fn after_boot_failure(
    workers: &[Worker],
    failed: &Worker,
    generation: u32,
    booted_once: bool,
) -> AfterBootFailure {
    if !booted_once {
        return AfterBootFailure::GiveUp;
    }
    let older_serving = workers.iter().any(|o| {
        o.ready && o.generation < failed.generation && !matches!(o.fate, Fate::Retire { .. })
    });
    if failed.generation != generation || !older_serving {
        return AfterBootFailure::Retry;
    }
    let indices = |f: fn(&Worker, u32) -> bool| {
        (0..workers.len())
            .filter(|&i| f(&workers[i], generation))
            .collect()
    };
    AfterBootFailure::RollBack(Rollback {
        keep: indices(|o, _| matches!(o.fate, Fate::Replace { .. })),
        kill: indices(|o, generation| o.generation == generation && !o.ready),
    })
}

/// How long to wait before the next worker after `quick_deaths` quick deaths in a row:
/// 200 ms, doubling, at most [`MAX_BACKOFF`].
pub(super) fn backoff(quick_deaths: u32) -> Duration {
    Duration::from_millis(100 << quick_deaths.min(5)).min(MAX_BACKOFF)
}

/// Crash-loop accounting: quick deaths in a row, and until when spawning waits.
#[derive(Debug, Default)]
pub(super) struct CrashLoop {
    quick_deaths: u32,
    spawn_after: Option<Instant>,
}

impl CrashLoop {
    /// Counts a quick death and backs off. True when the master should give up: the limit
    /// reached and no worker serving.
    pub(crate) fn died_quickly(&mut self, now: Instant, serving: bool) -> bool {
        self.quick_deaths += 1;
        self.spawn_after = Some(now + backoff(self.quick_deaths));
        self.quick_deaths >= CRASH_LOOP_LIMIT && !serving
    }

    /// Holds spawning until `until` (a fork failed).
    pub(crate) fn hold(&mut self, until: Instant) {
        self.spawn_after = Some(until);
    }

    /// Whether the back-off is over (and forgets it when it is).
    pub(crate) fn may_spawn(&mut self, now: Instant) -> bool {
        if self.spawn_after.is_some_and(|at| now < at) {
            return false;
        }
        self.spawn_after = None;
        true
    }

    /// A worker that has served [`QUICK_DEATH`] ends the count.
    pub(crate) fn settle(&mut self, workers: &[Worker], now: Instant) {
        if workers
            .iter()
            .any(|w| w.ready && now.saturating_duration_since(w.started) >= QUICK_DEATH)
        {
            self.quick_deaths = 0;
        }
    }

    pub(crate) fn quick_deaths(&self) -> u32 {
        self.quick_deaths
    }

    /// When spawning may resume, if it waits.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.spawn_after
    }
}

/// Why a serving, ready worker is due to be recycled, if it is: max-worker-lifetime first,
/// then reload-on-rss (`rss` is read only when that limit is set).
pub(super) fn recycle_reason(
    w: &Worker,
    now: Instant,
    recycle: &Recycle,
    rss: impl FnOnce() -> u64,
) -> Option<Reason> {
    if w.fate != Fate::Serving || !w.ready {
        return None;
    }
    if let Some(max) = recycle.max_lifetime {
        if now.saturating_duration_since(w.started) >= max {
            return Some(Reason::Lifetime(max));
        }
    }
    let max = recycle.max_rss?;
    let rss = rss();
    (rss > max).then_some(Reason::Rss(rss))
}

/// How long the request started at `started_ms` has run past `limit_ms` at `now_ms`, if it has
/// (all CLOCK_MONOTONIC milliseconds, as the scoreboard keeps them).
pub(super) fn overran(started_ms: u64, now_ms: u64, limit_ms: u64) -> Option<u64> {
    let ran = now_ms.saturating_sub(started_ms);
    (ran > limit_ms).then_some(ran)
}

/// Workers whose harakiri grace is over and who are not killed yet.
pub(super) fn harakiri_due(workers: &[Worker], now: Instant) -> Vec<usize> {
    (0..workers.len())
        .filter(|&i| {
            matches!(workers[i].fate, Fate::Harakiri { deadline, killed: false } if now >= deadline)
        })
        .collect()
}

/// Retiring workers past their deadline (worker-reload-mercy): they are killed.
pub(super) fn overdue_retirees(workers: &[Worker], now: Instant) -> Vec<usize> {
    (0..workers.len())
        .filter(|&i| matches!(workers[i].fate, Fate::Retire { deadline, .. } if now >= deadline))
        .collect()
}

/// Whether all `target` workers serve, ready, with no replacement or retirement under way
/// (after a start or a reload: READY for systemd).
pub(super) fn all_up(workers: &[Worker], target: usize) -> bool {
    workers
        .iter()
        .filter(|w| w.ready && w.fate == Fate::Serving)
        .count()
        >= target
        && workers.iter().all(|w| w.fate == Fate::Serving)
}

/// How long the loop may sleep: until the nearest deadline (a harakiri kill, a retirement, the
/// back-off, the graceful stop, a stats client), at most [`TICK`], at least [`MIN_TICK`].
pub(super) fn sleep_for(
    workers: &[Worker],
    deadlines: impl IntoIterator<Item = Instant>,
    now: Instant,
) -> Duration {
    let fates = workers.iter().filter_map(|w| match w.fate {
        Fate::Harakiri { deadline, .. } | Fate::Retire { deadline, .. } => Some(deadline),
        _ => None,
    });
    let next = fates.chain(deadlines).fold(now + TICK, Instant::min);
    next.saturating_duration_since(now).clamp(MIN_TICK, TICK)
}

/// What the master does on a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnSignal {
    GracefulStop,
    ImmediateStop,
    Reload,
    MoreWorkers,
    FewerWorkers,
    /// SIGUSR1: reopen the log files (after logrotate renamed them), in every process.
    ReopenLogs,
    /// SIGCHLD: nothing but the wake-up (the loop reaps at every one).
    Nothing,
}

/// What signal `sig` does: dragoman's default (SIGTERM and SIGINT stop gracefully, SIGQUIT
/// now, SIGHUP reloads, SIGTTIN/SIGTTOU add or remove a worker), unless a
/// `hook-master-start = unix_signal:N FUNCTION` line says otherwise (the last one wins).
pub(super) fn on_signal(sig: libc::c_int, hooks: &[Hook]) -> OnSignal {
    let remapped = hooks.iter().rev().find_map(|h| match h {
        Hook::Signal { signal, action } if *signal == sig => Some(*action),
        _ => None,
    });
    match remapped {
        Some(SignalAction::GracefulStop) => return OnSignal::GracefulStop,
        Some(SignalAction::ImmediateStop) => return OnSignal::ImmediateStop,
        Some(SignalAction::Reload) => return OnSignal::Reload,
        None => {}
    }
    match sig {
        libc::SIGTERM | libc::SIGINT => OnSignal::GracefulStop,
        libc::SIGQUIT => OnSignal::ImmediateStop,
        libc::SIGHUP => OnSignal::Reload,
        libc::SIGTTIN => OnSignal::MoreWorkers,
        libc::SIGTTOU => OnSignal::FewerWorkers,
        libc::SIGUSR1 => OnSignal::ReopenLogs,
        _ => OnSignal::Nothing,
    }
}

/// SIGTERM with a `shutdown-delay` (and no delay running yet): how long to keep serving with
/// the health check failing before the graceful stop. `None`: stop now (SIGINT is a person at
/// a terminal; a second SIGTERM is someone who will not wait).
pub(super) fn shutdown_delay(
    sig: libc::c_int,
    delay: Duration,
    running: Option<Instant>,
) -> Option<Duration> {
    (sig == libc::SIGTERM && !delay.is_zero() && running.is_none()).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_sigterm_waits_for_the_shutdown_delay() {
        let five = Duration::from_secs(5);
        assert_eq!(shutdown_delay(libc::SIGTERM, five, None), Some(five));
        assert_eq!(shutdown_delay(libc::SIGINT, five, None), None);
        assert_eq!(shutdown_delay(libc::SIGTERM, Duration::ZERO, None), None);
        assert_eq!(
            shutdown_delay(libc::SIGTERM, five, Some(Instant::now())),
            None
        );
    }

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    /// A ready, serving worker at position `id` in slot `id`, started at `started`.
    fn worker(id: usize, generation: u32, started: Instant) -> Worker {
        Worker {
            id,
            slot: id,
            pid: 1000 + id as i32,
            generation,
            started,
            started_unix: 0,
            ready: true,
            fate: Fate::Serving,
        }
    }

    fn with(mut w: Worker, fate: Fate) -> Worker {
        w.fate = fate;
        w
    }

    fn replace(by: Option<usize>) -> Fate {
        Fate::Replace {
            reason: Reason::Reload,
            by,
        }
    }

    fn exited(code: i32) -> libc::c_int {
        (code & 0xff) << 8
    }

    #[test]
    fn the_first_worker_boots_alone() {
        let now = Instant::now();
        assert!(may_spawn(false, &[]));
        assert!(!may_spawn(false, &[worker(1, 0, now)]));
        assert!(may_spawn(true, &[worker(1, 0, now)]));
    }

    #[test]
    fn empty_positions_are_filled_in_order() {
        let now = Instant::now();
        assert_eq!(next_to_spawn(&[], 3, false), Some(1));
        let ws = [worker(1, 0, now), worker(3, 0, now)];
        assert_eq!(next_to_spawn(&ws, 3, false), Some(2));
        let ws = [worker(1, 0, now), worker(2, 0, now), worker(3, 0, now)];
        assert_eq!(next_to_spawn(&ws, 3, false), None);
        // A retiring worker does not hold its position.
        let retiring = Fate::Retire {
            reason: Reason::Scale,
            deadline: now,
        };
        let ws = [with(worker(1, 0, now), retiring)];
        assert_eq!(next_to_spawn(&ws, 1, false), Some(1));
    }

    #[test]
    fn replacements_come_first_and_one_at_a_time_in_a_chain() {
        let now = Instant::now();
        let ws = [
            with(worker(1, 0, now), replace(None)),
            with(worker(2, 0, now), replace(None)),
        ];
        assert_eq!(next_to_spawn(&ws, 3, false), Some(1));
        assert_eq!(next_to_spawn(&ws, 3, true), Some(1));
        // Worker 1's replacement is starting: a plain reload starts 2 at once, a chain waits.
        let ws = [
            with(worker(1, 0, now), replace(Some(9))),
            with(worker(2, 0, now), replace(None)),
            worker(3, 0, now),
        ];
        assert_eq!(next_to_spawn(&ws, 3, false), Some(2));
        assert_eq!(next_to_spawn(&ws, 3, true), None);
        // Also while the replaced one finishes its requests.
        let chain_retiring = Fate::Retire {
            reason: Reason::ChainReload,
            deadline: now,
        };
        let ws = [
            with(worker(1, 0, now), chain_retiring),
            worker(1, 1, now),
            with(worker(2, 0, now), replace(None)),
        ];
        assert_eq!(next_to_spawn(&ws, 2, true), None);
    }

    #[test]
    fn a_ready_worker_releases_the_one_it_replaces() {
        let now = Instant::now();
        let ws = [
            with(worker(1, 0, now), replace(Some(7))),
            with(worker(2, 0, now), replace(None)),
        ];
        assert_eq!(replaced_by(&ws, 7), Some(0));
        assert_eq!(replaced_by(&ws, 8), None);
        assert_eq!(awaiting_replacement(&ws, 2), Some(1));
        assert_eq!(awaiting_replacement(&ws, 1), None);
    }

    #[test]
    fn fewer_workers_wanted_retires_the_highest_positions() {
        let now = Instant::now();
        let ws = [
            worker(1, 0, now),
            with(worker(2, 0, now), replace(None)),
            worker(3, 0, now),
        ];
        assert_eq!(beyond_target(&ws, 1), vec![1, 2]);
        assert_eq!(beyond_target(&ws, 3), Vec::<usize>::new());
    }

    #[test]
    fn a_reload_replaces_the_serving_workers_and_retires_the_surplus() {
        let now = Instant::now();
        let retiring = Fate::Retire {
            reason: Reason::Scale,
            deadline: now,
        };
        let ws = [
            worker(1, 0, now),
            worker(2, 0, now),
            worker(3, 0, now),
            with(worker(4, 0, now), retiring),
            worker(1, 1, now), // already of the new generation
        ];
        assert_eq!(
            reload_plan(&ws, 1, 2),
            vec![(0, Step::Replace), (1, Step::Replace), (2, Step::Retire)]
        );
    }

    #[test]
    fn exits_are_judged_by_fate_then_by_how() {
        let t0 = Instant::now();
        let w = worker(1, 0, t0);
        let booting = Worker {
            ready: false,
            ..w.clone()
        };
        let later = at(t0, 10);
        assert_eq!(judge_exit(&w, exited(1), true, later), Exit::Stopping);
        let retiring = Fate::Retire {
            reason: Reason::MaxRequests(5),
            deadline: later,
        };
        assert_eq!(
            judge_exit(&with(w.clone(), retiring), exited(0), false, later),
            Exit::Retired(Reason::MaxRequests(5))
        );
        let harakiri = Fate::Harakiri {
            deadline: later,
            killed: true,
        };
        assert_eq!(
            judge_exit(&with(w.clone(), harakiri), libc::SIGKILL, false, later),
            Exit::Harakiri
        );
        assert_eq!(
            judge_exit(&booting, exited(WORKER_BOOT_ERROR), false, t0),
            Exit::BootFailure
        );
        // The same code from a worker that served is a plain death.
        assert_eq!(
            judge_exit(&w, exited(WORKER_BOOT_ERROR), false, later),
            Exit::Died { quick: false }
        );
        assert_eq!(
            judge_exit(&w, libc::SIGSEGV, false, at(t0, 1)),
            Exit::Died { quick: true }
        );
    }

    #[test]
    fn a_boot_failure_gives_up_rolls_back_or_retries() {
        let t0 = Instant::now();
        let new = |id| Worker {
            ready: false,
            ..worker(id, 1, t0)
        };
        // Never booted: give up.
        assert_eq!(
            after_boot_failure(&[], &new(1), 0, false),
            AfterBootFailure::GiveUp
        );
        // A reload whose code does not load: the old workers keep serving, the new ones go.
        let ws = [
            with(worker(1, 0, t0), replace(Some(11))),
            with(worker(2, 0, t0), replace(None)),
            new(2),
            worker(3, 1, t0), // of the new load, already ready: it stays
        ];
        assert_eq!(
            after_boot_failure(&ws, &new(1), 1, true),
            AfterBootFailure::RollBack(Rollback {
                keep: vec![0, 1],
                kill: vec![2],
            })
        );
        // No older worker serving (they are all retiring): retry.
        let retiring = Fate::Retire {
            reason: Reason::Reload,
            deadline: t0,
        };
        let ws = [with(worker(1, 0, t0), retiring)];
        assert_eq!(
            after_boot_failure(&ws, &new(1), 1, true),
            AfterBootFailure::Retry
        );
        // A respawn (not a reload) that fails: retry with a back-off.
        let ws = [worker(2, 1, t0)];
        assert_eq!(
            after_boot_failure(&ws, &new(1), 1, true),
            AfterBootFailure::Retry
        );
    }

    #[test]
    fn a_crash_loop_backs_off_then_gives_up_only_with_nothing_serving() {
        let t0 = Instant::now();
        assert_eq!(
            (1..=7).map(backoff).collect::<Vec<_>>(),
            [200, 400, 800, 1600, 2000, 2000, 2000].map(Duration::from_millis)
        );
        let mut crash = CrashLoop::default();
        assert!(crash.may_spawn(t0));
        for n in 1..CRASH_LOOP_LIMIT {
            assert!(!crash.died_quickly(t0, false), "gave up after {n}");
        }
        assert!(!crash.may_spawn(t0));
        assert!(crash.may_spawn(t0 + MAX_BACKOFF));
        assert_eq!(crash.deadline(), None);
        // The limit with a worker still serving: keep trying.
        let mut serving = CrashLoop {
            quick_deaths: CRASH_LOOP_LIMIT - 1,
            spawn_after: None,
        };
        assert!(!serving.died_quickly(t0, true));
        assert!(crash.died_quickly(t0, false));
        // A worker up for QUICK_DEATH ends the count; one up for less does not.
        crash.settle(&[worker(1, 0, t0)], at(t0, 4));
        assert_eq!(crash.quick_deaths(), CRASH_LOOP_LIMIT);
        crash.settle(&[worker(1, 0, t0)], at(t0, 5));
        assert_eq!(crash.quick_deaths(), 0);
    }

    #[test]
    fn recycling_by_lifetime_then_by_memory() {
        let t0 = Instant::now();
        let recycle = Recycle {
            max_lifetime: Some(Duration::from_secs(60)),
            max_rss: Some(100),
            ..Recycle::default()
        };
        let w = worker(1, 0, t0);
        assert_eq!(recycle_reason(&w, at(t0, 10), &recycle, || 50), None);
        assert_eq!(
            recycle_reason(&w, at(t0, 10), &recycle, || 150),
            Some(Reason::Rss(150))
        );
        assert_eq!(
            recycle_reason(&w, at(t0, 60), &recycle, || 150),
            Some(Reason::Lifetime(Duration::from_secs(60)))
        );
        // Memory is not read without reload-on-rss; a worker not serving is left alone.
        let lifetime_only = Recycle {
            max_rss: None,
            ..recycle.clone()
        };
        assert_eq!(
            recycle_reason(&w, at(t0, 1), &lifetime_only, || unreachable!()),
            None
        );
        let replacing = with(w, replace(None));
        assert_eq!(
            recycle_reason(&replacing, at(t0, 99), &recycle, || 999),
            None
        );
    }

    #[test]
    fn harakiri_and_mercy_deadlines() {
        let t0 = Instant::now();
        assert_eq!(overran(1_000, 31_001, 30_000), Some(30_001));
        assert_eq!(overran(1_000, 31_000, 30_000), None);
        assert_eq!(overran(5_000, 1_000, 30_000), None); // a clock read before the start
        let ws = [
            with(
                worker(1, 0, t0),
                Fate::Harakiri {
                    deadline: at(t0, 1),
                    killed: false,
                },
            ),
            with(
                worker(2, 0, t0),
                Fate::Harakiri {
                    deadline: at(t0, 1),
                    killed: true,
                },
            ),
            with(
                worker(3, 0, t0),
                Fate::Retire {
                    reason: Reason::Reload,
                    deadline: at(t0, 2),
                },
            ),
        ];
        assert_eq!(harakiri_due(&ws, t0), Vec::<usize>::new());
        assert_eq!(harakiri_due(&ws, at(t0, 1)), vec![0]);
        assert_eq!(overdue_retirees(&ws, at(t0, 1)), Vec::<usize>::new());
        assert_eq!(overdue_retirees(&ws, at(t0, 2)), vec![2]);
        // The loop sleeps until the nearest deadline, within its bounds.
        assert_eq!(sleep_for(&ws, [], t0), TICK);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(sleep_for(&ws, [soon], t0), Duration::from_millis(300));
        assert_eq!(sleep_for(&ws, [t0], t0), MIN_TICK);
        assert_eq!(sleep_for(&ws, [], at(t0, 2)), MIN_TICK);
    }

    #[test]
    fn signals_do_their_default_unless_a_unix_signal_hook_remaps_them() {
        assert_eq!(on_signal(libc::SIGTERM, &[]), OnSignal::GracefulStop);
        assert_eq!(on_signal(libc::SIGQUIT, &[]), OnSignal::ImmediateStop);
        assert_eq!(on_signal(libc::SIGHUP, &[]), OnSignal::Reload);
        assert_eq!(on_signal(libc::SIGTTOU, &[]), OnSignal::FewerWorkers);
        assert_eq!(on_signal(libc::SIGCHLD, &[]), OnSignal::Nothing);
        let hooks = [
            Hook::Exec {
                command: "true".into(),
                fatal: true,
            },
            Hook::Signal {
                signal: libc::SIGQUIT,
                action: SignalAction::Reload,
            },
            Hook::Signal {
                signal: libc::SIGQUIT,
                action: SignalAction::GracefulStop,
            },
            Hook::Signal {
                signal: libc::SIGTERM,
                action: SignalAction::ImmediateStop,
            },
        ];
        assert_eq!(on_signal(libc::SIGQUIT, &hooks), OnSignal::GracefulStop);
        assert_eq!(on_signal(libc::SIGTERM, &hooks), OnSignal::ImmediateStop);
        assert_eq!(on_signal(libc::SIGINT, &hooks), OnSignal::GracefulStop);
    }

    #[test]
    fn ready_only_when_every_position_serves_and_nothing_is_replaced() {
        let t0 = Instant::now();
        let ws = [worker(1, 0, t0), worker(2, 0, t0)];
        assert!(all_up(&ws, 2));
        assert!(!all_up(&ws, 3));
        let starting = Worker {
            ready: false,
            ..worker(2, 1, t0)
        };
        assert!(!all_up(&[worker(1, 0, t0), starting], 2));
        let ws = [with(worker(1, 0, t0), replace(Some(3))), worker(2, 0, t0)];
        assert!(!all_up(&ws, 1));
    }
}
