//! Keys in PostgreSQL (table `idempotency_keys`, migration
//! `0009_idempotency.sql`) for a node with PostgreSQL and no Redis, so that
//! a restart, or a second node on the same database, sees them as Redis
//! would. A reservation is one `INSERT … ON CONFLICT` that takes the key
//! only when it is free or expired: the row lock makes exactly one
//! concurrent request its owner.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use super::{
    wall_clock, Clock, IdempotencyError, IdempotencyStore, Record, Reservation, StoredResponse,
    KEY_TTL, PENDING_TTL,
};

/// Expired keys are deleted every this many reservations.
const SWEEP_EVERY: usize = 1024;

/// How often a reservation re-reads a key that changed between its two
/// statements (released or expired in between) before giving up.
const RACE_RETRIES: usize = 3;

#[derive(Clone)]
pub struct PgIdempotency {
    pool: PgPool,
    since_sweep: Arc<AtomicUsize>,
    clock: Clock,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> IdempotencyError {
    IdempotencyError {
        backend: "postgres",
        source: Box::new(e),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("key {0:?} kept changing while being reserved")]
struct KeyRace(String);

impl PgIdempotency {
    /// Use a pool on the history database (migrated by `PgHistory::connect`).
    pub fn new(pool: PgPool) -> Self {
        PgIdempotency {
            pool,
            since_sweep: Arc::new(AtomicUsize::new(0)),
            clock: wall_clock(),
        }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotency {
    async fn reserve(&self, key: &str, fingerprint: &str) -> Result<Reservation, IdempotencyError> {
        let now = self.clock.now_ms();
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_ms <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
        }
        for _ in 0..RACE_RETRIES {
            // Take the key if it is free, or held by an expired record.
            let taken: Option<i32> = sqlx::query_scalar(
                "INSERT INTO idempotency_keys (key, fingerprint, status, body, expires_ms) \
                 VALUES ($1, $2, NULL, NULL, $3) \
                 ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                     status = NULL, body = NULL, expires_ms = EXCLUDED.expires_ms \
                 WHERE idempotency_keys.expires_ms <= $4 \
                 RETURNING 1",
            )
            .bind(key)
            .bind(fingerprint)
            .bind(now + ms(PENDING_TTL))
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
            if taken.is_some() {
                return Ok(Reservation::New);
            }
            // Someone holds it: what for?
            let found: Option<(String, Option<i32>, Option<String>)> = sqlx::query_as(
                "SELECT fingerprint, status, body FROM idempotency_keys \
                 WHERE key = $1 AND expires_ms > $2",
            )
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
            if let Some((fingerprint_found, status, body)) = found {
                let record = Record {
                    fingerprint: fingerprint_found,
                    response: status.zip(body).map(|(status, body)| StoredResponse {
                        status: status as u16,
                        body,
                    }),
                };
                return Ok(record.reservation(fingerprint));
            }
            // Released or expired between the two statements: try again.
        }
        Err(unavailable(KeyRace(key.to_string())))
    }

    async fn complete_many(
        &self,
        items: &[(String, String, StoredResponse)],
    ) -> Result<(), IdempotencyError> {
        if items.is_empty() {
            return Ok(());
        }
        let expires = self.clock.now_ms() + ms(KEY_TTL);
        let mut keys = Vec::with_capacity(items.len());
        let mut fingerprints = Vec::with_capacity(items.len());
        let mut statuses = Vec::with_capacity(items.len());
        let mut bodies = Vec::with_capacity(items.len());
        for (key, fingerprint, r) in items {
            keys.push(key.as_str());
            fingerprints.push(fingerprint.as_str());
            statuses.push(i32::from(r.status));
            bodies.push(r.body.as_str());
        }
        // One statement for the batch. A key twice in one batch cannot
        // happen (one reservation each), but would be an error here.
        sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, status, body, expires_ms) \
             SELECT k, f, s, b, $5 FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::text[]) \
                 AS t(k, f, s, b) \
             ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                 status = EXCLUDED.status, body = EXCLUDED.body, expires_ms = EXCLUDED.expires_ms",
        )
        .bind(&keys)
        .bind(&fingerprints)
        .bind(&statuses)
        .bind(&bodies)
        .bind(expires)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;

    async fn store() -> PgIdempotency {
        let url = crate::testing::postgres().await;
        PgIdempotency::new(PgPool::connect(&url).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_on_real_postgres() {
        let store = store().await;
        conformance::same_body_replays_other_body_conflicts(&store).await;
        conformance::groups_reserve_like_one_at_a_time(&store).await;
        conformance::concurrent_reservations_have_one_winner(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn keys_survive_a_new_pool() {
        let url = crate::testing::postgres().await;
        conformance::keys_survive_reopening(|| async {
            PgIdempotency::new(PgPool::connect(&url).await.unwrap())
        })
        .await;
    }

    #[tokio::test]
    async fn keys_expire_after_a_day_and_stuck_reservations_after_their_ttl() {
        let mut store = store().await;
        let (clock, advance) = conformance::manual_clock();
        store.clock = clock;
        conformance::keys_and_stuck_reservations_expire(&store, advance).await;
    }

    #[tokio::test]
    async fn expired_keys_are_swept() {
        let store = store().await;
        let rows = |s: PgIdempotency| async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM idempotency_keys")
                .fetch_one(&s.pool)
                .await
                .unwrap()
        };
        // A key left by a request that died long ago.
        sqlx::query("INSERT INTO idempotency_keys VALUES ('old', 'fp', NULL, NULL, 1)")
            .execute(&store.pool)
            .await
            .unwrap();
        for i in 0..SWEEP_EVERY {
            store.reserve(&format!("k{i}"), "fp").await.unwrap();
        }
        assert_eq!(
            rows(store.clone()).await,
            SWEEP_EVERY as i64,
            "the expired key is gone"
        );
    }
}
