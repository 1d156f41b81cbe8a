//! The clocks dragoman reads, in one place: CLOCK_MONOTONIC for what the master and workers
//! compare across processes (a request's start in the scoreboard, harakiri), its coarse variant
//! for what is marked on every read and write (connection activity), and the coarse real-time
//! clock for the `Date` header.

/// Microseconds on `clock` (a CLOCK_MONOTONIC or CLOCK_REALTIME variant, which always exists
/// on Linux).
pub(crate) fn clock_us(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; the clock ids passed here
    // exist on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Microseconds on CLOCK_MONOTONIC, the same clock in every process of the machine.
pub(crate) fn monotonic_us() -> u64 {
    clock_us(libc::CLOCK_MONOTONIC)
}

/// Milliseconds on CLOCK_MONOTONIC.
pub(crate) fn monotonic_ms() -> u64 {
    monotonic_us() / 1000
}

/// Milliseconds on CLOCK_MONOTONIC_COARSE: the clock's last tick (a few ms of resolution),
/// read without the time-stamp counter, so marking activity on every read and write is cheap.
pub(crate) fn coarse_ms() -> u64 {
    clock_us(libc::CLOCK_MONOTONIC_COARSE) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_coarse_agree_to_a_few_ticks() {
        let (fine, coarse) = (monotonic_ms(), coarse_ms());
        assert!(fine >= coarse && fine - coarse < 100, "{fine} {coarse}");
        assert!(monotonic_us() / 1000 >= fine);
    }
}
