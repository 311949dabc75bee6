//! Keys in process memory (embedded default). Expired entries are swept
//! lazily, so memory stays bounded by the keys of the last 24 h.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    IdempotencyError, IdempotencyStore, Record, Reservation, StoredResponse, KEY_TTL, PENDING_TTL,
};

#[derive(Default)]
pub struct MemoryIdempotency {
    keys: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, (Record, Instant)>,
    /// Sweep expired keys every this many reservations.
    since_sweep: usize,
}

impl MemoryIdempotency {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // Never held across an await; a panic elsewhere leaves it consistent.
        f(&mut self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn reserve(&self, key: &str, fingerprint: &str) -> Result<Reservation, IdempotencyError> {
        let now = Instant::now();
        Ok(self.with(|inner| {
            inner.since_sweep += 1;
            if inner.since_sweep >= 1024 {
                inner.since_sweep = 0;
                inner.map.retain(|_, (_, exp)| *exp > now);
            }
            match inner.map.get(key) {
                Some((rec, exp)) if *exp > now => rec.reservation(fingerprint),
                _ => {
                    let rec = Record {
                        fingerprint: fingerprint.to_string(),
                        response: None,
                    };
                    inner.map.insert(key.to_string(), (rec, now + PENDING_TTL));
                    Reservation::New
                }
            }
        }))
    }

    async fn complete_many(
        &self,
        items: &[(String, String, StoredResponse)],
    ) -> Result<(), IdempotencyError> {
        let expires = Instant::now() + KEY_TTL;
        self.with(|inner| {
            for (key, fingerprint, response) in items {
                let rec = Record {
                    fingerprint: fingerprint.clone(),
                    response: Some(response.clone()),
                };
                inner.map.insert(key.clone(), (rec, expires));
            }
        });
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        self.with(|inner| inner.map.remove(key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn conforms() {
        conformance::same_body_replays_other_body_conflicts(&MemoryIdempotency::new()).await;
        conformance::groups_reserve_like_one_at_a_time(&MemoryIdempotency::new()).await;
        conformance::concurrent_reservations_have_one_winner(Arc::new(MemoryIdempotency::new()))
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn keys_expire_after_a_day_and_stuck_reservations_after_their_ttl() {
        conformance::keys_and_stuck_reservations_expire(&MemoryIdempotency::new(), |d| {
            tokio::time::advance(d)
        })
        .await;
    }
}
