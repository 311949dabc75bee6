//! x402-Nexus verifier: reconciles stored payment state against the chain
//! through the stacks-node RPC (the chain wins) and proves settlement.
//!
//! * the RPC client is `nexus-stacks` (the node's one client, behind its
//!   `StacksRpc` trait); the decisions are pure and live in `nexus-core`
//!   (`escrow`: the `get-payment` record decoded; `decide`: (stored,
//!   on-chain, tip) → action).
//! * [`reconcile`]: the loop: one tip per cycle, bounded concurrency, a
//!   per-cycle RPC budget, corrections and proofs.
//! * [`lease`]: one reconciler across nodes (Redis lease + fencing tokens).

pub mod lease;
pub mod reconcile;
