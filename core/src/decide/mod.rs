//! The reconcile decision: (stored record, the escrow's record at a tip) →
//! what to do. Pure; the whole table is tested in `tests.rs`. x402 `exact`
//! transfers, which leave no escrow entry, are decided in [`exact`] from
//! the payer's account nonce instead.
//!
//! The chain wins, with two guards so an RPC can never make us forget a
//! payment it simply has not seen yet:
//! * a provider whose tip is below the block we stored the payment's latest
//!   transition in is behind us: nothing is concluded from it ([`Wait::RpcBehind`]);
//! * "the chain does not know this payment" only counts once it was said
//!   `absent_checks` times in a row (and only answers count: an RPC that
//!   is down answers nothing), and for a payment that never reached a block
//!   only after it has waited `drop_after`.

mod exact;

use std::time::Duration;

pub use exact::{decide_exact, ExactCheck};

use crate::domain::{EventSource, EventType, Payment, PaymentEvent, PaymentStatus, Reverted};

use crate::domain::Tip;
use crate::escrow::{ChainPayment, ChainStatus};

/// Thresholds of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// A `pending`/`submitted` payment the chain still does not know after
    /// this long is `dropped`.
    pub drop_after: Duration,
    /// Consecutive "no such payment" answers before we believe them.
    pub absent_checks: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            drop_after: Duration::from_secs(600),
            absent_checks: 2,
        }
    }
}

/// Everything one decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub stored: &'a Payment,
    /// `get-payment` at `tip`: `None` when the map has no entry.
    pub chain: Option<&'a ChainPayment>,
    pub tip: &'a Tip,
    /// Time since the stored record last changed (how long it has waited).
    pub age: Duration,
    /// Consecutive checks, this one included, that found no entry.
    pub absent_streak: u32,
}

/// Why nothing can be concluded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The provider's tip is below the block we stored the transition in.
    RpcBehind,
    /// No entry, but not (yet) for long enough, or not said often enough.
    NotYetOnChain,
}

/// What to do with one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The stored status is what the chain says.
    Agree,
    Wait(Wait),
    /// The chain disagrees: the payment becomes `to`, announced by `event`.
    Correct {
        to: PaymentStatus,
        event: EventType,
        reason: String,
    },
}

/// The escrow status that matches a stored status (`None`: no entry).
pub fn expected_chain_status(stored: PaymentStatus) -> Option<ChainStatus> {
    match stored {
        PaymentStatus::Confirmed => Some(ChainStatus::Pending),
        PaymentStatus::Claimed => Some(ChainStatus::Claimed),
        PaymentStatus::Refunded => Some(ChainStatus::Refunded),
        PaymentStatus::Pending
        | PaymentStatus::Submitted
        | PaymentStatus::Failed
        | PaymentStatus::Dropped => None,
    }
}

/// Decide one payment.
pub fn decide(c: &Check<'_>, rules: &Rules) -> Decision {
    use PaymentStatus as S;
    let stored = c.stored.status;
    let chain = c.chain.map(|p| p.status);
    // Pending and submitted payments "agree" with no entry only until they
    // have waited too long: they go on to the age rule below.
    if expected_chain_status(stored) == chain && !matches!(stored, S::Pending | S::Submitted) {
        return Decision::Agree;
    }
    // A provider behind the block we learned the transition from has not
    // seen it yet: its answer is old news, not a contradiction.
    let behind = c
        .stored
        .latest_pos()
        .is_some_and(|pos| c.tip.height < pos.block_height);
    let correct = |to: S, event: EventType, reason: String| Decision::Correct { to, event, reason };
    match chain {
        // The escrow moved: forward corrections need no guard.
        Some(ChainStatus::Claimed) => correct(
            S::Claimed,
            EventType::Claimed,
            format!("chain says claimed, stored {stored}"),
        ),
        Some(ChainStatus::Refunded) => correct(
            S::Refunded,
            EventType::Refunded,
            format!("chain says refunded, stored {stored}"),
        ),
        Some(ChainStatus::Pending) => match stored {
            // A settlement we stored is not on the chain: its block was orphaned.
            S::Claimed | S::Refunded if behind => Decision::Wait(Wait::RpcBehind),
            S::Claimed | S::Refunded => correct(
                S::Confirmed,
                EventType::Reverted,
                format!("chain says the payment is still locked, stored {stored}"),
            ),
            // A create we missed (or thought dropped or failed): funds are locked.
            _ => correct(
                S::Confirmed,
                EventType::Confirmed,
                format!("chain has the payment locked, stored {stored}"),
            ),
        },
        None => {
            if behind {
                return Decision::Wait(Wait::RpcBehind);
            }
            if c.absent_streak < rules.absent_checks {
                return Decision::Wait(Wait::NotYetOnChain);
            }
            match stored {
                // Our block was orphaned and the create is not in the new branch.
                S::Confirmed | S::Claimed | S::Refunded => correct(
                    S::Pending,
                    EventType::Reverted,
                    format!("chain has no such payment, stored {stored}"),
                ),
                S::Pending | S::Submitted if c.age >= rules.drop_after => correct(
                    S::Dropped,
                    EventType::Dropped,
                    format!("not on chain after {}s", c.age.as_secs()),
                ),
                S::Pending | S::Submitted => Decision::Wait(Wait::NotYetOnChain),
                // No entry is what failed and dropped payments have.
                S::Failed | S::Dropped => Decision::Agree,
            }
        }
    }
}

/// The new record and its event for a [`Decision::Correct`]. Pure: `now` is
/// the RFC 3339 time recorded on both.
pub fn correction(
    stored: &Payment,
    chain: Option<&ChainPayment>,
    to: PaymentStatus,
    event_type: EventType,
    reason: &str,
    now: &str,
) -> (Payment, PaymentEvent) {
    let mut p = stored.clone();
    let orphaned = stored.latest_pos().cloned();
    p.status = to;
    p.updated_at = now.to_string();
    p.is_final = false;
    if let Some(c) = chain {
        // The contract's own word on who, how much and until when.
        p.sender = Some(c.sender.clone());
        p.recipient = Some(c.recipient.clone());
        p.amount = Some(c.amount.to_string());
        p.memo = Some(format!("0x{}", hex::encode(&c.memo)));
        p.expires_at = Some(c.expires_at);
        // The token's contract; a record that already names the asset in
        // it (`ADDR.contract::name`, from the block) keeps that.
        p.asset = match (&c.token, p.asset.take()) {
            (None, _) => None,
            (Some(t), Some(a)) if crate::domain::token_contract_of(&a) == Some(t.as_str()) => {
                Some(a)
            }
            (Some(t), _) => Some(t.clone()),
        };
    }
    match to {
        PaymentStatus::Confirmed => {
            p.settled_in = None;
            p.reason = None;
            p.replaced_by = None;
        }
        PaymentStatus::Pending => {
            p.created_in = None;
            p.settled_in = None;
        }
        PaymentStatus::Dropped | PaymentStatus::Failed => p.reason = Some(reason.to_string()),
        _ => p.reason = None,
    }
    let reverted = (event_type == EventType::Reverted).then(|| Reverted {
        index_block_hash: orphaned
            .as_ref()
            .map(|o| o.index_block_hash.clone())
            .unwrap_or_default(),
        block_height: orphaned.as_ref().map(|o| o.block_height).unwrap_or(0),
        status: to,
    });
    let event = PaymentEvent {
        txid: match event_type {
            EventType::Dropped | EventType::Failed => p.create_txid.clone(),
            _ => None,
        },
        // Learned from contract state, not from a block: where it happened is
        // unknown, so no position.
        reason: matches!(event_type, EventType::Dropped | EventType::Failed)
            .then(|| reason.to_string()),
        reverted,
        ..PaymentEvent::about(&p, event_type, EventSource::Reconciler, now)
    };
    (p, event)
}

#[cfg(test)]
mod tests;
