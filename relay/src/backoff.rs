//! When to try a broadcast again. Pure: the caller passes the attempt count,
//! the time spent so far and the randomness.
//!
//! The schedule is `nexus_core::backoff`'s, doubling with "full jitter": the
//! n-th wait is uniform in `[0, min(max_delay, initial * 2^(n-1))]`, which
//! spreads the retries of many transactions that failed together (a node
//! restart) instead of bunching them. The relay adds three bounds: a
//! `slowness` factor from the statistics stretches a wait (a reason that
//! historically takes long to clear is asked about less often), the node's
//! `Retry-After` is a floor, and `max_total` caps the whole.

use std::time::Duration;

use nexus_core::backoff::{Backoff, Jitter};
use rand::Rng;

/// The bounds of one transaction's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// The ceiling of the first wait; doubles with every attempt.
    pub initial: Duration,
    /// The ceiling never grows past this (before `slowness`).
    pub max_delay: Duration,
    /// Attempts in all, the first included; then the transaction fails.
    pub max_attempts: u32,
    /// No attempt starts later than this after the first one.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    /// 500 ms doubling to 60 s, 12 attempts, 30 minutes: about 8 minutes of
    /// ceilings (half that on average), so the attempt bound usually ends a
    /// hopeless transaction; a slow reason (`slowness` up to 8) can stretch
    /// it to the 30-minute bound, enough for a few Stacks blocks.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_attempts: 12,
            max_total: Duration::from_secs(30 * 60),
        }
    }
}

/// The most `slowness` may stretch a wait.
pub const MAX_SLOWNESS: f64 = 8.0;

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` attempts (the
    /// first failed one is attempt 1) and `elapsed` since the first. `None`:
    /// give up, because the attempts are used up, the time is, or the node's
    /// `retry_after` ends past the time bound.
    ///
    /// `slowness` (clamped to `[1, 8]`; not a number counts as 1) scales the
    /// jittered wait and its cap. The wait is cut to the time left, so the
    /// last attempt lands on the bound rather than being skipped.
    pub fn next_delay(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        slowness: f64,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || elapsed >= self.max_total {
            return None;
        }
        let left = self.max_total - elapsed;
        let floor = retry_after.unwrap_or_default();
        if floor > left {
            return None;
        }
        let jittered = self
            .schedule()
            .delay(attempt.max(1), rng.gen::<f64>())?
            .mul_f64(clamp_slowness(slowness));
        Some(jittered.min(left).max(floor))
    }

    /// The wait after every provider's breaker refused the attempt, so that
    /// nothing was sent: exactly `breaker_wait` (until the first breaker lets
    /// a call through), not a backoff step, within the time bound. The
    /// attempt bound is not checked: no node saw this attempt.
    pub fn after_open_breakers(
        &self,
        elapsed: Duration,
        breaker_wait: Duration,
    ) -> Option<Duration> {
        (elapsed + breaker_wait <= self.max_total).then_some(breaker_wait)
    }

    /// The doubling schedule under the relay's bounds.
    fn schedule(&self) -> Backoff {
        Backoff {
            initial: self.initial,
            factor: 2.0,
            max: self.max_delay,
            attempts: self.max_attempts,
            jitter: Jitter::Full,
        }
    }

    /// `min(max_delay, initial * 2^(attempt-1))`: the most a wait can be
    /// before `slowness` (attempt 0, none yet, counts as the first).
    #[cfg(test)]
    fn ceiling(&self, attempt: u32) -> Duration {
        let unbounded = Backoff {
            attempts: u32::MAX,
            ..self.schedule()
        };
        unbounded
            .base(attempt.clamp(1, u32::MAX - 1))
            .unwrap_or(self.max_delay)
    }
}

fn clamp_slowness(s: f64) -> f64 {
    if s.is_nan() {
        1.0
    } else {
        s.clamp(1.0, MAX_SLOWNESS)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn ceilings_double_to_the_cap() {
        let p = RetryPolicy::default();
        let ms = |a| p.ceiling(a).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(7), ms(8), ms(9)],
            [500, 1000, 2000, 4000, 32_000, 60_000, 60_000]
        );
        assert_eq!(p.ceiling(0), p.initial, "no attempt yet: the first ceiling");
        assert_eq!(p.ceiling(u32::MAX), p.max_delay);
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        let p = RetryPolicy::default();
        let mut r = rng();
        let waits: Vec<Duration> = (0..2000)
            .map(|_| p.next_delay(4, Duration::ZERO, None, 1.0, &mut r).unwrap())
            .collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(4)));
        let below_1s = waits
            .iter()
            .filter(|w| **w < Duration::from_secs(1))
            .count();
        let above_3s = waits
            .iter()
            .filter(|w| **w > Duration::from_secs(3))
            .count();
        // Uniform: about a quarter in each; far from bunched at the ceiling.
        assert!((400..600).contains(&below_1s), "{below_1s}");
        assert!((400..600).contains(&above_3s), "{above_3s}");
    }

    #[test]
    fn slowness_stretches_and_is_clamped() {
        let p = RetryPolicy::default();
        let max_of = |slowness: f64| {
            let mut r = rng();
            (0..500)
                .map(|_| {
                    p.next_delay(9, Duration::ZERO, None, slowness, &mut r)
                        .unwrap()
                })
                .max()
                .unwrap()
        };
        assert!(max_of(1.0) <= Duration::from_secs(60));
        assert!(max_of(4.0) > Duration::from_secs(60));
        assert!(max_of(4.0) <= Duration::from_secs(240));
        assert!(max_of(100.0) <= Duration::from_secs(480), "clamped to 8");
        assert!(max_of(0.1) <= Duration::from_secs(60), "never shortens");
        assert!(max_of(f64::NAN) <= Duration::from_secs(60));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        let mut r = rng();
        for _ in 0..100 {
            let d = p
                .next_delay(
                    1,
                    Duration::ZERO,
                    Some(Duration::from_secs(30)),
                    1.0,
                    &mut r,
                )
                .unwrap();
            assert_eq!(d, Duration::from_secs(30), "the first ceiling is 500 ms");
        }
    }

    #[test]
    fn open_breakers_are_waited_out_exactly_whatever_the_attempt() {
        let p = RetryPolicy::default();
        let wait = Duration::from_millis(29);
        assert_eq!(
            p.after_open_breakers(Duration::from_secs(5), wait),
            Some(wait),
            "not a backoff step: the moment the first breaker half-opens"
        );
        assert_eq!(
            p.after_open_breakers(p.max_total, wait),
            None,
            "the time bound still holds"
        );
    }

    #[test]
    fn gives_up_on_attempts_time_or_a_retry_after_past_the_bound() {
        let p = RetryPolicy::default();
        let mut r = rng();
        assert!(p
            .next_delay(11, Duration::ZERO, None, 1.0, &mut r)
            .is_some());
        assert_eq!(p.next_delay(12, Duration::ZERO, None, 1.0, &mut r), None);
        assert_eq!(p.next_delay(1, p.max_total, None, 1.0, &mut r), None);
        let almost = p.max_total - Duration::from_secs(10);
        assert_eq!(
            p.next_delay(1, almost, Some(Duration::from_secs(11)), 1.0, &mut r),
            None
        );
        // Within the bound, a wait is cut to the time left.
        let nearly = p.max_total - Duration::from_millis(1);
        for _ in 0..50 {
            let d = p.next_delay(9, nearly, None, 8.0, &mut r).unwrap();
            assert!(d <= Duration::from_millis(1));
        }
    }

    proptest! {
        #[test]
        fn waits_stay_in_bounds(
            attempt in 0u32..40,
            elapsed_ms in 0u64..2_000_000,
            retry_after_ms in proptest::option::of(0u64..600_000),
            slowness in 0.0f64..20.0,
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy::default();
            let elapsed = Duration::from_millis(elapsed_ms);
            let retry_after = retry_after_ms.map(Duration::from_millis);
            let mut r = StdRng::seed_from_u64(seed);
            let got = p.next_delay(attempt, elapsed, retry_after, slowness, &mut r);
            let exhausted = attempt >= p.max_attempts
                || elapsed >= p.max_total
                || retry_after.is_some_and(|ra| elapsed + ra > p.max_total);
            prop_assert_eq!(got.is_none(), exhausted);
            if let Some(d) = got {
                let cap = p.ceiling(attempt).mul_f64(slowness.clamp(1.0, MAX_SLOWNESS));
                prop_assert!(d <= cap.max(retry_after.unwrap_or_default()));
                prop_assert!(d <= p.max_delay.mul_f64(MAX_SLOWNESS).max(retry_after.unwrap_or_default()));
                prop_assert!(d >= retry_after.unwrap_or_default());
                prop_assert!(elapsed + d <= p.max_total);
            }
        }
    }
}
