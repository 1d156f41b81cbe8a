//! `cheaper`: how many workers to run between the floor and `processes`, by uWSGI's default
//! algorithm, spare (`uwsgi_cheaper_algo_spare` in core/master_utils.c), called once a second
//! (a master cycle) with the number of workers and how many of them are in a request.
//!
//! In uWSGI's words: while all workers are busy an overload count grows; when it reaches
//! `cheaper-overload`, up to `cheaper-step` workers are added and the count starts over. While
//! one is free, the count shrinks; once it is back to 0, exactly one free worker is the stable
//! state (nothing changes); with more free, an idle count grows and every `cheaper-overload`
//! cycles one worker is removed, down to the floor. A new overload interrupts the removals.

/// What the algorithm asks for after a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::master) enum Change {
    Keep,
    /// Start this many more workers.
    Add(usize),
    /// Stop one worker.
    Remove,
}

/// The spare algorithm's counters, kept from one cycle to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::master) struct Spare {
    overload: u64,
    idle: u64,
}

/// The settings the algorithm reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::master) struct Limits {
    /// `cheaper`: the fewest workers.
    pub(crate) min: usize,
    /// `processes`: the most.
    pub(crate) max: usize,
    /// `cheaper-step`.
    pub(crate) step: usize,
    /// `cheaper-overload`, in cycles.
    pub(crate) overload: u64,
}

impl Spare {
    /// One cycle: `active` workers run, `busy` of them are in a request.
    pub(crate) fn cycle(&mut self, active: usize, busy: usize, limits: Limits) -> Change {
        let overload_cycles = limits.overload.max(1);
        if busy < active {
            // A free worker: healthy.
            self.overload = self.overload.saturating_sub(1);
        } else {
            self.overload += 1;
            self.idle = 0;
        }
        if self.overload >= overload_cycles {
            self.overload = 0;
            // As many as the step, within the room left under `processes`.
            let room = limits.max.saturating_sub(active);
            let add = limits.step.max(1).min(room);
            return if add > 0 {
                Change::Add(add)
            } else {
                Change::Keep
            };
        }
        if self.overload == 0 {
            // Exactly one free worker: stable.
            if active > busy && active - busy == 1 {
                return Change::Keep;
            }
            self.idle += 1;
            if active > limits.min && self.idle % overload_cycles == 0 {
                return Change::Remove;
            }
        }
        Change::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        min: 2,
        max: 10,
        step: 2,
        overload: 3,
    };

    /// Runs cycles with the worker count following the answers; returns the counts after each.
    fn run(
        spare: &mut Spare,
        mut active: usize,
        busy: impl Fn(usize, usize) -> usize,
        cycles: usize,
    ) -> Vec<usize> {
        let mut counts = Vec::new();
        for cycle in 0..cycles {
            match spare.cycle(active, busy(cycle, active).min(active), LIMITS) {
                Change::Add(n) => active += n,
                Change::Remove => active -= 1,
                Change::Keep => {}
            }
            counts.push(active);
        }
        counts
    }

    #[test]
    fn all_busy_for_overload_cycles_adds_a_step() {
        let mut spare = Spare::default();
        assert_eq!(spare.cycle(2, 2, LIMITS), Change::Keep);
        assert_eq!(spare.cycle(2, 2, LIMITS), Change::Keep);
        assert_eq!(spare.cycle(2, 2, LIMITS), Change::Add(2));
        // The count starts over.
        assert_eq!(spare.cycle(4, 4, LIMITS), Change::Keep);
        // Never beyond processes.
        let mut spare = Spare::default();
        for _ in 0..2 {
            spare.cycle(9, 9, LIMITS);
        }
        assert_eq!(spare.cycle(9, 9, LIMITS), Change::Add(1));
        let mut spare = Spare::default();
        for _ in 0..2 {
            spare.cycle(10, 10, LIMITS);
        }
        assert_eq!(spare.cycle(10, 10, LIMITS), Change::Keep);
    }

    #[test]
    fn a_free_worker_in_between_delays_the_addition() {
        let mut spare = Spare::default();
        spare.cycle(2, 2, LIMITS);
        spare.cycle(2, 2, LIMITS);
        // One free: the overload count shrinks (2 -> 1), nothing added.
        assert_eq!(spare.cycle(2, 1, LIMITS), Change::Keep);
        assert_eq!(spare.cycle(2, 2, LIMITS), Change::Keep);
        assert_eq!(spare.cycle(2, 2, LIMITS), Change::Add(2));
    }

    /// uWSGI's own example (core/master_utils.c): 10 processes, cheaper 2, step 2, overload
    /// 3; 7 workers after a spike, 6 busy and 1 free: stable. When the spike ends, one worker
    /// goes every 3 cycles, down to 2.
    #[test]
    fn uwsgis_example() {
        let mut spare = Spare::default();
        // Stable: 6 of 7 busy.
        assert_eq!(run(&mut spare, 7, |_, _| 6, 10), vec![7; 10]);
        // Idle: one less every 3 cycles.
        let counts = run(&mut spare, 7, |_, _| 0, 18);
        assert_eq!(
            counts,
            [7, 7, 6, 6, 6, 5, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2]
        );
    }

    #[test]
    fn an_overload_interrupts_the_removals() {
        let mut spare = Spare::default();
        let counts = run(&mut spare, 6, |_, _| 0, 3);
        assert_eq!(counts, [6, 6, 5]);
        // The spike is back: all busy; after 3 cycles, 2 more.
        let counts = run(&mut spare, 5, |_, active| active, 3);
        assert_eq!(counts, [5, 5, 7]);
        // And the idle count started over: 3 cycles before the next removal.
        let counts = run(&mut spare, 7, |_, _| 0, 4);
        assert_eq!(counts, [7, 7, 6, 6]);
    }

    #[test]
    fn never_below_the_floor() {
        let mut spare = Spare::default();
        assert_eq!(run(&mut spare, 2, |_, _| 0, 9), vec![2; 9]);
        // With an overload of 1, a removal every cycle.
        let limits = Limits {
            overload: 1,
            ..LIMITS
        };
        let mut spare = Spare::default();
        let mut counts = Vec::new();
        let mut active = 5;
        for _ in 0..5 {
            if spare.cycle(active, 0, limits) == Change::Remove {
                active -= 1;
            }
            counts.push(active);
        }
        assert_eq!(counts, [4, 3, 2, 2, 2]);
    }
}
