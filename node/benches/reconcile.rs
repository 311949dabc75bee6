//! `make bench-reconcile`: one reconcile cycle over 10,000 open payments in
//! real Redis + PostgreSQL, against the stacks-node RPC test double answering
//! each request after 2 ms, at concurrency 32.
//!
//! Reports the first cycle (every payment read and proven), a second cycle at
//! the same tip (nothing to read: target 0 `get-payment` calls) and a third
//! at a new tip (everything read again). Last line: one JSON object.
//!
//! Knobs: `BENCH_PAYMENTS` (10000), `BENCH_CONCURRENCY` (32),
//! `BENCH_RPC_DELAY_MS` (2); services from `NEXUS_TEST_PG_URL`,
//! `NEXUS_TEST_REDIS_URL`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::clock::SystemClock;
use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};
use nexus_core::escrow::{ChainPayment, ChainStatus};
use nexus_indexer::ingest::{BroadcastBus, Ingestor};
use nexus_stacks::scripted;
use nexus_stacks::{NoObserver, Providers};
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::{ChainLog, CommitBatch};
use nexus_verifier::reconcile::{NoReconcileObserver, ReconcileConfig, Reconciler};
use sqlx::Connection;

const CONTRACT: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";
const SENDER: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";
const RECIPIENT: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
const AT: &str = "2026-01-01T00:00:00.000Z";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pid(n: u32) -> PaymentId {
    let mut b = [0x5au8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    PaymentId(b)
}

fn payment(n: u32) -> Payment {
    let mut p = Payment::new(pid(n), PaymentStatus::Confirmed, AT);
    p.sender = Some(SENDER.into());
    p.recipient = Some(RECIPIENT.into());
    p.amount = Some("1000".into());
    p.expires_at = Some(1_100);
    p.create_txid = Some(format!("0x{n:064x}"));
    p.created_in = Some(ChainPos {
        txid: format!("0x{n:064x}"),
        tx_index: n % 1000,
        block_height: 1_000,
        index_block_hash: format!("0x{:064x}", 0xa000),
        block_hash: format!("0x{:064x}", 0xb000),
        burn_block_height: 2_000,
        burn_block_hash: format!("0x{:064x}", 0xc000),
    });
    p
}

fn event(p: &Payment) -> PaymentEvent {
    PaymentEvent {
        txid: p.create_txid.clone(),
        block_height: Some(1_000),
        confirmations: 1,
        ..PaymentEvent::about(p, EventType::Confirmed, EventSource::Observer, AT)
    }
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("database URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

fn main() {
    let n = env_usize("BENCH_PAYMENTS", 10_000) as u32;
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let delay = Duration::from_millis(env_usize("BENCH_RPC_DELAY_MS", 2) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(run(n, concurrency, delay));
    println!("{report}");
}

async fn run(n: u32, concurrency: usize, delay: Duration) -> serde_json::Value {
    let tag = format!("{:016x}", RandomState::new().build_hasher().finish());
    let admin_url = std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url =
        std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = format!("nexus_bench_{tag}");
    let prefix = format!("nexus-bench:{tag}:");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL for the bench (set NEXUS_TEST_PG_URL)");
    // An identifier cannot be a bind parameter; `db` is our own hex.
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");

    let report = measure(
        &with_database(&admin_url, &db),
        &redis_url,
        &prefix,
        n,
        concurrency,
        delay,
    )
    .await;

    if let Ok(s) = RedisState::connect(&redis_url, &prefix).await {
        let _ = s.flush_prefix().await;
    }
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    report
}

async fn measure(
    pg_url: &str,
    redis_url: &str,
    prefix: &str,
    n: u32,
    concurrency: usize,
    delay: Duration,
) -> serde_json::Value {
    let history = Arc::new(PgHistory::connect(pg_url).await.expect("postgres"));
    let state = Arc::new(RedisState::connect(redis_url, prefix).await.expect("redis"));
    let seed_started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let payments: Vec<Payment> = chunk.iter().map(|&i| payment(i)).collect();
        let events = payments.iter().map(event).collect();
        history
            .commit(CommitBatch {
                payments,
                events,
                ..Default::default()
            })
            .await
            .expect("seed history");
    }
    // Start catches Redis up with history: both stores hold the 10,000.
    let ingestor = Arc::new(
        Ingestor::start(
            state,
            history,
            Arc::new(BroadcastBus::new(1024)),
            Arc::new(SystemClock),
            CONTRACT.parse().expect("contract"),
            EventSource::Observer,
        )
        .await
        .expect("ingestor"),
    );
    eprintln!(
        "bench-reconcile: seeded {n} confirmed payments in {:?}",
        seed_started.elapsed()
    );

    let node = scripted::start().await;
    node.script.set_tip(1_050, 0);
    node.script.set_delay(delay);
    for i in 0..n {
        node.script.put(
            pid(i),
            ChainPayment {
                sender: SENDER.into(),
                recipient: RECIPIENT.into(),
                amount: 1000,
                memo: vec![],
                created_at: 1_000,
                expires_at: 1_100,
                status: ChainStatus::Pending,
                token: None,
            },
        );
    }
    let rpc = Arc::new(
        Providers::new(
            &[node.url()],
            None,
            Duration::from_secs(5),
            3,
            Duration::from_secs(60),
            Arc::new(NoObserver),
        )
        .expect("providers"),
    );
    let rec = Arc::new(Reconciler::new(
        ingestor.clone(),
        rpc,
        ReconcileConfig {
            concurrency,
            budget: (n as usize).max(1) * 2,
            ..Default::default()
        },
        Arc::new(SystemClock),
        Arc::new(NoReconcileObserver),
    ));

    let mut cycles = Vec::new();
    for label in ["first", "unchanged_tip", "new_tip"] {
        if label == "new_tip" {
            node.script.set_tip(1_051, 0);
        }
        let calls = node.script.total_calls();
        let started = Instant::now();
        // On a runtime worker, as the node's loop runs (a spawned task), not
        // on the thread blocked in `block_on`.
        let r = {
            let rec = rec.clone();
            tokio::spawn(async move { rec.cycle(None).await })
                .await
                .expect("cycle task")
                .expect("cycle")
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let made = node.script.total_calls() - calls;
        assert!(r.degraded.is_none(), "{r:?}");
        assert_eq!(r.corrections, 0);
        eprintln!(
            "bench-reconcile: {label:>13} cycle: {ms:8.1} ms, {made:6} RPC calls ({} get-payment), {} cached, {} proofs",
            r.rpc_calls.saturating_sub(1),
            r.cached,
            r.proofs
        );
        cycles.push((ms, made, r));
    }
    serde_json::json!({
        "bench": "reconcile",
        "open_payments": n,
        "concurrency": concurrency,
        "rpc_delay_ms": delay.as_millis() as u64,
        "cycle_ms": (cycles[0].0 * 10.0).round() / 10.0,
        "rpc_calls_first": cycles[0].1,
        "cycle_ms_unchanged_tip": (cycles[1].0 * 10.0).round() / 10.0,
        "rpc_calls_unchanged_tip": cycles[1].1,
        "get_payment_calls_unchanged_tip": cycles[1].2.rpc_calls.saturating_sub(1),
        "cycle_ms_new_tip": (cycles[2].0 * 10.0).round() / 10.0,
        "rpc_calls_new_tip": cycles[2].1,
        "proofs_first": cycles[0].2.proofs,
    })
}
