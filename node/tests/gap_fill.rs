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

const TOKEN: &str = "replay-s3cret";

// ---------------------------------------------------------------------------
// The scripted chain

/// The scenario's deliveries by block height: the mempool announcements of a
/// height's transactions, then its `/new_block`.
fn deliveries_by_height() -> Vec<(u64, Vec<Delivery>)> {
    let scenario = Scenario::parse(SCENARIO).expect("fixture parses");
    let mut out: Vec<(u64, Vec<Delivery>)> = Vec::new();
    let mut pending = Vec::new();
    for d in scenario.deliveries() {
        let is_block = d.route == Route::NewBlock;
        pending.push(d);
        if is_block {
            let body: Value = serde_json::from_slice(&pending.last().expect("block").body)
                .expect("envelope json");
            let h = body["block_height"].as_u64().expect("height");
            out.push((h, std::mem::take(&mut pending)));
        }
    }
    out
}

/// The `/new_block` envelope of height `h`.
fn envelope(all: &[(u64, Vec<Delivery>)], h: u64) -> Value {
    let (_, ds) = all
        .iter()
        .find(|(x, _)| *x == h)
        .expect("height in scenario");
    let block = ds.last().expect("block delivery");
    serde_json::from_slice(&block.body).expect("envelope json")
}

fn bare(s: &str) -> String {
    s.trim_start_matches("0x").to_string()
}

/// The block as stacks-core's replay endpoint returns it: ids without `0x`,
/// each transaction's events inside it and numbered per transaction, every
/// event `committed: true`, plus the fields we do not read.
fn replay_of(envelope: &Value) -> Value {
    let events = envelope["events"].as_array().expect("events");
    let txs: Vec<Value> = envelope["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| {
            let mine: Vec<Value> = events
                .iter()
                .filter(|e| e["txid"] == t["txid"])
                .enumerate()
                .map(|(i, e)| {
                    let mut e = e.clone();
                    e["event_index"] = json!(i);
                    e["committed"] = json!(true);
                    e
                })
                .collect();
            json!({
                "txid": bare(t["txid"].as_str().expect("txid")),
                "tx_index": t["tx_index"],
                "data": null,
                "hex": bare(t["raw_tx"].as_str().expect("raw_tx")),
                "result_hex": t["raw_result"],
                "post_condition_aborted": false,
                "stx_burned": 0,
                "execution_cost": {"read_count": 0, "read_length": 0, "runtime": 0, "write_count": 0, "write_length": 0},
                "vm_error": null,
                "profiler": null,
                "events": mine,
            })
        })
        .collect();
    json!({
        "block_id": bare(envelope["index_block_hash"].as_str().expect("hash")),
        "block_hash": bare(envelope["block_hash"].as_str().expect("hash")),
        "block_height": envelope["block_height"],
        "parent_block_id": bare(envelope["parent_index_block_hash"].as_str().expect("hash")),
        "consensus_hash": "00".repeat(20),
        "fees": 0,
        "miner_signature": "00".repeat(65),
        "signer_signature": [],
        "state_index_root": "00".repeat(32),
        "timestamp": envelope["burn_block_time"],
        "tx_merkle_root": "00".repeat(32),
        "valid_merkle_root": true,
        "transactions": txs,
    })
}

// ---------------------------------------------------------------------------
// The RPC test server

/// What the test RPC answers for a block it has.
const SERVE: u16 = 200;
/// Never answer (a node stuck replaying).
const HANG: u16 = 0;

struct RpcState {
    /// Replay bodies by bare block id.
    blocks: HashMap<String, Value>,
    /// 200: serve the blocks; any other code: answer it for everything.
    mode: AtomicU16,
    /// Block ids asked for (authorized or not), in order.
    asked: Mutex<Vec<String>>,
}

/// A stacks-node RPC stand-in on an ephemeral port; stops when dropped.
struct Rpc {
    addr: SocketAddr,
    state: Arc<RpcState>,
    task: tokio::task::JoinHandle<()>,
}

impl Rpc {
    async fn serve(blocks: &[Value]) -> Rpc {
        let state = Arc::new(RpcState {
            blocks: blocks
                .iter()
                .map(|b| (b["block_id"].as_str().expect("id").to_string(), b.clone()))
                .collect(),
            mode: AtomicU16::new(SERVE),
            asked: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v3/blocks/replay/:block_id", get(replay))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("rpc server");
        });
        Rpc { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn asked(&self) -> Vec<String> {
        self.state.asked.lock().await.clone()
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// stacks-core's handler: 401 without the exact token, 404 for an unknown
/// block (`No such block`), else the replay JSON.
async fn replay(
    State(s): State<Arc<RpcState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.asked.lock().await.push(id.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let mode = s.mode.load(Ordering::SeqCst);
    if mode == HANG {
        std::future::pending::<()>().await;
    }
    if mode != SERVE {
        let code = StatusCode::from_u16(mode).expect("status");
        return (code, [("retry-after", "1")], "busy").into_response();
    }
    match s.blocks.get(&id) {
        Some(b) => Json(b.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("No such block {id}\n")).into_response(),
    }
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

// ---------------------------------------------------------------------------
// Helpers

async fn deliver(node: &TestNode, all: &[(u64, Vec<Delivery>)], h: u64) {
    let (_, ds) = all.iter().find(|(x, _)| *x == h).expect("height");
    for d in ds {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
}

/// An event as both paths must produce it (burn fields and times differ by
/// design: the replay carries no burn block).
fn key(e: &PaymentEvent) -> Value {
    json!({
        "seq": e.seq,
        "type": e.event_type.as_str(),
        "payment_id": e.payment_id.to_string(),
        "status": e.status.as_str(),
        "txid": e.txid,
        "block_height": e.block_height,
        "index_block_hash": e.index_block_hash,
        "confirmations": e.confirmations,
    })
}

/// `payment-id` argument of each `create-payment` in the fixture, by height.
fn created_at(h: u64) -> String {
    let fixture: Value = serde_json::from_str(SCENARIO).expect("fixture");
    fixture["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .find(|t| t["block_height"] == h && t["function"] == "create-payment")
        .and_then(|t| t["args"][0]["repr"].as_str())
        .expect("a create-payment at that height")
        .to_string()
}

async fn health_gaps(node: &TestNode) -> Vec<Value> {
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    health["gaps"].as_array().expect("gaps").clone()
}

async fn counter(node: &TestNode, name: &str) -> u64 {
    node.app()
        .ingestor
        .state()
        .counter(name)
        .await
        .expect("counter")
}

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

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn embedded() {
                    super::$name(super::Stores::Embedded).await;
                }
                #[tokio::test]
                async fn production() {
                    super::$name(super::Stores::Production).await;
                }
            }
        )*
    };
}

both_stores!(
    fills_the_gap_from_the_rpc,
    rpc_down_holds_the_block,
    rpc_without_the_block_holds_it,
    fills_on_the_next_block_after_the_rpc_recovers,
);
