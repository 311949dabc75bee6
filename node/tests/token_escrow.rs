//! Token payments through the escrow, end to end: the scenario recorded from
//! the real contract in the simnet (`tests/fixtures/escrow-ft-simnet.json`:
//! a create refused before the token is allowed, two payments in test-sbtc,
//! one claimed and one refunded after expiry, a create refused once the token
//! is disallowed) delivered over HTTP to the observer, on both deployments.
//! The records, events, `?asset=` and a WebSocket `asset` subscription carry
//! the token.

mod common;

use std::time::Duration;

use common::{start_node, Stores, TestNode};
use futures::{SinkExt, StreamExt};
use nexus_core::simnet::Scenario;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const FIXTURE: &str = include_str!("../../tests/fixtures/escrow-ft-simnet.json");
const TOKEN: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
const ASSET: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc::test-sbtc";

fn payment_id_of(step: usize) -> String {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    fx["transactions"][step]["args"][0]["repr"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn list(node: &TestNode, query: &str) -> (u16, Value) {
    node.get(&format!("/api/payments?{query}")).await
}

fn ids(page: &Value) -> Vec<String> {
    let mut v: Vec<String> = page["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payment_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn token_payments_carry_their_asset(stores: Stores) {
    let node = start_node(stores, |_| {}).await;
    // Subscribed before anything happens: every token event, nothing else.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.api))
        .await
        .expect("WebSocket connects");
    let sub = json!({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                     "params": {"event": "asset", "asset": ASSET}});
    ws.send(Message::Text(sub.to_string())).await.unwrap();

    let scenario = Scenario::parse(FIXTURE).expect("fixture");
    for d in scenario.deliveries() {
        let (code, body) = node.post(d.route.path(), d.body.clone()).await;
        assert_eq!(code, 200, "{}: {body}", d.label);
    }

    let (code, t1) = node
        .get(&format!("/api/payments/{}", payment_id_of(2)))
        .await;
    assert_eq!(code, 200, "{t1}");
    assert_eq!(t1["payment"]["status"], "claimed");
    assert_eq!(t1["payment"]["asset"], ASSET);
    assert_eq!(t1["payment"]["amount"], "250000");
    // The mempool's `payment:submitted` knows only the contract the call
    // names; from its block on, the asset the transfer event names.
    for e in t1["events"].as_array().unwrap() {
        let want = if e["type"] == "payment:submitted" {
            TOKEN
        } else {
            ASSET
        };
        assert_eq!(e["asset"], want, "{e}");
    }
    let (_, t2) = node
        .get(&format!("/api/payments/{}", payment_id_of(3)))
        .await;
    assert_eq!(t2["payment"]["status"], "refunded");
    assert_eq!(t2["payment"]["asset"], ASSET);
    // A create refused before the token was allowed moved nothing: the
    // record names the contract it tried.
    let (_, t0) = node
        .get(&format!("/api/payments/{}", payment_id_of(0)))
        .await;
    assert_eq!(t0["payment"]["status"], "failed");
    assert_eq!(t0["payment"]["asset"], TOKEN);

    // `?asset=`: by contract or asset identifier, the same four payments.
    let all_token = vec![
        payment_id_of(0),
        payment_id_of(2),
        payment_id_of(3),
        payment_id_of(8),
    ];
    let mut want = all_token.clone();
    want.sort();
    for q in [format!("asset={TOKEN}"), format!("asset={ASSET}")] {
        let (code, page) = list(&node, &q).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(ids(&page), want, "{q}");
    }
    let (_, stx) = list(&node, "asset=STX").await;
    assert!(ids(&stx).is_empty(), "{stx}");
    let (_, claimed) = list(&node, &format!("asset={TOKEN}&status=claimed")).await;
    assert_eq!(ids(&claimed), [payment_id_of(2)]);
    for bad in [
        "asset=not-a-token",
        "asset=ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
    ] {
        let (code, err) = list(&node, bad).await;
        assert_eq!(code, 400, "{bad}: {err}");
        assert_eq!(err["error"]["field"], "asset", "{err}");
    }

    // The figures count them: two payments confirmed (first seen in the
    // mempool), two creates refused by the contract with u114.
    common::eventually("the payment figures", Duration::from_secs(15), || async {
        node.metric(r#"nexus_payment_outcomes_total{origin="observer",outcome="confirmed"}"#)
            .await
            == 2.0
            && node
                .metric(r#"nexus_contract_errors_total{error="(err u114)"}"#)
                .await
                == 2.0
    })
    .await;
    assert_eq!(
        node.metric(r#"nexus_payment_outcomes_total{origin="observer",outcome="failed"}"#)
            .await,
        2.0
    );
    assert_eq!(
        node.metric(r#"nexus_payment_errors_total{reason="AbortByResponse"}"#)
            .await,
        2.0
    );

    // The subscription saw the token's events (the failed creates and the
    // four transitions of t1 and t2 at least), all of them in the token.
    let mut seen = 0;
    while seen < 6 {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v.get("id") == Some(&json!(1)) {
            assert!(v.get("result").is_some(), "subscribed: {v}");
            continue;
        }
        let event = &v["params"];
        assert_eq!(
            nexus_core::domain::token_contract_of(event["asset"].as_str().unwrap()),
            Some(TOKEN),
            "{v}"
        );
        assert!(all_token.contains(&event["payment_id"].as_str().unwrap().to_string()));
        seen += 1;
    }
    node.stop().await;
}

common::both_stores!(token_payments_carry_their_asset);
