//! A circuit breaker per RPC provider. Pure: the caller passes `now`
//! (tokio's clock, so tests drive it with `tokio::time::pause()`).
//!
//! ```text
//!            3 consecutive failures             cooldown (60 s) elapsed
//!  Closed ───────────────────────────► Open ─────────────────────────► HalfOpen (one probe)
//!    ▲                                   ▲                                 │
//!    │              probe fails          └─────────────────────────────────┤
//!    └─────────────────────────────── probe succeeds ──────────────────────┘
//! ```
//! A `Retry-After` from the provider (429, 503) opens the breaker at once for
//! that long: the provider asked not to be called, so it is not.
//!
//! While the probe is out, callers are told to come back when it must have
//! answered (its call's timeout), not after another cooldown: a probe
//! usually answers in milliseconds, and a relayed transaction refused
//! meanwhile should go as soon as the breaker closes.

use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failures that open the breaker (the runtime guarantee).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// How long an open breaker refuses calls before letting one probe through.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

/// What the breaker lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// One probe call is allowed; its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// For a gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `since`: when the probe was let through. A probe whose caller was
    /// cancelled never reports; once it must have timed out another one may go.
    HalfOpen {
        since: Instant,
    },
}

/// One provider's breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Inner,
    threshold: u32,
    cooldown: Duration,
    /// The longest a probe call can take (its timeout): after that it has
    /// answered or never will.
    probe_timeout: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURE_THRESHOLD, DEFAULT_COOLDOWN)
    }
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            inner: Inner::Closed { failures: 0 },
            threshold: threshold.max(1),
            cooldown,
            probe_timeout: cooldown,
        }
    }

    /// Bound a probe by its call's timeout (default: the cooldown).
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout.min(self.cooldown);
        self
    }

    /// May a call go out now? Moves Open → HalfOpen when the cooldown is over
    /// (the call asking is the probe).
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if now >= until => {
                self.inner = Inner::HalfOpen { since: now };
                true
            }
            Inner::Open { .. } => false,
            Inner::HalfOpen { since } if now >= since + self.probe_timeout => {
                self.inner = Inner::HalfOpen { since: now };
                true
            }
            Inner::HalfOpen { .. } => false,
        }
    }

    /// The call succeeded (or failed in a way that is not the provider's fault).
    pub fn on_success(&mut self) {
        self.inner = Inner::Closed { failures: 0 };
    }

    /// The provider failed the call. `retry_after`: it asked to be left alone that long.
    pub fn on_failure(&mut self, now: Instant, retry_after: Option<Duration>) {
        if let Some(wait) = retry_after {
            self.inner = Inner::Open {
                until: now + wait.max(Duration::from_secs(1)),
            };
            return;
        }
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            _ => Inner::Open {
                until: now + self.cooldown,
            },
        };
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How long until a call may go out (zero when one may now).
    pub fn wait(&self, now: Instant) -> Duration {
        match self.inner {
            Inner::Closed { .. } => Duration::ZERO,
            Inner::Open { until } => until.saturating_duration_since(now),
            Inner::HalfOpen { since } => {
                (since + self.probe_timeout).saturating_duration_since(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_three_consecutive_failures_and_half_opens_after_the_cooldown() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::default();
        for _ in 0..2 {
            assert!(b.try_acquire(t0));
            b.on_failure(t0, None);
            assert_eq!(b.state(t0), BreakerState::Closed);
        }
        b.on_failure(t0, None);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_secs(59)));
        assert_eq!(b.wait(t0 + Duration::from_secs(59)), Duration::from_secs(1));
        let t1 = t0 + Duration::from_secs(60);
        assert!(b.try_acquire(t1), "one probe after 60 s");
        assert!(!b.try_acquire(t1), "only one probe at a time");
        b.on_failure(t1, None);
        assert_eq!(b.state(t1), BreakerState::Open, "a failed probe re-opens");
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.try_acquire(t2));
        b.on_success();
        assert_eq!(b.state(t2), BreakerState::Closed);
        assert!(b.try_acquire(t2) && b.try_acquire(t2));
    }

    #[test]
    fn while_the_probe_is_out_callers_wait_for_its_timeout_not_a_cooldown() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::default().with_probe_timeout(Duration::from_secs(5));
        for _ in 0..3 {
            b.on_failure(t0, None);
        }
        let t1 = t0 + Duration::from_secs(60);
        assert!(b.try_acquire(t1), "the probe");
        let t2 = t1 + Duration::from_millis(10);
        assert!(!b.try_acquire(t2), "one probe at a time");
        assert_eq!(
            b.wait(t2),
            Duration::from_millis(4_990),
            "come back when the probe has answered"
        );
        // A probe that never reported (its caller was cancelled) is replaced
        // once it must have timed out.
        assert!(b.try_acquire(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let t = Instant::now();
        let mut b = CircuitBreaker::default();
        b.on_failure(t, None);
        b.on_failure(t, None);
        b.on_success();
        b.on_failure(t, None);
        b.on_failure(t, None);
        assert_eq!(b.state(t), BreakerState::Closed, "not three in a row");
    }

    #[test]
    fn retry_after_opens_at_once_for_that_long() {
        let t = Instant::now();
        let mut b = CircuitBreaker::default();
        b.on_failure(t, Some(Duration::from_secs(5)));
        assert!(!b.try_acquire(t + Duration::from_secs(4)));
        assert!(b.try_acquire(t + Duration::from_secs(5)));
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let t = Instant::now();
        let mut b = CircuitBreaker::new(1, Duration::from_secs(10));
        b.on_failure(t, None);
        assert!(b.try_acquire(t + Duration::from_secs(10)));
        // The probe's caller was cancelled and never reported.
        assert!(!b.try_acquire(t + Duration::from_secs(15)));
        assert!(b.try_acquire(t + Duration::from_secs(20)));
    }
}
