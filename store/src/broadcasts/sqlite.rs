//! [`BroadcastStore`] in the embedded default's SQLite history file, on a
//! connection of its own (WAL: it does not hold the ingest writer up).

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use crate::sqlite::{sq_err, SideConnection};
use crate::StoreError;

use super::{
    attempt_row, broadcast_row, next_columns, reason_columns, Attempt, Broadcast, BroadcastHistory,
    BroadcastStore, NewBroadcast, Next, COLS,
};

#[derive(Clone)]
pub struct SqliteBroadcasts {
    conn: SideConnection,
}

impl SqliteBroadcasts {
    /// Open the history file at `path` (already migrated by `SqliteHistory::open`).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // A 202 promises the broadcast survives a crash: FULL sync.
        Ok(SqliteBroadcasts {
            conn: SideConnection::open(path)?,
        })
    }
}

fn rows<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut rs = stmt.query(params).map_err(sq_err)?;
    while let Some(r) = rs.next().map_err(sq_err)? {
        out.push(f(r)?);
    }
    Ok(out)
}

#[async_trait]
impl BroadcastStore for SqliteBroadcasts {
    async fn schedule(&self, items: &[NewBroadcast]) -> Result<(), StoreError> {
        let items = items.to_vec();
        self.conn.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            {
                let mut ins = tx
                    .prepare_cached(
                        "INSERT INTO relay_broadcasts (txid, payment_id, function, tx, request_id, \
                         idempotency_key, state, attempts, next_attempt_ms, created_ms, updated_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'scheduled', 0, ?8, ?7, ?7) \
                         ON CONFLICT (txid) DO NOTHING",
                    )
                    .map_err(sq_err)?;
                for i in &items {
                    ins.execute(params![
                        i.txid,
                        i.payment_id,
                        i.function,
                        i.tx,
                        i.request_id,
                        i.idempotency_key,
                        i.now_ms,
                        i.next_attempt_ms
                    ])
                    .map_err(sq_err)?;
                }
            }
            tx.commit().map_err(sq_err)
        })
        .await
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Broadcast>, StoreError> {
        self.conn
            .run(move |c| {
                // One writer at a time in SQLite: the immediate transaction is the lock.
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sq_err)?;
                let due = {
                    let mut stmt = tx
                        .prepare_cached(&format!(
                            "SELECT {COLS} FROM relay_broadcasts WHERE state = 'scheduled' \
                         AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2"
                        ))
                        .map_err(sq_err)?;
                    rows(&mut stmt, params![now_ms, limit], |r| broadcast_row(r))?
                };
                {
                    let mut upd = tx
                        .prepare_cached(
                            "UPDATE relay_broadcasts SET next_attempt_ms = ?2 WHERE txid = ?1",
                        )
                        .map_err(sq_err)?;
                    for b in &due {
                        upd.execute(params![b.txid, now_ms + lease_ms])
                            .map_err(sq_err)?;
                    }
                }
                tx.commit().map_err(sq_err)?;
                Ok(due
                    .into_iter()
                    .map(|b| Broadcast {
                        next_attempt_ms: now_ms + lease_ms,
                        ..b
                    })
                    .collect())
            })
            .await
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .run(|c| {
                c.query_row(
                    "SELECT MIN(next_attempt_ms) FROM relay_broadcasts WHERE state = 'scheduled'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sq_err)
            })
            .await
    }

    async fn record_many(
        &self,
        records: &[(String, Attempt, Next)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.conn.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            {
                let mut ins = tx
                    .prepare_cached(
                        "INSERT INTO relay_attempts (txid, attempt, at_ms, provider, outcome, reason, \
                         latency_ms, next_delay_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (txid, attempt) DO NOTHING",
                    )
                    .map_err(sq_err)?;
                let mut upd = tx
                    .prepare_cached(
                        "UPDATE relay_broadcasts SET state = ?2, attempts = MAX(attempts, ?3), \
                         next_attempt_ms = ?4, updated_ms = ?5, last_reason = ?6, reason_data = ?7, \
                         provider = COALESCE(?8, provider) WHERE txid = ?1",
                    )
                    .map_err(sq_err)?;
                for (txid, a, next) in &records {
                    let (state, next_ms) = next_columns(next, now_ms);
                    let (reason, data) = reason_columns(a, next);
                    ins.execute(params![
                        txid,
                        a.attempt,
                        a.at_ms,
                        a.provider,
                        a.outcome.as_str(),
                        a.reason,
                        a.latency_ms as i64,
                        a.next_delay_ms.map(|v| v as i64)
                    ])
                    .map_err(sq_err)?;
                    upd.execute(params![
                        txid,
                        state.as_str(),
                        a.attempt,
                        next_ms,
                        now_ms,
                        reason,
                        data,
                        a.provider
                    ])
                    .map_err(sq_err)?;
                }
            }
            tx.commit().map_err(sq_err)
        })
        .await
    }

    async fn for_payment(&self, payment_id: &str) -> Result<Vec<BroadcastHistory>, StoreError> {
        let payment_id = payment_id.to_string();
        self.conn.run(move |c| {
            let list = {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM relay_broadcasts WHERE payment_id = ?1 ORDER BY created_ms, txid"
                    ))
                    .map_err(sq_err)?;
                rows(&mut stmt, params![payment_id], |r| broadcast_row(r))?
            };
            let mut stmt = c
                .prepare_cached(
                    "SELECT attempt, at_ms, provider, outcome, reason, latency_ms, next_delay_ms \
                     FROM relay_attempts WHERE txid = ?1 ORDER BY attempt",
                )
                .map_err(sq_err)?;
            list.into_iter()
                .map(|b| {
                    Ok(BroadcastHistory {
                        attempts_made: rows(&mut stmt, params![b.txid], |r| attempt_row(r))?,
                        broadcast: b,
                    })
                })
                .collect()
        })
        .await
    }

    async fn get(&self, txid: &str) -> Result<Option<Broadcast>, StoreError> {
        let txid = txid.to_string();
        self.conn
            .run(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM relay_broadcasts WHERE txid = ?1"
                    ))
                    .map_err(sq_err)?;
                let mut rs = stmt.query(params![txid]).map_err(sq_err)?;
                rs.next().map_err(sq_err)?.map(broadcast_row).transpose()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        // Opening the history migrates the file, the relay's tables included.
        crate::sqlite::SqliteHistory::open(&path).unwrap();
        super::super::conformance::lifecycle(&SqliteBroadcasts::open(&path).unwrap()).await;
    }

    #[tokio::test]
    async fn schedules_with_a_history_commit_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let history = crate::sqlite::SqliteHistory::open(&path).unwrap();
        let store = SqliteBroadcasts::open(&path).unwrap();
        super::super::conformance::attached_to_history(&history, &store).await;
    }
}
