//! The x402 facilitator: what a paid API calls (`POST {facilitator}/settle`)
//! once a client has signed a payment. The rules are pure, in
//! `nexus_core::x402`; this crate does their I/O:
//!
//! * [`funds`]: the payer's balance and nonce (and token balance) from the
//!   node's RPC, at one tip.
//! * [`Facilitator::verify`]: the rules plus the funds; nothing is stored.
//! * [`Facilitator::settle`]: verify, then record the payment and broadcast
//!   it through the relay's accept path (idempotent: keyed by the payer and
//!   nonce, so a re-signed transaction with the same nonce cannot become a
//!   second payment), then wait for the indexer to see it in a block.
//!
//! The indexer is the one writer of the confirmation: settle answers
//! `success` only once a block the observer delivered (and we committed)
//! holds the transaction. A reorg later brings `payment:reverted` on the
//! event streams, as for any payment.

pub mod funds;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use nexus_core::x402::{Policy, Verified};
use nexus_indexer::ingest::{BroadcastBus, Ingestor};
use nexus_relay::service::Acceptor;
use nexus_stacks::StacksRpc;

/// Tunables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What is settled: chain, escrow, tokens.
    pub policy: Policy,
    /// Longest `/settle` waits for the confirming block (x402-stacks'
    /// middleware gives up after 50 s).
    pub settle_wait: Duration,
}

/// The facilitator's parts. Cheap to share.
pub struct Facilitator {
    pub settings: Settings,
    /// The node's RPC (funds checks); `None`: payments cannot be checked.
    pub rpc: Option<Arc<dyn StacksRpc>>,
    /// The relay's accept path; `None` without an RPC provider.
    pub acceptor: Option<Arc<Acceptor>>,
    /// Payment records (the state store) are read through it.
    pub ingestor: Arc<Ingestor>,
    /// Committed payment events: settle wakes on its payment's.
    pub bus: BroadcastBus,
    /// The node is stopping: waiting settles answer `transaction_pending`
    /// at once, so they never hold up the shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Facilitator {
    /// The network's CAIP-2 name.
    pub fn network(&self) -> String {
        self.settings.policy.network()
    }

    /// `/verify`: the rules, then the payer's funds at the node's tip.
    pub async fn verify(
        &self,
        body: &serde_json::Value,
        now_ms: i64,
    ) -> Result<Verified, nexus_core::x402::Refusal> {
        let req = nexus_core::x402::parse_request(body)?;
        let v = nexus_core::x402::verify(&req, &self.settings.policy, now_ms)?;
        funds::check(self.rpc.as_deref(), &v).await?;
        Ok(v)
    }
}
