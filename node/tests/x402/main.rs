//! The x402 facilitator end to end through a real node: real signed
//! transactions (`tests/fixtures/x402-txs.json`, `npm run x402-fixtures`)
//! settled over HTTP, broadcast to the stacks-node RPC double, confirmed by
//! the block the test then delivers to the observer with the transfer's real
//! event, on the embedded stores and on real Redis + PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::{event_types, eventually, split, start_node, Stores, TestNode};
use nexus_core::domain::PaymentId;
use nexus_core::simnet::{block_envelope, tx_entry};
use nexus_stacks::scripted::{self, ScriptedNode};
use serde_json::{json, Value};

// Every refusal through the node: a reason, a 200, nothing stored or sent.
mod refusals;

const FIXTURE: &str = include_str!("../../../tests/fixtures/x402-txs.json");
const WAIT: Duration = Duration::from_secs(20);

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("x402 fixture")
}

fn tx(label: &str) -> Value {
    fixture()["txs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == label)
        .unwrap_or_else(|| panic!("no fixture tx {label:?}"))
        .clone()
}

fn txid(label: &str) -> String {
    tx(label)["txid"].as_str().unwrap().to_string()
}

fn token_contract() -> String {
    let f = fixture();
    f["token"]
        .as_str()
        .unwrap()
        .split("::")
        .next()
        .unwrap()
        .to_string()
}

/// A settle body as x402-stacks' middleware sends it.
fn body(label: &str, asset: &str, amount: &str, max_timeout: u64) -> Value {
    let f = fixture();
    let req = json!({
        "scheme": "exact", "network": "stacks:2147483648", "amount": amount,
        "asset": asset, "payTo": f["pay_to"], "maxTimeoutSeconds": max_timeout,
    });
    json!({
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": req,
                           "payload": {"transaction": tx(label)["tx_hex"].as_str().unwrap().trim_start_matches("0x")}},
        "paymentRequirements": req,
    })
}

fn stx_body(max_timeout: u64) -> Value {
    body("stx", "STX", "1000", max_timeout)
}

/// A node whose facilitator broadcasts to `rpc` and accepts the fixture's token.
async fn x402_node(stores: Stores, rpc: &ScriptedNode) -> TestNode {
    x402_node_with(stores, rpc, |_| {}).await
}

async fn x402_node_with(
    stores: Stores,
    rpc: &ScriptedNode,
    tweak: impl FnOnce(&mut nexus_node::config::Config),
) -> TestNode {
    let f = fixture();
    // The fixture's transactions carry nonce 3: the payer's next one.
    rpc.script
        .set_account(f["payer"].as_str().unwrap(), 1_000_000, 3);
    let url = rpc.url();
    start_node(stores, move |c| {
        c.rpc_urls = vec![url];
        c.rpc_timeout_ms = 2_000;
        c.x402_tokens = vec![f["token"].as_str().unwrap().to_string()];
        c.x402_settle_wait_secs = 15;
        // Reconcile cycles run when a test wakes them (the first at start).
        c.reconcile_interval_secs = 3600;
        tweak(c);
    })
    .await
}

async fn call(node: &TestNode, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/x402/{path}", node.api))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /x402/{path}: {e}"));
    split(resp).await
}

/// The block at `height` on `fork` holding the fixture transaction
/// `label`, with the event its transfer emits (none: an empty block).
fn block(fork: &str, height: u64, parent: &str, label: Option<&str>) -> Vec<u8> {
    let f = fixture();
    let (txs, events) = match label {
        None => (Vec::new(), Vec::new()),
        Some(label) => {
            let t = tx(label);
            let event = if label.starts_with("token") {
                json!({"txid": t["txid"], "event_index": 0, "committed": true, "type": "ft_transfer_event",
                       "ft_transfer_event": {"asset_identifier": f["token"], "sender": f["payer"], "recipient": f["pay_to"], "amount": "500"}})
            } else {
                json!({"txid": t["txid"], "event_index": 0, "committed": true, "type": "stx_transfer_event",
                       "stx_transfer_event": {"sender": f["payer"], "recipient": f["pay_to"], "amount": "1000", "memo": ""}})
            };
            let entry = tx_entry(
                t["txid"].as_str().unwrap(),
                0,
                true,
                t["tx_hex"].as_str().unwrap(),
                "0x0703",
            );
            (vec![entry], vec![event])
        }
    };
    serde_json::to_vec(&block_envelope(fork, height, parent, &txs, &events)).unwrap()
}

async fn payment(node: &TestNode, label: &str) -> Value {
    let id = PaymentId::exact(&txid(label));
    let (code, v) = node.get(&format!("/api/payments/{id}")).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// Settles `body` in the background; answers once the broadcast was sent.
async fn settle_until_broadcast(
    node: &TestNode,
    rpc: &ScriptedNode,
    body: Value,
    broadcasts: usize,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let api = node.api;
    let handle = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(format!("http://{api}/x402/settle"))
            .json(&body)
            .send()
            .await
            .expect("settle");
        split(resp).await
    });
    eventually("the broadcast", WAIT, || async {
        rpc.script.broadcasts().len() >= broadcasts
    })
    .await;
    handle
}

async fn an_stx_payment_settles_once_confirmed_and_only_once(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    let settling = settle_until_broadcast(&node, &rpc, stx_body(60), 1).await;
    // Broadcast, not yet in a block: settle is still waiting.
    assert!(!settling.is_finished());
    node.post_ok("/new_block", block("main", 1, "main", Some("stx")))
        .await;
    let (code, answer) = settling.await.unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["transaction"], txid("stx"));
    assert_eq!(answer["payer"], fixture()["payer"]);
    assert_eq!(answer["network"], "stacks:2147483648");

    let p = payment(&node, "stx").await;
    assert_eq!(p["payment"]["status"], "confirmed", "{p}");
    assert_eq!(p["payment"]["scheme"], "exact");
    assert_eq!(p["payment"]["asset"], "STX");
    assert_eq!(p["payment"]["amount"], "1000");
    // `payment:submitted` (the relay's) may land before or after the block.
    let types = event_types(&p);
    assert_eq!(types.first().map(String::as_str), Some("payment:created"));
    assert!(
        types.contains(&"payment:confirmed".to_string()),
        "{types:?}"
    );
    assert!(
        types.iter().all(
            |t| ["payment:created", "payment:submitted", "payment:confirmed"].contains(&t.as_str())
        ),
        "{types:?}"
    );
    assert_eq!(p["events"][0]["source"], "x402");
    // No proof before the verifier has checked it: the 404 says how it will be.
    let id = PaymentId::exact(&txid("stx"));
    let (code, proof) = node.get(&format!("/api/payments/{id}/proof")).await;
    assert_eq!(code, 404);
    assert!(
        proof["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payer's nonce"),
        "{proof}"
    );

    // The middleware or the client retrying: the same answer, no broadcast.
    let (code, again) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!((code, &again["success"]), (200, &json!(true)), "{again}");
    assert_eq!(again["transaction"], txid("stx"));
    assert_eq!(rpc.script.broadcasts().len(), 1);
    // ... even once its requirements have expired: the payment is made.
    let mut late = stx_body(60);
    late["paymentRequirements"]["extra"] = json!({"expiresAt": "2026-01-01T00:00:00Z"});
    let (_, late) = call(&node, "settle", &late).await;
    assert_eq!(late["success"], true, "{late}");

    // A transaction re-signed with the same sender and nonce is not a
    // second payment.
    rpc.script.set_token_balance(
        &token_contract(),
        fixture()["payer"].as_str().unwrap(),
        10_000,
    );
    let token = fixture()["token"].as_str().unwrap().to_string();
    let (code, second) = call(&node, "settle", &body("token", &token, "500", 5)).await;
    assert_eq!(code, 200);
    assert_eq!(second["success"], false);
    assert_eq!(
        second["errorReason"], "invalid_transaction_state",
        "{second}"
    );
    // ... and the answer names the transaction that holds the nonce.
    assert!(
        second["errorMessage"]
            .as_str()
            .unwrap()
            .contains(&txid("stx")),
        "{second}"
    );
    assert_eq!(rpc.script.broadcasts().len(), 1);
    node.stop().await;
}

/// After a settle that definitely failed (every node refused it, so the
/// nonce was never used), a transaction re-signed with the same nonce is
/// the payer's to settle.
async fn a_nonce_freed_by_a_refused_broadcast_can_pay_again(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    rpc.script
        .push_broadcasts([scripted::BroadcastOutcome::reject("FeeTooLow", None)]);
    let (_, refused) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(refused["errorReason"], "broadcast_failed", "{refused}");
    let f = fixture();
    rpc.script
        .set_token_balance(&token_contract(), f["payer"].as_str().unwrap(), 500);
    let token = f["token"].as_str().unwrap().to_string();
    let settling = settle_until_broadcast(&node, &rpc, body("token", &token, "500", 60), 2).await;
    node.post_ok("/new_block", block("main", 1, "main", Some("token")))
        .await;
    let (_, answer) = settling.await.unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["transaction"], txid("token"));
    node.stop().await;
}

async fn a_reorg_reverts_a_settled_payment_until_it_is_mined_again(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    node.post_ok("/new_block", block("main", 1, "main", None))
        .await;
    let settling = settle_until_broadcast(&node, &rpc, stx_body(60), 1).await;
    node.post_ok("/new_block", block("main", 2, "main", Some("stx")))
        .await;
    assert_eq!(settling.await.unwrap().1["success"], true);
    // A longer branch without it: the payment goes back to where it was.
    node.post_ok("/new_block", block("b", 2, "main", None))
        .await;
    node.post_ok("/new_block", block("b", 3, "b", None)).await;
    let p = payment(&node, "stx").await;
    assert_ne!(p["payment"]["status"], "confirmed", "{p}");
    let reverted = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "payment:reverted")
        .unwrap_or_else(|| panic!("no payment:reverted in {p}"));
    assert_eq!(reverted["reverted"]["block_height"], 2);
    assert_eq!(reverted["scheme"], "exact");
    // Mined again on the new branch.
    node.post_ok("/new_block", block("b", 4, "b", Some("stx")))
        .await;
    let p = payment(&node, "stx").await;
    assert_eq!(p["payment"]["status"], "confirmed");
    assert_eq!(p["payment"]["created_in"]["block_height"], 4);
    let (_, again) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(again["success"], true);
    assert_eq!(rpc.script.broadcasts().len(), 1);
    node.stop().await;
}

async fn a_token_payment_settles_with_the_amount_its_event_moved(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    let f = fixture();
    let token = f["token"].as_str().unwrap().to_string();
    rpc.script
        .set_token_balance(&token_contract(), f["payer"].as_str().unwrap(), 500);
    let settling = settle_until_broadcast(&node, &rpc, body("token", &token, "500", 60), 1).await;
    node.post_ok("/new_block", block("main", 1, "main", Some("token")))
        .await;
    let (_, answer) = settling.await.unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    let p = payment(&node, "token").await;
    assert_eq!(p["payment"]["asset"], token);
    assert_eq!(p["payment"]["status"], "confirmed");
    node.stop().await;
}

async fn a_slow_block_answers_pending_and_a_restart_loses_nothing(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    // maxTimeoutSeconds 1: settle must answer before the block comes.
    let (code, first) = call(&node, "settle", &stx_body(1)).await;
    assert_eq!(code, 200);
    assert_eq!(first["success"], false);
    assert_eq!(first["errorReason"], "transaction_pending", "{first}");
    assert_eq!(first["transaction"], txid("stx"));
    let node = node.restart().await;
    node.post_ok("/new_block", block("main", 1, "main", Some("stx")))
        .await;
    let (_, after) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(after["success"], true, "{after}");
    assert_eq!(rpc.script.broadcasts().len(), 1);
    node.stop().await;
}

/// Run one cycle of the node's reconciler and wait for it.
async fn reconcile(node: &TestNode) {
    let rec = node.app().reconciler.clone().expect("an RPC is configured");
    let n = rec.status().cycles;
    rec.wake();
    eventually("a reconcile cycle", WAIT, || {
        let rec = rec.clone();
        async move { rec.status().cycles > n }
    })
    .await;
}

/// The verifier checks a settled transfer by its payer's nonce at the
/// chain's tip: spent, it writes the proof; unspent (a reorg the observer
/// never delivered), it reverts the payment, which the transaction's next
/// block confirms again.
async fn the_reconciler_proves_and_reverts_transfers_by_the_payers_nonce(stores: Stores) {
    let rpc = scripted::start().await;
    let node = x402_node(stores, &rpc).await;
    let payer = fixture()["payer"].as_str().unwrap().to_string();
    let settling = settle_until_broadcast(&node, &rpc, stx_body(60), 1).await;
    node.post_ok("/new_block", block("main", 1, "main", Some("stx")))
        .await;
    assert_eq!(settling.await.unwrap().1["success"], true);
    let id = PaymentId::exact(&txid("stx"));

    // The chain at height 2 has the payer's nonce 3 spent.
    rpc.script.set_tip(2, 0);
    rpc.script.set_account(&payer, 999_000, 4);
    reconcile(&node).await;
    let (code, proof) = node.get(&format!("/api/payments/{id}/proof")).await;
    assert_eq!(code, 200, "{proof}");
    assert_eq!(proof["proof"]["status"], "confirmed");
    assert_eq!(proof["proof"]["txid"], txid("stx"));
    assert_eq!(proof["proof"]["block_height"], 1);
    assert_eq!(proof["proof"]["verified_tip_height"], 2);

    // At heights 3 and 4 it is unspent: the block with it is gone.
    rpc.script.set_account(&payer, 1_000_000, 3);
    for h in [3, 4] {
        rpc.script.set_tip(h, 1);
        reconcile(&node).await;
    }
    let p = payment(&node, "stx").await;
    assert_eq!(p["payment"]["status"], "pending", "{p}");
    let reverted = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "payment:reverted")
        .unwrap_or_else(|| panic!("no payment:reverted in {p}"));
    assert_eq!(reverted["source"], "reconciler");
    assert_eq!(reverted["reverted"]["block_height"], 1);
    let (code, _) = node.get(&format!("/api/payments/{id}/proof")).await;
    assert_eq!(code, 404, "nothing to prove while pending");

    // Mined again: confirmed by the observer, then proven by the verifier.
    node.post_ok("/new_block", block("main", 2, "main", Some("stx")))
        .await;
    rpc.script.set_tip(5, 1);
    rpc.script.set_account(&payer, 999_000, 4);
    reconcile(&node).await;
    let p = payment(&node, "stx").await;
    assert_eq!(p["payment"]["status"], "confirmed", "{p}");
    let (code, proof) = node.get(&format!("/api/payments/{id}/proof")).await;
    assert_eq!(code, 200, "{proof}");
    assert_eq!(proof["proof"]["block_height"], 2);
    assert_eq!(rpc.script.broadcasts().len(), 1);
    node.stop().await;
}

/// A settle waiting for its block when the node stops answers at once
/// (`transaction_pending`), so it never holds up the shutdown.
#[tokio::test]
async fn a_stopping_node_answers_waiting_settles_at_once() {
    let rpc = scripted::start().await;
    let node = x402_node(Stores::Embedded, &rpc).await;
    let settling = settle_until_broadcast(&node, &rpc, stx_body(60), 1).await;
    // Without the shutdown signal, the settle (waiting up to 15 s) would
    // hold the HTTP server's graceful stop past `stop`'s own bound.
    node.stop().await;
    let (code, answer) = settling.await.unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["errorReason"], "transaction_pending", "{answer}");
    assert_eq!(answer["transaction"], txid("stx"));
}

common::both_stores!(
    a_nonce_freed_by_a_refused_broadcast_can_pay_again,
    the_reconciler_proves_and_reverts_transfers_by_the_payers_nonce,
    an_stx_payment_settles_once_confirmed_and_only_once,
    a_reorg_reverts_a_settled_payment_until_it_is_mined_again,
    a_token_payment_settles_with_the_amount_its_event_moved,
    a_slow_block_answers_pending_and_a_restart_loses_nothing,
);
