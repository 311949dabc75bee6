//! x402-Nexus verifier: reconciles stored payment state against the chain
//! through the node RPC (the chain wins) and proves settlement.
//!
//! Not built yet: the reconciliation loop, the RPC client and proofs arrive
//! with the verifier issue. This crate exists so the workspace has its final
//! shape and the node can depend on it from the start.

pub use nexus_indexer::domain;
