//! When a cron job runs, as uWSGI decides it (`uwsgi_cron_task_needs_execution` and
//! `uwsgi_manage_command_cron` in its core): the local time matches the five fields, no run
//! started in the last 60 seconds, and, for `unique-cron`, the previous run is over.

use crate::config::Cron;

/// The parts of the local time a cron line looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::master) struct LocalTime {
    pub(crate) minute: i32,
    pub(crate) hour: i32,
    /// Day of the month, 1-31.
    pub(crate) day: i32,
    /// 1-12.
    pub(crate) month: i32,
    /// 0 (Sunday) - 6.
    pub(crate) weekday: i32,
}

/// Whether the fields match `t`. A field of -1 matches anything; -N matches values that are a
/// multiple of N (minutes 0, 15, 30, 45 for -15); a weekday of 7 is Sunday, as in crontab.
/// When both the day and the weekday are given, either may match (crontab's rule).
pub(in crate::master) fn matches(cron: &Cron, t: LocalTime) -> bool {
    let field = |wanted: i32, now: i32| {
        if wanted < 0 {
            now % wanted.saturating_abs() == 0
        } else {
            wanted == now
        }
    };
    let weekday = if cron.weekday == 7 { 0 } else { cron.weekday };
    let (day, week) = (field(cron.day, t.day), field(weekday, t.weekday));
    let date = if cron.day >= 0 && cron.weekday >= 0 {
        day || week
    } else {
        day && week
    };
    field(cron.minute, t.minute) && field(cron.hour, t.hour) && field(cron.month, t.month) && date
}

/// Whether to start `cron` now: `now` and `last` in seconds since the epoch (`last`: when a
/// run last started); `running`: a run is still going.
pub(in crate::master) fn due(
    cron: &Cron,
    t: LocalTime,
    now: i64,
    last: Option<i64>,
    running: bool,
) -> bool {
    if cron.unique && running {
        return false;
    }
    matches(cron, t) && last.is_none_or(|last| now - last >= 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn cron(fields: [i32; 5], unique: bool) -> Cron {
        Cron {
            minute: fields[0],
            hour: fields[1],
            day: fields[2],
            month: fields[3],
            weekday: fields[4],
            command: "true".into(),
            unique,
            origin: Origin::Positional,
        }
    }

    /// Wednesday 2026-12-02 03:30.
    const T: LocalTime = LocalTime {
        minute: 30,
        hour: 3,
        day: 2,
        month: 12,
        weekday: 3,
    };

    fn at(minute: i32, hour: i32) -> LocalTime {
        LocalTime { minute, hour, ..T }
    }

    #[test]
    fn fields_match_as_in_uwsgi() {
        assert!(matches(&cron([-1; 5], false), T));
        assert!(matches(&cron([30, 3, -1, -1, -1], false), T));
        assert!(!matches(&cron([31, 3, -1, -1, -1], false), T));
        // -N: every N.
        assert!(matches(&cron([-15, -1, -1, -1, -1], false), at(45, 3)));
        assert!(!matches(&cron([-15, -1, -1, -1, -1], false), at(44, 3)));
        assert!(matches(&cron([0, -6, -1, -1, -1], false), at(0, 18)));
        assert!(!matches(&cron([0, -6, -1, -1, -1], false), at(0, 19)));
        // Weekday 7 is Sunday, like 0.
        let sunday = LocalTime { weekday: 0, ..T };
        assert!(matches(&cron([30, 3, -1, -1, 7], false), sunday));
        assert!(matches(&cron([30, 3, -1, -1, 0], false), sunday));
        assert!(!matches(&cron([30, 3, -1, -1, 0], false), T));
        // Day and weekday both given: either.
        assert!(matches(&cron([30, 3, 2, -1, 5], false), T));
        assert!(matches(&cron([30, 3, 9, -1, 3], false), T));
        assert!(!matches(&cron([30, 3, 9, -1, 5], false), T));
        // Month.
        assert!(matches(&cron([30, 3, -1, 12, -1], false), T));
        assert!(!matches(&cron([30, 3, -1, 1, -1], false), T));
    }

    #[test]
    fn a_job_runs_once_a_minute_at_most_and_unique_ones_not_twice() {
        let every = cron([-1; 5], false);
        assert!(due(&every, T, 1000, None, false));
        assert!(!due(&every, T, 1030, Some(1000), false));
        assert!(due(&every, T, 1060, Some(1000), false));
        // A plain job starts again while the last run goes on; a unique one waits for it...
        assert!(due(&every, T, 1060, Some(1000), true));
        let unique = cron([-1; 5], true);
        assert!(!due(&unique, T, 1060, Some(1000), true));
        // ... and starts as soon as it is over, in a matching minute.
        assert!(due(&unique, T, 1091, Some(1000), false));
    }
}
