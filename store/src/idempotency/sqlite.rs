//! Keys in the embedded default's SQLite history file (table
//! `idempotency_keys`, SQLite migration `0008_idempotency.sql`), so that a
//! restart remembers them as Redis does in production. One connection of
//! its own; each group of reservations is one `IMMEDIATE` transaction,
//! which makes exactly one concurrent request the owner of a key.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sqlite::SideConnection;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    wall_clock, Clock, IdempotencyError, IdempotencyStore, Record, Reservation, StoredResponse,
    KEY_TTL, PENDING_TTL,
};

/// Expired keys are deleted every this many reservations.
const SWEEP_EVERY: usize = 1024;

#[derive(Clone)]
pub struct SqliteIdempotency {
    conn: SideConnection,
    since_sweep: Arc<AtomicUsize>,
    clock: Clock,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> IdempotencyError {
    IdempotencyError {
        backend: "sqlite",
        source: Box::new(e),
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl SqliteIdempotency {
    /// Open the history file at `path` (already migrated by `SqliteHistory::open`).
    pub fn open(path: &Path) -> Result<Self, IdempotencyError> {
        // A stored answer is what makes a retried request safe: kept through
        // a power loss (FULL sync), as the 202 it answers promises.
        Ok(SqliteIdempotency {
            conn: SideConnection::open(path).map_err(unavailable)?,
            since_sweep: Arc::new(AtomicUsize::new(0)),
            clock: wall_clock(),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, IdempotencyError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let now = self.clock.now_ms();
        self.conn
            .call(move |c| f(c, now))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }
}

/// Reserve `key` inside `tx` (an `IMMEDIATE` transaction: the write lock is
/// held from the read to the insert).
fn reserve_in(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> rusqlite::Result<Reservation> {
    let found: Option<Record> = tx
        .prepare_cached(
            "SELECT fingerprint, status, body FROM idempotency_keys \
             WHERE key = ?1 AND expires_ms > ?2",
        )?
        .query_row(params![key, now], |r| {
            let status: Option<u16> = r.get(1)?;
            let body: Option<String> = r.get(2)?;
            Ok(Record {
                fingerprint: r.get(0)?,
                response: status
                    .zip(body)
                    .map(|(status, body)| StoredResponse { status, body }),
            })
        })
        .optional()?;
    Ok(match found {
        Some(rec) => rec.reservation(fingerprint),
        None => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys \
                 (key, fingerprint, status, body, expires_ms) VALUES (?1, ?2, NULL, NULL, ?3)",
            )?
            .execute(params![key, fingerprint, now + ms(PENDING_TTL)])?;
            Reservation::New
        }
    })
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotency {
    async fn reserve(&self, key: &str, fingerprint: &str) -> Result<Reservation, IdempotencyError> {
        let mut found = self
            .reserve_many(&[(key.to_string(), fingerprint.to_string())])
            .await?;
        Ok(found.pop().unwrap_or(Reservation::InFlight))
    }

    /// One `IMMEDIATE` transaction (one lock, one synced commit) for the
    /// whole group, not one per request.
    async fn reserve_many(
        &self,
        items: &[(String, String)],
    ) -> Result<Vec<Reservation>, IdempotencyError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // Every SWEEP_EVERY-th reservation (counted one by one) sweeps.
        let before = self.since_sweep.fetch_add(items.len(), Ordering::Relaxed);
        let sweep = before / SWEEP_EVERY != (before + items.len()) / SWEEP_EVERY;
        let items = items.to_vec();
        self.run(move |c, now| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if sweep {
                tx.execute("DELETE FROM idempotency_keys WHERE expires_ms <= ?1", [now])?;
            }
            let out = items
                .iter()
                .map(|(key, fingerprint)| reserve_in(&tx, key, fingerprint, now))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn complete_many(
        &self,
        items: &[(String, String, StoredResponse)],
    ) -> Result<(), IdempotencyError> {
        let items = items.to_vec();
        self.run(move |c, now| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency_keys \
                     (key, fingerprint, status, body, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (key, fingerprint, r) in &items {
                    put.execute(params![
                        key,
                        fingerprint,
                        r.status,
                        r.body,
                        now + ms(KEY_TTL)
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let key = key.to_string();
        self.run(move |c, _| {
            c.execute("DELETE FROM idempotency_keys WHERE key = ?1", [key])
                .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;

    fn open(dir: &tempfile::TempDir) -> SqliteIdempotency {
        let path = dir.path().join("history.sqlite");
        // Opening the history migrates the file, this table included.
        crate::sqlite::SqliteHistory::open(&path).unwrap();
        SqliteIdempotency::open(&path).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        conformance::same_body_replays_other_body_conflicts(&store).await;
        conformance::groups_reserve_like_one_at_a_time(&store).await;
        conformance::concurrent_reservations_have_one_winner(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn keys_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        conformance::keys_survive_reopening(|| std::future::ready(open(&dir))).await;
    }

    #[tokio::test]
    async fn keys_expire_after_a_day_and_stuck_reservations_after_their_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let (clock, advance) = conformance::manual_clock();
        store.clock = clock;
        conformance::keys_and_stuck_reservations_expire(&store, advance).await;
    }

    #[tokio::test]
    async fn expired_keys_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let rows = |s: &SqliteIdempotency| -> i64 {
            s.conn
                .lock()
                .query_row("SELECT COUNT(*) FROM idempotency_keys", [], |r| r.get(0))
                .unwrap()
        };
        // A key left by a request that died long ago.
        store
            .conn
            .lock()
            .execute(
                "INSERT INTO idempotency_keys VALUES ('old', 'fp', NULL, NULL, 1)",
                [],
            )
            .unwrap();
        for i in 0..SWEEP_EVERY {
            store.reserve(&format!("k{i}"), "fp").await.unwrap();
        }
        assert_eq!(rows(&store), SWEEP_EVERY as i64, "the expired key is gone");
    }
}
