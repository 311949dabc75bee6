//! [`WebhookStore`] on PostgreSQL (production). Several instances may run
//! senders on one database: claiming uses `FOR UPDATE SKIP LOCKED` and a
//! lease, and queuing ignores deliveries another instance already queued.

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::postgres::pg_err;
use crate::StoreError;

use super::{
    dead_letter_row, pending_row, NewDelivery, PendingDelivery, RetryOutcome, WebhookDeadLetter,
    WebhookStore, DEAD_LETTER_COLS, PENDING_COLS,
};

/// Webhook state in PostgreSQL.
#[derive(Clone)]
pub struct PgWebhooks {
    pool: PgPool,
}

impl PgWebhooks {
    /// Connect to the history database (already migrated by `PgHistory::connect`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(pg_err)?;
        Ok(PgWebhooks { pool })
    }
}

#[async_trait]
impl WebhookStore for PgWebhooks {
    async fn cursor(&self, initial: u64) -> Result<u64, StoreError> {
        sqlx::query(
            "INSERT INTO webhook_cursor (id, seq) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(initial as i64)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM webhook_cursor WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(seq as u64)
    }

    async fn enqueue(
        &self,
        deliveries: &[NewDelivery],
        cursor: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        if !deliveries.is_empty() {
            let endpoints: Vec<&str> = deliveries.iter().map(|d| d.endpoint.as_str()).collect();
            let seqs: Vec<i64> = deliveries.iter().map(|d| d.event_seq as i64).collect();
            let ids: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
            let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
            sqlx::query(
                "INSERT INTO webhook_deliveries (endpoint, event_seq, event_id, body, next_attempt_ms, created_ms)
                 SELECT e, s, i, b, $5, $5 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[]) AS t(e, s, i, b)
                 ON CONFLICT (endpoint, event_seq) DO NOTHING",
            )
            .bind(&endpoints)
            .bind(&seqs)
            .bind(&ids)
            .bind(&bodies)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        }
        sqlx::query("UPDATE webhook_cursor SET seq = GREATEST(seq, $1) WHERE id = 1")
            .bind(cursor as i64)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET lease_until_ms = $1 + $3
             WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE delivered_ms IS NULL AND next_attempt_ms <= $1 AND lease_until_ms <= $1
                 ORDER BY next_attempt_ms, id LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING {PENDING_COLS}"
        ))
        .bind(now_ms)
        .bind(i64::from(limit))
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        let mut out = rows
            .iter()
            .map(pending_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|d| (d.next_attempt_ms, d.id));
        Ok(out)
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_ms, lease_until_ms)) FROM webhook_deliveries WHERE delivered_ms IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)
    }

    async fn delivered(&self, id: i64, attempts: u32, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET delivered_ms = $2, attempts = $3, lease_until_ms = 0 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .bind(attempts as i32)
        .execute(&self.pool)
        .await
        .map_err(pg_err)
        .map(drop)
    }

    async fn failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $2, last_error = $3, next_attempt_ms = $4, lease_until_ms = 0 WHERE id = $1",
        )
        .bind(id)
        .bind(attempts as i32)
        .bind(error)
        .bind(next_attempt_ms)
        .execute(&self.pool)
        .await
        .map_err(pg_err)
        .map(drop)
    }

    async fn dead(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let dl: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_dead_letters (endpoint, event_seq, event_id, body, attempts, last_error, created_ms, failed_ms)
             SELECT endpoint, event_seq, event_id, body, $2, $3, created_ms, $4 FROM webhook_deliveries WHERE id = $1
             RETURNING id",
        )
        .bind(id)
        .bind(attempts as i32)
        .bind(error)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(pg_err)?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(dl)
    }

    async fn prune_delivered(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE delivered_ms IS NOT NULL AND delivered_ms < $1
                 ORDER BY delivered_ms LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(done.rows_affected())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<WebhookDeadLetter>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLS} FROM webhook_dead_letters ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(dead_letter_row).collect()
    }

    async fn retry_dead_letter(&self, id: i64, now_ms: i64) -> Result<RetryOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM webhook_dead_letters WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_err)?;
        if exists.is_none() {
            return Ok(RetryOutcome::NotFound);
        }
        let new_id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (endpoint, event_seq, event_id, body, next_attempt_ms, created_ms)
             SELECT endpoint, event_seq, event_id, body, $2, $2 FROM webhook_dead_letters WHERE id = $1
             ON CONFLICT (endpoint, event_seq) DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_err)?;
        let Some(new_id) = new_id else {
            return Ok(RetryOutcome::AlreadyQueued);
        };
        sqlx::query("UPDATE webhook_dead_letters SET retried_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(RetryOutcome::Queued(new_id))
    }

    async fn deliveries_of(&self, event_seq: u64) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PENDING_COLS} FROM webhook_deliveries WHERE event_seq = $1 ORDER BY id"
        ))
        .bind(event_seq as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(pending_row).collect()
    }
}
