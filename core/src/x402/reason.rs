//! Why a payment is refused, as x402 names it: the codes of `x402-stacks`'
//! `X402_ERROR_CODES`, which its middleware hands back to the client in the
//! 402 body (`error`). Each refusal also carries a sentence for people.

use serde::Serialize;

/// An x402 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `x402Version` is not 2.
    InvalidX402Version,
    /// The requirements' or the transaction's network is not this node's.
    InvalidNetwork,
    /// The scheme is neither `exact` nor `escrow`.
    UnsupportedScheme,
    /// The payload is not a signed transaction that pays these requirements.
    InvalidPayload,
    /// The requirements themselves are malformed, expired, or name a token
    /// this facilitator does not accept.
    InvalidPaymentRequirements,
    /// The transaction pays someone other than `payTo`.
    RecipientMismatch,
    /// The transaction pays less than `amount`.
    AmountInsufficient,
    /// A token transfer's `sender` argument is not the signer.
    SenderMismatch,
    /// The payer cannot cover the amount and the fee.
    InsufficientFunds,
    /// The transaction can no longer settle this payment: its nonce is used,
    /// or it (or another with its sender and nonce) already settles another.
    InvalidTransactionState,
    /// Broadcast, but not yet in a block when settle had to answer.
    TransactionPending,
    /// Mined and aborted, or dropped from the mempool.
    TransactionFailed,
    /// Every node refused the transaction.
    BroadcastFailed,
    /// This node could not check the payment (its RPC is down): try again.
    UnexpectedVerifyError,
    /// This node could not settle the payment (its stores are down): try again.
    UnexpectedSettleError,
}

impl Reason {
    /// The wire code, e.g. `recipient_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidX402Version => "invalid_x402_version",
            Reason::InvalidNetwork => "invalid_network",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::InvalidPayload => "invalid_payload",
            Reason::InvalidPaymentRequirements => "invalid_payment_requirements",
            Reason::RecipientMismatch => "recipient_mismatch",
            Reason::AmountInsufficient => "amount_insufficient",
            Reason::SenderMismatch => "sender_mismatch",
            Reason::InsufficientFunds => "insufficient_funds",
            Reason::InvalidTransactionState => "invalid_transaction_state",
            Reason::TransactionPending => "transaction_pending",
            Reason::TransactionFailed => "transaction_failed",
            Reason::BroadcastFailed => "broadcast_failed",
            Reason::UnexpectedVerifyError => "unexpected_verify_error",
            Reason::UnexpectedSettleError => "unexpected_settle_error",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused payment: the code, and what is wrong in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    /// The signer, once the transaction decoded (answers name the payer).
    pub payer: Option<String>,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
            payer: None,
        }
    }
}
