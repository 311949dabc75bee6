use serde::{Deserialize, Serialize};

use super::{ChainPos, Payment, PaymentId, PaymentStatus, Tip};

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

/// A proof as `GET /api/payments/{id}/proof` shows it: the verifier's last
/// check, brought up to date with the payment's record and the node's tip
/// ([`Proof::current`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProofView {
    /// `status`, the position fields, `confirmations` and `final` describe
    /// the payment now; `verified_*` the chain state the escrow was last read at.
    #[serde(flatten)]
    pub proof: Proof,
    /// The status the escrow held at `verified_tip`: equal to `status` once
    /// the verifier has checked the latest transition (within a cycle).
    pub verified_status: PaymentStatus,
}

impl Proof {
    /// The proof of `status` as the verifier checked it at `tip`, where that
    /// status's own transition was mined at `pos` (if known), with its depth
    /// and finality (at least `depth` blocks, the transition's own included).
    pub fn verified(
        payment_id: PaymentId,
        status: PaymentStatus,
        pos: Option<&ChainPos>,
        tip: &Tip,
        depth: u64,
        verified_at: &str,
    ) -> Proof {
        let mut proof = Proof {
            payment_id,
            status,
            txid: None,
            tx_index: None,
            block_height: None,
            index_block_hash: None,
            block_hash: None,
            burn_block_height: None,
            burn_block_hash: None,
            confirmations: 0,
            is_final: false,
            verified_tip_height: tip.height,
            verified_tip: tip.index_block_hash.clone(),
            verified_at: verified_at.to_string(),
        };
        proof.place(pos, tip.height, depth, false);
        proof
    }

    /// The stored proof as of now. A proof is written when the verifier
    /// checks a payment, and the payment may have moved since (claimed,
    /// refunded, buried deeper, final), so the parts the record knows come
    /// from the record: status, the latest transition's position, its depth
    /// below `tip_height` and finality. `None` when the record is in no state
    /// the escrow holds (a reorg took it back to `pending`): nothing to prove.
    pub fn current(self, record: &Payment, tip_height: u64, depth: u64) -> Option<ProofView> {
        if !matches!(
            record.status,
            PaymentStatus::Confirmed | PaymentStatus::Claimed | PaymentStatus::Refunded
        ) {
            return None;
        }
        let verified_status = self.status;
        let same_transition = self.status == record.status
            && record.status_pos().map(|p| &p.txid) == self.txid.as_ref();
        let mut proof = self;
        proof.status = record.status;
        if record.status_pos().is_some() || !same_transition {
            // A transition settled as the contract says, mined where we do
            // not know, gets no position: the last check's (the create's)
            // would mislead.
            // A node tip behind the verifier's never lowers the depth.
            let verified_depth = if same_transition {
                proof.confirmations
            } else {
                0
            };
            proof.place(record.status_pos(), tip_height, depth, record.is_final);
            if proof.block_height.is_some() && verified_depth > proof.confirmations {
                proof.confirmations = verified_depth;
                proof.is_final |= verified_depth >= depth;
            }
        }
        Some(ProofView {
            proof,
            verified_status,
        })
    }

    /// Set the position fields, the depth below `tip_height` and finality
    /// from `pos`, or clear them when it is unknown.
    fn place(&mut self, pos: Option<&ChainPos>, tip_height: u64, depth: u64, is_final: bool) {
        self.txid = pos.map(|p| p.txid.clone());
        self.tx_index = pos.map(|p| p.tx_index);
        self.block_height = pos.map(|p| p.block_height);
        self.index_block_hash = pos.map(|p| p.index_block_hash.clone());
        self.block_hash = pos.map(|p| p.block_hash.clone());
        self.burn_block_height = pos.map(|p| p.burn_block_height);
        self.burn_block_hash = pos.map(|p| p.burn_block_hash.clone());
        self.confirmations = pos
            .map(|p| tip_height.saturating_sub(p.block_height) + 1)
            .unwrap_or(0);
        self.is_final = is_final || (pos.is_some() && self.confirmations >= depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(txid: &str, height: u64) -> ChainPos {
        ChainPos {
            txid: txid.into(),
            tx_index: 0,
            block_height: height,
            index_block_hash: format!("0x{height:064x}"),
            block_hash: format!("0x{height:064x}"),
            burn_block_height: 100 + height,
            burn_block_hash: format!("0x{:064x}", 100 + height),
        }
    }

    fn record(status: PaymentStatus, created: u64, settled: Option<(&str, u64)>) -> Payment {
        let mut p = Payment::new(PaymentId([7; 32]), status, "2026-01-01T00:00:00Z");
        p.created_in = Some(pos("0xc0", created));
        p.settled_in = settled.map(|(t, h)| pos(t, h));
        p
    }

    /// What the verifier wrote when it checked `p` at `tip`.
    fn checked(p: &Payment, tip: u64) -> Proof {
        let tip = Tip {
            height: tip,
            index_block_hash: format!("0x{tip:064x}"),
            burn_height: 100 + tip,
        };
        Proof::verified(
            p.payment_id,
            p.status,
            p.status_pos(),
            &tip,
            6,
            "2026-01-01T00:00:00Z",
        )
    }

    #[test]
    fn a_final_claim_is_shown_final_at_the_current_tip() {
        // Claimed at 67 and checked there; the node is now at 93.
        let mut claimed = record(PaymentStatus::Claimed, 60, Some(("0xc1", 67)));
        let stored = checked(&claimed, 67);
        claimed.is_final = true;
        let v = stored.current(&claimed, 93, 6).unwrap();
        assert_eq!(v.proof.confirmations, 93 - 67 + 1);
        assert!(v.proof.is_final);
        assert_eq!(v.proof.verified_tip_height, 67, "when the escrow was read");
        assert_eq!(v.verified_status, PaymentStatus::Claimed);
    }

    #[test]
    fn a_refund_after_the_last_check_shows_the_refund_not_the_create() {
        let confirmed = record(PaymentStatus::Confirmed, 50, None);
        let stored = checked(&confirmed, 150);
        let mut refunded = record(PaymentStatus::Refunded, 50, Some(("0xef", 157)));
        refunded.is_final = true;
        let v = stored.current(&refunded, 170, 6).unwrap();
        assert_eq!(v.proof.status, PaymentStatus::Refunded);
        assert_eq!(v.proof.txid.as_deref(), Some("0xef"), "the refund's txid");
        assert_eq!(v.proof.block_height, Some(157));
        assert_eq!(v.proof.confirmations, 170 - 157 + 1);
        assert!(v.proof.is_final);
        assert_eq!(
            v.verified_status,
            PaymentStatus::Confirmed,
            "the escrow has not been read since the refund"
        );
    }

    #[test]
    fn a_claim_learned_from_the_contract_has_no_position_not_the_creates() {
        let confirmed = record(PaymentStatus::Confirmed, 50, None);
        let stored = checked(&confirmed, 55);
        let mut claimed = confirmed.clone();
        claimed.status = PaymentStatus::Claimed;
        let v = stored.current(&claimed, 60, 6).unwrap();
        assert_eq!(v.proof.status, PaymentStatus::Claimed);
        assert_eq!(v.proof.txid, None, "not the create's txid");
        assert_eq!(v.proof.block_height, None);
        assert_eq!(v.verified_status, PaymentStatus::Confirmed);
        assert_eq!(claimed.status_pos(), None);
    }

    #[test]
    fn a_reverted_payment_has_no_proof() {
        let confirmed = record(PaymentStatus::Confirmed, 50, None);
        let stored = checked(&confirmed, 55);
        let mut back = confirmed.clone();
        back.status = PaymentStatus::Pending;
        back.created_in = None;
        assert_eq!(stored.current(&back, 56, 6), None);
    }

    #[test]
    fn a_node_tip_behind_the_verifier_never_lowers_the_depth() {
        let confirmed = record(PaymentStatus::Confirmed, 50, None);
        let stored = checked(&confirmed, 60);
        let v = stored.current(&confirmed, 55, 6).unwrap();
        assert_eq!(v.proof.confirmations, 11);
        assert!(v.proof.is_final);
    }
}
