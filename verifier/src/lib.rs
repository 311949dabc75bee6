//! x402-Nexus verifier: reconciles stored payment state against the chain
//! through the stacks-node RPC (the chain wins) and proves settlement.
//!
//! * [`rpc`]: typed Stacks RPC client behind [`rpc::StacksRpc`], several
//!   providers with circuit breakers and failover (shared with the relay).
//! * [`chain`]: the escrow's `get-payment` record, decoded (pure).
//! * [`decide`]: (stored, on-chain, tip) → action (pure, whole table tested).
//! * [`reconcile`]: the loop: one tip per cycle, bounded concurrency, a
//!   per-cycle RPC budget, corrections and proofs.
//! * [`lease`]: one reconciler across nodes (Redis lease + fencing tokens).

pub mod chain;
pub mod decide;
pub mod lease;
pub mod reconcile;
pub mod rpc;
#[cfg(feature = "test-server")]
pub mod scripted;

pub use nexus_indexer::domain;

/// An error and its sources on one line, for logs and `/health`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
