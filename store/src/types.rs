use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use nexus_core::decode::{BlockRef, EscrowTx};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId, PaymentStatus};

/// A block as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub block: BlockRef,
    /// On the chain we currently follow.
    pub canonical: bool,
}

/// An escrow transaction seen in the mempool (for drops and re-submission).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolRecord {
    pub txid: String,
    pub payment_id: nexus_core::domain::PaymentId,
    pub function: String,
}

/// Everything one delivery changes, committed together.
#[derive(Debug, Clone, Default)]
pub struct CommitBatch {
    /// The block this delivery brings, if it is a `/new_block`.
    pub block: Option<BlockRecord>,
    /// Its escrow transactions (kept to re-apply or roll back later).
    pub block_txs: Vec<EscrowTx>,
    pub mempool: Vec<MempoolRecord>,
    /// `(burn_height, burn_hash)` from `/new_burn_block`.
    pub burn_block: Option<(u64, String)>,
    /// New records of every payment that changed.
    pub payments: Vec<Payment>,
    /// Events without `seq`; the store numbers them in order.
    pub events: Vec<PaymentEvent>,
    /// Blocks whose canonical flag changes (a reorg), applied before `block` is written.
    pub canonical: Vec<(String, bool)>,
    /// Before-images of the payments changed by each block applied in this batch.
    pub undo: Vec<UndoRecord>,
    /// Blocks rolled back in this batch: their undo records are deleted.
    pub undo_clear: Vec<String>,
    /// Written by a lease holder (the verifier): the commit is refused unless
    /// its token is at least the highest one the store has seen for the name.
    pub fence: Option<Fence>,
    /// Rows of other components' tables, inserted (if absent) in the same
    /// transaction: see [`super::attached`].
    pub attached: Vec<super::AttachedRows>,
    /// The caller's view of the log's last `seq` (it holds the ingest lock,
    /// so normally no one else writes). A store may number the events from
    /// it and commit in one statement, without a locking read of `meta`
    /// first; if the log has moved (another writer), that statement writes
    /// nothing and the store commits the batch the usual way. A hint: the
    /// result is the same with or without it.
    pub expect_last_seq: Option<u64>,
}

/// A fencing token: a stale leader's writes are refused by the store itself
/// (the highest token seen per `name` is kept next to the data it guards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub name: String,
    pub token: u64,
}

/// A payment as it was before a block changed it: what a rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    pub index_block_hash: String,
    pub payment_id: nexus_core::domain::PaymentId,
    /// `None`: the block introduced the payment.
    pub before: Option<Payment>,
}

impl CommitBatch {
    /// Nothing to write at all.
    pub fn is_empty(&self) -> bool {
        self.block.is_none()
            && self.block_txs.is_empty()
            && self.mempool.is_empty()
            && self.burn_block.is_none()
            && self.payments.is_empty()
            && self.events.is_empty()
            && self.canonical.is_empty()
            && self.undo.is_empty()
            && self.undo_clear.is_empty()
            && self.attached.iter().all(|a| a.is_empty())
    }

    /// Number the events from `last_seq + 1` and stamp each payment with the
    /// seq of its last event. Shared by every history implementation.
    pub fn assign_seqs(&mut self, last_seq: u64) -> u64 {
        // The first record of each id, as a linear search would find it: one
        // pass instead of events x payments comparisons (a 1,000-payment block
        // with finality events was millions of 32-byte compares per commit).
        let mut first: HashMap<PaymentId, usize> = HashMap::with_capacity(self.payments.len());
        for (i, p) in self.payments.iter().enumerate() {
            first.entry(p.payment_id).or_insert(i);
        }
        let mut seq = last_seq;
        for ev in &mut self.events {
            seq += 1;
            ev.seq = seq;
            if let Some(&i) = first.get(&ev.payment_id) {
                self.payments[i].updated_seq = seq;
            }
        }
        seq
    }
}

/// What a commit produced.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub events: Vec<PaymentEvent>,
    pub payments: Vec<Payment>,
    pub last_seq: u64,
}

/// A payload or event we could not process, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Assigned by the store.
    pub id: i64,
    /// Observer path (`/new_block`) or `import:LINE`.
    pub source: String,
    pub reason: String,
    /// The body as received (lossy UTF-8, NULs removed: PostgreSQL TEXT rejects them).
    pub payload: String,
    pub at: String,
}

/// Query for `GET /api/payments`.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub status: Option<PaymentStatus>,
    /// `STX`, or a token as `ADDR.contract` or `ADDR.contract::name` (both
    /// match that token's payments).
    pub asset: Option<String>,
    /// Keyset cursor: payment ids strictly greater than this.
    pub after: Option<String>,
    pub limit: u32,
}

/// Remove NUL and other C0 controls except tab/newline: PostgreSQL TEXT rejects NUL.
pub fn sanitize_text(s: &str) -> String {
    let keep = |c: char| !c.is_control() || c == '\n' || c == '\t';
    // Nearly every string is clean: copy it whole rather than char by char.
    if s.chars().all(keep) {
        return s.to_string();
    }
    s.chars().filter(|c| keep(*c)).collect()
}
