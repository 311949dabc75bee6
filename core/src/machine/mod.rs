//! The payment state machine: pure functions from (current record, observation)
//! to (new record, one payment event). No I/O, no clock: the caller passes `now`.
//!
//! ```text
//!            relay            mempool            block (create ok)
//!   (none) ───────► pending ─────────► submitted ───────────────► confirmed ──► claimed
//!      │                │  ▲              │  │                        │
//!      │                │  └── re-seen ───┘  │ drop                    └──────► refunded
//!      │                │                    ▼
//!      │                └──────────────► dropped        block (create aborted)
//!      └── any of the above, on a create that aborted on chain ──────► failed
//! ```
//! The chain wins: a claimed/refunded print is applied whatever we thought
//! before (we may have missed the create), and a confirmed create overrides
//! `dropped`/`failed` of the same payment.

mod step;

pub use step::{apply_block, block_payment_ids, finalize, revert, step, Ctx, Input};

#[cfg(test)]
mod tests;
