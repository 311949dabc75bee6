//! [`Providers`]: several stacks-node RPC endpoints, each behind its own
//! circuit breaker. A call goes to the first provider (in configuration
//! order, or an order the caller prefers) whose breaker lets it through and
//! falls over to the next on a provider failure (no answer, 5xx, 429,
//! garbage). A permanent answer (a 4xx, a refused read-only call, a mempool
//! rejection) is returned as is: another node would say the same.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use clarity::vm::types::Value;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::breaker::{BreakerState, CircuitBreaker};
use super::http::HttpProvider;
use super::types::{Account, BroadcastAnswer, NodeInfo, Tip};
use super::{ContractRef, RpcError, StacksRpc};
use nexus_outbound::Outbound;

/// Sees every call and breaker change (the node turns them into Prometheus metrics).
pub trait RpcObserver: Send + Sync + 'static {
    /// One call to one provider: `op` names the endpoint (`info`, `call_read`, ...).
    fn call(&self, provider: &str, op: &'static str, ok: bool, latency: Duration);
    /// A provider's breaker is now in `state`.
    fn breaker(&self, provider: &str, state: BreakerState);
}

/// Observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl RpcObserver for NoObserver {
    fn call(&self, _: &str, _: &'static str, _: bool, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
}

/// One provider as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStatus {
    pub url: String,
    pub breaker: &'static str,
    pub successes: u64,
    pub failures: u64,
}

struct Slot {
    provider: HttpProvider,
    /// Only ever locked briefly, never across an `.await`.
    breaker: Mutex<CircuitBreaker>,
    counts: Mutex<(u64, u64)>,
}

/// The providers, in preference order. Cheap to share behind an `Arc`.
pub struct Providers {
    slots: Vec<Slot>,
    observer: Arc<dyn RpcObserver>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| &s.provider))
            .finish()
    }
}

impl Providers {
    /// Providers at `urls` (at least one), each with its own breaker
    /// (`threshold` consecutive failures open it for `cooldown`), trusting
    /// the platform's roots only.
    pub fn new(
        urls: &[String],
        auth_token: Option<String>,
        timeout: Duration,
        threshold: u32,
        cooldown: Duration,
        observer: Arc<dyn RpcObserver>,
    ) -> Result<Self, RpcError> {
        let outbound = Outbound::default();
        Self::with_outbound(
            urls, auth_token, timeout, threshold, cooldown, observer, &outbound,
        )
    }

    /// [`Providers::new`], each provider's client built by `outbound` (the
    /// node's, which also trusts `ca_cert_path`).
    pub fn with_outbound(
        urls: &[String],
        auth_token: Option<String>,
        timeout: Duration,
        threshold: u32,
        cooldown: Duration,
        observer: Arc<dyn RpcObserver>,
        outbound: &Outbound,
    ) -> Result<Self, RpcError> {
        if urls.is_empty() {
            return Err(RpcError::Config("no RPC provider configured".into()));
        }
        let slots = urls
            .iter()
            .map(|u| {
                Ok(Slot {
                    provider: HttpProvider::with_outbound(
                        u,
                        auth_token.clone(),
                        timeout,
                        outbound,
                    )?,
                    // A probe is one call: the longest one is a block replay.
                    breaker: Mutex::new(
                        CircuitBreaker::new(threshold, cooldown)
                            .with_probe_timeout(timeout.max(super::http::REPLAY_TIMEOUT)),
                    ),
                    counts: Mutex::new((0, 0)),
                })
            })
            .collect::<Result<Vec<_>, RpcError>>()?;
        for s in &slots {
            observer.breaker(s.provider.name(), BreakerState::Closed);
        }
        Ok(Providers { slots, observer })
    }

    /// Every provider's breaker and call counts.
    pub fn status(&self) -> Vec<ProviderStatus> {
        let now = Instant::now();
        self.slots
            .iter()
            .map(|s| {
                let (successes, failures) = *lock(&s.counts);
                ProviderStatus {
                    url: s.provider.name().to_string(),
                    breaker: lock(&s.breaker).state(now).as_str(),
                    successes,
                    failures,
                }
            })
            .collect()
    }

    /// The providers' names (base URLs), in configuration order: index `i`
    /// here is index `i` of an order given to [`Providers::with_order`].
    pub fn names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.provider.name().to_string())
            .collect()
    }

    /// Run `f` against the first provider that will take it, falling over on
    /// provider failures, in configuration order. This is how every endpoint
    /// is called.
    pub async fn with<'f, T, F>(&'f self, op: &'static str, f: F) -> Result<T, RpcError>
    where
        T: Send,
        F: Fn(&'f HttpProvider) -> BoxFuture<'f, Result<T, RpcError>> + Send + Sync,
    {
        self.with_order(&[], op, f).await
    }

    /// [`Providers::with`] in a preferred order: the providers at the indices
    /// of `order` (into [`Providers::names`]) first, in that order, then any
    /// it left out in configuration order, so a stale or partial order never
    /// hides a provider. Unknown and repeated indices are ignored. Breakers
    /// and failover work as in `with`.
    pub async fn with_order<'f, T, F>(
        &'f self,
        order: &[usize],
        op: &'static str,
        f: F,
    ) -> Result<T, RpcError>
    where
        T: Send,
        F: Fn(&'f HttpProvider) -> BoxFuture<'f, Result<T, RpcError>> + Send + Sync,
    {
        let mut last: Option<RpcError> = None;
        let mut tried = 0;
        let mut soonest: Option<Duration> = None;
        for i in call_order(order, self.slots.len()) {
            let slot = &self.slots[i];
            let name = slot.provider.name();
            let allowed = {
                let mut b = lock(&slot.breaker);
                let now = Instant::now();
                let ok = b.try_acquire(now);
                if !ok {
                    let wait = b.wait(now);
                    soonest = Some(soonest.map_or(wait, |s: Duration| s.min(wait)));
                }
                ok
            };
            if !allowed {
                continue;
            }
            tried += 1;
            let started = Instant::now();
            let result = f(&slot.provider).await;
            let latency = started.elapsed();
            let failed = result
                .as_ref()
                .err()
                .is_some_and(|e| e.is_provider_failure());
            self.observer.call(name, op, !failed, latency);
            {
                let mut c = lock(&slot.counts);
                if failed {
                    c.1 += 1;
                } else {
                    c.0 += 1;
                }
            }
            let state = {
                let mut b = lock(&slot.breaker);
                let now = Instant::now();
                let before = b.state(now);
                match &result {
                    Err(e) if failed => b.on_failure(now, e.retry_after()),
                    _ => b.on_success(),
                }
                let after = b.state(now);
                (before != after).then_some(after)
            };
            if let Some(state) = state {
                // Recovery is good news: only a breaker leaving `closed` warns.
                if state == BreakerState::Closed {
                    tracing::info!(
                        provider = name,
                        breaker = state.as_str(),
                        "RPC provider breaker changed"
                    );
                } else {
                    tracing::warn!(
                        provider = name,
                        breaker = state.as_str(),
                        "RPC provider breaker changed"
                    );
                }
                self.observer.breaker(name, state);
            }
            match result {
                Err(e) if failed => {
                    tracing::debug!(provider = name, op, error = %e, "RPC provider failed; trying the next");
                    last = Some(e);
                }
                other => return other,
            }
        }
        match last {
            Some(last) => Err(RpcError::Exhausted {
                tried,
                last: Box::new(last),
            }),
            None => Err(RpcError::AllOpen {
                retry_after: soonest.unwrap_or_default(),
            }),
        }
    }

    /// `POST /v2/transactions` (see [`HttpProvider::broadcast`]) in `order`,
    /// sharing the breakers with every other call. Returns the name of the
    /// provider that answered with the answer: a rejection is that node's
    /// considered reply and is not retried on the next provider here (the
    /// relay's retry engine decides what a rejection means).
    pub async fn broadcast(
        &self,
        order: &[usize],
        tx: &[u8],
    ) -> Result<(String, BroadcastAnswer), RpcError> {
        self.with_order(order, "broadcast", |p| {
            Box::pin(async move {
                let answer = p.broadcast(tx).await?;
                Ok((p.name().to_string(), answer))
            })
        })
        .await
    }
}

/// `order`'s valid indices (first occurrence), then the rest of `0..len`.
fn call_order(order: &[usize], len: usize) -> Vec<usize> {
    let mut seen = vec![false; len];
    let mut out = Vec::with_capacity(len);
    for i in order.iter().copied().chain(0..len) {
        if i < len && !seen[i] {
            seen[i] = true;
            out.push(i);
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl StacksRpc for Providers {
    async fn info(&self) -> Result<NodeInfo, RpcError> {
        self.with("info", |p| Box::pin(p.info())).await
    }

    async fn call_read(
        &self,
        contract: &ContractRef,
        function: &str,
        args: &[Value],
        sender: &str,
        tip: &Tip,
    ) -> Result<Value, RpcError> {
        self.with("call_read", |p| {
            Box::pin(p.call_read(contract, function, args, sender, tip))
        })
        .await
    }

    async fn map_entry(
        &self,
        contract: &ContractRef,
        map: &str,
        key: &Value,
        tip: &Tip,
    ) -> Result<Option<Value>, RpcError> {
        self.with("map_entry", |p| {
            Box::pin(p.map_entry(contract, map, key, tip))
        })
        .await
    }

    async fn account(&self, principal: &str, tip: &Tip) -> Result<Account, RpcError> {
        self.with("account", |p| Box::pin(p.account(principal, tip)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::call_order;

    #[test]
    fn call_order_puts_the_preferred_first_and_never_hides_a_provider() {
        assert_eq!(call_order(&[], 3), vec![0, 1, 2]);
        assert_eq!(call_order(&[2, 0, 1], 3), vec![2, 0, 1]);
        assert_eq!(call_order(&[1], 3), vec![1, 0, 2]);
        assert_eq!(call_order(&[7, 1, 1, 0], 3), vec![1, 0, 2]);
        assert_eq!(call_order(&[0], 0), Vec::<usize>::new());
    }
}
