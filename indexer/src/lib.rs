//! x402-Nexus indexer: follows the Stacks chain for one escrow contract.
//!
//! observer payload ([`observer`]) → pure decode ([`decode`]) → pure payment
//! state machine ([`machine`]) → one commit per delivery ([`store`]) →
//! published payment events ([`ingest`]).

pub mod chain;
pub mod decode;
pub mod domain;
pub mod ingest;
pub mod machine;
pub mod observer;
pub mod rpc;
pub mod simnet;
pub mod store;
