//! GCRA state in process memory (embedded default).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{gcra, Decision, Quota, RateLimitError, RateLimiter};

pub struct MemoryRateLimiter {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter {
            epoch: Instant::now(),
            tats: Mutex::default(),
        }
    }
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        // Microseconds since start; +1 s so "no history" (tat = now) is never 0.
        let now = self.epoch.elapsed().as_micros() as u64 + 1_000_000;
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() > 100_000 {
            // Keys whose arrival time has passed carry no state: drop them.
            tats.retain(|_, tat| *tat > now);
        }
        let (decision, tat) = gcra(tats.get(key).copied(), now, quota);
        if let Some(tat) = tat {
            tats.insert(key.to_string(), tat);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        super::super::conformance::burst_then_deny(&MemoryRateLimiter::new()).await;
        super::super::conformance::groups_count_in_order(&MemoryRateLimiter::new()).await;
    }
}
