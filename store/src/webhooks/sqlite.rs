//! [`WebhookStore`] on the embedded default's SQLite file. Its own
//! connection to the history file (WAL: it does not block the ingest
//! writer for long); the schema comes with the history migrations.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::sqlite::SideConnection;
use crate::StoreError;

use super::{
    dead_letter_row, pending_row, NewDelivery, PendingDelivery, RetryOutcome, WebhookDeadLetter,
    WebhookStore, DEAD_LETTER_COLS, PENDING_COLS,
};

/// Webhook state in SQLite.
#[derive(Clone)]
pub struct SqliteWebhooks {
    conn: SideConnection,
}

impl SqliteWebhooks {
    /// Open the history file at `path` (already migrated by `SqliteHistory::open`).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SqliteWebhooks {
            conn: SideConnection::open(path)?,
        })
    }
}

#[async_trait]
impl WebhookStore for SqliteWebhooks {
    async fn cursor(&self, initial: u64) -> Result<u64, StoreError> {
        self.conn
            .run(move |c| {
                c.execute(
                "INSERT INTO webhook_cursor (id, seq) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                params![initial as i64],
            )?;
                let seq: i64 =
                    c.query_row("SELECT seq FROM webhook_cursor WHERE id = 1", [], |r| {
                        r.get(0)
                    })?;
                Ok(seq as u64)
            })
            .await
    }

    async fn enqueue(
        &self,
        deliveries: &[NewDelivery],
        cursor: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let deliveries = deliveries.to_vec();
        self.conn.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO webhook_deliveries (endpoint, event_seq, event_id, body, next_attempt_ms, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (endpoint, event_seq) DO NOTHING",
                )?;
                for d in &deliveries {
                    ins.execute(params![d.endpoint, d.event_seq as i64, d.event_id, d.body, now_ms])?;
                }
            }
            tx.execute(
                "UPDATE webhook_cursor SET seq = MAX(seq, ?1) WHERE id = 1",
                params![cursor as i64],
            )?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.conn
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let rows = {
                    let mut q = tx.prepare_cached(&format!(
                        "SELECT {PENDING_COLS} FROM webhook_deliveries
                     WHERE delivered_ms IS NULL AND next_attempt_ms <= ?1 AND lease_until_ms <= ?1
                     ORDER BY next_attempt_ms, id LIMIT ?2"
                    ))?;
                    let rows = q
                        .query_map(params![now_ms, limit], |r| Ok(pending_row(r)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    // A row that does not map ends the claim (nothing leased).
                    match rows.into_iter().collect::<Result<Vec<_>, StoreError>>() {
                        Ok(rows) => rows,
                        Err(e) => return Ok(Err(e)),
                    }
                };
                {
                    let mut lease = tx.prepare_cached(
                        "UPDATE webhook_deliveries SET lease_until_ms = ?2 WHERE id = ?1",
                    )?;
                    for r in &rows {
                        lease.execute(params![r.id, now_ms + lease_ms])?;
                    }
                }
                tx.commit()?;
                Ok(Ok(rows))
            })
            .await?
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.conn.run(|c| {
            Ok(c.query_row(
                "SELECT MIN(MAX(next_attempt_ms, lease_until_ms)) FROM webhook_deliveries WHERE delivered_ms IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn delivered(&self, id: i64, attempts: u32, now_ms: i64) -> Result<(), StoreError> {
        self.conn.run(move |c| {
            c.execute(
                "UPDATE webhook_deliveries SET delivered_ms = ?2, attempts = ?3, lease_until_ms = 0 WHERE id = ?1",
                params![id, now_ms, attempts],
            )?;
            Ok(())
        })
        .await
    }

    async fn failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        self.conn.run(move |c| {
            c.execute(
                "UPDATE webhook_deliveries SET attempts = ?2, last_error = ?3, next_attempt_ms = ?4, lease_until_ms = 0 WHERE id = ?1",
                params![id, attempts, error, next_attempt_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn dead(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let error = error.to_string();
        self.conn.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO webhook_dead_letters (endpoint, event_seq, event_id, body, attempts, last_error, created_ms, failed_ms)
                 SELECT endpoint, event_seq, event_id, body, ?2, ?3, created_ms, ?4 FROM webhook_deliveries WHERE id = ?1",
                params![id, attempts, error, now_ms],
            )?;
            let dl = tx.last_insert_rowid();
            tx.execute("DELETE FROM webhook_deliveries WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(dl)
        })
        .await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<WebhookDeadLetter>, StoreError> {
        self.conn
            .run(move |c| {
                let mut q = c.prepare_cached(&format!(
                    "SELECT {DEAD_LETTER_COLS} FROM webhook_dead_letters ORDER BY id DESC LIMIT ?1"
                ))?;
                let rows = q
                    .query_map(params![limit], |r| Ok(dead_letter_row(r)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows.into_iter().collect::<Result<Vec<_>, StoreError>>())
            })
            .await?
    }

    async fn retry_dead_letter(&self, id: i64, now_ms: i64) -> Result<RetryOutcome, StoreError> {
        self.conn.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM webhook_dead_letters WHERE id = ?1", params![id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(RetryOutcome::NotFound);
            }
            let n = tx.execute(
                "INSERT INTO webhook_deliveries (endpoint, event_seq, event_id, body, next_attempt_ms, created_ms)
                 SELECT endpoint, event_seq, event_id, body, ?2, ?2 FROM webhook_dead_letters WHERE id = ?1
                 ON CONFLICT (endpoint, event_seq) DO NOTHING",
                params![id, now_ms],
            )?;
            if n == 0 {
                return Ok(RetryOutcome::AlreadyQueued);
            }
            let new_id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE webhook_dead_letters SET retried_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            tx.commit()?;
            Ok(RetryOutcome::Queued(new_id))
        })
        .await
    }

    async fn prune_delivered(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.conn
            .run(move |c| {
                let n = c.execute(
                    "DELETE FROM webhook_deliveries WHERE id IN (
                     SELECT id FROM webhook_deliveries
                     WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1
                     ORDER BY delivered_ms LIMIT ?2)",
                    params![before_ms, i64::from(limit)],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn deliveries_of(&self, event_seq: u64) -> Result<Vec<PendingDelivery>, StoreError> {
        self.conn
            .run(move |c| {
                let mut q = c.prepare_cached(&format!(
                "SELECT {PENDING_COLS} FROM webhook_deliveries WHERE event_seq = ?1 ORDER BY id"
            ))?;
                let rows = q
                    .query_map(params![event_seq as i64], |r| Ok(pending_row(r)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows.into_iter().collect::<Result<Vec<_>, StoreError>>())
            })
            .await?
    }
}
