//! GCRA in Redis: one script call per request (a group of them in one
//! pipeline), the clock read inside the script (Redis `TIME`) so nodes with
//! skewed clocks still share one limit.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::{Decision, Quota, RateLimitError, RateLimiter};

/// KEYS[1]: the limit's key. ARGV: interval µs, burst.
/// Returns {1, 0} (allowed) or {0, wait µs}. Mirrors [`super::gcra`].
const GCRA: &str = r"
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + t
local allow_at = new_tat - t * burst
if allow_at > now then return {0, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
}

impl RedisRateLimiter {
    /// Keys are `{prefix}ratelimit:{key}`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        RedisRateLimiter {
            conn,
            prefix: prefix.to_string(),
            script: Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let mut conn = self.conn.clone();
        let (allowed, wait_us): (i64, i64) = self
            .script
            .key(format!("{}ratelimit:{key}", self.prefix))
            .arg(quota.interval().as_micros() as u64)
            .arg(quota.burst.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(decision((allowed, wait_us)))
    }

    async fn check_many(&self, items: &[(String, Quota)]) -> Result<Vec<Decision>, RateLimitError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut loaded = false;
        loop {
            let mut pipe = redis::pipe();
            for (key, quota) in items {
                pipe.cmd("EVALSHA")
                    .arg(self.script.get_hash())
                    .arg(1)
                    .arg(format!("{}ratelimit:{key}", self.prefix))
                    .arg(quota.interval().as_micros() as u64)
                    .arg(quota.burst.max(1));
            }
            match pipe.query_async::<Vec<(i64, i64)>>(&mut conn).await {
                Ok(answers) => return Ok(answers.into_iter().map(decision).collect()),
                // Redis restarted or its scripts were flushed: load it, once.
                Err(e) if !loaded && e.kind() == redis::ErrorKind::NoScriptError => {
                    let _: String = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(GCRA)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    loaded = true;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
}

fn unavailable(e: redis::RedisError) -> RateLimitError {
    RateLimitError {
        backend: "redis",
        source: Box::new(e),
    }
}

/// The script's `{allowed, wait µs}`.
fn decision((allowed, wait_us): (i64, i64)) -> Decision {
    if allowed == 1 {
        Decision::Allow
    } else {
        Decision::Deny {
            retry_after: Duration::from_micros(wait_us.max(0) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_on_real_redis() {
        let (conn, prefix) = crate::testing::redis().await;
        let limiter = RedisRateLimiter::new(conn, &prefix);
        super::super::conformance::burst_then_deny(&limiter).await;
        super::super::conformance::groups_count_in_order(&limiter).await;
    }

    /// A group after Redis lost its scripts (a restart, `SCRIPT FLUSH`)
    /// loads the script again instead of failing.
    #[tokio::test]
    async fn a_group_reloads_a_flushed_script() {
        let (conn, prefix) = crate::testing::redis().await;
        let limiter = RedisRateLimiter::new(conn.clone(), &prefix);
        let mut c = conn;
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut c)
            .await
            .unwrap();
        let q = Quota {
            per_second: 1.0,
            burst: 1,
        };
        let found = limiter
            .check_many(&[("f".into(), q), ("f".into(), q)])
            .await
            .unwrap();
        assert_eq!(found[0], Decision::Allow);
        assert!(matches!(found[1], Decision::Deny { .. }));
    }

    /// Two nodes (two connections) draw from one limit.
    #[tokio::test]
    async fn nodes_share_a_limit() {
        let (conn, prefix) = crate::testing::redis().await;
        let (other, _) = crate::testing::redis().await;
        let a = RedisRateLimiter::new(conn, &prefix);
        let b = RedisRateLimiter::new(other, &prefix);
        let q = Quota {
            per_second: 1.0,
            burst: 2,
        };
        assert_eq!(a.check("ip:1", q).await.unwrap(), Decision::Allow);
        assert_eq!(b.check("ip:1", q).await.unwrap(), Decision::Allow);
        assert!(matches!(
            a.check("ip:1", q).await.unwrap(),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            b.check("ip:1", q).await.unwrap(),
            Decision::Deny { .. }
        ));
    }
}
