//! Time for the webhook scheduler, behind a trait so that tests can run a
//! five-attempt, six-minute retry schedule in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;

/// Wall-clock time (persisted schedules are unix milliseconds).
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
    /// Return at `ms` (unix milliseconds) or later.
    async fn sleep_until_ms(&self, ms: i64);
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    async fn sleep_until_ms(&self, ms: i64) {
        let wait = ms.saturating_sub(self.now_ms());
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    }
}

/// A paused clock for tests: it only moves when the scheduler waits, and
/// then jumps straight to the end of the wait. Deterministic and instant,
/// while the HTTP and database I/O around it stay real.
#[derive(Debug)]
pub struct SkipClock {
    now: AtomicI64,
}

impl SkipClock {
    /// Starting at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        SkipClock {
            now: AtomicI64::new(start_ms),
        }
    }
}

#[async_trait]
impl Clock for SkipClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep_until_ms(&self, ms: i64) {
        self.now.fetch_max(ms, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}
