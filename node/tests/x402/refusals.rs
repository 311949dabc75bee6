//! Refusals through the node: each a 200 with its x402 reason, and nothing
//! stored, nothing broadcast.

use super::*;

#[tokio::test]
async fn supported_and_verify() {
    let rpc = scripted::start().await;
    let node = x402_node(Stores::Embedded, &rpc).await;
    let (code, s) = node.get("/x402/supported").await;
    assert_eq!(code, 200);
    assert_eq!(s["kinds"][0]["scheme"], "exact");
    assert_eq!(s["kinds"][1]["scheme"], "escrow");
    assert_eq!(s["kinds"][1]["extra"]["timeoutBlocks"], 100);
    assert_eq!(s["signers"], json!({}));
    let (code, v) = call(&node, "verify", &stx_body(60)).await;
    assert_eq!(code, 200);
    assert_eq!(v, json!({"isValid": true, "payer": fixture()["payer"]}));
    // Verify stores nothing and sends nothing.
    assert_eq!(node.get("/api/payments").await.1["payments"], json!([]));
    assert!(rpc.script.broadcasts().is_empty());
    node.stop().await;
}

#[tokio::test]
async fn every_refusal_has_its_reason_and_leaves_no_trace() {
    let rpc = scripted::start().await;
    let node = x402_node(Stores::Embedded, &rpc).await;
    let f = fixture();
    let with = |path: &[&str], value: Value| {
        let mut b = stx_body(60);
        let mut at = &mut b;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value.clone();
        if path[0] == "paymentRequirements" {
            b["paymentPayload"]["accepted"] = b["paymentRequirements"].clone();
        }
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong recipient",
            with(&["paymentRequirements", "payTo"], f["other"].clone()),
            "recipient_mismatch",
        ),
        (
            "too little",
            with(&["paymentRequirements", "amount"], json!("1001")),
            "amount_insufficient",
        ),
        (
            "wrong network",
            with(&["paymentRequirements", "network"], json!("stacks:1")),
            "invalid_network",
        ),
        (
            "expired",
            with(
                &["paymentRequirements", "extra"],
                json!({"expiresAt": "2026-01-01T00:00:00Z"}),
            ),
            "invalid_payment_requirements",
        ),
        (
            "garbage payload",
            with(
                &["paymentPayload", "payload", "transaction"],
                json!("deadbeef"),
            ),
            "invalid_payload",
        ),
        (
            "version 1",
            with(&["paymentPayload", "x402Version"], json!(1)),
            "invalid_x402_version",
        ),
        (
            "unknown scheme",
            with(&["paymentRequirements", "scheme"], json!("upto")),
            "unsupported_scheme",
        ),
        (
            "no body shape",
            json!({"hello": "world"}),
            "invalid_payload",
        ),
    ];
    for (what, b, reason) in cases {
        for path in ["verify", "settle"] {
            let (code, v) = call(&node, path, &b).await;
            assert_eq!(code, 200, "{what} {path}: {v}");
            let field = if path == "verify" {
                "invalidReason"
            } else {
                "errorReason"
            };
            assert_eq!(v[field], reason, "{what} {path}: {v}");
        }
    }
    // Not JSON at all, and over the body limit.
    let raw = |body: Vec<u8>| {
        reqwest::Client::new()
            .post(format!("http://{}/x402/settle", node.api))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (code, v) = split(raw(b"{not json".to_vec()).await.unwrap()).await;
    assert_eq!(
        (code, v["errorReason"].clone()),
        (200, json!("invalid_payload"))
    );
    let (code, _) = split(raw(vec![b' '; 100 * 1024]).await.unwrap()).await;
    assert_eq!(code, 413);

    // The payer cannot cover amount + fee.
    rpc.script
        .set_account(f["payer"].as_str().unwrap(), 2_999, 3);
    let (_, v) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(v["errorReason"], "insufficient_funds", "{v}");
    assert_eq!(v["payer"], f["payer"]);
    // The nonce is already used.
    rpc.script
        .set_account(f["payer"].as_str().unwrap(), 1_000_000, 4);
    let (_, v) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(v["errorReason"], "invalid_transaction_state", "{v}");

    assert_eq!(node.get("/api/payments").await.1["payments"], json!([]));
    assert!(rpc.script.broadcasts().is_empty());
    assert_eq!(
        node.metric("nexus_x402_requests_total{call=\"settle\",outcome=\"insufficient_funds\"}")
            .await,
        1.0
    );
    // Every settle answered is timed: the 8 cases, the non-JSON body and
    // the two funds refusals (the 413 never reaches the handler).
    assert_eq!(node.metric("nexus_x402_settle_seconds_count").await, 11.0);
    node.stop().await;
}

#[tokio::test]
async fn an_rpc_outage_is_a_503_to_try_again_not_a_refusal() {
    let rpc = scripted::start().await;
    let node = x402_node(Stores::Embedded, &rpc).await;
    rpc.script.set_mode(scripted::Mode::Status(500));
    let (code, v) = call(&node, "verify", &stx_body(60)).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["invalidReason"], "unexpected_verify_error");
    let (code, v) = call(&node, "settle", &stx_body(60)).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorReason"], "unexpected_settle_error");
    assert!(rpc.script.broadcasts().is_empty());
    node.stop().await;
}
