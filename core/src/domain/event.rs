use serde::{Deserialize, Serialize};

use super::{Payment, PaymentId, PaymentStatus, Scheme};

/// The payment-event names shared by every delivery path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "payment:created")]
    Created,
    #[serde(rename = "payment:submitted")]
    Submitted,
    #[serde(rename = "payment:retrying")]
    Retrying,
    #[serde(rename = "payment:confirmed")]
    Confirmed,
    #[serde(rename = "payment:final")]
    Final,
    #[serde(rename = "payment:claimed")]
    Claimed,
    #[serde(rename = "payment:refunded")]
    Refunded,
    #[serde(rename = "payment:failed")]
    Failed,
    #[serde(rename = "payment:dropped")]
    Dropped,
    #[serde(rename = "payment:reverted")]
    Reverted,
}

impl EventType {
    /// Every type, for metrics labels and exhaustive tests.
    pub const ALL: [EventType; 10] = [
        Self::Created,
        Self::Submitted,
        Self::Retrying,
        Self::Confirmed,
        Self::Final,
        Self::Claimed,
        Self::Refunded,
        Self::Failed,
        Self::Dropped,
        Self::Reverted,
    ];

    /// The wire name, e.g. `payment:confirmed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "payment:created",
            Self::Submitted => "payment:submitted",
            Self::Retrying => "payment:retrying",
            Self::Confirmed => "payment:confirmed",
            Self::Final => "payment:final",
            Self::Claimed => "payment:claimed",
            Self::Refunded => "payment:refunded",
            Self::Failed => "payment:failed",
            Self::Dropped => "payment:dropped",
            Self::Reverted => "payment:reverted",
        }
    }

    /// Parse the wire name back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Which component produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Observer,
    Reconciler,
    Relay,
    Import,
    /// The x402 facilitator (`/x402/settle`).
    X402,
}

/// For `payment:reverted`: which block was orphaned and where the payment went back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reverted {
    pub index_block_hash: String,
    pub block_height: u64,
    pub status: PaymentStatus,
}

/// The one payment-event record (see ARCHITECTURE.md, "One payment event, everywhere").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentEvent {
    /// Per-store, gap-free, increasing; assigned by the history store at commit.
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub payment_id: PaymentId,
    /// The payment's status after this event.
    pub status: PaymentStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amount: Option<String>,
    /// `exact` for x402 transfers; absent on escrow payments.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheme: Option<Scheme>,
    /// `STX` or the SIP-010 token (`ADDR.contract::token`); absent on escrow payments.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub asset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub block_height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_block_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub burn_block_height: Option<u64>,
    /// Depth of the event's block below the tip when emitted (0 for mempool events).
    pub confirmations: u64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub source: EventSource,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reverted: Option<Reverted>,
    /// RFC 3339 time the node recorded the event.
    pub at: String,
    /// For a relay's `payment:failed`: the node's rejection details as it sent
    /// them (e.g. `{"expected": 4, "actual": 2}` for `BadNonce`); for a
    /// create aborted on chain: `{"result": "(err u104)", "vm_error": ...}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<Object>)]
    pub reason_data: Option<serde_json::Value>,
    /// For `payment:retrying`: which broadcast attempt failed and when the next one is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry: Option<RetryInfo>,
}

impl PaymentEvent {
    /// An event of `event_type` about `payment` as it stands after the
    /// event: its id, status and parties, from `source` at `at`. No chain
    /// position, no confirmations, not final, no reason: the caller sets
    /// what its event adds. (`seq` is assigned by the history at commit.)
    pub fn about(payment: &Payment, event_type: EventType, source: EventSource, at: &str) -> Self {
        PaymentEvent {
            seq: 0,
            event_type,
            payment_id: payment.payment_id,
            status: payment.status,
            sender: payment.sender.clone(),
            recipient: payment.recipient.clone(),
            amount: payment.amount.clone(),
            scheme: payment.scheme,
            asset: payment.asset.clone(),
            txid: None,
            block_height: None,
            index_block_hash: None,
            burn_block_height: None,
            confirmations: 0,
            is_final: false,
            source,
            reason: None,
            reverted: None,
            at: at.to_string(),
            reason_data: None,
            retry: None,
        }
    }
}

/// A relay broadcast that will be tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryInfo {
    /// The attempt that just failed (1-based).
    pub attempt: u32,
    /// Wait before the next attempt.
    pub next_delay_ms: u64,
}
