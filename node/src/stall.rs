//! A stalled chain, made loud.
//!
//! stacks-node resends a payload until the observer answers 200 and makes no
//! block meanwhile. A temporary failure (a store down: 503) ends when the
//! store is back. A permanent one (a write the store rejects, rows it cannot
//! read back, a panicked delivery: 500) comes back on every resend until
//! someone fixes it, and the chain waits. [`StallWatch`] keeps that streak
//! for `/health` (`"status": "stalled"`, the error, `since`) and the gauges
//! `nexus_ingest_stalled` and `nexus_ingest_stalled_since_seconds`, and
//! decides when to log it: at most once per [`LOG_EVERY`], with the number of
//! failures not logged in between, instead of once per resend (stacks-node
//! starts resending every 100 ms). The next delivery answered 200 ends it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nexus_core::clock::{rfc3339, Clock};
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

/// Shortest time between two log lines about a stall.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// The current streak of permanent failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stall {
    /// The first failure of the streak, RFC 3339 (UTC).
    pub since: String,
    /// The first failure of the streak, unix milliseconds.
    #[serde(skip)]
    pub since_ms: i64,
    /// The latest failure's error, with its causes.
    pub error: String,
    /// Deliveries refused in this streak.
    pub failures: u64,
}

/// A streak that a delivery answered 200 has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub stall: Stall,
    /// Failures of the streak that were not logged (after the last line).
    pub suppressed: u64,
}

struct State {
    stall: Option<Stall>,
    /// When the last line about a stall was logged; kept across streaks, so
    /// a chain that flaps between stalled and moving still logs once a minute.
    last_log_ms: Option<i64>,
    /// Failures not logged since that line.
    suppressed: u64,
}

/// The observer's stall state, shared by every delivery and `/health`.
pub struct StallWatch {
    clock: Arc<dyn Clock>,
    /// `nexus_ingest_stalled`: 1 while stalled.
    stalled: Gauge,
    /// `nexus_ingest_stalled_since_seconds`: unix seconds of the streak's
    /// first failure, 0 when not stalled.
    since_seconds: Gauge,
    /// Locked briefly, never across an `.await`.
    state: Mutex<State>,
}

impl StallWatch {
    /// A watch reading `clock` and keeping the two gauges.
    pub fn new(clock: Arc<dyn Clock>, stalled: Gauge, since_seconds: Gauge) -> Self {
        StallWatch {
            clock,
            stalled,
            since_seconds,
            state: Mutex::new(State {
                stall: None,
                last_log_ms: None,
                suppressed: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A delivery failed for good (`error`: its error chain). `Some(n)`: log
    /// it now, saying that `n` failures were not logged since the previous
    /// line; `None`: stay quiet, it is counted.
    pub fn failed(&self, error: String) -> Option<u64> {
        let now = self.clock.now_ms();
        let mut st = self.state();
        match &mut st.stall {
            Some(s) => {
                s.error = error;
                s.failures += 1;
            }
            None => {
                st.stall = Some(Stall {
                    since: rfc3339(now),
                    since_ms: now,
                    error,
                    failures: 1,
                });
                self.stalled.set(1);
                self.since_seconds.set(now.div_euclid(1000));
            }
        }
        let due = st
            .last_log_ms
            .is_none_or(|t| now.saturating_sub(t) >= LOG_EVERY.as_millis() as i64);
        if !due {
            st.suppressed += 1;
            return None;
        }
        st.last_log_ms = Some(now);
        Some(std::mem::take(&mut st.suppressed))
    }

    /// A delivery was answered 200: the streak, if there was one, is over.
    pub fn delivered(&self) -> Option<Resumed> {
        let mut st = self.state();
        let stall = st.stall.take()?;
        self.stalled.set(0);
        self.since_seconds.set(0);
        Some(Resumed {
            stall,
            suppressed: std::mem::take(&mut st.suppressed),
        })
    }

    /// The current streak, if the chain is stalled.
    pub fn current(&self) -> Option<Stall> {
        self.state().stall.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_core::clock::SkipClock;

    const T0: i64 = 1_800_000_000_000;

    fn watch() -> (StallWatch, Arc<SkipClock>) {
        let clock = Arc::new(SkipClock::new(T0));
        let w = StallWatch::new(clock.clone(), Gauge::default(), Gauge::default());
        (w, clock)
    }

    #[test]
    fn a_streak_is_logged_once_a_minute_with_the_count_in_between() {
        let (w, clock) = watch();
        assert_eq!(w.failed("e1".into()), Some(0), "the first failure logs");
        let first = w.current().unwrap();
        assert_eq!((first.since_ms, first.failures), (T0, 1));
        assert_eq!(first.since, "2027-01-15T08:00:00.000Z");
        assert_eq!((w.stalled.get(), w.since_seconds.get()), (1, T0 / 1000));
        // stacks-node resends quickly: quiet, counted.
        for i in 0..5 {
            clock.advance(Duration::from_secs(10));
            assert_eq!(w.failed(format!("e{}", i + 2)), None);
        }
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(w.failed("e7".into()), None, "59.999 s after the line");
        clock.advance(Duration::from_millis(1));
        assert_eq!(w.failed("e8".into()), Some(6), "a minute on: 6 not logged");
        clock.advance(Duration::from_secs(1));
        assert_eq!(w.failed("e9".into()), None);
        let now = w.current().unwrap();
        assert_eq!(now.since_ms, T0, "since stays the streak's first failure");
        assert_eq!((now.failures, now.error.as_str()), (9, "e9"));
        assert_eq!(w.since_seconds.get(), T0 / 1000);
    }

    #[test]
    fn a_delivery_ends_the_streak_and_reports_what_was_not_logged() {
        let (w, clock) = watch();
        assert_eq!(w.delivered(), None, "nothing to end");
        w.failed("rejected".into());
        clock.advance(Duration::from_secs(1));
        w.failed("rejected".into());
        clock.advance(Duration::from_secs(1));
        let resumed = w.delivered().unwrap();
        assert_eq!(resumed.stall.failures, 2);
        assert_eq!(resumed.suppressed, 1);
        assert_eq!(w.current(), None);
        assert_eq!((w.stalled.get(), w.since_seconds.get()), (0, 0));
        // A new streak within the minute: stalled at once, logged later.
        clock.advance(Duration::from_secs(1));
        assert_eq!(w.failed("again".into()), None);
        assert_eq!(w.current().unwrap().since_ms, T0 + 3_000, "a new since");
        assert_eq!(w.stalled.get(), 1);
        clock.advance(LOG_EVERY);
        assert_eq!(w.failed("again".into()), Some(1));
    }
}
