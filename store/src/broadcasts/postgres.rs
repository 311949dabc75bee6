//! [`BroadcastStore`] on PostgreSQL (production). Claims use `FOR UPDATE
//! SKIP LOCKED` and a lease, so several nodes on one database share the work.

use async_trait::async_trait;
use sqlx::postgres::PgPool;

use crate::postgres::pg_err;
use crate::StoreError;

use super::{
    attempt_row, broadcast_row, next_columns, reason_columns, Attempt, Broadcast, BroadcastHistory,
    BroadcastStore, NewBroadcast, Next, COLS,
};

#[derive(Clone)]
pub struct PgBroadcasts {
    pool: PgPool,
}

impl PgBroadcasts {
    /// Use the history pool (the schema comes with the history migrations).
    pub fn new(pool: PgPool) -> Self {
        PgBroadcasts { pool }
    }
}

#[async_trait]
impl BroadcastStore for PgBroadcasts {
    async fn schedule(&self, items: &[NewBroadcast]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch: the relay batches concurrent requests.
        let col = |f: fn(&NewBroadcast) -> String| items.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO relay_broadcasts (txid, payment_id, function, tx, request_id, \
             idempotency_key, state, attempts, next_attempt_ms, created_ms, updated_ms) \
             SELECT t, p, f, x, r, k, 'scheduled', 0, d, n, n \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) \
               AS u(t, p, f, x, r, k, n, d) \
             ON CONFLICT (txid) DO NOTHING",
        )
        .bind(col(|i| i.txid.clone()))
        .bind(col(|i| i.payment_id.clone()))
        .bind(col(|i| i.function.clone()))
        .bind(items.iter().map(|i| i.tx.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.request_id.clone()).collect::<Vec<_>>())
        .bind(col(|i| i.idempotency_key.clone()))
        .bind(items.iter().map(|i| i.now_ms).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.next_attempt_ms).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Broadcast>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE relay_broadcasts SET next_attempt_ms = $2 \
             WHERE txid IN (SELECT txid FROM relay_broadcasts \
               WHERE state = 'scheduled' AND next_attempt_ms <= $1 \
               ORDER BY next_attempt_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLS}"
        ))
        // Planned per call: a cached generic plan made while the table was
        // empty scans every broadcast ever made instead of the due index.
        .persistent(false)
        .bind(now_ms)
        .bind(now_ms + lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(broadcast_row).collect()
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_ms) FROM relay_broadcasts WHERE state = 'scheduled'",
        )
        .persistent(false)
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)
    }

    async fn record_many(
        &self,
        records: &[(String, Attempt, Next)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let txids: Vec<&str> = records.iter().map(|(t, _, _)| t.as_str()).collect();
        let attempts: Vec<i32> = records.iter().map(|(_, a, _)| a.attempt as i32).collect();
        let at: Vec<i64> = records.iter().map(|(_, a, _)| a.at_ms).collect();
        let providers: Vec<Option<String>> =
            records.iter().map(|(_, a, _)| a.provider.clone()).collect();
        let outcomes: Vec<&str> = records.iter().map(|(_, a, _)| a.outcome.as_str()).collect();
        let reasons: Vec<Option<String>> =
            records.iter().map(|(_, a, _)| a.reason.clone()).collect();
        let latency: Vec<i64> = records
            .iter()
            .map(|(_, a, _)| a.latency_ms as i64)
            .collect();
        let delays: Vec<Option<i64>> = records
            .iter()
            .map(|(_, a, _)| a.next_delay_ms.map(|v| v as i64))
            .collect();
        let cols: Vec<_> = records
            .iter()
            .map(|(_, a, n)| (next_columns(n, now_ms), reason_columns(a, n)))
            .collect();
        let states: Vec<&str> = cols.iter().map(|((s, _), _)| s.as_str()).collect();
        let next_ms: Vec<i64> = cols.iter().map(|((_, n), _)| *n).collect();
        let last_reasons: Vec<Option<String>> = cols.iter().map(|(_, (r, _))| r.clone()).collect();
        let data: Vec<Option<String>> = cols.iter().map(|(_, (_, d))| d.clone()).collect();
        // One statement (its own transaction): the attempts and the rows'
        // new state together, in one round trip instead of four.
        sqlx::query(
            "WITH a AS (INSERT INTO relay_attempts (txid, attempt, at_ms, provider, outcome, \
               reason, latency_ms, next_delay_ms) \
               SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[], \
                 $6::text[], $7::bigint[], $8::bigint[]) \
               ON CONFLICT (txid, attempt) DO NOTHING) \
             UPDATE relay_broadcasts b SET state = u.state, \
             attempts = GREATEST(b.attempts, u.attempt), next_attempt_ms = u.next_ms, \
             updated_ms = $13, last_reason = u.reason, reason_data = u.data, \
             provider = COALESCE(u.provider, b.provider) \
             FROM UNNEST($1::text[], $9::text[], $2::int[], $10::bigint[], $11::text[], \
               $12::text[], $4::text[]) AS u(txid, state, attempt, next_ms, reason, data, provider) \
             WHERE b.txid = u.txid",
        )
        // Planned per call (see `claim_due`): an index lookup per row, not a scan.
        .persistent(false)
        .bind(&txids)
        .bind(&attempts)
        .bind(&at)
        .bind(&providers)
        .bind(&outcomes)
        .bind(&reasons)
        .bind(&latency)
        .bind(&delays)
        .bind(&states)
        .bind(&next_ms)
        .bind(&last_reasons)
        .bind(&data)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn for_payment(&self, payment_id: &str) -> Result<Vec<BroadcastHistory>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM relay_broadcasts WHERE payment_id = $1 ORDER BY created_ms, txid"
        ))
        .bind(payment_id)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let b = broadcast_row(r)?;
            let attempts = sqlx::query(
                "SELECT attempt, at_ms, provider, outcome, reason, latency_ms, next_delay_ms \
                 FROM relay_attempts WHERE txid = $1 ORDER BY attempt",
            )
            .bind(&b.txid)
            .fetch_all(&self.pool)
            .await
            .map_err(pg_err)?;
            out.push(BroadcastHistory {
                attempts_made: attempts.iter().map(attempt_row).collect::<Result<_, _>>()?,
                broadcast: b,
            });
        }
        Ok(out)
    }

    async fn get(&self, txid: &str) -> Result<Option<Broadcast>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM relay_broadcasts WHERE txid = $1"
        ))
        .bind(txid)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        row.as_ref().map(broadcast_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_on_real_postgres() {
        let url = crate::testing::postgres().await;
        let pool = PgPool::connect(&url).await.unwrap();
        super::super::conformance::lifecycle(&PgBroadcasts::new(pool)).await;
    }

    #[tokio::test]
    async fn schedules_with_a_history_commit_on_real_postgres() {
        let url = crate::testing::postgres().await;
        let history = crate::postgres::PgHistory::connect(&url).await.unwrap();
        let store = PgBroadcasts::new(PgPool::connect(&url).await.unwrap());
        super::super::conformance::attached_to_history(&history, &store).await;
    }
}
