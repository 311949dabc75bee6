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

use super::types::sanitize_text;
use super::{
    AttachedRows, AttachedValues, BlockRecord, CommitBatch, Committed, DeadLetter, Fence, History,
    HistoryGroup, PaymentFilter, StoreError, UndoRecord,
};
use nexus_core::decode::{BlockRef, EscrowTx};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId, Proof};

const BACKEND: &str = "sqlite";
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
        if current == latest {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[current]).map_err(sq_err)?;
        tx.pragma_update(None, "user_version", (current + 1) as i64)
            .map_err(sq_err)?;
        tx.commit().map_err(sq_err)?;
    }
}

#[async_trait]
impl History for SqliteHistory {
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blocks WHERE index_block_hash = ?1)")
                .and_then(|mut s| s.query_row([hash], |r| r.get(0)))
                .map_err(sq_err)
        })
        .await
    }

    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError> {
        if batch.is_empty() {
            return Ok(Committed {
                last_seq: self.last_seq().await?,
                ..Default::default()
            });
        }
        let in_group = self.group.is_some();
        self.run(move |c| {
            if in_group {
                // Durable when the group finishes.
                return write_batch(c, batch);
            }
            // IMMEDIATE: take the write lock before reading last_seq.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            let committed = write_batch(&tx, batch)?;
            tx.commit().map_err(sq_err)?;
            Ok(committed)
        })
        .await
    }

    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError> {
        self.run(move |c| {
            c.prepare_cached(
                "INSERT INTO dead_letters (source, reason, payload, at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        sanitize_text(&dl.source),
                        sanitize_text(&dl.reason),
                        sanitize_text(&dl.payload),
                        sanitize_text(&dl.at)
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(sq_err)
        })
        .await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.run(move |c| {
            let mut s = c
                .prepare_cached("SELECT id, source, reason, payload, at FROM dead_letters ORDER BY id DESC LIMIT ?1")
                .map_err(sq_err)?;
            let rows = s
                .query_map([limit], |r| {
                    Ok(DeadLetter {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        reason: r.get(2)?,
                        payload: r.get(3)?,
                        at: r.get(4)?,
                    })
                })
                .map_err(sq_err)?;
            rows.map(|r| r.map_err(sq_err)).collect()
        })
        .await
    }

    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError> {
        let mut seen = HashSet::new();
        let txids: Vec<String> = txids
            .iter()
            .map(|t| sanitize_text(t))
            .filter(|t| seen.insert(t.clone()))
            .collect();
        if txids.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |c| {
            let mut s = c
                .prepare_cached("SELECT payment_id FROM mempool_txs WHERE txid = ?1")
                .map_err(sq_err)?;
            let mut out = Vec::new();
            // In the order asked, one row per known txid.
            for txid in txids {
                let pid: Option<String> = s
                    .query_row([&txid], |r| r.get(0))
                    .optional()
                    .map_err(sq_err)?;
                if let Some(pid) = pid {
                    let pid = pid.parse().map_err(|e| StoreError::corrupt(BACKEND, e))?;
                    out.push((txid, pid));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM payments WHERE payment_id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(sq_err)?;
            body.as_deref().map(|b| C.read_json(b)).transpose()
        })
        .await
    }

    async fn list_payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError> {
        // Only the filters in use become predicates (values always bound), so
        // SQLite can use the matching (column, payment_id) index.
        let mut sql = String::from("SELECT body FROM payments WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        let mut pred = |column_op: &str, value: String| {
            args.push(Value::Text(value));
            sql.push_str(&format!(" AND {column_op} ?{}", args.len()));
        };
        if let Some(s) = &filter.sender {
            pred("sender =", sanitize_text(s));
        }
        if let Some(r) = &filter.recipient {
            pred("recipient =", sanitize_text(r));
        }
        if let Some(st) = filter.status {
            pred("status =", st.as_str().to_string());
        }
        if let Some(a) = &filter.after {
            pred("payment_id >", sanitize_text(a));
        }
        args.push(Value::Integer(i64::from(filter.limit)));
        sql.push_str(&format!(" ORDER BY payment_id LIMIT ?{}", args.len()));
        self.run(move |c| {
            let mut s = c.prepare_cached(&sql).map_err(sq_err)?;
            let bodies = s
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))
                .map_err(sq_err)?;
            bodies.map(|b| C.read_json(&b.map_err(sq_err)?)).collect()
        })
        .await
    }

    async fn payments_changed_since(&self, seq: u64) -> Result<Vec<Payment>, StoreError> {
        let seq = C.write_int(seq)?;
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payments WHERE payment_id IN \
                 (SELECT payment_id FROM payment_events WHERE seq > ?1) \
                 ORDER BY updated_seq, payment_id",
                params![seq],
            )
        })
        .await
    }

    async fn events_for_payment(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payment_events WHERE payment_id = ?1 ORDER BY seq",
                params![id],
            )
        })
        .await
    }

    async fn events_since(&self, after: u64, limit: u32) -> Result<Vec<PaymentEvent>, StoreError> {
        let after = C.write_int(after)?;
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payment_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit],
            )
        })
        .await
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let last: i64 = c
                .prepare_cached("SELECT last_seq FROM meta WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(sq_err)?;
            C.read_int(last)
        })
        .await
    }

    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError> {
        self.run(|c| {
            // Canonical blocks first; among them the highest, then the newest.
            let row = c
                .prepare_cached(
                    "SELECT index_block_hash, parent_index_block_hash, block_hash, height, \
                     burn_height, burn_hash, time, canonical FROM blocks \
                     ORDER BY canonical DESC, height DESC, rowid DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, bool>(7)?,
                        ))
                    })
                    .optional()
                })
                .map_err(sq_err)?;
            let Some((ibh, parent, hash, height, burn_height, burn_hash, time, canonical)) = row
            else {
                return Ok(None);
            };
            Ok(Some(BlockRecord {
                block: BlockRef {
                    index_block_hash: ibh,
                    parent_index_block_hash: parent,
                    block_hash: hash,
                    height: C.read_int(height)?,
                    burn_height: C.read_int(burn_height)?,
                    burn_hash,
                    time: C.read_int(time)?,
                },
                canonical,
            }))
        })
        .await
    }

    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            let sql = format!("SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ?1");
            Ok(blocks(c, &sql, params![hash])?.pop())
        })
        .await
    }

    async fn block_txs(&self, index_block_hash: &str) -> Result<Vec<EscrowTx>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM block_txs WHERE index_block_hash = ?1 ORDER BY tx_index",
                &[&hash],
            )
        })
        .await
    }

    async fn undo(&self, index_block_hash: &str) -> Result<Vec<UndoRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| undo_rows(c, &hash)).await
    }

    async fn recent_blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, StoreError> {
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks ORDER BY height DESC, rowid DESC LIMIT ?1"
            );
            blocks(c, &sql, params![i64::from(limit)])
        })
        .await
    }

    async fn children(&self, index_block_hash: &str) -> Result<Vec<BlockRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE parent_index_block_hash = ?1 ORDER BY rowid"
            );
            blocks(c, &sql, params![hash])
        })
        .await
    }

    async fn gaps(&self) -> Result<Vec<BlockRecord>, StoreError> {
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks b WHERE NOT b.canonical AND NOT EXISTS \
                 (SELECT 1 FROM blocks p WHERE p.index_block_hash = b.parent_index_block_hash) \
                 ORDER BY b.height"
            );
            blocks(c, &sql, params![])
        })
        .await
    }

    async fn settle(&self) -> Result<(), StoreError> {
        if self.group.is_some() {
            // The group holds the write lock itself.
            return Ok(());
        }
        // IMMEDIATE takes the write lock, so it waits for any other writer.
        self.run(|c| {
            c.transaction_with_behavior(TransactionBehavior::Immediate)
                .and_then(|tx| tx.commit())
                .map_err(sq_err)
        })
        .await
    }

    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError> {
        if hashes.is_empty() {
            // The common case (a block extending the tip): no blocking-pool hop.
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        // In-process: one blocking call, a cached statement per block.
        self.run(move |c| {
            let sql = format!("SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ?1");
            let mut out = Vec::with_capacity(hashes.len());
            for h in &hashes {
                out.extend(blocks(c, &sql, params![h])?);
            }
            Ok(out)
        })
        .await
    }

    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<EscrowTx>>, StoreError> {
        if hashes.is_empty() {
            // The common case (a block extending the tip): no blocking-pool hop.
            return Ok(HashMap::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        self.run(move |c| {
            let mut out = HashMap::with_capacity(hashes.len());
            for h in hashes {
                let txs: Vec<EscrowTx> = bodies(
                    c,
                    "SELECT body FROM block_txs WHERE index_block_hash = ?1 ORDER BY tx_index",
                    &[&h],
                )?;
                if !txs.is_empty() {
                    out.insert(h, txs);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError> {
        if hashes.is_empty() {
            // The common case (a block extending the tip): no blocking-pool hop.
            return Ok(HashMap::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        self.run(move |c| {
            let mut out = HashMap::with_capacity(hashes.len());
            for h in hashes {
                let recs = undo_rows(c, &h)?;
                if !recs.is_empty() {
                    out.insert(h, recs);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn group(&self) -> Result<Arc<dyn HistoryGroup>, StoreError> {
        if self.group.is_some() {
            return Err(StoreError::rejected(BACKEND, "commit groups do not nest"));
        }
        let path = self.path.clone();
        let shared = Arc::clone(&self.conn);
        let conn = tokio::task::spawn_blocking(move || {
            // A file gets a connection of its own, so readers of `self` keep
            // seeing committed data only; an in-memory database has one.
            let conn = match &path {
                Some(p) => {
                    let c = Connection::open(p).map_err(sq_err)?;
                    configure(&c)?;
                    Arc::new(Mutex::new(c))
                }
                None => shared,
            };
            conn.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(sq_err)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::unavailable(BACKEND, e))??;
        Ok(Arc::new(SqliteHistory {
            conn: Arc::clone(&conn),
            path: self.path.clone(),
            group: Some(Arc::new(GroupState {
                conn,
                finished: AtomicBool::new(false),
            })),
        }))
    }

    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError> {
        if proofs.is_empty() {
            return Ok(());
        }
        let rows = proofs
            .iter()
            .map(|p| Ok((p.payment_id.to_string(), C.write_json(p)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let fence = fence.cloned();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            if let Some(f) = &fence {
                check_fence(&tx, f)?;
            }
            {
                let mut s = tx
                    .prepare_cached(
                        "INSERT INTO proofs (payment_id, body) VALUES (?1, ?2) \
                         ON CONFLICT (payment_id) DO UPDATE SET body = excluded.body",
                    )
                    .map_err(sq_err)?;
                for (id, body) in &rows {
                    s.execute(params![id, body]).map_err(sq_err)?;
                }
            }
            tx.commit().map_err(sq_err)
        })
        .await
    }

    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM proofs WHERE payment_id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(sq_err)?;
            body.as_deref().map(|b| C.read_json(b)).transpose()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| {
            c.prepare_cached("SELECT 1")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map(|_| ())
                .map_err(sq_err)
        })
        .await
    }
}

/// Everything in `batch`, on `tx` (a transaction the caller owns).
fn write_batch(tx: &Connection, mut batch: CommitBatch) -> Result<Committed, StoreError> {
    if let Some(f) = &batch.fence {
        check_fence(tx, f)?;
    }
    let last: i64 = tx
        .query_row("SELECT last_seq FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(sq_err)?;
    let last_seq = batch.assign_seqs(C.read_int(last)?);

    {
        let mut s = tx
            .prepare_cached("UPDATE blocks SET canonical = ?2 WHERE index_block_hash = ?1")
            .map_err(sq_err)?;
        for (hash, canonical) in &batch.canonical {
            s.execute(params![sanitize_text(hash), canonical])
                .map_err(sq_err)?;
        }
        let mut s = tx
            .prepare_cached("DELETE FROM block_undo WHERE index_block_hash = ?1")
            .map_err(sq_err)?;
        for hash in &batch.undo_clear {
            s.execute(params![sanitize_text(hash)]).map_err(sq_err)?;
        }
        let mut s = tx
            .prepare_cached(
                "INSERT INTO block_undo (index_block_hash, payment_id, before) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (index_block_hash, payment_id) DO UPDATE SET before = excluded.before",
            )
            .map_err(sq_err)?;
        for u in &batch.undo {
            let before = u.before.as_ref().map(|v| C.write_json(v)).transpose()?;
            s.execute(params![
                sanitize_text(&u.index_block_hash),
                u.payment_id.to_string(),
                before
            ])
            .map_err(sq_err)?;
        }
    }

    if let Some(b) = &batch.block {
        let blk = &b.block;
        let (height, burn_height, time) = (
            C.write_int(blk.height)?,
            C.write_int(blk.burn_height)?,
            C.write_int(blk.time)?,
        );
        // A re-delivered block is not an error: the first copy stays.
        tx.prepare_cached(
            "INSERT INTO blocks (index_block_hash, parent_index_block_hash, block_hash, \
             height, burn_height, burn_hash, time, canonical) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (index_block_hash) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                sanitize_text(&blk.index_block_hash),
                sanitize_text(&blk.parent_index_block_hash),
                sanitize_text(&blk.block_hash),
                height,
                burn_height,
                sanitize_text(&blk.burn_hash),
                time,
                b.canonical,
            ])
        })
        .map_err(sq_err)?;
    }
    if !batch.block_txs.is_empty() {
        let Some(b) = &batch.block else {
            return Err(StoreError::rejected(BACKEND, "block_txs without a block"));
        };
        let block = sanitize_text(&b.block.index_block_hash);
        let mut s = tx
            .prepare_cached(
                "INSERT INTO block_txs (index_block_hash, tx_index, txid, body) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (index_block_hash, tx_index) DO NOTHING",
            )
            .map_err(sq_err)?;
        for t in &batch.block_txs {
            s.execute(params![
                block,
                t.tx_index,
                sanitize_text(&t.txid),
                C.write_json(t)?
            ])
            .map_err(sq_err)?;
        }
    }
    if !batch.mempool.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO mempool_txs (txid, payment_id, function) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (txid) DO NOTHING",
            )
            .map_err(sq_err)?;
        for m in &batch.mempool {
            s.execute(params![
                sanitize_text(&m.txid),
                m.payment_id.to_string(),
                sanitize_text(&m.function)
            ])
            .map_err(sq_err)?;
        }
    }
    if let Some((height, hash)) = &batch.burn_block {
        let height = C.write_int(*height)?;
        tx.prepare_cached(
            "INSERT INTO burn_blocks (height, hash) VALUES (?1, ?2) \
             ON CONFLICT (height) DO UPDATE SET hash = excluded.hash",
        )
        .and_then(|mut s| s.execute(params![height, sanitize_text(hash)]))
        .map_err(sq_err)?;
    }
    if !batch.payments.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO payments (payment_id, status, sender, recipient, updated_seq, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, \
                 sender = excluded.sender, recipient = excluded.recipient, \
                 updated_seq = excluded.updated_seq, body = excluded.body",
            )
            .map_err(sq_err)?;
        for p in last_per_id(&batch.payments) {
            s.execute(params![
                p.payment_id.to_string(),
                p.status.as_str(),
                p.sender.as_deref().map(sanitize_text),
                p.recipient.as_deref().map(sanitize_text),
                C.write_int(p.updated_seq)?,
                C.write_json(p)?,
            ])
            .map_err(sq_err)?;
        }
    }
    if !batch.events.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO payment_events (seq, payment_id, type, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sq_err)?;
        for e in &batch.events {
            s.execute(params![
                C.write_int(e.seq)?,
                e.payment_id.to_string(),
                e.event_type.as_str(),
                C.write_json(e)?
            ])
            .map_err(sq_err)?;
        }
        drop(s);
        let last = C.write_int(last_seq)?;
        tx.prepare_cached("UPDATE meta SET last_seq = ?1 WHERE id = 1")
            .and_then(|mut s| s.execute([last]))
            .map_err(sq_err)?;
    }
    for a in batch.attached.iter().filter(|a| !a.is_empty()) {
        insert_attached(tx, a)?;
    }
    Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    })
}

/// Insert attached rows (if absent), row by row on one cached statement.
fn insert_attached(tx: &Connection, a: &AttachedRows) -> Result<(), StoreError> {
    a.check(BACKEND)?;
    let marks = (1..=a.columns.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Names are checked identifiers (constants of the owning component);
    // every value is bound.
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        a.table,
        a.column_list()
    );
    let mut s = tx.prepare_cached(&sql).map_err(sq_err)?;
    for row in 0..a.len() {
        let values = a.columns.iter().map(|(_, v)| match v {
            AttachedValues::Text(v) => v[row]
                .as_ref()
                .map_or(Value::Null, |t| Value::Text(t.clone())),
            AttachedValues::BigInt(v) => Value::Integer(v[row]),
            AttachedValues::Bytes(v) => Value::Blob(v[row].clone()),
        });
        s.execute(params_from_iter(values)).map_err(sq_err)?;
    }
    Ok(())
}

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

/// The before-images stored for one block.
fn undo_rows(c: &Connection, hash: &str) -> Result<Vec<UndoRecord>, StoreError> {
    let mut s = c
        .prepare_cached(
            "SELECT payment_id, before FROM block_undo WHERE index_block_hash = ?1 ORDER BY payment_id",
        )
        .map_err(sq_err)?;
    let rows = s
        .query_map(params![hash], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(sq_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (pid, before) = row.map_err(sq_err)?;
        out.push(UndoRecord {
            index_block_hash: hash.to_string(),
            payment_id: pid.parse().map_err(|e| StoreError::corrupt(BACKEND, e))?,
            before: before.as_deref().map(|b| C.read_json(b)).transpose()?,
        });
    }
    Ok(out)
}

/// Raise the fence to `f.token` inside the write transaction, or refuse: a
/// higher token was already used, so whoever holds `f` lost the lease.
fn check_fence(tx: &Connection, f: &Fence) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO fences (name, token) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE \
             SET token = excluded.token WHERE fences.token <= excluded.token",
        )
        .and_then(|mut s| {
            s.execute(params![
                sanitize_text(&f.name),
                C.write_int(f.token).unwrap_or(i64::MAX)
            ])
        })
        .map_err(sq_err)?;
    if changed == 0 {
        return Err(StoreError::rejected(
            BACKEND,
            format!("fencing token {} of {:?} is stale", f.token, f.name),
        ));
    }
    Ok(())
}

/// Columns read by [`blocks`].
const BLOCK_COLS: &str = "index_block_hash, parent_index_block_hash, block_hash, height, \
     burn_height, burn_hash, time, canonical";

/// Run a `SELECT {BLOCK_COLS} ...` and build the records.
fn blocks(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<BlockRecord>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sq_err)?;
    let rows = s
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, bool>(7)?,
            ))
        })
        .map_err(sq_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (ibh, parent, hash, height, burn_height, burn_hash, time, canonical) =
            row.map_err(sq_err)?;
        out.push(BlockRecord {
            block: BlockRef {
                index_block_hash: ibh,
                parent_index_block_hash: parent,
                block_hash: hash,
                height: C.read_int(height)?,
                burn_height: C.read_int(burn_height)?,
                burn_hash,
                time: C.read_int(time)?,
            },
            canonical,
        });
    }
    Ok(out)
}

/// Run a `SELECT body ...` and decode each JSON body.
fn bodies<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<T>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sq_err)?;
    let rows = s
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(sq_err)?;
    rows.map(|b| C.read_json(&b.map_err(sq_err)?)).collect()
}

/// The last record of each payment id, in first-seen order (as PostgreSQL,
/// whose single upsert statement may not touch a row twice).
fn last_per_id(payments: &[Payment]) -> Vec<&Payment> {
    let mut at: HashMap<PaymentId, usize> = HashMap::with_capacity(payments.len());
    let mut out: Vec<&Payment> = Vec::with_capacity(payments.len());
    for p in payments {
        match at.get(&p.payment_id) {
            Some(&i) => out[i] = p,
            None => {
                at.insert(p.payment_id, out.len());
                out.push(p);
            }
        }
    }
    out
}

/// Classify a rusqlite error by whether a retry can help. Public for the
/// other stores kept in the history file (the relay's schedule).
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
