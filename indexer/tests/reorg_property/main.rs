//! Property: after every `/new_block` delivery, the stored payments equal the
//! state computed from scratch on the current canonical chain.
//!
//! A case is a random tree of pre-Nakamoto blocks (1 to 200, most of them
//! small; each new block hangs off a block within [`MAX_FORK`] of the deepest
//! one, so reorgs are up to ~10 blocks deep) carrying escrow prints that are
//! valid whichever branch wins: creates of fresh payment ids (or the same
//! create re-mined on another branch), and claims/refunds of payments created
//! on the block's own ancestry (also possibly re-mined). The blocks go through
//! the real ingest path (`Ingestor::deliver(Route::NewBlock, ..)`) in a random
//! parents-first order, with random re-deliveries. After each delivery:
//!
//! * the tip is the highest delivered block, the first delivered on a tie
//!   (the longest-chain rule of `nexus_core::chain`);
//! * every payment in the state store matches the oracle: `apply_block`
//!   folded over the tip's ancestry from the root, then `finalize` at the
//!   tip; a payment the oracle does not know is absent or `pending` off-chain;
//! * the delivery's on-chain events name canonical blocks, and its
//!   `payment:reverted` events name blocks it has just made non-canonical.
//!
//! At the end of a case: `seq` is gap-free in history and on the bus, every
//! `payment:reverted` names a block that left the canonical chain, the stored
//! canonical flags match, and history's payments equal the state store's.
//!
//! * `memory_and_sqlite`: `MemoryState` + in-memory SQLite, `PROPTEST_CASES`
//!   cases (default [`MAIN_CASES`]).
//! * `redis_and_postgres`: the real Redis (own key prefix per case) and a
//!   fresh PostgreSQL database per case, `NEXUS_PROPTEST_SERVICE_CASES` cases
//!   (default [`SERVICE_CASES`]); `NEXUS_TEST_REDIS_URL`, `NEXUS_TEST_PG_URL`.
//!
//! Seed with `PROPTEST_RNG_SEED`; a failure shrinks to a small tree, printed
//! block by block (`b3 h2 <- b1: claim p0 (tx4)`) with the delivery order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use clarity::vm::types::{PrincipalData, TupleData, Value};
use clarity::vm::ClarityName;
use nexus_core::clock::FixedClock;
use nexus_core::decode::{decode_block, ContractId};
use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};
use nexus_core::machine::{apply_block, finalize, Ctx};
use nexus_core::observer::NewBlock;
use nexus_core::simnet::{block_envelope, index_hash, print_entry, tx_entry};
use nexus_indexer::ingest::{EventBus, Ingestor, Route};
use nexus_store::memory::MemoryState;
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{History, StateStore};
use nexus_testkit::pg::PgTestDb;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod generate;
mod oracle;

use generate::*;
use oracle::*;

const CONTRACT: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";
const PEOPLE: [&str; 3] = [
    "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
    "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG",
    "ST2JHG361ZXG51QTKY2NQCVBPPRRE2KZB1HR05NNC",
];
const NOW: &str = "2025-01-01T00:00:00.000Z";
/// A new block attaches to a block at most this far below the deepest one.
const MAX_FORK: u64 = 10;
/// `PROPTEST_CASES` default for the in-process run: the 10,000 cases,
/// about 100 s of CPU in a debug build (~0.9 ms per delivery). Lower it
/// locally (`PROPTEST_CASES=500`) for a quick loop.
const MAIN_CASES: u32 = 10_000;
/// `NEXUS_PROPTEST_SERVICE_CASES` default for the Redis + PostgreSQL run.
const SERVICE_CASES: u32 = 50;

// ---------------------------------------------------------------------------
// The property.

async fn check_case(
    case: &Case,
    state: Arc<dyn StateStore>,
    history: Arc<dyn History>,
) -> Result<(), TestCaseError> {
    let oracle = Oracle::new(case)?;
    let bus = Arc::new(RecordingBus::default());
    let ingestor = Ingestor::start(
        state.clone(),
        history.clone(),
        bus.clone(),
        Arc::new(FixedClock(NOW.to_string())),
        contract(),
        EventSource::Observer,
    )
    .await;
    let ingestor = io(ingestor, "start")?.with_confirmation_depth(case.depth);

    let n = case.nodes.len();
    let mut seen = vec![false; n];
    // Payments of the blocks delivered so far: the only ones the stores can know.
    let mut known = vec![false; case.payments];
    let mut pids: Vec<PaymentId> = Vec::new();
    let mut best: Option<usize> = None;
    let mut canon = vec![false; n];
    // Was canonical after some delivery and not after a later one.
    let mut left_chain = vec![false; n];
    for (step, &b) in case.deliveries.iter().enumerate() {
        let out = io(
            ingestor.deliver(Route::NewBlock, &oracle.bodies[b]).await,
            "deliver",
        )?;
        if seen[b] {
            prop_assert!(
                out.duplicate && out.events.is_empty(),
                "step {}: re-delivered b{} changed something: {:?}",
                step,
                b,
                out.events
            );
        } else {
            seen[b] = true;
            for op in &case.nodes[b].ops {
                if !std::mem::replace(&mut known[op.payment], true) {
                    pids.push(oracle.pids[op.payment]);
                }
            }
            prop_assert!(!out.duplicate && out.gap.is_none(), "step {}: b{}", step, b);
            if best.is_none_or(|t| case.nodes[b].height > case.nodes[t].height) {
                best = Some(b);
            }
        }
        let best = best.expect("something was delivered");

        let tip = io(history.tip().await, "tip")?;
        let tip = tip.ok_or_else(|| TestCaseError::fail("no tip after a delivery"))?;
        prop_assert_eq!(
            oracle.node(&tip.block.index_block_hash)?,
            best,
            "step {}: tip",
            step
        );
        prop_assert!(tip.canonical, "step {}: tip not canonical", step);

        let now = chain_of(case, best);
        for ev in &out.events {
            match ev.event_type {
                EventType::Reverted => {
                    let r = ev.reverted.as_ref().expect("reverted names its block");
                    let x = oracle.node(&r.index_block_hash)?;
                    prop_assert!(
                        canon[x] && !now[x],
                        "step {}: payment:reverted names b{}, which did not just leave the chain",
                        step,
                        x
                    );
                }
                EventType::Confirmed
                | EventType::Claimed
                | EventType::Refunded
                | EventType::Final => {
                    let hash = ev.index_block_hash.as_deref().unwrap_or_default();
                    let x = oracle.node(hash)?;
                    prop_assert!(
                        now[x],
                        "step {}: {:?} of {} names non-canonical b{}",
                        step,
                        ev.event_type,
                        ev.payment_id,
                        x
                    );
                }
                _ => {}
            }
        }
        for x in 0..n {
            left_chain[x] |= canon[x] && !now[x];
        }
        canon = now;

        let tip_height = case.nodes[best].height;
        let want = &oracle.after[best];
        let got = io(state.get_many(&pids).await, "get_many")?;
        for (id, got) in pids.iter().zip(got) {
            match want.get(id) {
                Some(p) => {
                    let want = finalize(p, tip_height, case.depth, &ctx(tip_height))
                        .map_or_else(|| p.clone(), |(f, _)| f);
                    let got = got.ok_or_else(|| {
                        TestCaseError::fail(format!("step {step}: {id} missing from the state"))
                    })?;
                    prop_assert_eq!(View::of(&got), View::of(&want), "step {}: {}", step, id);
                }
                None => {
                    if let Some(g) = got {
                        prop_assert!(
                            g.status == PaymentStatus::Pending
                                && g.created_in.is_none()
                                && g.settled_in.is_none()
                                && !g.is_final,
                            "step {}: {} is not on the canonical chain but stored as {:?}",
                            step,
                            id,
                            View::of(&g)
                        );
                    }
                }
            }
        }
    }

    // The event log: gap-free, published once each, reverts name orphaned blocks.
    let events = io(history.events_since(0, u32::MAX).await, "events_since")?;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let last = seqs.len() as u64;
    prop_assert_eq!(&seqs, &(1..=last).collect::<Vec<_>>(), "history seq");
    prop_assert_eq!(io(history.last_seq().await, "last_seq")?, last);
    prop_assert_eq!(io(state.last_seq().await, "last_seq")?, last);
    let published = bus.0.lock().expect("bus lock").clone();
    prop_assert_eq!(&published, &seqs, "published seq");
    for ev in events
        .iter()
        .filter(|e| e.event_type == EventType::Reverted)
    {
        let r = ev.reverted.as_ref().expect("reverted names its block");
        let x = oracle.node(&r.index_block_hash)?;
        prop_assert!(
            left_chain[x],
            "seq {}: reverted b{} never left the chain",
            ev.seq,
            x
        );
    }

    // Canonical flags as stored.
    for (x, (hash, &on)) in oracle.hashes.iter().zip(&canon).enumerate() {
        let rec = io(history.get_block(hash).await, "get_block")?;
        prop_assert_eq!(rec.map(|r| r.canonical), Some(on), "b{} canonical", x);
    }

    // History's current payments are the state store's.
    for p in io(history.payments_changed_since(0).await, "payments")? {
        prop_assert!(
            pids.contains(&p.payment_id),
            "stored unknown {}",
            p.payment_id
        );
        let cached = io(state.get(&p.payment_id).await, "get")?;
        prop_assert_eq!(
            cached.as_ref(),
            Some(&p),
            "history vs state for {}",
            p.payment_id
        );
    }
    Ok(())
}

fn config(var: &str, default: u32) -> ProptestConfig {
    let cases = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

proptest! {
    #![proptest_config(config("PROPTEST_CASES", MAIN_CASES))]

    #[test]
    fn memory_and_sqlite(case in case_strategy()) {
        runtime().block_on(async {
            let history = io(SqliteHistory::open_in_memory(), "sqlite")?;
            check_case(&case, Arc::new(MemoryState::new()), Arc::new(history)).await
        })?;
    }
}

proptest! {
    #![proptest_config(config("NEXUS_PROPTEST_SERVICE_CASES", SERVICE_CASES))]

    #[test]
    fn redis_and_postgres(case in case_strategy()) {
        runtime().block_on(async {
            let redis_url = std::env::var("NEXUS_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
            let prefix = format!("nexus-test:{:016x}:", random());
            let redis = RedisState::connect(&redis_url, &prefix)
                .await
                .expect("Redis for tests (set NEXUS_TEST_REDIS_URL)");
            let redis = Arc::new(redis);
            let db = PgTestDb::create().await;
            let history = Arc::new(PgHistory::connect(&db.url).await.expect("PgHistory"));
            let result = check_case(&case, redis.clone(), history.clone()).await;
            history.pool().close().await;
            redis.flush_prefix().await.expect("flush the test prefix");
            result
        })?;
    }
}

fn random() -> u64 {
    rand::random()
}
