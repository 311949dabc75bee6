//! Keys in Redis, shared by every node: `{prefix}idempotency:{key}` holds the
//! JSON [`Record`]. `SET NX PX` makes exactly one concurrent request the
//! owner, across nodes.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::{
    IdempotencyError, IdempotencyStore, Record, Reservation, StoredResponse, KEY_TTL, PENDING_TTL,
};

#[derive(Clone)]
pub struct RedisIdempotency {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisIdempotency {
    /// Use `conn` (a multiplexed connection manager); keys start with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        RedisIdempotency {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}idempotency:{key}", self.prefix)
    }

    /// One pipeline: for each key `SET NX PX` (ours if it was free), then
    /// `GET` (what holds it if not). `None`: the key was taken, then gone
    /// before the `GET` (expired or released).
    async fn reserve_pipelined(
        &self,
        items: &[(String, String)],
    ) -> Result<Vec<Option<Reservation>>, IdempotencyError> {
        let mut pipe = redis::pipe();
        for (key, fingerprint) in items {
            let pending = Record {
                fingerprint: fingerprint.clone(),
                response: None,
            };
            let k = self.key(key);
            pipe.cmd("SET")
                .arg(&k)
                .arg(serde_json::to_string(&pending).map_err(unavailable)?)
                .arg("NX")
                .arg("PX")
                .arg(PENDING_TTL.as_millis() as u64)
                .get(k);
        }
        let mut conn = self.conn.clone();
        let answers: Vec<Option<String>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(items.len());
        for ((_, fingerprint), pair) in items.iter().zip(answers.chunks(2)) {
            let r = match pair {
                [Some(_), _] => Some(Reservation::New),
                [None, Some(current)] => {
                    let rec: Record = serde_json::from_str(current).map_err(unavailable)?;
                    Some(rec.reservation(fingerprint))
                }
                _ => None,
            };
            out.push(r);
        }
        Ok(out)
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> IdempotencyError {
    IdempotencyError {
        backend: "redis",
        source: Box::new(e),
    }
}

#[async_trait]
impl IdempotencyStore for RedisIdempotency {
    async fn reserve(&self, key: &str, fingerprint: &str) -> Result<Reservation, IdempotencyError> {
        let item = [(key.to_string(), fingerprint.to_string())];
        for _ in 0..3 {
            // Gone between SET and GET (expired, released): try to own it again.
            if let Some(r) = self.reserve_pipelined(&item).await?.pop().flatten() {
                return Ok(r);
            }
        }
        Ok(Reservation::InFlight)
    }

    async fn reserve_many(
        &self,
        items: &[(String, String)],
    ) -> Result<Vec<Reservation>, IdempotencyError> {
        Ok(self
            .reserve_pipelined(items)
            .await?
            .into_iter()
            .map(|r| r.unwrap_or(Reservation::InFlight))
            .collect())
    }

    async fn complete_many(
        &self,
        items: &[(String, String, StoredResponse)],
    ) -> Result<(), IdempotencyError> {
        if items.is_empty() {
            return Ok(());
        }
        // One pipeline: a batch's keys in one write and one read.
        let mut pipe = redis::pipe();
        for (key, fingerprint, response) in items {
            let rec = Record {
                fingerprint: fingerprint.clone(),
                response: Some(response.clone()),
            };
            let body = serde_json::to_string(&rec).map_err(unavailable)?;
            pipe.pset_ex(self.key(key), body, KEY_TTL.as_millis() as u64)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotencyError> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key(key)).await.map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;
    use std::sync::Arc;

    /// Against the real Redis, under a key prefix of its own.
    #[tokio::test]
    async fn conforms_on_real_redis() {
        let (conn, prefix) = crate::testing::redis().await;
        let store = RedisIdempotency::new(conn.clone(), &prefix);
        conformance::same_body_replays_other_body_conflicts(&store).await;
        conformance::groups_reserve_like_one_at_a_time(&store).await;
        conformance::concurrent_reservations_have_one_winner(Arc::new(store.clone())).await;
        let mut c = conn;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}idempotency:k1"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(
            ttl > (KEY_TTL.as_millis() as i64) - 60_000,
            "answered keys live 24 h, got {ttl} ms"
        );
    }
}
