use serde::{Deserialize, Serialize};

use super::{ChainPos, PaymentId, PaymentStatus};

/// Proof of settlement: where a payment's latest on-chain transition was
/// mined, and the chain state at which the verifier last saw the escrow
/// agree (`GET /api/payments/{id}/proof`). Written by the verifier on each
/// check until the transition is final.
///
/// The position fields are absent when the transition was learned from the
/// contract's state rather than from a block (a claim the indexer missed):
/// `get-payment` says what the status is, not where it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proof {
    pub payment_id: PaymentId,
    /// The status the escrow confirmed at `verified_tip`.
    pub status: PaymentStatus,
    pub txid: Option<String>,
    pub tx_index: Option<u32>,
    pub block_height: Option<u64>,
    pub index_block_hash: Option<String>,
    pub block_hash: Option<String>,
    pub burn_block_height: Option<u64>,
    pub burn_block_hash: Option<String>,
    /// Depth of the transition's block below `verified_tip_height` (its own block included).
    pub confirmations: u64,
    /// The transition is at least `confirmation_depth` deep: no more re-checks.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The chain state the escrow was read at (`?tip=`).
    pub verified_tip_height: u64,
    pub verified_tip: String,
    /// RFC 3339 time of that check.
    pub verified_at: String,
}

impl Proof {
    /// The position fields from a stored transition.
    pub fn with_position(mut self, pos: Option<&ChainPos>) -> Self {
        if let Some(p) = pos {
            self.txid = Some(p.txid.clone());
            self.tx_index = Some(p.tx_index);
            self.block_height = Some(p.block_height);
            self.index_block_hash = Some(p.index_block_hash.clone());
            self.block_hash = Some(p.block_hash.clone());
            self.burn_block_height = Some(p.burn_block_height);
            self.burn_block_hash = Some(p.burn_block_hash.clone());
        }
        self
    }
}
