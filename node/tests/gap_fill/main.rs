//! Gaps filled from the stacks-node RPC: the observer skips blocks 4 and 5 of
//! the recorded escrow scenario and delivers 6; the node reads 5, then 4,
//! from `GET /v3/blocks/replay/{block_id}` and applies 4, 5, 6 in order.
//!
//! The RPC is a test server answering in stacks-core's replay shape
//! (`stackslib/src/net/api/blockreplay.rs`), built from the same real escrow
//! transactions and prints the observer envelopes carry; it checks the
//! `authorization` header like stacks-core does. When it is down, refuses us
//! or does not have the block, the delivery is still acknowledged, the block
//! stays held and the gap is listed on `/health`.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use common::{snapshot, start_node, Stores, TestNode, SCENARIO};
use nexus_core::domain::PaymentEvent;
use nexus_core::observer::Route;
use nexus_core::simnet::{index_hash, Delivery, Scenario};

mod chain;
mod helpers;
mod server;

use chain::*;
use helpers::*;
use server::*;

const TOKEN: &str = "replay-s3cret";

// ---------------------------------------------------------------------------
// Tests

/// Blocks 1..3, then 6: 5 and 4 are read from the RPC and 4, 5, 6 applied in
/// order, with exactly the events a node that saw every block emits.
async fn fills_the_gap_from_the_rpc(stores: Stores) {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[replay_of(&envelope(&all, 4)), replay_of(&envelope(&all, 5))]).await;
    let node = start_node(stores, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in 1..=3 {
        deliver(&node, &all, h).await;
    }
    deliver(&node, &all, 6).await;

    assert_eq!(
        rpc.asked().await,
        vec![bare(&index_hash("main", 5)), bare(&index_hash("main", 4))],
        "the missing parent first, then its parent, until a known block"
    );
    assert!(health_gaps(&node).await.is_empty(), "gap closed");
    let (_, health) = node.get("/health").await;
    assert_eq!(health["last_block_height"], 6, "{health}");
    assert_eq!(health["last_block_hash"], index_hash("main", 6), "{health}");
    let history = node.app().ingestor.history();
    for h in 1..=6 {
        let rec = history
            .get_block(&index_hash("main", h))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("block {h} stored"));
        assert!(rec.canonical, "block {h} canonical");
        assert_eq!(rec.block.height, h);
    }
    // The replay carries no burn block: documented as 0 / empty.
    let b4 = history
        .get_block(&index_hash("main", 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b4.block.burn_height, b4.block.burn_hash.as_str()), (0, ""));

    // The escrow creates mined in 4 and 5 are applied, and 6's after them.
    for h in [3, 4, 5, 6] {
        let id = created_at(h);
        let (code, body) = node.get(&format!("/api/payments/{id}")).await;
        assert_eq!(code, 200, "payment created at {h}: {body}");
        let p = &body["payment"];
        assert_eq!(p["status"], "confirmed", "created at {h}: {body}");
        assert_eq!(p["created_in"]["block_height"], h, "{body}");
        assert_eq!(
            p["created_in"]["index_block_hash"],
            index_hash("main", h),
            "{body}"
        );
    }
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    assert_eq!(counter(&node, "gap_fill_blocks").await, 2);

    // A node that the observer gave the same traffic plus blocks 4 and 5,
    // just before 6, ends with the same event sequence.
    let reference = start_node(Stores::Embedded, |_| {}).await;
    for h in 1..=3 {
        deliver(&reference, &all, h).await;
    }
    let (_, six) = all.iter().find(|(x, _)| *x == 6).expect("height 6");
    let (six_block, six_mempool) = six.split_last().expect("block 6");
    for d in six_mempool {
        reference.post_ok(d.route.path(), d.body.clone()).await;
    }
    for h in [4, 5] {
        let body = serde_json::to_vec(&envelope(&all, h)).expect("json");
        reference.post_ok(Route::NewBlock.path(), body).await;
    }
    reference
        .post_ok(six_block.route.path(), six_block.body.clone())
        .await;
    let want: Vec<_> = snapshot(&reference).await.events.iter().map(key).collect();
    let got: Vec<_> = snap.events.iter().map(key).collect();
    assert_eq!(got, want);

    // Redelivering 4 and 5 from the observer changes nothing.
    deliver(&node, &all, 4).await;
    deliver(&node, &all, 5).await;
    assert_eq!(snapshot(&node).await.events.len(), snap.events.len());
    reference.stop().await;
    node.stop().await;
}

/// The RPC is down: the delivery is still acknowledged, 6 is held and the
/// gap listed on `/health`.
async fn rpc_down_holds_the_block(stores: Stores) {
    let all = deliveries_by_height();
    let node = start_node(stores, |c| {
        c.rpc_url = Some(format!("http://{}", closed_port()));
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in [1, 2, 3, 6] {
        deliver(&node, &all, h).await;
    }
    assert_held(&node).await;
    assert_eq!(counter(&node, "gap_fill_stopped:rpc_unavailable").await, 1);
    node.stop().await;
}

/// The RPC does not have the block (404): same.
async fn rpc_without_the_block_holds_it(stores: Stores) {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[]).await;
    let node = start_node(stores, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in [1, 2, 3, 6] {
        deliver(&node, &all, h).await;
    }
    assert_eq!(rpc.asked().await, vec![bare(&index_hash("main", 5))]);
    assert_held(&node).await;
    assert_eq!(counter(&node, "gap_fill_stopped:not_found").await, 1);
    node.stop().await;
}

async fn assert_held(node: &TestNode) {
    let gaps = health_gaps(node).await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["block"], index_hash("main", 6));
    assert_eq!(gaps[0]["height"], 6);
    assert_eq!(gaps[0]["missing_parent"], index_hash("main", 5));
    let (_, health) = node.get("/health").await;
    assert_eq!(
        health["last_block_height"], 3,
        "the tip did not move: {health}"
    );
    assert_eq!(node.metric("nexus_gaps_detected_total").await, 1.0);
    let (code, body) = node.get(&format!("/api/payments/{}", created_at(6))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["payment"]["status"], "submitted",
        "6's create is not applied: {body}"
    );
    snapshot(node).await.assert_consistent();
}

/// The RPC answers 503 for block 6's gap; once it recovers (and its
/// Retry-After has passed), the next block (7, on top of the held 6) fills
/// the gap and everything connects.
async fn fills_on_the_next_block_after_the_rpc_recovers(stores: Stores) {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[replay_of(&envelope(&all, 4)), replay_of(&envelope(&all, 5))]).await;
    rpc.state.mode.store(503, Ordering::SeqCst);
    let node = start_node(stores, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in [1, 2, 3, 6] {
        deliver(&node, &all, h).await;
    }
    assert_held(&node).await;
    assert_eq!(counter(&node, "gap_fill_stopped:rpc_unavailable").await, 1);

    rpc.state.mode.store(SERVE, Ordering::SeqCst);
    // The 503 said `Retry-After: 1`: the provider's breaker keeps the node
    // from asking again before that, and a block delivered meanwhile stays
    // held. Wait until the breaker lets a probe through, as stacks-node's
    // next block would.
    common::eventually(
        "the provider's breaker half-opens",
        std::time::Duration::from_secs(10),
        || async {
            let (_, stats) = node.get("/api/stats/providers").await;
            stats["providers"][0]["breaker"] != "open"
        },
    )
    .await;
    deliver(&node, &all, 7).await;
    assert!(health_gaps(&node).await.is_empty());
    let (_, health) = node.get("/health").await;
    assert_eq!(health["last_block_height"], 7, "{health}");
    let (_, body) = node.get(&format!("/api/payments/{}", created_at(5))).await;
    assert_eq!(body["payment"]["status"], "confirmed", "{body}");
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

/// A wrong token is a permanent refusal: counted apart, block held.
#[tokio::test]
async fn wrong_token_is_rejected_and_the_block_held() {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[replay_of(&envelope(&all, 5))]).await;
    let node = start_node(Stores::Embedded, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some("wrong".into());
    })
    .await;
    for h in [1, 2, 3, 6] {
        deliver(&node, &all, h).await;
    }
    assert_held(&node).await;
    assert_eq!(counter(&node, "gap_fill_stopped:rpc_rejected").await, 1);
    node.stop().await;
}

/// An RPC that never answers cannot stall the chain: the fill gives up at
/// half the delivery's time limit and the delivery is acknowledged.
#[tokio::test]
async fn a_hanging_rpc_does_not_stall_the_delivery() {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[]).await;
    rpc.state.mode.store(HANG, Ordering::SeqCst);
    let node = start_node(Stores::Embedded, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some(TOKEN.into());
        c.delivery_timeout_secs = 2;
    })
    .await;
    for h in [1, 2, 3] {
        deliver(&node, &all, h).await;
    }
    let started = std::time::Instant::now();
    deliver(&node, &all, 6).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered within the delivery limit: {:?}",
        started.elapsed()
    );
    assert_held(&node).await;
    assert_eq!(counter(&node, "gap_fill_stopped:deadline").await, 1);
    node.stop().await;
}

/// A gap longer than one delivery may read (100 blocks) is filled over two:
/// the first keeps what it read (held), the next block goes on from the
/// deepest missing one.
#[tokio::test]
async fn a_long_gap_is_filled_over_several_deliveries() {
    use nexus_core::simnet::block_envelope;
    let all = deliveries_by_height();
    // Empty blocks 4..=108 exist only on the RPC; 109 and 110 are delivered.
    let missing: Vec<Value> = (4..=108)
        .map(|h| replay_of(&block_envelope("main", h, "main", &[], &[])))
        .collect();
    let rpc = Rpc::serve(&missing).await;
    let node = start_node(Stores::Embedded, |c| {
        c.rpc_url = Some(rpc.url());
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in 1..=3 {
        deliver(&node, &all, h).await;
    }
    let block = |h| serde_json::to_vec(&block_envelope("main", h, "main", &[], &[])).expect("json");
    node.post_ok(Route::NewBlock.path(), block(109)).await;
    assert_eq!(
        rpc.asked().await.len(),
        100,
        "one delivery reads at most 100 blocks"
    );
    let gaps = health_gaps(&node).await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        gaps[0]["block"],
        index_hash("main", 9),
        "the gap moved down: {gaps:?}"
    );
    assert_eq!(counter(&node, "gap_fill_stopped:limit").await, 1);

    node.post_ok(Route::NewBlock.path(), block(110)).await;
    assert!(health_gaps(&node).await.is_empty());
    let (_, health) = node.get("/health").await;
    assert_eq!(health["last_block_height"], 110, "{health}");
    assert_eq!(counter(&node, "gap_fill_blocks").await, 105);
    let (_, body) = node.get(&format!("/api/payments/{}", created_at(3))).await;
    assert_eq!(body["payment"]["created_in"]["block_height"], 3, "{body}");
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

/// Several providers (`rpc_urls`): the first is down, the gap is read from
/// the second, through the same failover the verifier uses.
#[tokio::test]
async fn fills_through_the_next_provider_when_the_first_is_down() {
    let all = deliveries_by_height();
    let rpc = Rpc::serve(&[replay_of(&envelope(&all, 4)), replay_of(&envelope(&all, 5))]).await;
    let node = start_node(Stores::Embedded, |c| {
        c.rpc_urls = vec![format!("http://{}", closed_port()), rpc.url()];
        c.rpc_auth_token = Some(TOKEN.into());
    })
    .await;
    for h in [1, 2, 3, 6] {
        deliver(&node, &all, h).await;
    }
    assert_eq!(
        rpc.asked().await,
        vec![bare(&index_hash("main", 5)), bare(&index_hash("main", 4))]
    );
    assert!(health_gaps(&node).await.is_empty(), "gap closed");
    let (_, health) = node.get("/health").await;
    assert_eq!(health["last_block_height"], 6, "{health}");
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

common::both_stores!(
    fills_the_gap_from_the_rpc,
    rpc_down_holds_the_block,
    rpc_without_the_block_holds_it,
    fills_on_the_next_block_after_the_rpc_recovers,
);
