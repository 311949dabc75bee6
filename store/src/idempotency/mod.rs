//! Idempotency keys (the context seed's rules): the same key with the same
//! body gets the stored response again (same status, same body); the same
//! key with another body is a conflict; keys expire after 24 h; concurrent
//! duplicates are safe because exactly one request reserves the key and the
//! others wait for its response.
//!
//! Redis (`{prefix}idempotency:{key}`) lets several nodes share keys; a
//! node with PostgreSQL but no Redis keeps them in its database, the
//! embedded default in its SQLite file, so a restart remembers them either
//! way; memory serves tests.

mod memory;
mod postgres;
mod redis;
mod sqlite;

pub use self::memory::MemoryIdempotency;
pub use self::postgres::PgIdempotency;
pub use self::redis::RedisIdempotency;
pub use self::sqlite::SqliteIdempotency;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How long a key is remembered (the context seed: 24 h).
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A reservation whose request never finished (the node died mid-request)
/// stops blocking its key after this long.
pub const PENDING_TTL: Duration = Duration::from_secs(30);

/// The clock the SQL stores keep expiry times by (unix milliseconds); a
/// field of theirs so tests can move time.
pub(crate) type Clock = std::sync::Arc<dyn nexus_core::clock::Clock>;

pub(crate) fn wall_clock() -> Clock {
    std::sync::Arc::new(nexus_core::clock::SystemClock)
}

/// The response remembered for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What [`IdempotencyStore::reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is ours: handle the request, then [`IdempotencyStore::complete`]
    /// (or [`IdempotencyStore::release`] on a temporary failure).
    New,
    /// The same body was answered before: send this again.
    Replay(StoredResponse),
    /// Another request with the same key and body is being handled now.
    InFlight,
    /// The key was used with a different body: that request's response,
    /// once it has one (who holds the key, for a caller that must say so).
    Conflict(Option<StoredResponse>),
}

/// Why the key store could not answer. Always temporary: the request can be
/// retried with the same key.
#[derive(Debug, thiserror::Error)]
#[error("idempotency store ({backend}) unavailable")]
pub struct IdempotencyError {
    pub backend: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// One record per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// sha256 of the request body (the signed transaction's bytes).
    pub fingerprint: String,
    /// `None` while the first request is in flight.
    pub response: Option<StoredResponse>,
}

impl Record {
    pub(crate) fn reservation(&self, fingerprint: &str) -> Reservation {
        if self.fingerprint != fingerprint {
            return Reservation::Conflict(self.response.clone());
        }
        match &self.response {
            Some(r) => Reservation::Replay(r.clone()),
            None => Reservation::InFlight,
        }
    }
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claim `key` for a request whose body hashes to `fingerprint`.
    async fn reserve(&self, key: &str, fingerprint: &str) -> Result<Reservation, IdempotencyError>;
    /// [`IdempotencyStore::reserve`] for several `(key, fingerprint)` at
    /// once, answers in order. A key listed twice is the first one's: the
    /// second finds it in flight (same fingerprint) or in conflict. The
    /// accept path reserves each group of concurrent requests with one call
    /// (one round trip in Redis). `InFlight` may also mean the key lapsed
    /// between two reads: the caller's `reserve_or_wait` (nexus-relay) sorts that out.
    /// On an error, some of the keys may be held until [`PENDING_TTL`].
    async fn reserve_many(
        &self,
        items: &[(String, String)],
    ) -> Result<Vec<Reservation>, IdempotencyError> {
        let mut out = Vec::with_capacity(items.len());
        for (key, fingerprint) in items {
            out.push(self.reserve(key, fingerprint).await?);
        }
        Ok(out)
    }
    /// Remember the response for `key` for [`KEY_TTL`].
    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        self.complete_many(&[(key.to_string(), fingerprint.to_string(), response.clone())])
            .await
    }
    /// [`IdempotencyStore::complete`] for several keys at once, `(key,
    /// fingerprint, response)`: one round trip (the accept path completes a
    /// whole batch together).
    async fn complete_many(
        &self,
        items: &[(String, String, StoredResponse)],
    ) -> Result<(), IdempotencyError>;
    /// Forget a reservation whose request failed temporarily, so a retry with
    /// the same key is handled afresh.
    async fn release(&self, key: &str) -> Result<(), IdempotencyError>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The behaviour every implementation must show; run by each
    //! implementation's tests (Redis and SQLite for real).
    use super::*;

    pub async fn same_body_replays_other_body_conflicts(store: &dyn IdempotencyStore) {
        let ok = StoredResponse {
            status: 202,
            body: "{\"a\":1}".into(),
        };
        assert_eq!(store.reserve("k1", "fp").await.unwrap(), Reservation::New);
        assert_eq!(
            store.reserve("k1", "fp").await.unwrap(),
            Reservation::InFlight
        );
        assert_eq!(
            store.reserve("k1", "other").await.unwrap(),
            Reservation::Conflict(None)
        );
        store.complete("k1", "fp", &ok).await.unwrap();
        assert_eq!(
            store.reserve("k1", "fp").await.unwrap(),
            Reservation::Replay(ok.clone())
        );
        // A batch completes its keys together, each with its own response.
        let other = StoredResponse {
            status: 202,
            body: "{\"b\":2}".into(),
        };
        assert_eq!(store.reserve("k3", "fp3").await.unwrap(), Reservation::New);
        assert_eq!(store.reserve("k4", "fp4").await.unwrap(), Reservation::New);
        store
            .complete_many(&[
                ("k3".into(), "fp3".into(), ok.clone()),
                ("k4".into(), "fp4".into(), other.clone()),
            ])
            .await
            .unwrap();
        assert_eq!(
            store.reserve("k3", "fp3").await.unwrap(),
            Reservation::Replay(ok.clone())
        );
        assert_eq!(
            store.reserve("k4", "fp4").await.unwrap(),
            Reservation::Replay(other.clone())
        );
        assert_eq!(
            store.reserve("k4", "fp3").await.unwrap(),
            Reservation::Conflict(Some(other))
        );
        assert_eq!(
            store.reserve("k1", "other").await.unwrap(),
            Reservation::Conflict(Some(ok.clone()))
        );
        // A released key is handled afresh.
        assert_eq!(store.reserve("k2", "fp").await.unwrap(), Reservation::New);
        store.release("k2").await.unwrap();
        assert_eq!(store.reserve("k2", "fp2").await.unwrap(), Reservation::New);
    }

    /// A group reserved in one call: each key answered as `reserve` would,
    /// in order, a key listed twice going to its first request.
    pub async fn groups_reserve_like_one_at_a_time(store: &dyn IdempotencyStore) {
        let done = StoredResponse {
            status: 202,
            body: "{\"done\":1}".into(),
        };
        assert_eq!(
            store.reserve("g-done", "fp").await.unwrap(),
            Reservation::New
        );
        store.complete("g-done", "fp", &done).await.unwrap();
        assert_eq!(
            store.reserve("g-busy", "fp").await.unwrap(),
            Reservation::New
        );
        let item = |k: &str, f: &str| (k.to_string(), f.to_string());
        let found = store
            .reserve_many(&[
                item("g-new", "fp"),
                item("g-done", "fp"),
                item("g-done", "other"),
                item("g-busy", "fp"),
                item("g-twice", "fp"),
                item("g-twice", "fp"),
                item("g-twice", "other"),
            ])
            .await
            .unwrap();
        assert_eq!(
            found,
            vec![
                Reservation::New,
                Reservation::Replay(done.clone()),
                Reservation::Conflict(Some(done)),
                Reservation::InFlight,
                Reservation::New,
                Reservation::InFlight,
                Reservation::Conflict(None),
            ]
        );
        // The new keys are held: a later request waits for them.
        assert_eq!(
            store.reserve("g-new", "fp").await.unwrap(),
            Reservation::InFlight
        );
        assert_eq!(store.reserve_many(&[]).await.unwrap(), Vec::new());
    }

    /// Keys expire after [`KEY_TTL`], an unanswered reservation after
    /// [`PENDING_TTL`]; `advance` moves the store's clock forward.
    pub async fn keys_and_stuck_reservations_expire<F, Fut>(
        store: &dyn IdempotencyStore,
        advance: F,
    ) where
        F: Fn(Duration) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let resp = StoredResponse {
            status: 202,
            body: "x".into(),
        };
        assert_eq!(store.reserve("a", "fp").await.unwrap(), Reservation::New);
        store.complete("a", "fp", &resp).await.unwrap();
        assert_eq!(store.reserve("b", "fp").await.unwrap(), Reservation::New);
        advance(PENDING_TTL + Duration::from_secs(1)).await;
        assert_eq!(
            store.reserve("b", "fp").await.unwrap(),
            Reservation::New,
            "a dead request's key frees up"
        );
        assert_eq!(
            store.reserve("a", "fp").await.unwrap(),
            Reservation::Replay(resp)
        );
        advance(KEY_TTL).await;
        assert_eq!(
            store.reserve("a", "other").await.unwrap(),
            Reservation::New,
            "expired after 24 h"
        );
    }

    /// A [`Clock`] that moves only when the returned `advance` is called
    /// (for [`keys_and_stuck_reservations_expire`]).
    pub fn manual_clock() -> (Clock, impl Fn(Duration) -> std::future::Ready<()>) {
        let clock = std::sync::Arc::new(nexus_core::clock::SkipClock::new(1_000_000));
        let handle = clock.clone();
        let advance = move |d: Duration| {
            handle.advance(d);
            std::future::ready(())
        };
        (clock, advance)
    }

    /// A store opened again on the same backing (`open` called twice)
    /// still has the first one's keys.
    pub async fn keys_survive_reopening<S, F, Fut>(open: F)
    where
        S: IdempotencyStore,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = S>,
    {
        let resp = StoredResponse {
            status: 202,
            body: "{\"payment_id\":\"0x01\"}".into(),
        };
        let first = open().await;
        assert_eq!(first.reserve("a", "fp").await.unwrap(), Reservation::New);
        first.complete("a", "fp", &resp).await.unwrap();
        drop(first);
        let again = open().await;
        assert_eq!(
            again.reserve("a", "fp").await.unwrap(),
            Reservation::Replay(resp.clone())
        );
        assert_eq!(
            again.reserve("a", "other").await.unwrap(),
            Reservation::Conflict(Some(resp))
        );
    }

    pub async fn concurrent_reservations_have_one_winner(
        store: std::sync::Arc<dyn IdempotencyStore>,
    ) {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.reserve("race", "fp").await.unwrap() })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            match t.await.unwrap() {
                Reservation::New => new += 1,
                Reservation::InFlight => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(new, 1, "exactly one request owns the key");
    }
}
