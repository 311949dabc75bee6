//! The durable record, behind one trait per role. Ingest writes the chain
//! ([`ChainLog`]); the API, the state-store rebuild and event catch-up read
//! payments and events ([`Queries`]); the verifier writes and the API reads
//! proofs ([`Proofs`]). [`History`] is all three: what a backend implements
//! and what the node wires, while a consumer can hold just its role.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use nexus_core::decode::EscrowTx;
use nexus_core::domain::{Payment, PaymentEvent, PaymentId, Proof};

use crate::{
    BlockRecord, CommitBatch, Committed, DeadLetter, Fence, PaymentFilter, StoreError, UndoRecord,
};

/// What ingest writes and reads back: blocks with their escrow transactions
/// and undo images, commits (which assign `seq`), dead letters, commit groups.
#[async_trait]
pub trait ChainLog: Send + Sync + 'static {
    /// Has this block (by `index_block_hash`) been committed?
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError>;
    /// Commit everything in `batch` in one transaction, assigning consecutive
    /// `seq`s to its events (and each payment's `updated_seq`).
    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError>;
    /// Store a payload or event we could not process. Returns its id.
    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError>;
    /// The highest committed block (our current tip), if any.
    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError>;
    /// One block, canonical or not.
    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError>;
    /// The escrow transactions stored with a block (to re-apply it after a reorg).
    async fn block_txs(&self, index_block_hash: &str) -> Result<Vec<EscrowTx>, StoreError>;
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

    /// [`Self::get_block`] for many blocks in one round trip (a deep
    /// reorg reads a hundred); blocks not stored are left out.
    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError>;
    /// [`Self::block_txs`] for many blocks at once, by block hash.
    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<EscrowTx>>, StoreError>;
    /// [`Self::undo`] for many blocks at once, by block hash.
    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError>;

    /// Those of `hashes` that some stored block names as its parent: the
    /// blocks [`Self::children`] would find anything for, in one round
    /// trip (a commit group asks once for all of its blocks). The default
    /// asks [`Self::children`] once per hash.
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

    /// Payment ids of known escrow transactions, as `(txid, payment_id)`.
    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError>;
}

/// What the API, the state-store rebuild and event catch-up read.
#[async_trait]
pub trait Queries: Send + Sync + 'static {
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
    /// Newest dead letters first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Proofs of settlement: written by the verifier, read by the API.
#[async_trait]
pub trait Proofs: Send + Sync + 'static {
    /// Store (replace) proofs of settlement, in one transaction. With a
    /// `fence`, refused (`Rejected`) unless its token is current (see [`Fence`]).
    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError>;
    /// The stored proof of one payment.
    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError>;
}

/// The whole durable record: blocks, escrow transactions, event log, dead
/// letters, proofs. PostgreSQL in production, SQLite in the embedded default.
/// Each backend says so in one line; the roles carry the methods.
pub trait History: ChainLog + Queries + Proofs {}

/// See [`ChainLog::group`].
#[async_trait]
pub trait HistoryGroup: History {
    /// Commit the group's transaction. Using the handle afterwards is an error.
    async fn finish(&self) -> Result<(), StoreError>;
}
