//! The retry schedule. Pure.
//!
//! `attempts` tries; the waits between them grow geometrically from
//! `initial` to `max` (with the defaults, 5 attempts: 1 s, 6.7 s, 44.8 s,
//! 300 s), each scaled by a random factor in `1 ± jitter` so that endpoints
//! failing together do not retry in lockstep.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait after the first failure.
    pub initial: Duration,
    /// Wait before the last attempt.
    pub max: Duration,
    /// Relative spread, 0.2 = ±20%.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `failed` (1-based) before the next one,
    /// without jitter; `None` when `failed` was the last attempt.
    pub fn base_delay(&self, failed: u32) -> Option<Duration> {
        if failed == 0 || failed >= self.attempts {
            return None;
        }
        let gaps = self.attempts - 1;
        if gaps <= 1 {
            return Some(self.initial);
        }
        let ratio = (self.max.as_secs_f64() / self.initial.as_secs_f64().max(1e-9))
            .powf(1.0 / f64::from(gaps - 1));
        let d = self.initial.as_secs_f64() * ratio.powi(failed as i32 - 1);
        Some(Duration::from_secs_f64(d.min(self.max.as_secs_f64())))
    }

    /// [`Backoff::base_delay`] with jitter; `unit` is uniform in `[0, 1)`.
    pub fn delay(&self, failed: u32, unit: f64) -> Option<Duration> {
        let base = self.base_delay(failed)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_spans_one_second_to_five_minutes() {
        let b = Backoff::default();
        let secs: Vec<f64> = (1..=4)
            .map(|n| b.base_delay(n).unwrap().as_secs_f64())
            .collect();
        assert!((secs[0] - 1.0).abs() < 1e-9);
        assert!((secs[1] - 6.694).abs() < 0.01, "{secs:?}");
        assert!((secs[2] - 44.81).abs() < 0.05, "{secs:?}");
        assert!((secs[3] - 300.0).abs() < 1e-6, "{secs:?}");
        assert_eq!(b.base_delay(5), None, "the fifth failure is final");
        assert_eq!(b.base_delay(0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let b = Backoff::default();
        for n in 1..=4 {
            let base = b.base_delay(n).unwrap().as_secs_f64();
            let lo = b.delay(n, 0.0).unwrap().as_secs_f64();
            let hi = b.delay(n, 0.999_999).unwrap().as_secs_f64();
            assert!((lo - base * 0.8).abs() < base * 1e-5, "{lo} vs {base}");
            assert!((hi - base * 1.2).abs() < base * 1e-5, "{hi} vs {base}");
            assert!((b.delay(n, 0.5).unwrap().as_secs_f64() - base).abs() < 1e-6);
        }
    }

    #[test]
    fn two_attempts_wait_initial() {
        let b = Backoff {
            attempts: 2,
            ..Backoff::default()
        };
        assert_eq!(b.base_delay(1), Some(Duration::from_secs(1)));
        assert_eq!(b.base_delay(2), None);
    }
}
