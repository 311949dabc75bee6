//! The pure core of x402-Nexus: data in, data out, no I/O. Everything that
//! decides something lives here, so it is tested without a network, a
//! database or a clock; the crates around it (`nexus-indexer`,
//! `nexus-verifier`, `nexus-relay`, the node) do the I/O and call in.
//!
//! * [`domain`]: the payment record, the one payment-event record, proofs, tips.
//! * [`observer`]: stacks-node's `[[events_observer]]` payloads and routes.
//! * [`decode`]: payloads and transactions → escrow calls and prints.
//! * [`chain`]: fork choice (the rollback/apply plan of a new block).
//! * [`machine`]: the payment state machine.
//! * [`replay`]: `GET /v3/blocks/replay` JSON → the observer's block shape.
//! * [`escrow`] and [`decide`]: the escrow's `get-payment` answer, and what
//!   the reconciler does when it disagrees with a stored record.
//! * [`validate`]: is a client-signed transaction one the relay may send?
//! * [`x402`]: the x402 facilitator's rules (verify, funds, `/supported`).
//! * [`simnet`]: the recorded Clarinet simnet scenario as observer payloads.
//! * [`clock`]: the one wall clock, behind a trait (test clocks included).
//! * [`backoff`]: the one retry schedule (growth, cap, attempts, jitter).

pub mod backoff;
pub mod chain;
pub mod clock;
pub mod decide;
pub mod decode;
pub mod domain;
pub mod escrow;
pub mod machine;
pub mod observer;
pub mod replay;
pub mod simnet;
pub mod validate;
pub mod x402;

/// `Display` of an error and its sources, joined by `: ` (one line for logs
/// and API messages).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}
