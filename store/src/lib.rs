//! Storage behind two narrow traits.
//!
//! * [`StateStore`]: the current record of each payment: Redis in production,
//!   memory in the embedded default. A cache: it can always be rebuilt from history.
//! * [`History`]: blocks seen, escrow transactions, the append-only payment
//!   event log (owner of `seq`), current payments and dead letters:
//!   PostgreSQL in production, SQLite in the embedded default.
//!
//! Write order per delivery: history commits first (one transaction, which
//! assigns `seq`), then the state store applies the new records atomically
//! together with `last_seq`. If the second step fails the delivery answers 5xx
//! and the retry finds `state.last_seq() < history.last_seq()` and catches up
//! from history: nothing is lost and nothing is emitted twice.

pub mod attached;
mod codec;
mod error;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use attached::{AttachedRows, AttachedValues};
pub use error::StoreError;
pub use types::{
    BlockRecord, CommitBatch, Committed, DeadLetter, Fence, MempoolRecord, PaymentFilter,
    UndoRecord,
};

use nexus_core::domain::{Payment, PaymentEvent, PaymentId, Proof};

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

/// The durable record: blocks, escrow transactions, event log, dead letters.
#[async_trait]
pub trait History: Send + Sync + 'static {
    /// Has this block (by `index_block_hash`) been committed?
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError>;
    /// Commit everything in `batch` in one transaction, assigning consecutive
    /// `seq`s to its events (and each payment's `updated_seq`).
    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError>;
    /// Store a payload or event we could not process. Returns its id.
    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError>;
    /// Newest dead letters first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
    /// Payment ids of known escrow transactions, as `(txid, payment_id)`.
    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError>;
    async fn get_payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError>;
    /// Several payments by id, in the order asked (`None`: unknown). Stores
    /// that can answer in one query override this loop.
    async fn get_payments(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get_payment(id).await?);
        }
        Ok(out)
    }
    /// Filtered, ordered by payment id, after `after` (keyset pagination).
    async fn list_payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError>;
    /// Payments whose `updated_seq > seq` (to rebuild the state store).
    async fn payments_changed_since(&self, seq: u64) -> Result<Vec<Payment>, StoreError>;
    async fn events_for_payment(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError>;
    /// Events with `seq > after`, ascending, at most `limit`.
    async fn events_since(&self, after: u64, limit: u32) -> Result<Vec<PaymentEvent>, StoreError>;
    async fn last_seq(&self) -> Result<u64, StoreError>;
    /// The highest committed block (our current tip), if any.
    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;

    /// One block, canonical or not.
    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError>;
    /// The escrow transactions stored with a block (to re-apply it after a reorg).
    async fn block_txs(
        &self,
        index_block_hash: &str,
    ) -> Result<Vec<nexus_core::decode::EscrowTx>, StoreError>;
    /// The before-images recorded when a block was applied (to roll it back).
    async fn undo(&self, index_block_hash: &str) -> Result<Vec<UndoRecord>, StoreError>;
    /// The `limit` highest blocks (canonical or not), to warm the header cache.
    async fn recent_blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, StoreError>;
    /// Stored blocks whose parent is `index_block_hash` (held orphans waiting for it).
    async fn children(&self, index_block_hash: &str) -> Result<Vec<BlockRecord>, StoreError>;
    /// Non-canonical blocks whose parent we have never seen: open gaps.
    async fn gaps(&self) -> Result<Vec<BlockRecord>, StoreError>;
    /// Wait until no other writer is mid-commit. A killed process's last
    /// COMMIT may still be completing in PostgreSQL when its replacement
    /// starts; reading the cursor before it lands would apply a block twice.
    async fn settle(&self) -> Result<(), StoreError>;

    /// [`History::get_block`] for many blocks in one round trip (a deep
    /// reorg reads a hundred); blocks not stored are left out.
    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError>;
    /// [`History::block_txs`] for many blocks at once, by block hash.
    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<nexus_core::decode::EscrowTx>>, StoreError>;
    /// [`History::undo`] for many blocks at once, by block hash.
    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError>;

    /// Those of `hashes` that some stored block names as its parent: the
    /// blocks [`History::children`] would find anything for, in one round
    /// trip (a commit group asks once for all of its blocks). The default
    /// asks [`History::children`] once per hash.
    async fn with_children(&self, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for h in hashes {
            if !self.children(h).await?.is_empty() {
                out.push(h.clone());
            }
        }
        Ok(out)
    }

    /// Open a commit group: one transaction that the commits made through the
    /// returned handle join, made durable together by
    /// [`HistoryGroup::finish`]. Dropping the handle unfinished rolls all of
    /// them back. Reads through the handle see its own uncommitted writes;
    /// reads through `self` do not. An import groups hundreds of blocks this
    /// way: one fsync and one state-store write per group instead of per block.
    async fn group(&self) -> Result<Arc<dyn HistoryGroup>, StoreError>;

    /// Store (replace) proofs of settlement, in one transaction. With a
    /// `fence`, refused (`Rejected`) unless its token is current (see [`Fence`]).
    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError>;
    /// The stored proof of one payment.
    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError>;
}

/// See [`History::group`].
#[async_trait]
pub trait HistoryGroup: History {
    /// Commit the group's transaction. Using the handle afterwards is an error.
    async fn finish(&self) -> Result<(), StoreError>;
}
