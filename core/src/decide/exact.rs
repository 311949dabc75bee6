//! The reconcile decision for an x402 `exact` payment. A direct transfer
//! leaves nothing in the escrow to read, so the chain's word on it is the
//! payer's account nonce at the tip (`GET /v2/accounts/{payer}?tip=`), which
//! every stacks-node serves (`/v3/transaction/{txid}` needs the optional
//! transaction index). The transaction with nonce `n` is in the chain's
//! history at a tip exactly when the account's next nonce there is past `n`.
//! Which transaction spent it the indexer already knows: it confirmed ours
//! from a block it committed (the record's `created_in`).
//!
//! | stored | nonce at the tip | decision |
//! |---|---|---|
//! | confirmed | spent | agree (the proof is written) |
//! | confirmed | unspent, tip at or above the block, said `absent_checks` times | `pending`, `payment:reverted`: the block left the canonical chain |
//! | pending, submitted | spent for `drop_after` | `dropped`: another transaction took the nonce, so ours can never be mined |
//! | anything else | | wait |

use std::time::Duration;

use super::{Decision, Rules, Wait};
use crate::domain::{EventType, Payment, PaymentStatus, Tip};

/// Everything one `exact` decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct ExactCheck<'a> {
    pub stored: &'a Payment,
    /// The nonce the payment's transaction spends (the record's `nonce`).
    pub nonce: u64,
    /// The payer's next nonce at `tip`.
    pub account_nonce: u64,
    pub tip: &'a Tip,
    /// Time since the stored record last changed.
    pub age: Duration,
    /// Consecutive checks, this one included, that found the nonce unspent.
    pub unspent_streak: u32,
}

impl ExactCheck<'_> {
    /// Some transaction with this nonce is in the chain at the tip.
    pub fn spent(&self) -> bool {
        self.account_nonce > self.nonce
    }
}

/// Decide one `exact` payment.
pub fn decide_exact(c: &ExactCheck<'_>, rules: &Rules) -> Decision {
    use PaymentStatus as S;
    let spent = c.spent();
    let block = c.stored.latest_pos().map(|p| p.block_height);
    // A provider below the block we confirmed it in has not seen it yet.
    let behind = block.is_some_and(|h| c.tip.height < h);
    match c.stored.status {
        S::Confirmed if spent => Decision::Agree,
        S::Confirmed if behind => Decision::Wait(Wait::RpcBehind),
        S::Confirmed if c.unspent_streak < rules.absent_checks => {
            Decision::Wait(Wait::NotYetOnChain)
        }
        S::Confirmed => Decision::Correct {
            to: S::Pending,
            event: EventType::Reverted,
            reason: format!(
                "the payer's nonce {} is unspent at height {}: the transfer's block {} is not on the canonical chain",
                c.nonce,
                c.tip.height,
                block.map_or_else(|| "?".to_string(), |h| h.to_string()),
            ),
        },
        S::Pending | S::Submitted if spent && c.age >= rules.drop_after => Decision::Correct {
            to: S::Dropped,
            event: EventType::Dropped,
            reason: format!(
                "the payer's nonce {} was spent by the chain at height {} without this transaction in any block this node committed: it can no longer be mined",
                c.nonce, c.tip.height
            ),
        },
        S::Pending | S::Submitted => Decision::Wait(Wait::NotYetOnChain),
        // A failed transfer spent its nonce too; the rest are escrow statuses.
        S::Failed | S::Dropped | S::Claimed | S::Refunded => Decision::Agree,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChainPos, PaymentId, Scheme};

    fn tip(height: u64) -> Tip {
        Tip {
            height,
            index_block_hash: format!("0x{height:064x}"),
            burn_height: 100 + height,
        }
    }

    fn stored(status: PaymentStatus) -> Payment {
        let mut p = Payment::new(PaymentId([7; 32]), status, "2026-01-01T00:00:00.000Z");
        p.scheme = Some(Scheme::Exact);
        p.nonce = Some(3);
        if status == PaymentStatus::Confirmed {
            p.created_in = Some(ChainPos {
                txid: format!("0x{:064x}", 1),
                tx_index: 0,
                block_height: 10,
                index_block_hash: format!("0x{:064x}", 0xa10),
                block_hash: format!("0x{:064x}", 0xb10),
                burn_block_height: 110,
                burn_block_hash: format!("0x{:064x}", 0xc10),
            });
        }
        p
    }

    fn decide(
        status: PaymentStatus,
        account_nonce: u64,
        height: u64,
        streak: u32,
        age: u64,
    ) -> Decision {
        let p = stored(status);
        let t = tip(height);
        decide_exact(
            &ExactCheck {
                stored: &p,
                nonce: 3,
                account_nonce,
                tip: &t,
                age: Duration::from_secs(age),
                unspent_streak: streak,
            },
            &Rules::default(),
        )
    }

    fn corrected_to(d: &Decision) -> Option<(PaymentStatus, EventType)> {
        match d {
            Decision::Correct { to, event, .. } => Some((*to, *event)),
            _ => None,
        }
    }

    #[test]
    fn a_confirmed_transfer_agrees_while_its_nonce_is_spent() {
        assert_eq!(
            decide(PaymentStatus::Confirmed, 4, 10, 0, 0),
            Decision::Agree
        );
        assert_eq!(
            decide(PaymentStatus::Confirmed, 9, 50, 0, 0),
            Decision::Agree
        );
    }

    #[test]
    fn a_confirmed_transfer_whose_nonce_is_unspent_reverts_after_enough_answers() {
        // Said once: not yet believed.
        assert_eq!(
            decide(PaymentStatus::Confirmed, 3, 12, 1, 0),
            Decision::Wait(Wait::NotYetOnChain)
        );
        let d = decide(PaymentStatus::Confirmed, 3, 12, 2, 0);
        assert_eq!(
            corrected_to(&d),
            Some((PaymentStatus::Pending, EventType::Reverted))
        );
        let Decision::Correct { reason, .. } = d else {
            unreachable!()
        };
        assert!(
            reason.contains("nonce 3 is unspent at height 12"),
            "{reason}"
        );
        assert!(reason.contains("block 10"), "{reason}");
    }

    #[test]
    fn a_provider_below_the_block_proves_nothing() {
        // Height 9 < block 10: the provider has not seen the block yet.
        assert_eq!(
            decide(PaymentStatus::Confirmed, 3, 9, 5, 0),
            Decision::Wait(Wait::RpcBehind)
        );
        // At the block's own height the nonce must be spent.
        assert!(corrected_to(&decide(PaymentStatus::Confirmed, 3, 10, 2, 0)).is_some());
    }

    #[test]
    fn an_unmined_transfer_is_dropped_only_once_its_nonce_went_elsewhere_long_enough() {
        let drop_after = Rules::default().drop_after.as_secs();
        for status in [PaymentStatus::Pending, PaymentStatus::Submitted] {
            // Unspent: it can still be mined, however long it waits.
            assert_eq!(
                decide(status, 3, 20, 9, drop_after * 10),
                Decision::Wait(Wait::NotYetOnChain)
            );
            // Spent, but the block with ours may still be on its way.
            assert_eq!(
                decide(status, 4, 20, 0, drop_after - 1),
                Decision::Wait(Wait::NotYetOnChain)
            );
            let d = decide(status, 4, 20, 0, drop_after);
            assert_eq!(
                corrected_to(&d),
                Some((PaymentStatus::Dropped, EventType::Dropped))
            );
        }
    }

    #[test]
    fn settled_statuses_are_left_alone() {
        for status in [PaymentStatus::Failed, PaymentStatus::Dropped] {
            for nonce in [3, 4] {
                assert_eq!(decide(status, nonce, 20, 5, 10_000), Decision::Agree);
            }
        }
    }
}
