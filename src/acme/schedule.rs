//! When to renew, and when to try again: the decisions of the certificate manager as functions
//! of times, with no network and no clock of their own, so they are tested as they are.
//!
//! - Renewal: inside the CA's renewal window when it offers ACME Renewal Information (RFC
//!   9773: a time chosen at random in the window, and the window asked again when the CA says
//!   to); otherwise when a third of the certificate's lifetime is left (30 days of Let's
//!   Encrypt's 90, 2 of a 6-day certificate).
//! - Failures back off: 1 minute, 10, 30, then 1, 2, 4 and 6 hours, and every 6 hours after;
//!   never sooner than the CA's `Retry-After`. At most four failed validations of a name in
//!   an hour, inside Let's Encrypt's five.
//! - Waits are jittered a little, so that instances started together do not ask the CA
//!   together.

use std::time::{Duration, SystemTime};

/// The failures' back-off, step by step; the last one repeats.
const BACKOFF: [Duration; 7] = [
    Duration::from_secs(60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(6 * 3600),
];

/// The longest a `Retry-After` is followed (a CA's answer of days is taken as one).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// How long a certificate that is not due goes without a look (its file may have been
/// replaced by another instance, its ARI window moved).
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(12 * 3600);

/// How often ARI is asked again, at least and at most, whatever `Retry-After` says (RFC 9773
/// §4.3.3 leaves the bounds to the client; 6 hours is its suggestion without one).
const ARI_MIN: Duration = Duration::from_secs(60);
const ARI_MAX: Duration = Duration::from_secs(24 * 3600);
pub(crate) const ARI_DEFAULT: Duration = Duration::from_secs(6 * 3600);

/// When a certificate valid from `not_before` to `not_after` is due without ARI: when a third
/// of its lifetime is left.
pub(crate) fn third_left(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after.checked_sub(lifetime / 3).unwrap_or(not_before)
}

/// A time in the CA's renewal window `[start, end]`, at `fraction` (0 to 1, random) of it
/// (RFC 9773 §4.2: "a uniformly random point between the window's start and end").
pub(crate) fn in_window(start: SystemTime, end: SystemTime, fraction: f64) -> SystemTime {
    let span = end.duration_since(start).unwrap_or(Duration::ZERO);
    start + span.mul_f64(fraction.clamp(0.0, 1.0))
}

/// When to ask for the renewal window again, from the CA's `Retry-After` (`None`: it gave
/// none).
pub(crate) fn ari_again(retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or(ARI_DEFAULT).clamp(ARI_MIN, ARI_MAX)
}

/// How long to wait after the `failures`-th failure in a row (1 for the first), and no less
/// than the CA asked for.
pub(crate) fn backoff(failures: u32, retry_after: Option<Duration>) -> Duration {
    let step = (failures.max(1) - 1) as usize;
    let own = BACKOFF[step.min(BACKOFF.len() - 1)];
    own.max(retry_after.unwrap_or(Duration::ZERO).min(RETRY_AFTER_CAP))
}

/// A wait made a little longer (up to 5%, `fraction` random from 0 to 1, at most 10 minutes),
/// never shorter: a renewal is never early, instances spread out.
pub(crate) fn jittered(wait: Duration, fraction: f64) -> Duration {
    let extra = wait
        .mul_f64(0.05 * fraction.clamp(0.0, 1.0))
        .min(Duration::from_secs(600));
    wait + extra
}

/// A random fraction from 0 to 1, from the system's generator.
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    // A failure leaves zeroes: no jitter, which is harmless.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_third_of_the_lifetime_left() {
        let day = 86_400;
        // Let's Encrypt's 90 days: renewed with 30 left.
        assert_eq!(third_left(at(0), at(90 * day)), at(60 * day));
        // A six-day certificate: with 2 left.
        assert_eq!(third_left(at(0), at(6 * day)), at(4 * day));
        // Pebble's 60 seconds: at 40.
        assert_eq!(third_left(at(1000), at(1060)), at(1040));
        // Nonsense dates: due at once.
        assert_eq!(third_left(at(50), at(10)), at(10));
    }

    #[test]
    fn inside_the_renewal_window() {
        assert_eq!(in_window(at(100), at(200), 0.0), at(100));
        assert_eq!(in_window(at(100), at(200), 1.0), at(200));
        assert_eq!(in_window(at(100), at(200), 0.25), at(125));
        assert_eq!(in_window(at(100), at(200), 7.0), at(200));
        // An empty or reversed window is its start.
        assert_eq!(in_window(at(100), at(50), 0.5), at(100));
        assert_eq!(ari_again(None), Duration::from_secs(6 * 3600));
        assert_eq!(ari_again(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(
            ari_again(Some(Duration::from_secs(7 * 86_400))),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            ari_again(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn failures_back_off_to_six_hours_and_follow_retry_after() {
        let minutes = |n: u64| Duration::from_secs(n * 60);
        let steps: Vec<Duration> = (1..=9).map(|n| backoff(n, None)).collect();
        assert_eq!(steps, [1, 10, 30, 60, 120, 240, 360, 360, 360].map(minutes));
        assert_eq!(backoff(0, None), minutes(1));
        // Never sooner than Retry-After, and a CA's days are one.
        assert_eq!(backoff(1, Some(minutes(45))), minutes(45));
        assert_eq!(backoff(5, Some(minutes(5))), minutes(120));
        assert_eq!(backoff(1, Some(minutes(10_000))), minutes(24 * 60));
        // Failed validations of a name in its first hour: 4 (at 0, 1, 11 and 41 minutes),
        // inside Let's Encrypt's 5.
        let mut at = Duration::ZERO;
        let mut in_first_hour = 0;
        for n in 1..=10 {
            if at < minutes(60) {
                in_first_hour += 1;
            }
            at += backoff(n, None);
        }
        assert_eq!(in_first_hour, 4);
    }

    #[test]
    fn jitter_only_lengthens_a_little() {
        let hour = Duration::from_secs(3600);
        assert_eq!(jittered(hour, 0.0), hour);
        assert_eq!(jittered(hour, 1.0), hour + Duration::from_secs(180));
        assert_eq!(
            jittered(Duration::from_secs(86_400), 1.0),
            Duration::from_secs(86_400 + 600)
        );
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..=1.0).contains(&f));
        }
    }
}
