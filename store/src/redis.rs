//! [`StateStore`] on Redis (production): a cache of current payment records.
//!
//! Key layout, every key under the configured prefix `{p}` (`nexus:` in
//! production, a random one per test):
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `{p}payment:{id}` | string | JSON of [`Payment`]; `EX 86400` once settled, no TTL while open |
//! | `{p}metric:{name}` | string (int) | counters, `INCRBY` |
//! | `{p}meta:last_seq` | string (int) | `seq` of the last applied event |
//!
//! No per-status sets: the verifier finds open payments in the history
//! store, and sets kept here only for that were read by nothing else, cost
//! six commands per apply and, for terminal statuses, grew forever.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ErrorKind, RedisError};

use super::{StateStore, StoreError};
use nexus_core::domain::{Payment, PaymentId};

const BACKEND: &str = "redis";

/// How long a settled payment stays cached. History keeps it forever.
pub const SETTLED_TTL_SECS: u64 = 86_400;

/// Bound on establishing a TCP connection (initial connect and reconnects).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one command or pipeline once connected.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Outer bound on a whole operation, including waiting for a reconnect in
/// progress, which the two timeouts above do not cover on their own.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis-backed [`StateStore`]. Cheap to clone: the connection is shared.
#[derive(Clone)]
pub struct RedisState {
    /// Multiplexed connection that reconnects by itself after an outage.
    con: ConnectionManager,
    /// Prepended to every key, so several deployments (or tests) share one server.
    prefix: String,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connect to `url` (`redis://host:port/db`). Fails with
    /// [`StoreError::Unavailable`] within about [`OP_TIMEOUT`] if the server
    /// cannot be reached, and with [`StoreError::Rejected`] for a bad URL.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(map_err)?;
        // No retries inside the manager: a failed attempt surfaces at once as
        // `Unavailable` and the caller (stacks-node redelivery, the verifier's
        // next tick) retries. The manager reconnects on the next command.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let con = bounded(ConnectionManager::new_with_config(client, config)).await?;
        Ok(RedisState {
            con,
            prefix: prefix.to_string(),
        })
    }

    /// The key prefix this store writes under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn payment_key(&self, id: &PaymentId) -> String {
        format!("{}payment:{id}", self.prefix)
    }

    fn metric_key(&self, name: &str) -> String {
        format!("{}metric:{name}", self.prefix)
    }

    fn last_seq_key(&self) -> String {
        format!("{}meta:last_seq", self.prefix)
    }

    /// Remaining time to live of a payment record; `None` when the record has
    /// no expiry or does not exist.
    pub async fn ttl(&self, id: &PaymentId) -> Result<Option<Duration>, StoreError> {
        let mut con = self.con.clone();
        let secs: i64 = bounded(con.ttl(self.payment_key(id))).await?;
        // -1: no expiry, -2: no such key.
        Ok(u64::try_from(secs).ok().map(Duration::from_secs))
    }

    /// Delete every key under this store's prefix (`SCAN` + `UNLINK`; never
    /// `FLUSHALL`). For tests; refuses an empty prefix, which would mean
    /// the whole database.
    pub async fn flush_prefix(&self) -> Result<(), StoreError> {
        if self.prefix.is_empty() {
            return Err(StoreError::rejected(
                BACKEND,
                "refusing to flush an empty prefix (the whole database)",
            ));
        }
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut con = self.con.clone();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = bounded(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con),
            )
            .await?;
            if !keys.is_empty() {
                bounded(con.unlink::<_, ()>(keys)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl StateStore for RedisState {
    async fn get_many(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.payment_key(id)).collect();
        let mut con = self.con.clone();
        // Explicit MGET: redis-rs would turn a one-key `mget` into `GET`,
        // which returns a bare value instead of an array.
        let raw: Vec<Option<Vec<u8>>> =
            bounded(redis::cmd("MGET").arg(&keys).query_async(&mut con)).await?;
        raw.into_iter()
            .map(|v| {
                v.map(|bytes| serde_json::from_slice(&bytes))
                    .transpose()
                    .map_err(|e| StoreError::corrupt(BACKEND, e))
            })
            .collect()
    }

    /// `GET` and `MGET` in one pipeline.
    async fn get_many_with_seq(
        &self,
        ids: &[PaymentId],
    ) -> Result<(u64, Vec<Option<Payment>>), StoreError> {
        if ids.is_empty() {
            return Ok((self.last_seq().await?, Vec::new()));
        }
        let keys: Vec<String> = ids.iter().map(|id| self.payment_key(id)).collect();
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(self.last_seq_key())
            .cmd("MGET")
            .arg(&keys);
        let (seq, raw): (Option<u64>, Vec<Option<Vec<u8>>>) =
            bounded(pipe.query_async(&mut con)).await?;
        let records = raw
            .into_iter()
            .map(|v| {
                v.map(|bytes| serde_json::from_slice(&bytes))
                    .transpose()
                    .map_err(|e| StoreError::corrupt(BACKEND, e))
            })
            .collect::<Result<_, _>>()?;
        Ok((seq.unwrap_or(0), records))
    }

    /// One `MULTI`/`EXEC` round trip: no reader sees part of an apply. (Redis
    /// does not roll back a queued command that fails when run, which can only
    /// happen if a key under our prefix holds the wrong type.)
    ///
    /// An `Unavailable` from a timeout does not prove the `EXEC` did not run.
    /// Applying the same records and `last_seq` again is harmless; only the
    /// counters may then count twice.
    async fn apply(
        &self,
        payments: &[Payment],
        last_seq: u64,
        counters: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();

        // Several records of one id: queued in order, so the last one wins.
        for p in payments {
            let json = serde_json::to_string(p).map_err(|e| StoreError::rejected(BACKEND, e))?;
            let key = self.payment_key(&p.payment_id);
            if p.status.is_settled() {
                pipe.set_ex(key, json, SETTLED_TTL_SECS).ignore();
            } else {
                // A plain SET drops any TTL left from an earlier settled status.
                pipe.set(key, json).ignore();
            }
        }
        for (name, by) in counters {
            let by = i64::try_from(*by).map_err(|e| StoreError::rejected(BACKEND, e))?;
            pipe.incr(self.metric_key(name), by).ignore();
        }
        pipe.set(self.last_seq_key(), last_seq).ignore();

        let mut con = self.con.clone();
        bounded(pipe.query_async::<()>(&mut con)).await
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        let mut con = self.con.clone();
        let seq: Option<u64> = bounded(con.get(self.last_seq_key())).await?;
        Ok(seq.unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        bounded(redis::cmd("PING").query_async::<()>(&mut con)).await
    }

    async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let mut con = self.con.clone();
        let n: Option<u64> = bounded(con.get(self.metric_key(name))).await?;
        Ok(n.unwrap_or(0))
    }
}

/// Run a Redis call under [`OP_TIMEOUT`], mapping its error.
async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.map_err(map_err),
        Err(elapsed) => Err(StoreError::unavailable(BACKEND, elapsed)),
    }
}

/// Transient (connection, timeout, server busy or failing over) vs data we
/// cannot read vs configuration mistakes.
fn map_err(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return StoreError::unavailable(BACKEND, e);
    }
    match e.kind() {
        ErrorKind::TypeError => StoreError::corrupt(BACKEND, e),
        ErrorKind::ResponseError if e.code() == Some("WRONGTYPE") => {
            StoreError::corrupt(BACKEND, e)
        }
        ErrorKind::InvalidClientConfig | ErrorKind::AuthenticationFailed => {
            StoreError::rejected(BACKEND, e)
        }
        // Anything else (OOM, LOADING, READONLY during failover, EXECABORT, ...)
        // may pass: answer 5xx and let the delivery be retried.
        _ => StoreError::unavailable(BACKEND, e),
    }
}

/// Escape the glob characters `SCAN MATCH` understands.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_quotes_pattern_characters() {
        assert_eq!(
            glob_escape("nexus-test:ab*[x]?\\:"),
            "nexus-test:ab\\*\\[x\\]\\?\\\\:"
        );
    }
}
