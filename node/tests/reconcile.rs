//! The verifier inside a real node on real Redis + PostgreSQL, reading a
//! stacks-node RPC test double that answers from a scripted chain state with
//! the real Clarity serialization (`nexus_stacks::scripted`): drift
//! corrected (the chain wins), RPC down (no state change, degraded), provider
//! failover with breakers, a refund and a claim the store never saw, proofs.
//!
//! The loop runs as in production (lease, ticks); the test triggers cycles
//! with `Reconciler::wake` and waits for them. Breaker timing (60 s
//! half-open) is driven with `tokio::time::pause()` in the verifier's
//! `tests/failover.rs`, where no store I/O can race the paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, snapshot, start_node, Stores, TestNode};
use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};
use nexus_core::escrow::{ChainPayment, ChainStatus};
use nexus_indexer::ingest::Correction;
use nexus_stacks::scripted::{self, Mode, ScriptedNode};
use nexus_verifier::reconcile::Reconciler;
use serde_json::json;

const SENDER: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";
const RECIPIENT: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
const AT: &str = "2026-01-01T00:00:00.000Z";

fn pid(n: u8) -> PaymentId {
    PaymentId([n; 32])
}

fn pos(height: u64, n: u8) -> ChainPos {
    ChainPos {
        txid: format!("0x{:064x}", n),
        tx_index: 2,
        block_height: height,
        index_block_hash: format!("0x{:064x}", 0xa000 + height),
        block_hash: format!("0x{:064x}", 0xb000 + height),
        burn_block_height: 100 + height,
        burn_block_hash: format!("0x{:064x}", 0xc000 + height),
    }
}

fn stored(n: u8, status: PaymentStatus) -> Payment {
    let mut p = Payment::new(pid(n), status, AT);
    p.sender = Some(SENDER.into());
    p.recipient = Some(RECIPIENT.into());
    p.amount = Some("1000".into());
    p.create_txid = Some(format!("0x{:064x}", n));
    if status == PaymentStatus::Confirmed {
        p.expires_at = Some(105);
        p.created_in = Some(pos(5, n));
    }
    p
}

fn chain(status: ChainStatus) -> ChainPayment {
    ChainPayment {
        sender: SENDER.into(),
        recipient: RECIPIENT.into(),
        amount: 1000,
        memo: vec![],
        created_at: 5,
        expires_at: 105,
        status,
        token: None,
    }
}

/// Put payments into the node's stores as if the observer had committed them.
async fn seed(node: &TestNode, payments: Vec<Payment>) {
    let corrections = payments
        .into_iter()
        .map(|p| Correction {
            expected_seq: 0,
            event: PaymentEvent {
                txid: p.create_txid.clone(),
                ..PaymentEvent::about(
                    &p,
                    match p.status {
                        PaymentStatus::Confirmed => EventType::Confirmed,
                        _ => EventType::Submitted,
                    },
                    EventSource::Observer,
                    AT,
                )
            },
            payment: p,
        })
        .collect();
    node.app()
        .ingestor
        .commit_corrections(corrections, "test_seed", None)
        .await
        .expect("seed");
}

fn reconciler(node: &TestNode) -> Arc<Reconciler> {
    node.app().reconciler.clone().expect("an RPC is configured")
}

/// Run one cycle of the node's own loop and wait for it.
async fn cycle(node: &TestNode) {
    let rec = reconciler(node);
    let n = rec.status().cycles;
    rec.wake();
    eventually("a reconcile cycle", Duration::from_secs(20), || {
        let rec = rec.clone();
        async move { rec.status().cycles > n }
    })
    .await;
}

/// A production node reading `rpcs`, whose loop has taken the lease and run
/// its first cycle (on empty stores).
async fn node_with(rpcs: &[&ScriptedNode]) -> TestNode {
    let urls: Vec<String> = rpcs.iter().map(|r| r.url()).collect();
    let node = start_node(Stores::Production, |c| {
        c.rpc_urls = urls;
        // Cycles are triggered by the test; the first tick runs at start.
        c.reconcile_interval_secs = 3600;
        c.reconcile_drop_after_secs = 0;
    })
    .await;
    let rec = reconciler(&node);
    eventually(
        "the lease and a first cycle",
        Duration::from_secs(20),
        || {
            let rec = rec.clone();
            async move { rec.status().leader && rec.status().cycles >= 1 }
        },
    )
    .await;
    node
}

/// Redis comes back empty: the next delivery is answered 200 only after the
/// state was rebuilt from history and reconciled with the chain.
#[tokio::test]
async fn after_redis_loss_the_next_delivery_waits_for_a_reconcile() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(20, 0);
    let node = node_with(&[&rpc]).await;
    seed(&node, vec![stored(7, PaymentStatus::Confirmed)]).await;
    // The chain says it was refunded: drift the next cycle will correct.
    rpc.script.put(pid(7), chain(ChainStatus::Refunded));
    let redis = nexus_store::redis::RedisState::connect(
        node.config.redis_url.as_deref().expect("redis"),
        &node.config.redis_prefix,
    )
    .await
    .expect("redis");
    redis.flush_prefix().await.expect("empty the state store");
    let rec = reconciler(&node);
    let cycles = rec.status().cycles;
    let (code, body) = node.post("/new_mempool_tx", "[]").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        rec.status().cycles > cycles,
        "a reconcile cycle ran before the 200"
    );
    let p = node
        .app()
        .ingestor
        .state()
        .get(&pid(7))
        .await
        .unwrap()
        .expect("rebuilt");
    assert_eq!(
        p.status,
        PaymentStatus::Refunded,
        "the chain won before the 200"
    );
    node.stop().await;
}

#[tokio::test]
async fn drift_is_corrected_from_the_chain_published_and_proven() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(20, 0);
    let node = node_with(&[&rpc]).await;
    seed(
        &node,
        vec![
            stored(1, PaymentStatus::Confirmed), // the indexer missed its claim
            stored(2, PaymentStatus::Pending),   // refunded on chain; we thought pending
            stored(3, PaymentStatus::Submitted), // its create was mined; we missed the block
            stored(4, PaymentStatus::Confirmed), // agrees
        ],
    )
    .await;
    rpc.script.put(pid(1), chain(ChainStatus::Claimed));
    rpc.script.put(pid(2), chain(ChainStatus::Refunded));
    rpc.script.put(pid(3), chain(ChainStatus::Pending));
    rpc.script.put(pid(4), chain(ChainStatus::Pending));
    let before = snapshot(&node).await;
    let mut rx = node.app().bus.subscribe();

    cycle(&node).await;

    let after = snapshot(&node).await;
    after.assert_consistent();
    let status = |n: u8| {
        after
            .payments
            .iter()
            .find(|p| p.payment_id == pid(n))
            .map(|p| p.status)
    };
    assert_eq!(status(1), Some(PaymentStatus::Claimed));
    assert_eq!(status(2), Some(PaymentStatus::Refunded));
    assert_eq!(status(3), Some(PaymentStatus::Confirmed));
    assert_eq!(status(4), Some(PaymentStatus::Confirmed));
    let new: Vec<&PaymentEvent> = after.events[before.events.len()..].iter().collect();
    assert_eq!(new.len(), 3, "{new:#?}");
    for ev in &new {
        assert_eq!(ev.source, EventSource::Reconciler);
    }
    let mut got: Vec<(PaymentId, EventType)> = Vec::new();
    for _ in 0..3 {
        let ev = rx.recv().await.expect("published");
        assert_eq!(ev.source, EventSource::Reconciler);
        got.push((ev.payment_id, ev.event_type));
    }
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        vec![
            (pid(1), EventType::Claimed),
            (pid(2), EventType::Refunded),
            (pid(3), EventType::Confirmed)
        ]
    );
    // Every read of the cycle named the same tip.
    assert_eq!(rpc.script.tips_seen().len(), 1);

    // Metrics and proofs.
    assert_eq!(
        node.metric("nexus_reconcile_discrepancies_total{from=\"confirmed\",to=\"claimed\"}")
            .await,
        1.0
    );
    let (code, body) = node.get(&format!("/api/payments/{}/proof", pid(4))).await;
    assert_eq!(code, 200, "{body}");
    let proof = &body["proof"];
    assert_eq!(proof["status"], json!("confirmed"));
    assert_eq!(proof["block_height"], json!(5));
    assert_eq!(proof["txid"], json!(format!("0x{:064x}", 4)));
    assert_eq!(
        proof["index_block_hash"],
        json!(format!("0x{:064x}", 0xa005))
    );
    assert_eq!(proof["burn_block_height"], json!(105));
    assert_eq!(proof["tx_index"], json!(2));
    assert_eq!(proof["confirmations"], json!(16));
    assert_eq!(proof["verified_tip_height"], json!(20));
    assert_eq!(proof["verified_tip"], json!(rpc.script.tip_index_hash()));
    let (code, body) = node.get(&format!("/api/payments/{}/proof", pid(1))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["proof"]["status"], json!("claimed"));
    let (code, _) = node.get(&format!("/api/payments/{}/proof", pid(9))).await;
    assert_eq!(code, 404);
    let (code, body) = node.get("/api/payments/0x12/proof").await;
    assert_eq!(
        (code, body["error"]["field"].clone()),
        (400, json!("payment_id"))
    );

    // The tip moves: the proof is re-checked at the new tip.
    rpc.script.set_tip(21, 0);
    cycle(&node).await;
    let (_, body) = node.get(&format!("/api/payments/{}/proof", pid(4))).await;
    assert_eq!(body["proof"]["verified_tip_height"], json!(21));
    assert_eq!(body["proof"]["confirmations"], json!(17));
    node.stop().await;
}

#[tokio::test]
async fn rpc_down_changes_nothing_and_health_says_degraded() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(20, 0);
    let node = node_with(&[&rpc]).await;
    seed(&node, vec![stored(1, PaymentStatus::Confirmed)]).await;
    rpc.script.put(pid(1), chain(ChainStatus::Claimed));
    rpc.script.set_mode(Mode::Status(503));
    let before = snapshot(&node).await;

    cycle(&node).await;
    cycle(&node).await;

    assert_eq!(snapshot(&node).await, before, "no payment changed");
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "the node still ingests and serves: {health}");
    assert_eq!(health["status"], json!("degraded"));
    assert_eq!(health["reconciler"]["degraded"], json!(true));
    assert_eq!(
        health["reconciler"]["providers"][0]["breaker"],
        json!("closed")
    );
    assert_eq!(node.metric("nexus_reconcile_degraded").await, 1.0);

    // The node comes back: the chain wins.
    rpc.script.set_mode(Mode::Up);
    cycle(&node).await;
    let p = node
        .app()
        .ingestor
        .state()
        .get(&pid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Claimed);
    let (_, health) = node.get("/health").await;
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(node.metric("nexus_reconcile_degraded").await, 0.0);
    node.stop().await;
}

#[tokio::test]
async fn a_failing_provider_is_skipped_once_its_breaker_opens() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    for r in [&a, &b] {
        r.script.set_tip(20, 0);
        r.script.put(pid(1), chain(ChainStatus::Refunded));
    }
    a.script.set_mode(Mode::Status(500));
    let node = node_with(&[&a, &b]).await;
    seed(&node, vec![stored(1, PaymentStatus::Confirmed)]).await;
    for _ in 0..3 {
        cycle(&node).await;
    }
    let p = node
        .app()
        .ingestor
        .state()
        .get(&pid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Refunded, "answered by b");
    assert_eq!(
        a.script.total_calls(),
        3,
        "three failures, then a is skipped"
    );
    assert!(b.script.total_calls() >= 4);
    let (_, health) = node.get("/health").await;
    let providers = &health["reconciler"]["providers"];
    assert_eq!(providers[0]["breaker"], json!("open"), "{health}");
    assert_eq!(providers[1]["breaker"], json!("closed"));
    assert_eq!(health["reconciler"]["degraded"], json!(false));
    assert_eq!(
        node.metric(&format!(
            "nexus_rpc_breaker_state{{provider=\"{}\"}}",
            a.url()
        ))
        .await,
        2.0
    );
    node.stop().await;
}

#[tokio::test]
async fn an_unchanged_tip_costs_one_call() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(20, 0);
    let node = node_with(&[&rpc]).await;
    seed(
        &node,
        (1..=20)
            .map(|n| stored(n, PaymentStatus::Confirmed))
            .collect(),
    )
    .await;
    for n in 1..=20 {
        rpc.script.put(pid(n), chain(ChainStatus::Pending));
    }
    cycle(&node).await;
    let first = rpc.script.calls("call_read");
    assert_eq!(first, 20);
    let total = rpc.script.total_calls();
    cycle(&node).await;
    assert_eq!(rpc.script.total_calls() - total, 1, "only /v2/info");
    assert_eq!(rpc.script.calls("call_read"), 20);
    // A payment the chain does not know, asked twice at two tips: dropped
    // (drop_after is 0 here), never on the first answer.
    seed(&node, vec![stored(30, PaymentStatus::Submitted)]).await;
    cycle(&node).await;
    let p = node
        .app()
        .ingestor
        .state()
        .get(&pid(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.status,
        PaymentStatus::Submitted,
        "one answer is not enough"
    );
    rpc.script.set_tip(21, 0);
    cycle(&node).await;
    let p = node
        .app()
        .ingestor
        .state()
        .get(&pid(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Dropped);
    node.stop().await;
}
