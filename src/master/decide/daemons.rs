//! What becomes of attached daemons, as functions of what the master knows: how long to wait
//! before starting one that died, and what a pidfile check of a smart daemon means.

use std::time::Duration;

/// A daemon that dies sooner than this after it started counts toward its back-off.
pub(in crate::master) const QUICK_DEATH: Duration = Duration::from_secs(5);

/// The wait before restarting a daemon that died quickly for the `quick`-th time in a row:
/// 1 s, doubling, at most `max` (uWSGI grows it by about a second a restart, up to 5 minutes).
pub(in crate::master) fn backoff(quick: u32, max: Duration) -> Duration {
    if quick == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64 << (quick - 1).min(20)).min(max)
}

/// After a daemon's exit: its new count of quick deaths in a row, and the wait before it is
/// started again. A daemon asked to stop (to be restarted: a touch, a reload) starts again at
/// once; one that ran for [`QUICK_DEATH`] starts again at once and its count is reset.
pub(in crate::master) fn after_exit(
    quick: u32,
    lived: Duration,
    asked: bool,
    max: Duration,
) -> (u32, Duration) {
    if asked || lived >= QUICK_DEATH {
        return (0, Duration::ZERO);
    }
    let quick = quick.saturating_add(1);
    (quick, backoff(quick, max))
}

/// What follows an attached daemon's exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::master) enum DaemonExit {
    /// It is no longer in the configuration: forget it.
    Forget,
    /// It was told to stop for good (dragoman stops): it stays stopped.
    Stay,
    /// A control daemon died unasked: dragoman stops.
    Control,
    /// Start it again after `delay`; `quick` is its new count of quick deaths; `asked`: it
    /// was restarted on purpose (a touch, a reload), not found dead.
    Restart {
        quick: u32,
        delay: Duration,
        asked: bool,
    },
}

/// Judges an attached daemon's exit. `stopping`: it had been told to stop, to be restarted
/// (`Some(true)`: a touch, a reload) or not (`Some(false)`); `lived`: how long it ran.
pub(in crate::master) fn judge_exit(
    retired: bool,
    stopping: Option<bool>,
    control: bool,
    quick: u32,
    lived: Duration,
    max: Duration,
) -> DaemonExit {
    match stopping {
        _ if retired => DaemonExit::Forget,
        Some(false) => DaemonExit::Stay,
        None if control => DaemonExit::Control,
        _ => {
            let asked = stopping.is_some();
            let (quick, delay) = after_exit(quick, lived, asked, max);
            DaemonExit::Restart {
                quick,
                delay,
                asked,
            }
        }
    }
}

/// What a check of a smart daemon's pidfile (once a second) finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::master) enum Smart {
    /// The pidfile names a live process: the daemon runs (a new pid is adopted).
    Running(libc::pid_t),
    /// Not yet: the daemon was started moments ago and has not written its pidfile.
    Wait,
    /// The command it was started with is still running `freq` checks after its start and no
    /// pidfile names a live process: it does not detach, or does not write that pidfile.
    NotDaemonized,
    /// It was seen running and is gone, or it never showed up: start it again.
    Start,
}

/// Judges a smart daemon's pidfile check. `live`: the pid the pidfile names, if that process
/// lives; `seen`: the daemon was seen running (by its pidfile) since it was last started;
/// `launcher_running`: the command started then has not exited; `checks`: checks without a
/// live pid since then (this one included); `freq`: how many a new daemon is given.
pub(in crate::master) fn smart_check(
    live: Option<libc::pid_t>,
    seen: bool,
    launcher_running: bool,
    checks: u32,
    freq: u32,
) -> Smart {
    match live {
        Some(pid) => Smart::Running(pid),
        None if seen => Smart::Start,
        None if checks < freq => Smart::Wait,
        None if launcher_running => Smart::NotDaemonized,
        None => Smart::Start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn quick_deaths_back_off_doubling_up_to_the_maximum() {
        let secs = |q| backoff(q, MAX).as_secs();
        assert_eq!(
            (0..9).map(secs).collect::<Vec<_>>(),
            [0, 1, 2, 4, 8, 16, 32, 60, 60]
        );
        assert_eq!(backoff(3, Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(backoff(u32::MAX, MAX), MAX);
    }

    #[test]
    fn an_exit_is_judged_by_how_long_it_ran_and_whether_it_was_asked() {
        let ms = Duration::from_millis;
        assert_eq!(
            after_exit(0, ms(100), false, MAX),
            (1, Duration::from_secs(1))
        );
        assert_eq!(
            after_exit(1, ms(100), false, MAX),
            (2, Duration::from_secs(2))
        );
        assert_eq!(
            after_exit(2, ms(100), false, MAX),
            (3, Duration::from_secs(4))
        );
        // Up long enough: the count starts over.
        assert_eq!(after_exit(5, QUICK_DEATH, false, MAX), (0, Duration::ZERO));
        // Asked to stop (touch, reload): started again at once.
        assert_eq!(after_exit(5, ms(10), true, MAX), (0, Duration::ZERO));
    }

    #[test]
    fn an_exit_ends_in_a_restart_unless_asked_for_good_retired_or_a_control_daemon() {
        let ms = Duration::from_millis;
        assert_eq!(
            judge_exit(true, None, false, 0, ms(10), MAX),
            DaemonExit::Forget
        );
        assert_eq!(
            judge_exit(false, Some(false), true, 0, ms(10), MAX),
            DaemonExit::Stay
        );
        assert_eq!(
            judge_exit(false, None, true, 0, ms(10), MAX),
            DaemonExit::Control
        );
        // A control daemon restarted on purpose is no death.
        assert_eq!(
            judge_exit(false, Some(true), true, 3, ms(10), MAX),
            DaemonExit::Restart {
                quick: 0,
                delay: Duration::ZERO,
                asked: true
            }
        );
        assert_eq!(
            judge_exit(false, None, false, 1, ms(10), MAX),
            DaemonExit::Restart {
                quick: 2,
                delay: Duration::from_secs(2),
                asked: false
            }
        );
    }

    #[test]
    fn pidfile_checks_follow_uwsgi() {
        // Found running: adopt it, whatever else.
        assert_eq!(
            smart_check(Some(42), false, true, 1, 10),
            Smart::Running(42)
        );
        // Seen running, now gone: start it again.
        assert_eq!(smart_check(None, true, false, 1, 10), Smart::Start);
        // Just started: give it `freq` checks to write its pidfile.
        assert_eq!(smart_check(None, false, true, 3, 10), Smart::Wait);
        assert_eq!(smart_check(None, false, false, 9, 10), Smart::Wait);
        // Then: still in the foreground without a pidfile, or gone without one.
        assert_eq!(smart_check(None, false, true, 10, 10), Smart::NotDaemonized);
        assert_eq!(smart_check(None, false, false, 10, 10), Smart::Start);
    }
}
