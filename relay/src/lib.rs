//! The relay: clients hand us transactions they signed themselves (we never
//! see a key); we check them, remember them idempotently, and broadcast them
//! to the stacks-node(s) with an adaptive retry engine until the node has
//! them. The indexer and the verifier take the payment from there.
//!
//! * `nexus_core::validate`: pure; is this a well-formed call to our escrow?
//! * [`classify`]: pure; what a broadcast outcome means (retry, fail, done).
//! * [`backoff`]: pure; when to try again.
//! * [`stats`]: per provider and reason success and latency (adaptive choice).
//! * [`ratelimit`]: a narrow trait over Redis / memory; the broadcast
//!   schedule and the idempotency keys are stores of `nexus-store`.
//! * [`idempotency`]: waiting out a concurrent duplicate request.
//! * [`service`]: the accept path (validate, idempotency, batched commit).
//! * [`engine`]: the broadcast loop over the persisted schedule.
//! * [`handoff`]: fresh broadcasts passed from the accept path to the
//!   engine in memory (already leased in the store), so they need no claim.
//! * [`outcomes`]: recorded attempts whose payment events the accept
//!   batcher commits with its next batch (one writer).

pub mod backoff;
pub mod classify;
pub mod engine;
pub mod error;
pub mod handoff;
pub mod idempotency;
pub mod outcomes;
pub mod ratelimit;
pub mod service;
pub mod stats;

#[cfg(test)]
mod testing;

pub use error::RelayError;
