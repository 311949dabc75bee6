//! x402-Nexus indexer: follows the Stacks chain for one escrow contract.
//!
//! observer payload → pure decode → pure payment state machine (all three in
//! `nexus-core`) → one commit per delivery (`nexus-store`) → published payment
//! events ([`ingest`]); [`rpc`]: missing blocks read from a stacks-node.

pub mod ingest;
pub mod rpc;
