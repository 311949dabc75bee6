//! [`History`] on SQLite: the embedded default (no services to run).
//!
//! One connection behind a mutex; every call runs on tokio's blocking pool so
//! the runtime never waits on disk. The schema (`migrations/sqlite/`) is
//! logically the PostgreSQL one; versions are tracked in `PRAGMA user_version`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OptionalExtension, TransactionBehavior,
};
use serde::de::DeserializeOwned;

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

// The commit helpers, for the role files (which `use super::*`).
use commit::*;

pub(crate) const BACKEND: &str = "sqlite";

const C: super::codec::Codec = super::codec::Codec(BACKEND);

/// Schema versions, in order: entry `i` takes `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_chain.sql"),
    include_str!("../../migrations/sqlite/0003_verifier.sql"),
    // Webhook delivery state (nexus-node's delivery module).
    include_str!("../../migrations/sqlite/0004_delivery.sql"),
    include_str!("../../migrations/sqlite/0005_ingest.sql"),
    // Relay broadcast schedule (the nexus-relay crate).
    include_str!("../../migrations/sqlite/0006_relay.sql"),
    include_str!("../../migrations/sqlite/0007_webhook_retention.sql"),
    // Relay idempotency keys (the nexus-relay crate; Redis in production).
    include_str!("../../migrations/sqlite/0008_idempotency.sql"),
    include_str!("../../migrations/sqlite/0009_block_sets.sql"),
    include_str!("../../migrations/sqlite/0010_payment_asset.sql"),
];

/// Another process holding the write lock (a second indexer, a backup) makes
/// us wait this long before the call fails as temporary.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The history in one SQLite file (or in memory, for tests).
#[derive(Debug, Clone)]
pub struct SqliteHistory {
    /// rusqlite connections are not `Sync`; the mutex is only ever taken on a
    /// blocking-pool thread, never across an `.await`.
    conn: Arc<Mutex<Connection>>,
    /// The file, so a commit group can open its own connection (`None`: in memory).
    path: Option<PathBuf>,
    /// Set on a [`History::group`] handle: `conn` is inside its open transaction.
    group: Option<Arc<GroupState>>,
}

/// An open commit group's transaction, rolled back if dropped unfinished.
#[derive(Debug)]
struct GroupState {
    conn: Arc<Mutex<Connection>>,
    finished: AtomicBool,
}

impl Drop for GroupState {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Acquire) {
            // A group on its own connection would roll back when the
            // connection closes; an in-memory database's group shares the
            // main connection, which must be left outside any transaction.
            let c = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
        }
    }
}

impl SqliteHistory {
    /// Open (or create) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sq_err)?;
        let mut h = Self::init(conn)?;
        h.path = Some(path.to_path_buf());
        Ok(h)
    }

    /// A private database that lives as long as this value (tests, dry runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(sq_err)?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteHistory {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
            group: None,
        })
    }

    /// Run `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.finished.load(Ordering::Acquire))
        {
            return Err(StoreError::rejected(
                BACKEND,
                "commit group already finished",
            ));
        }
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere left the lock poisoned, but rusqlite rolls an
            // unfinished transaction back on drop: the connection is sound.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        // Cancelled at shutdown or panicked: nothing was acknowledged, retry is safe.
        .map_err(|e| StoreError::unavailable(BACKEND, e))?
    }
}

/// A connection for another component's tables (the relay's schedule and
/// idempotency keys, webhook deliveries) in a history file that
/// [`SqliteHistory::open`] has already created and migrated, with the same
/// settings as the history's own connections: a writer busy elsewhere is
/// waited for, and a commit survives a power cut. Used on tokio's blocking
/// pool, like the history's; cheap to clone (one connection behind a mutex).
#[derive(Clone)]
pub struct SideConnection(Arc<Mutex<Connection>>);

impl SideConnection {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sq_err)?;
        configure(&conn)?;
        Ok(SideConnection(Arc::new(Mutex::new(conn))))
    }

    /// Run `f` with the connection on the blocking pool. `Err` when that
    /// task did not finish (a panic in `f`, or cancelled at shutdown):
    /// nothing it did was acknowledged, so a retry is safe.
    pub async fn call<T, F>(&self, f: F) -> Result<T, tokio::task::JoinError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let conn = self.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock())).await
    }

    /// [`SideConnection::call`] for a store's method (in `f`, `?` turns a
    /// rusqlite error into a [`StoreError`] classified like the history's);
    /// a task that did not finish is `unavailable` (temporary).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.call(f)
            .await
            .map_err(|e| StoreError::unavailable(BACKEND, e))?
    }

    /// The connection, locked on this thread (tests; code already on a
    /// blocking thread).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic elsewhere left the lock poisoned, but rusqlite rolls an
        // unfinished transaction back on drop: the connection is sound.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Per-connection settings (every connection: the main one and a group's).
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sq_err)?;
    // WAL: readers do not block the writer. (In-memory databases answer "memory".)
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sq_err)?;
    // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on a
    // power cut, and we answer 200 to stacks-node after commit, so it
    // never resends them. One fsync per delivery is the price.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sq_err)?;
    // Every statement we prepare, with room for list_payments' shapes.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Apply the migrations past `user_version`, each in its own write transaction
/// that re-reads the version, so two processes opening one file do not race.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Apply the embedded migrations up to `version` only, to the file at
/// `path`: for tests of a later migration's data move (the file holds rows
/// of the old shape). [`SqliteHistory::open`] applies the rest.
#[doc(hidden)]
pub fn migrate_file_to(path: &Path, version: usize) -> Result<(), StoreError> {
    let mut conn = Connection::open(path).map_err(sq_err)?;
    configure(&conn)?;
    migrate_to(&mut conn, version)
}

fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    let latest = MIGRATIONS.len();
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq_err)?;
        let current: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sq_err)?;
        let current = usize::try_from(current).map_err(|e| StoreError::corrupt(BACKEND, e))?;
        if current > latest {
            return Err(StoreError::corrupt(
                BACKEND,
                format!("schema version {current} is newer than this build knows ({latest})"),
            ));
        }
        if current >= target {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[current]).map_err(sq_err)?;
        tx.pragma_update(None, "user_version", (current + 1) as i64)
            .map_err(sq_err)?;
        tx.commit().map_err(sq_err)?;
    }
}

impl History for SqliteHistory {}

#[async_trait]
impl HistoryGroup for SqliteHistory {
    async fn finish(&self) -> Result<(), StoreError> {
        let Some(group) = self.group.clone() else {
            return Err(StoreError::rejected(BACKEND, "not a commit group"));
        };
        self.run(move |c| {
            if group.finished.load(Ordering::Acquire) {
                return Err(StoreError::rejected(
                    BACKEND,
                    "commit group already finished",
                ));
            }
            c.execute_batch("COMMIT").map_err(sq_err)?;
            group.finished.store(true, Ordering::Release);
            Ok(())
        })
        .await
    }
}

/// Classify a rusqlite error by whether a retry can help. Public for the
/// other stores kept in the history file (the relay's schedule).
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        sq_err(e)
    }
}

pub fn sq_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::OutOfMemory
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OperationInterrupted => StoreError::unavailable(BACKEND, e),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase | ErrorCode::SchemaChanged => {
                StoreError::corrupt(BACKEND, e)
            }
            _ => StoreError::rejected(BACKEND, e),
        },
        E::FromSqlConversionFailure(..)
        | E::Utf8Error(_)
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_)
        | E::InvalidColumnType(..)
        | E::QueryReturnedNoRows => StoreError::corrupt(BACKEND, e),
        _ => StoreError::rejected(BACKEND, e),
    }
}
