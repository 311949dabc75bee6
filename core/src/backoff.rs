//! The one retry schedule. Pure: callers pass the attempt count and the
//! randomness, and sleep on their own clock.
//!
//! The wait after the n-th failure grows geometrically, `initial * factor^(n-1)`,
//! capped at `max`, until `attempts` attempts (the first included) are used.
//! Then it is spread by one of three [`Jitter`]s:
//! * `Full`: uniform in `[0, wait]` (AWS Architecture Blog, "Exponential
//!   Backoff And Jitter"), for many retries that failed together (a node
//!   restart) and must not come back together: the relay's broadcasts.
//! * `Proportional(j)`: `wait * (1 ± j)`, for a schedule whose length
//!   matters to people (a webhook receiver expects the 5-minute retry near
//!   5 minutes).
//! * `None`: exact, for one local loop (an import waiting out a database
//!   restart, a request polling for its twin's answer).

use std::time::Duration;

/// How a wait is spread; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    None,
    Full,
    /// Relative spread: 0.2 is ±20 %.
    Proportional(f64),
}

/// A geometric schedule of waits; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// How much each wait grows over the one before (2.0: doubling).
    pub factor: f64,
    /// No wait grows past this.
    pub max: Duration,
    /// Attempts in all, the first included; `u32::MAX` for no bound.
    pub attempts: u32,
    pub jitter: Jitter,
}

impl Backoff {
    /// `attempts` attempts whose waits grow evenly from `initial` (after the
    /// first failure) to `max` (before the last attempt).
    pub fn spanning(attempts: u32, initial: Duration, max: Duration, jitter: Jitter) -> Backoff {
        let gaps = attempts.saturating_sub(1);
        let factor = if gaps <= 1 {
            1.0
        } else {
            (max.as_secs_f64() / initial.as_secs_f64().max(1e-9)).powf(1.0 / f64::from(gaps - 1))
        };
        Backoff {
            initial,
            factor,
            max,
            attempts,
            jitter,
        }
    }

    /// The wait after failed attempt `failed` (1-based) before the next one,
    /// before jitter; `None` when `failed` was the last attempt (or is 0).
    pub fn base(&self, failed: u32) -> Option<Duration> {
        if failed == 0 || failed >= self.attempts {
            return None;
        }
        let grown = self.initial.as_secs_f64() * self.factor.powf(f64::from(failed - 1));
        // `min` before converting: a long schedule's growth overflows a Duration.
        Some(Duration::from_secs_f64(grown.min(self.max.as_secs_f64())))
    }

    /// [`Backoff::base`] spread by the jitter; `unit` is uniform in `[0, 1)`.
    pub fn delay(&self, failed: u32, unit: f64) -> Option<Duration> {
        let base = self.base(failed)?;
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        Some(match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(unit),
            Jitter::Proportional(j) => base.mul_f64((1.0 + j * (2.0 * unit - 1.0)).max(0.0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> Option<u128> {
        d.map(|d| d.as_millis())
    }

    #[test]
    fn doubling_to_a_cap() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            factor: 2.0,
            max: Duration::from_secs(60),
            attempts: 12,
            jitter: Jitter::None,
        };
        let got: Vec<_> = [1, 2, 3, 4, 7, 8, 9]
            .iter()
            .map(|&n| ms(b.base(n)))
            .collect();
        let want = [500, 1000, 2000, 4000, 32_000, 60_000, 60_000].map(Some);
        assert_eq!(got, want);
        assert_eq!(b.base(11), Some(Duration::from_secs(60)));
        assert_eq!(b.base(12), None, "the twelfth failure is final");
        assert_eq!(b.base(0), None);
        let unbounded = Backoff {
            attempts: u32::MAX,
            ..b
        };
        assert_eq!(unbounded.base(u32::MAX - 1), Some(Duration::from_secs(60)));
    }

    #[test]
    fn spanning_reaches_max_on_the_last_gap() {
        let b = Backoff::spanning(
            5,
            Duration::from_secs(1),
            Duration::from_secs(300),
            Jitter::None,
        );
        let secs: Vec<f64> = (1..=4).map(|n| b.base(n).unwrap().as_secs_f64()).collect();
        assert!((secs[0] - 1.0).abs() < 1e-9);
        assert!((secs[1] - 6.694).abs() < 0.01, "{secs:?}");
        assert!((secs[2] - 44.81).abs() < 0.05, "{secs:?}");
        assert!((secs[3] - 300.0).abs() < 1e-6, "{secs:?}");
        assert_eq!(b.base(5), None);
        let two = Backoff::spanning(
            2,
            Duration::from_secs(1),
            Duration::from_secs(300),
            Jitter::None,
        );
        assert_eq!(two.base(1), Some(Duration::from_secs(1)));
        assert_eq!(two.base(2), None);
    }

    #[test]
    fn jitters() {
        let base = Backoff::spanning(
            5,
            Duration::from_secs(1),
            Duration::from_secs(300),
            Jitter::None,
        );
        let prop = Backoff {
            jitter: Jitter::Proportional(0.2),
            ..base
        };
        let full = Backoff {
            jitter: Jitter::Full,
            ..base
        };
        for n in 1..=4 {
            let b = base.base(n).unwrap().as_secs_f64();
            let at = |k: &Backoff, u: f64| k.delay(n, u).unwrap().as_secs_f64();
            assert!((at(&prop, 0.0) - b * 0.8).abs() < b * 1e-6);
            assert!((at(&prop, 0.999_999) - b * 1.2).abs() < b * 1e-5);
            assert!((at(&prop, 0.5) - b).abs() < 1e-6);
            assert_eq!(at(&full, 0.0), 0.0);
            assert!((at(&full, 0.25) - b * 0.25).abs() < b * 1e-6);
            assert!(at(&full, 0.999_999) <= b);
            assert_eq!(at(&base, 0.9), b, "no jitter: exact");
        }
        assert_eq!(
            prop.delay(1, f64::NAN),
            base.base(1),
            "not a number: the middle"
        );
    }
}
