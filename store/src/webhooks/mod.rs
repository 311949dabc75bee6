//! Persisted webhook delivery state behind a narrow trait: PostgreSQL in
//! production, SQLite in the embedded default (tables of migration
//! `0004_delivery.sql`, applied with the history schema). A restart resumes
//! from here: pending deliveries keep their attempt count and next time.

mod postgres;
mod sqlite;

pub use self::postgres::PgWebhooks;
pub use self::sqlite::SqliteWebhooks;

use async_trait::async_trait;
use serde::Serialize;

use crate::row::Row;
use crate::StoreError;

/// A delivery to queue: one event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub endpoint: String,
    pub event_seq: u64,
    pub event_id: String,
    /// The exact bytes POSTed (and signed) on every attempt.
    pub body: String,
}

/// A queued delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingDelivery {
    pub id: i64,
    pub endpoint: String,
    pub event_seq: u64,
    pub event_id: String,
    #[serde(skip)]
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    /// Set once answered 2xx.
    pub delivered_ms: Option<i64>,
}

/// A delivery that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDeadLetter {
    pub id: i64,
    pub endpoint: String,
    pub event_seq: u64,
    pub event_id: String,
    /// The event as it was POSTed.
    pub body: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub failed_ms: i64,
    /// When it was put back in the queue, if it was.
    pub retried_ms: Option<i64>,
}

/// What a dead-letter retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Queued again as delivery `id`.
    Queued(i64),
    /// No dead letter with that id.
    NotFound,
    /// That event is already queued for that endpoint.
    AlreadyQueued,
}

/// Columns read by [`pending_row`], in its order.
pub(crate) const PENDING_COLS: &str = "id, endpoint, event_seq, event_id, body, attempts, next_attempt_ms, last_error, created_ms, delivered_ms";

/// A `webhook_deliveries` row selected as [`PENDING_COLS`].
pub(crate) fn pending_row(r: &impl Row) -> Result<PendingDelivery, StoreError> {
    Ok(PendingDelivery {
        id: r.int(0)?,
        endpoint: r.text(1)?,
        event_seq: r.uint(2)?,
        event_id: r.text(3)?,
        body: r.text(4)?,
        attempts: r.small(5)?,
        next_attempt_ms: r.int(6)?,
        last_error: r.opt_text(7)?,
        created_ms: r.int(8)?,
        delivered_ms: r.opt_int(9)?,
    })
}

/// Columns read by [`dead_letter_row`], in its order.
pub(crate) const DEAD_LETTER_COLS: &str =
    "id, endpoint, event_seq, event_id, body, attempts, last_error, created_ms, failed_ms, retried_ms";

/// A `webhook_dead_letters` row selected as [`DEAD_LETTER_COLS`].
pub(crate) fn dead_letter_row(r: &impl Row) -> Result<WebhookDeadLetter, StoreError> {
    Ok(WebhookDeadLetter {
        id: r.int(0)?,
        endpoint: r.text(1)?,
        event_seq: r.uint(2)?,
        event_id: r.text(3)?,
        body: r.text(4)?,
        attempts: r.small(5)?,
        last_error: r.opt_text(6)?,
        created_ms: r.int(7)?,
        failed_ms: r.int(8)?,
        retried_ms: r.opt_int(9)?,
    })
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// The last event seq turned into deliveries; created at `initial` (the
    /// log's head, so a new deployment does not replay all history) if absent.
    async fn cursor(&self, initial: u64) -> Result<u64, StoreError>;
    /// Queue `deliveries` (ignoring ones already queued) and move the cursor
    /// to `cursor`, in one transaction.
    async fn enqueue(
        &self,
        deliveries: &[NewDelivery],
        cursor: u64,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Claim up to `limit` deliveries due at `now_ms` for `lease_ms`.
    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// When the earliest undelivered delivery is due.
    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;
    /// Answered 2xx on attempt `attempts`.
    async fn delivered(&self, id: i64, attempts: u32, now_ms: i64) -> Result<(), StoreError>;
    /// Attempt `attempts` failed; try again at `next_attempt_ms`.
    async fn failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError>;
    /// The last attempt failed: move it to the dead-letter table.
    async fn dead(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Newest first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<WebhookDeadLetter>, StoreError>;
    /// Queue a dead letter again (attempts start over).
    async fn retry_dead_letter(&self, id: i64, now_ms: i64) -> Result<RetryOutcome, StoreError>;
    /// Delete up to `limit` deliveries answered 2xx before `before_ms`,
    /// oldest first; returns how many went. Undelivered ones are never touched.
    async fn prune_delivered(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;
    /// Every delivery of `event_seq` (tests, diagnostics).
    async fn deliveries_of(&self, event_seq: u64) -> Result<Vec<PendingDelivery>, StoreError>;
}
