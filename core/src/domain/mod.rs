//! Domain types shared by the indexer, the verifier and the node binary:
//! the payment record, its status, and the one payment-event record that
//! travels on every path (event log, WebSocket, webhooks, API).

mod event;
mod payment;
mod proof;
mod tip;

pub use event::{EventSource, EventType, PaymentEvent, RetryInfo, Reverted};
pub use payment::{
    is_asset_name, token_contract_of, ChainPos, Payment, PaymentId, PaymentIdError, PaymentStatus,
    Scheme,
};
pub use proof::{Proof, ProofView};
pub use tip::Tip;
