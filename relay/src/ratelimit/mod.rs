//! Rate limits (the seeds): per API key and per client IP, with the generic
//! cell rate algorithm (GCRA). One timestamp per key (the "theoretical
//! arrival time"), so a limit costs one small Redis key and one round trip,
//! and several nodes sharing a Redis share the limit. Memory serves the
//! embedded default.

mod grouped;
mod memory;
mod redis;

pub use self::grouped::Grouped;
pub use self::memory::MemoryRateLimiter;
pub use self::redis::RedisRateLimiter;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests that may arrive at once after a quiet period (≥ 1).
    pub burst: u32,
}

impl Quota {
    /// Time between two requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second.max(1e-6))
    }

    /// Whether this quota can ever admit a request.
    pub fn check(&self) -> Result<(), String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(format!("per_second must be > 0, got {}", self.per_second));
        }
        if self.burst == 0 {
            return Err("burst must be at least 1".into());
        }
        Ok(())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit: the earliest moment a retry can succeed.
    Deny {
        retry_after: Duration,
    },
}

/// The limiter's store is down. Callers let the request through (a broken
/// limiter must not take the API down) and count it.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter ({backend}) unavailable")]
pub struct RateLimitError {
    pub backend: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one request against `key` under `quota`.
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError>;
    /// [`RateLimiter::check`] for several requests at once, answers in
    /// order (a key listed twice counts twice). [`Grouped`] hands each
    /// group of concurrent requests to one call: one Redis round trip.
    async fn check_many(&self, items: &[(String, Quota)]) -> Result<Vec<Decision>, RateLimitError> {
        let mut out = Vec::with_capacity(items.len());
        for (key, quota) in items {
            out.push(self.check(key, *quota).await?);
        }
        Ok(out)
    }
}

/// GCRA, pure: given the stored arrival time `tat` and `now` (both in
/// microseconds), decide and return the new `tat` to store when allowed.
pub fn gcra(tat: Option<u64>, now: u64, quota: Quota) -> (Decision, Option<u64>) {
    let t = quota.interval().as_micros() as u64;
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + t;
    let allow_at = new_tat.saturating_sub(t * u64::from(quota.burst.max(1)));
    if allow_at > now {
        return (
            Decision::Deny {
                retry_after: Duration::from_micros(allow_at - now),
            },
            None,
        );
    }
    (Decision::Allow, Some(new_tat))
}

#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    /// A burst of `burst` passes, the next is denied with a wait of about
    /// one interval, and a different key is unaffected.
    pub async fn burst_then_deny(limiter: &dyn RateLimiter) {
        let q = Quota {
            per_second: 2.0,
            burst: 3,
        };
        for i in 0..3 {
            assert_eq!(
                limiter.check("a", q).await.unwrap(),
                Decision::Allow,
                "request {i}"
            );
        }
        match limiter.check("a", q).await.unwrap() {
            Decision::Deny { retry_after } => assert!(
                retry_after > Duration::from_millis(300)
                    && retry_after <= Duration::from_millis(500),
                "{retry_after:?}"
            ),
            Decision::Allow => panic!("the fourth request of a burst of 3 must wait"),
        }
        assert_eq!(limiter.check("b", q).await.unwrap(), Decision::Allow);
    }

    /// A group counts each of its requests in order, as one at a time would.
    pub async fn groups_count_in_order(limiter: &dyn RateLimiter) {
        let q = Quota {
            per_second: 2.0,
            burst: 2,
        };
        let item = |k: &str| (k.to_string(), q);
        let found = limiter
            .check_many(&[item("g1"), item("g2"), item("g1"), item("g1")])
            .await
            .unwrap();
        assert_eq!(&found[..3], &[Decision::Allow; 3]);
        assert!(
            matches!(found[3], Decision::Deny { .. }),
            "the third of a burst of 2: {:?}",
            found[3]
        );
        assert!(matches!(
            limiter.check("g1", q).await.unwrap(),
            Decision::Deny { .. }
        ));
        assert_eq!(limiter.check_many(&[]).await.unwrap(), Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_second: 10.0,
        burst: 5,
    };

    #[test]
    fn sustained_rate_is_admitted_and_faster_is_not() {
        let mut tat = None;
        let mut now = 1_000_000u64;
        // 100 requests exactly at the rate: all pass.
        for _ in 0..100 {
            let (d, t) = gcra(tat, now, Q);
            assert_eq!(d, Decision::Allow);
            tat = t;
            now += 100_000;
        }
        // Twice the rate: after the burst is used up, every other one is denied.
        let mut denied = 0;
        for _ in 0..100 {
            let (d, t) = gcra(tat, now, Q);
            match d {
                Decision::Allow => tat = t,
                Decision::Deny { .. } => denied += 1,
            }
            now += 50_000;
        }
        assert!(
            (45..=55).contains(&denied),
            "denied {denied} of 100 at 2x rate"
        );
    }

    #[test]
    fn a_denied_request_does_not_consume_quota() {
        let now = 5_000_000;
        let mut tat = None;
        for _ in 0..5 {
            tat = gcra(tat, now, Q).1;
        }
        let (d, t) = gcra(tat, now, Q);
        assert!(matches!(d, Decision::Deny { .. }) && t.is_none());
        let Decision::Deny { retry_after } = d else {
            unreachable!()
        };
        let later = now + retry_after.as_micros() as u64;
        assert_eq!(
            gcra(tat, later, Q).0,
            Decision::Allow,
            "retry_after is exact"
        );
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert!(Quota {
            per_second: 0.0,
            burst: 1
        }
        .check()
        .is_err());
        assert!(Quota {
            per_second: 1.0,
            burst: 0
        }
        .check()
        .is_err());
        assert!(Quota {
            per_second: f64::NAN,
            burst: 1
        }
        .check()
        .is_err());
        assert!(Q.check().is_ok());
    }
}
