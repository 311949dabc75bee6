//! [`StateStore`] in process memory (the embedded default). Same semantics as
//! [`RedisState`](super::redis::RedisState): a TTL on settled payments,
//! counters and `last_seq`, all changed atomically by `apply`.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::redis::SETTLED_TTL_SECS;
use super::{StateStore, StoreError};
use nexus_core::domain::{Payment, PaymentId};

/// How often `apply` sweeps expired settled payments out of the map.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// In-memory [`StateStore`]. The lock is a `std` one and is never held
/// across an `.await` (no method awaits while holding it).
#[derive(Debug)]
pub struct MemoryState {
    inner: RwLock<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `payment:{id}`, with the record's expiry (settled payments only).
    payments: HashMap<PaymentId, Entry>,
    /// `metric:{name}`.
    counters: HashMap<String, u64>,
    /// `meta:last_seq`.
    last_seq: u64,
    /// When `apply` next drops expired entries (reads skip them meanwhile).
    next_sweep: Instant,
}

#[derive(Debug)]
struct Entry {
    payment: Payment,
    /// `None` while the payment is open: open payments never expire.
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        MemoryState {
            inner: RwLock::new(Inner {
                payments: HashMap::new(),
                counters: HashMap::new(),
                last_seq: 0,
                next_sweep: Instant::now() + SWEEP_EVERY,
            }),
        }
    }

    // Nothing under the write lock can panic between the first and the last
    // mutation of an `apply` (short of running out of memory), so a poisoned
    // lock still guards consistent data: no reason to fail every later call.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remaining time to live of a payment record; `None` when the record has
    /// no expiry or does not exist. Same contract as `RedisState::ttl`.
    pub async fn ttl(&self, id: &PaymentId) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let inner = self.read();
        Ok(inner
            .payments
            .get(id)
            .filter(|e| e.live(now))
            .and_then(|e| e.expires_at)
            .map(|at| at - now))
    }
}

#[async_trait]
impl StateStore for MemoryState {
    fn keeps_data(&self) -> bool {
        false
    }

    async fn get_many(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError> {
        let now = Instant::now();
        let inner = self.read();
        Ok(ids
            .iter()
            .map(|id| {
                inner
                    .payments
                    .get(id)
                    .filter(|e| e.live(now))
                    .map(|e| e.payment.clone())
            })
            .collect())
    }

    async fn apply(
        &self,
        payments: &[Payment],
        last_seq: u64,
        counters: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let ttl = Duration::from_secs(SETTLED_TTL_SECS);
        let mut guard = self.write();
        let inner = &mut *guard;
        if now >= inner.next_sweep {
            inner.sweep(now);
        }
        for p in payments {
            let id = p.payment_id;
            let expires_at = p.status.is_settled().then(|| now + ttl);
            inner.payments.insert(
                id,
                Entry {
                    payment: p.clone(),
                    expires_at,
                },
            );
        }
        for (name, by) in counters {
            let c = inner.counters.entry((*name).to_string()).or_default();
            *c = c.saturating_add(*by);
        }
        inner.last_seq = last_seq;
        Ok(())
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.read().last_seq)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.read().counters.get(name).copied().unwrap_or(0))
    }
}

impl Inner {
    /// Drop expired records (reads already skip them).
    fn sweep(&mut self, now: Instant) {
        self.payments.retain(|_, e| e.live(now));
        self.next_sweep = now + SWEEP_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_core::domain::PaymentStatus;

    fn payment(n: u8, status: PaymentStatus) -> Payment {
        Payment::new(PaymentId([n; 32]), status, "2025-01-01T00:00:00Z")
    }

    /// Expiry follows the (paused) tokio clock: a settled payment disappears
    /// after the TTL, an open one stays.
    #[tokio::test(start_paused = true)]
    async fn settled_payments_expire_and_open_ones_do_not() {
        let s = MemoryState::new();
        let open = payment(1, PaymentStatus::Confirmed);
        let done = payment(2, PaymentStatus::Failed);
        s.apply(&[open.clone(), done.clone()], 2, &[])
            .await
            .unwrap();

        tokio::time::advance(Duration::from_secs(SETTLED_TTL_SECS + 1)).await;
        let got = s
            .get_many(&[open.payment_id, done.payment_id])
            .await
            .unwrap();
        assert_eq!(got, vec![Some(open.clone()), None]);

        // The next apply sweeps the expired record out of the map.
        s.apply(&[], 3, &[]).await.unwrap();
        assert_eq!(s.read().payments.len(), 1);
    }
}
