//! Leader election: only one reconciler runs across the nodes sharing a
//! Redis. A lease key set only if absent, with a TTL (`SET NX PX` semantics,
//! done in a script so the fencing token is issued in the same step),
//! renewed at a third of its TTL. When the leader dies its key expires and
//! another node takes over within one lease period.
//!
//! Fencing: each term gets a token larger than every earlier one, and
//! history refuses a fenced write whose token is lower than one it has
//! already seen ([`nexus_store::Fence`]). A stale leader (paused, cut
//! off from Redis) therefore cannot overwrite its successor's work. Tokens are
//! `max(previous + 1, Redis TIME in µs)`, so they keep increasing even after
//! Redis loses its data (`FLUSHALL`, a restart without persistence).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use nexus_store::Fence;

/// The name fenced writes of the reconciler carry.
pub const FENCE_NAME: &str = "reconciler";
/// Default lease time to live.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// What this node may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Another node reconciles (or we cannot tell: Redis unreachable past the TTL).
    Follower,
    /// This node reconciles; writes carry the fence when there is a lease.
    Leader(Option<Fence>),
}

/// A role that never changes: the embedded default (one process) is always the leader.
pub fn fixed(role: Role) -> watch::Receiver<Role> {
    watch::channel(role).1
}

/// A Redis failure while taking or renewing the lease (always temporary from
/// the lease's point of view: it retries at the next renewal).
#[derive(Debug, thiserror::Error)]
#[error("lease: redis failed")]
pub struct LeaseError(#[source] pub redis::RedisError);

/// Acquire-or-renew: returns the token this holder owns, or -1 when another holder does.
const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder, token = string.match(cur, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = last + 1
if now > token then token = now end
redis.call('SET', KEYS[2], string.format('%d', token))
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%d', token), 'PX', ARGV[2])
return token
";

/// Delete the lease only if we still hold it.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^(.*)|%d+$')
  if holder == ARGV[1] then return redis.call('DEL', KEYS[1]) end
end
return 0
";

/// The lease in Redis.
#[derive(Clone)]
pub struct RedisLease {
    con: ConnectionManager,
    key: String,
    counter_key: String,
    /// Unique per process: who holds the lease.
    holder: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLease")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisLease {
    /// Connect; the keys are `{prefix}verifier:lease` and `{prefix}verifier:fence`.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, LeaseError> {
        let client = redis::Client::open(url).map_err(LeaseError)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_millis(1500));
        let con = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(LeaseError)?;
        Ok(RedisLease {
            con,
            key: format!("{prefix}verifier:lease"),
            counter_key: format!("{prefix}verifier:fence"),
            holder: format!(
                "{}-{}-{:016x}",
                hostname(),
                std::process::id(),
                rand::random::<u64>()
            ),
            ttl: ttl.max(Duration::from_millis(300)),
        })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Take the lease if free, or renew it if ours: `Some(token)` while we hold it.
    pub async fn acquire(&self) -> Result<Option<u64>, LeaseError> {
        let mut con = self.con.clone();
        let token: i64 = redis::Script::new(ACQUIRE)
            .key(&self.key)
            .key(&self.counter_key)
            .arg(&self.holder)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await
            .map_err(LeaseError)?;
        Ok(u64::try_from(token).ok())
    }

    /// Give the lease up (shutdown), so another node need not wait for the TTL.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut con)
            .await
            .map_err(LeaseError)?;
        Ok(())
    }

    /// Hold the lease until `shutdown`: try every third of the TTL and
    /// publish the role. A node that cannot reach Redis for a whole TTL
    /// steps down (its lease has expired by then).
    pub async fn run(self, tx: watch::Sender<Role>, shutdown: CancellationToken) {
        let period = self.ttl / 3;
        let mut last_ok: Option<Instant> = None;
        loop {
            let role = match self.acquire().await {
                Ok(Some(token)) => {
                    last_ok = Some(Instant::now());
                    Role::Leader(Some(Fence {
                        name: FENCE_NAME.to_string(),
                        token,
                    }))
                }
                Ok(None) => {
                    last_ok = Some(Instant::now());
                    Role::Follower
                }
                Err(e) => {
                    tracing::warn!(error = %nexus_core::error_chain(&e), "lease renewal failed");
                    let expired = last_ok.is_none_or(|t| t.elapsed() >= self.ttl);
                    if expired {
                        Role::Follower
                    } else {
                        tx.borrow().clone()
                    }
                }
            };
            tx.send_if_modified(|cur| {
                if *cur == role {
                    return false;
                }
                match &role {
                    Role::Leader(f) => tracing::info!(holder = %self.holder, token = f.as_ref().map(|f| f.token), "reconciler lease acquired: this node reconciles"),
                    Role::Follower => tracing::info!(holder = %self.holder, "reconciler lease not held: another node reconciles"),
                }
                *cur = role.clone();
                true
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
        }
        if matches!(*tx.borrow(), Role::Leader(_)) {
            let _ = tx.send(Role::Follower);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %nexus_core::error_chain(&e), "could not release the lease; it expires by itself");
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}
