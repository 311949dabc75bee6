//! [`History`] on PostgreSQL: the production backend.
//!
//! Schema: `migrations/postgres/` (embedded, run at [`PgHistory::connect`]).
//! A commit is one transaction with one statement per table: rows go in as
//! arrays through `UNNEST`, so 1,000 events cost one round trip, not 1,000.
//! Queries are runtime-bound (`sqlx::query`, never values spliced into SQL):
//! the compile-time checked macros would need a database or an offline cache
//! at build time, which this workspace does not have yet.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use sqlx_core::migrate::{MigrateError, Migration, MigrationType, Migrator};
use tokio::sync::{Mutex, MutexGuard};

use super::types::sanitize_text;
use super::{
    AttachedRows, AttachedValues, BlockRecord, CommitBatch, Committed, DeadLetter, Fence, History,
    HistoryGroup, PaymentFilter, StoreError, UndoRecord,
};
use nexus_core::decode::{BlockRef, EscrowTx};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId, Proof};

mod rows;

use rows::Rows;

const BACKEND: &str = "postgresql";
const C: super::codec::Codec = super::codec::Codec(BACKEND);

/// Enough for the observer, the API and the verifier at once; PostgreSQL's
/// default `max_connections` (100) leaves room for several indexers.
const MAX_CONNECTIONS: u32 = 8;
/// An outage must surface as [`StoreError::Unavailable`] (and a 5xx to
/// stacks-node) quickly, not after sqlx's 30 s default.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The history in PostgreSQL, shared through a connection pool.
#[derive(Debug, Clone)]
pub struct PgHistory {
    /// Cloning shares the pool; every call takes one connection for its duration.
    pool: PgPool,
    /// Set on a [`History::group`] handle: every call runs in this one
    /// transaction (taken out by `finish`).
    group: Option<GroupTx>,
}

type GroupTx = Arc<Mutex<GroupInner>>;

/// A commit group's transaction and what it holds back.
#[derive(Debug)]
struct GroupInner {
    /// `None` once finished.
    tx: Option<Transaction<'static, Postgres>>,
    /// `meta.last_seq` as of the group's last commit: the first commit took
    /// the row lock, so no one else can move it until the group ends.
    last_seq: Option<u64>,
    /// Rows of the commits made since the lock was taken that only add rows
    /// (an empty block, a block's payments and events: nearly all of an
    /// import), written with one statement per table before anything else
    /// runs on the group's transaction: see [`Rows`].
    pending: Rows,
}

/// The connection a call runs on: its own from the pool, or the group's.
enum Conn<'a> {
    Pooled(PoolConnection<Postgres>),
    Group(MutexGuard<'a, GroupInner>),
}

impl Deref for Conn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Pooled(c) => c,
            // `conn` hands out a guard only while the transaction is there.
            Conn::Group(g) => g.tx.as_ref().expect("open group transaction"),
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Group(g) => g.tx.as_mut().expect("open group transaction"),
        }
    }
}

impl PgHistory {
    /// Connect to `url` (`postgres://user@host:port/db`) and bring the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before every use: that is one more round trip per
            // commit on the serial ingest path. A connection that died is
            // found by the statement that uses it: a temporary error (the
            // caller retries) and sqlx drops the connection.
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(pg_err)?;
        let history = Self::from_pool(pool);
        history.migrate().await?;
        Ok(history)
    }

    /// Wrap an existing pool. Does not run migrations; see [`PgHistory::migrate`].
    pub fn from_pool(pool: PgPool) -> Self {
        PgHistory { pool, group: None }
    }

    async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        match &self.group {
            None => Ok(Conn::Pooled(self.pool.acquire().await.map_err(pg_err)?)),
            Some(g) => {
                let mut guard = g.lock().await;
                let GroupInner { tx, pending, .. } = &mut *guard;
                let Some(tx) = tx.as_mut() else {
                    return Err(StoreError::rejected(
                        BACKEND,
                        "commit group already finished",
                    ));
                };
                // Whatever runs next sees the held-back rows.
                if !pending.is_empty() {
                    pending.write(tx).await?;
                }
                Ok(Conn::Group(guard))
            }
        }
    }

    /// Apply the embedded migrations not yet applied (under sqlx's advisory
    /// lock, so concurrent starts are safe).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator()
            .run(&mut *self.conn().await?)
            .await
            .map_err(migrate_err)
    }

    /// Apply the embedded migrations up to `version` only: for tests of a
    /// later migration's data move (the database holds rows of the old shape).
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let mut m = migrator();
        m.migrations = Cow::Owned(
            m.migrations
                .iter()
                .filter(|x| x.version <= version)
                .cloned()
                .collect(),
        );
        m.run(&mut *self.conn().await?).await.map_err(migrate_err)
    }

    /// The underlying pool (for tests and health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The embedded migrations. Built by hand because sqlx's `migrate!` needs its
/// `migrate` feature, which would link a second libsqlite3-sys (see the root Cargo.toml).
fn migrator() -> Migrator {
    const FILES: &[(i64, &str, &str)] = &[
        (
            1,
            "init",
            include_str!("../../migrations/postgres/0001_init.sql"),
        ),
        (
            2,
            "chain",
            include_str!("../../migrations/postgres/0002_chain.sql"),
        ),
        (
            3,
            "verifier",
            include_str!("../../migrations/postgres/0003_verifier.sql"),
        ),
        (
            4,
            "delivery",
            include_str!("../../migrations/postgres/0004_delivery.sql"),
        ),
        (
            5,
            "ingest",
            include_str!("../../migrations/postgres/0005_ingest.sql"),
        ),
        (
            6,
            "relay",
            include_str!("../../migrations/postgres/0006_relay.sql"),
        ),
        (
            7,
            "block sets",
            include_str!("../../migrations/postgres/0007_block_sets.sql"),
        ),
        (
            8,
            "webhook retention",
            include_str!("../../migrations/postgres/0008_webhook_retention.sql"),
        ),
        (
            9,
            "idempotency",
            include_str!("../../migrations/postgres/0009_idempotency.sql"),
        ),
    ];
    let migrations = FILES
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

#[async_trait]
impl History for PgHistory {
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocks WHERE index_block_hash = $1)")
            .bind(sanitize_text(index_block_hash))
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(pg_err)
    }

    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError> {
        if batch.is_empty() {
            // Nothing to write: skip the transaction and its row lock.
            return Ok(Committed {
                last_seq: self.last_seq().await?,
                ..Default::default()
            });
        }
        match &self.group {
            None => {
                let batch = match batch.expect_last_seq {
                    Some(expected) if single_statement(&batch) => {
                        match write_single(&self.pool, batch, expected).await? {
                            Ok(committed) => return Ok(committed),
                            // Another writer moved the log: number it from `meta`.
                            Err(batch) => batch,
                        }
                    }
                    _ => batch,
                };
                let mut tx = self.pool.begin().await.map_err(pg_err)?;
                let committed = write_batch(&mut tx, batch, None).await?;
                tx.commit().await.map_err(pg_err)?;
                Ok(committed)
            }
            // Durable when the group finishes.
            Some(g) => {
                {
                    let mut inner = g.lock().await;
                    if inner.tx.is_none() {
                        return Err(StoreError::rejected(
                            BACKEND,
                            "commit group already finished",
                        ));
                    }
                    if let (Some(last), true) = (inner.last_seq, only_adds_rows(&batch)) {
                        // The group holds the row lock (its first commit took
                        // it): number the events now, write the rows later.
                        let mut batch = batch;
                        let last_seq = batch.assign_seqs(last);
                        inner.pending.add(&batch, last_seq)?;
                        inner.last_seq = Some(last_seq);
                        return Ok(Committed {
                            events: batch.events,
                            payments: batch.payments,
                            last_seq,
                        });
                    }
                }
                let mut c = self.conn().await?;
                let locked = match &c {
                    Conn::Group(inner) => inner.last_seq,
                    Conn::Pooled(_) => None,
                };
                let committed = write_batch(&mut c, batch, locked).await?;
                if let Conn::Group(inner) = &mut c {
                    inner.last_seq = Some(committed.last_seq);
                }
                Ok(committed)
            }
        }
    }

    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO dead_letters (source, reason, payload, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(sanitize_text(&dl.source))
        .bind(sanitize_text(&dl.reason))
        .bind(sanitize_text(&dl.payload))
        .bind(sanitize_text(&dl.at))
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(pg_err)
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, reason, payload, at FROM dead_letters ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id").map_err(pg_err)?,
                    source: r.try_get("source").map_err(pg_err)?,
                    reason: r.try_get("reason").map_err(pg_err)?,
                    payload: r.try_get("payload").map_err(pg_err)?,
                    at: r.try_get("at").map_err(pg_err)?,
                })
            })
            .collect()
    }

    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError> {
        if txids.is_empty() {
            return Ok(Vec::new());
        }
        let txids: Vec<String> = unique(txids.iter().map(|t| sanitize_text(t)));
        // In the order asked, one row per known txid.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.txid, m.payment_id FROM UNNEST($1::text[]) WITH ORDINALITY AS q(txid, ord) \
             JOIN mempool_txs m ON m.txid = q.txid ORDER BY q.ord",
        )
        .bind(txids)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.into_iter()
            .map(|(txid, pid)| {
                Ok((
                    txid,
                    pid.parse().map_err(|e| StoreError::corrupt(BACKEND, e))?,
                ))
            })
            .collect()
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM payments WHERE payment_id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.as_deref().map(|b| C.read_json(b)).transpose()
    }

    async fn get_payments(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(PaymentId::to_string).collect();
        // Planned for each call (an unnamed statement), never from a cached
        // generic plan: one made while `payments` was nearly empty is a
        // sequential scan comparing every row with every id, and it stays
        // that way as the table grows.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT payment_id, body FROM payments WHERE payment_id = ANY($1)")
                .persistent(false)
                .bind(&keys)
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        let found: std::collections::HashMap<String, String> = rows.into_iter().collect();
        keys.iter()
            .map(|k| found.get(k).map(|b| C.read_json(b)).transpose())
            .collect()
    }

    async fn list_payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError> {
        // Only the filters in use become predicates (always bound, never
        // spliced), so each shape gets a plan that uses its index.
        let mut q = QueryBuilder::<Postgres>::new("SELECT body FROM payments WHERE TRUE");
        if let Some(s) = &filter.sender {
            q.push(" AND sender = ").push_bind(sanitize_text(s));
        }
        if let Some(r) = &filter.recipient {
            q.push(" AND recipient = ").push_bind(sanitize_text(r));
        }
        if let Some(st) = filter.status {
            q.push(" AND status = ").push_bind(st.as_str());
        }
        if let Some(a) = &filter.after {
            q.push(" AND payment_id > ").push_bind(sanitize_text(a));
        }
        q.push(" ORDER BY payment_id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let bodies: Vec<String> = q
            .build_query_scalar()
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn payments_changed_since(&self, seq: u64) -> Result<Vec<Payment>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            // Through the event log's key: every change of a payment is an
            // event, and a catch-up after a failed apply is a short range.
            "SELECT body FROM payments WHERE payment_id IN \
             (SELECT payment_id FROM payment_events WHERE seq > $1) \
             ORDER BY updated_seq, payment_id",
        )
        .bind(C.write_int(seq)?)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn events_for_payment(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM payment_events WHERE payment_id = $1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn events_since(&self, after: u64, limit: u32) -> Result<Vec<PaymentEvent>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM payment_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(C.write_int(after)?)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM meta")
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(pg_err)?;
        C.read_int(last)
    }

    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError> {
        // Canonical blocks first; among them the highest, then the newest.
        let row = sqlx::query(
            "SELECT index_block_hash, parent_index_block_hash, block_hash, height, burn_height, \
             burn_hash, time, canonical FROM blocks \
             ORDER BY canonical DESC, height DESC, inserted DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        let Some(r) = row else { return Ok(None) };
        let i64_col = |name: &str| {
            r.try_get::<i64, _>(name)
                .map_err(pg_err)
                .and_then(|v| C.read_int(v))
        };
        Ok(Some(BlockRecord {
            block: BlockRef {
                index_block_hash: r.try_get("index_block_hash").map_err(pg_err)?,
                parent_index_block_hash: r.try_get("parent_index_block_hash").map_err(pg_err)?,
                block_hash: r.try_get("block_hash").map_err(pg_err)?,
                height: i64_col("height")?,
                burn_height: i64_col("burn_height")?,
                burn_hash: r.try_get("burn_hash").map_err(pg_err)?,
                time: i64_col("time")?,
            },
            canonical: r.try_get("canonical").map_err(pg_err)?,
        }))
    }

    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = $1"
        ))
        .bind(sanitize_text(index_block_hash))
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        row.as_ref().map(block_from_row).transpose()
    }

    async fn block_txs(&self, index_block_hash: &str) -> Result<Vec<EscrowTx>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM block_txs WHERE index_block_hash = $1")
                .bind(sanitize_text(index_block_hash))
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.map_or(Ok(Vec::new()), |b| C.read_json(&b))
    }

    async fn undo(&self, index_block_hash: &str) -> Result<Vec<UndoRecord>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM block_undo WHERE index_block_hash = $1")
                .bind(sanitize_text(index_block_hash))
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.map_or(Ok(Vec::new()), |b| {
            rows::undo_from_json(index_block_hash, &b)
        })
    }

    async fn recent_blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks ORDER BY height DESC, inserted DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(block_from_row).collect()
    }

    async fn children(&self, index_block_hash: &str) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE parent_index_block_hash = $1 ORDER BY inserted"
        ))
        .bind(sanitize_text(index_block_hash))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(block_from_row).collect()
    }

    async fn gaps(&self) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks b WHERE NOT b.canonical AND NOT EXISTS \
             (SELECT 1 FROM blocks p WHERE p.index_block_hash = b.parent_index_block_hash) \
             ORDER BY b.height"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(block_from_row).collect()
    }

    async fn settle(&self) -> Result<(), StoreError> {
        if self.group.is_some() {
            // The group's first commit takes the lock itself (and then holds it).
            return Ok(());
        }
        // Every commit holds the meta row lock until it ends: taking it waits them out.
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        sqlx::query("SELECT last_seq FROM meta FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ANY($1::text[])"
        ))
        .bind(hashes)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(block_from_row).collect()
    }

    async fn with_children(&self, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let clean: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let found: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT DISTINCT parent_index_block_hash FROM blocks \
             WHERE parent_index_block_hash = ANY($1::text[])",
        )
        .bind(&clean)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?
        .into_iter()
        .collect();
        // Answer in the caller's spelling (`children` matches the sanitized one too).
        Ok(hashes
            .iter()
            .zip(&clean)
            .filter(|(_, c)| found.contains(*c))
            .map(|(h, _)| h.clone())
            .collect())
    }

    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<EscrowTx>>, StoreError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT index_block_hash, body FROM block_txs WHERE index_block_hash = ANY($1::text[])",
        )
        .bind(hashes)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.into_iter()
            .map(|(hash, body)| Ok((hash, C.read_json(&body)?)))
            .collect()
    }

    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT index_block_hash, body FROM block_undo WHERE index_block_hash = ANY($1::text[])",
        )
        .bind(hashes)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.into_iter()
            .map(|(hash, body)| {
                let recs = rows::undo_from_json(&hash, &body)?;
                Ok((hash, recs))
            })
            .collect()
    }

    async fn group(&self) -> Result<Arc<dyn HistoryGroup>, StoreError> {
        if self.group.is_some() {
            return Err(StoreError::rejected(BACKEND, "commit groups do not nest"));
        }
        let tx = self.pool.begin().await.map_err(pg_err)?;
        Ok(Arc::new(PgHistory {
            pool: self.pool.clone(),
            group: Some(Arc::new(Mutex::new(GroupInner {
                tx: Some(tx),
                last_seq: None,
                pending: Rows::default(),
            }))),
        }))
    }

    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError> {
        if proofs.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(proofs.len());
        let mut bodies = Vec::with_capacity(proofs.len());
        let mut seen = HashMap::with_capacity(proofs.len());
        // One upsert may not touch a row twice: the last proof of an id wins.
        for p in proofs {
            match seen.get(&p.payment_id) {
                Some(&i) => bodies[i] = C.write_json(p)?,
                None => {
                    seen.insert(p.payment_id, ids.len());
                    ids.push(p.payment_id.to_string());
                    bodies.push(C.write_json(p)?);
                }
            }
        }
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        if let Some(f) = fence {
            check_fence(&mut tx, f).await?;
        }
        sqlx::query(
            "INSERT INTO proofs (payment_id, body) SELECT * FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (payment_id) DO UPDATE SET body = EXCLUDED.body",
        )
        .bind(ids)
        .bind(bodies)
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM proofs WHERE payment_id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_err)?;
        body.as_deref().map(|b| C.read_json(b)).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await
            .map(|_| ())
            .map_err(pg_err)
    }
}

/// Everything in `batch`, on `c` (inside a transaction the caller owns).
async fn write_batch(
    c: &mut PgConnection,
    mut batch: CommitBatch,
    locked_last: Option<u64>,
) -> Result<Committed, StoreError> {
    if let Some(f) = &batch.fence {
        check_fence(&mut *c, f).await?;
    }
    let (last, meta_written) = match locked_last {
        // This transaction holds the row lock already (a group's later commits).
        Some(last) => (last, false),
        // The row lock serialises concurrent committers: seqs stay gap-free.
        // Taken by moving `last_seq` past this batch's events at once: one
        // round trip instead of a locking read and a write at the end.
        None => {
            let n =
                i64::try_from(batch.events.len()).map_err(|e| StoreError::rejected(BACKEND, e))?;
            let after: i64 =
                sqlx::query_scalar("UPDATE meta SET last_seq = last_seq + $1 RETURNING last_seq")
                    .bind(n)
                    .fetch_one(&mut *c)
                    .await
                    .map_err(pg_err)?;
            (C.read_int(after - n)?, true)
        }
    };
    let last_seq = batch.assign_seqs(last);

    if !batch.canonical.is_empty() {
        let (hashes, flags): (Vec<String>, Vec<bool>) = batch
            .canonical
            .iter()
            .map(|(h, c)| (sanitize_text(h), *c))
            .unzip();
        sqlx::query(
            "UPDATE blocks SET canonical = u.c FROM UNNEST($1::text[], $2::bool[]) AS u(h, c) \
             WHERE blocks.index_block_hash = u.h",
        )
        .bind(hashes)
        .bind(flags)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    }
    if !batch.undo_clear.is_empty() {
        let hashes: Vec<String> = batch.undo_clear.iter().map(|h| sanitize_text(h)).collect();
        sqlx::query("DELETE FROM block_undo WHERE index_block_hash = ANY($1::text[])")
            .bind(hashes)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
    }
    let mut rows = Rows::default();
    rows.add(&batch, last_seq)?;
    if meta_written {
        rows.meta_written();
    }
    rows.write(&mut *c).await?;
    insert_attached(c, &batch.attached).await?;
    Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    })
}

#[async_trait]
impl HistoryGroup for PgHistory {
    async fn finish(&self) -> Result<(), StoreError> {
        let Some(group) = &self.group else {
            return Err(StoreError::rejected(BACKEND, "not a commit group"));
        };
        let mut inner = group.lock().await;
        let GroupInner { tx, pending, .. } = &mut *inner;
        let Some(mut tx) = tx.take() else {
            return Err(StoreError::rejected(
                BACKEND,
                "commit group already finished",
            ));
        };
        if !pending.is_empty() {
            pending.write(&mut tx).await?;
        }
        tx.commit().await.map_err(pg_err)
    }
}

/// Raise the fence to `f.token` inside `tx`, or refuse: a higher token was
/// already used, so whoever holds `f` lost the lease. The row lock taken
/// here also orders concurrent fenced writers.
async fn check_fence(tx: &mut sqlx::PgConnection, f: &Fence) -> Result<(), StoreError> {
    let raised: Option<i64> = sqlx::query_scalar(
        "INSERT INTO fences (name, token) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
         SET token = EXCLUDED.token WHERE fences.token <= EXCLUDED.token RETURNING token",
    )
    .bind(sanitize_text(&f.name))
    .bind(C.write_int(f.token)?)
    .fetch_optional(tx)
    .await
    .map_err(pg_err)?;
    match raised {
        Some(_) => Ok(()),
        None => Err(StoreError::rejected(
            BACKEND,
            format!("fencing token {} of {:?} is stale", f.token, f.name),
        )),
    }
}

/// Columns read by [`block_from_row`] (unqualified names work with alias `b` too).
const BLOCK_COLS: &str = "index_block_hash, parent_index_block_hash, block_hash, height, \
     burn_height, burn_hash, time, canonical";

fn block_from_row(r: &sqlx::postgres::PgRow) -> Result<BlockRecord, StoreError> {
    let i64_col = |name: &str| {
        r.try_get::<i64, _>(name)
            .map_err(pg_err)
            .and_then(|v| C.read_int(v))
    };
    Ok(BlockRecord {
        block: BlockRef {
            index_block_hash: r.try_get("index_block_hash").map_err(pg_err)?,
            parent_index_block_hash: r.try_get("parent_index_block_hash").map_err(pg_err)?,
            block_hash: r.try_get("block_hash").map_err(pg_err)?,
            height: i64_col("height")?,
            burn_height: i64_col("burn_height")?,
            burn_hash: r.try_get("burn_hash").map_err(pg_err)?,
            time: i64_col("time")?,
        },
        canonical: r.try_get("canonical").map_err(pg_err)?,
    })
}

/// Many blocks in one statement, in order (`inserted` breaks height ties).
async fn insert_blocks(c: &mut PgConnection, blocks: &[BlockRecord]) -> Result<(), StoreError> {
    let n = blocks.len();
    let mut cols = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for b in blocks {
        let blk = &b.block;
        cols.0.push(sanitize_text(&blk.index_block_hash));
        cols.1.push(sanitize_text(&blk.parent_index_block_hash));
        cols.2.push(sanitize_text(&blk.block_hash));
        cols.3.push(C.write_int(blk.height)?);
        cols.4.push(C.write_int(blk.burn_height)?);
        cols.5.push(sanitize_text(&blk.burn_hash));
        cols.6.push(C.write_int(blk.time)?);
        cols.7.push(b.canonical);
    }
    sqlx::query(
        "INSERT INTO blocks (index_block_hash, parent_index_block_hash, block_hash, height, \
         burn_height, burn_hash, time, canonical) \
         SELECT h, p, bh, ht, bht, bhs, t, c FROM UNNEST($1::text[], $2::text[], $3::text[], \
         $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bool[]) \
         WITH ORDINALITY AS u(h, p, bh, ht, bht, bhs, t, c, ord) ORDER BY ord \
         ON CONFLICT (index_block_hash) DO NOTHING",
    )
    .bind(cols.0)
    .bind(cols.1)
    .bind(cols.2)
    .bind(cols.3)
    .bind(cols.4)
    .bind(cols.5)
    .bind(cols.6)
    .bind(cols.7)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// A batch that only adds rows (no fence, no canonical flags, no undo
/// deletions): a commit group may write it later, together with others.
fn only_adds_rows(b: &CommitBatch) -> bool {
    b.fence.is_none() && b.canonical.is_empty() && b.undo_clear.is_empty() && b.attached.is_empty()
}

/// Insert attached rows (if absent), one statement per table.
async fn insert_attached(
    c: &mut PgConnection,
    attached: &[AttachedRows],
) -> Result<(), StoreError> {
    for a in attached.iter().filter(|a| !a.is_empty()) {
        let sql = attached_insert(a, 1, None)?;
        bind_attached(sqlx::query(&sql), a)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
    }
    Ok(())
}

/// `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT DO NOTHING` for `a`, its
/// arrays bound from `$first` on; `only_if`: an extra `WHERE` condition.
/// Names are checked identifiers (constants of the owning component);
/// every value is bound (see [`bind_attached`]).
fn attached_insert(
    a: &AttachedRows,
    first: usize,
    only_if: Option<&str>,
) -> Result<String, StoreError> {
    a.check(BACKEND)?;
    let types = a
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let ty = match v {
                AttachedValues::Text(_) => "text",
                AttachedValues::BigInt(_) => "bigint",
                AttachedValues::Bytes(_) => "bytea",
            };
            format!("${}::{ty}[]", first + i)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let cond = only_if.map(|c| format!(" WHERE {c}")).unwrap_or_default();
    Ok(format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({types}){cond} ON CONFLICT DO NOTHING",
        a.table,
        a.column_list()
    ))
}

/// Bind `a`'s arrays, in column order, to the query [`attached_insert`] made.
fn bind_attached<'q>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    a: &'q AttachedRows,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for (_, v) in &a.columns {
        q = match v {
            AttachedValues::Text(v) => q.bind(v),
            AttachedValues::BigInt(v) => q.bind(v),
            AttachedValues::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Can `batch` be written as one statement ([`write_single`])? Only
/// payments, events and attached rows, with no fence.
fn single_statement(b: &CommitBatch) -> bool {
    b.block.is_none()
        && b.block_txs.is_empty()
        && b.mempool.is_empty()
        && b.burn_block.is_none()
        && b.canonical.is_empty()
        && b.undo.is_empty()
        && b.undo_clear.is_empty()
        && b.fence.is_none()
}

/// `batch` in one statement, numbered from `expected` (the caller's view of
/// the log's end): `meta` moves from `expected` and every row is written
/// only if it was still there, all in the statement's own transaction. The
/// relay commits a batch per cycle under the ingest lock, and this is one
/// round trip where the general path takes six (begin, `meta`, a statement
/// per table, commit): on a loaded machine each of those waits to be
/// scheduled on both sides. `Err(batch)`: the log had moved and nothing
/// was written.
async fn write_single(
    pool: &PgPool,
    mut batch: CommitBatch,
    expected: u64,
) -> Result<Result<Committed, CommitBatch>, StoreError> {
    let last_seq = batch.assign_seqs(expected);
    let mut rows = Rows::default();
    rows.add(&batch, last_seq)?;
    // Every sub-statement runs only if `meta` was where we expected it.
    let still = "EXISTS (SELECT 1 FROM m)";
    let mut sql =
        "WITH m AS (UPDATE meta SET last_seq = $1 WHERE last_seq = $2 RETURNING last_seq)"
            .to_string();
    let single = rows.single(3, still)?;
    let mut params = 3 + single.params;
    for (i, s) in single.statements.iter().enumerate() {
        sql.push_str(&format!(", r{i} AS ({s})"));
    }
    let attached: Vec<&AttachedRows> = batch.attached.iter().filter(|a| !a.is_empty()).collect();
    for (i, a) in attached.iter().enumerate() {
        let insert = attached_insert(a, params, Some(still))?;
        sql.push_str(&format!(", a{i} AS ({insert})"));
        params += a.columns.len();
    }
    sql.push_str(" SELECT count(*) FROM m");
    let q = sqlx::query(&sql)
        .bind(C.write_int(last_seq)?)
        .bind(C.write_int(expected)?);
    let mut q = single.bind(q);
    for a in &attached {
        q = bind_attached(q, a);
    }
    let applied: i64 = q
        .fetch_one(pool)
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    if applied != 1 {
        return Ok(Err(batch));
    }
    Ok(Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    }))
}

/// Drop repeats, keeping first occurrences in order.
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|s| seen.insert(s.clone())).collect()
}

/// Classify a sqlx error by whether a retry can help.
/// How a PostgreSQL error maps onto [`StoreError`] (temporary, corrupt or
/// rejected, by SQLSTATE class). Public for the other stores kept in the
/// history database (webhooks, the relay's schedule).
pub fn pg_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::BeginFailed => StoreError::unavailable(BACKEND, e),
        E::Database(db) => match db.code().as_deref().map(|c| c.get(..2).unwrap_or(c)) {
            // connection exception, transaction rollback (serialization,
            // deadlock), insufficient resources, operator intervention
            // (shutdown, recovery), system error.
            Some("08" | "40" | "53" | "57" | "58") => StoreError::unavailable(BACKEND, e),
            // Undefined table/column and the like: the schema is not ours.
            Some("42") => StoreError::corrupt(BACKEND, e),
            _ => StoreError::rejected(BACKEND, e),
        },
        E::RowNotFound
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Decode(_) => StoreError::corrupt(BACKEND, e),
        _ => StoreError::rejected(BACKEND, e),
    }
}

fn migrate_err(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => pg_err(e),
        // Applied migrations we do not know, or whose text changed.
        other => StoreError::corrupt(BACKEND, other),
    }
}
