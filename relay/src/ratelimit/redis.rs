//! GCRA in Redis: one script call per request, the clock read inside the
//! script (Redis `TIME`) so nodes with skewed clocks still share one limit.

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
            .map_err(|e| RateLimitError {
                backend: "redis",
                source: Box::new(e),
            })?;
        Ok(if allowed == 1 {
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: Duration::from_micros(wait_us.max(0) as u64),
            }
        })
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
