//! One suite, every `History` backend: the same assertions run against SQLite
//! (a temporary file) and PostgreSQL (a fresh database per test, on the server
//! at `NEXUS_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! One case per function, by role: `chain.rs` ([`ChainLog`]), `queries.rs`
//! ([`Queries`]), `proofs.rs` ([`Proofs`]); `backends.rs` holds what only
//! one backend has.

mod backends;
mod chain;
mod fixtures;
mod proofs;
mod queries;

use chain::*;
use fixtures::*;
use nexus_testkit::pg::PgTestDb as PgEmpty;
use proofs::*;
use queries::*;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let h = super::SqliteHistory::open(&dir.path().join("history.db")).unwrap();
                    super::$case(std::sync::Arc::new(h)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = super::PgTestDb::create().await;
                    super::$case(db.history.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    empty_store,
    seq_contiguous_across_commits,
    blocks_known_idempotent_and_tip,
    payments_upsert_filter_paginate,
    payments_filter_by_asset,
    payments_changed_since,
    events_ordering_and_limit,
    payments_for_txids_from_mempool,
    dead_letters_round_trip,
    nul_bytes_inside_json_bodies,
    large_batch_timing,
    commit_group_is_atomic,
    commit_group_merges_like_single_commits,
    batched_reads_match_single_reads,
    proofs_round_trip_and_replace,
    fenced_writes_refuse_stale_tokens,
    expected_log_end_is_only_a_hint,
);

/// A fresh, migrated database (dropped with the value).
struct PgTestDb {
    history: Arc<dyn History>,
    url: String,
    _db: PgEmpty,
}

impl PgTestDb {
    async fn create() -> Self {
        let db = PgEmpty::create().await;
        let history = Arc::new(PgHistory::connect(&db.url).await.unwrap());
        PgTestDb {
            history,
            url: db.url.clone(),
            _db: db,
        }
    }
}
