//! What `/settle` answers for a payment as our records have it. Pure.
//!
//! | record | answer |
//! | --- | --- |
//! | `confirmed`, `claimed`, `refunded` (in a block we committed) | `success: true` |
//! | `failed` by the relay (every node refused it) | `broadcast_failed` |
//! | `failed` in a block (aborted), or `dropped` | `transaction_failed` |
//! | `pending`, `submitted` | `None`: wait, then `transaction_pending` |

use super::reason::{Reason, Refusal};
use super::wire::SettleResponse;
use crate::domain::{Payment, PaymentStatus};

/// The settled answer for `p`, or `None` while it is not in a block yet.
pub fn answer(p: &Payment, network: &str) -> Option<SettleResponse> {
    let txid = p.create_txid.clone().unwrap_or_default();
    let refused = |reason: Reason, message: String| {
        let mut r = SettleResponse::failed(
            &Refusal::new(reason, message),
            network,
            p.sender.clone(),
            Some(txid.clone()),
        );
        r.payment_id = Some(p.payment_id.to_string());
        Some(r)
    };
    match p.status {
        PaymentStatus::Confirmed | PaymentStatus::Claimed | PaymentStatus::Refunded => {
            Some(SettleResponse {
                success: true,
                error_reason: None,
                error_message: None,
                payer: p.sender.clone(),
                transaction: txid,
                network: network.to_string(),
                payment_id: Some(p.payment_id.to_string()),
            })
        }
        PaymentStatus::Failed if p.created_in.is_none() && !aborted(p) => refused(
            Reason::BroadcastFailed,
            format!(
                "every node refused the transaction: {}",
                p.reason.as_deref().unwrap_or("no reason given")
            ),
        ),
        PaymentStatus::Failed => refused(
            Reason::TransactionFailed,
            format!(
                "the transaction was mined and aborted ({}): no funds moved, the fee was spent",
                p.reason.as_deref().unwrap_or("no reason given")
            ),
        ),
        PaymentStatus::Dropped => refused(
            Reason::TransactionFailed,
            format!(
                "the node dropped the transaction from its mempool ({}){}",
                p.reason.as_deref().unwrap_or("no reason given"),
                p.replaced_by
                    .as_deref()
                    .map(|t| format!(", replaced by {t}"))
                    .unwrap_or_default()
            ),
        ),
        PaymentStatus::Pending | PaymentStatus::Submitted => None,
    }
}

/// A failure the chain reported (an abort in a block), not a refusal.
fn aborted(p: &Payment) -> bool {
    matches!(
        p.reason.as_deref(),
        Some("AbortByResponse" | "AbortByPostCondition")
    )
}

/// The answer when settle must reply before the transaction is in a block.
pub fn pending(p: &Payment, network: &str, waited_secs: u64) -> SettleResponse {
    let mut r = SettleResponse::failed(
        &Refusal::new(
            Reason::TransactionPending,
            format!(
                "broadcast, not in a block after {waited_secs}s; tracking goes on: settle the same \
                 payment again, or follow /api/payments/{}",
                p.payment_id
            ),
        ),
        network,
        p.sender.clone(),
        p.create_txid.clone(),
    );
    r.payment_id = Some(p.payment_id.to_string());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChainPos, PaymentId};

    fn payment(status: PaymentStatus, reason: Option<&str>) -> Payment {
        let mut p = Payment::new(PaymentId([7; 32]), status, "2026-01-01T00:00:00Z");
        p.sender = Some("ST1SJ3DTE5DN7X54YDH5D64R3BCB6A2AG2ZQ8YPD5".into());
        p.create_txid = Some(format!("0x{}", "ab".repeat(32)));
        p.reason = reason.map(str::to_string);
        p
    }

    #[test]
    fn each_status_has_its_answer() {
        let net = "stacks:2147483648";
        let ok = answer(&payment(PaymentStatus::Confirmed, None), net).unwrap();
        assert!(ok.success);
        assert_eq!(ok.transaction, format!("0x{}", "ab".repeat(32)));
        assert_eq!(
            ok.payer.as_deref(),
            Some("ST1SJ3DTE5DN7X54YDH5D64R3BCB6A2AG2ZQ8YPD5")
        );
        assert_eq!(ok.network, net);
        for status in [PaymentStatus::Pending, PaymentStatus::Submitted] {
            assert_eq!(answer(&payment(status, None), net), None);
        }
        let reason = |p: Payment| answer(&p, net).unwrap().error_reason.unwrap();
        assert_eq!(
            reason(payment(PaymentStatus::Failed, Some("BadNonce"))),
            Reason::BroadcastFailed
        );
        assert_eq!(
            reason(payment(PaymentStatus::Failed, Some("AbortByResponse"))),
            Reason::TransactionFailed
        );
        let mut mined = payment(PaymentStatus::Failed, Some("weird"));
        mined.created_in = Some(ChainPos {
            txid: String::new(),
            tx_index: 0,
            block_height: 1,
            index_block_hash: String::new(),
            block_hash: String::new(),
            burn_block_height: 0,
            burn_block_hash: String::new(),
        });
        assert_eq!(reason(mined), Reason::TransactionFailed);
        assert_eq!(
            reason(payment(PaymentStatus::Dropped, Some("ReplaceByFee"))),
            Reason::TransactionFailed
        );
        let p = pending(&payment(PaymentStatus::Submitted, None), net, 45);
        assert!(!p.success);
        assert_eq!(p.error_reason, Some(Reason::TransactionPending));
        assert!(!p.transaction.is_empty());
    }
}
