//! Checks of concurrent requests gathered into groups: each group is one
//! [`RateLimiter::check_many`] call (one Redis round trip), not one round
//! trip per request. Measured on the accept path, where a round trip per
//! request was a sizeable share of each payment's cost.
//!
//! No long-lived task: the first check to find no group under way spawns a
//! drainer, which takes whatever has queued up, asks the limiter, answers,
//! and repeats until the queue is empty, then ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{Decision, Quota, RateLimitError, RateLimiter};

type Answer = Result<Decision, RateLimitError>;

struct Waiting {
    key: String,
    quota: Quota,
    reply: oneshot::Sender<Answer>,
}

struct Inner {
    limiter: Arc<dyn RateLimiter>,
    queue: Mutex<Vec<Waiting>>,
    /// A drainer is running (it will see anything queued).
    draining: AtomicBool,
}

/// A [`RateLimiter`] that groups concurrent checks for `limiter`.
#[derive(Clone)]
pub struct Grouped(Arc<Inner>);

impl Grouped {
    pub fn new(limiter: Arc<dyn RateLimiter>) -> Self {
        Grouped(Arc::new(Inner {
            limiter,
            queue: Mutex::default(),
            draining: AtomicBool::new(false),
        }))
    }
}

impl Inner {
    fn take(&self) -> Vec<Waiting> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn drain(self: Arc<Self>) {
        loop {
            let group = self.take();
            if group.is_empty() {
                self.draining.store(false, Ordering::SeqCst);
                // A check queued between the take and the store saw a
                // drainer running and started none: stay for it, unless
                // another drainer has started meanwhile.
                let queued = !self
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty();
                if queued && !self.draining.swap(true, Ordering::SeqCst) {
                    continue;
                }
                return;
            }
            let items: Vec<(String, Quota)> =
                group.iter().map(|w| (w.key.clone(), w.quota)).collect();
            match self.limiter.check_many(&items).await {
                Ok(decisions) => {
                    for (w, d) in group.into_iter().zip(decisions) {
                        let _ = w.reply.send(Ok(d));
                    }
                }
                Err(e) => {
                    let backend = e.backend;
                    let msg = nexus_core::error_chain(&e);
                    for w in group {
                        let _ = w.reply.send(Err(RateLimitError {
                            backend,
                            source: msg.clone().into(),
                        }));
                    }
                }
            }
        }
    }
}

#[async_trait]
impl RateLimiter for Grouped {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Waiting {
                key: key.to_string(),
                quota,
                reply,
            });
        if !self.0.draining.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.0.clone().drain());
        }
        answer.await.unwrap_or_else(|_| {
            Err(RateLimitError {
                backend: "grouped",
                source: "the group's drainer stopped before answering".into(),
            })
        })
    }

    async fn check_many(&self, items: &[(String, Quota)]) -> Result<Vec<Decision>, RateLimitError> {
        self.0.limiter.check_many(items).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{MemoryRateLimiter, RedisRateLimiter};

    #[tokio::test]
    async fn conforms() {
        let g = Grouped::new(Arc::new(MemoryRateLimiter::new()));
        super::super::conformance::burst_then_deny(&g).await;
        super::super::conformance::groups_count_in_order(&g).await;
    }

    /// Many concurrent checks on one key, on real Redis: exactly the burst
    /// passes, and they went in fewer calls than requests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_share_one_limit_on_real_redis() {
        struct Counting(RedisRateLimiter, std::sync::atomic::AtomicUsize);
        #[async_trait]
        impl RateLimiter for Counting {
            async fn check(&self, key: &str, quota: Quota) -> Answer {
                self.check_many(&[(key.to_string(), quota)])
                    .await
                    .map(|d| d[0])
            }
            async fn check_many(
                &self,
                items: &[(String, Quota)],
            ) -> Result<Vec<Decision>, RateLimitError> {
                self.1.fetch_add(1, Ordering::SeqCst);
                self.0.check_many(items).await
            }
        }
        let (conn, prefix) = crate::testing::redis().await;
        let counting = Arc::new(Counting(
            RedisRateLimiter::new(conn, &prefix),
            Default::default(),
        ));
        let g = Grouped::new(counting.clone());
        let q = Quota {
            per_second: 0.001,
            burst: 25,
        };
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { g.check("ip:shared", q).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap() == Decision::Allow {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 25);
        let calls = counting.1.load(Ordering::SeqCst);
        assert!(calls < 200, "{calls} calls for 200 checks");
        // The drainer ended with the queue empty; the next check starts another.
        assert!(!g.0.draining.load(Ordering::SeqCst));
        assert!(matches!(
            g.check("ip:shared", q).await.unwrap(),
            Decision::Deny { .. }
        ));
    }

    /// A failing limiter's error reaches every check of the group.
    #[tokio::test]
    async fn errors_reach_every_check() {
        struct Down;
        #[async_trait]
        impl RateLimiter for Down {
            async fn check(&self, _: &str, _: Quota) -> Answer {
                Err(RateLimitError {
                    backend: "down",
                    source: "connection refused".into(),
                })
            }
        }
        let g = Grouped::new(Arc::new(Down));
        let q = Quota {
            per_second: 1.0,
            burst: 1,
        };
        let (a, b) = tokio::join!(g.check("a", q), g.check("b", q));
        for r in [a, b] {
            let e = r.unwrap_err();
            assert_eq!(e.backend, "down");
            assert!(e.source.to_string().contains("connection refused"));
        }
    }
}
