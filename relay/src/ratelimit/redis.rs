//! GCRA in Redis: one script call per group of requests, the clock read
//! inside the script (Redis `TIME`) so nodes with skewed clocks still share
//! one limit.
//!
//! A group is one script run, not a pipeline of one run per request: a
//! pipeline that met a flushed script cache half way (Redis restarted, or
//! `SCRIPT FLUSH`) had already spent the quota of its first requests, and
//! running it again after loading the script spent it twice. One run is
//! atomic: it happens whole or, on `NOSCRIPT`, not at all.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::{Decision, Quota, RateLimitError, RateLimiter};

/// KEYS: the limits' keys, in request order (a key may repeat). ARGV: for
/// each key, its interval in µs and its burst. Returns, per key, {1, 0}
/// (allowed) or {0, wait µs}. Mirrors [`super::gcra`].
const GCRA: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local out = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + t
  local allow_at = new_tat - t * burst
  if allow_at > now then
    out[i] = {0, allow_at - now}
  else
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
    out[i] = {1, 0}
  end
end
return out
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
        let mut out = self.check_many(&[(key.to_string(), quota)]).await?;
        out.pop()
            .ok_or_else(|| unavailable("the script answered nothing"))
    }

    async fn check_many(&self, items: &[(String, Quota)]) -> Result<Vec<Decision>, RateLimitError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let run = |command: &str, script: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(script).arg(items.len());
            for (key, _) in items {
                cmd.arg(format!("{}ratelimit:{key}", self.prefix));
            }
            for (_, quota) in items {
                cmd.arg(quota.interval().as_micros() as u64)
                    .arg(quota.burst.max(1));
            }
            cmd
        };
        // By hash first (the script is cached after the first run). On
        // NOSCRIPT send the script itself: safe, since the failed run
        // changed nothing, and it cannot meet another flush half way.
        let answers: Vec<(i64, i64)> = match run("EVALSHA", self.script.get_hash())
            .query_async(&mut conn)
            .await
        {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                run("EVAL", GCRA).query_async(&mut conn).await
            }
            other => other,
        }
        .map_err(unavailable)?;
        if answers.len() != items.len() {
            return Err(unavailable(format!(
                "the script answered {} of {} checks",
                answers.len(),
                items.len()
            )));
        }
        Ok(answers.into_iter().map(decision).collect())
    }
}

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RateLimitError {
    RateLimitError {
        backend: "redis",
        source: e.into(),
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

    /// Scripts flushed while groups run (another client's `SCRIPT FLUSH`, a
    /// restart) never spend a quota twice: exactly the burst is allowed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_while_groups_run_spends_each_quota_once() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let (conn, prefix) = crate::testing::redis().await;
        let limiter = RedisRateLimiter::new(conn.clone(), &prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = tokio::spawn({
            let (mut c, stop) = (conn, stop.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let () = redis::cmd("SCRIPT")
                        .arg("FLUSH")
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        let q = Quota {
            per_second: 0.001,
            burst: 50,
        };
        let group: Vec<(String, Quota)> = (0..10).map(|_| ("shared".to_string(), q)).collect();
        let mut allowed = 0;
        for _ in 0..20 {
            let found = limiter.check_many(&group).await.unwrap();
            allowed += found.iter().filter(|d| **d == Decision::Allow).count();
        }
        stop.store(true, Ordering::SeqCst);
        flusher.await.unwrap();
        assert_eq!(allowed, 50);
    }
}
