//! The one clock: wall time behind a trait, so that anything that records
//! or schedules by time runs under a test clock. Pure (no runtime): a
//! caller that waits asks [`Clock::until`] how long, then sleeps that long
//! on its own runtime, and a test clock can answer "no time at all" after
//! jumping to the deadline.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Now, RFC 3339 with milliseconds, UTC (the form events and records keep).
    fn now_rfc3339(&self) -> String {
        rfc3339(self.now_ms())
    }

    /// How long to wait, from now, until unix millisecond `ms` (zero when
    /// it has passed). A test clock may jump to `ms` and answer zero.
    fn until(&self, ms: i64) -> Duration {
        Duration::from_millis(ms.saturating_sub(self.now_ms()).max(0) as u64)
    }
}

/// Unix milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that always says the same time (tests, deterministic replays),
/// given as RFC 3339, which is what it answers verbatim.
#[derive(Debug, Clone)]
pub struct FixedClock(pub String);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&self.0)
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }

    fn now_rfc3339(&self) -> String {
        self.0.clone()
    }
}

/// A paused clock for tests: it moves only when someone waits on it, and
/// then jumps straight to the end of the wait. Deterministic and instant,
/// while the I/O around it stays real.
#[derive(Debug)]
pub struct SkipClock {
    now: AtomicI64,
}

impl SkipClock {
    /// Starting at unix millisecond `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        SkipClock {
            now: AtomicI64::new(start_ms),
        }
    }

    /// Move forward by `by` (never back).
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for SkipClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn until(&self, ms: i64) -> Duration {
        self.now.fetch_max(ms, Ordering::SeqCst);
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_answers_its_own_time_in_both_forms() {
        let c = FixedClock("2026-01-01T00:00:01.500Z".into());
        assert_eq!(c.now_rfc3339(), "2026-01-01T00:00:01.500Z");
        assert_eq!(c.now_ms(), 1_767_225_601_500);
        assert_eq!(rfc3339(c.now_ms()), c.now_rfc3339());
        assert_eq!(c.until(c.now_ms() + 250), Duration::from_millis(250));
        assert_eq!(c.until(0), Duration::ZERO, "a deadline passed");
    }

    #[test]
    fn skip_clock_jumps_to_the_deadline_instead_of_waiting() {
        let c = SkipClock::new(1_000);
        assert_eq!(c.until(61_000), Duration::ZERO);
        assert_eq!(c.now_ms(), 61_000);
        assert_eq!(c.until(5_000), Duration::ZERO, "never back");
        assert_eq!(c.now_ms(), 61_000);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now_ms(), 62_000);
    }
}
