//! The current record of each payment: Redis in production, memory in the
//! embedded default. A cache: it can always be rebuilt from history.

use async_trait::async_trait;

use nexus_core::domain::{Payment, PaymentId};

use crate::StoreError;

/// Current payment records (`payment:{id}`), plus the `seq` they reflect.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Records for `ids`, in order; `None` where unknown.
    async fn get_many(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError>;
    /// Write `payments` and set `last_seq` atomically (all or nothing).
    /// `counters` are added to the `metric:{name}` counters in the same step.
    async fn apply(
        &self,
        payments: &[Payment],
        last_seq: u64,
        counters: &[(&str, u64)],
    ) -> Result<(), StoreError>;
    /// The `seq` of the last applied event (0 when empty, e.g. after a flush).
    async fn last_seq(&self) -> Result<u64, StoreError>;
    /// Cheap reachability check for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether the store keeps its data across a restart. An empty store
    /// that keeps data (Redis) has lost it; one that does not (memory)
    /// starts empty every time, and loading it from history is routine.
    fn keeps_data(&self) -> bool {
        true
    }
    /// Read a `metric:{name}` counter.
    async fn counter(&self, name: &str) -> Result<u64, StoreError>;

    /// [`StateStore::last_seq`] and [`StateStore::get_many`] together: one
    /// round trip where the store can (the ingest path reads both per commit).
    async fn get_many_with_seq(
        &self,
        ids: &[PaymentId],
    ) -> Result<(u64, Vec<Option<Payment>>), StoreError> {
        Ok((self.last_seq().await?, self.get_many(ids).await?))
    }

    /// One record.
    async fn get(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        Ok(self
            .get_many(std::slice::from_ref(id))
            .await?
            .pop()
            .flatten())
    }
}
