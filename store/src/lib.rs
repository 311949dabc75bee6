//! Every store of x402-Nexus, each behind a narrow trait, and the one set
//! of migrations that creates their tables.
//!
//! | trait | production | embedded default |
//! |---|---|---|
//! | [`StateStore`]: current payment records | [`redis`] | [`memory`] |
//! | [`History`] = [`ChainLog`] + [`Queries`] + [`Proofs`] | [`postgres`] | [`sqlite`] |
//! | [`broadcasts::BroadcastStore`]: the relay's schedule | PostgreSQL | SQLite |
//! | [`idempotency::IdempotencyStore`]: relay keys | Redis (or PostgreSQL) | SQLite |
//! | [`webhooks::WebhookStore`]: the delivery queue | PostgreSQL | SQLite |
//!
//! The SQL stores share one database per deployment, created by
//! `migrations/postgres` or `migrations/sqlite` (run when the history opens);
//! `tests/schema_parity.rs` keeps the two schemas in step.
//!
//! Write order per delivery: history commits first (one transaction, which
//! assigns `seq`), then the state store applies the new records atomically
//! together with `last_seq`. If the second step fails the delivery answers 5xx
//! and the retry finds `state.last_seq() < history.last_seq()` and catches up
//! from history: nothing is lost and nothing is emitted twice.

pub mod attached;
pub mod broadcasts;
mod codec;
mod error;
mod history;
pub mod idempotency;
pub mod memory;
pub mod postgres;
pub mod redis;
mod row;
pub mod sqlite;
mod state;
#[cfg(test)]
mod testing;
pub mod types;
pub mod webhooks;

pub use attached::{AttachedRows, AttachedValues};
pub use error::StoreError;
pub use history::{ChainLog, History, HistoryGroup, Proofs, Queries};
pub use state::StateStore;
pub use types::{
    BlockRecord, CommitBatch, Committed, DeadLetter, Fence, MempoolRecord, PaymentFilter,
    UndoRecord,
};
