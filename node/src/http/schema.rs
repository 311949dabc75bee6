//! The bodies the handlers answer with, as the OpenAPI document names them.
//! The handlers and the document both import these; nothing here imports a
//! handler.

use serde::Serialize;
use utoipa::ToSchema;

use nexus_core::domain::{Payment, PaymentEvent, ProofView};

/// A payment as the API shows it: the record plus derived fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    #[serde(flatten)]
    pub payment: Payment,
    /// `confirmed` and the chain has reached `expires_at`: refundable.
    pub expired: bool,
    /// Depth of the create-payment block below our tip.
    pub confirmations: u64,
}

impl PaymentView {
    /// The record with what it implies at the node's tip height `tip`.
    pub fn new(p: Payment, tip: u64) -> PaymentView {
        let confirmations = p
            .created_in
            .as_ref()
            .map(|c| tip.saturating_sub(c.block_height) + 1)
            .unwrap_or(0);
        PaymentView {
            expired: p.expired(tip),
            confirmations,
            payment: p,
        }
    }
}

/// Every error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `temporary`: the same request may succeed later; `permanent`: it will not.
    #[schema(example = "permanent")]
    pub r#type: String,
    /// Machine-readable, e.g. `validation_error`, `idempotency_conflict`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// The request field at fault.
    pub field: Option<String>,
    /// For 429 and temporary errors (also sent as `Retry-After`).
    pub retry_after_seconds: Option<u64>,
}

/// `GET /api/payments/{payment_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    pub payment: PaymentView,
    pub events: Vec<PaymentEvent>,
    /// The relay's broadcasts of this payment's transactions, each with `attempts_made`.
    pub broadcasts: Vec<serde_json::Value>,
}

/// `GET /api/payments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub payments: Vec<PaymentView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// `GET /api/payments/{payment_id}/proof`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProofResponse {
    pub proof: ProofView,
}

/// Links of an accepted payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub proof: String,
}

/// `POST /api/payments` → 202.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub payment_id: String,
    pub txid: String,
    /// `create-payment`, `claim-payment` or `refund-expired`.
    pub function: String,
    /// The payment's status (`pending` for a new create).
    pub status: String,
    /// `scheduled`: the broadcast engine has it.
    pub broadcast: String,
    pub request_id: Option<String>,
    pub payment: Payment,
    pub links: Links,
}
