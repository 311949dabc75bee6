//! The checks that need chain state, given that state: can the payer pay,
//! and is the transaction's nonce still unused. The node reads the account
//! (`GET /v2/accounts`) and, for a token, its `get-balance`, then calls
//! [`check`]. Pure.

use super::reason::{Reason, Refusal};
use super::rules::Verified;

/// The payer's state at the node's tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    /// Spendable uSTX (the account's unlocked balance).
    pub stx: u128,
    /// The account's next nonce.
    pub nonce: u64,
    /// The token's `get-balance` of the payer, for a token payment.
    pub token: Option<u128>,
}

/// `Ok` when the payer can pay the amount and (unless sponsored) the fee,
/// and the nonce is not already used.
pub fn check(v: &Verified, f: &Funds) -> Result<(), Refusal> {
    if v.nonce < f.nonce {
        return Err(Refusal::new(
            Reason::InvalidTransactionState,
            format!(
                "nonce {} is already used ({}'s next nonce is {}): this transaction can never \
                 be mined; sign a new one",
                v.nonce, v.payer, f.nonce
            ),
        ));
    }
    let fee = if v.sponsored { 0 } else { u128::from(v.fee) };
    let (stx_needed, what) = match v.paid.token() {
        Some(_) => (fee, "the fee"),
        None => (v.amount.saturating_add(fee), "the amount and the fee"),
    };
    if f.stx < stx_needed {
        return Err(Refusal::new(
            Reason::InsufficientFunds,
            format!(
                "{} has {} uSTX to spend; {what} need {stx_needed}",
                v.payer, f.stx
            ),
        ));
    }
    if let Some(t) = v.paid.token() {
        let have = f.token.unwrap_or(0);
        if have < v.amount {
            return Err(Refusal::new(
                Reason::InsufficientFunds,
                format!(
                    "{} holds {have} of {}; the payment needs {}",
                    v.payer,
                    t.asset_id(),
                    v.amount
                ),
            ));
        }
    }
    Ok(())
}
