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

use nexus_core::decode::{BlockRef, EscrowTx};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId, Proof};

use super::types::sanitize_text;
use super::{
    AttachedRows, AttachedValues, BlockRecord, ChainLog, CommitBatch, Committed, DeadLetter, Fence,
    History, HistoryGroup, PaymentFilter, Proofs, Queries, StoreError, UndoRecord,
};

mod chain;
mod commit;
mod proofs;
mod queries;
mod rows;

// The commit helpers, for the role files (which `use super::*`).
use commit::*;
use rows::Rows;

pub(crate) const BACKEND: &str = "postgresql";

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
        (
            10,
            "payment asset",
            include_str!("../../migrations/postgres/0010_payment_asset.sql"),
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

impl History for PgHistory {}

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
