//! What a relay request can end in besides success. Each says whether a
//! retry can help, and maps onto the API's error body.

use std::time::Duration;

use nexus_core::validate::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The transaction is not one we relay; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The idempotency key was used with another body; the first request's
    /// answer (its JSON body), once it has one.
    #[error("Idempotency-Key {0:?} was already used with a different request body")]
    IdempotencyConflict(String, Option<String>),
    /// A request with the same key is still being handled.
    #[error("a request with Idempotency-Key {0:?} is still in progress")]
    InProgress(String),
    /// create-payment for a payment id another transaction already created.
    #[error("payment {payment_id} already exists (created by {existing_txid})")]
    PaymentExists {
        payment_id: String,
        existing_txid: String,
    },
    /// claim/refund of a payment we have never seen.
    #[error(
        "no payment {0}: it must be created (and indexed) before it can be claimed or refunded"
    )]
    UnknownPayment(String),
    /// claim/refund of a payment that is already settled.
    #[error("payment {payment_id} is {status}: nothing left to claim or refund")]
    Settled { payment_id: String, status: String },
    /// No RPC provider is configured: nothing could be broadcast.
    #[error("the relay needs a stacks-node RPC (set rpc_urls or rpc_url)")]
    NoProvider,
    /// A store (history, state, idempotency keys) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl RelayError {
    /// A retry (same key, same body) can succeed.
    pub fn is_temporary(&self) -> bool {
        // Every 503 is temporary: a provider can be configured (and the
        // node restarted), a store comes back, another node takes over.
        matches!(
            self,
            Self::InProgress(_) | Self::Unavailable(_) | Self::ShuttingDown | Self::NoProvider
        )
    }

    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::UnknownPayment(_) => 404,
            Self::IdempotencyConflict(..) | Self::PaymentExists { .. } | Self::Settled { .. } => {
                409
            }
            Self::InProgress(_) => 409,
            Self::NoProvider | Self::Unavailable(_) | Self::ShuttingDown => 503,
        }
    }

    /// Machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "validation_error",
            Self::IdempotencyConflict(..) => "idempotency_conflict",
            Self::InProgress(_) => "idempotency_in_progress",
            Self::PaymentExists { .. } => "payment_exists",
            Self::UnknownPayment(_) => "unknown_payment",
            Self::Settled { .. } => "payment_settled",
            Self::NoProvider => "relay_unavailable",
            Self::Unavailable(_) => "storage_error",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid(v) => Some(v.field),
            Self::IdempotencyConflict(..) | Self::InProgress(_) => Some("Idempotency-Key"),
            Self::PaymentExists { .. } | Self::UnknownPayment(_) | Self::Settled { .. } => {
                Some("payment_id")
            }
            _ => None,
        }
    }

    /// How long to wait before retrying, for temporary errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            // Only an operator can fix it: do not invite a tight loop.
            Self::NoProvider => Some(Duration::from_secs(60)),
            _ => self.is_temporary().then_some(Duration::from_secs(1)),
        }
    }
}
